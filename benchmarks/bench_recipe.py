#!/usr/bin/env python
"""One recipe of three outputs against three separate runs (issue 13).

The job: ``hog --resize 256x256`` + ``gradients --resize 640x480`` + ``cnn``
(default model) over

* camera photos: ``--photos`` JPEGs of ``--mp`` megapixels (default 20 of
  12 MP, 4000x3000, quality 90), made from the sample photos with sensor-like
  noise so that they compress like real ones (:func:`common.camera_photos`);
* a real H.264 video (1280x720, 30 fps, ``--video-seconds`` long, made with
  ffmpeg/libx264 as ``bench_video.py`` does; skipped without an H.264
  encoder), at ``--fps 1`` (each output a vector per second of video, the
  common case for long videos) and for every frame of its first 10 s.

Each variant runs as whole processes (start-up, model loading and writing
included), with ``-j --jobs`` (default 1), interleaved, medians of
``--repeats``: "recipe" is one ``featx run``; "separate" is the three
``featx extract`` runs one after the other (their times added).  Peak RSS
is that of the largest process (``ru_maxrss`` of the waited-for children).
Targets (issue 13): the recipe >= 2x faster on photos and >= 2.5x on video,
its peak memory <= the largest separate run's + 50 %.

Usage::

    python benchmarks/bench_recipe.py [--photos 20] [--mp 12] [--repeats 3] [--jobs 1]
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import camera_photos  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
OUTPUTS = [("hog", "hog.npy", ["--resize", "256x256"]), ("gradients", "grad.npy", ["--resize", "640x480"]),
           ("cnn", "emb.npy", [])]


def run_measured(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (bytes, largest process) of ``cmd`` run in a fresh wrapper."""
    wrapper = ("import resource, subprocess, sys, time\n"
               "t = time.perf_counter()\n"
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
               "dt = time.perf_counter() - t\n"
               "if r.returncode: sys.stderr.buffer.write(r.stderr); sys.exit(r.returncode)\n"
               "print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)\n")
    r = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True, env=ENV)
    if r.returncode:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    dt, rss = r.stdout.split()
    return float(dt), int(rss)


def recipe_file(path: Path, inputs: list[Path], run: dict) -> Path:
    lines = [f"inputs = [{', '.join(repr(str(p)) for p in inputs)}]"]
    for k, v in run.items():
        text = f'"{v}"' if isinstance(v, str) else ("true" if v is True else "false" if v is False else repr(v))
        lines.append(f"{k} = {text}")
    for name, fname, extra in OUTPUTS:
        lines += ["", "[[output]]", f'extractor = "{name}"', f'path = "{fname}"']
        if extra:
            lines.append(f'resize = "{extra[1]}"')
    path.write_text("\n".join(lines) + "\n")
    return path


def compare(label: str, inputs: list[Path], run_flags: list[str], run_keys: dict, repeats: int, jobs: int,
            work: Path) -> dict:
    featx = [sys.executable, "-m", "featx"]
    rec_t, sep_t, rec_m, sep_m = [], [], [], []
    for i in range(repeats):
        d = work / f"{label}-{i}"
        (d / "rec").mkdir(parents=True)
        (d / "sep").mkdir()
        r = recipe_file(d / "rec" / "r.toml", inputs, {**run_keys, "jobs": jobs})
        t, m = run_measured([*featx, "run", str(r), "-q"])
        rec_t.append(t)
        rec_m.append(m)
        total, peak = 0.0, 0
        for name, fname, extra in OUTPUTS:
            t, m = run_measured([*featx, "extract", name, *map(str, inputs), "-o", str(d / "sep" / fname), *extra,
                                 *run_flags, "-j", str(jobs), "-q"])
            total += t
            peak = max(peak, m)
        sep_t.append(total)
        sep_m.append(peak)
        for _, fname, _ in OUTPUTS:  # the point of it all: the same bytes
            a, b = (d / "rec" / fname).read_bytes(), (d / "sep" / fname).read_bytes()
            assert a == b, f"{label}: {fname} differs between the recipe and the separate run"
        shutil.rmtree(d)
    return {"label": label, "recipe_s": statistics.median(rec_t), "separate_s": statistics.median(sep_t),
            "recipe_mb": max(rec_m) / 2**20, "separate_mb": max(sep_m) / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--mp", type=float, default=12.0)
    ap.add_argument("--video-seconds", type=float, default=30.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--exact-decode", action="store_true",
                    help="Both sides decode every JPEG in full (featx before reduced decoding).")
    ap.add_argument("--no-video", action="store_true", help="Photos only.")
    args = ap.parse_args()
    exact_flags, exact_keys = (["--exact-decode"], {"exact-decode": True}) if args.exact_decode else ([], {})
    work = Path(tempfile.mkdtemp(prefix="featx-bench-recipe-"))
    rows = []
    try:
        t = time.perf_counter()
        photos = camera_photos(work / "photos", args.photos, args.mp)
        print(f"{args.photos} photos of {args.mp:g} MP made in {time.perf_counter() - t:.0f} s", file=sys.stderr)
        rows.append(compare(f"{args.photos} photos, {args.mp:g} MP" + (", --exact-decode" if args.exact_decode
                                                                        else ""),
                            [photos], exact_flags, exact_keys, args.repeats, args.jobs, work))
        from bench_video import h264_writer, write_h264

        how = None if args.no_video else h264_writer()
        if args.no_video:
            pass
        elif how is None:
            print("no H.264 encoder (ffmpeg with libx264, or PyAV): video skipped", file=sys.stderr)
        else:
            video = work / "pan.mp4"
            write_h264(video, args.video_seconds, 30, (1280, 720), how)
            rows.append(compare(f"720p H.264 {args.video_seconds:g} s, --fps 1", [video], ["--fps", "1"],
                                {"fps": 1}, args.repeats, args.jobs, work))
            rows.append(compare("720p H.264, every frame of 10 s", [video], ["--end", "10"], {"end": 10},
                                args.repeats, args.jobs, work))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nhog --resize 256x256 + gradients --resize 640x480 + cnn, -j {args.jobs}, medians of "
          f"{args.repeats}; every output byte-identical between the two\n")
    print("| input | 3 separate runs | 1 recipe | speed-up | peak RSS separate (largest) | peak RSS recipe |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['label']} | {r['separate_s']:.1f} s | {r['recipe_s']:.1f} s | "
              f"{r['separate_s'] / r['recipe_s']:.2f}x | {r['separate_mb']:.0f} MB | {r['recipe_mb']:.0f} MB |")


if __name__ == "__main__":
    main()
