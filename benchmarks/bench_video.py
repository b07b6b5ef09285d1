#!/usr/bin/env python
"""Per-frame extraction from a real H.264 video: featx against plain OpenCV loops.

Makes an H.264 video (default 1280x720, 30 fps, 30 s: slow pans over the sample
photos with sensor-like noise, ``libx264 -preset veryfast -crf 17 -g 60``, about
3 Mbit/s at 720p)
with the ``ffmpeg`` command or, failing that, PyAV (``pip install av``); OpenCV
cannot write H.264.  Without either the benchmark says so and exits 0.

Then, for every frame and for ``--fps 1``, and for each extractor
(``gradients``, ``hog --resize 256x256``), runs each variant as its own process,
one at a time (medians of ``--repeats``, the runs interleaved):

* decode only: a plain ``cv2.VideoCapture`` loop, ``grab()`` every frame and
  ``retrieve()`` the frames kept (every frame: grab + retrieve = ``read()``):
  the limit;
* plain loop + the same extractor call: the same loop, ``cvtColor`` to RGB and
  the featx extractor's ``extract_resized`` on each kept frame;
* featx reader + extractor: ``featx.video.iter_video`` (what ``featx extract``
  decodes videos with) and the same call;
* featx: ``featx extract NAME VIDEO -o out.npy -j 1 [--fps 1] [--resize ...]``,
  against the plain-loop process, both whole processes (start-up, imports and
  writing included).

The first three report the time of their frame loop; all use what featx's
``-j 1`` uses: one OpenCV thread and one FFmpeg decoding thread
(``CAP_PROP_N_THREADS=1``).  Every-frame runs stop at ``--every-seconds`` (10 s,
``--end``) to keep the benchmark short; ``--fps 1`` runs decode the whole video.
Figures are milliseconds per source frame decoded; ratios are plain / featx (target: featx >= 0.9x the plain
loop with the same extractor call).

Usage::

    python benchmarks/bench_video.py [--seconds 30] [--size 1280x720] [--repeats 3]
"""
from __future__ import annotations

import argparse
import math
import os
import shutil
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
PHOTOS = ("astronaut.png", "coffee.jpg", "chelsea.png", "rocket.jpg", "camera.png")
# featx tunes glibc's allocator at start-up (featx.engine.process.tune_allocator); the plain
# loops run under the same setting (DESIGN.md: measure both the same way).
ENV = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_=str(32 * 1024 * 1024),
           MALLOC_TRIM_THRESHOLD_=str(256 * 1024 * 1024))

# ---------------------------------------------------------------------------
# The test video


