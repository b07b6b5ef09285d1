#!/usr/bin/env python
"""Camera-sized photos: featx against plain loops, time per photo and peak memory.

Makes 12-MP (4000x3000) and 48-MP (8000x6000) JPEGs from the samples (upscaled with
``cv2.INTER_CUBIC``, Gaussian sensor-like noise of sigma ``--noise``, quality 90, so
that they compress like camera files: about 2.7 and 10 MB), then for each extractor
(``hog --resize 256x256``, ``cnn``, ``gradients``, ``detect``) runs, each as its own
process (the plain loops under the allocator setting featx uses, one OpenCV thread):

* decode only: ``cv2.imread`` + RGB of every photo (full), and, where featx decodes
  reduced, ``cv2.imread(..., IMREAD_REDUCED_COLOR_k)`` at the reduction featx picks:
  the limits;
* plain loop, full decode: ``cv2.imread`` + RGB + the featx extractor's call
  (``extract_resized(img, --resize)``): what featx did before it decoded reduced;
* plain loop, reduced decode: the same from ``IMREAD_REDUCED_COLOR_k``;
* ``featx extract NAME FOLDER -j 1`` (default: reduced decode where it applies) and
  ``--exact-decode``; ``-j 2`` against the plain loops run as two processes on halves
  (``cnn -j 2`` with ``--batch-size 4``: a worker's task is a whole batch, and one
  batch of 16 would hold all the photos).

Times are milliseconds per photo.  ``-j 1``: per photo after the first one, so that
what a run costs once is left out on both sides: the plain loops time their own loop
(imports and the extractor's construction excluded) and give (all - first photo) /
(n - 1); featx gives (run on all - run on the first photo) / (n - 1) from the times
its sidecars record (``timing.seconds``: from the first input to the last commit),
and its whole run / n is shown too.  ``-j 2``: whole runs / n (featx's with the
workers' start and their extractor's construction, shown by a run on one photo).  Peak RSS is that of
the largest process (``ru_maxrss`` of the process tree).  Then, from the outputs of
featx with and without ``--exact-decode``: how much the numbers move (hog: max
absolute difference and Pearson correlation per photo; cnn: cosine between
embeddings, top-1 agreement of the logits).

Targets (issue 14): ``hog --resize 256x256`` and ``cnn`` >= 2x faster than the
full-decode path on 12-MP photos and within 1.3x of the reduced plain loop;
peak RSS of ``cnn`` and ``hog`` <= 300 MB at 12 and 48 MP (the 48-MP figure within
10 % of the 12-MP one); ``gradients`` on 12 MP <= 3x the decoded photo (108 MB).

Usage::

    python benchmarks/bench_photos.py [--n12 8] [--n48 8] [--noise 6] [--repeats 1] [--quick]
                                      [--only hog,cnn,gradients,detect] [--sizes 12,48]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
PHOTOS = ("coffee.jpg", "rocket.jpg", "chelsea.png", "astronaut.png", "camera.png")
SIZES = {12: (4000, 3000), 48: (8000, 6000)}
# featx tunes glibc's allocator at start-up (featx.engine.process.tune_allocator); the plain
# loops run under the same setting (DESIGN.md: measure both the same way).
ENV = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_=str(32 * 1024 * 1024),
           MALLOC_TRIM_THRESHOLD_=str(256 * 1024 * 1024))

#: name -> (featx arguments, --resize of the plain loop, decoded reduced by featx)
EXTRACTORS = {
    "hog": (["extract", "hog", "--resize", "256x256"], (256, 256), True),
    "cnn": (["extract", "cnn"], None, True),
    "gradients": (["extract", "gradients"], None, False),
    "detect": (["detect"], None, False),
}


def make_photos(folder: Path, mp: int, n: int, noise: float) -> list[Path]:
    """``n`` camera-like JPEGs of ``mp`` megapixels from the samples (cycled, one noise seed each)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        name = PHOTOS[i % len(PHOTOS)]
        img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_COLOR)
        big = cv2.resize(img, SIZES[mp], interpolation=cv2.INTER_CUBIC).astype(np.float32)
        rng = np.random.default_rng(i)
        big += rng.standard_normal(big.shape, dtype=np.float32) * np.float32(noise)
        path = folder / f"{i:02d}-{Path(name).stem}.jpg"
        cv2.imwrite(str(path), np.clip(big, 0, 255).astype(np.uint8), [cv2.IMWRITE_JPEG_QUALITY, 90])
        out.append(path)
    return out


