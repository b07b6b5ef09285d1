"""Gabor filter bank: kernels and responses against scikit-image, gratings, pooling."""
from __future__ import annotations

import math

import numpy as np
import pytest

from featx.errors import ParamError
from featx.extractor import build_params, param_infos
from featx.extractors.gabor import BORDERS, Gabor, sigma_for_bandwidth

#: Largest absolute difference allowed against skimage.filters.gabor, on the
#: 0-255 scale (float32 FFT vs float64 direct convolution; measured <= 1e-5).
ATOL = 1e-4


def grating(h, w, frequency, theta, amplitude=100.0, mean=128.0):
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    u = x * math.cos(theta) + y * math.sin(theta)
    return mean + amplitude * np.cos(2 * math.pi * frequency * u)


# ---------------------------------------------------------------------------
# kernels


@pytest.mark.parametrize("values", [
    {},
    {"n_scales": 3, "n_orientations": 6, "frequency": 0.3, "scale_ratio": 1.5,
     "bandwidth": 1.4, "aspect": 0.5, "phase": 0.7, "n_stds": 2.5},
    {"n_scales": 2, "n_orientations": 5, "sigma": 3.0, "aspect": 2.0, "phase": -1.0},
])
def test_kernels_are_skimage_gabor_kernel(values):
    from skimage.filters import gabor_kernel

    ext = Gabor.create(**values)
    p = ext.params
    assert ext.n_kernels == p.n_scales * p.n_orientations
    for info, ker in zip(ext.kernel_info, ext.kernels):
        f = p.frequency / p.scale_ratio ** info.scale
        assert info.frequency == pytest.approx(f)
        assert info.theta == pytest.approx(info.orientation * math.pi / p.n_orientations)
        assert info.index == info.scale * p.n_orientations + info.orientation
        if p.sigma is None:
            sx = sigma_for_bandwidth(f, p.bandwidth)
            ref = gabor_kernel(f, info.theta, bandwidth=p.bandwidth, sigma_y=sx / p.aspect,
                               n_stds=p.n_stds, offset=p.phase)
        else:
            sx = p.sigma * p.scale_ratio ** info.scale
            ref = gabor_kernel(f, info.theta, sigma_x=sx, sigma_y=sx / p.aspect,
                               n_stds=p.n_stds, offset=p.phase)
        assert info.sigma_x == pytest.approx(sx)
        assert ker.shape == ref.shape
        np.testing.assert_allclose(ker, ref, rtol=0, atol=1e-15)


# ---------------------------------------------------------------------------
# responses against skimage.filters.gabor


def test_responses_match_skimage_on_photo(sample):
    """All three parts, including kernels larger than the crop (borders reflected)."""
    from skimage.filters import gabor

    crop = sample("camera.png")[112:176, 204:276]     # 64 x 72, the camera man's hands
    ext = Gabor.create(result="maps", response="all")
    maps = ext.extract(crop)
    assert maps.shape == (64, 72, 96) and maps.dtype == np.float32
    assert ext.output_spec(64, 72).shape == maps.shape
    assert ext.kernels[26].shape[0] > 64 and ext.kernels[26].shape[1] > 72
    worst = 0.0
    for k in (0, 5, 11, 18, 26):   # every scale; kernels 15x15 up to 79x79, larger than the crop
        info = ext.kernel_info[k]
        re, im = gabor(crop.astype(np.float64), info.frequency, info.theta,
                       sigma_x=info.sigma_x, sigma_y=info.sigma_y)
        for part, ref in enumerate((np.hypot(re, im), re, im)):
            worst = max(worst, float(np.abs(maps[..., 3 * k + part] - ref).max()))
    assert worst < ATOL
    assert np.abs(maps[..., 0]).max() > 10   # not trivially small


@pytest.mark.parametrize("border", sorted(BORDERS))
def test_border_modes_match_skimage(sample, border):
    from skimage.filters import gabor

    from featx.imageops import to_gray_float32

    img = sample("coffee.jpg")
    ext = Gabor.create(result="maps", response="all", n_scales=2, n_orientations=3,
                       frequency=0.2, border=border)
    gray = to_gray_float32(img[:40, :56])   # the same luma (float, 0-255) as featx
    maps = ext.extract(img[:40, :56])
    for k in (1, 5):
        info = ext.kernel_info[k]
        re, im = gabor(gray.astype(np.float64), info.frequency, info.theta,
                       sigma_x=info.sigma_x, sigma_y=info.sigma_y, mode=border)
        np.testing.assert_allclose(maps[..., 3 * k + 1], re, rtol=0, atol=ATOL)
        np.testing.assert_allclose(maps[..., 3 * k + 2], im, rtol=0, atol=ATOL)


def test_image_sizes_change_between_calls(sample):
    """The kernel spectra cache follows the image size."""
    img = sample("chelsea.png")
    ext = Gabor.create(result="maps", n_scales=2, n_orientations=2)
    a1 = ext.extract(img[:60, :80])
    b = ext.extract(img[:50, :90])
    a2 = ext.extract(img[:60, :80])
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(b, Gabor.create(result="maps", n_scales=2, n_orientations=2)
                               .extract(img[:50, :90]), atol=1e-6)


# ---------------------------------------------------------------------------
# gratings: closed form


