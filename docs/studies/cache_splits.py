"""Cache a UTKFace study's splits for a machine without the UTKFace folder (the GPU machine of
docs/mitigation.md). The splits come from the study's own loader; run_cached.py reads them back.

Usage: python docs/studies/cache_splits.py STUDY.toml CACHE_DIR   (writes utk32.npz.xz and utk32.npz.json)
"""
import io, json, lzma, sys, time
from pathlib import Path

import numpy as np
import torch

from prunefair.config import load_config
from prunefair.study.runner import load_study_data

torch.set_num_threads(1)
cfg = load_config(sys.argv[1])
out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
t = time.time()
d = load_study_data(cfg)
print("load", f"{time.time() - t:.1f}s", d.describe()["sizes"], d.describe()["group_counts"])
arr = {}
for s in ("train", "val", "test"):
    g = d.split(s)
    arr[f"{s}_x"], arr[f"{s}_y"], arr[f"{s}_g"] = g.x.numpy(), g.y.numpy(), g.g.numpy()
buf = io.BytesIO()
np.savez(buf, **arr)
(out / "utk32.npz.xz").write_bytes(lzma.compress(buf.getvalue(), preset=6))  # about 55 MB at 32x32
json.dump({"class_names": list(d.train.class_names), "group_names": list(d.train.group_names),
           "mean": d.train.mean, "std": d.train.std,
           "info": {k: v for k, v in d.train.info.items() if isinstance(v, (int, float, str))},
           "name": d.name, "target": d.target, "group": d.group}, open(out / "utk32.npz.json", "w"))
