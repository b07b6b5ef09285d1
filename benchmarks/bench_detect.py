#!/usr/bin/env python
"""Cascade detection on camera-sized photos: working size, speed, memory, false faces.

Makes real-photo-like JPEGs from the samples (each upscaled to ``--mp`` megapixels
with ``cv2.INTER_CUBIC``, Gaussian sensor-like noise of sigma ``--noise`` and
JPEG quality 90, so that they compress and texture like camera files), then

1. in one process, for each ``detect_size`` of ``--sizes`` (0 = full size, which
   is what ``featx detect`` did before it had ``--detect-size``): the time of
   ``Detector.detect`` per photo (image already decoded; median of repeats), and
   over ``--seeds`` sets of such photos, the boxes that match nothing the cascade
   finds on the original (<= 640-px) sample ("extra": false faces) and how many
   of the faces found on the samples are found again (IoU > 0.5 with the
   sample's box, scaled up);
2. end to end over all the photos made, ``featx detect FOLDER -j 1`` at the
   default ``--detect-size`` (and ``--cli-sizes``) against ``--detect-size 0``
   (full size, as before) and a plain loop (``cv2.imread`` + ``detectMultiScale``
   at full size): seconds per photo (whole processes; median of repeats) and
   peak RSS of the largest process.

Targets (issue 14, item 3): >= 10x faster than full-size detection on 12-MP
photos, the same faces on the samples.

Usage::

    python benchmarks/bench_detect.py [--mp 12] [--repeats 3] [--seeds 3] [--sizes 480,640,800,1024,0]
                                      [--cli-sizes 800,1024] [--skip-cli]
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import timed  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTOS = ("astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg")
# featx tunes glibc's allocator at start-up (featx.engine.process.tune_allocator); the plain
# loops run under the same setting (DESIGN.md: measure both the same way).
ENV = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_=str(32 * 1024 * 1024),
           MALLOC_TRIM_THRESHOLD_=str(256 * 1024 * 1024))


def make_photos(folder: Path, mp: float, noise: float, seed: int = 0) -> dict[str, Path]:
    """Upscale each sample to ``mp`` megapixels with sensor-like noise, JPEG q90."""
    import cv2

    rng = np.random.default_rng(seed)
    out = {}
    for name in PHOTOS:
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        h, w = img.shape[:2]
        s = (mp * 1e6 / (h * w)) ** 0.5
        big = cv2.resize(img, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
        big = np.clip(big + rng.normal(0.0, noise, big.shape), 0, 255).astype(np.uint8)
        path = folder / (Path(name).stem + ".jpg")
        cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out[name] = path
    return out


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def in_process(sets: list[dict[str, Path]], sizes: list[int], repeats: int) -> None:
    """Time per photo (first set) and boxes against the samples' own detections (all sets)."""
    import cv2

    from featx.regions import DetectParams, Detector

    cv2.setNumThreads(1)

    def rgb(path):
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)

    # What the cascade finds on each original sample, at its own size (<= 640 px).
    full = Detector(DetectParams(detect_size=0))
    refs = {n: (full.detect(rgb(SAMPLES / n)), rgb(SAMPLES / n).shape[1]) for n in PHOTOS}
    n_faces = sum(len(b) for b, _ in refs.values()) * len(sets)
    print(f"\n## Detector.detect on {len(sets)} x {len(PHOTOS)} photos, in one process, "
          "1 OpenCV thread\n")
    print("per photo: ms (first set, median of repeats), boxes (all sets); extra = boxes that "
          "match nothing the cascade finds on the original sample (IoU < 0.5); found = of the "
          f"{n_faces} faces found on the samples (astronaut's), how many are found again\n")
    shape = cv2.imread(str(sets[0]["coffee.jpg"])).shape
    print(f"| detect_size | working size of {shape[1]}x{shape[0]} | "
          + " | ".join(Path(n).stem for n in PHOTOS) + " | extra boxes | found |")
    print("|---|---|" + "---|" * len(PHOTOS) + "---|---|")
    for size in sizes:
        det = Detector(DetectParams(detect_size=size))
        ms, count, extra, found = {}, dict.fromkeys(PHOTOS, 0), 0, 0
        for k, photos in enumerate(sets):
            for name, path in photos.items():
                img = rgb(path)
                if k == 0:
                    ms[name] = timed(lambda: det.detect(img), 1 if size == 0 else repeats) * 1e3
                boxes = det.detect(img)
                count[name] += len(boxes)
                ref, ref_w = refs[name]
                ref = ref * (img.shape[1] / ref_w)
                match = [any(iou(b, r) > 0.5 for r in ref) for b in boxes]
                extra += len(boxes) - sum(match)
                found += sum(any(iou(b, r) > 0.5 for b in boxes) for r in ref)
        wh, ww = det.working_shape(shape[0], shape[1])
        cells = [f"{ms[n]:.0f} ms, {count[n]}" for n in PHOTOS]
        print(f"| {size or 'full (before)'} | {ww}x{wh} | " + " | ".join(cells)
              + f" | {extra} | {found}/{n_faces} |", flush=True)