PLAIN = r'''
import json, sys, time
mode, name, resize, threads, paths = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:]
import cv2
cv2.setNumThreads(1)
import numpy as np
from featx import api
from featx.decode import jpeg_reduction, read_header
size = tuple(int(v) for v in resize.split("x")) if resize else None
if name == "detect":
    from featx.regions import RegionDetector
    ext = RegionDetector()
else:
    ext = api.open_extractor(name, **({"threads": threads} if name == "cnn" else {}))
need = ext.decode_size(size)
FLAGS = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
         8: cv2.IMREAD_REDUCED_COLOR_8}

def decode(p):
    k = 1
    if mode.endswith("reduced"):
        hdr = read_header(np.fromfile(p, np.uint8, count=65536))
        k = jpeg_reduction(hdr.width, hdr.height, need)
    return cv2.cvtColor(cv2.imread(p, FLAGS[k]), cv2.COLOR_BGR2RGB), k

t = time.perf_counter()
ks, first = set(), None
for p in paths:
    img, k = decode(p)
    ks.add(k)
    if not mode.startswith("decode"):
        ext.extract_resized(img, size)
    if first is None:
        first = time.perf_counter() - t
print(json.dumps({"seconds": time.perf_counter() - t, "first": first, "k": sorted(ks)}))
'''

RSS = r'''
import json, resource, subprocess, sys
procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE) for cmd in json.loads(sys.argv[1])]
outs = [p.communicate()[0].decode() for p in procs]
assert all(p.returncode == 0 for p in procs), [p.returncode for p in procs]
print(json.dumps({"out": outs, "rss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
'''


def measured(cmds: list[list[str]]) -> tuple[list[str], float, float]:
    """Run ``cmds`` at once; their stdouts, the wall seconds and the peak RSS (MB) of the
    largest process among them and their children."""
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", RSS, json.dumps(cmds)], env=ENV, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {cmds}\n{r.stderr[-3000:]}")
    doc = json.loads(r.stdout)
    return doc["out"], time.perf_counter() - t, doc["rss"] / 1024


def plain(mode: str, name: str, photos: list[Path], jobs: int) -> tuple[tuple[float, float], float, list[int]]:
    """ms per photo (of the whole loop, and of the photos after the first) and peak RSS of a
    plain loop (``jobs`` processes on interleaved shares)."""
    resize = EXTRACTORS[name][1]
    threads = 0 if jobs == 1 else 1
    cmds = [[sys.executable, "-c", PLAIN, mode, name, "x".join(map(str, resize)) if resize else "", str(threads),
             *map(str, photos[i::jobs])] for i in range(jobs)]
    outs, _, rss = measured(cmds)
    docs = [json.loads(o) for o in outs]
    whole = max(d["seconds"] for d in docs) / len(photos) * 1e3
    after = (docs[0]["seconds"] - docs[0]["first"]) / max(1, len(photos) - 1) * 1e3 if jobs == 1 else whole
    return (whole, after), rss, sorted({k for d in docs for k in d["k"]})


def featx(name: str, folder: Path | list[Path], n: int, jobs: int, out: Path,
          *extra: str) -> tuple[float, float, Path]:
    """ms per photo (the run's own time, from its sidecar) and peak RSS of ``featx``
    on ``folder`` (or a list of photos)."""
    args, _, _ = EXTRACTORS[name]
    suffix = ".csv" if name == "detect" else ".npy"
    path = out.with_suffix(suffix)
    inputs = [str(p) for p in folder] if isinstance(folder, list) else [str(folder)]
    cmd = [sys.executable, "-m", "featx", *args, *inputs, "-o", str(path), "-j", str(jobs), "-q",
           "--overwrite", *extra]
    _, _, rss = measured([cmd])
    side = json.loads(Path(str(path) + ".featx.json").read_text())
    assert side["inputs"]["processed"] == n and side["inputs"]["failed"] == 0, side["inputs"]
    return side["timing"]["seconds"] / n * 1e3, rss, path


