"""hog: the numbers of skimage.feature.hog on the sample photos, sizes, edge cases."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import COLOUR, GRAY
from featx.errors import InputError, ParamError
from featx.extractors.hog import HOG
from featx.imageops import to_gray_float32, to_gray_uint8

#: Max abs difference allowed against scikit-image.  Measured on the sample
#: photos for every parameter set below: <= 2.3e-7 (float32 output, cell sums
#: in float64 here vs float32 there).  No pixel changes bin or channel: the
#: orientation is computed with the same float64 expression, so pixels on an
#: edge (0, 45, 90 degrees...) go to the same bin.
ATOL = 2e-6

PARAM_SETS = {
    "defaults": dict(),
    "cell16-block2-bins12-L1": dict(cell_size=16, block_size=2, bins=12, block_norm="L1"),
    "L2": dict(block_norm="L2"),
    "L1-sqrt": dict(block_norm="L1-sqrt"),
    "transform_sqrt": dict(transform_sqrt=True),
    "cell7-block2-bins7": dict(cell_size=7, block_size=2, bins=7),
}


def skimage_hog(image, ext: HOG):
    """scikit-image on the same pixels the extractor sees."""
    from skimage.feature import hog

    p = ext.params
    kw = dict(orientations=p.bins, pixels_per_cell=(p.cell_size, p.cell_size),
              cells_per_block=(p.block_size, p.block_size), block_norm=p.block_norm,
              transform_sqrt=p.transform_sqrt, feature_vector=True)
    if image.ndim == 3 and p.channels == "max":
        return hog(image, channel_axis=-1, **kw)
    if image.ndim == 3:
        return hog(to_gray_float32(image), **kw)   # luma, float32, as the extractor
    return hog(image, **kw)                        # grayscale photo: single channel


# colour photos with both channel settings; the grayscale photo once (2-D
# input takes the single-channel path whatever `channels` says)
PHOTOS = [(n, ch) for n in COLOUR for ch in ("max", "gray")] + [(n, "max") for n in GRAY]


@pytest.mark.parametrize("params", PARAM_SETS.values(), ids=PARAM_SETS.keys())
@pytest.mark.parametrize("name,channels", PHOTOS, ids=[f"{n}-{c}" for n, c in PHOTOS])
def test_matches_skimage_on_photos(sample, name, channels, params):
    img = sample(name)
    ext = HOG.create(channels=channels, **params)
    v = ext.extract(img)
    ref = skimage_hog(img, ext)
    assert v.dtype == np.float32
    assert v.shape == ref.shape == ext.output_spec(*img.shape[:2]).shape
    assert np.count_nonzero(ref) > ref.size // 4      # a real comparison, not zeros
    assert np.abs(v - ref).max() <= ATOL


def test_max_and_gray_differ_on_colour(sample):
    img = sample("astronaut.png")
    a = HOG.create(channels="max").extract(img)
    b = HOG.create(channels="gray").extract(img)
    assert np.abs(a - b).max() > 0.05


def test_grayscale_photo_is_one_channel(sample):
    gray = sample("camera.png")
    assert gray.ndim == 2
    a = HOG.create(channels="max").extract(gray)
    b = HOG.create(channels="gray").extract(gray)
    assert a.tobytes() == b.tobytes()
    # three equal channels: every channel ties, the first one is taken
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert HOG.create().extract(rgb).tobytes() == a.tobytes()


# --------------------------------------------------------------------------
# Sizes


@pytest.mark.parametrize("h,w,cs,bs,bins", [(37, 53, 8, 3, 9), (480, 640, 16, 2, 12),
                                           (24, 24, 8, 3, 9), (31, 100, 5, 1, 4)])
def test_output_spec_gives_the_exact_length(h, w, cs, bs, bins):
    rng = np.random.default_rng(h * w)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    ext = HOG.create(cell_size=cs, block_size=bs, bins=bins)
    expected = (h // cs - bs + 1) * (w // cs - bs + 1) * bs * bs * bins
    spec = ext.output_spec(h, w)
    assert spec.kind == "vector" and spec.shape == (expected,)
    v = ext.extract(img)
    assert v.shape == (expected,)
    np.testing.assert_allclose(v, skimage_hog(img, ext), atol=ATOL, rtol=0)


@pytest.mark.parametrize("h,w", [(23, 100), (100, 23), (5, 5)])
def test_too_small_is_an_input_error_naming_the_minimum(h, w):
    ext = HOG.create()                          # one block = 24x24 pixels
    assert ext.min_size() == (24, 24)
    with pytest.raises(InputError, match="24x24"):
        ext.extract(np.zeros((h, w), np.uint8))
    with pytest.raises(InputError, match="24x24"):
        ext.output_spec(h, w)


def test_output_kind_needs_no_size():
    ext = HOG.create(cell_size=256, block_size=3)      # 640x480 is too small for one block
    assert ext.output_kind() == "vector"
    with pytest.raises(InputError, match="768x768"):
        ext.output_spec(480, 640)


def test_sixteen_bit_gives_the_same_numbers(sample):
    img = sample("chelsea.png")
    v8 = HOG.create().extract(img)
    v16 = HOG.create().extract(img.astype(np.uint16) * 257)
    # equal pixels stay equal (ties and zero gradients are kept); values
    # differ by float32 rounding of v * 257 * 255 / 65535
    np.testing.assert_allclose(v16, v8, atol=1e-5)


def test_deterministic(sample):
    img = sample("coffee.jpg")
    a = HOG.create(transform_sqrt=True).extract(img)
    b = HOG.create(transform_sqrt=True).extract(img.copy())
    assert a.tobytes() == b.tobytes()


# --------------------------------------------------------------------------
# Closed-form cases


def test_vertical_step_edge_fills_bin_zero():
    img = np.zeros((32, 32), np.uint8)
    img[:, 12:] = 200                      # gradient along +x: 0 degrees
    hist = HOG.create(cell_size=8, bins=9).cell_histograms(img)
    # columns 11 and 12 (cell column 1) carry |g_col| = 200 on all 8 rows
    expected = np.zeros((4, 4, 9), np.float32)
    expected[:, 1, 0] = 2 * 8 * 200 / 64
    np.testing.assert_array_equal(hist, expected)
    # the opposite edge, at exactly 180 degrees, is the same unsigned orientation
    np.testing.assert_array_equal(HOG.create().cell_histograms(200 - img), expected)


@pytest.mark.parametrize("bins", [4, 8, 9, 12])
@pytest.mark.parametrize("direction", [(1, 0), (0, 1), (1, 1), (1, -1), (-1, 0), (2, 1)])
def test_ramps_on_bin_edges_match_skimage(bins, direction):
    # linear ramps have one orientation everywhere; 0/45/90/135 degrees fall
    # exactly on bin edges for 4, 8 and 12 bins: the tie must go the same way
    dy, dx = direction
    yy, xx = np.mgrid[-20:20, -20:20]
    img = (128 + dy * yy + dx * xx).astype(np.uint8)     # 68..188, no clipping
    ext = HOG.create(cell_size=8, block_size=2, bins=bins, block_norm="L1")
    ref = skimage_hog(img, ext)
    v = ext.extract(img)
    np.testing.assert_allclose(v, ref, atol=ATOL, rtol=0)
    # one bin carries everything in the interior cells
    hist = ext.cell_histograms(img)[1:-1, 1:-1]
    assert np.all(np.count_nonzero(hist, axis=2) == 1)


@pytest.mark.parametrize("bins", [1, 3, 7, 9, 11, 12, 13, 17, 36, 49, 97, 180])
def test_orientation_bins_next_to_every_edge(bins):
    from featx.extractors.hog import orientation_bins

    width = 180.0 / bins
    k = np.arange(bins + 1, dtype=np.float64)
    edges = k * width                       # as the definition computes them
    theta = np.concatenate([edges, np.nextafter(edges, -np.inf),
                            np.nextafter(edges, np.inf)])
    theta = theta[(theta >= 0) & (theta <= 180)]
    expected = np.searchsorted(edges, theta, side="right") - 1   # k*w <= theta < (k+1)*w
    np.testing.assert_array_equal(orientation_bins(theta, bins), expected)


def test_constant_image_gives_zeros():
    for norm in ("L1", "L1-sqrt", "L2", "L2-Hys"):
        v = HOG.create(block_norm=norm).extract(np.full((40, 48, 3), 77, np.uint8))
        assert v.shape == (3 * 4 * 81,) and np.all(v == 0)   # 5x6 cells, 3x4 blocks


def test_block_layout_is_block_row_col_cell_row_col_bin(sample):
    img = sample("rocket.jpg")
    ext = HOG.create(cell_size=16, block_size=2, bins=6, block_norm="L2")
    hist = ext.cell_histograms(img).astype(np.float64)
    v = ext.extract(img)
    nbr, nbc = hist.shape[0] - 1, hist.shape[1] - 1
    blocks = v.reshape(nbr, nbc, 2, 2, 6)
    r, c = 5, 17
    block = hist[r:r + 2, c:c + 2]
    np.testing.assert_allclose(blocks[r, c], block / np.sqrt((block ** 2).sum() + 1e-10),
                               rtol=1e-5)


# --------------------------------------------------------------------------
# Picture and parameters


def test_render_draws_edge_direction_glyphs():
    img = np.zeros((64, 64), np.uint8)
    img[:, 36:] = 255                          # vertical edge in cell column 4
    pic = HOG.create(cell_size=8).figure(img, underlay=0.0).crop("picture")   # glyphs on black
    assert pic.shape == (64, 64, 3) and pic.dtype == np.uint8
    cell = pic[8:16, 32:40, 0].astype(float)   # the edge's cells: vertical line glyphs
    assert cell.max() > 150                    # antialiased: no pixel is fully covered
    assert cell[:, 2:6].sum() > 0.95 * cell.sum()
    assert cell[3:5, :].sum() < 0.4 * cell.sum()
    assert pic[:, :24].max() == 0              # flat cells stay black


def test_render_photo(sample):
    img = sample("chelsea.png")
    pic = HOG.create().figure(img).crop("picture")
    assert pic.shape == (300, 451, 3) and pic.dtype == np.uint8 and pic.max() == 255
    dimmed = np.rint(to_gray_uint8(img)[:, 448:] * 0.4)
    assert (pic[:, 448:] == dimmed[..., None]).all()   # the 3 pixels beyond the last cell: no glyph


@pytest.mark.parametrize("values", [dict(block_norm="L3"), dict(cell_size=0),
                                    dict(channels="rgb"), dict(bins=0),
                                    dict(orientations=9)])
def test_bad_params_are_rejected(values):
    with pytest.raises(ParamError):
        HOG.create(**values)
