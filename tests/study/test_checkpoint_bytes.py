"""Checkpoints of the same tensors and metadata are the same bytes in every process (safetensors alone writes its
metadata keys in a per-process order)."""

import subprocess
import sys

SAVE = """
import sys, torch
from prunefair.study.store import save_checkpoint
t = {"a.weight": torch.arange(12.).view(3, 4), "b.bias": torch.ones(3, dtype=torch.float64)}
save_checkpoint(sys.argv[1], t, {"key": "abc", "cell": "s0_dense", "zz": "1", "aa": "2", "mm": "3", "q": "4"})
"""


def test_the_same_checkpoint_is_the_same_bytes_across_processes(tmp_path):
    paths = [tmp_path / f"{i}.safetensors" for i in range(3)]
    for p in paths:
        subprocess.run([sys.executable, "-c", SAVE, str(p)], check=True)
    blobs = [p.read_bytes() for p in paths]
    assert blobs[0] == blobs[1] == blobs[2]
    from prunefair.prune.checkpoint_files import load_checkpoint
    from prunefair.study.store import checkpoint_metadata

    assert load_checkpoint(paths[0])["a.weight"].tolist() == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    assert checkpoint_metadata(paths[0])["key"] == "abc"
