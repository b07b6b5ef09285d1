#!/usr/bin/env python
"""Benchmark the sift extractor, its encodings and codebook learning.

All in one process, on the same images: ``--images`` 640x480 RGB pictures
built from samples/ with seeded random crops, scalings and flips (so they
differ).  Reports medians over ``--repeats`` runs:

* featx ``SIFT.extract`` vs a plain loop of ``cvtColor`` +
  ``cv2.SIFT.detectAndCompute`` (images/s and the ratio; the issue asks for
  at least 0.9x end to end — the CLI numbers, with decoding, are measured by
  ``--cli`` when the ``featx`` command is available);
* SIFT + BoVW / VLAD encoding at k = ``--k`` (and Fisher at k = ``--gmm-k``)
  relative to SIFT alone (the issue asks for at most +25% for BoVW/VLAD at
  k = 256);
* codebook learning on all ``--images`` images at k = ``--k``: describing
  the images + sampling, then k-means (the issue asks for under a minute for
  200 images at k = 256); and the GMM at k = ``--gmm-k`` for Fisher vectors.

Usage::

    python benchmarks/bench_sift.py [--images 200] [--repeats 3] [--k 256] [--threads 1] [--cli]

``--threads`` (default 1) sets OpenCV's and OpenBLAS's thread counts for
both sides: featx runs one single-threaded extractor per worker process, and
on a shared 2-core machine multi-threaded BLAS under load made the small
encoding matrix products 5-20x slower (oversubscription).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _threads_arg() -> str:
    for i, a in enumerate(sys.argv):
        if a == "--threads" and i + 1 < len(sys.argv):
            return sys.argv[i + 1]
        if a.startswith("--threads="):
            return a.split("=", 1)[1]
    return "1"


# before numpy is imported: OpenBLAS reads these once
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads_arg())

import numpy as np  # noqa: E402

from common import timed  # noqa: E402  (benchmarks/common.py)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
NAMES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]


def build_images(n: int, seed: int = 0, size: tuple[int, int] = (640, 480)) -> list[np.ndarray]:
    """``n`` different RGB uint8 images of ``size`` (W, H) from the sample photos."""
    import cv2

    rng = np.random.default_rng(seed)
    photos = []
    for name in NAMES:
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        photos.append(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    w, h = size
    out = []
    for i in range(n):
        src = photos[i % len(photos)]
        sh, sw = src.shape[:2]
        cw, ch = int(sw * rng.uniform(0.75, 1.0)), int(sh * rng.uniform(0.75, 1.0))
        x0, y0 = int(rng.integers(0, sw - cw + 1)), int(rng.integers(0, sh - ch + 1))
        crop = src[y0:y0 + ch, x0:x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out.append(np.ascontiguousarray(cv2.resize(crop, (w, h), interpolation=cv2.INTER_LINEAR)))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=200, help="images for codebook learning (default 200)")
    ap.add_argument("--timing-images", type=int, default=40, help="images per timed extraction run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--k", type=int, default=256, help="visual words for BoVW/VLAD (default 256)")
    ap.add_argument("--gmm-k", type=int, default=64, help="GMM components for Fisher (default 64)")
    ap.add_argument("--sample", type=int, default=100_000, help="codebook descriptor sample")
    ap.add_argument("--threads", type=int, default=1, help="OpenCV and BLAS threads (default 1)")
    ap.add_argument("--cli", action="store_true", help="also time `featx extract sift` -j 1 / -j 2")
    args = ap.parse_args(argv)

    import cv2

    from featx import __version__
    from featx.codebook import learn_codebook
    from featx.encoding import save_codebook
    from featx.extractors.sift import SIFT

    cv2.setNumThreads(args.threads)
    print(f"featx {__version__}, OpenCV {cv2.__version__}, numpy {np.__version__}, "
          f"cv2 threads {cv2.getNumThreads()}, BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}, "
          f"cpus {os.cpu_count()}, load {os.getloadavg()[0]:.1f}")
    images = build_images(args.images)
    timing = images[:args.timing_images]
    print(f"{len(images)} images 640x480 RGB; timing on {len(timing)}, median of {args.repeats}")

    sift = cv2.SIFT_create()

    def plain():
        for im in timing:
            g = cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)
            sift.detectAndCompute(g, None)

    ext = SIFT.create()

    def featx_sift():
        for im in timing:
            ext.extract(im)

    n = len(timing)
    plain()   # warm up
    # interleaved repeats; ratios are taken within each repeat, then the median
    rows = [(timed(plain, 1), timed(featx_sift, 1)) for _ in range(args.repeats)]
    t_plain = statistics.median(r[0] for r in rows)
    t_featx = statistics.median(r[1] for r in rows)
    ratio = statistics.median(r[0] / r[1] for r in rows)
    print(f"\n[extractor] plain cv2 SIFT      {n / t_plain:7.2f} img/s  ({1000 * t_plain / n:.1f} ms/img)")
    print(f"[extractor] featx sift          {n / t_featx:7.2f} img/s  ({1000 * t_featx / n:.1f} ms/img)"
          f"  ratio {ratio:.3f}x (goal >= 0.9)")

    # -- codebook learning
    tmp = Path(tempfile.mkdtemp(prefix="bench_sift_"))
    try:
        t0 = time.perf_counter()
        descs = [ext.describe(im).descriptors for im in images]
        t_desc = time.perf_counter() - t0
        total = sum(len(d) for d in descs)
        t0 = time.perf_counter()
        cb = learn_codebook(iter(descs), args.k, sample=args.sample, seed=0, extractor=ext)
        t_km = time.perf_counter() - t0
        print(f"\n[codebook] {len(images)} images, {total} descriptors ({total / len(images):.0f}/img), "
              f"sample {cb.metadata['n_sampled']}, k={args.k}")
        print(f"[codebook] describe {t_desc:.1f} s + sample/k-means {t_km:.1f} s = {t_desc + t_km:.1f} s "
              f"(goal < 60 s)")
        t0 = time.perf_counter()
        gcb = learn_codebook(iter(descs), args.gmm_k, sample=args.sample, seed=0, gmm=True, extractor=ext)
        t_gmm = time.perf_counter() - t0
        print(f"[codebook] k-means + diagonal GMM at k={args.gmm_k}: {t_gmm:.1f} s "
              f"(loglik/sample {gcb.metadata['gmm_loglik']:.1f})")
        path = tmp / "k.codebook.npz"
        gpath = tmp / "gmm.codebook.npz"
        save_codebook(cb, path)
        save_codebook(gcb, gpath)

        # -- encodings: interleaved with SIFT alone, ratio per repeat; plus the encoder alone
        variants = [("bovw", path, {}), ("vlad", path, {}), ("bovw", path, {"soft": 5, "pyramid": 2}),
                    ("fisher", gpath, {})]
        exts = [SIFT.create(encode=enc, codebook=str(p), **extra) for enc, p, extra in variants]
        feats = [ext.describe(im) for im in timing]
        times = [[] for _ in variants]
        base = []
        for _ in range(args.repeats):
            base.append(timed(featx_sift, 1))
            for i, e in enumerate(exts):
                times[i].append(timed(lambda e=e: [e.extract(im) for im in timing], 1))
        print()
        for (enc, _p, extra), e, ts in zip(variants, exts, times):
            over = statistics.median(t / b - 1 for t, b in zip(ts, base))
            t_enc = timed(lambda e=e: [e.encoder(f, 480, 640) for f in feats], args.repeats)
            k = args.gmm_k if enc == "fisher" else args.k
            label = enc + "".join(f" {a}={b}" for a, b in extra.items())
            print(f"[encode] sift + {label:<22s} k={k:<4d} {1000 * statistics.median(ts) / n:6.1f} ms/img  "
                  f"overhead {100 * over:+5.1f}% over sift; encoder alone {1000 * t_enc / n:5.2f} ms/img "
                  f"= {100 * t_enc / statistics.median(base):4.1f}% of sift"
                  + ("  (goal <= +25%)" if enc in ("bovw", "vlad") and not extra else ""))
        e = SIFT.create(dense=True)
        t = timed(lambda: [e.extract(im) for im in timing], args.repeats)
        print(f"[dense]  dense sift step 8 scale 16: {1000 * t / n:6.1f} ms/img")

        if args.cli:
            _cli(images[:args.timing_images * 2], tmp, args.repeats)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _cli(images, tmp: Path, repeats: int) -> None:
    """End to end: JPEG files, plain decode + SIFT loop vs `featx extract sift` -j 1 / -j 2."""
    import cv2

    exe = shutil.which("featx") or str(Path(sys.executable).parent / "featx")
    if not Path(exe).exists():
        print("\n[cli] no featx command; skipped")
        return
    src = tmp / "jpg"
    src.mkdir()
    for i, im in enumerate(images):
        cv2.imwrite(str(src / f"{i:04d}.jpg"), cv2.cvtColor(im, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    files = sorted(src.glob("*.jpg"))
    sift = cv2.SIFT_create()

    def plain():
        for f in files:
            g = cv2.imread(str(f), cv2.IMREAD_GRAYSCALE)
            sift.detectAndCompute(g, None)

    t_plain = timed(plain, repeats)

    def cli(jobs):
        out = tmp / f"out{jobs}"
        shutil.rmtree(out, ignore_errors=True)
        r = subprocess.run([exe, "extract", "sift", str(src), "-o", str(out), "--format", "npy-dir",
                            "-j", str(jobs), "--quiet"], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)

    try:
        t1 = timed(lambda: cli(1), repeats)
        t2 = timed(lambda: cli(2), repeats)
    except RuntimeError as e:
        print(f"\n[cli] featx failed: {e}")
        return
    n = len(files)
    print(f"\n[cli] {n} JPEGs: plain imread+SIFT {n / t_plain:.2f} img/s; featx -j 1 {n / t1:.2f} img/s "
          f"(ratio {t_plain / t1:.3f}x, goal >= 0.9); -j 2 {n / t2:.2f} img/s ({t1 / t2:.2f}x -j 1, goal >= 1.6)")


if __name__ == "__main__":
    sys.exit(main())
