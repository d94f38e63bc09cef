"""prunefair.io: atomic writes, and errors that name the path and the reason."""

import pytest

from prunefair.io import atomic_write_bytes, atomic_write_text


def test_atomic_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "one")
    atomic_write_text(tmp_path / "sub" / "a.txt", "two")
    assert (tmp_path / "sub" / "a.txt").read_text() == "two"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.txt"]


@pytest.mark.parametrize("where", ["folder_is_a_file", "under_a_file"])
def test_a_folder_that_cannot_be_created_names_the_path_and_the_file_in_the_way(tmp_path, where):
    blocker = tmp_path / "t.sh"
    blocker.write_text("#!/bin/sh\n")
    target = blocker / "x.npy" if where == "folder_is_a_file" else blocker / "deeper" / "x.npy"
    with pytest.raises(OSError) as err:
        atomic_write_bytes(target, b"data")
    msg = str(err.value)
    assert f"{target}: cannot write ({blocker} is a file, not a folder); nothing stored was changed" in msg
    assert "File exists" not in msg and blocker.read_text() == "#!/bin/sh\n"


def test_a_broken_link_in_the_way_is_called_one(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(OSError, match=r"dangling is a broken link \(to .*nowhere\)"):
        atomic_write_bytes(tmp_path / "dangling" / "a.bin", b"data")


def test_a_failed_rename_names_the_file_not_the_temporary_one(tmp_path):
    """os.replace's error names the temporary file (and the target): the message names the target alone."""
    import pytest

    from prunefair.io import atomic_write_text

    (tmp_path / "summary.csv").mkdir()  # a folder where the file belongs
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "summary.csv", "x")
    text = err.value.strerror
    assert text.startswith(f"{tmp_path / 'summary.csv'}: cannot write (Is a directory)") and ".tmp" not in text
    assert err.value.filename is None and not list(tmp_path.glob(".*.tmp"))


# -- checkpoints a user may pass to audit/diagnose by mistake (prune.checkpoint_files) -------------------------------
def _mlp_state():
    import torch

    torch.manual_seed(0)
    return {"net.1.weight": torch.randn(4, 3), "net.1.bias": torch.zeros(4)}


def test_a_plain_pickle_is_refused_without_being_unpickled(tmp_path):
    """pickle.dump files (a state dict, numpy arrays, or an object whose unpickling runs a command) are told from
    torch.save's legacy format by its magic number, and never handed to any unpickler."""
    import os
    import pickle

    from prunefair.prune.checkpoint_files import load_checkpoint

    class Runs:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    for protocol in (2, 4, 5):
        for name, obj in (("state", _mlp_state()), ("evil", {"net.1.weight": Runs()})):
            path = tmp_path / f"{name}{protocol}.pkl"
            path.write_bytes(pickle.dumps(obj, protocol=protocol))
            with pytest.raises(ValueError, match=rf"{path}: a plain Python pickle \(pickle\.dump\), not a torch\.save"):
                load_checkpoint(path)
    assert not (tmp_path / "ran").exists()


def test_torch_save_in_the_legacy_format_still_loads(tmp_path):
    import torch

    from prunefair.prune.checkpoint_files import load_checkpoint

    state = _mlp_state()
    path = tmp_path / "legacy.pt"  # torch's weights_only reader takes its default pickle protocol (2) there
    torch.save(state, path, _use_new_zipfile_serialization=False)
    loaded = load_checkpoint(path)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_empty_and_truncated_safetensors_files_are_called_so(tmp_path):
    from safetensors.torch import save_file

    from prunefair.prune.checkpoint_files import load_checkpoint

    whole = tmp_path / "dense.safetensors"
    save_file(_mlp_state(), whole)
    raw = whole.read_bytes()
    header = int.from_bytes(raw[:8], "little") + 8
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(raw[:40])
    with pytest.raises(ValueError, match=rf"{cut}: a truncated safetensors file: its header alone takes {header:,} "
                                         "bytes, the file has 40"):
        load_checkpoint(cut)
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match=rf"{empty}: an empty file \(0 bytes\), not a checkpoint"):
        load_checkpoint(empty)
    assert set(load_checkpoint(whole)) == set(_mlp_state())


def test_the_rename_is_made_durable_by_fsyncing_the_folder(tmp_path, monkeypatch):
    """After os.replace the folder itself is fsynced (else a power cut can leave the old entry, or none); a file
    system that refuses to fsync a folder keeps the written file."""
    import os
    import stat

    import prunefair.io as pio

    synced = []
    real = os.fsync

    def spy(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        return real(fd)

    monkeypatch.setattr(pio.os, "fsync", spy)
    atomic_write_text(tmp_path / "a.txt", "one")
    assert synced == [False, True]  # the file's data, then its folder, in that order

    def refuse_folders(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(22, "Invalid argument")
        return real(fd)

    monkeypatch.setattr(pio.os, "fsync", refuse_folders)
    atomic_write_text(tmp_path / "a.txt", "two")
    assert (tmp_path / "a.txt").read_text() == "two"
