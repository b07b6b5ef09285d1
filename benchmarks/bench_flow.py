"""Benchmarks for video reading and the flow extractor (issue #5).

Run from the repository root::

    python benchmarks/bench_flow.py                 # all benchmarks (several minutes)
    python benchmarks/bench_flow.py speed memory    # a selection: speed, memory, parallel
    python benchmarks/bench_flow.py --make-clip     # (re)write samples/clip.mp4
    python benchmarks/bench_flow.py --make-scenes   # (re)write samples/scenes.mp4

Every number is a ratio against the raw library doing the same work in the
same run, or a peak RSS measured in a fresh process.  Videos are synthetic
(a slow pan and zoom over samples/rocket.jpg, 640x480, MPEG-4 part 2
'mp4v', 25 fps), written to a temporary folder and deleted afterwards.

* speed: featx's reader (``featx.video.iter_video``) + ``Flow`` (DIS fast,
  HOF descriptor) against a plain loop of ``VideoCapture.read`` +
  ``cvtColor`` + ``DISOpticalFlow.calc`` on the same video; one OpenCV
  thread for both; best of 3, interleaved.  Target: >= 0.85.
  With ``--cli`` the same through the ``featx`` command line, if present.
* memory: peak RSS of a fresh process reading a 1-minute and a 10-minute
  video with featx's reader + Flow (and of the same process before reading).
  Target: < 400 MB, and not growing with length.
* parallel: 4 videos, one process per video, 2 processes against 1
  (library level: what the pipeline's ``-j`` does).  Target: >= 1.6.
"""
from __future__ import annotations

import argparse
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


# ---------------------------------------------------------------------------
# Synthetic video


def pan_zoom_frames(seconds: float, fps: float, size=(640, 480), photo="rocket.jpg"):
    """BGR frames of a smooth pan and zoom over a sample photo (periodic, so
    any length can be made)."""
    import cv2

    base = cv2.imread(str(SAMPLES / photo), cv2.IMREAD_COLOR)
    h0, w0 = base.shape[:2]
    w, h = size
    n = int(round(seconds * fps))
    for i in range(n):
        t = i / fps
        zoom = max(w / w0, h / h0) * (1.3 + 0.1 * math.sin(2 * math.pi * t / 7.0))
        cx = w0 / 2 + 0.12 * w0 * math.sin(2 * math.pi * t / 8.0)
        cy = h0 / 2 + 0.08 * h0 * math.sin(2 * math.pi * t / 5.0)
        m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]])
        yield cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REFLECT)


def write_pan_video(path: Path, seconds: float, fps: float = 25.0, size=(640, 480),
                    fourcc: str = "mp4v") -> Path:
    import cv2

    out = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not out.isOpened():
        raise RuntimeError(f"cannot write {path} with {fourcc}")
    for frame in pan_zoom_frames(seconds, fps, size):
        out.write(frame)
    out.release()
    return path


#: The shots of samples/scenes.mp4: photo, centre of the view (fraction of the photo), zoom
#: (output pixels per photo pixel) and the pan's amplitude (photo pixels).
SCENES = (("astronaut.png", (0.44, 0.27), 1.0, 18.0),   # the face (177,66,95,95) stays in view
          ("chelsea.png", (0.5, 0.5), 1.1, 25.0),
          ("coffee.jpg", (0.5, 0.5), 0.9, 30.0))


def make_scenes(seconds: float = 1.6, fps: float = 25.0, size=(320, 240)) -> Path:
    """samples/scenes.mp4: three shots (slow pans over astronaut.png, chelsea.png and
    coffee.jpg), each ``seconds`` long, mp4v: a video with cuts and a face to track."""
    import cv2

    path = SAMPLES / "scenes.mp4"
    w, h = size
    out = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    if not out.isOpened():
        raise RuntimeError(f"cannot write {path}")
    for photo, (fx, fy), zoom, amp in SCENES:
        base = cv2.imread(str(SAMPLES / photo), cv2.IMREAD_COLOR)
        h0, w0 = base.shape[:2]
        n = int(round(seconds * fps))
        for i in range(n):
            u = i / max(1, n - 1)
            cx = fx * w0 + amp * math.sin(math.pi * (u - 0.5))
            cy = fy * h0 + 0.5 * amp * math.sin(2 * math.pi * u)
            z = zoom * (1.0 + 0.08 * u)
            m = np.array([[z, 0, w / 2 - z * cx], [0, z, h / 2 - z * cy]])
            out.write(cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT))
    out.release()
    return path


