"""Reduced JPEG decoding (issue 14, item 1).

The decoder is asked only for the pixels the extractor needs (libjpeg's DCT scaling, the
largest of 1/2, 1/4, 1/8 that leaves at least ``Extractor.decode_size``), the picture stays
upright, the numbers move by a bounded amount, and ``--exact-decode`` is the full decode.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

import featx
from featx import decode
from helpers import SAMPLES, featx as run_featx, ok, place

REDUCED = {1: "IMREAD_COLOR", 2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4",
           8: "IMREAD_REDUCED_COLOR_8"}


def _cv2_decode(path, k: int = 1) -> np.ndarray:
    """The file decoded by OpenCV itself at 1/k (EXIF applied), as RGB: the reference."""
    import cv2

    bgr = cv2.imdecode(np.fromfile(str(path), np.uint8), getattr(cv2, REDUCED[k]))
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _exif_jpeg(path, rgb: np.ndarray, orientation: int):
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(rgb).save(path, "JPEG", quality=92, exif=exif.tobytes())
    return path


# ---------------------------------------------------------------------------
# The reduction chosen


@pytest.mark.parametrize("size", [(1600, 1200), (1601, 1199), (1599, 1201), (1607, 905), (17, 9)],
                         ids=lambda s: "%dx%d" % s)
def test_the_reduction_leaves_the_pixels_needed_and_not_one_more_step(tmp_path, size):
    """At each boundary (exactly the pixels libjpeg gives at 1/k, or one more on either
    axis) decode_image picks the largest reduction that still leaves them: the shapes
    OpenCV really decodes at each reduction are the reference, and the pixels are OpenCV's."""
    import cv2

    w, h = size
    src = cv2.resize(cv2.imread(str(SAMPLES / "rocket.jpg")), (w, h), interpolation=cv2.INTER_AREA)
    path = tmp_path / "p.jpg"
    assert cv2.imwrite(str(path), src)
    real = {k: _cv2_decode(path, k) for k in REDUCED}
    for k in REDUCED:
        rh, rw = real[k].shape[:2]
        assert (rw, rh) == (math.ceil(w / k), math.ceil(h / k))   # libjpeg rounds up
        for need in ((rw, rh), (rw + 1, rh), (rw, rh + 1)):
            fits = [j for j in REDUCED if real[j].shape[1] >= need[0] and real[j].shape[0] >= need[1]]
            want = max(fits, default=1)
            got = decode.decode_image(str(path), min_size=need)
            assert got.shape == real[want].shape, (size, need, want)
            assert np.array_equal(got, real[want])
            if w >= need[0] and h >= need[1]:
                assert got.shape[1] >= need[0] and got.shape[0] >= need[1]


