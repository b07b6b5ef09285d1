"""Haar-like features: window mode against scikit-image, grid mode on closed-form images."""
from __future__ import annotations

import numpy as np
import pytest

from featx.errors import ParamError
from featx.extractor import param_infos
from featx.extractors.haar import HAAR_TYPES, Haar, parse_types, window_layout
from featx.imageops import resize, to_gray_uint8


def skimage_window(image, h, w, types=None, fit="stretch"):
    """The reference: scikit-image on the integral image of the same window."""
    from skimage.feature import haar_like_feature
    from skimage.transform import integral_image

    win = resize(to_gray_uint8(image), w, h, mode=fit)
    return haar_like_feature(integral_image(win), 0, 0, w, h, feature_type=types)


# ---------------------------------------------------------------------------
# window mode


@pytest.mark.parametrize("name", ["astronaut.png", "camera.png"])
def test_window_full_set_identical_to_skimage(sample, name):
    img = sample(name)
    ext = Haar.create(mode="window")
    got = ext.extract(img)
    ref = skimage_window(img, 24, 24)
    assert got.dtype == np.float32 and got.shape == (162336,) == ref.shape
    assert ext.output_spec(*img.shape[:2]).shape == (162336,)
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    assert np.abs(ref).max() < 2 ** 24  # integers, so float32 holds them exactly


@pytest.mark.parametrize("types, window, fit", [
    ("type-4,type-2-x", (16, 20), "stretch"),      # skimage honours the order given
    ("3y", (9, 30), "crop"),
    ("2y,3x", (24, 24), "crop"),
])
def test_window_types_order_and_shape(sample, types, window, fit):
    img = sample("rocket.jpg")
    ext = Haar.create(mode="window", types=types, window=window, fit=fit)
    got = ext.extract(img)
    ref = skimage_window(img, window[0], window[1], list(parse_types(types)), fit)
    np.testing.assert_array_equal(got, ref.astype(np.float32))
    assert ext.output_spec(5, 5).shape == got.shape


def test_window_coords_match_skimage():
    from skimage.feature import haar_like_feature_coord

    ext = Haar.create(mode="window", window=(7, 9), types="type-3-x,type-2-y,type-4")
    kinds, boxes = ext.window_coords()
    coords, ref_kinds = haar_like_feature_coord(9, 7, ["type-3-x", "type-2-y", "type-4"])
    assert list(kinds) == list(ref_kinds)
    for (r, c, dh, dw), kind, rects in zip(boxes, kinds, coords):
        ny, nx = {"type-3-x": (1, 3), "type-2-y": (2, 1), "type-4": (2, 2)}[kind]
        # first rectangle and whole extent agree
        assert rects[0][0] == (r, c) and rects[0][1] == (r + dh - 1, c + dw - 1)
        last = max(p[1] for p in rects)
        assert last == (r + ny * dh - 1, c + nx * dw - 1)


@pytest.mark.parametrize("t", HAAR_TYPES)
def test_window_layout_counts(t):
    from skimage.feature import haar_like_feature_coord

    for h, w in [(4, 5), (6, 3), (10, 10)]:
        ref, _ = haar_like_feature_coord(w, h, t)
        assert len(window_layout(h, w, t)) == len(ref)
        assert Haar.create(mode="window", types=t, window=(h, w)).output_spec(1, 1).shape == (len(ref),)


def test_window_sign_convention():
    """A bright right half: type-2-x features split on it are positive (sum(+) - sum(-))."""
    img = np.zeros((24, 24), np.uint8)
    img[:, 12:] = 200
    ext = Haar.create(mode="window", types="type-2-x")
    kinds, boxes = ext.window_coords()
    f = ext.extract(img)
    i = np.flatnonzero((boxes[:, 0] == 0) & (boxes[:, 1] == 0) & (boxes[:, 2] == 24)
                       & (boxes[:, 3] == 12))[0]
    assert f[i] == 24 * 12 * 200
    assert f.min() >= 0


