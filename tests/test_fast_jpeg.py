"""The optional fast JPEG decoder (issue 25, item 4: ``featx[fast-jpeg]``, simplejpeg).

Where simplejpeg is installed featx decodes 8-bit sequential colour JPEGs with it; the
pixels, the orientation, the shapes and every refusal must be exactly those of the
OpenCV path, which stays the fallback (simplejpeg missing, ``FEATX_FAST_JPEG=0``, or any
file it refuses or warns about).  Each test decodes both ways and compares.
"""
from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from featx import decode
from featx.errors import InputError


def _photo(w: int = 803, h: int = 611, seed: int = 0) -> np.ndarray:
    """A noisy RGB picture with structure (odd sizes: the reductions round up)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (w + h)], -1).astype(np.float32)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


def _save(path, rgb: np.ndarray, **pil) -> str:
    from PIL import Image

    Image.fromarray(rgb).save(path, "JPEG", quality=90, **pil)
    return str(path)


def _exif(orientation: int, typ: int = 3) -> bytes:
    """An APP1 EXIF segment holding an orientation tag of the given TIFF type."""
    value = struct.pack("<HH", orientation, 0) if typ == 3 else struct.pack("<I", orientation)
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, typ, 1) \
        + value + b"\0\0\0\0"
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def _with_exif(src: str, dst, orientation: int, typ: int = 3) -> str:
    data = open(src, "rb").read()
    dst.write_bytes(data[:2] + _exif(orientation, typ) + data[2:])
    return str(dst)


def _both(monkeypatch, path: str, need, lenient: bool = False):
    """(fast result or exception, OpenCV result or exception), and whether simplejpeg ran."""
    sj = pytest.importorskip("simplejpeg")
    calls = []
    real = sj.decode_jpeg

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    out = []
    for fast in (True, False):
        monkeypatch.setattr(decode, "FAST_JPEG", fast)
        monkeypatch.setattr(sj, "decode_jpeg", spy)
        try:
            out.append(decode.decode_image(path, min_size=need, lenient=lenient))
        except InputError as exc:
            out.append(exc)
    return out[0], out[1], bool(calls)


def _same(a, b) -> None:
    if isinstance(b, Exception):
        assert isinstance(a, InputError) and str(a) == str(b) and a.hint == b.hint
    else:
        assert isinstance(a, np.ndarray), a
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)


NEEDS = [None, (300, 200), (150, 100), (60, 40)]      # scales 1, 2, 4, 8 of 803x611


@pytest.mark.parametrize("need", NEEDS, ids=lambda n: "full" if n is None else "%dx%d" % n)
@pytest.mark.parametrize("kind", ["baseline", "progressive", "gray", "cmyk", "420", "444"])
def test_the_fast_decoder_gives_opencvs_pixels(tmp_path, monkeypatch, kind, need):
    rgb = _photo()
    path = tmp_path / f"{kind}.jpg"
    if kind == "gray":
        from PIL import Image

        Image.fromarray(rgb).convert("L").save(path, "JPEG", quality=90)
    elif kind == "cmyk":
        from PIL import Image

        Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=90)
    elif kind == "progressive":
        _save(path, rgb, progressive=True)
    else:
        _save(path, rgb, subsampling={"baseline": -1, "420": 2, "444": 0}[kind])
    fast, ref, used = _both(monkeypatch, str(path), need)
    _same(fast, ref)
    # simplejpeg only where it was measured faster: sequential colour; CMYK: OpenCV's own conversion
    assert used == (kind in ("baseline", "420", "444"))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("need", [None, (150, 100)], ids=["full", "quarter"])
def test_exif_orientations_are_applied_as_opencv_applies_them(tmp_path, monkeypatch, orientation, need):
    src = _save(tmp_path / "a.jpg", _photo())
    path = _with_exif(src, tmp_path / "o.jpg", orientation)
    fast, ref, used = _both(monkeypatch, path, need)
    _same(fast, ref)
    assert used


@pytest.mark.parametrize("typ", [4, 9])
def test_an_orientation_tag_of_another_type_is_left_to_opencv(tmp_path, monkeypatch, typ):
    src = _save(tmp_path / "a.jpg", _photo())
    path = _with_exif(src, tmp_path / "o.jpg", 6, typ)
    fast, ref, used = _both(monkeypatch, path, (150, 100))
    _same(fast, ref)
    assert not used


def _damaged(tmp_path) -> str:
    data = bytearray(open(_save(tmp_path / "a.jpg", _photo(1203, 911)), "rb").read())
    sos = data.index(b"\xff\xda")
    mid = sos + (len(data) - sos) // 2
    data[mid:mid + 3000] = bytes(3000)
    (tmp_path / "bad.jpg").write_bytes(bytes(data))
    return str(tmp_path / "bad.jpg")


@pytest.mark.parametrize("need", [None, (150, 100)], ids=["full", "quarter"])
def test_damaged_data_is_refused_with_the_same_reason_and_kept_the_same_when_lenient(tmp_path, monkeypatch, need):
    path = _damaged(tmp_path)
    fast, ref, _ = _both(monkeypatch, path, need)
    assert isinstance(ref, InputError) and "Corrupt JPEG data" in str(ref)
    _same(fast, ref)
    fast, ref, _ = _both(monkeypatch, path, need, lenient=True)
    _same(fast, ref)


def test_truncated_and_trailing_bytes_as_before(tmp_path, monkeypatch):
    raw = open(_save(tmp_path / "a.jpg", _photo()), "rb").read()
    (tmp_path / "cut.jpg").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "tail.jpg").write_bytes(raw + b"\0\0ftypmp42" + bytes(range(256)) * 40)
    (tmp_path / "icc.jpg").write_bytes(raw[:2] + b"\xff\xe2\x00\x10ICC_PROFILE\x00\x01\x02" + raw[2:])
    for name in ("cut.jpg", "tail.jpg", "icc.jpg"):
        for need in (None, (150, 100)):
            fast, ref, _ = _both(monkeypatch, str(tmp_path / name), need)
            _same(fast, ref)
    assert isinstance(ref, np.ndarray)


def test_without_simplejpeg_opencv_decodes(tmp_path, monkeypatch):
    """The fallback: simplejpeg not installed (its import fails) is no error."""
    import sys

    path = _save(tmp_path / "a.jpg", _photo())
    monkeypatch.setattr(decode, "FAST_JPEG", True)
    monkeypatch.setattr(decode, "_SIMPLEJPEG", None)
    monkeypatch.setitem(sys.modules, "simplejpeg", None)      # import simplejpeg -> ImportError
    assert decode.fast_jpeg_decoder() is None
    img = decode.decode_image(path, min_size=(150, 100))
    import cv2

    ref = cv2.cvtColor(cv2.imread(path, cv2.IMREAD_REDUCED_COLOR_4), cv2.COLOR_BGR2RGB)
    assert np.array_equal(img, ref)


def test_featx_fast_jpeg_0_turns_it_off(tmp_path):
    import os
    import subprocess
    import sys

    code = "from featx import decode; print(decode.FAST_JPEG)"
    for value, want in (("0", "False"), ("1", "True")):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env=dict(os.environ, FEATX_FAST_JPEG=value), check=True)
        assert r.stdout.strip() == want