RSS = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""

PLAIN = """
import sys, cv2
cv2.setNumThreads(1)
clf = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
for p in sys.argv[1:]:
    g = cv2.cvtColor(cv2.imread(p, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2GRAY)
    clf.detectMultiScale(g, scaleFactor=1.1, minNeighbors=5)
"""


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of the largest process of ``cmd``."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", RSS, *cmd], check=True, env=ENV,
                       capture_output=True, text=True)
    return time.perf_counter() - t, int(r.stdout.strip()) / 1024


def end_to_end(folder: Path, photos: list[Path], repeats: int, out: Path, more: list[int]) -> None:
    """featx detect on every photo made, against full size and a plain loop."""
    from featx.regions import DEFAULT_DETECT_SIZE

    n = len(photos)

    def featx(size: int) -> list[str]:
        return [sys.executable, "-m", "featx", "detect", str(folder), "-o", str(out), "-j", "1",
                "-q", "--overwrite", "--detect-size", str(size)]

    fast = [(f"featx detect -j 1 (default, --detect-size {DEFAULT_DETECT_SIZE})", featx(DEFAULT_DETECT_SIZE)),
            *[(f"featx detect -j 1 --detect-size {m}", featx(m)) for m in more]]
    slow = [("featx detect -j 1 --detect-size 0 (full size: as before)", featx(0)),
            ("plain loop: imread + detectMultiScale at full size",
             [sys.executable, "-c", PLAIN, *map(str, photos)])]
    times: dict[str, list[float]] = {label: [] for label, _ in fast + slow}
    rss: dict[str, float] = {}
    order = fast + slow
    for i in range(repeats):
        for label, cmd in (order if i % 2 == 0 else order[::-1]):
            s, mb = run_measured(cmd)
            times[label].append(s)
            rss[label] = max(rss.get(label, 0.0), mb)
    print(f"\n## End to end, {n} photos, whole processes, 1 OpenCV thread (median of "
          f"{repeats}, interleaved)\n")
    print("| run | s per photo | peak RSS | full size / this |")
    print("|---|---|---|---|")
    full = statistics.median(times[slow[0][0]])
    for label, _ in fast + slow:
        t = statistics.median(times[label])
        print(f"| {label} | {t / n:.3f} | {rss[label]:.0f} MB | {full / t:.1f}x |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mp", type=float, default=12.0, help="megapixels of the made photos")
    ap.add_argument("--noise", type=float, default=2.5, help="sigma of the sensor-like noise")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--sizes", default="480,640,800,1024,0",
                    help="detect_size values to compare (0 = full size)")
    ap.add_argument("--seeds", type=int, default=3, help="sets of photos (noise seeds) for the box counts")
    ap.add_argument("--cli-sizes", default="",
                    help="more --detect-size values to run end to end (default: the default and 0)")
    ap.add_argument("--skip-cli", action="store_true", help="only the in-process table")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory(prefix="featx-bench-detect-") as tmp:
        sets = []
        for seed in range(args.seeds):
            folder = Path(tmp) / "photos" / f"seed{seed}"
            folder.mkdir(parents=True)
            sets.append(make_photos(folder, args.mp, args.noise, seed))
        print(f"# {len(PHOTOS)} samples made into {args.mp:g}-MP JPEGs ({args.seeds} noise seeds), "
              f"noise sigma {args.noise}, q90; {os.cpu_count()} CPUs")
        in_process(sets, sizes, args.repeats)
        if not args.skip_cli:
            cli = [int(s) for s in args.cli_sizes.split(",")] if args.cli_sizes else []
            end_to_end(Path(tmp) / "photos", [p for ps in sets for p in ps.values()], args.repeats,
                       Path(tmp) / "out.csv", cli)


if __name__ == "__main__":
    main()
