#!/usr/bin/env python
"""Per-frame extraction from real H.264 videos: featx against the decode limit.

Makes H.264 videos (default 1280x720 and 1920x1080, 30 fps: slow pans over the sample
photos with sensor-like noise, ``libx264 -preset veryfast -crf 17 -g 60``, about
3 Mbit/s at 720p) with the ``ffmpeg`` command or, failing that, PyAV (``pip install
av``; its wheels carry libx264); OpenCV cannot write H.264.  Without either the
benchmark says so and exits 0.

First the decode-only limit, every frame and ``--fps 1``, in one process each:
``cv2.VideoCapture`` with one FFmpeg thread (what featx's workers use) and with
a thread per CPU (``CAP_PROP_N_THREADS``), and PyAV with one thread and with threaded
decoding (``thread_type = "AUTO"``): ``grab()`` every frame and ``retrieve()`` (or
``to_ndarray``) only the frames kept.

Then, for every frame and for ``--fps 1``, and for each extractor (``cnn``,
``hog --resize 256x256``, ``flow``; ``--extractors``), runs each variant as its own
process, one at a time (medians of ``--repeats``, the runs interleaved):

* decode only: the plain ``cv2.VideoCapture`` loop above, one thread;
* plain loop + the same extractor call: the same loop, ``cvtColor`` to RGB and the
  featx extractor's own call on each kept frame (``cnn``: ``preprocess`` and
  ``extract_batch`` in batches of 16 on one inference thread, as a ``-j 2`` worker
  runs it; ``flow``: ``reset`` then one call per frame): (decode + extractor), the
  reference;
* featx reader + extractor: ``featx.video.iter_video`` (what ``featx extract``
  decodes videos with) and the same calls;
* featx: ``featx extract NAME VIDEO -o out.npy -j 1`` and ``-j 2``
  ``[--fps 1] [--resize ...]``, whole processes (start-up, imports and writing
  included), against the plain loop's frame loop (target: ``-j 2`` within 1.2x of
  decode + extractor) and against the plain loop's whole process.

Loops use one OpenCV thread and one FFmpeg decoding thread (``CAP_PROP_N_THREADS=1``).
Every-frame runs stop at ``--every-seconds`` (``--end``) to keep the benchmark short;
``--fps 1`` runs decode the whole video; skipped frames are grabbed, never converted.
Figures are milliseconds per source frame decoded.

Usage::

    python benchmarks/bench_video.py [--seconds 30] [--sizes 1280x720,1920x1080] [--repeats 3]
                                     [--extractors cnn,hog,flow] [--quick]
"""
from __future__ import annotations

import argparse
import json
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
from common import as_installed  # noqa: E402

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
    ext = open_extractor(name, **({"threads": 1} if name == "cnn" else {}))
    size = tuple(int(v) for v in resize.split("x")) if resize != "-" else None
    ext.reset()
    batched = ext.batch_size > 1 and not ext.temporal
batch = []
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
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        if batched:
            batch.append(ext.preprocess(rgb))
            if len(batch) == ext.batch_size:
                ext.extract_batch(batch)
                batch = []
        else:
            ext.extract_resized(rgb, size, "stretch")
if batch:
    ext.extract_batch(batch)
cap.release()
print(kept, time.perf_counter() - t0)
"""

READER = r"""
import sys, time, cv2
cv2.setNumThreads(1)
from featx.api import open_extractor
from featx.video import iter_video
path, fps, name, resize, end = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5])
ext = open_extractor(name, **({"threads": 1} if name == "cnn" else {}))
size = tuple(int(v) for v in resize.split("x")) if resize != "-" else None
ext.reset()
batched = ext.batch_size > 1 and not ext.temporal
batch = []
t0 = time.perf_counter()
kept = 0
for frame in iter_video(path, fps=fps or None, end=end or None, threads=1):
    if batched:
        batch.append(ext.preprocess(frame.image))
        if len(batch) == ext.batch_size:
            ext.extract_batch(batch)
            batch = []
    else:
        ext.extract_resized(frame.image, size, "stretch")
    kept += 1
if batch:
    ext.extract_batch(batch)
print(kept, time.perf_counter() - t0)
"""

#: Decode only, the other ways: OpenCV with its default threads, PyAV with 1 or automatic threads.
DECODERS = r"""
import sys, math, time
how, path, fps, end = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
import cv2
cv2.setNumThreads(1)

def keep_rule():
    state = {"target": None, "origin": None}
    def keep(t):
        if not fps:
            return True
        state["origin"] = t if state["origin"] is None else state["origin"]
        if state["target"] is not None and t < state["target"] - 1e-6:
            return False
        state["target"] = state["origin"] + (math.floor((t - state["origin"]) * fps + 1e-6 * fps) + 1) / fps
        return True
    return keep