@pytest.mark.parametrize("scale, orientation", [(0, 0), (1, 3), (2, 6), (3, 2), (1, 4)])
def test_grating_peaks_at_its_kernel(scale, orientation):
    ext = Gabor.create(result="maps")
    info = ext.kernel_info[scale * 8 + orientation]
    img = grating(256, 256, info.frequency, info.theta)
    maps = ext.response_maps(np.clip(np.rint(img), 0, 255).astype(np.uint8))
    centre = maps[64:192, 64:192].mean(axis=(0, 1))     # away from the borders
    assert int(np.argmax(centre)) == info.index
    # closed form: a grating of amplitude A matching the kernel gives |response| =
    # A / 2 * (sum of the kernel's envelope); that sum is 1 for an untruncated
    # kernel, ~0.95 for oblique ones (skimage crops them to a tighter box).
    from skimage.filters import gabor_kernel

    gain = np.abs(gabor_kernel(info.frequency, info.theta, sigma_x=info.sigma_x,
                               sigma_y=info.sigma_y)).sum()
    assert 0.9 < gain <= 1.0
    assert centre[info.index] == pytest.approx(50.0 * gain, rel=0.01)
    # the neighbours in orientation and scale respond less
    others = np.delete(centre, info.index)
    assert others.max() < 0.9 * centre[info.index]


def test_orientation_convention():
    """theta = 0 responds to vertical stripes (intensity varying along x)."""
    stripes = np.zeros((128, 128), np.uint8)
    stripes[:, ::4] = 255
    stripes[:, 1::4] = 255
    ext = Gabor.create(result="maps", n_scales=1, n_orientations=4, frequency=0.25)
    centre = ext.extract(stripes)[32:96, 32:96].mean(axis=(0, 1))
    assert int(np.argmax(centre)) == 0
    centre_t = ext.extract(np.ascontiguousarray(stripes.T))[32:96, 32:96].mean(axis=(0, 1))
    assert int(np.argmax(centre_t)) == 2   # theta = pi / 2


# ---------------------------------------------------------------------------
# pooling


@pytest.mark.parametrize("grid, stats, response", [((4, 4), "mean-std", "magnitude"),
                                                    ((3, 5), "mean", "all"),
                                                    ((1, 1), "mean-std", "imag")])
def test_pooled_is_cell_statistics_of_the_maps(sample, grid, stats, response):
    img = sample("rocket.jpg")[::4, ::4]          # 107 x 160: cells of unequal size
    common = dict(n_scales=2, n_orientations=4, response=response)
    maps = Gabor.create(result="maps", **common).extract(img)
    ext = Gabor.create(grid=grid, stats=stats, **common)
    v = ext.extract(img)
    spec = ext.output_spec(*img.shape[:2])
    assert v.dtype == np.float32 and v.shape == spec.shape and len(spec.columns) == v.size
    h, w = img.shape[:2]
    ys = np.rint(np.linspace(0, h, grid[0] + 1)).astype(int)
    xs = np.rint(np.linspace(0, w, grid[1] + 1)).astype(int)
    want = []
    for ch in range(maps.shape[2]):
        m = maps[..., ch].astype(np.float64)
        cells = [m[ys[i]:ys[i + 1], xs[j]:xs[j + 1]] for i in range(grid[0]) for j in range(grid[1])]
        want += [c.mean() for c in cells]
        if stats == "mean-std":
            want += [c.std() for c in cells]
    np.testing.assert_allclose(v, want, rtol=1e-5, atol=1e-4)
    n_parts = 3 if response == "all" else 1
    assert spec.columns[0] == f"s0_o0_{'mag' if response != 'imag' else 'imag'}_mean_r0c0"
    assert v.size == 8 * n_parts * (2 if stats == "mean-std" else 1) * grid[0] * grid[1]


@pytest.mark.parametrize("shape", [(480, 640, 3), (37, 23), (2, 3)])
def test_pooled_length_fixed_and_deterministic(shape):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, shape).astype(np.uint8)
    ext = Gabor.create(n_scales=2, n_orientations=4)
    v = ext.extract(img)
    assert v.shape == ext.output_spec(*shape[:2]).shape == (8 * 2 * 16,)
    assert np.isfinite(v).all()
    np.testing.assert_array_equal(v, ext.extract(img))


def test_16_bit_same_as_8_bit(sample):
    img = sample("astronaut.png")[:64, :64]
    ext = Gabor.create(n_scales=2, n_orientations=2)
    np.testing.assert_allclose(ext.extract(img.astype(np.uint16) * 257), ext.extract(img),
                               rtol=1e-5, atol=1e-4)


# ---------------------------------------------------------------------------
# parameters and pictures


def test_params_declared_with_help_and_ranges():
    infos = {i.name: i for i in param_infos(Gabor.Params)}
    assert all(i.help for i in infos.values())
    assert (infos["n_scales"].default, infos["n_orientations"].default) == (4, 8)
    assert infos["sigma"].optional and infos["border"].choices == tuple(BORDERS)
    with pytest.raises(ParamError):
        Gabor.create(frequency=0.6)
    with pytest.raises(ParamError):
        Gabor.create(border="symmetric")
    with pytest.raises(ParamError, match="coarsest kernel"):
        Gabor.create(frequency=0.01, n_scales=8)
    build_params(Gabor, {"frequency": 0.01, "n_scales": 3})  # sigma 56 px at f = 0.01 / 4: valid


def test_render_mosaic(sample):
    img = sample("camera.png")
    fig = Gabor.create(n_scales=2, n_orientations=3).figure(img)
    pic = fig.pixels
    assert pic.dtype == np.uint8 and pic.ndim == 3 and pic.shape[2] == 3
    # 2 rows of 96-px kernel tiles above 2 rows of 96-px response tiles (96 x 96 for camera.png)
    for part in ("kernels", "responses"):
        boxes = [fig.regions[f"{part} tile {s} {o}"] for s in range(2) for o in range(3)]
        assert all(b[2:] == (96, 96) for b in boxes)
        assert len({b[:2] for b in boxes}) == 6
    assert fig.regions["kernels"][1] + fig.regions["kernels"][3] <= fig.regions["responses"][1]
    assert pic.std() > 20
