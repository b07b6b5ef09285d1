"""Enumeration, path lists, mirroring and decoding."""
from __future__ import annotations

import io
import os
import shutil

import numpy as np
import pytest

from featx import decode, inputs
from featx.output import layout
from featx.errors import InputError
from helpers import SAMPLES


def test_walk_is_sorted_recursive_and_counts_non_images(tmp_path):
    for rel in ["b/2.jpg", "b/10.jpg", "a.png", "c/d/e.tif", ".hidden/x.jpg", ".x.jpg"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
    (tmp_path / "readme.md").write_text("hi")
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "noext")
    stats = inputs.Enumeration()
    got = [os.path.relpath(i.path, tmp_path) for i in inputs.enumerate_inputs([str(tmp_path)], stats=stats)]
    assert got == ["a.png", "b/10.jpg", "b/2.jpg", "c/d/e.tif", "noext"]
    assert stats.skipped_non_images == 1


@pytest.mark.parametrize("null", [False, True])
def test_read_path_list_streams_any_separator(null):
    names = ["a b.jpg", "dir/ü.png", "x\\y.jpg"]
    sep = b"\0" if null else b"\n"
    data = sep.join(os.fsencode(n) for n in names) + (b"" if null else b"\r\n")
    assert list(inputs.read_path_list(io.BytesIO(data), null=null)) == names
    assert list(inputs.read_path_list(io.BytesIO(b""), null=null)) == []


def test_mirror_paths_stay_inside_and_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert layout.mirror_path("photos/a/x.jpg") == os.path.join("photos", "a", "x.jpg")
    assert layout.mirror_path("./photos/../photos/a/x.jpg") == os.path.join("photos", "a", "x.jpg")
    out = layout.mirror_path("../../etc/passwd")
    assert not out.startswith("..") and out.startswith("_abs")
    assert layout.mirror_path("/etc/passwd") == os.path.join("_abs", "etc", "passwd")
    # a local folder called _abs cannot collide with outside paths
    assert layout.mirror_path("_abs/etc/passwd") == os.path.join("_rel", "_abs", "etc", "passwd")


def test_decode_kinds(tmp_path, sample):
    rgb = decode.decode_image(str(SAMPLES / "chelsea.png"))
    assert rgb.dtype == np.uint8 and rgb.shape == (300, 451, 3)
    assert np.array_equal(rgb, sample("chelsea.png"))  # RGB order
    gray = decode.decode_image(str(SAMPLES / "camera.png"))
    assert gray.shape == (512, 512)


def test_decode_errors_are_one_line_reasons(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="no such file"):
        decode.decode_image(str(tmp_path / "nope.jpg"))
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        decode.decode_image(str(tmp_path / "z.png"))
    (tmp_path / "t.txt").write_text("plain text")
    with pytest.raises(InputError, match="not an image"):
        decode.decode_image(str(tmp_path / "t.txt"))
    with pytest.raises(InputError, match="is a directory"):
        decode.decode_image(str(tmp_path))

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(os, "open", denied)
    with pytest.raises(InputError, match="permission denied"):
        decode.decode_image(str(SAMPLES / "coffee.jpg"))


def test_pixel_limit_refuses_before_decoding(tmp_path):
    with pytest.raises(InputError, match="over the limit"):
        decode.decode_image(str(SAMPLES / "coffee.jpg"), max_pixels=600 * 400 - 1)
    with pytest.raises(InputError, match="over the limit"):
        decode.decode_image(str(SAMPLES / "astronaut.png"), max_pixels=1000)
    assert decode.decode_image(str(SAMPLES / "coffee.jpg"), max_pixels=600 * 400).shape == (400, 600, 3)