def pan_frames(seconds: float, fps: float, size: tuple[int, int], seed: int = 0):
    """BGR frames: 4-second slow pans (with a slight zoom) over each sample photo in
    turn, plus Gaussian noise (sigma 2.5: precomputed fields, shifted at random)."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    noise = [rng.normal(0.0, 2.5, (h, w, 3)).astype(np.int16) for _ in range(7)]
    bases = []
    for name in PHOTOS:
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        s = 1.35 * max(w / img.shape[1], h / img.shape[0])
        bases.append(cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)),
                                interpolation=cv2.INTER_CUBIC))
    n = int(round(seconds * fps))
    for i in range(n):
        t = i / fps
        base = bases[int(t // 4) % len(bases)]
        u = (t % 4) / 4
        bh, bw = base.shape[:2]
        zoom = 1.0 + 0.08 * math.sin(math.pi * u)
        cx = w / 2 + (bw - w) * u
        cy = h / 2 + (bh - h) * (0.5 + 0.4 * math.sin(2 * math.pi * u))
        m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]])
        frame = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        shift = (int(rng.integers(h)), int(rng.integers(w)))    # a fresh noise pattern per frame
        yield np.clip(frame + np.roll(noise[i % len(noise)], shift, (0, 1)), 0, 255).astype(np.uint8)


def h264_writer() -> str | None:
    """'ffmpeg' or 'pyav' when one of them can encode H.264 (libx264), else None."""
    exe = shutil.which("ffmpeg")
    if exe:
        r = subprocess.run([exe, "-hide_banner", "-encoders"], capture_output=True, text=True)
        if "libx264" in r.stdout:
            return "ffmpeg"
    try:
        import av

        av.codec.Codec("libx264", "w")
        return "pyav"
    except Exception:
        return None


def write_h264(path: Path, seconds: float, fps: int, size: tuple[int, int], how: str) -> None:
    w, h = size
    frames = pan_frames(seconds, fps, size)
    if how == "ffmpeg":
        cmd = ["ffmpeg", "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "bgr24",
               "-s", f"{w}x{h}", "-r", str(fps), "-i", "-", "-c:v", "libx264", "-preset", "veryfast",
               "-crf", "17", "-g", "60", "-pix_fmt", "yuv420p", str(path)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE)
        for f in frames:
            proc.stdin.write(f.tobytes())
        proc.stdin.close()
        if proc.wait():
            raise RuntimeError("ffmpeg failed to write the test video")
        return
    import av

    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=fps)
        st.width, st.height, st.pix_fmt = w, h, "yuv420p"
        st.options = {"preset": "veryfast", "crf": "17", "g": "60"}
        for f in frames:
            for pkt in st.encode(av.VideoFrame.from_ndarray(f, format="bgr24")):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)


# ---------------------------------------------------------------------------
# The loops (whole processes)

PLAIN = r"""
import sys, math, time, cv2
cv2.setNumThreads(1)
path, fps, name, resize, end = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
ext = None
if name != "-":
    from featx.api import open_extractor
    ext = open_extractor(name)
    size = tuple(int(v) for v in resize.split("x")) if resize != "-" else None
t0 = time.perf_counter()
cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, [cv2.CAP_PROP_N_THREADS, 1])
kept, target, origin = 0, None, None
while cap.grab():
    if end and cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 >= end - 1e-6:
        break
    if fps:
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        origin = t if origin is None else origin
        if target is not None and t < target - 1e-6:
            continue
        target = origin + (math.floor((t - origin) * fps + 1e-6 * fps) + 1) / fps
    ok, bgr = cap.retrieve()
    if not ok:
        break
    kept += 1
    if ext is not None:
        ext.extract_resized(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), size, "stretch")
cap.release()
print(kept, time.perf_counter() - t0)
"""

READER = r"""
import sys, time, cv2
cv2.setNumThreads(1)
from featx.api import open_extractor
from featx.video import iter_video
path, fps, name, resize, end = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
ext = open_extractor(name)
size = tuple(int(v) for v in resize.split("x")) if resize != "-" else None
t0 = time.perf_counter()
kept = 0
for frame in iter_video(path, fps=fps or None, end=end or None, threads=1):
    ext.extract_resized(frame.image, size, "stretch")
    kept += 1
