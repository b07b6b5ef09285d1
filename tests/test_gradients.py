"""gradients: against a plain numpy reference on the sample photos, and closed-form cases."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import COLOUR, GRAY
from featx.errors import ParamError
from featx.extractors.gradients import Gradients
from featx.imageops import to_gray_float32

# --------------------------------------------------------------------------
# The reference: slow and plain (float64, explicit kernels, a loop over cells
# with np.histogram), written from the definition in the docstring.

KERNELS = {
    # (derivative taps across the axis, smoothing taps along it, divisor)
    "sobel": ([-1.0, 0.0, 1.0], [1.0, 2.0, 1.0], 8.0),
    "scharr": ([-1.0, 0.0, 1.0], [3.0, 10.0, 3.0], 32.0),
    "central": ([-1.0, 0.0, 1.0], [0.0, 1.0, 0.0], 2.0),
}


def reference_gradient(gray: np.ndarray, operator: str) -> tuple[np.ndarray, np.ndarray]:
    deriv, smooth, div = KERNELS[operator]
    g = np.asarray(gray, np.float64)
    h, w = g.shape
    p = np.pad(g, 1, mode="reflect")  # mirror without repeating the edge pixel
    dx = np.zeros((h, w))
    dy = np.zeros((h, w))
    for i in range(3):          # row offset -1..1
        for j in range(3):      # column offset -1..1
            win = p[i:i + h, j:j + w]
            dx += deriv[j] * smooth[i] * win
            dy += deriv[i] * smooth[j] * win
    return dx / div, dy / div


def reference_vector(image, operator="sobel", grid=(4, 4), bins=8, signed=True, norm="l2"):
    gray = to_gray_float32(image)
    dx, dy = reference_gradient(gray, operator)
    mag = np.hypot(dx, dy)
    turn = 360.0 if signed else 180.0
    width = turn / bins
    ang = np.degrees(np.arctan2(dy, dx)) % turn
    shifted = (ang + width / 2) % turn       # bin k centred on k*width
    h, w = gray.shape
    rows, cols = grid
    out = np.zeros((rows, cols, bins))
    for r in range(rows):
        ys = [y for y in range(h) if y * rows // h == r]
        for c in range(cols):
            xs = [x for x in range(w) if x * cols // w == c]
            if not ys or not xs:
                continue
            cell = np.ix_(ys, xs)
            hist, _ = np.histogram(shifted[cell], bins=bins, range=(0.0, turn),
                                   weights=mag[cell])
            out[r, c] = hist / (len(ys) * len(xs))
    v = out.ravel()
    if norm == "l1" and v.sum() > 0:
        v = v / np.abs(v).sum()
    elif norm == "l2" and v.any():
        v = v / np.linalg.norm(v)
    return v


PARAM_SETS = [
    dict(),  # sobel, 4x4, 8 signed bins, l2
    dict(operator="scharr", grid=(3, 5), bins=12, signed=False, norm="l1"),
    dict(operator="central", grid=(2, 2), bins=6, signed=True, norm="none"),
    dict(operator="sobel", grid=(1, 1), bins=9, signed=False, norm="none"),
]


@pytest.mark.parametrize("params", PARAM_SETS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "defaults")
@pytest.mark.parametrize("name", COLOUR + GRAY)
def test_matches_reference_on_photos(sample, name, params):
    img = sample(name)
    ext = Gradients.create(**params)
    v = ext.extract(img)
    full = dict(operator="sobel", grid=(4, 4), bins=8, signed=True, norm="l2") | params
    ref = reference_vector(img, **full)
    assert v.dtype == np.float32 and v.shape == ref.shape
    assert ext.output_spec(*img.shape[:2]).shape == v.shape
    assert np.abs(ref).max() > 0
    # float32 gradients vs float64 reference: ~1e-7 relative
    scale = np.abs(ref).max()
    assert np.abs(v - ref).max() <= 1e-5 * scale


def test_grid_boundaries_are_integer_splits():
    # a 7x10 grid over a 23x31 image: the reference loops cell by cell
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (23, 31), dtype=np.uint8)
    ext = Gradients.create(grid=(7, 10), bins=5, norm="none")
    ref = reference_vector(img, grid=(7, 10), bins=5, norm="none")
    np.testing.assert_allclose(ext.extract(img), ref, rtol=1e-5, atol=1e-5)


# --------------------------------------------------------------------------
# Closed-form cases


def step_image(h=40, w=40, at=20, low=0, high=200, vertical=True):
    img = np.full((h, w), low, np.uint8)
    if vertical:
        img[:, at:] = high
    else:
        img[at:, :] = high
    return img


@pytest.mark.parametrize("operator", ["sobel", "scharr", "central"])
def test_vertical_step_edge_votes_into_horizontal_bin(operator):
    # dark left, bright right: the gradient points right (0 degrees), bin 0;
    # two columns of |dx| = 200/2 (the operators are scaled to derivatives)
    img = step_image()
    hist = Gradients.create(operator=operator, grid=(1, 1), norm="none").histograms(img)
    expected = np.zeros(8, np.float32)
    expected[0] = 40 * 2 * 100.0 / (40 * 40)
    np.testing.assert_allclose(hist[0, 0], expected, rtol=1e-6, atol=0)


def test_step_edge_polarity_signed_and_unsigned():
    img = step_image(low=200, high=0)            # bright left: gradient points left
    signed = Gradients.create(grid=(1, 1), norm="l1").extract(img)
    unsigned = Gradients.create(grid=(1, 1), norm="l1", signed=False).extract(img)
    assert signed[4] == pytest.approx(1.0) and signed.sum() == pytest.approx(1.0)
    assert unsigned[0] == pytest.approx(1.0)
    horizontal = step_image(vertical=False)      # bright bottom: gradient points down (y down)
    v = Gradients.create(grid=(1, 1), norm="l1").extract(horizontal)
    assert v[2] == pytest.approx(1.0)


def smooth_edge(angle_deg, size=128):
    """A blurred straight edge through the centre whose gradient points at
    ``angle_deg`` (x right, y down), 16-bit so that rounding does not bend it."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    t = np.radians(angle_deg)
    d = (xx - size / 2) * np.cos(t) + (yy - size / 2) * np.sin(t)
    img = 0.5 + 0.4 * np.tanh(d / 3.0)
    return np.round(img * 65535).astype(np.uint16)


