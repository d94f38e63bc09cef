"""Distance to the decision boundary, per sample and averaged per group (Theorem 2, Proposition 3).

- binary tasks: f (1 - f), with f the predicted probability of class 1; largest (1/4) at f = 0.5, on the boundary;
- any number of classes: 1 - sum_c p_c^2 (equals 2 f (1 - f) for two classes); larger = closer to the boundary;
- the logit margin z_y - max_{c != y} z_c; smaller (negative when wrong) = closer to or past the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from prunefair.data import GroupedData, iterate_batches
from prunefair.models import check_logits, eval_mode, input_dtype, model_device


def boundary_terms(logits: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample f(1-f) (NaN unless two classes), 1 - sum p^2 and the logit margin."""
    z = check_logits(logits, len(y)).double()
    p = torch.softmax(z, dim=1)
    gini = 1.0 - (p * p).sum(1)
    if z.shape[1] == 2:
        f1f = p[:, 1] * (1.0 - p[:, 1])
    else:
        f1f = torch.full_like(gini, float("nan"))
    true = z.gather(1, y.view(-1, 1)).squeeze(1)
    other = z.scatter(1, y.view(-1, 1), float("-inf")).amax(1)
    return {"f_one_minus_f": f1f, "gini": gini, "margin": true - other}


@dataclass(frozen=True)
class BoundaryStats:
    group_names: tuple[str, ...]
    count: np.ndarray
    f_one_minus_f: np.ndarray  # NaN unless binary
    gini: np.ndarray
    margin: np.ndarray

    def to_dict(self) -> dict:
        f = lambda a: [None if np.isnan(v) else float(v) for v in a]  # noqa: E731
        return {"f_one_minus_f": f(self.f_one_minus_f), "gini": f(self.gini), "margin": f(self.margin)}


@torch.no_grad()
def group_boundary_distance(model: nn.Module, data: GroupedData, *, batch_size: int = 512,
                            device: torch.device | str | None = None, channels_last: bool = False) -> BoundaryStats:
    """Group means of f(1-f), 1 - sum p^2 and the logit margin of ``model`` (eval mode) on ``data``; ``device``: by
    default the model's (a model elsewhere than a given ``device`` is a ValueError)."""
    device = model_device(model, device, who="group_boundary_distance")
    G = data.num_groups
    sums = torch.zeros(4, G, dtype=torch.float64, device=device)
    with eval_mode(model):
        for x, y, g in iterate_batches(data, batch_size=batch_size, device=device, channels_last=channels_last,
                                       dtype=input_dtype(model)):
            t = boundary_terms(model(x), y)
            sums[0].index_add_(0, g, torch.ones_like(t["gini"]))
            sums[1].index_add_(0, g, t["f_one_minus_f"])
            sums[2].index_add_(0, g, t["gini"])
            sums[3].index_add_(0, g, t["margin"])
    s = sums.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        means = s[1:] / np.where(s[0] > 0, s[0], np.nan)
    return BoundaryStats(tuple(data.group_names), s[0].round().astype(np.int64), means[0], means[1], means[2])
