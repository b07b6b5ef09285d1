"""SIFT extractor: geometry against known homographies on real photos,
keypoint layout, octave decoding, caps and ties, RootSIFT, dense grid."""
from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from featx.errors import ParamError
from featx.extractor import Keypoints, param_infos
from featx.extractors.sift import SIFT, decode_octave, dense_grid_axis
from featx.picture import dim


def _ratio_matches(d1, d2, ratio=0.75):
    """Lowe's ratio test by brute force: indices (i in d1, j in d2)."""
    a = d1.astype(np.float64)
    b = d2.astype(np.float64)
    dist = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    nn = np.argsort(dist, axis=1)[:, :2]
    dd = np.sqrt(np.maximum(np.take_along_axis(dist, nn, 1), 0))
    ok = dd[:, 0] < ratio * dd[:, 1]
    return np.flatnonzero(ok), nn[ok, 0]


def _homography(w, h, deg, scale, persp):
    th = math.radians(deg)
    c = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    r = np.array([[scale * math.cos(th), -scale * math.sin(th), 0],
                  [scale * math.sin(th), scale * math.cos(th), 0], [0, 0, 1]])
    p = np.array([[1, 0, 0], [0, 1, 0], [persp[0], persp[1], 1]])
    return np.linalg.inv(c) @ p @ r @ c


# Measured (OpenCV 4.14) with this warp (25 deg, x0.8, perspective 3e-4/-2e-4), ratio 0.75,
# fraction of matches within 3 px of the true position:
#   chelsea 0.980 (251 matches), astronaut 0.968 (587), coffee 0.954 (263),
#   camera 0.978 (368), rocket 0.908 (131); RootSIFT: 0.984, 0.976, 0.970, 0.989, 0.884.
# The thresholds below keep a margin: >= 0.85 of matches and >= 100 matches.
@pytest.mark.parametrize("name,root", [("chelsea.png", False), ("astronaut.png", True),
                                       ("coffee.jpg", False), ("camera.png", True)])
def test_matches_agree_with_known_homography(sample, name, root):
    import cv2

    img = sample(name)
    h, w = img.shape[:2]
    hmat = _homography(w, h, 25.0, 0.8, (3e-4, -2e-4))
    warped = cv2.warpPerspective(img, hmat, (w, h), flags=cv2.INTER_LINEAR)
    ext = SIFT.create(root_sift=root)
    k1, k2 = ext.extract(img), ext.extract(warped)
    i, j = _ratio_matches(k1.descriptors, k2.descriptors)
    assert len(i) >= 100, len(i)
    p = np.c_[k1.points[i, :2], np.ones(len(i))] @ hmat.T
    p = p[:, :2] / p[:, 2:]
    err = np.linalg.norm(p - k2.points[j, :2], axis=1)
    good = err < 3.0
    assert good.mean() >= 0.85, (name, good.mean())
    # Angle convention: the warp turns directions by +25 deg in image coordinates (y down),
    # so each keypoint's angle grows by ~25 deg (perspective adds a little spread).
    da = (k2.points[j[good], 3] - k1.points[i[good], 3] + 180) % 360 - 180
    assert abs(np.median(da) - 25.0) < 2.0, np.median(da)
    assert (np.abs(da - 25.0) < 15).mean() > 0.9
    # sizes scale by ~0.8 (local scale of the warp is close to 0.8 here)
    ratio = k2.points[j[good], 2] / k1.points[i[good], 2]
    assert 0.7 < np.median(ratio) < 0.92, np.median(ratio)


