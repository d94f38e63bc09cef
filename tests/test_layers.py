"""Imports point down the pipeline: no module imports a stage that comes after its own."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "prunefair"

# the pipeline, lowest first; the study file (config) validates names against the registries of the stages
# before it (datasets, models, pruning and mitigation methods) and ships presets (TOML files); the study and
# everything after read it
PIPELINE = ["io", "progress", "data", "models", "prune", "train", "measure", "diagnostics", "mitigate", "presets",
            "config", "study", "report", "audit", "api", "cli"]


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "prunefair" else None


def _imports(path: Path) -> list[str]:
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
            out += [f"{node.module}.{a.name}" for a in node.names if node.module == "prunefair"]
        elif isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (the package uses absolute ones)")
    return out


def test_every_module_belongs_to_a_stage():
    stages = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    assert stages - {"__init__"} <= set(PIPELINE), stages - set(PIPELINE)


def test_no_module_imports_a_later_stage():
    upward = []
    for path in PACKAGE.rglob("*.py"):
        mine = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        if mine == "__init__":
            continue
        for name in _imports(path):
            other = _stage(name)
            if other in PIPELINE and PIPELINE.index(other) > PIPELINE.index(mine):
                upward.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert not upward, "\n".join(upward)


def test_the_check_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from prunefair.report import write_figures\n")
    assert _stage(_imports(bad)[0]) == "report" and PIPELINE.index("report") > PIPELINE.index("data")