def make_clip() -> Path:
    """samples/clip.mp4: 2.5 s, 25 fps, 480x360, mp4v."""
    path = SAMPLES / "clip.mp4"
    write_pan_video(path, 2.5, 25.0, (480, 360), "mp4v")
    return path


# ---------------------------------------------------------------------------
# The two loops


def baseline_loop(path: Path, preset: int = 1) -> int:
    """Plain OpenCV: read, gray, DIS between consecutive frames."""
    import cv2

    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    dis = cv2.DISOpticalFlow_create(preset)
    prev = None
    n = 0
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        if prev is not None:
            dis.calc(prev, gray, None)
        prev = gray
        n += 1
    cap.release()
    return n


def featx_loop(path: Path, threads: int | None = None, **params) -> int:
    """featx: streaming reader + Flow extractor (descriptor rows)."""
    from featx.extractors.flow import Flow
    from featx.video import iter_video

    ext = Flow.create(**params)
    ext.reset()
    n = 0
    for frame in iter_video(path, threads=threads):
        ext.extract(frame.image)
        n += 1
    return n


# ---------------------------------------------------------------------------
# Benchmarks


def _tune_allocator() -> str:
    """The pipeline's allocator setting (mallopt), applied to both loops alike."""
    try:
        from featx.engine.process import tune_allocator
    except ImportError:
        return "glibc defaults"
    tune_allocator()
    return "featx.engine.process.tune_allocator()"


def bench_speed(tmp: Path, seconds: float, cli: bool) -> None:
    import cv2

    cv2.setNumThreads(1)
    alloc = _tune_allocator()
    video = write_pan_video(tmp / "speed.mp4", seconds)
    baseline_loop(video)  # warm the page cache and the libraries
    featx_loop(video)
    wall = {"baseline": math.inf, "featx": math.inf}
    cpu = dict(wall)
    for _ in range(3):
        for name, fn in (("baseline", baseline_loop), ("featx", featx_loop)):
            t, c = time.perf_counter(), time.process_time()
            n = fn(video)
            wall[name] = min(wall[name], time.perf_counter() - t)
            cpu[name] = min(cpu[name], time.process_time() - c)
    print(f"speed: {n} frames 640x480 mp4v, DIS fast, 1 OpenCV thread, allocator: {alloc}")
    print("                                   wall ms/frame   CPU ms/frame")
    for name, label in (("baseline", "plain VideoCapture.read + DIS"),
                        ("featx", "featx iter_video + Flow (HOF)")):
        print(f"  {label:32s} {wall[name] / n * 1000:8.2f}       {cpu[name] / n * 1000:8.2f}")
    print(f"  ratio (baseline / featx)         {wall['baseline'] / wall['featx']:8.3f}       "
          f"{cpu['baseline'] / cpu['featx']:8.3f}   (target >= 0.85; CPU time is the "
          f"steadier number on a shared machine)")
    if cli:
        # both sides as whole processes (interpreter start-up and imports included)
        plain_cmd = [sys.executable, "-c", "import sys; sys.path.insert(0, %r); import bench_flow, cv2; "
                     "cv2.setNumThreads(1); bench_flow.baseline_loop(__import__('pathlib').Path(%r))"
                     % (str(Path(__file__).resolve().parent), str(video))]
        out = tmp / "flow.npy"
        cmd = [sys.executable, "-m", "featx", "extract", "flow", str(video), "-o", str(out),
               "--method", "dis", "--preset", "fast", "--quiet", "-j", "1", "--overwrite"]
        t_cli, t_plain = [], []
        for _ in range(3):
            t = time.perf_counter()
            subprocess.run(plain_cmd, check=True, capture_output=True)
            t_plain.append(time.perf_counter() - t)
            t = time.perf_counter()
            r = subprocess.run(cmd, capture_output=True, text=True)
            t_cli.append(time.perf_counter() - t)
            if r.returncode != 0:
                print(f"  CLI: not available ({r.stderr.strip().splitlines()[-1:] or r.returncode})")
                return
        dt, dp = sorted(t_cli)[1], sorted(t_plain)[1]
        print(f"  end to end, whole processes (median of 3): plain loop {dp / n * 1000:.2f} ms/frame, "
              f"featx CLI {dt / n * 1000:.2f} ms/frame, ratio {dp / dt:.3f} (target >= 0.85)")