def test_keypoint_layout_and_types(sample):
    img = sample("chelsea.png")
    kp = SIFT.create().extract(img)
    assert isinstance(kp, Keypoints)
    assert kp.points.dtype == np.float32 and kp.descriptors.dtype == np.float32
    assert kp.points.shape == (len(kp), 6) and kp.descriptors.shape == (len(kp), 128)
    assert len(kp) > 300
    x, y, size, angle, resp, octave = kp.points.T
    h, w = img.shape[:2]
    assert (x >= -0.5).all() and (x <= w - 0.5).all() and (y >= -0.5).all() and (y <= h - 0.5).all()
    assert (angle >= 0).all() and (angle < 360).all()
    assert (np.diff(resp) <= 0).all()                         # by decreasing response
    assert set(np.unique(octave)) <= set(range(-1, 8)) and octave.min() == -1
    # OpenCV's raw scale: integer entries 0..255, L2 norm ~512
    d = kp.descriptors
    assert (d == np.round(d)).all() and d.min() >= 0 and d.max() <= 255
    np.testing.assert_allclose(np.linalg.norm(d, axis=1), 512, rtol=0.02)
    assert SIFT.create().output_spec(h, w).kind == "keypoints"
    assert SIFT.create().output_spec(h, w).shape == (None, 128)


def test_decode_octave_and_size_consistency(sample):
    import cv2

    # OpenCV packs octave (signed char) | layer << 8 | round(xi*255) << 16
    packed = np.array([(255) | (2 << 8) | (77 << 16), 0 | (1 << 8), 3 | (3 << 8) | (200 << 16), 254])
    np.testing.assert_array_equal(decode_octave(packed), [-1, 0, 3, -2])
    # On real detections: size = 2 sigma 2^((layer + xi)/S) 2^octave with layer in 1..S and
    # |xi| < 0.5, so size / 2^octave / (2 sigma) lies in [2^(0.5/S), 2^((S+0.5)/S)].
    ext = SIFT.create()
    kp = ext.extract(sample("camera.png"))
    rel = kp.points[:, 2] / np.exp2(kp.points[:, 5]) / (2 * 1.6)
    lo, hi = 2 ** (0.5 / 3), 2 ** (3.5 / 3)
    assert rel.min() >= lo - 1e-3 and rel.max() <= hi + 1e-3, (rel.min(), rel.max())
    # and the decoded octave agrees with OpenCV's own detections one by one
    raw = cv2.SIFT_create().detect(sample("camera.png"), None)
    mine = {(round(float(p[0]), 3), round(float(p[1]), 3), round(float(p[2]), 3)): p[5] for p in kp.points}
    for k in raw:
        o = k.octave & 255
        o = o - 256 if o >= 128 else o
        assert mine[(round(k.pt[0], 3), round(k.pt[1], 3), round(k.size, 3))] == o


def _blob_grid():
    """Identical Gaussian blobs on a grey field, 32 px apart: many exact response ties."""
    img = np.full((160, 160), 100.0)
    yy, xx = np.mgrid[0:160, 0:160]
    for cy in range(32, 160, 32):
        for cx in range(32, 160, 32):
            img += 120 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 3.0 ** 2))
    return np.clip(img, 0, 255).astype(np.uint8)


def test_max_keypoints_keeps_strongest_with_deterministic_ties(sample):
    img = sample("coffee.jpg")
    full = SIFT.create().extract(img)
    capped = SIFT.create(max_keypoints=100).extract(img)
    assert len(full) > 100 and len(capped) == 100
    np.testing.assert_array_equal(capped.points, full.points[:100])
    np.testing.assert_array_equal(capped.descriptors, full.descriptors[:100])
    assert capped.points[-1, 4] >= full.points[100:, 4].max()
    # ties: equal responses are ordered by x, then y
    kp = SIFT.create().extract(_blob_grid())
    pts = kp.points
    groups = {}
    for row in pts:
        groups.setdefault(float(row[4]), []).append(row)
    tied = [np.array(g) for g in groups.values() if len(g) > 1]
    assert tied and max(len(g) for g in tied) >= 4
    for g in tied:
        keys = [tuple(r[[0, 1, 2, 3, 5]]) for r in g]
        assert keys == sorted(keys)
    again = SIFT.create(max_keypoints=len(kp) - 3).extract(_blob_grid())
    np.testing.assert_array_equal(again.points, pts[:len(kp) - 3])