def test_other_formats_and_no_need_decode_in_full(tmp_path):
    import cv2

    png = decode.decode_image(str(SAMPLES / "astronaut.png"), min_size=(16, 16))
    assert png.shape == (512, 512, 3)
    assert decode.decode_image(str(SAMPLES / "coffee.jpg")).shape == (400, 600, 3)
    assert decode.decode_image(str(SAMPLES / "coffee.jpg"), min_size=(75, 50)).shape == (50, 75, 3)
    assert decode.decode_image(str(SAMPLES / "coffee.jpg"), min_size=(76, 50)).shape == (100, 150, 3)
    gray = tmp_path / "g.jpg"
    assert cv2.imwrite(str(gray), cv2.imread(str(SAMPLES / "camera.png"), cv2.IMREAD_GRAYSCALE))
    assert decode.decode_image(str(gray), min_size=(128, 128)).shape == (128, 128)   # stays gray


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_and_counted_at_reduced_sizes(tmp_path, orientation):
    """A JPEG stored 1600x1200 with each EXIF orientation: featx reads the orientation as
    OpenCV applies it, chooses the reduction on the upright axes (orientations 5-8 swap
    them), and the reduced picture is the upright one (close to the full upright decode
    averaged down; a turned or flipped picture is far from it)."""
    import cv2

    rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(SAMPLES / "coffee.jpg")), (1600, 1200),
                                  interpolation=cv2.INTER_CUBIC), cv2.COLOR_BGR2RGB)
    path = _exif_jpeg(tmp_path / "o.jpg", rgb, orientation)
    assert decode.jpeg_orientation(path.read_bytes()[:65536]) == orientation
    full = _cv2_decode(path)
    swap = orientation in (5, 6, 7, 8)
    assert full.shape[:2] == ((1600, 1200) if swap else (1200, 1600))
    # 350x250 fits the stored axes at 1/4 (400x300) but the upright ones only when not swapped
    need = (350, 250)
    k = decode.jpeg_reduction(1600, 1200, need, orientation)
    assert k == (2 if swap else 4)
    got = decode.decode_image(str(path), min_size=need)
    assert got.shape[1] >= need[0] and got.shape[0] >= need[1]
    assert got.shape == (full.shape[0] // k, full.shape[1] // k, 3)
    assert np.array_equal(got, _cv2_decode(path, k))
    down = cv2.resize(full, (got.shape[1], got.shape[0]), interpolation=cv2.INTER_AREA).astype(np.float64)
    assert np.abs(got - down).mean() < 2.0
    assert np.abs(got[::-1, ::-1] - down).mean() > 10.0  # the test would see a picture the wrong way round


def test_an_unreadable_orientation_takes_a_reduction_that_fits_both_ways():
    head = (SAMPLES / "coffee.jpg").read_bytes()[:65536]
    assert decode.jpeg_orientation(head) == 1            # no EXIF
    assert decode.jpeg_orientation(head[:3]) is None     # cut before the first segment
    assert decode.jpeg_reduction(1600, 1200, (350, 250), None) == 2
    assert decode.jpeg_reduction(1600, 1200, (350, 250), 1) == 4
    assert decode.jpeg_reduction(1600, 1200, (1601, 10), 1) == 1


# ---------------------------------------------------------------------------
# What each extractor declares


def test_declared_decode_sizes():
    from featx.extractors.cnn import CNN
    from featx.regions import RegionDetector

    hog = featx.open_extractor("hog")
    assert hog.decode_size(None) is None                       # every pixel
    assert hog.decode_size((256, 128), "crop") == (256, 128)
    assert RegionDetector().decode_size((256, 256)) is None    # boxes in the decoded pixels
    cnn = CNN.create()
    assert cnn.decode_size(None) == (256, 256)                 # 224 / 0.875
    assert cnn.decode_size((300, 200)) == (300, 200)           # --resize comes first
    assert CNN.create(fit="stretch").decode_size(None) == (224, 224)
    assert CNN.create(crop_fraction=0.5, input_size=(60, 100)).decode_size(None) == (120, 200)


def test_cnn_decode_size_is_the_fewest_pixels_its_crop_needs():
    """On an image of exactly the declared size, the crop the network's input is resized
    from is at least the input size (a shrink, never an enlargement); 2 % fewer pixels on
    either axis and it is not (the crop's own rounding may forgive a pixel or two)."""
    from featx.extractors.cnn import CNN

    for ext in (CNN.create(), CNN.create(crop_fraction=0.6, input_size=(200, 120)), CNN.create(fit="stretch")):
        w, h = ext.decode_size(None)
        tw, th = ext.input_size   # (width, height), as --input-size
        _, (_, _, cw, ch) = ext._prepare(np.zeros((h, w, 3), np.uint8))
        assert cw >= tw and ch >= th
        for less in ((int(w * 0.98), h), (w, int(h * 0.98))):
            _, (_, _, cw, ch) = ext._prepare(np.zeros((less[1], less[0], 3), np.uint8))
            assert cw < tw or ch < th, (less, cw, ch)


# ---------------------------------------------------------------------------
# Through the command line


def test_exact_decode_is_the_full_decode_path_and_the_choice_is_recorded(tmp_path, camera_photo):
    import cv2

    folder = tmp_path / "in"
    folder.mkdir()
    photos = [place(camera_photo("coffee.jpg", size=(1600, 1200)), folder / "a.jpg"),
              place(camera_photo("rocket.jpg", size=(1200, 1600), seed=1), folder / "b.jpg")]
    args = ["extract", "hog", folder, "--resize", "256x256", "-q"]
    ok(run_featx(*args, "-j", "1", "-o", tmp_path / "r.npy"))
    ok(run_featx(*args, "-j", "2", "-o", tmp_path / "r2.npy"))
    ok(run_featx(*args, "-j", "1", "--exact-decode", "-o", tmp_path / "x.npy"))
    reduced, exact = np.load(tmp_path / "r.npy"), np.load(tmp_path / "x.npy")
    assert np.array_equal(np.load(tmp_path / "r2.npy"), reduced)          # the workers reduce alike
    hog = featx.open_extractor("hog")
    for i, p in enumerate(photos):
        # --exact-decode: every pixel, then the same resize and call as before reduced decoding
        full = cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
        assert np.array_equal(exact[i], featx.extract(full, hog, resize=(256, 256)))
        # the default: decoded at 1/4 (400x300 >= 256x256; 1/8 would give 200x150)
        small = featx.read_image(p, hog, resize=(256, 256))
        assert small.shape[:2] == tuple(s // 4 for s in full.shape[:2])
        assert np.array_equal(reduced[i], featx.extract(small, hog, resize=(256, 256)))
        assert not np.array_equal(reduced[i], exact[i])

    def side(name):
        return json.loads((tmp_path / f"{name}.featx.json").read_text())["options"]["decode"]

    assert side("r.npy") == "reduced" and side("x.npy") == "exact"
    # an output is continued only the way it was made: its numbers must not mix
    r = run_featx(*args, "--exact-decode", "-o", tmp_path / "r.npy")
    assert r.returncode == 2 and b"JPEG decoding: at the size needed -> every pixel" in r.stderr, r.stderr
    ok(run_featx(*args, "-o", tmp_path / "r.npy"))                        # same way: up to date
    # an output made with every pixel decoded (as featx before 0.2 did): the message says how
    # to continue it as it was made
    r = run_featx(*args, "-o", tmp_path / "x.npy")
    assert r.returncode == 2 and b"JPEG decoding: every pixel -> at the size needed" in r.stderr
    assert b"pass --exact-decode to continue it as it was made" in r.stderr
    # an extractor that needs every pixel decodes in full either way, and says so
    ok(run_featx("extract", "gradients", folder, "-q", "-o", tmp_path / "g.npy"))
    assert side("g.npy") == "exact"


def test_regions_are_cut_from_the_full_decode(tmp_path, camera_photo):
    import cv2

    photo = camera_photo("astronaut.png", size=(1600, 1600))
    boxes = tmp_path / "boxes.csv"
    boxes.write_text(f"path,x,y,w,h\n{photo},400,200,600,600\n{photo},0,0,160,160\n")
    ok(run_featx("extract", "hog", "--regions", boxes, "--resize", "64x64", "-q", "-o", tmp_path / "h.npy"))
    full = cv2.cvtColor(cv2.imread(str(photo)), cv2.COLOR_BGR2RGB)
    hog = featx.open_extractor("hog")
    got = np.load(tmp_path / "h.npy")
    assert np.array_equal(got[0], featx.extract(np.ascontiguousarray(full[200:800, 400:1000]), hog, resize=(64, 64)))
    assert np.array_equal(got[1], featx.extract(np.ascontiguousarray(full[:160, :160]), hog, resize=(64, 64)))
    assert json.loads((tmp_path / "h.npy.featx.json").read_text())["options"]["decode"] == "exact"


# ---------------------------------------------------------------------------
# How much the numbers move on camera-sized photos (README, "What the extractor sees")

#: The bounds below hold the reduced decode on these photos, and the same test shows
#: that each is broken by a reduced path gone wrong: a picture left the wrong way round,
#: or decoded one reduction step too small.  Measured: see README ("Reduced JPEG decoding").
HOG_MEAN_CORR, HOG_MAX_ABS = 0.93, 0.5
CNN_MEAN_COS, CNN_MIN_COS = 0.985, 0.97


def _corr(a, b) -> float:
    return float(np.corrcoef(a.astype(np.float64), b.astype(np.float64))[0, 1])


def _cos(a, b) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@pytest.mark.slow
def test_reduced_decode_moves_the_numbers_within_bounds_on_12_mp_photos(tmp_path, camera_photo):
    """hog --resize 256x256 and cnn on 12-MP JPEGs (one stored turned, with EXIF
    orientation 6): reduced decode (default) against --exact-decode, through the CLI."""
    import cv2

    folder = tmp_path / "photos"
    folder.mkdir()
    made = [place(camera_photo("coffee.jpg"), folder / "a.jpg"), place(camera_photo("rocket.jpg", seed=1), folder / "b.jpg"),
            place(camera_photo("chelsea.png", seed=2), folder / "c.jpg"),
            place(camera_photo("astronaut.png", seed=3, orientation=6), folder / "d.jpg")]
    assert _cv2_decode(made[3], 8).shape == (375, 500, 3)   # upright 4000x3000, stored 3000x4000

    def run(name, *extra):
        out = tmp_path / f"{name}-{len(extra)}.npy"
        ok(run_featx("extract", *name.split(), folder, "-j", "1", "-q", "-o", out, *extra))
        return np.load(out)

    hog_r, hog_x = run("hog", "--resize", "256x256"), run("hog", "--resize", "256x256", "--exact-decode")
    emb_r, emb_x = run("cnn"), run("cnn", "--exact-decode")
    log_r, log_x = run("cnn --layer logits"), run("cnn --layer logits", "--exact-decode")

    corr = [_corr(a, b) for a, b in zip(hog_r, hog_x)]
    cos = [_cos(a, b) for a, b in zip(emb_r, emb_x)]
    assert np.mean(corr) >= HOG_MEAN_CORR and np.abs(hog_r - hog_x).max() <= HOG_MAX_ABS, corr
    assert np.mean(cos) >= CNN_MEAN_COS and min(cos) >= CNN_MIN_COS, cos
    # top-1 class: the same wherever the full decode's top class leads by more than half a
    # logit; between near-tied classes (chelsea: tiger cat 282 vs Egyptian cat 285, 0.2 apart)
    # it may swap, and stays within the full decode's top 2
    order = np.argsort(-log_x, axis=1)
    lead = log_x[np.arange(len(log_x)), order[:, 0]] - log_x[np.arange(len(log_x)), order[:, 1]]
    top_r = log_r.argmax(axis=1)
    assert all(t == o[0] for t, o, m in zip(top_r, order, lead) if m > 0.5), (top_r, order[:, :2], lead)
    assert all(t in o[:2] for t, o in zip(top_r, order)), (top_r, order[:, :2])

    # The bounds are tight enough to catch a reduced path gone wrong.
    hog, cnn = featx.open_extractor("hog"), featx.open_extractor("cnn")
    wrong = {"turned": lambda im: np.ascontiguousarray(im[::-1, ::-1]),
             "a step too small": lambda im: cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2),
                                                       interpolation=cv2.INTER_AREA)}
    for what, spoil in wrong.items():
        h = [_corr(featx.extract(spoil(featx.read_image(p, hog, resize=(256, 256))), hog, resize=(256, 256)), ref)
             for p, ref in zip(made, hog_x)]
        c = [_cos(featx.extract(spoil(featx.read_image(p, cnn)), cnn), ref) for p, ref in zip(made, emb_x)]
        assert np.mean(h) < HOG_MEAN_CORR and (np.mean(c) < CNN_MEAN_COS or min(c) < CNN_MIN_COS), (what, h, c)


