"""A rerun on changed data recomputes the cells (their results record the data's fingerprint); unchanged data
reuses them."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prunefair import run_study
from prunefair.data import load_dataset, register_arrays
from tests.conftest import tiny_study


def _results(root: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in sorted((root / "cells").glob("*/result.json"))}


def _register(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6)).astype("float32")
    register_arrays("changing_arrays", x, (x[:, 0] > 0).astype(int),
                    attributes={"grp": np.array(["A", "B"])[rng.integers(0, 2, n)]})


def test_the_fingerprint_follows_the_samples_not_the_object():
    a = load_dataset("digits", target="class", group="class")
    b = load_dataset("digits", target="class", group="class")
    assert a.fingerprint() == b.fingerprint() == a.to("cpu").fingerprint()
    b = load_dataset("digits", target="class", group="class")
    b.test.g[0] = (b.test.g[0] + 1) % b.test.num_groups  # one group id of one test sample
    assert b.fingerprint() != a.fingerprint()


def test_re_registered_arrays_are_recomputed_and_unchanged_ones_reused(tmp_path):
    _register(300, 0)
    cfg = tiny_study(tmp_path, data={"dataset": "changing_arrays", "group": "grp"}, prune={"rates": [0.5]},
                     diagnostics={"enabled": False})
    root = Path(cfg["output_dir"])
    run_study(cfg)
    first = _results(root)
    fp1 = json.loads((root / "data.json").read_text())["fingerprint"]
    assert {r["data"] for r in first.values()} == {fp1}

    run_study(cfg)  # same data: every cell reused as it was
    assert _results(root) == first

    _register(200, 1)  # the same name, other samples: the study used to report the old table unchanged
    from prunefair.config import validate_config
    from prunefair.study import Store, plan_cells

    dense, prune = plan_cells(validate_config(cfg))
    said = []
    Store(root).note_other_data([*dense, *prune], "another-fingerprint", said.append)
    assert [line.split(":")[0] for line in said[1:]] == ["[yellow]s0_dense", "[yellow]s0_p0.5_nft"]
    assert said[0] == f"resuming {root}: 0 of 2 cells are done and kept, 2 to run (2 of them computed on other data)"
    second = run_study(cfg)
    described = json.loads((root / "data.json").read_text())
    assert described["fingerprint"] != fp1
    assert {r["data"] for r in _results(root).values()} == {described["fingerprint"]}
    dense_test = second.by_group[(second.by_group.stage == "dense") & (second.by_group.split == "test")]
    assert dense_test.n.sum() == described["sizes"]["test"]


def _image_folder(root: Path, groups: list[str]) -> None:
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = ["file,label,grp"]
    for i, grp in enumerate(groups):
        label = i % 2
        pixels = (rng.integers(0, 100, (8, 8, 3)) + 120 * label).astype("uint8")
        Image.fromarray(pixels).save(root / f"img{i}.png")
        rows.append(f"img{i}.png,{label},{grp}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")


@pytest.mark.slow
def test_an_edited_csv_is_recomputed_by_worker_processes_too(tmp_path):
    """The driver of --workers loads no data: a worker tells it the fingerprint before it plans the cells."""
    data = tmp_path / "images"
    _image_folder(data, ["a", "b"] * 60)
    cfg = tiny_study(tmp_path, data={"dataset": "folder", "root": str(data), "csv": "labels.csv", "target": "label",
                                     "group": "grp"}, prune={"rates": [0.5]}, diagnostics={"enabled": False},
                     run={"workers": 2})
    root = Path(cfg["output_dir"])
    run_study(cfg)
    fp1 = json.loads((root / "data.json").read_text())["fingerprint"]
    assert {r["data"] for r in _results(root).values()} == {fp1}

    csv = data / "labels.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([lines[0]] + [ln.replace(",a", ",c") if i % 3 == 0 else ln
                                           for i, ln in enumerate(lines[1:])]) + "\n")
    results = run_study(cfg)
    described = json.loads((root / "data.json").read_text())
    assert described["fingerprint"] != fp1 and "c" in described["group_names"]
    assert {r["data"] for r in _results(root).values()} == {described["fingerprint"]}
    assert "c" in set(results.by_group.group)


def test_status_and_report_leave_out_results_of_other_data_until_the_rerun(tmp_path):
    """A run on changed data stopped half-way: the cells it did not reach are outdated, not done, and the report
    does not put them beside the new ones."""
    from typer.testing import CliRunner

    from prunefair.cli import app
    from prunefair.study import StudyResults

    _register(300, 0)
    cfg = tiny_study(tmp_path, data={"dataset": "changing_arrays", "group": "grp"}, prune={"rates": [0.5, 0.9]},
                     diagnostics={"enabled": False})
    root = Path(cfg["output_dir"])
    run_study(cfg)
    old, config = (root / "cells" / "s0_p0.9_nft" / "result.json").read_text(), (root / "config.toml").read_text()
    _register(250, 2)
    run_study({**cfg, "prune": {"rates": [0.5]}})  # the new data, but not the 0.9 cell (as if stopped before it)
    (root / "cells" / "s0_p0.9_nft" / "result.json").write_text(old)  # still the old data's
    (root / "config.toml").write_text(config)  # the stopped run's config: both rates
    res = CliRunner().invoke(app, ["status", str(root)])
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "2 done, 1 outdated" in text and "computed on other" in text
    results = StudyResults.from_store(root)
    assert sorted(r["name"] for r in results.cells) == ["s0_dense", "s0_p0.5_nft"]
    assert set(results.by_group.sparsity) == {0.0, 0.5}


def test_the_resume_note_counts_cells_computed_on_other_data_as_to_run(tmp_path):
    """The rerun said "2 of 2 cells are done and kept, 0 to run" (judged by the last run's data.json), then
    recomputed both: cells of other data are counted against the data just loaded."""
    from prunefair.config import validate_config
    from prunefair.progress import Progress
    from prunefair.study import execute_study
    from prunefair.study.runner import resume_notes

    class Said(Progress):
        def __init__(self):
            super().__init__(quiet=True)
            self.lines = []

        def log(self, message: str) -> None:
            self.lines.append(message)

    _register(300, 0)
    cfg = tiny_study(tmp_path, data={"dataset": "changing_arrays", "group": "grp"}, prune={"rates": [0.5]},
                     diagnostics={"enabled": False})
    root, config = Path(cfg["output_dir"]), validate_config(cfg)
    run_study(cfg)
    said = Said()
    execute_study(config, progress=said)  # the same data: all kept
    kept = f"resuming {root}: 2 of 2 cells are done and kept, 0 to run"
    assert [ln for ln in said.lines if "resuming" in ln] == [kept]
    _register(200, 1)
    said = Said()
    execute_study(config, progress=said)
    resuming = [ln for ln in said.lines if "resuming" in ln]
    assert resuming == [f"resuming {root}: 0 of 2 cells are done and kept, 2 to run (2 of them computed on other data)"]
    assert sum("computed on other data (fingerprint" in ln for ln in said.lines) == 2
    assert any("0 of 2 cells are done and kept, 2 to run" in n for n in resume_notes(config, "another-fingerprint"))


def test_data_json_is_read_again_when_it_changes(tmp_path):
    """Store caches data.json for the results it checks; a new data.json (an atomic write: a new file) or one
    edited in place is read again, a removed one gives None."""
    from prunefair.study.store import Store, atomic_write_json

    store = Store(tmp_path)
    assert store.data_description() is None
    atomic_write_json(tmp_path / "data.json", {"fingerprint": "a"})
    assert store.data_fingerprint() == "a"
    atomic_write_json(tmp_path / "data.json", {"fingerprint": "b"})
    assert store.data_fingerprint() == "b"
    (tmp_path / "data.json").write_text(json.dumps({"fingerprint": "cc"}))  # in place, another size
    assert store.data_fingerprint() == "cc"
    (tmp_path / "data.json").unlink()
    assert store.data_description() is None
