"""Options given from Python: a wrong type for ``options`` and a VKD objective built directly are refused clearly."""

import pytest
import torch

from prunefair.data import DatasetSplits, GroupedData
from prunefair.mitigate import ValidationDistillation, objective_for


def _splits() -> DatasetSplits:
    torch.manual_seed(0)
    d = GroupedData(torch.randn(30, 3), torch.randint(0, 2, (30,)), torch.arange(30) % 2, ("a", "b"), ("A", "B"))
    return DatasetSplits(d, d, d, "t", "y", "g")


@pytest.mark.parametrize("options", ["eps=0.1", ["eps", 0.1], 0.1])
def test_options_of_another_type_are_named(options):
    with pytest.raises(TypeError, match=r"^options: a dict of \[mitigate\] keys .*got a (str|list|float)"):
        objective_for("ceag", dense_model=torch.nn.Linear(3, 2), data=_splits(), options=options)


@pytest.mark.parametrize("kw, message", [
    ({"alpha": 2.0}, r"mitigate option vkd_alpha = 2\.0: must be a finite number in \[0, 1\]"),
    ({"alpha": float("nan")}, r"mitigate option vkd_alpha = nan: must be a finite number in \[0, 1\]"),
    ({"temperature": 0.0}, r"mitigate option vkd_temperature = 0\.0: must be a finite number > 0"),
    ({"temperature": float("inf")}, r"mitigate option vkd_temperature = inf: must be a finite number > 0"),
    ({"eps": -0.1}, r"mitigate option eps = -0\.1: must be a finite number >= 0"),
])
def test_vkd_built_directly_checks_its_options(kw, message):
    s = _splits()
    with pytest.raises(ValueError, match=message):
        ValidationDistillation(num_groups=2, dense_model=torch.nn.Linear(3, 2), val=s.val, **kw)