# ---------------------------------------------------------------------------
# The memory budget counts what a reduced decode holds


def test_the_memory_budget_counts_the_reduced_decode(tmp_path, camera_photo):
    from featx.memory import MemoryBudget

    budget = MemoryBudget(1 << 40, lambda h, w: 0)
    full = budget.cost(4000, 3000, 3, 1, 2_000_000)
    eighth = budget.cost(4000, 3000, 3, 1, 2_000_000, scale=8)
    assert full == 2_000_000 + 2 * 4000 * 3000 * 3
    assert eighth == 2_000_000 + 2 * 500 * 375 * 3
    # a progressive JPEG's decoder holds every DCT coefficient, whatever the scale
    assert budget.cost(4000, 3000, 3, 1, 2_000_000, scale=8, progressive=True) == eighth + 2 * 3 * 4000 * 3000
    # through the CLI: a 12-MP photo that fits a small budget only when decoded reduced
    photo = camera_photo("coffee.jpg", size=(4000, 3000))
    args = ["extract", "hog", photo, "--resize", "256x256", "--max-memory", "24M", "-j", "1", "-q"]
    ok(run_featx(*args, "-o", tmp_path / "a.npy"))
    r = run_featx(*args, "--exact-decode", "-o", tmp_path / "b.npy")
    assert r.returncode == 1 and b"memory budget" in r.stderr, r.stderr


def test_a_truncated_jpeg_fails_and_trailing_bytes_do_not_matter(tmp_path, camera_photo):
    """libjpeg reading a file makes up the missing end of a truncated JPEG: featx still
    fails it (reduced or not), and a JPEG followed by other bytes (a motion photo's
    video) decodes as from memory."""
    photo = camera_photo("rocket.jpg", size=(1600, 1200))
    raw = photo.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(raw[:len(raw) // 2])
    (tmp_path / "tail.jpg").write_bytes(raw + b"\0\0ftypmp42" + bytes(range(256)) * 40)
    for need in (None, (256, 256)):
        with pytest.raises(decode.InputError, match="corrupt or truncated JPEG"):
            decode.decode_image(str(tmp_path / "cut.jpg"), min_size=need)
        got = decode.decode_image(str(tmp_path / "tail.jpg"), min_size=need)
        k = 4 if need else 1
        assert np.array_equal(got, _cv2_decode(photo, k))
    r = run_featx("extract", "hog", tmp_path / "cut.jpg", photo, "--resize", "256x256", "-q", "-o", tmp_path / "h.npy")
    assert r.returncode == 1 and b"cut.jpg: cannot decode: corrupt or truncated JPEG" in r.stderr, r.stderr
