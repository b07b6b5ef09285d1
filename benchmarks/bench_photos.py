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

``--overnight`` (issue 25: a folder of camera photos overnight): ``featx extract hog+cnn
FOLDER -o OUT/ --resize 256x256`` (one pass, two outputs: hog at 256x256, cnn at its own
224x224 input) against ``benchmarks/plain_photos.py``, the same work in a plain loop (the
decode featx picks, its crop and normalisation, its model cut to the embedding at featx's batch size (8),
its HOG; byte-identical outputs, checked here on every configuration and in
tests/test_plain_photos.py), on 40 and 400 12-MP photos and 8 of 48 MP (``--sets``), at
``-j 1`` and ``-j 2`` (``--jobs``; the plain loop as two processes on the halves of the
list).  The photos are :func:`common.camera_photos`, made once into ``--photos-dir`` and
kept there for the next run.  Every variant is a whole process (start-up included),
featx and plain interleaved, the order reversed every round, medians of ``--repeats``
(default 3).  Printed:

* the per-stage limit: each stage timed in one process on the photos (the first
  ``--stage-photos``): decode (as featx decodes: simplejpeg where installed; OpenCV's
  reduced ``imread`` beside it), crop + normalise, hog resize, hog, the network per photo
  at featx's batch size (8) with one inference thread; limit = cores / their sum, photos/s;
  timed in every round of every photo set, between its runs (a set's fractions divide by
  the limit timed with it: the machine's speed drifts over minutes);
* per photo set and ``-j``: photos/s of featx and of the plain loop (photos / whole wall
  time), featx / plain time, the fraction of the stage-sum limit, peak RSS of the largest
  process of the tree (exact, ``wait4``) and of the largest worker (sampled every 50 ms);
* whether featx's two .npy files equal the plain loop's;
* PASS/FAIL: >= 35 photos/s on the 40-photo run at ``-j 2``, >= 0.9 of the stage-sum limit
  on the 400-photo run at ``-j 2`` (both meant for a quiet 2-core machine), peak memory per
  worker <= 300 MB.

``--overnight --quick``: 40 and 100 12-MP photos, 4 of 48 MP, one round (about 2 minutes).

Usage::

    python benchmarks/bench_photos.py [--n12 8] [--n48 8] [--noise 6] [--repeats 1] [--quick]
                                      [--only hog,cnn,gradients,detect] [--sizes 12,48]
    python benchmarks/bench_photos.py --overnight [--sets 12x40,12x400,48x8] [--jobs 1,2]
                                      [--repeats 3] [--photos-dir DIR] [--stage-photos 40] [--quick]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
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



# ---------------------------------------------------------------------------
# --overnight (issue 25): featx extract hog+cnn against the plain reference loop

#: featx's one pass, two outputs; benchmarks/plain_photos.py does the same work by hand
OVERNIGHT = ["extract", "hog+cnn", "--resize", "256x256"]
STAGES = ("decode", "crop", "hog_resize", "hog", "network")

STAGE_SCRIPT = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import numpy as np
import plain_photos as pp
import cv2
cv2.setNumThreads(1)
from featx.extractors.hog import HOG
hog = HOG().extract
model, paths = sys.argv[2], sys.argv[3:]
t = dict.fromkeys(("decode", "decode_cv2", "crop", "hog_resize", "hog", "network"), 0.0)
inputs = []
clock = time.perf_counter
for p in paths:
    a = clock(); img = pp.decode(p); b = clock(); x = pp.cnn_input(img); c = clock()
    r = pp.hog_input(img); d = clock(); hog(r); e = clock()
    t["decode"] += b - a; t["crop"] += c - b; t["hog_resize"] += d - c; t["hog"] += e - d
    inputs.append(x)
os.environ["FEATX_FAST_JPEG"] = "0"   # the same decode by cv2.imread(IMREAD_REDUCED_COLOR_k) + RGB
for p in paths:
    a = clock(); pp.decode(p); t["decode_cv2"] += clock() - a
sess = pp.session(model, 1)   # one inference thread: one core's worth
name = sess.get_inputs()[0].name
nb = max(2, -(-len(inputs) // pp.BATCH))
batches = [np.stack([inputs[(i * pp.BATCH + j) % len(inputs)] for j in range(pp.BATCH)]) for i in range(nb)]
sess.run(["embedding"], {name: batches[0]})   # warm-up, not timed
a = clock()
for b in batches:
    sess.run(["embedding"], {name: b})
t["network"] = (clock() - a) / (nb * pp.BATCH) * len(paths)
print(json.dumps({k: v / len(paths) * 1e3 for k, v in t.items()}))
"""


def photo_set(photos_dir: Path, mp: int, n: int) -> Path:
    """A folder of the first ``n`` of the ``mp``-megapixel camera photos of ``photos_dir``:
    hard links into ``photos_dir/{mp}mp``, which holds as many as were ever asked for
    (:func:`common.camera_photos`: photo ``i`` is the same whatever the count)."""
    from common import camera_photos

    store = photos_dir / f"{mp}mp"
    marker = store / "made.json"
    made = json.loads(marker.read_text())["n"] if marker.exists() else 0
    if made < n:
        t = time.perf_counter()
        print(f"  making {n} JPEGs of {mp} MP in {store} ...", file=sys.stderr, flush=True)
        camera_photos(store, n, megapixels=mp)
        marker.write_text(json.dumps({"n": n, "megapixels": mp}))
        print(f"  made in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    folder = photos_dir / f"{mp}mp-{n}"
    names = [f"photo{i:03d}.jpg" for i in range(n)]
    if not folder.is_dir() or sorted(p.name for p in folder.iterdir()) != names:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        for name in names:
            try:
                os.link(store / name, folder / name)
            except OSError:
                shutil.copyfile(store / name, folder / name)
    return folder


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux ``/proc/PID/task/TID/children``)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for tid in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{tid}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _hwm_mb(pid: int) -> float | None:
    """Peak resident memory of a live process so far (``VmHWM``), MB."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


#: Runs one command and reports its wall time and the peak RSS of the largest process of its
#: tree (``wait4``).  A small process of its own: a child's ``ru_maxrss`` counts the memory of
#: the process it was forked from (Linux keeps it across ``execve``), which must not be this
#: benchmark's, holding the outputs it compares.
LAUNCH = r"""
import json, os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(json.loads(sys.argv[1]), stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t
print(json.dumps({"wall": wall, "code": os.waitstatus_to_exitcode(status), "maxrss": usage.ru_maxrss}))
"""


def whole_run(cmd: list[str], env: dict) -> dict:
    """Run ``cmd`` as a whole process: its wall seconds (start-up included), the peak RSS
    of the largest process of its tree (``wait4``: exact), and the peak of its largest child
    process (a worker; ``VmHWM`` read from ``/proc`` every 50 ms, so growth in a worker's
    last 50 ms may be missed)."""
    import threading

    peaks: dict[int, float] = {}
    done = threading.Event()
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCH, json.dumps(cmd)], env=env,
                                stdout=subprocess.PIPE, stderr=err)

        def watch() -> None:
            while not done.is_set():
                for p in _tree(proc.pid)[2:]:   # not the launcher, not the command's own process
                    v = _hwm_mb(p)
                    if v is not None:
                        peaks[p] = max(peaks.get(p, 0.0), v)
                done.wait(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        out = proc.communicate()[0]
        done.set()
        watcher.join()
        doc = json.loads(out) if proc.returncode == 0 else {"code": proc.returncode}
        if doc["code"] != 0:
            err.seek(0)
            raise SystemExit(f"failed ({doc['code']}): {' '.join(cmd)}\n{err.read().decode()[-3000:]}")
    largest = doc["maxrss"] / 1024
    return {"wall": doc["wall"], "largest": largest, "worker": max(peaks.values()) if peaks else largest,
            "workers": len(peaks)}


def _compare(a: Path, b: Path) -> str:
    """How featx's output and the plain loop's differ: 'identical' or the max difference."""
    parts = []
    for name in ("hog", "cnn"):
        x, y = np.load(a / f"{name}.npy"), np.load(b / f"{name}.npy")
        if x.shape != y.shape:
            parts.append(f"{name} shapes {x.shape} vs {y.shape}")
        elif np.array_equal(x, y):
            parts.append(f"{name} identical")
        else:
            parts.append(f"{name} max |diff| {np.abs(x.astype(np.float64) - y).max():.2e}")
    return ", ".join(parts)


def overnight(args) -> None:
    """featx extract hog+cnn against benchmarks/plain_photos.py, and the stage-sum limit."""
    import statistics

    sets = [tuple(int(v) for v in s.lower().split("x")) for s in args.sets.split(",") if s]
    jobs = [int(j) for j in args.jobs.split(",") if j]
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    repeats = args.repeats or 3
    photos_dir = Path(args.photos_dir) if args.photos_dir else Path(tempfile.gettempdir()) / "featx-bench-photos"
    bench = Path(__file__).resolve().parent
    # user installs have their bytecode cached: no recompiling featx in every timed process
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    import cv2
    import onnxruntime

    print(f"# bench_photos --overnight: {platform.node() or '?'}, {cores} cores, {platform.machine()}, "
          f"Python {platform.python_version()}, OpenCV {cv2.__version__}, ONNX Runtime "
          f"{onnxruntime.__version__}, numpy {np.__version__}; {time.strftime('%Y-%m-%d %H:%M %Z')}; "
          f"load {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    print(f"# `featx {' '.join(OVERNIGHT[:2])} FOLDER -o OUT/ {' '.join(OVERNIGHT[2:])} -j J -q` against "
          f"`python benchmarks/plain_photos.py FOLDER OUT/ --model embedding.onnx -j J`, whole processes "
          f"(start-up included), interleaved, medians of {repeats}\n", flush=True)
    with tempfile.TemporaryDirectory(prefix="featx-overnight-") as tmp:
        work = Path(tmp)
        sys.path.insert(0, str(bench))
        import plain_photos

        model = work / "embedding.onnx"
        model.write_bytes(plain_photos.featx_model())   # the graph featx runs, for the plain loop
        folders = {(mp, n): photo_set(photos_dir, mp, n) for mp, n in sets}
        # once untimed: bytecode written, featx's model cache built, the photos in the page cache
        warm = folders[sets[0]]
        for cmd in ([sys.executable, "-m", "featx", *OVERNIGHT[:2], str(warm), "-o", f"{work / 'warm-f'}/", *OVERNIGHT[2:],
                     "-j", "2", "-q"],
                    [sys.executable, str(bench / "plain_photos.py"), str(warm), str(work / "warm-p"), "--model",
                     str(model), "-j", "2"]):
            whole_run(cmd, env)
        for d in sets:
            for p in folders[d].iterdir():
                p.read_bytes()
        rows, stage_rows, checks, targets = [], [], [], []
        limits: dict[tuple, float] = {}
        stage_ms: dict[tuple, dict] = {}
        for mp, n in sets:
            folder = folders[(mp, n)]
            load0 = os.getloadavg()[0]
            # the stages are timed in every round of every set, between its runs: a machine's
            # speed drifts by 10-40 % over minutes, and a limit timed minutes before the runs
            # it divides gave fractions over 1
            order = [x for j in jobs for x in (("featx", j), ("plain", j))] + [("stages", 0)]
            res: dict[tuple, list] = {x: [] for x in order}
            for r in range(repeats):
                for tool, j in (order if r % 2 == 0 else order[::-1]):
                    out = work / f"{tool}-{mp}-{n}-j{j}-r{r}"
                    if tool == "featx":
                        cmd = [sys.executable, "-m", "featx", *OVERNIGHT[:2], str(folder), "-o", f"{out}/",
                               *OVERNIGHT[2:], "-j", str(j), "-q"]
                    elif tool == "plain":
                        cmd = [sys.executable, str(bench / "plain_photos.py"), str(folder), str(out), "--model",
                               str(model), "-j", str(j)]
                    else:
                        paths = sorted(folder.iterdir())[:args.stage_photos]
                        p = subprocess.run([sys.executable, "-c", STAGE_SCRIPT, str(bench), str(model),
                                            *map(str, paths)], env=env, capture_output=True, text=True)
                        if p.returncode != 0:
                            raise SystemExit(f"stage timing failed:\n{p.stderr[-3000:]}")
                        res[(tool, j)].append(json.loads(p.stdout))
                        continue
                    res[(tool, j)].append(whole_run(cmd, env))
                    if r < repeats - 1:
                        shutil.rmtree(out, ignore_errors=True)
                print(f"  {mp} MP x {n}: round {r + 1} of {repeats} done", file=sys.stderr, flush=True)
            stage_ms[(mp, n)] = s = {k: statistics.median(d[k] for d in res[("stages", 0)])
                                     for k in res[("stages", 0)][0]}
            total = sum(s[k] for k in STAGES)
            limit = limits[(mp, n)] = cores / total * 1e3
            stage_rows.append(
                f"| {mp} MP, timed between the runs on {n} (first {min(n, args.stage_photos)} photos) | "
                f"{s['decode']:.1f} ({s['decode_cv2']:.1f}) | {s['crop']:.2f} | {s['hog_resize']:.2f} | "
                f"{s['hog']:.2f} | {s['network']:.2f} | **{total:.1f}** | **{limit:.1f}** |")
            for j in jobs:
                f = {k: statistics.median(d[k] for d in res[("featx", j)]) for k in ("wall", "largest", "worker")}
                p = {k: statistics.median(d[k] for d in res[("plain", j)]) for k in ("wall", "largest", "worker")}
                fmax = max(d["worker"] for d in res[("featx", j)])
                spread = (min(d["wall"] for d in res[("featx", j)]), max(d["wall"] for d in res[("featx", j)]))
                rows.append(f"| {mp} MP x {n} | {j} | **{n / f['wall']:.1f}** ({n / spread[1]:.1f}–{n / spread[0]:.1f}) | "
                            f"{n / p['wall']:.1f} | {f['wall']:.2f} / {p['wall']:.2f} | **{f['wall'] / p['wall']:.2f}** | "
                            f"{n / f['wall'] / limit:.2f} / {n / p['wall'] / limit:.2f} | "
                            f"{f['largest']:.0f} / {f['worker']:.0f} | {p['largest']:.0f} / {p['worker']:.0f} |")
                checks.append(f"{mp} MP x {n} -j {j}: {_compare(work / f'featx-{mp}-{n}-j{j}-r{repeats - 1}', work / f'plain-{mp}-{n}-j{j}-r{repeats - 1}')}")
                targets.append((mp, n, j, n / f["wall"], n / f["wall"] / limit, fmax, limit))
            print(f"  {mp} MP x {n}: load {load0:.2f} before, {os.getloadavg()[0]:.2f} after", file=sys.stderr, flush=True)
            for x in res:
                shutil.rmtree(work / f"{x[0]}-{mp}-{n}-j{x[1]}-r{repeats - 1}", ignore_errors=True)
    print("Per-stage limit (one process, ms per photo, mean over the photos; network: batches of 8, one "
          "inference thread, after a warm-up batch; decode as featx decodes, simplejpeg where installed, in "
          f"brackets `cv2.imread(IMREAD_REDUCED_COLOR_k)` + RGB); limit = {cores} cores / the sum:\n")
    print("| photos | decode (cv2) | crop + normalise | hog resize | hog | network | sum | limit, photos/s |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(stage_rows))
    print(f"\nWhole runs (medians of {repeats}; photos/s = photos / whole-process wall time, start-up included; "
          "in brackets featx's slowest–fastest run; peak RSS in MB: the largest process of the tree, "
          "exact / the largest worker process, sampled):\n")
    print("| photos | -j | featx photos/s | plain photos/s | wall s, featx / plain | featx / plain time | "
          "of the stage-sum limit, featx / plain | peak RSS featx: largest / worker | plain: largest / worker |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print("\nSame numbers (featx's .npy against the plain loop's, last round):\n")
    print("\n".join(f"* {c}" for c in checks))
    small = min((t for t in targets if t[0] == 12 and t[2] == 2), key=lambda t: t[1], default=None)
    large = max((t for t in targets if t[0] == 12 and t[2] == 2), key=lambda t: t[1], default=None)
    worst = max(targets, key=lambda t: t[5]) if targets else None
    print("\nTargets (issue 25, on a quiet 2-core machine):\n")
    if small:
        print(f"* {'PASS' if small[3] >= 35 else 'FAIL'}: >= 35 photos/s on {small[1]} 12-MP photos at -j 2: {small[3]:.1f}")
    if large:
        print(f"* {'PASS' if large[4] >= 0.9 else 'FAIL'}: >= 0.9 of the stage-sum limit on {large[1]} 12-MP photos "
              f"at -j 2: {large[4]:.2f} ({large[3]:.1f} of {large[6]:.1f} photos/s)")
    if worst:
        print(f"* {'PASS' if worst[5] <= 300 else 'FAIL'}: peak memory per worker <= 300 MB: largest {worst[5]:.0f} MB "
              f"({worst[0]} MP x {worst[1]}, -j {worst[2]})")
    print(f"\n# load at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n12", type=int, default=8, help="12-MP photos")
    ap.add_argument("--n48", type=int, default=8, help="48-MP photos")
    ap.add_argument("--noise", type=float, default=6.0, help="sigma of the sensor-like noise")
    ap.add_argument("--sizes", default="12,48", help="megapixel sizes to run (12, 48)")
    ap.add_argument("--only", default=",".join(EXTRACTORS), help="extractors to run")
    ap.add_argument("--repeats", type=int, default=None,
                    help="runs of each variant (median; interleaved); default 1, with --overnight 3")
    ap.add_argument("--quick", action="store_true",
                    help="3 photos of each size; with --overnight: 40 and 100 12-MP photos, 4 of 48 MP, one round")
    ov = ap.add_argument_group("--overnight (issue 25): featx extract hog+cnn against plain_photos.py")
    ov.add_argument("--overnight", action="store_true",
                    help="featx extract hog+cnn FOLDER -o OUT/ --resize 256x256 against benchmarks/plain_photos.py, "
                         "and the per-stage limit")
    ov.add_argument("--sets", default="12x40,12x400,48x8", help="photo sets, MPxCOUNT (12 or 48 MP)")
    ov.add_argument("--jobs", default="1,2", help="-j values")
    ov.add_argument("--photos-dir", help="where the photos are made and kept for the next run "
                                         "(default: featx-bench-photos in the temporary folder)")
    ov.add_argument("--stage-photos", type=int, default=40, help="photos of each size the stages are timed on")
    args = ap.parse_args()
    from common import as_installed

    as_installed()
    if args.overnight:
        if args.quick:
            args.sets, args.repeats = "12x40,12x100,48x4", args.repeats or 1
        return overnight(args)
    args.repeats = args.repeats or 1
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
