"""Memory that does not grow with the photo (issue 14, item 2).

* ``gradients`` works in bands of rows and ``gabor`` in tiles on images over a
  megapixel: the same numbers as in one piece (gradients exactly, gabor to float32
  rounding), and a working memory that stays the same from 3 to 27 megapixels;
* a big JPEG is decoded straight into the array featx keeps (no second copy);
* a ``cnn`` batch holds network inputs, not photos.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from featx.extractors import gabor as gabor_mod
from featx.extractors import gradients as gradients_mod
from featx.extractors.gabor import BORDERS, Gabor
from featx.extractors.gradients import Gradients
from helpers import SAMPLES, ok
from test_gradients import PARAM_SETS, reference_vector


def _photo(sample, size):
    """A real photo brought to ``size`` (width, height), with a little noise."""
    import cv2

    img = cv2.resize(sample("rocket.jpg"), size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    img += np.random.default_rng(5).normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------------
# gradients in bands


@pytest.mark.parametrize("params", PARAM_SETS, ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "defaults")
def test_gradient_bands_give_the_whole_image_numbers(sample, monkeypatch, params):
    """Thin bands (every 9 or so rows, so that many band edges cross the photo) against
    the image in one piece and against the plain reference of test_gradients."""
    for name in ("coffee.jpg", "camera.png"):
        img = sample(name)
        ext = Gradients.create(**params)
        whole = ext.extract(img)
        monkeypatch.setattr(gradients_mod, "WHOLE_PIXELS", 0)
        monkeypatch.setattr(gradients_mod, "BAND_PIXELS", 9 * img.shape[1] + 5)
        assert len(ext.bands(*img.shape[:2])) > 40
        banded = ext.extract(img)
        monkeypatch.undo()
        # the gradients, orientations and bins are those of the whole image; only the
        # order of the float64 cell sums differs: at most one float32 step
        assert np.abs(banded.astype(np.float64) - whole).max() <= np.spacing(np.abs(whole)).max()
        ref = reference_vector(img, **(dict(operator="sobel", grid=(4, 4), bins=8, signed=True, norm="l2") | params))
        assert np.abs(banded - ref).max() <= 1e-5 * np.abs(ref).max()


def test_a_camera_photo_is_banded_and_unchanged(sample):
    img = _photo(sample, (1800, 1200))
    ext = Gradients.create()
    assert len(ext.bands(1200, 1800)) > 1
    saved = gradients_mod.WHOLE_PIXELS
    try:
        gradients_mod.WHOLE_PIXELS = 1 << 40
        whole = ext.extract(img)
    finally:
        gradients_mod.WHOLE_PIXELS = saved
    assert np.array_equal(ext.extract(img), whole)


# ---------------------------------------------------------------------------
# gabor in tiles


@pytest.mark.parametrize("border", sorted(BORDERS))
def test_gabor_tiles_are_the_same_convolution(sample, monkeypatch, border):
    """Tiles of 64-point transforms (so that a 150x100 photo is cut in many, its margins
    met at every edge) against skimage.filters.gabor and the one-piece transform, in
    every border mode; pooled statistics gathered tile by tile against the one-piece ones."""
    from skimage.filters import gabor

    from featx.imageops import to_gray_float32

    img = sample("coffee.jpg")[100:200, 250:400]
    common = dict(n_scales=2, n_orientations=3, frequency=0.2, border=border)
    maps_ext = Gabor.create(result="maps", response="all", **common)
    pooled_ext = Gabor.create(grid=(3, 4), **common)
    whole_maps, whole_pooled = maps_ext.extract(img), pooled_ext.extract(img)
    monkeypatch.setattr(gabor_mod, "WHOLE_PIXELS", 0)
    monkeypatch.setattr(gabor_mod, "TILE_DFT", 64)
    grid = maps_ext._tile_grid(100, 150)
    assert grid is not None and len(grid[1]) >= 6
    maps, pooled = maps_ext.extract(img), pooled_ext.extract(img)
    np.testing.assert_allclose(maps, whole_maps, rtol=0, atol=2e-5)
    np.testing.assert_allclose(pooled, whole_pooled, rtol=1e-5, atol=1e-5)
    gray = to_gray_float32(img).astype(np.float64)
    for k in (1, 5):
        info = maps_ext.kernel_info[k]
        re, im = gabor(gray, info.frequency, info.theta, sigma_x=info.sigma_x, sigma_y=info.sigma_y, mode=border)
        np.testing.assert_allclose(maps[..., 3 * k + 1], re, rtol=0, atol=1e-4)
        np.testing.assert_allclose(maps[..., 3 * k + 2], im, rtol=0, atol=1e-4)


def test_gabor_tiles_a_camera_photo_with_the_same_numbers(sample):
    img = _photo(sample, (1400, 1000))
    ext = Gabor.create(n_scales=2, n_orientations=4, stats="mean-std")
    assert ext._tile_grid(1000, 1400) is not None
    saved = gabor_mod.WHOLE_PIXELS
    try:
        gabor_mod.WHOLE_PIXELS = 1 << 40
        whole = ext.extract(img)
    finally:
        gabor_mod.WHOLE_PIXELS = saved
    np.testing.assert_allclose(ext.extract(img), whole, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------
# memory, measured (peak RSS in a fresh process)

_GROWTH = r'''
import gc, json, sys
import numpy as np
def rss():
    with open("/proc/self/status") as f:
        d = dict(l.split(":", 1) for l in f)
    return int(d["VmRSS"].split()[0]) * 1024, int(d["VmHWM"].split()[0]) * 1024
from featx import registry
from featx.engine import process as pipeline
pipeline.setup_worker_process()
import cv2
name, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
ext = registry.get(name).create(**json.loads(sys.argv[5]))
src = cv2.cvtColor(cv2.imread(sys.argv[4]), cv2.COLOR_BGR2RGB)
ext.extract(cv2.resize(src, (1200, 900)))        # imports, and the tile-size spectra of gabor
img = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
del src
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base, _ = rss()
ext.extract(img)
_, peak = rss()
print(json.dumps({"growth": peak - base, "image": img.nbytes}))
'''


def _growth(name: str, w: int, h: int, params: dict) -> dict:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc peak-RSS reset (clear_refs)")
    r = subprocess.run([sys.executable, "-c", _GROWTH, name, str(w), str(h), str(SAMPLES / "rocket.jpg"),
                        json.dumps(params)], capture_output=True, timeout=900)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name,flat,params", [("gradients", 16 << 20, {}),
                                              ("gabor", 64 << 20, {"n_scales": 2, "n_orientations": 2})])
def test_working_memory_does_not_grow_with_the_photo(name, flat, params):
    """What extract() adds to the peak on a 3-MP and on a 27-MP photo: about the same
    (bands / tiles), and far below the photo itself (81 MB of RGB at 27 MP); before,
    gradients added ~52 bytes and gabor ~60 bytes per pixel (1.4 GB and 1.6 GB here).
    Gabor runs a bank of 4 kernels, not 32: the tiling is the same code for any bank, and
    4 whole-image responses (complex64) would still be 860 MB here, so a bank that is
    not tiled fails as clearly, at an eighth of the time."""
    small, big = _growth(name, 2000, 1500, params), _growth(name, 6000, 4500, params)
    assert big["growth"] <= flat and small["growth"] <= flat, (small, big)
    assert big["growth"] <= small["growth"] + (4 << 20), (small, big)


_DECODE = r'''
import json, sys
def rss():
    with open("/proc/self/status") as f:
        d = dict(l.split(":", 1) for l in f)
    return int(d["VmRSS"].split()[0]) * 1024, int(d["VmHWM"].split()[0]) * 1024
from featx import decode
import cv2, numpy as np
decode.decode_image(sys.argv[2])                 # imports, decoder set-up
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base, _ = rss()
img = decode.decode_image(sys.argv[1])
_, peak = rss()
print(json.dumps({"growth": peak - base, "image": img.nbytes, "file": __import__("os").path.getsize(sys.argv[1])}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("fast", ["0", "1"])
def test_a_big_jpeg_is_in_memory_once(camera_photo, fast):
    """Decoding a 12-MP JPEG adds the picture to the peak, and no second copy of the picture
    (cv2.imdecode's own buffer copied into numpy, BGR to RGB as a new array) as it did.
    OpenCV's path (``FEATX_FAST_JPEG=0``) does not hold the file's bytes either (libjpeg reads
    the open file); the simplejpeg path (``featx[fast-jpeg]``) decodes from the bytes, which
    it holds while it decodes: 2.7 MB here, 1/13 of the picture."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc peak-RSS reset (clear_refs)")
    from featx import decode

    if fast == "1" and decode.fast_jpeg_decoder() is None:
        pytest.skip("simplejpeg is not installed (featx[fast-jpeg])")
    photo = camera_photo("coffee.jpg")
    r = subprocess.run([sys.executable, "-c", _DECODE, str(photo), str(SAMPLES / "coffee.jpg")],
                       capture_output=True, timeout=300, env={**os.environ, "FEATX_FAST_JPEG": fast})
    assert r.returncode == 0, r.stderr.decode()
    m = json.loads(r.stdout.decode().splitlines()[-1])
    assert m["image"] == 4000 * 3000 * 3 and m["file"] > 2 << 20
    held = m["file"] if fast == "1" else 0
    assert m["growth"] <= m["image"] + held + (2 << 20), m