def numbers_move(name: str, reduced: Path, exact: Path, folder: Path, n: int, out: Path) -> str:
    a, b = np.load(reduced).astype(np.float64), np.load(exact).astype(np.float64)
    if name == "hog":
        corr = [float(np.corrcoef(x, y)[0, 1]) for x, y in zip(a, b)]
        return (f"hog --resize 256x256: max |diff| {np.abs(a - b).max():.3f} (values up to {np.abs(b).max():.2f}), "
                f"correlation mean {np.mean(corr):.3f}, min {min(corr):.3f}")
    cos = [float(x @ y / np.linalg.norm(x) / np.linalg.norm(y)) for x, y in zip(a, b)]
    _, _, lr = featx(name, folder, n, 1, out.with_name(out.name + "-logits-r"), "--layer", "logits")
    _, _, lx = featx(name, folder, n, 1, out.with_name(out.name + "-logits-x"), "--layer", "logits",
                     "--exact-decode")
    agree = int((np.load(lr).argmax(axis=1) == np.load(lx).argmax(axis=1)).sum())
    return (f"cnn: embedding cosine mean {np.mean(cos):.4f}, min {min(cos):.4f}; "
            f"top-1 class the same on {agree} of {n}")


def run_size(mp: int, n: int, noise: float, names: list[str], tmp: Path, repeats: int) -> None:
    import statistics

    folder = tmp / f"{mp}mp"
    t = time.perf_counter()
    photos = make_photos(folder, mp, n, noise)
    mb = sum(p.stat().st_size for p in photos) / len(photos) / 1e6
    w, h = SIZES[mp]
    decoded = w * h * 3 / 2 ** 20
    print(f"\n## {mp} MP: {n} JPEGs of {w}x{h} ({mb:.1f} MB each, decoded {decoded:.0f} MB; made in "
          f"{time.perf_counter() - t:.0f} s)\n", flush=True)
    rows1, rows2, notes = [], [], []
    for name in names:
        reduced = EXTRACTORS[name][2]
        out = tmp / f"out-{mp}-{name}"
        # -j 2: a worker task is max(4 inputs, a batch): cnn's batches of 16 would put 8
        # photos in one task, run by one worker
        more = ["--batch-size", "4"] if name == "cnn" else []
        runs = {
            "decode": lambda: plain("decode-full", name, photos, 1),
            "full": lambda: plain("full", name, photos, 1),
            "featx": lambda: featx(name, folder, n, 1, out),
            # on one photo: the run's fixed cost (lock, state, sidecar, commit) and a first photo
            "one": lambda: featx(name, photos[:1], 1, 1, out.with_name(out.name + "-1")),
            "featx2": lambda: featx(name, folder, n, 2, out.with_name(out.name + "-j2"), *more),
            # on one photo: mostly the workers' start (cnn: imports and model, forkserver)
            "one2": lambda: featx(name, photos[:1], 1, 2, out.with_name(out.name + "-j2-1"), *more),
            "full2": lambda: plain("full", name, photos, 2),
        }
        if reduced:
            runs.update({
                "decode_red": lambda: plain("decode-reduced", name, photos, 1),
                "red": lambda: plain("reduced", name, photos, 1),
                "red2": lambda: plain("reduced", name, photos, 2),
                "exact": lambda: featx(name, folder, n, 1, out.with_name(out.name + "-x"), "--exact-decode"),
            })
        ms: dict[str, list] = {k: [] for k in runs}
        rss: dict[str, float] = {}
        last: dict[str, object] = {}
        order = list(runs)
        for r in range(repeats):  # interleaved: every variant once per round, the order reversed each round
            for key in (order if r % 2 == 0 else order[::-1]):
                m, peak, extra = runs[key]()
                ms[key].append(m)
                rss[key] = max(rss.get(key, 0.0), peak)
                last[key] = extra
        # plain loops: ms per photo after the first; featx: (all photos - one photo) / (n - 1),
        # its fixed cost per run left out the same way
        t = {k: statistics.median(m[1] if isinstance(m, tuple) else m for m in v) for k, v in ms.items()}
        whole = {k: statistics.median(m[0] if isinstance(m, tuple) else m for m in v) for k, v in ms.items()}
        t["featx_all"] = t["featx"]
        t["featx"] = (t["featx_all"] * n - t["one"]) / (n - 1)
        t["full2"], t["featx2"] = whole["full2"], whole["featx2"]
        if reduced:
            t["red2"] = whole["red2"]
        if reduced:
            ks = last["decode_red"]
            rows1.append(f"| `{name}` | {t['decode']:.0f} / {t['decode_red']:.0f} (1/{ks[0]}) | {t['full']:.0f} | "
                         f"{t['red']:.0f} | **{t['featx']:.0f}** ({t['featx_all']:.0f}) | {t['exact']:.0f} | "
                         f"**{t['full'] / t['featx']:.1f}x** | **{t['featx'] / t['red']:.2f}x** | "
                         f"{rss['featx']:.0f} MB | {rss['exact']:.0f} MB |")
            rows2.append(f"| `{name}`{' (`--batch-size 4`)' if name == 'cnn' else ''} | {t['full2']:.0f} | "
                         f"{t['red2']:.0f} | **{t['featx2']:.0f}** | {t['one2']:.0f} | "
                         f"{t['full2'] / t['featx2']:.1f}x | "
                         f"{t['featx2'] / t['red2']:.2f}x | {rss['featx2']:.0f} MB |")
            notes.append(numbers_move(name, last["featx"], last["exact"], folder, n, out))
        else:
            rows1.append(f"| `{name}` | {t['decode']:.0f} | {t['full']:.0f} | — | **{t['featx']:.0f}** "
                         f"({t['featx_all']:.0f}) | — | "
                         f"{t['full'] / t['featx']:.2f}x | — | {rss['featx']:.0f} MB "
                         f"({rss['featx'] / decoded:.1f}x the photo) | — |")
            rows2.append(f"| `{name}` | {t['full2']:.0f} | — | **{t['featx2']:.0f}** | {t['one2']:.0f} | "
                         f"{t['full2'] / t['featx2']:.2f}x | — | {rss['featx2']:.0f} MB |")
        print(f"  {name}: done", file=sys.stderr, flush=True)
    each = f"median of {repeats}, interleaved" if repeats > 1 else "one run each"
    print(f"`-j 1`, ms per photo ({each}): plain loops after their first photo; featx per photo after "
          "a first one ((run on all − run on one) / (n − 1); in brackets: its whole run / n, the "
          "run's fixed cost of lock, state, sidecar and commit included); featx `--exact-decode`: "
          "whole run / n; decode only: full / reduced at the reduction featx picks:\n")
    print("| extractor | decode only | plain loop, full decode | plain loop, reduced decode | featx | "
          "featx `--exact-decode` | plain full / featx (≥ 2×) | featx / plain reduced (≤ 1.3×) | "
          "peak RSS featx (≤ 300 MB) | peak RSS `--exact-decode` |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows1))
    print("\n`-j 2` (plain loops: two processes, each on half the photos), ms per photo; featx's time "
          "includes starting its workers, about the time of a run on one photo "
          "(ms, whole run):\n")
    print("| extractor | plain, full decode | plain, reduced decode | featx `-j 2` | featx `-j 2` on one photo | "
          "plain full / featx | featx / plain reduced | peak RSS, largest process |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows2))
    if notes:
        print("\nHow much the numbers move, reduced decode (default) against `--exact-decode`:\n")
        print("\n".join(f"* {s}" for s in notes))
    print(flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n12", type=int, default=8, help="12-MP photos")
    ap.add_argument("--n48", type=int, default=8, help="48-MP photos")
    ap.add_argument("--noise", type=float, default=6.0, help="sigma of the sensor-like noise")
    ap.add_argument("--sizes", default="12,48", help="megapixel sizes to run (12, 48)")
    ap.add_argument("--only", default=",".join(EXTRACTORS), help="extractors to run")
    ap.add_argument("--repeats", type=int, default=1, help="runs of each variant (median; interleaved)")
    ap.add_argument("--quick", action="store_true", help="3 photos of each size")
    args = ap.parse_args()
    if args.quick:
        args.n12, args.n48 = 3, 3
    names = [n for n in args.only.split(",") if n]
    import cv2

    print(f"# bench_photos: {platform.node() or '?'}, {os.cpu_count()} CPUs, {platform.machine()}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}, numpy {np.__version__}; "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    with tempfile.TemporaryDirectory(prefix="featx-bench-photos-") as tmp:
        for mp in (int(s) for s in args.sizes.split(",")):
            run_size(mp, args.n12 if mp == 12 else args.n48, args.noise, names, Path(tmp), args.repeats)


if __name__ == "__main__":
    main()
