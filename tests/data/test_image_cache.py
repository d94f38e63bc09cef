import os

import numpy as np
import pytest
import torch

from prunefair.data import images
from prunefair.data.images import ImageReadError, cache_key, clear_memory_cache, load_images
from tests.data.conftest import write_jpeg


def _files(tmp_path, n, suffix=".png", size=8):
    paths = []
    for i in range(n):
        p = tmp_path / "src" / f"{i:04d}{suffix}"
        write_jpeg(p, seed=i, size=size)
        paths.append(p)
    return paths


def test_disk_cache_is_reused_and_keyed_by_files(tmp_path, monkeypatch):
    paths = _files(tmp_path, 12)
    cache = tmp_path / "cache"
    first = load_images(paths, size=None, cache_dir=cache)
    assert first.x.shape == (12, 3, 8, 8)
    assert torch.equal(first.x[4], torch.from_numpy(write_jpeg(tmp_path / "x.png", seed=4, size=8)).permute(2, 0, 1))
    written = sorted(p.name for p in cache.iterdir())
    assert len(written) == 3 and not any(n.endswith(".tmp") for n in written)
    clear_memory_cache()

    def no_decode(*a, **k):
        raise AssertionError("decoded again although the disk cache matches")

    monkeypatch.setattr(images, "_decode", no_decode)
    again = load_images(paths, size=None, cache_dir=cache)
    assert torch.equal(again.x, first.x) and np.array_equal(again.digests, first.digests)
    # a changed file, another size or another file list gives another key
    k0 = cache_key([str(p) for p in paths], size=None, skip_unreadable=False)
    assert cache_key([str(p) for p in paths], size=4, skip_unreadable=False) != k0
    assert cache_key([str(p) for p in paths[:-1]], size=None, skip_unreadable=False) != k0
    st = os.stat(paths[0])
    os.utime(paths[0], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert cache_key([str(p) for p in paths], size=None, skip_unreadable=False) != k0


@pytest.mark.parametrize("damage", ["empty", "truncated"])
def test_a_damaged_cache_file_is_decoded_again(tmp_path, damage):
    paths = _files(tmp_path, 6)
    cache = tmp_path / "cache"
    first = load_images(paths, size=None, cache_dir=cache)
    clear_memory_cache()
    x = next(p for p in cache.iterdir() if p.name.endswith(".npy") and "." not in p.name[len("images-"):-4])
    x.write_bytes(b"" if damage == "empty" else x.read_bytes()[:50])
    again = load_images(paths, size=None, cache_dir=cache)
    assert torch.equal(again.x, first.x)


def test_unreadable_files_error_or_skip(tmp_path):
    paths = _files(tmp_path, 5)
    paths[2].write_bytes(b"not an image")
    with pytest.raises(ImageReadError, match="0002.png: cannot decode image"):
        load_images(paths, size=None)
    got = load_images(paths, size=None, skip_unreadable=True, cache_dir=tmp_path / "c")
    assert got.kept.tolist() == [0, 1, 3, 4] and got.unreadable == [str(paths[2])]
    clear_memory_cache()
    cached = load_images(paths, size=None, skip_unreadable=True, cache_dir=tmp_path / "c")
    assert cached.kept.tolist() == [0, 1, 3, 4] and cached.unreadable == [str(paths[2])]


def test_mixed_sizes_need_image_size(tmp_path):
    paths = _files(tmp_path, 2) + [tmp_path / "big.png"]
    write_jpeg(paths[-1], seed=9, size=12)
    with pytest.raises(ImageReadError, match="big.png: image is 12x12.*data.image_size"):
        load_images(paths, size=None)
    assert load_images(paths, size=6).x.shape == (3, 3, 6, 6)


def test_process_pool_matches_serial_decoding(tmp_path):
    paths = _files(tmp_path, 520, suffix=".jpg", size=6)
    pooled = load_images(paths, size=4, workers=2)
    clear_memory_cache()
    serial = load_images(paths, size=4, workers=1)
    assert torch.equal(pooled.x, serial.x) and np.array_equal(pooled.digests, serial.digests)


def test_pixel_formats_decode_as_a_viewer_shows_them(tmp_path):
    from PIL import Image

    grey16 = tmp_path / "grey16.png"
    Image.fromarray(np.full((4, 4), 30000, dtype=np.uint16)).save(grey16)  # saved as I;16
    rgba = tmp_path / "rgba.png"
    px = np.zeros((4, 4, 4), dtype=np.uint8)
    px[..., 0] = 255  # red, with alpha 0 left half and 255 right half
    px[:, 2:, 3] = 255
    Image.fromarray(px, "RGBA").save(rgba)
    rotated = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.fromarray(np.zeros((4, 8, 3), dtype=np.uint8)).save(rotated, exif=exif)  # stored 8 wide, 4 high
    floats = tmp_path / "float.tif"
    Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32), "F").save(floats)
    got = {p.name: images._decode_one(str(p), None) for p in (grey16, rgba, rotated, floats)}
    assert got["grey16.png"][0].shape == (4, 4, 3) and (got["grey16.png"][0] == round(30000 * 255 / 65535)).all()
    assert (got["rgba.png"][0][:, :2] == 0).all()  # fully transparent: the black background, not red
    assert (got["rgba.png"][0][:, 2:] == [255, 0, 0]).all()
    assert got["rotated.jpg"][0].shape == (8, 4, 3)  # displayed 4 wide, 8 high
    assert isinstance(got["float.tif"], str) and "unsupported pixel format 'F'" in got["float.tif"]


@pytest.mark.parametrize("where", ["a_file", "under_a_file"])
def test_a_cache_dir_that_cannot_be_written_is_a_warning_and_the_decoded_images_are_used(tmp_path, caplog, where):
    paths = _files(tmp_path, 4)
    blocker = tmp_path / "t.sh"
    blocker.write_text("not a folder")
    cache = blocker if where == "a_file" else blocker / "cache"
    with caplog.at_level("WARNING", logger="prunefair.data"):
        got = load_images(paths, size=None, cache_dir=cache)
    assert got.x.shape == (4, 3, 8, 8)
    assert f"data.cache_dir = {cache}: cannot write the image cache (" in caplog.text
    assert "continuing without it" in caplog.text and blocker.read_text() == "not a folder"
    clear_memory_cache()
    assert torch.equal(load_images(paths, size=None, cache_dir=cache).x, got.x)  # the next run decodes again


def test_an_undecodable_file_is_named_without_the_in_memory_stream(tmp_path):
    paths = _files(tmp_path, 3, suffix=".jpg")
    paths[1].write_bytes(b"\xff\xd8\xff garbage, not a JPEG")
    with pytest.raises(ImageReadError) as err:
        load_images(paths, size=None)
    msg = str(err.value)
    assert msg.startswith(f"{paths[1]}: cannot decode image (UnidentifiedImageError: cannot identify image file)")
    assert "BytesIO" not in msg and " at 0x" not in msg
