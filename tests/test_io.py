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
