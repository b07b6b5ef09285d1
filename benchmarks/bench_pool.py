#!/usr/bin/env python
"""Pooling during extraction: peak memory flat in the video's length.

Makes videos of 1, 5 and 10 minutes (``--minutes``; MJPG ``.avi``, 25 fps, 160x120 by default:
slow pans over the sample photos, written with OpenCV), then for each runs, one at a time,
each as its own process (default extractor ``hog``: 18,954 values a frame at 160x120, so the
per-frame output of the 10-minute video is about 1.1 GB on disk, and what loads it that much
in memory):

* ``per-frame``: ``featx extract NAME VIDEO -o frames.npy -j J`` (a row per frame);
* ``per-frame + numpy``: the per-frame output pooled afterwards the way a user without in-pass
  pooling would (``np.load(..., mmap_mode="r")`` then mean and max over the rows: every page
  of the output is read, and counts in the peak);
* ``pool video``: ``featx extract NAME VIDEO -o clip.npy --pool-over video
  --pool-stats mean,max``: one row per video;
* ``pool windows``: ``--pool-over video --pool-stats mean,std,max,diff --pool-window 10s
  --pool-stride 5s``: a row per 10-second window;
* ``pool pyramid``: ``--pool-over video --pool-stats mean,max --pool-pyramid`` (the unit's
  rows wait in a temporary file, not in memory, until the video ends).

Peak memory is that of the whole process tree (featx's main process and its workers): the
sum of the resident memory (``VmRSS``) of every live process of the tree, sampled every
10 ms, and its largest value; also the output's size on disk.  The claim: the in-pass
runs' peak does not grow with the video's length (a 10-minute video within 10 % of a
1-minute one), while the per-frame output (and anything that loads it) grows linearly.

Usage::

    python benchmarks/bench_pool.py [--minutes 1,5,10] [--extractor hog] [--size 160x120] [--jobs 2] [--quick]

``--quick`` (a smoke run, seconds): videos of 0.1, 0.25 and 0.5 minutes.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTOS = ("astronaut.png", "coffee.jpg", "chelsea.png", "rocket.jpg", "camera.png")
ENV = dict(os.environ, PYTHONPATH=str(ROOT))

AFTERWARDS = r"""
import sys, numpy as np
m = np.load(sys.argv[1], mmap_mode="r")
v = np.concatenate([m.mean(axis=0, dtype=np.float64), m.max(axis=0)]).astype(np.float32)
np.save(sys.argv[2], v[None])
"""


def make_video(path: Path, minutes: float, size=(320, 240), fps: float = 25.0) -> int:
    """A video of ``minutes``: slow pans over the sample photos (a new photo every 10 s)."""
    import cv2
    import numpy as np

    w, h = size
    frames = int(round(minutes * 60 * fps))
    bases = []
    for name in PHOTOS:
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        bases.append(cv2.resize(img, (w * 2, h * 2), interpolation=cv2.INTER_AREA))
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    per = int(10 * fps)
    for i in range(frames):
        base = bases[(i // per) % len(bases)]
        t = (i % per) / per
        x, y = int(t * w), int(t * h * 0.5)
        out.write(np.ascontiguousarray(base[y:y + h, x:x + w]))
    out.release()
    return frames


def _tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    kids: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_measured(cmd: list[str]) -> tuple[float, float]:
    """(seconds, peak MB of the process tree's summed resident memory) of ``cmd``."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], sum(_rss_kb(q) for q in _tree(p.pid)))
            stop.wait(0.01)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    _, err = p.communicate()
    stop.set()
    th.join()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err.decode(errors='replace')}")
    return time.perf_counter() - t0, peak[0] / 1024.0


def size_mb(path: Path) -> float:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
    return sum(f.stat().st_size for f in path.parent.glob(path.stem + "*") if not f.name.endswith(".json")) / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="1,5,10", help="lengths of the videos, in minutes")
    ap.add_argument("--extractor", default="hog")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--size", default="160x120")
    ap.add_argument("--quick", action="store_true", help="videos of 0.1, 0.25 and 0.5 minutes (a smoke run)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    lengths = [0.1, 0.25, 0.5] if args.quick else [float(x) for x in args.minutes.split(",")]
    w, h = (int(v) for v in args.size.split("x"))
    featx = [sys.executable, "-m", "featx", "extract", args.extractor]
    variants = {
        "pool video": ["--pool-over", "video", "--pool-stats", "mean,max"],
        "pool windows": ["--pool-over", "video", "--pool-stats", "mean,std,max,diff", "--pool-window", "10s",
                         "--pool-stride", "5s"],
        "pool pyramid": ["--pool-over", "video", "--pool-stats", "mean,max", "--pool-pyramid"],
    }
    work = Path(tempfile.mkdtemp(prefix="featx-bench-pool-"))
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}, "extractor": args.extractor,
                 "jobs": args.jobs, "size": args.size, "runs": []}
    try:
        print(f"{args.extractor}, -j {args.jobs}, {w}x{h} MJPG 25 fps; peak = summed VmRSS of the process tree",
              flush=True)
        print(f"{'video':>8} {'frames':>7}  {'variant':<18} {'seconds':>8} {'peak MB':>8} {'output MB':>10}", flush=True)
        for minutes in lengths:
            video = work / f"v{minutes:g}.avi"
            frames = make_video(video, minutes, (w, h))
            rows = []
            out = work / "frames.npy"
            secs, peak = run_measured([*featx, str(video), "-o", str(out), "-j", str(args.jobs), "-q", "--overwrite"])
            rows.append(("per-frame", secs, peak, size_mb(out)))
            secs, peak = run_measured([sys.executable, "-c", AFTERWARDS, str(out), str(work / "after.npy")])
            rows.append(("per-frame + numpy", secs, peak, size_mb(work / "after.npy")))
            for name, extra in variants.items():
                o = work / f"{name.replace(' ', '-')}.npy"
                secs, peak = run_measured([*featx, str(video), "-o", str(o), "-j", str(args.jobs), "-q",
                                           "--overwrite", *extra])
                rows.append((name, secs, peak, size_mb(o)))
            for name, secs, peak, mb in rows:
                print(f"{minutes:>6g} m {frames:>7}  {name:<18} {secs:>8.1f} {peak:>8.0f} {mb:>10.2f}", flush=True)
                res["runs"].append({"minutes": minutes, "frames": frames, "variant": name, "seconds": round(secs, 2),
                                    "peak_mb": round(peak, 1), "output_mb": round(mb, 3)})
            video.unlink()
        first, last = lengths[0], lengths[-1]
        for name in ["per-frame", *variants]:
            a = next(r["peak_mb"] for r in res["runs"] if r["minutes"] == first and r["variant"] == name)
            b = next(r["peak_mb"] for r in res["runs"] if r["minutes"] == last and r["variant"] == name)
            print(f"{name}: peak at {last:g} min / at {first:g} min = {b / a:.3f}", flush=True)
            res.setdefault("growth", {})[name] = round(b / a, 4)
        if args.json:
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
