"""Incremental re-runs: an unchanged folder vs the first run over it, in one run.

Builds N small real JPEGs (copies of the sample photos; by default 10,000
files: 200 distinct images, each linked under 50 names), runs
`featx extract EXTRACTOR DIR -o out.npy` once, then the same command again
(nothing changed) several times, and prints the median re-run time as a
fraction of the first run (target: under 5%).  By default two cases: hog on
320x240 copies (the main job), and the worst case, gradients (the cheapest
extractor) on 160x120 thumbnails, where the re-run's fixed cost (interpreter,
imports, walking and stat-ing 10,000 files) weighs most.

    python benchmarks/bench_incremental.py [--files 10000] [--repeat 3] [--case hog:320x240 ...]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import ENV, make_images  # noqa: E402


def run(cmd) -> tuple[float, dict]:
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, env=ENV, capture_output=True, text=True)
    dt = time.perf_counter() - t
    return dt, json.loads(r.stderr.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--distinct", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--case", action="append", default=None, metavar="EXTRACTOR:WxH",
                    help="extractor and copy size (repeatable); default hog:320x240 and gradients:160x120")
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    for case in args.case or ["hog:320x240", "gradients:160x120"]:
        name, size = case.split(":")
        w, h = (int(v) for v in size.split("x"))
        one(args, name, w, h)


def one(args, name: str, w: int, h: int) -> None:
    work = Path(tempfile.mkdtemp(prefix="featx-bench-inc-"))
    try:
        import cv2

        src = make_images(work / "src", args.distinct)
        for p in src:  # small copies
            cv2.imwrite(str(p), cv2.resize(cv2.imread(str(p)), (w, h), interpolation=cv2.INTER_AREA))
        folder = work / "photos"
        for i in range(args.files):
            d = folder / f"d{i // 1000:03d}"
            d.mkdir(parents=True, exist_ok=True)
            os.link(src[i % len(src)], d / f"img{i:06d}.jpg")
        out = work / "out.npy"
        cmd = [sys.executable, "-m", "featx", "extract", name, str(folder), "-o", str(out), "-j",
               str(args.jobs), "-q", "--summary-json", "-"]
        first, s = run(cmd)
        assert s["processed"] == args.files, s
        reruns = []
        for _ in range(args.repeat):
            dt, s = run(cmd)
            assert s["processed"] == 0 and s["up_to_date"] == args.files, s
            reruns.append(dt)
        med = statistics.median(reruns)
        print(f"{args.files} files {w}x{h}, {name} -j {args.jobs}: first run {first:.2f} s, "
              f"unchanged re-run {med:.2f} s (median of {args.repeat}) = {100 * med / first:.1f}% "
              f"of the first run (target < 5%)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