def test_window_8_and_16_bit_agree(sample):
    img = sample("astronaut.png")
    ext = Haar.create(mode="window", types="type-2-x,type-4")
    np.testing.assert_array_equal(ext.extract(img), ext.extract(img.astype(np.uint16) * 257))


# ---------------------------------------------------------------------------
# grid mode: closed-form images


def step_image(h=96, w=128, edge=64, lo=40, hi=200, vertical=True):
    """``lo`` before the edge, ``hi`` from it on (columns if vertical, else rows)."""
    img = np.full((h, w), lo, np.uint8)
    if vertical:
        img[:, edge:] = hi
    else:
        img[edge:, :] = hi
    return img


def test_grid_vertical_step_closed_form():
    """A vertical step edge: type-2-x responds Δ·(1 - |x - edge| / s), the others ~0."""
    img = step_image()
    ext = Haar.create(min_scale=4, n_scales=3)
    maps = ext.response_maps(img)
    x = np.arange(128)
    for s in (4, 8, 16):
        want = 160.0 * np.clip(1 - np.abs(x - 64) / s, 0, None)
        np.testing.assert_allclose(maps[("type-2-x", s)], np.broadcast_to(want, (96, 128)),
                                   atol=1e-3)
        np.testing.assert_allclose(maps[("type-2-y", s)], 0, atol=1e-3)
        np.testing.assert_allclose(maps[("type-4", s)], 0, atol=1e-3)
        assert np.abs(maps[("type-3-x", s)]).max() == pytest.approx(80.0, abs=1e-3)
        np.testing.assert_allclose(maps[("type-3-y", s)], 0, atol=1e-3)
    # the strongest response of all is type-2-x, on the edge
    t, s = max(maps, key=lambda k: np.abs(maps[k]).max())
    assert t == "type-2-x"
    assert set(np.unique(np.argmax(maps[(t, s)], axis=1))) == {64}


def test_grid_horizontal_step_and_flat():
    img = np.full((64, 64), 30, np.uint8)
    img[40:, :] = 130
    maps = Haar.create(min_scale=2, n_scales=2).response_maps(img)
    y = np.arange(64)[:, None]
    for s in (2, 4):
        want = 100.0 * np.clip(1 - np.abs(y - 40) / s, 0, None)
        np.testing.assert_allclose(maps[("type-2-y", s)], np.broadcast_to(want, (64, 64)),
                                   atol=1e-3)
        np.testing.assert_allclose(maps[("type-2-x", s)], 0, atol=1e-3)
    flat = Haar.create().extract(np.full((50, 70, 3), 77, np.uint8))
    np.testing.assert_allclose(flat, 0, atol=1e-3)


def test_grid_pooling_finds_the_edge_cell():
    img = step_image(h=96, w=128, edge=80)   # edge inside column cell 2 (64..95)
    ext = Haar.create(grid=(3, 4), min_scale=4, n_scales=1, pool="abs")
    v = ext.extract(img)
    spec = ext.output_spec(96, 128)
    assert v.shape == spec.shape == (5 * 1 * 3 * 4,) and len(spec.columns) == 60
    cells = v.reshape(5, 3, 4)
    assert np.unravel_index(np.argmax(cells), cells.shape)[0] == 0  # type-2-x
    np.testing.assert_allclose(cells[0][:, 2], 160.0 * 4 / 32, atol=1e-3)   # triangle area / cell width
    np.testing.assert_allclose(cells[0][:, [0, 1, 3]], 0, atol=1e-3)
    assert spec.columns[2] == "type-2-x_s4_r0c2"
    signed = Haar.create(grid=(3, 4), min_scale=4, n_scales=1, pool="mean").extract(255 - img)
    np.testing.assert_allclose(signed.reshape(5, 3, 4)[0][:, 2], -20.0, atol=1e-3)