print(kept, time.perf_counter() - t0)
"""


def script_cmd(script: str, video: Path, fps: float, name: str | None, resize: str | None,
               end: float) -> list[str]:
    return [sys.executable, "-c", script, str(video), str(fps or 0), name or "-", resize or "-",
            str(end or 0)]


def featx_cmd(video: Path, fps: float, name: str, resize: str | None, out: Path,
              end: float) -> list[str]:
    cmd = [sys.executable, "-m", "featx", "extract", name, str(video), "-o", str(out), "-j", "1", "-q",
           "--overwrite"]
    if fps:
        cmd += ["--fps", str(fps)]
    if end:
        cmd += ["--end", str(end)]
    if resize:
        cmd += ["--resize", resize]
    return cmd


def run(cmd: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    r = subprocess.run(cmd, check=True, capture_output=True, text=True, env=ENV)
    return time.perf_counter() - t, r.stdout


def measure(video: Path, fps: float, name: str, resize: str | None, out: Path, repeats: int,
            end: float) -> dict:
    """Medians (seconds) of each variant; ``*_loop`` is the time inside the process
    (the frame loop), the others whole-process wall times."""
    cmds = {"decode": script_cmd(PLAIN, video, fps, None, None, end),
            "plain": script_cmd(PLAIN, video, fps, name, resize, end),
            "reader": script_cmd(READER, video, fps, name, resize, end),
            "featx": featx_cmd(video, fps, name, resize, out, end)}
    times: dict[str, list[float]] = {}
    kept = {}
    for i in range(repeats):
        for k in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            wall, stdout = run(cmds[k])
            times.setdefault(k, []).append(wall)
            if k != "featx":
                count, loop = stdout.split()
                kept[k] = int(count)
                times.setdefault(k + "_loop", []).append(float(loop))
    rows = np.load(out, mmap_mode="r").shape[0]
    if not rows == kept["plain"] == kept["reader"] == kept["decode"]:
        print(f"warning: frames kept differ: featx {rows}, {kept}")
    res = {k: float(np.median(v)) for k, v in times.items()}
    res["kept"] = rows
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the test video")
    ap.add_argument("--fps-source", type=int, default=30, help="frame rate of the test video")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every-seconds", type=float, default=10.0,
                    help="every-frame runs stop at this time (--end; 0: the whole video)")
    ap.add_argument("--video", type=Path, help="use this video instead of making one")
    ap.add_argument("--default-allocator", action="store_true",
                    help="run every variant under glibc's default malloc settings (featx's CLI "
                         "still tunes its own), as a library caller's process would")
    args = ap.parse_args()
    if args.default_allocator:
        for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
            ENV.pop(k, None)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    with tempfile.TemporaryDirectory(prefix="featx-bench-video-") as tmp:
        tmp = Path(tmp)
        video = args.video
        if video is None:
            how = h264_writer()
            if how is None:
                print("bench_video: skipped: no H.264 encoder here (OpenCV cannot write H.264); install "
                      "ffmpeg with libx264 (apt-get install ffmpeg) or PyAV (pip install av)")
                return
            video = tmp / "pans.mp4"
            t = time.perf_counter()
            write_h264(video, args.seconds, args.fps_source, size, how)
            print(f"# made {video.name} with {how} in {time.perf_counter() - t:.1f} s")
        from featx.video import probe_video

        info = probe_video(video)
        print(f"# {info.width}x{info.height} {info.fourcc} {info.fps:g} fps, {info.frame_count} frames, "
              f"{video.stat().st_size / 1e6:.1f} MB; {os.cpu_count()} CPUs; whole processes, "
              f"median of {args.repeats}")
        n = info.frame_count
        out = tmp / "out.npy"
        print("\nms per source frame. decode only, plain loop + extractor, featx reader + extractor: "
              "time of the frame loop inside one process; featx -j 1 and the plain loop's "
              "process: whole processes (start-up included)\n")
        print("| sampling | extractor | decode only | plain loop + extractor | featx reader + extractor "
              "| ratio | featx -j 1 (whole) | plain loop (whole) | ratio |")
        print("|---|---|---|---|---|---|---|---|---|")
        every_end = min(args.every_seconds, info.duration) if args.every_seconds else 0.0
        for fps in (0, 1):
            end = 0.0 if fps else every_end
            m = round(end * info.fps) if end else n            # source frames decoded
            for name, resize in (("gradients", None), ("hog", "256x256")):
                r = measure(video, fps, name, resize, out, args.repeats, end)
                ms = {k: v / m * 1e3 for k, v in r.items() if k != "kept"}
                label = (f"every frame ({m})" if not fps else f"--fps {fps} ({r['kept']} of {m})")
                ext = name + (f" --resize {resize}" if resize else "")
                print(f"| {label} | {ext} | {ms['decode_loop']:.2f} | {ms['plain_loop']:.2f} | "
                      f"{ms['reader_loop']:.2f} | **{r['plain_loop'] / r['reader_loop']:.2f}x** | "
                      f"{ms['featx']:.2f} | {ms['plain']:.2f} | **{r['plain'] / r['featx']:.2f}x** |",
                      flush=True)


if __name__ == "__main__":
    main()