_PEAK = r'''
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
'''


@pytest.mark.slow
def test_a_cnn_batch_holds_network_inputs_not_photos(tmp_path, camera_photo):
    """8 12-MP JPEGs decoded in full (--exact-decode): a batch of 8 costs about what a
    batch of 1 does (8 tensors of 600 KB, and the engine's activations); when a batch
    held the decoded photos, 8 of them added 8 x 36 MB (the bound below is 120 MB)."""
    import shutil

    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(8):
        shutil.copyfile(camera_photo("chelsea.png", seed=2), folder / f"p{i:02d}.jpg")

    def peak(batch: int) -> int:
        cmd = [sys.executable, "-m", "featx", "extract", "cnn", str(folder), "--exact-decode", "-j", "1", "-q",
               "--batch-size", str(batch), "-o", str(tmp_path / f"b{batch}.npy")]
        r = subprocess.run([sys.executable, "-c", _PEAK, *cmd], capture_output=True, timeout=600)
        ok(r)
        return int(r.stdout.decode().split()[-1])

    one, eight = peak(1), peak(8)
    assert eight - one < 120 << 20, (one >> 20, eight >> 20)
    np.testing.assert_allclose(np.load(tmp_path / "b8.npy"), np.load(tmp_path / "b1.npy"), atol=1e-4, rtol=0)


