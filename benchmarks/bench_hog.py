#!/usr/bin/env python
"""HOG and gradients: featx vs the raw libraries, same pixels, same process.

* ``hog``: featx's extractor vs ``skimage.feature.hog`` with the same
  parameters (colour photos with ``channels=max`` vs ``channel_axis=-1``;
  ``channels=gray`` vs skimage on the same float32 luma).
* ``gradients``: featx's extractor vs a plain inline OpenCV loop doing the
  same work in float32 (luma, Sobel, cartToPolar, a bincount per cell).

Inputs are the sample photos resized to 640x480 (``--size``).  Each repeat
times one pass over the photos with the baseline, then one with featx; the
report gives, per method, the median over the repeats of the mean ms/image,
and the median of the per-repeat ratios baseline/featx (robust to a shared,
noisy machine).  The results are also compared (max abs difference) so a
fast wrong answer shows.

Runs in one process on one core by default (``cv2.setNumThreads(1)``) with
the allocator tuned as featx's workers are meant to run (mmap/trim thresholds
raised with ``mallopt``, see DESIGN.md); ``--malloc glibc`` keeps glibc's
defaults for both sides.

Usage::

    python benchmarks/bench_hog.py                 # ~30 s
    python benchmarks/bench_hog.py --repeat 15 --malloc glibc
"""
from __future__ import annotations

import argparse
import ctypes
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTOS = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]

HOG_SETS = {
    "defaults (cell 8, block 3, 9 bins, L2-Hys, max)": dict(),
    "channels=gray": dict(channels="gray"),
    "cell 16, block 2, 12 bins, L1": dict(cell_size=16, block_size=2, bins=12, block_norm="L1"),
    "transform_sqrt": dict(transform_sqrt=True),
}


