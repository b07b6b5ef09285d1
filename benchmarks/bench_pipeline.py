"""End-to-end benchmark of the featx pipeline against plain loops, in one run.

Builds a folder of real 640x480 JPEGs from samples/ (random crops, flips and
scales of the photos), then measures, repeating each measurement and
reporting medians:

* featx end-to-end (the CLI, writing .npy) vs a plain Python loop of
  decode + the same extractor call, both with -j 1 (target >= 0.85x); both
  are timed as whole processes (interpreter start-up and imports included);
* featx -j 2 vs -j 1 (target >= 1.6x on 2 cores);
* featx's hog vs skimage.feature.hog with the same parameters (target >= 8x);
* peak memory (max RSS of the process tree) for 2,000 vs 200 images;
* start-up: wall time of `featx --help` and `featx list`.

Every process (featx and the baselines) runs with the same allocator
settings (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_, as featx sets them).

    python benchmarks/bench_pipeline.py [--images 200] [--repeat 3] [--quick]
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

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
ENV = dict(os.environ, MALLOC_MMAP_THRESHOLD_=str(32 * 1024 * 1024),
           MALLOC_TRIM_THRESHOLD_=str(256 * 1024 * 1024))


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n distinct 640x480 JPEGs cut from the sample photos."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [cv2.imread(str(p)) for p in sorted(SAMPLES.iterdir()) if p.suffix in (".png", ".jpg")]
    photos = [p if p.ndim == 3 else cv2.cvtColor(p, cv2.COLOR_GRAY2BGR) for p in photos]
    out = []
    for i in range(n):
        src = photos[i % len(photos)]
        h, w = src.shape[:2]
        s = rng.uniform(0.6, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = src[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        img = cv2.resize(crop, (640, 480), interpolation=cv2.INTER_LINEAR)
        p = folder / f"img{i:05d}.jpg"
        cv2.imwrite(str(p), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(p)
    return out


PLAIN_LOOP = r"""
import sys, time, cv2, numpy as np
from featx.registry import get
from featx.extractor import build_params
name, params, files = sys.argv[1], eval(sys.argv[2]), sys.argv[3:]
ext = get(name)(build_params(get(name), params))
t = time.perf_counter()
for f in files:
    img = cv2.imread(f, cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    v = ext.extract(img)
print(time.perf_counter() - t)
"""

SKIMAGE_LOOP = r"""
import sys, time, cv2
from skimage.feature import hog
files = sys.argv[1:]
t = time.perf_counter()
for f in files:
    img = cv2.cvtColor(cv2.imread(f), cv2.COLOR_BGR2RGB)
    hog(img, orientations=9, pixels_per_cell=(8, 8), cells_per_block=(3, 3), block_norm="L2-Hys",
        channel_axis=-1)
print(time.perf_counter() - t)
"""

RSS = r"""
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""


def featx_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "featx", *map(str, args)]


def time_featx(name, folder, out, jobs, extra=()) -> float:
    t = time.perf_counter()
    subprocess.run(featx_cmd("extract", name, folder, "-o", out, "-j", jobs, "-q", "--overwrite", *extra),
                   check=True, env=ENV)
    return time.perf_counter() - t