def _child_memory(path: str) -> None:
    import cv2

    cv2.setNumThreads(1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    from featx.extractors.flow import Flow  # noqa: F401  (imports counted in "before")
    from featx.video import iter_video  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    n = featx_loop(Path(path))
    dt = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{n} {before} {peak} {dt:.1f}")


def bench_memory(tmp: Path, long_minutes: float) -> None:
    print("memory: peak RSS of a fresh process (reader + Flow, DIS fast), 640x480 mp4v 25 fps")
    for minutes in (1.0, long_minutes):
        t = time.perf_counter()
        video = write_pan_video(tmp / f"mem_{minutes:g}min.mp4", minutes * 60)
        made = time.perf_counter() - t
        r = subprocess.run([sys.executable, __file__, "--child-memory", str(video)],
                           capture_output=True, text=True, check=True)
        n, before, peak, dt = r.stdout.split()
        print(f"  {minutes:g} min ({n} frames, written in {made:.0f} s, read in {dt} s): "
              f"peak RSS {int(peak) / 1024:.0f} MB (after imports {int(before) / 1024:.0f} MB)")
        video.unlink()


def _one_video(path: str) -> int:
    import cv2

    cv2.setNumThreads(1)
    return featx_loop(Path(path), threads=1)


def bench_parallel(tmp: Path, seconds: float, n_videos: int = 4) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process whose OpenCV/FFmpeg threads hold locks can hang
    ctx = multiprocessing.get_context("spawn")

    videos = [str(write_pan_video(tmp / f"par{i}.mp4", seconds)) for i in range(n_videos)]
    times = {}
    for jobs in (1, 2, 1, 2):
        with ProcessPoolExecutor(jobs, mp_context=ctx) as pool:
            list(pool.map(_one_video, videos[:1]))  # start the workers
            t = time.perf_counter()
            list(pool.map(_one_video, videos))
            dt = time.perf_counter() - t
        times[jobs] = min(times.get(jobs, math.inf), dt)
    print(f"parallel: {n_videos} videos of {seconds:g} s, one process per video, "
          f"1 OpenCV thread, 1 decoding thread each")
    print(f"  -j 1: {times[1]:.2f} s   -j 2: {times[2]:.2f} s   speed-up {times[1] / times[2]:.2f}"
          f"  (target >= 1.6; {os.cpu_count()} CPUs)")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("which", nargs="*", help="speed, memory, parallel (default: all)")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the speed video")
    ap.add_argument("--long-minutes", type=float, default=10.0,
                    help="length of the long memory video (minutes)")
    ap.add_argument("--cli", action="store_true", help="also time the featx command line")
    ap.add_argument("--make-clip", action="store_true", help="write samples/clip.mp4 and exit")
    ap.add_argument("--make-scenes", action="store_true", help="write samples/scenes.mp4 and exit")
    ap.add_argument("--child-memory", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.which = args.which or ["speed", "memory", "parallel"]
    unknown = set(args.which) - {"speed", "memory", "parallel"}
    if unknown:
        ap.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    if args.child_memory:
        _child_memory(args.child_memory)
        return
    if args.make_clip or args.make_scenes:
        p = make_clip() if args.make_clip else make_scenes()
        print(f"wrote {p} ({p.stat().st_size / 1024:.0f} KB)")
        return
    with tempfile.TemporaryDirectory(prefix="featx-bench-") as d:
        tmp = Path(d)
        if "speed" in args.which:
            bench_speed(tmp, args.seconds, args.cli)
        if "memory" in args.which:
            bench_memory(tmp, args.long_minutes)
        if "parallel" in args.which:
            bench_parallel(tmp, args.seconds / 2)


if __name__ == "__main__":
    main()
