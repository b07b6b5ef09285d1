#!/usr/bin/env python
"""Benchmark featx's haar, gabor and cascade detection against the raw libraries.

Everything runs in one process, baseline and featx interleaved, under the same
OpenCV thread count; each figure is the median of ``--repeats`` runs.  Ratios
are baseline time / featx time (higher is better for featx).

Targets (issue #4):

* haar window mode, full 24x24 set: >= 20x ``skimage.feature.haar_like_feature``
* gabor, 32 kernels on 640x480: >= 2x a plain loop of ``cv2.filter2D`` over the
  same 32 complex kernels, and >= 100x ``skimage.filters.gabor``
* cascade detection end to end: >= 0.9x a plain loop of decode + ``detectMultiScale``

Usage::

    python benchmarks/bench_haar_gabor.py [--repeats 7] [--threads 1] [--skimage-all]
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1e3


def interleaved(fns: dict, repeats: int) -> dict:
    """Median ms of each function, run in alternating order ``repeats`` times."""
    times = {k: [] for k in fns}
    keys = list(fns)
    for i in range(repeats):
        for k in (keys if i % 2 == 0 else keys[::-1]):
            t = time.perf_counter()
            fns[k]()
            times[k].append(time.perf_counter() - t)
    return {k: statistics.median(v) * 1e3 for k, v in times.items()}


def load_rgb(path: Path) -> np.ndarray:
    """Decode as featx's decoder does: 8-bit, RGB order."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def line(name: str, ours: float, base: float, base_name: str, target: float) -> None:
    ratio = base / ours
    ok = "ok" if ratio >= target else "BELOW TARGET"
    print(f"{name:<44} featx {ours:9.2f} ms   {base_name} {base:10.2f} ms   "
          f"ratio {ratio:7.2f}x  (target >= {target:g}x: {ok})")


def bench_haar(repeats: int) -> None:
    from skimage.feature import haar_like_feature
    from skimage.transform import integral_image

    from featx.extractors.haar import Haar
    from featx.imageops import resize, to_gray_uint8

    photo = load_rgb(SAMPLES / "astronaut.png")
    ext = Haar.create(mode="window")
    window = resize(to_gray_uint8(photo), 24, 24)
    ext.extract(window)  # build the index tables once (per worker), as the pipeline does

    def ours():
        return ext.extract(window)

    def ref():
        return haar_like_feature(integral_image(window), 0, 0, 24, 24)

    assert np.array_equal(ours(), ref().astype(np.float32))
    t = interleaved({"ours": ours, "ref": ref}, repeats)
    line("haar window 24x24, all 162336 features", t["ours"], t["ref"], "skimage", 20)
    full = median_ms(lambda: ext.extract(photo), repeats)
    print(f"{'  (featx incl. gray + resize of 512x512 RGB)':<44} featx {full:9.2f} ms")
    grid = Haar.create()
    grid_ms = median_ms(lambda: grid.extract(photo), repeats)
    print(f"{'  (haar grid mode, 512x512, 240 values)':<44} featx {grid_ms:9.2f} ms")


