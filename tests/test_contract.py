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
        assert out.shape == tuple(spec.shape), f"{name}: {out.shape} vs declared {spec.shape}"
        assert np.isfinite(out).all()
    # deterministic: a fresh instance gives the very same numbers
    again = run(cls(), a, b)
    if isinstance(out, Keypoints):
        assert np.array_equal(out.points, again.points) and np.array_equal(out.descriptors, again.descriptors)
    else:
        assert np.array_equal(out, again)
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