def test_flat_image_is_empty_not_an_error():
    for img in (np.full((120, 160), 128, np.uint8), np.full((64, 64, 3), 77, np.uint8)):
        kp = SIFT.create().extract(img)
        assert len(kp) == 0
        assert kp.points.shape == (0, 6) and kp.points.dtype == np.float32
        assert kp.descriptors.shape == (0, 128) and kp.descriptors.dtype == np.float32
        kp = SIFT.create(root_sift=True, max_keypoints=5).extract(img)
        assert kp.descriptors.shape == (0, 128)


def test_root_sift(sample):
    img = sample("astronaut.png")
    raw = SIFT.create().extract(img)
    root = SIFT.create(root_sift=True).extract(img)
    np.testing.assert_array_equal(raw.points, root.points)
    d = raw.descriptors.astype(np.float64)
    np.testing.assert_allclose(root.descriptors, np.sqrt(d / d.sum(1, keepdims=True)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(np.linalg.norm(root.descriptors, axis=1), 1.0, rtol=1e-5)


def test_deterministic_pickle_and_bit_depth(sample):
    img = sample("chelsea.png")
    ext = SIFT.create(max_keypoints=300)
    a = ext.extract(img)
    ext2 = pickle.loads(pickle.dumps(ext))
    b = ext2.extract(img)
    np.testing.assert_array_equal(a.points, b.points)
    np.testing.assert_array_equal(a.descriptors, b.descriptors)
    c = ext.extract(img.astype(np.uint16) * 257)          # 16-bit copy: same numbers
    np.testing.assert_array_equal(a.descriptors, c.descriptors)


# ---------------------------------------------------------------------------
# Dense SIFT


def test_dense_grid_formula_explicit():
    # W=40, step 8, scale 16: nx = (40-16)//8 + 1 = 4, x0 = (39 - 24)//2 = 7
    np.testing.assert_array_equal(dense_grid_axis(40, 8, 16), [7, 15, 23, 31])
    # H=30: ny = (30-16)//8 + 1 = 2, y0 = (29 - 8)//2 = 10
    np.testing.assert_array_equal(dense_grid_axis(30, 8, 16), [10, 18])
    # 256 px, step 8, scale 16: 31 points from 7 to 247
    g = dense_grid_axis(256, 8, 16)
    assert len(g) == 31 and g[0] == 7 and g[-1] == 247
    # image smaller than the patch: one centred point
    np.testing.assert_array_equal(dense_grid_axis(10, 8, 16), [4])
    ext = SIFT.create(dense=True)
    xy = ext.grid(30, 40)
    np.testing.assert_array_equal(xy, [[7, 10], [15, 10], [23, 10], [31, 10], [7, 18], [15, 18], [23, 18], [31, 18]])


@pytest.mark.parametrize("h,w,step,scale", [(300, 451, 8, 16), (256, 256, 8, 16), (100, 64, 5, 24),
                                            (12, 20, 4, 16), (480, 640, 16, 32)])
def test_dense_count_follows_from_step_scale_and_size(h, w, step, scale):
    rng = np.random.default_rng(h + w)
    img = rng.integers(0, 256, (h, w), dtype=np.uint8)
    ext = SIFT.create(dense=True, step=step, scale=scale)
    nx = max(1, (w - scale) // step + 1)
    ny = max(1, (h - scale) // step + 1)
    v = ext.extract(img)
    assert ext.output_spec(h, w).kind == "vector"
    assert ext.output_spec(h, w).shape == (ny * nx * 128,) == v.shape
    assert v.dtype == np.float32
    # every patch lies inside the image when the image is at least one patch wide
    xy = ext.grid(h, w)
    if w >= scale:
        assert xy[:, 0].min() - scale / 2 >= -1 and xy[:, 0].max() + scale / 2 <= w
    if h >= scale:
        assert xy[:, 1].min() - scale / 2 >= -1 and xy[:, 1].max() + scale / 2 <= h


def test_dense_descriptors_sit_on_the_grid(sample):
    import cv2

    img = sample("chelsea.png")[40:240, 100:300]                       # 200 x 200
    gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    ext = SIFT.create(dense=True, step=8, scale=16)
    v = ext.extract(img).reshape(-1, 128)
    # independent construction of the keypoints from the documented formula:
    # x_i = (199 - 23*8)//2 + 8 i = 7 + 8 i (24 points), size 16/6, upright, octave 0 layer 0
    xs = 7 + 8 * np.arange(24)
    kps = [cv2.KeyPoint(float(x), float(y), 16 / 6, 0) for y in xs for x in xs]
    _, ref = cv2.SIFT_create().compute(gray, kps)
    np.testing.assert_array_equal(v, ref)
    # translation: crop 8 px off the left and 16 px off the top; the grid starts at the same
    # offset, so interior descriptors reappear one column left and two rows up.
    crop = img[16:, 8:]                                                 # 184 x 192
    vc = ext.extract(crop).reshape(len(dense_grid_axis(184, 8, 16)), len(dense_grid_axis(192, 8, 16)), 128)
    assert vc.shape[:2] == (22, 23)
    full = v.reshape(24, 24, 128)
    inner = (slice(3, 19), slice(3, 20))                                # away from every border
    diff = np.abs(vc[inner].astype(np.int32) - full[5:21, 4:21].astype(np.int32))
    assert diff.max() <= 2, diff.max()
    # ...and do not reappear at the same index (the test can tell positions apart)
    assert np.abs(vc[inner].astype(np.int32) - full[3:19, 3:20].astype(np.int32)).mean() > 10


def test_dense_large_scale_uses_coarser_level(sample):
    img = sample("camera.png")
    ext = SIFT.create(dense=True, step=32, scale=64)
    v = ext.extract(img)
    pts = ext.describe(img).points
    # sigma_kp = 64/12 = 5.33: level round(3 log2(5.33/1.6)) = 5 -> octave 1
    assert (pts[:, 5] == 1).all() and np.allclose(pts[:, 2], 64 / 6)
    assert v.shape == (len(dense_grid_axis(512, 32, 64)) ** 2 * 128,)
    assert (np.linalg.norm(v.reshape(-1, 128), axis=1) > 0).mean() > 0.9


def test_dense_rejects_max_keypoints():
    with pytest.raises(ParamError, match="--max-keypoints"):
        SIFT.create(dense=True, max_keypoints=10)


# ---------------------------------------------------------------------------
# Params, render


def test_every_param_is_documented_with_range_or_choices():
    for info in param_infos(SIFT.Params):
        assert info.help, info.name
        if info.type in (int, float):
            assert info.min is not None, info.name
        if info.type is str and info.name != "codebook":
            assert info.choices, info.name
    names = [i.name for i in param_infos(SIFT.Params)]
    assert names[0] == "max_keypoints" and "encode" in names and "root_sift" in names


def test_render_draws_keypoints(sample):
    img = sample("chelsea.png")
    out = SIFT.create(max_keypoints=50).figure(img).crop("picture")
    assert out.dtype == np.uint8 and out.shape == img.shape
    changed = np.any(out != dim(img, 0.55), axis=2)    # drawn over the image dimmed
    assert 0.005 < changed.mean() < 0.5
    gray = SIFT.create().figure(sample("camera.png")).crop("picture")
    assert gray.shape == (512, 512, 3)
    flat = SIFT.create().figure(np.full((50, 60), 9, np.uint8)).crop("picture")
    assert (flat == 5).all()                           # 9 dimmed to 55 %: no keypoint