def tune_malloc() -> str:
    """Raise glibc's mmap and trim thresholds (big temporaries stay mapped)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return "glibc not found: allocator defaults"
    m_trim_threshold, m_mmap_threshold = -1, -3
    ok_mmap = libc.mallopt(m_mmap_threshold, 32 * 1024 * 1024)   # the maximum glibc takes
    ok_trim = libc.mallopt(m_trim_threshold, 512 * 1024 * 1024)
    return f"mallopt mmap_threshold=32MiB ({'ok' if ok_mmap else 'refused'}), " \
           f"trim_threshold=512MiB ({'ok' if ok_trim else 'refused'})"


def load_photos(width: int, height: int) -> dict[str, np.ndarray]:
    import cv2

    from featx.imageops import resize

    out = {}
    for name in PHOTOS:
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_UNCHANGED)
        if img.ndim == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        out[name] = np.ascontiguousarray(resize(img, width, height))
    return out


def time_pair(featx_fn, base_fn, featx_inputs, base_inputs, repeat: int):
    """Time featx and the baseline in alternation, one pass over the photos each.

    Alternating keeps the two exposed to the same machine load (this box's
    cores are shared).  Returns the median ms/image of each, the median of
    the per-repeat ratios baseline/featx, and the last results of both.
    """
    fx_out = [featx_fn(im) for im in featx_inputs]     # warm-up: imports, caches
    base_out = [base_fn(im) for im in base_inputs]
    fx_ms, base_ms, ratios = [], [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for im in base_inputs:
            base_fn(im)
        t1 = time.perf_counter()
        for im in featx_inputs:
            featx_fn(im)
        t2 = time.perf_counter()
        base_ms.append((t1 - t0) * 1e3 / len(base_inputs))
        fx_ms.append((t2 - t1) * 1e3 / len(featx_inputs))
        ratios.append(base_ms[-1] / fx_ms[-1])
    med = statistics.median
    return med(fx_ms), med(base_ms), med(ratios), fx_out, base_out


def bench_hog(photos, repeat: int) -> list[tuple]:
    from skimage.feature import hog

    from featx.extractors.hog import HOG
    from featx.imageops import to_gray_float32

    rows = []
    images = list(photos.values())
    for label, params in HOG_SETS.items():
        ext = HOG.create(**params)
        p = ext.params
        kw = dict(orientations=p.bins, pixels_per_cell=(p.cell_size, p.cell_size),
                  cells_per_block=(p.block_size, p.block_size), block_norm=p.block_norm,
                  transform_sqrt=p.transform_sqrt)
        if p.channels == "gray":
            # the baseline gets the luma the extractor computes, outside the clock
            sk_inputs = [to_gray_float32(im) if im.ndim == 3 else im for im in images]
        else:
            sk_inputs = images

        def sk(im, kw=kw):
            return hog(im, channel_axis=-1 if im.ndim == 3 else None, **kw)

        fx_ms, sk_ms, ratio, fx_out, sk_out = time_pair(ext.extract, sk, images, sk_inputs, repeat)
        diff = max(float(np.abs(a - b).max()) for a, b in zip(fx_out, sk_out))
        rows.append(("hog", label, fx_ms, "skimage.feature.hog", sk_ms, ratio, diff))
    return rows


def bench_gradients(photos, repeat: int) -> list[tuple]:
    import cv2

    from featx.extractors.gradients import Gradients

    ext = Gradients.create(norm="none")
    rows_, cols_ = ext.params.grid
    n = ext.params.bins
    cache = {}

    def plain(img):
        gray = img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        gray = gray.astype(np.float32)
        dx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, scale=1 / 8)
        dy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, scale=1 / 8)
        mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
        b = (ang * (n / 360.0) + 0.5).astype(np.intp)
        b[b == n] = 0
        h, w = gray.shape
        if (h, w) not in cache:
            rc = np.arange(h) * rows_ // h
            cc = np.arange(w) * cols_ // w
            cnt = np.bincount(rc, minlength=rows_)[:, None] * np.bincount(cc, minlength=cols_)
            cache[h, w] = ((rc[:, None] * cols_ + cc) * n).ravel(), cnt.ravel()
        base, cnt = cache[h, w]
        hist = np.bincount(base + b.ravel(), mag.ravel(), minlength=rows_ * cols_ * n)
        return (hist.reshape(-1, n) / cnt[:, None]).astype(np.float32).ravel()

    images = list(photos.values())
    fx_ms, base_ms, ratio, fx_out, base_out = time_pair(ext.extract, plain, images, images, repeat)
    # the plain loop bins cv2's approximate angles (~0.01 degree): a few
    # pixels next to a bin edge differ, so compare relative to the largest value
    diff = max(float(np.abs(a - b).max() / np.abs(b).max()) for a, b in zip(fx_out, base_out))
    return [("gradients", "sobel, 4x4, 8 signed bins, norm none", fx_ms,
             "inline cv2 + bincount (float32)", base_ms, ratio, diff)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed passes over the photos (default 7)")
    ap.add_argument("--size", default="640x480", help="WxH the photos are resized to (default 640x480)")
    ap.add_argument("--malloc", choices=("tuned", "glibc"), default="tuned",
                    help="raise glibc's mmap/trim thresholds (tuned, default) or keep the defaults")
    ap.add_argument("--threads", type=int, default=1, help="cv2.setNumThreads (default 1)")
    ap.add_argument("--only", choices=("hog", "gradients"), help="run one of the two")
    args = ap.parse_args(argv)

    alloc = tune_malloc() if args.malloc == "tuned" else "glibc defaults"
    import cv2
    import skimage

    cv2.setNumThreads(args.threads)
    width, height = (int(v) for v in args.size.lower().split("x"))
    photos = load_photos(width, height)
    print(f"# {len(photos)} photos at {width}x{height}, repeat {args.repeat}, "
          f"cv2 {cv2.__version__} threads {args.threads}, skimage {skimage.__version__}, "
          f"numpy {np.__version__}; allocator: {alloc}", file=sys.stderr)

    rows = []
    if args.only in (None, "hog"):
        rows += bench_hog(photos, args.repeat)
    if args.only in (None, "gradients"):
        rows += bench_gradients(photos, args.repeat)

    print(f"{'extractor':<10} {'parameters':<48} {'featx ms/img':>12} {'baseline ms/img':>15} "
          f"{'ratio':>7}  {'max abs diff':>12}  baseline")
    for kind, label, fx_ms, base_name, base_ms, ratio, diff in rows:
        unit = " (rel)" if kind == "gradients" else "      "
        print(f"{kind:<10} {label:<48} {fx_ms:12.2f} {base_ms:15.2f} {ratio:6.1f}x"
              f"  {diff:12.2g}{unit}  {base_name}")
    print("ratio: median over repeats of baseline/featx, each pair timed back to back",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