def time_plain(name, params, files, wall: bool = True) -> float:
    """The plain loop's time: whole-process wall time (start-up and imports included,
    as for the featx CLI it is compared with), or just the loop (wall=False)."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", PLAIN_LOOP, name, repr(params), *map(str, files)],
                       check=True, env=ENV, capture_output=True, text=True)
    return time.perf_counter() - t if wall else float(r.stdout.strip())


def time_plain_two(name, params, files) -> float:
    """Two plain-loop processes at once, each on half the files: the machine's own
    ceiling for two processes (2 vCPUs may share a physical core)."""
    t = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", PLAIN_LOOP, name, repr(params), *map(str, half)],
                              env=ENV, stdout=subprocess.DEVNULL)
             for half in (files[0::2], files[1::2])]
    for p in procs:
        assert p.wait() == 0
    return time.perf_counter() - t


def median_of(fn, repeat):
    vals = [fn() for _ in range(repeat)]
    return statistics.median(vals), vals


def peak_rss_mb(cmd) -> float:
    r = subprocess.run([sys.executable, "-c", RSS, *cmd], check=True, env=ENV, capture_output=True, text=True)
    return int(r.stdout.strip()) / 1024.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=500,
                    help="at least 200; more amortises the fixed start-up of each process")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--memory-images", type=int, default=2000)
    ap.add_argument("--skimage-images", type=int, default=30)
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (a smoke run)")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeat, args.memory_images, args.skimage_images = 40, 1, 200, 5
    work = Path(tempfile.mkdtemp(prefix="featx-bench-"))
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    try:
        files = make_images(work / "imgs", args.images)
        n = len(files)
        print(f"{n} images 640x480 JPEG in {work}; repeat {args.repeat}, medians", flush=True)

        # start-up
        st_help, _ = median_of(lambda: _wall(featx_cmd("--help")), 5)
        st_list, _ = median_of(lambda: _wall(featx_cmd("list")), 3)
        res["startup_s"] = {"help": st_help, "list": st_list}
        print(f"start-up: featx --help {st_help*1e3:.0f} ms, featx list {st_list*1e3:.0f} ms", flush=True)

        for label, name, params in (("gradients", "gradients", {}), ("hog", "hog", {}),
                                    ("hog-cell16", "hog", {"cell_size": 16})):
            extra = [f"--{k.replace('_', '-')}={v}" for k, v in params.items()]
            plain, _ = median_of(lambda: time_plain(name, params, files), args.repeat)
            plain2, _ = median_of(lambda: time_plain_two(name, params, files), args.repeat)
            j1, _ = median_of(lambda: time_featx(name, work / "imgs", work / f"{label}.npy", 1, extra), args.repeat)
            j2, _ = median_of(lambda: time_featx(name, work / "imgs", work / f"{label}.npy", 2, extra), args.repeat)
            mb = os.path.getsize(work / f"{label}.npy") / n / 1e6
            res[label] = {"plain_img_s": n / plain, "plain_2proc_img_s": n / plain2, "featx_j1_img_s": n / j1,
                          "featx_j2_img_s": n / j2, "ratio_j1_vs_plain": plain / j1, "ratio_j2_vs_j1": j1 / j2,
                          "machine_2proc_scaling": plain / plain2, "mb_per_image": mb}
            print(f"{label:10s} ({mb:.2f} MB/img written): plain loop {n/plain:6.1f} img/s | featx -j1 "
                  f"{n/j1:6.1f} img/s ({plain/j1:.2f}x plain; target >= 0.85) | -j2 {n/j2:6.1f} img/s "
                  f"({j1/j2:.2f}x -j1; target >= 1.6) | two plain loops at once {n/plain2:6.1f} img/s "
                  f"({plain/plain2:.2f}x one: the machine's ceiling)", flush=True)

        sk_files = files[: args.skimage_images]
        sk = statistics.median(float(subprocess.run([sys.executable, "-c", SKIMAGE_LOOP, *map(str, sk_files)],
                               check=True, env=ENV, capture_output=True, text=True).stdout)
                               for _ in range(args.repeat))
        fx = statistics.median(time_plain("hog", {}, sk_files, wall=False) for _ in range(args.repeat))
        res["hog_vs_skimage"] = {"skimage_ms": sk / len(sk_files) * 1e3, "featx_ms": fx / len(sk_files) * 1e3,
                                 "ratio": sk / fx}
        print(f"hog vs skimage.feature.hog (decode included in both): {sk/len(sk_files)*1e3:.1f} ms vs "
              f"{fx/len(sk_files)*1e3:.1f} ms per image -> {sk/fx:.1f}x (target >= 8)", flush=True)

        # memory: the same run over 200 and over many images (hard links to the same files)
        big = work / "many"
        big.mkdir()
        for i in range(args.memory_images):
            os.link(files[i % n], big / f"m{i:06d}.jpg")
        small = work / "few"
        small.mkdir()
        for i in range(min(200, args.memory_images)):
            os.link(files[i % n], small / f"m{i:06d}.jpg")
        mem = {}
        for label, folder in (("few", small), ("many", big)):
            for j in (1, 2):
                cmd = featx_cmd("extract", "hog", folder, "-o", work / "mem.npy", "-j", j, "-q", "--overwrite",
                                "--cell-size", "16")
                mem[f"{label}_j{j}"] = statistics.median(peak_rss_mb(cmd) for _ in range(max(1, args.repeat - 1)))
        res["peak_rss_mb"] = mem
        nf, nm = min(200, args.memory_images), args.memory_images
        print(f"peak RSS (largest process), hog --cell-size 16: {nf} images {mem['few_j1']:.0f} MB (-j1) / "
              f"{mem['few_j2']:.0f} MB (-j2); {nm} images {mem['many_j1']:.0f} MB / {mem['many_j2']:.0f} MB",
              flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


def _wall(cmd) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - t


if __name__ == "__main__":
    main()