def bench_gabor(repeats: int, skimage_all: bool) -> None:
    import cv2
    from skimage.filters import gabor

    from featx.extractors.gabor import Gabor
    from featx.imageops import to_gray_float32

    photo = cv2.resize(load_rgb(SAMPLES / "rocket.jpg"), (640, 480), interpolation=cv2.INTER_AREA)
    pooled = Gabor.create()
    maps = Gabor.create(result="maps")
    pooled.extract(photo)  # kernel spectra for this size, once per worker
    maps.extract(photo)
    gray = to_gray_float32(photo)
    # convolution = correlation with the flipped kernel, borders as skimage ('reflect')
    flipped = [(np.ascontiguousarray(k.real[::-1, ::-1], np.float32),
                np.ascontiguousarray(k.imag[::-1, ::-1], np.float32)) for k in pooled.kernels]

    def filter2d_loop():
        out = []
        for kr, ki in flipped:
            re = cv2.filter2D(gray, cv2.CV_32F, kr, borderType=cv2.BORDER_REFLECT)
            im = cv2.filter2D(gray, cv2.CV_32F, ki, borderType=cv2.BORDER_REFLECT)
            out.append(cv2.magnitude(re, im))
        return out

    got = maps.extract(photo)
    ref = filter2d_loop()
    diff = max(float(np.abs(got[..., k] - r).max()) for k, r in enumerate(ref))
    t = interleaved({"pooled": lambda: pooled.extract(photo), "maps": lambda: maps.extract(photo),
                     "f2d": filter2d_loop}, repeats)
    line("gabor 32 kernels 640x480, pooled (default)", t["pooled"], t["f2d"], "filter2D", 2)
    line("gabor 32 kernels 640x480, maps", t["maps"], t["f2d"], "filter2D", 2)
    print(f"{'  max |featx maps - filter2D magnitude|':<44} {diff:.2e} (0-255 scale)")

    # skimage.filters.gabor: direct convolution, ~seconds per large kernel.
    if skimage_all:
        chosen = list(range(pooled.n_kernels))
        label = "all 32 kernels, 1 run each"
    else:
        # the 45-degree kernel of each scale: the smallest kernels of the bank, so
        # the extrapolated skimage time is a lower bound (favours skimage)
        o = pooled.params.n_orientations // 4
        chosen = [s * pooled.params.n_orientations + o for s in range(pooled.params.n_scales)]
        label = f"kernels {chosen} (45 deg) x {pooled.params.n_orientations} orientations"
    g64 = gray.astype(np.float64)
    total = 0.0
    for k in chosen:
        info = pooled.kernel_info[k]
        start = time.perf_counter()
        gabor(g64, info.frequency, info.theta, sigma_x=info.sigma_x, sigma_y=info.sigma_y)
        total += time.perf_counter() - start
    sk_ms = total * 1e3 * pooled.n_kernels / len(chosen)
    line("gabor 32 kernels 640x480, pooled", t["pooled"], sk_ms, "skimage", 100)
    print(f"{'  (skimage time from ' + label + ')':<44}")


def bench_cascade(repeats: int) -> None:
    import cv2

    from featx.regions import DetectParams, Detector, resolve_cascade

    files = sorted(p for p in SAMPLES.iterdir() if p.suffix.lower() in (".png", ".jpg"))
    params = DetectParams()
    det = Detector(params)
    clf = cv2.CascadeClassifier(str(resolve_cascade(params.cascade)))

    kw = {"scaleFactor": params.scale_factor, "minNeighbors": params.min_neighbors}

    # Interleaved per file and per run, so that load from other processes
    # falls on both sides alike; the total is the sum of the per-file medians.
    totals = {"ours": 0.0, "color": 0.0, "gray": 0.0}
    n_ours = n_ref = 0
    for p in files:
        path = str(p)
        fns = {
            "ours": lambda: det.detect(load_rgb(p)),
            "color": lambda: clf.detectMultiScale(
                cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2GRAY), **kw),
            "gray": lambda: clf.detectMultiScale(cv2.imread(path, cv2.IMREAD_GRAYSCALE), **kw),
        }
        n_ours += len(fns["ours"]())
        n_ref += len(fns["color"]())
        for k, ms in interleaved(fns, repeats).items():
            totals[k] += ms
    per = len(files)
    line(f"cascade e2e, {per} sample files", totals["ours"] / per, totals["color"] / per,
         "imread+gray+detect", 0.9)
    line("  vs grayscale decode", totals["ours"] / per, totals["gray"] / per,
         "imread(GRAY)+detect", 0.9)
    print(f"{'  regions found (featx / plain)':<44} {n_ours} / {n_ref}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=7, help="runs per measurement (median)")
    ap.add_argument("--threads", type=int, default=1,
                    help="cv2.setNumThreads for both sides (default 1)")
    ap.add_argument("--skimage-all", action="store_true",
                    help="time skimage.filters.gabor on all 32 kernels (about a minute)")
    ap.add_argument("--only", choices=("haar", "gabor", "cascade"), help="run one part")
    args = ap.parse_args()

    import cv2

    cv2.setNumThreads(args.threads)
    print(f"OpenCV {cv2.__version__}, cv2 threads {cv2.getNumThreads()}, "
          f"median of {args.repeats} runs (ms per image)")
    if args.only in (None, "haar"):
        bench_haar(args.repeats)
    if args.only in (None, "gabor"):
        bench_gabor(args.repeats, args.skimage_all)
    if args.only in (None, "cascade"):
        bench_cascade(args.repeats)


if __name__ == "__main__":
    main()