keep, kept = keep_rule(), 0
t0 = time.perf_counter()
if how.startswith("cv2"):
    import os
    n = 1 if how == "cv2-1" else (os.cpu_count() or 1)  # (OpenCV's default follows setNumThreads: 1)
    params = [cv2.CAP_PROP_N_THREADS, n]
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    while cap.grab():
        t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if end and t >= end - 1e-6:
            break
        if keep(t):
            ok, bgr = cap.retrieve()
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            kept += 1
    cap.release()
else:
    import av
    with av.open(path) as c:
        st = c.streams.video[0]
        if how == "pyav-1":
            st.thread_count = 1
        else:
            st.thread_type = "AUTO"
        for frame in c.decode(st):
            t = float(frame.time)
            if end and t >= end - 1e-6:
                break
            if keep(t):
                frame.to_ndarray(format="rgb24")
                kept += 1
print(kept, time.perf_counter() - t0)
"""


def script_cmd(script: str, video: Path, fps: float, name: str | None, resize: str | None,
               end: float) -> list[str]:
    return [sys.executable, "-c", script, str(video), str(fps or 0), name or "-", resize or "-",
            str(end or 0)]


def featx_cmd(video: Path, fps: float, name: str, resize: str | None, out: Path,
              end: float, jobs: int = 1) -> list[str]:
    cmd = [sys.executable, "-m", "featx", "extract", name, str(video), "-o", str(out), "-j", str(jobs), "-q",
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
            "featx": featx_cmd(video, fps, name, resize, out, end, 1),
            "featx2": featx_cmd(video, fps, name, resize, out.with_name("out2.npy"), end, 2)}
    times: dict[str, list[float]] = {}
    kept = {}
    for i in range(repeats):
        for k in (list(cmds) if i % 2 == 0 else list(cmds)[::-1]):
            wall, stdout = run(cmds[k])
            times.setdefault(k, []).append(wall)
            if k.startswith("featx"):  # the run's own time, from its first input to its last commit
                side = json.loads(Path(cmds[k][cmds[k].index("-o") + 1] + ".featx.json").read_text())
                times.setdefault(k + "_run", []).append(float(side["timing"]["seconds"]))
            if not k.startswith("featx"):
                count, loop = stdout.split()
                kept[k] = int(count)
                times.setdefault(k + "_loop", []).append(float(loop))
    rows = np.load(out, mmap_mode="r").shape[0]
    rows2 = np.load(out.with_name("out2.npy"), mmap_mode="r").shape[0]
    if not rows == rows2 == kept["plain"] or not kept["plain"] == kept["reader"] == kept["decode"]:
        print(f"warning: frames kept differ: featx {rows} / {rows2} rows, {kept}")
    res = {k: float(np.median(v)) for k, v in times.items()}
    res["kept"] = kept["plain"]
    return res


def decoders(video: Path, fps: float, end: float, repeats: int) -> dict:
    """Decode-only seconds (medians, interleaved) of cv2 (1 / default threads) and PyAV
    (1 / automatic threads); PyAV left out if it is not installed."""
    hows = ["cv2-1", "cv2-auto"]
    try:
        import av  # noqa: F401

        hows += ["pyav-1", "pyav-auto"]
    except ImportError:
        pass
    times: dict[str, list[float]] = {}
    kept = {}
    for i in range(repeats):
        for how in (hows if i % 2 == 0 else hows[::-1]):
            _, stdout = run([sys.executable, "-c", DECODERS, how, str(video), str(fps or 0), str(end or 0)])
            count, loop = stdout.split()
            kept[how] = int(count)
            times.setdefault(how, []).append(float(loop))
    if len(set(kept.values())) > 1:
        print(f"warning: decoders kept different frames: {kept}")
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--sizes", default="1280x720,1920x1080", help="WIDTHxHEIGHT of each test video")
    ap.add_argument("--size", help="one size only (as --sizes)")
    ap.add_argument("--fps-source", type=int, default=30, help="frame rate of the test video")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--every-seconds", type=float, default=10.0,
                    help="every-frame runs stop at this time (--end; 0: the whole video)")
    ap.add_argument("--extractors", default="cnn,hog,flow", help="of cnn, hog, flow, gradients")
    ap.add_argument("--quick", action="store_true", help="12-s videos, every frame for 4 s, 1 repeat")
    ap.add_argument("--decode-only", action="store_true", help="only the decode-only table")
    ap.add_argument("--no-decoders", action="store_true", help="leave out the decode-only table")
    ap.add_argument("--sampling", default="0,1", help="of 0 (every frame) and 1 (--fps 1)")
    ap.add_argument("--video", type=Path, help="use this video instead of making one")
    ap.add_argument("--default-allocator", action="store_true",
                    help="run every variant under glibc's default malloc settings (featx's CLI "
                         "still tunes its own), as a library caller's process would")
    args = ap.parse_args()
    as_installed()
    if args.quick:
        args.seconds, args.every_seconds, args.repeats = 12.0, 4.0, 1
    samplings = [int(v) for v in args.sampling.split(",")]
    if args.default_allocator:
        for k in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"):
            ENV.pop(k, None)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in (args.size or args.sizes).split(",")]
    resizes = {"hog": "256x256", "gradients": None, "cnn": None, "flow": None}
    names = [n.strip() for n in args.extractors.split(",") if n.strip()]
    print(f"# {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f} at the start; whole processes, "
          f"median of {args.repeats}, interleaved")
    with tempfile.TemporaryDirectory(prefix="featx-bench-video-") as tmp:
        tmp = Path(tmp)
        videos = [args.video] if args.video else []
        if not videos:
            how = h264_writer()
            if how is None:
                print("bench_video: skipped: no H.264 encoder here (OpenCV cannot write H.264); install "
                      "ffmpeg with libx264 (apt-get install ffmpeg) or PyAV (pip install av)")
                return
            for size in sizes:
                video = tmp / f"pans-{size[1]}p.mp4"
                t = time.perf_counter()
                write_h264(video, args.seconds, args.fps_source, size, how)
                print(f"# made {video.name} with {how} (libx264) in {time.perf_counter() - t:.1f} s")
                videos.append(video)
        from featx.video import probe_video

        for video in videos:
            info = probe_video(video)
            print(f"\n## {info.width}x{info.height} {info.fourcc} {info.fps:g} fps, {info.frame_count} frames, "
                  f"{video.stat().st_size / 1e6:.1f} MB\n")
            n = info.frame_count
            every_end = min(args.every_seconds, info.duration) if args.every_seconds else 0.0
            if not args.no_decoders:
                print("Decode only, ms per source frame (frame loop in one process; kept frames converted to RGB):\n")
                print("| sampling | cv2, 1 thread | cv2, a thread per CPU | PyAV, 1 thread | PyAV, threaded (AUTO) |")
                print("|---|---|---|---|---|")
            for fps in () if args.no_decoders else samplings:
                end = 0.0 if fps else every_end
                m = round(end * info.fps) if end else n
                d = decoders(video, fps, end, args.repeats)
                cells = [f"{d[k] / m * 1e3:.2f}" if k in d else "—" for k in ("cv2-1", "cv2-auto", "pyav-1", "pyav-auto")]
                label = "every frame" if not fps else f"--fps {fps}"
                print(f"| {label} ({m} frames) | " + " | ".join(cells) + " |", flush=True)
            if args.decode_only:
                continue
            out = tmp / "out.npy"
            print("\nms per source frame. decode only, plain loop (decode + extractor), featx reader + "
                  "extractor: the frame loop inside one process; featx -j 1 / -j 2: the run's own time "
                  "(its sidecar's timing.seconds: first input to last commit, start-up left out as the "
                  "loops leave theirs out), whole process in brackets; ratios: featx / (decode + "
                  "extractor) (target at -j 2: <= 1.2) and featx -j 2 / the plain loop, both whole "
                  "processes\n")
            print("| sampling | extractor | decode only | decode + extractor (plain loop) | featx reader + extractor "
                  "| featx -j 1 (whole) | featx -j 2 (whole) | -j 1 / (decode + extr.) | **-j 2 / (decode + extr.)** "
                  "| plain loop (whole) | -j 2 / plain, whole |")
            print("|---|---|---|---|---|---|---|---|---|---|---|")
            for fps in samplings:
                end = 0.0 if fps else every_end
                m = round(end * info.fps) if end else n            # source frames decoded
                for name in names:
                    resize = resizes.get(name)
                    r = measure(video, fps, name, resize, out, args.repeats, end)
                    ms = {k: v / m * 1e3 for k, v in r.items() if k != "kept"}
                    label = (f"every frame ({m})" if not fps else f"--fps {fps} ({r['kept']} of {m})")
                    ext = name + (f" --resize {resize}" if resize else "")
                    print(f"| {label} | {ext} | {ms['decode_loop']:.2f} | {ms['plain_loop']:.2f} | "
                          f"{ms['reader_loop']:.2f} | {ms['featx_run']:.2f} ({ms['featx']:.2f}) | "
                          f"{ms['featx2_run']:.2f} ({ms['featx2']:.2f}) | "
                          f"{r['featx_run'] / r['plain_loop']:.2f}× | **{r['featx2_run'] / r['plain_loop']:.2f}×** | "
                          f"{ms['plain']:.2f} | {r['featx2'] / r['plain']:.2f}× |", flush=True)
    print(f"\n# load at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
