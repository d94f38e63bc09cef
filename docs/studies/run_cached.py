"""Run a UTKFace study from the splits cached by cache_splits.py (for a machine without the UTKFace folder).

The splits are exactly those of the study's own loader (same folder, image size, split seed); only the
JPEG decoding is skipped. Usage: PRUNEFAIR_CACHE=CACHE_DIR python docs/studies/run_cached.py STUDY.toml
OUT_DIR [key=value overrides ...] [--train-limit=N]
"""
import io, json, lzma, os, sys, time
from pathlib import Path
import numpy as np, torch
from prunefair.data import DatasetSplits, GroupedData
import prunefair.study.runner as runner
from prunefair.api import run_study

here = Path(os.environ.get("PRUNEFAIR_CACHE", Path(__file__).parent))  # folder of utk32.npz.xz(.json)
args = sys.argv[1:]
study, out = args[0], args[1]
sets = [a.split("=", 1)[1] if a.startswith("--set=") else a for a in args[2:] if not a.startswith("--train-limit")]
limit = next((int(a.split("=")[1]) for a in args if a.startswith("--train-limit=")), None)
t0 = time.time()
meta = json.load(open(here / "utk32.npz.json"))
arr = np.load(io.BytesIO(lzma.decompress((here / "utk32.npz.xz").read_bytes())))
def part(s):
    n = len(arr[f"{s}_y"]) if (limit is None or s != "train") else limit
    return GroupedData(torch.from_numpy(arr[f"{s}_x"][:n]), torch.from_numpy(arr[f"{s}_y"][:n]),
                       torch.from_numpy(arr[f"{s}_g"][:n]), tuple(meta["class_names"]), tuple(meta["group_names"]),
                       tuple(meta["mean"]), tuple(meta["std"]), dict(meta["info"]))
splits = DatasetSplits(train=part("train"), val=part("val"), test=part("test"), name=meta["name"],
                       target=meta["target"], group=meta["group"])
print("data", {s: len(splits.split(s)) for s in ("train", "val", "test")}, f"{time.time() - t0:.1f}s", flush=True)

def cached(cfg):
    d = cfg.data
    assert (d.dataset, d.target, d.group, d.image_size, d.val_fraction, d.test_fraction, d.split_seed) == \
        ("utkface", meta["target"], meta["group"], 32, 0.1, 0.2, 0), "cache does not match the study's data section"
    return splits
runner.load_study_data = cached
t1 = time.time()
res = run_study(study, overrides=[f"output_dir={out}", *sets])
print("study", f"{time.time() - t1:.1f}s", "cells done", len(res.cells), "failed", len(res.failed), flush=True)
for f in res.failed:
    print("FAILED", f["name"], f.get("error"))
