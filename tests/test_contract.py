"""One contract test, run over every registered extractor (as timm does for models)."""
from __future__ import annotations

import sys

import numpy as np
import pytest

from featx import registry
from featx.extractor import Extractor, Keypoints, build_params, param_infos, params_to_toml

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

NAMES = registry.names()


def frames(sample):
    """Two real, slightly different frames (a 2-pixel pan of a photo), 192x128."""
    import cv2

    img = sample("astronaut.png")
    a = cv2.resize(img[40:296, 60:444], (192, 128), interpolation=cv2.INTER_AREA)
    b = cv2.resize(img[40:296, 62:446], (192, 128), interpolation=cv2.INTER_AREA)
    return a, b


def run(ext: Extractor, a, b):
    if ext.temporal:
        ext.reset()
        ext.extract(a)
    return ext.extract(b)


def test_builtins_are_registered():
    assert {"gradients", "hog"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_contract(name, sample):
    cls = registry.get(name)
    assert issubclass(cls, Extractor) and cls.name == name
    assert cls.summary and len(cls.summary.splitlines()) == 1
    infos = param_infos(cls.Params)
    for info in infos:
        assert info.help, f"{name}: --{info.name} has no help text"
    ext = cls()  # builds with default params
    a, b = frames(sample)
    spec = ext.output_spec(*a.shape[:2])
    assert spec.kind == ext.output_kind()
    out = run(ext, a, b)
    if spec.kind == "keypoints":
        assert isinstance(out, Keypoints)
        assert out.points.dtype == np.float32 and out.points.shape[1] == 6
        assert out.descriptors.dtype == np.float32 and out.descriptors.shape == (len(out), spec.shape[1])
    else:
        out = np.asarray(out)
        assert out.dtype == np.float32, f"{name} returned {out.dtype}"
        assert len(out.shape) == len(spec.shape) and all(  # None: any number of rows (a detector's boxes)
            d is None or d == n for d, n in zip(spec.shape, out.shape)), f"{name}: {out.shape} vs declared {spec.shape}"
        assert np.isfinite(out).all()
    # deterministic: a fresh instance gives the very same numbers
    again = run(cls(), a, b)
    if isinstance(out, Keypoints):
        assert np.array_equal(out.points, again.points) and np.array_equal(out.descriptors, again.descriptors)
    else:
        assert np.array_equal(out, again)
    # a batch of preprocessed inputs gives what extract gives on the images (the pipeline
    # preprocesses each image as soon as it is decoded, then extracts in batches)
    if not ext.temporal:
        batch = ext.extract_batch([ext.preprocess(b), ext.preprocess(a)])
        assert len(batch) == 2
        for got, img in zip(batch, (b, a)):
            want = ext.extract(img)
            if isinstance(want, Keypoints):
                assert np.array_equal(got.points, want.points)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the pixels it needs from the decoder: None (every pixel) or a pair of positive ints
    for size in (ext.decode_size(None), ext.decode_size((96, 64)), ext.decode_size((96, 64), "crop")):
        assert size is None or (len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size))
    # parameters round-trip through the config format
    params = ext.params
    text = params_to_toml(params, table=name)
    data = tomllib.loads(text)[name]
    assert build_params(cls, data) == params


@pytest.mark.parametrize("name", NAMES)
def test_grayscale_and_16bit_inputs(name, sample):
    """Every extractor takes the documented pixel types: gray 2-D and 16-bit."""
    cls = registry.get(name)
    a, b = frames(sample)
    ext = cls()
    g8 = run(ext, a.mean(axis=2).astype(np.uint8), b.mean(axis=2).astype(np.uint8))
    c16 = run(cls(), a.astype(np.uint16) * 257, b.astype(np.uint16) * 257)
    c8 = run(cls(), a, b)
    if isinstance(c8, Keypoints):
        assert g8.points.dtype == np.float32
        assert np.allclose(c16.points, c8.points, atol=1e-3) and np.allclose(c16.descriptors, c8.descriptors,
                                                                              atol=1e-3)
        return
    assert np.asarray(g8).dtype == np.float32
    assert np.allclose(c16, c8, atol=1e-4, rtol=1e-4), f"{name}: 16-bit copy differs from the 8-bit one"


#: Strings that a hand-made TOML writer gets wrong: quotes, backslashes, newlines,
#: carriage returns, tabs, control characters, DEL, non-ASCII, TOML syntax.
AWKWARD = ['say "hi"', "C:\\models\\net.onnx", "two\nlines", "cr\rlf\r\n", "tab\there",
           "ctrl\x00\x01\x08\x0c\x1b\x1f", "del\x7f", "é ✓ \u2028", "# not a comment", "[not.a.table]",
           "'''", '"""', "\\u0041", ""]


def _values_to_try(info):
    """The default, the bounds of numbers, both flags, and every awkward string."""
    if info.type is str:
        return AWKWARD
    if info.type is bool:
        return [False, True]
    if info.type is tuple:
        lo = int(info.min if info.min is not None else 1)
        return [(lo, lo), (lo + 3, lo + 1)]
    vals = [v for v in (info.default, info.min, info.max) if v is not None]
    return [info.type(v) for v in vals] + ([1e-300, 1.5e300, -0.0] if info.type is float else [])


@pytest.mark.parametrize("name", NAMES)
def test_config_text_round_trips_every_value(name):
    """`featx info --as-config` writes every value of every parameter so that tomllib reads
    back exactly that value (a test of the TOML writer, so choices/ranges are bypassed)."""
    import dataclasses

    cls = registry.get(name)
    defaults = cls.Params()
    for info in param_infos(cls.Params):
        for value in _values_to_try(info):
            params = dataclasses.replace(defaults, **{info.name: value})
            text = params_to_toml(params, table=name)
            back = tomllib.loads(text)[name]
            key = info.name.replace("_", "-")
            assert back[key] == (list(value) if isinstance(value, tuple) else value), (key, value, text)
            assert set(back) == {i.name.replace("_", "-") for i in param_infos(cls.Params)
                                 if getattr(params, i.name) is not None}


def test_config_text_comments_survive_awkward_help():
    """Help texts become comments: newlines and control characters in them cannot break the file."""
    from dataclasses import dataclass

    from featx.extractor import param

    @dataclass(frozen=True)
    class P:
        label: str = param("x", "first line\nsecond line\r\nthird\x00 \x1b[1m bold = 1 \x7f")
        path: str | None = param(None, "an optional path\n[table] = 3")

    for label in AWKWARD:
        back = tomllib.loads(params_to_toml(P(label=label), table="odd name.x"))
        assert back == {"odd name.x": {"label": label}}