# ---------------------------------------------------------------------------
# one heap for all threads

_HEAPS = r"""
import ctypes, sys, threading
import numpy as np
if sys.argv[1] == "tuned":
    from featx.engine.process import tune_allocator
    tune_allocator()
held, ready = [], threading.Barrier(5)
def work():
    held.append(np.ones(1 << 16))   # a malloc from this thread
    ready.wait()
    ready.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads:
    t.start()
ready.wait()
libc = ctypes.CDLL("libc.so.6")
libc.fopen.restype = ctypes.c_void_p
f = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(f))
libc.fclose(ctypes.c_void_p(f))
ready.wait()
for t in threads:
    t.join()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_the_threads_of_a_tuned_process_share_one_heap(tmp_path):
    """With the trim threshold raised, each heap keeps its freed memory: a thread that
    allocates must not get a heap of its own (25-35 MB at the peak of a -j 1 cnn run).
    glibc's own report (malloc_info) counts the heaps; untuned, the same threads make
    several."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    heaps = {}
    for mode in ("tuned", "plain"):
        report = tmp_path / f"{mode}.xml"
        subprocess.run([sys.executable, "-c", _HEAPS, mode, str(report)], env=env, check=True, timeout=60)
        heaps[mode] = report.read_text().count("<heap nr=")
    assert heaps["plain"] > 1, heaps        # the check can see more than one heap
    assert heaps["tuned"] == 1, heaps