def test_grid_maps_against_brute_force(sample):
    """Random pixels and templates, summed directly from the reflected image."""
    import cv2

    img = sample("camera.png")[100:160, 200:290]
    ext = Haar.create(min_scale=3, n_scales=2)
    maps = ext.response_maps(img)
    f = img.astype(np.float64)
    pad = 40
    padded = cv2.copyMakeBorder(f, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    signs = {"type-2-x": [[-1, 1]], "type-2-y": [[-1], [1]], "type-3-x": [[-1, 2, -1]],
             "type-3-y": [[-1], [2], [-1]], "type-4": [[-1, 1], [1, -1]]}
    rng = np.random.default_rng(0)
    for _ in range(60):
        t = HAAR_TYPES[rng.integers(5)]
        s = (3, 6)[rng.integers(2)]
        y, x = rng.integers(60), rng.integers(90)
        sg = np.array(signs[t], float)
        ny, nx = sg.shape
        top, left = y - ny * s // 2 + pad, x - nx * s // 2 + pad
        total = 0.0
        for p in range(ny):
            for q in range(nx):
                block = padded[top + p * s:top + (p + 1) * s, left + q * s:left + (q + 1) * s]
                total += sg[p, q] * block.mean()
        want = total / (2 if "3" in t else 1) / (2 if t == "type-4" else 1)
        assert maps[(t, s)][y, x] == pytest.approx(want, abs=1e-3), (t, s, y, x)


@pytest.mark.parametrize("shape", [(480, 640, 3), (31, 17), (2, 3)])
def test_grid_length_fixed_for_any_size(shape):
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, shape).astype(np.uint8)
    ext = Haar.create(types="2x,4", grid=(4, 4), n_scales=2)
    v = ext.extract(img)
    assert v.dtype == np.float32 and v.shape == ext.output_spec(*shape[:2]).shape == (2 * 2 * 16,)
    assert np.isfinite(v).all()
    np.testing.assert_array_equal(v, ext.extract(img))


# ---------------------------------------------------------------------------
# parameters and pictures


def test_params_declared_with_help_and_ranges():
    infos = {i.name: i for i in param_infos(Haar.Params)}
    assert all(i.help for i in infos.values())
    assert infos["mode"].choices == ("grid", "window")
    assert infos["window"].default == (24, 24) and infos["window"].max == 40
    assert infos["cascade"].default == "frontalface_default"
    with pytest.raises(ParamError, match="unknown feature type"):
        Haar.create(types="type-5")
    with pytest.raises(ParamError, match="twice"):
        Haar.create(types="2x,type-2-x")
    with pytest.raises(ParamError):
        Haar.create(mode="regions")
    assert parse_types("2x, 3y ,4") == ("type-2-x", "type-3-y", "type-4")
    with pytest.raises(ParamError, match="holds no type-3-x"):
        Haar.create(mode="window", window=(2, 2), types="2x,3x")
    assert Haar.create(mode="window", window=(2, 2), types="2x,4").output_spec(9, 9).shape == (4,)
    with pytest.raises(ParamError, match="largest scale"):
        Haar.create(min_scale=300, n_scales=3)
    assert Haar.create(min_scale=256, n_scales=3).scales == (256, 512, 1024)


def test_render_boxes_and_response(sample):
    img = sample("astronaut.png")
    pic = Haar.create(show="boxes").figure(img).crop("picture")
    assert pic.shape == img.shape and pic.dtype == np.uint8
    green = (pic[..., 0] == 0) & (pic[..., 1] == 255) & (pic[..., 2] == 0)
    ys, xs = np.nonzero(green)
    assert 170 <= xs.min() <= 185 and 265 <= xs.max() <= 280   # the face box
    assert 55 <= ys.min() <= 85 and 150 <= ys.max() <= 175
    resp = Haar.create(show="response", types="type-2-y").figure(step_image(vertical=False)).crop("picture")
    assert resp.shape == (96, 128, 3) and resp.dtype == np.uint8
    assert tuple(resp[64, 50]) == (255, 0, 0)   # strongest positive: pure red, on the edge
    assert tuple(resp[10, 50]) == (255, 255, 255)  # flat: white
