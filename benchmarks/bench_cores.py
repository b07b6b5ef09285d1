#!/usr/bin/env python
"""No idle core: ``-j 2`` against ``-j 1``, and how evenly the inputs were split.

Runs ``featx extract`` as whole processes, ``-j 1`` and ``-j 2`` interleaved, on

* ``--small`` small JPEGs (640x480, made from the samples with sensor-like noise):
  ``hog --resize 256x256`` and ``cnn``;
* ``--big`` 48-MP JPEGs (8000x6000, :func:`common.camera_photos`): ``cnn`` and
  ``hog --resize 256x256``.

For each it prints the median of ``--repeats`` runs of the whole process (start-up
included) and of the run's own time (the sidecar's ``timing.seconds``: first input to
last commit), the CPU seconds of the whole process tree (without the workers when a fork
server started them: ``cnn``), the speed-up of ``-j 2``, and, from the ``-j 2`` runs'
``FEATX_TRACE_CHUNKS`` log, what does not depend on how busy the machine is: the
inputs and CPU seconds each worker had, the chunk sizes handed out, and how far apart
the two workers finished (seconds, and in inputs' worth of time).  ``uptime``'s load
is printed before and after each case: the machine may be shared.

``--baseline DIR``: also time ``-j 2`` with the featx source tree in ``DIR`` (e.g. a
checkout of the previous commit) in the same interleaved rounds.

Usage::

    python benchmarks/bench_cores.py [--small 200] [--big 8] [--repeats 3] [--quick]
                                     [--only hog,cnn] [--baseline DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import as_installed, camera_photos  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
CASES = {"hog": ["hog", "--resize", "256x256"], "cnn": ["cnn"]}


def small_photos(folder: Path, n: int) -> Path:
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    bases = []
    for name in ("astronaut.png", "coffee.jpg", "chelsea.png", "rocket.jpg", "camera.png"):
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        bases.append(cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA))
    for i in range(n):
        noise = rng.normal(0, 3, bases[0].shape)
        img = np.clip(bases[i % len(bases)] + noise, 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"small{i:04d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return folder


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def run(args: list[str], folder: Path, jobs: int, out: Path, n: int, src: Path | None = None,
        trace: Path | None = None) -> tuple[float, float, float]:
    """Whole-process wall seconds, the sidecar's run seconds and the CPU seconds of the
    process tree (main process, workers, fork server) of one featx run."""
    env = dict(os.environ, PYTHONPATH=str(src or ROOT))
    env.pop("FEATX_TRACE_CHUNKS", None)
    if trace is not None:
        trace.unlink(missing_ok=True)
        env["FEATX_TRACE_CHUNKS"] = str(trace)
    cmd = [sys.executable, "-m", "featx", "extract", *args, str(folder), "-o", str(out), "-j", str(jobs),
           "-q", "--overwrite"]
    t = time.perf_counter()
    # (run from the output's folder: `python -m` puts the working folder first on sys.path,
    # which would shadow PYTHONPATH's tree when run from a featx checkout)
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=out.parent)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)   # CPU of the run's whole process tree (workers reaped)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-2000:].decode(errors='replace')}")
    side = json.loads(Path(str(out) + ".featx.json").read_text())
    assert side["inputs"]["processed"] == n and side["inputs"]["failed"] == 0, side["inputs"]
    return wall, side["timing"]["seconds"], ru.ru_utime + ru.ru_stime


def split(trace: Path) -> dict:
    """Per worker: inputs, CPU seconds, when it finished; the chunk sizes in start order."""
    per: dict[int, dict] = {}
    chunks = []
    for line in trace.read_text().splitlines():
        pid, n, cpu, t0, t1 = line.split()
        w = per.setdefault(int(pid), {"inputs": 0, "cpu": 0.0, "end": 0.0})
        w["inputs"] += int(n)
        w["cpu"] += float(cpu)
        w["end"] = max(w["end"], float(t1))
        chunks.append((float(t0), int(n)))
    return {"workers": per, "chunks": [n for _, n in sorted(chunks)]}


def case(name: str, folder: Path, n: int, tmp: Path, repeats: int, baseline: Path | None) -> None:
    args = CASES[name]
    print(f"\n## {name} on {n} photos in {folder.name}  (load before: {load()})")
    times: dict[str, list[tuple[float, float, float]]] = {"-j 1": [], "-j 2": []}
    if baseline:
        times["-j 2 (baseline)"] = []
    splits = []
    for _ in range(repeats):
        times["-j 1"].append(run(args, folder, 1, tmp / f"{name}1.npy", n))
        trace = tmp / "trace.txt"
        times["-j 2"].append(run(args, folder, 2, tmp / f"{name}2.npy", n, trace=trace))
        splits.append(split(trace))
        if baseline:
            times["-j 2 (baseline)"].append(run(args, folder, 2, tmp / f"{name}b.npy", n, src=baseline))
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in times.items()}
    for k, (w, s, c) in med.items():
        sp = "" if k == "-j 1" else f"   speed-up x{med['-j 1'][0] / w:.2f} (whole)  x{med['-j 1'][1] / s:.2f} (run)"
        print(f"  {k:16s} whole {w:7.2f} s   run {s:7.2f} s   {n / s:6.1f} photos/s   CPU {c:6.2f} s{sp}")
    for i, sp in enumerate(splits):
        ws = sorted(sp["workers"].values(), key=lambda w: w["end"])
        per_input = sum(w["cpu"] for w in ws) / max(1, sum(w["inputs"] for w in ws))
        gap = ws[-1]["end"] - ws[0]["end"] if len(ws) > 1 else float("nan")
        desc = ", ".join(f"{w['inputs']} inputs / {w['cpu']:.2f} s CPU" for w in ws)
        rest = times["-j 2"][i][2] - sum(w["cpu"] for w in ws)
        # workers forked by the main process are in its tree's CPU; those of a fork server
        # (extractors that are not fork-safe: cnn) are not, and then the tree is the rest
        rest = rest if rest > 0 else times["-j 2"][i][2]
        print(f"  -j 2 run {i + 1}: workers {desc} (in their chunks; the rest of the run {rest:.2f} s CPU); "
              f"finished {gap:.2f} s apart ({gap / per_input:.1f} inputs' CPU)  chunks {sp['chunks']}")
    print(f"  (load after: {load()})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--small", type=int, default=200, help="small JPEGs (640x480)")
    ap.add_argument("--big", type=int, default=8, help="48-MP JPEGs")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each (median; interleaved)")
    ap.add_argument("--only", default="hog,cnn", help="extractors")
    ap.add_argument("--baseline", type=Path, help="a featx source tree to time at -j 2 too")
    ap.add_argument("--quick", action="store_true", help="40 small, 4 big, 1 repeat")
    a = ap.parse_args()
    if a.quick:
        a.small, a.big, a.repeats = min(a.small, 40), min(a.big, 4), 1
    names = [x for x in a.only.split(",") if x]
    as_installed(ROOT, *([a.baseline] if a.baseline else []))
    print(f"bench_cores: {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, "
          f"load {load()}")
    with tempfile.TemporaryDirectory(prefix="bench-cores-") as d:
        tmp = Path(d)
        if a.small:
            small = small_photos(tmp / "small", a.small)
            for name in names:
                case(name, small, a.small, tmp, a.repeats, a.baseline)
        if a.big:
            big = camera_photos(tmp / "big48", a.big, megapixels=48)
            for name in names[::-1]:
                case(name, big, a.big, tmp, a.repeats, a.baseline)


if __name__ == "__main__":
    main()