@pytest.mark.parametrize("angle,signed,expected", [
    (40, True, 1), (100, True, 2), (280, True, 6), (170, True, 4),
    (300, False, 5), (40, False, 2), (10, False, 0),
])
def test_rotated_edge_lands_in_its_bin(angle, signed, expected):
    ext = Gradients.create(grid=(4, 4), norm="none", signed=signed, operator="scharr")
    hist = ext.histograms(smooth_edge(angle))
    # the central cells: away from the border, where mirroring bends the edge
    votes = hist[1:3, 1:3].sum(axis=(0, 1))
    assert np.argmax(votes) == expected
    assert votes[expected] > 0.999 * votes.sum()


@pytest.mark.parametrize("norm", ["none", "l1", "l2"])
@pytest.mark.parametrize("shape", [(50, 70), (50, 70, 3), (1, 1), (2, 3)])
def test_constant_image_gives_zeros(norm, shape):
    v = Gradients.create(norm=norm).extract(np.full(shape, 123, np.uint8))
    assert v.dtype == np.float32 and v.shape == (128,)
    assert np.all(v == 0)


def test_fixed_length_whatever_the_size(sample):
    ext = Gradients.create(grid=(3, 2), bins=5)
    for name in COLOUR + GRAY:
        img = sample(name)
        assert ext.extract(img).shape == (30,)
        assert ext.output_spec(*img.shape[:2]).length == 30
    assert len(ext.output_spec(10, 10).columns) == 30
    assert ext.extract(np.zeros((3, 2), np.uint8)).shape == (30,)


def test_norms(sample):
    img = sample("chelsea.png")
    l1 = Gradients.create(norm="l1").extract(img)
    l2 = Gradients.create(norm="l2").extract(img)
    raw = Gradients.create(norm="none").extract(img)
    assert np.all(raw >= 0) and raw.max() > 1.0            # gray levels per pixel
    assert l1.sum() == pytest.approx(1.0, rel=1e-5)
    assert np.linalg.norm(l2) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(l1, raw / raw.sum(), rtol=1e-5)


def test_sixteen_bit_gives_the_same_numbers(sample):
    img = sample("coffee.jpg")
    v8 = Gradients.create().extract(img)
    v16 = Gradients.create().extract(img.astype(np.uint16) * 257)
    # the same pixels on the 0-255 scale up to float32 rounding; a pixel
    # whose orientation sits within ~1e-5 degrees of a bin edge may move
    np.testing.assert_allclose(v16, v8, atol=1e-4)


def test_deterministic(sample):
    img = sample("rocket.jpg")
    ext = Gradients.create(operator="scharr")
    a = ext.extract(img)
    b = Gradients.create(operator="scharr").extract(img.copy())
    assert a.tobytes() == b.tobytes()


def test_render_shows_orientation_as_hue():
    import cv2

    img = step_image()
    full = Gradients.create().render(img)
    pic = full[:40, :40]                                # the field; the caption is below it
    assert full.shape[0] > 40 and pic.dtype == np.uint8
    hsv = cv2.cvtColor(pic, cv2.COLOR_RGB2HSV)
    edge = hsv[5, 19]                                   # on the edge, not on a grid line
    assert edge[2] == 255 and edge[0] == 0              # bright, red = 0 degrees
    assert hsv[5, 5, 2] == 0                            # flat: black
    down = cv2.cvtColor(Gradients.create().render(step_image(vertical=False))[:40, :40],
                        cv2.COLOR_RGB2HSV)[19, 5]
    assert down[2] == 255 and abs(int(down[0]) - 45) <= 1   # 90 degrees -> OpenCV hue 45


def test_render_photo(sample):
    fig = Gradients.create().figure(sample("camera.png"))
    pic = fig.crop("picture")
    assert pic.shape == (512, 512, 3) and pic.dtype == np.uint8 and pic.max() == 255


@pytest.mark.parametrize("values", [dict(operator="prewitt"), dict(norm="max"),
                                    dict(grid="0x4"), dict(bins=0), dict(cells=3)])
def test_bad_params_are_rejected(values):
    with pytest.raises(ParamError):
        Gradients.create(**values)


def test_bad_shape_is_an_input_error():
    from featx.errors import InputError

    with pytest.raises(InputError):
        Gradients.create().extract(np.zeros((4, 4, 2), np.uint8))
