"""Benchmark: ``--executor ray`` (a local Ray) against the local process pool, same 2 cores.

Builds a folder of real 640x480 JPEGs from samples/ (``make_images`` of
bench_pipeline.py), then times, alternating the two and reporting medians:

* ``featx extract hog DIR -o out.npy -j 2`` (local worker processes);
* the same with ``--executor ray`` (a local Ray with 2 CPUs, started and
  stopped by the command: its start-up is part of the time, as a user sees it);
* the same with ``--executor ray --ray-address ADDR``, joining a 2-CPU local Ray
  that is already running (started once by this script), as on a cluster.

Target: Ray at least 0.8x the process pool's speed (pool time / Ray time).
Both outputs are checked to be byte-identical.  Also reported: each
executor's fixed cost (a run over 1 image), to show what Ray's start-up and
shutdown add.  When the machine has more than 2 CPUs, every command runs
pinned to 2 of them (taskset), Ray's own processes included.

    python benchmarks/bench_ray.py [--images 2000] [--repeat 3] [--quick]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_pipeline import ENV, make_images  # noqa: E402


def pinned(cmd: list[str], cores: int = 2) -> list[str]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) > cores and shutil.which("taskset"):
        return ["taskset", "-c", ",".join(map(str, cpus[:cores])), *cmd]
    return cmd


def featx_cmd(folder: Path, out: Path, *extra: str) -> list[str]:
    return pinned([sys.executable, "-m", "featx", "extract", "hog", str(folder), "-o", str(out),
                   "-j", "2", "-q", "--overwrite", *extra])


RAY_HEAD = r"""
import logging, os, sys, time
import ray
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
print(ray.get_runtime_context().gcs_address, os.environ.get("RAY_AUTH_MODE", ""), flush=True)
sys.stdin.read()  # until the benchmark closes our stdin
ray.shutdown()
"""


def sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 24), b""):
            h.update(block)
    return h.hexdigest()


def wall(cmd: list[str], env: dict | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env or ENV, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200 images, 1 repeat (a smoke run)")
    ap.add_argument("--keep", help="build (or reuse) the images in this folder instead of a temporary one")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if args.quick:
        args.images, args.repeat = 200, 1
    try:
        import ray  # noqa: F401
    except ImportError:
        sys.exit("this benchmark needs Ray: pip install 'featx[ray]'")
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="featx-bench-ray-"))
    imgs = work / f"imgs{args.images}"
    res: dict = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0],
                             "ray": __import__("ray").__version__}, "images": args.images}
    try:
        if not (imgs.is_dir() and len(list(imgs.iterdir())) == args.images):
            shutil.rmtree(imgs, ignore_errors=True)
            make_images(imgs, args.images)
        one = work / "one"
        one.mkdir(exist_ok=True)
        shutil.copy(sorted(imgs.iterdir())[0], one / "a.jpg")
        print(f"{args.images} images 640x480 JPEG in {imgs}; hog -j 2; repeat {args.repeat}, medians", flush=True)

        fixed = {"pool": statistics.median(wall(featx_cmd(one, work / "f1.npy")) for _ in range(3)),
                 "ray": statistics.median(wall(featx_cmd(one, work / "f2.npy", "--executor", "ray"))
                                          for _ in range(3))}
        res["one_image_s"] = fixed
        print(f"fixed cost (1 image): pool {fixed['pool']:.2f} s, ray {fixed['ray']:.2f} s", flush=True)

        head = subprocess.Popen(pinned([sys.executable, "-c", RAY_HEAD]), env=ENV, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        address, _, auth = head.stdout.readline().strip().partition(" ")
        joined = dict(ENV, RAY_AUTH_MODE=auth) if auth else ENV  # Ray's token auth: as the head has it
        pool_t, ray_t, warm_t = [], [], []
        try:
            fixed["ray_running"] = statistics.median(
                wall(featx_cmd(one, work / "f3.npy", "--executor", "ray", "--ray-address", address), joined)
                for _ in range(3))
            print(f"fixed cost (1 image) joining a running local Ray: {fixed['ray_running']:.2f} s", flush=True)
            digests: dict[str, str] = {}

            def timed(name: str, *extra: str, env: dict | None = None) -> float:
                """One run into NAME.npy; its output is hashed (first round) and deleted
                at once, so every run starts with the same free memory and disk (each
                writes 2.9 GB: a run that follows undeleted outputs pays for reclaiming
                their page cache, which skewed earlier measurements by up to 30%)."""
                out = work / f"{name}.npy"
                t = wall(featx_cmd(imgs, out, *extra), env)
                if name not in digests:
                    digests[name] = "".join(sha256(work / f"{name}{ext}") for ext in (".npy", ".index.csv"))
                for p in work.glob(f"{name}.*"):
                    p.unlink()
                return t

            for i in range(args.repeat):  # alternate, so slow phases of a noisy machine hit all three
                pool_t.append(timed("pool"))
                ray_t.append(timed("ray", "--executor", "ray"))
                warm_t.append(timed("warm", "--executor", "ray", "--ray-address", address, env=joined))
                print(f"  run {i + 1}: pool {pool_t[-1]:.2f} s, ray {ray_t[-1]:.2f} s, "
                      f"ray (running) {warm_t[-1]:.2f} s", flush=True)
                if i == 0:
                    same = digests["pool"] == digests["ray"] == digests["warm"]
                    res["identical_output"] = same
                    if not same:
                        sys.exit("ray and pool outputs differ")
        finally:
            head.stdin.close()
            head.wait()
        pool, rayt, warm = statistics.median(pool_t), statistics.median(ray_t), statistics.median(warm_t)
        n = args.images
        res.update(pool_s=pool_t, ray_s=ray_t, ray_running_s=warm_t, pool_img_s=n / pool, ray_img_s=n / rayt,
                   ratio=pool / rayt, ratio_running=pool / warm)
        print(f"hog x {n}: pool {n / pool:.1f} img/s ({pool:.2f} s) | ray {n / rayt:.1f} img/s ({rayt:.2f} s) "
              f"-> ray {pool / rayt:.2f}x pool (target >= 0.8) | joining a running Ray {n / warm:.1f} img/s "
              f"({warm:.2f} s) -> {pool / warm:.2f}x pool", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
