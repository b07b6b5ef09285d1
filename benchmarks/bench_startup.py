"""Start-up of ``featx extract``: from the command to the first decode, by phase, and the
network's per-photo inference with and without the outputs nobody fetched (issue 25,
items 1 and 3).

For each case (``cnn`` and ``hog`` on one photo and on N 12-MP photos, at ``-j 1`` and
``-j 2``) it runs the real command in a fresh process, with a probe on its PYTHONPATH
(``sitecustomize``) that notes, in every process of the run, the seconds from the
command's start to the first decoded image and to each ONNX Runtime session it creates
(and how long the session took to build).  With ``--base DIR`` (a checkout of an older
featx) every case also runs against that code, interleaved, and the ratios are printed:
both from the same run, so that a loaded machine moves both alike.

Timed as users' installs run: with compiled bytecode.  Each checkout's ``featx`` is
compiled first (``compileall``), the children run without ``PYTHONDONTWRITEBYTECODE``
(a shell that sets it would recompile every module of featx at every start, 0.1-0.15 s
that no installed featx pays), and one untimed run per checkout warms the caches.

``--graph`` compares the built-in model's inference as a session over its whole graph
(embedding, classifier, class maps: what featx ran before) and over the graph cut to the
embedding (what it runs now): the same numbers (checked), ms per photo at batch 16.

Usage::

    python benchmarks/bench_startup.py [--n 40] [--repeats 3] [--base DIR] [--graph]
                                       [--only cnn,hog] [--quick]
"""
from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

PROBE = textwrap.dedent('''
    import os, sys, time, importlib.abc, importlib.util
    T0 = float(os.environ.get("STARTUP_T0") or 0)
    def note(what):
        sys.stderr.write(f"STARTUP pid={os.getpid()} {what} {time.time() - T0:.4f}\\n")
    class _Probe(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if not T0 or name not in ("featx.decode", "onnxruntime"):
                return None
            sys.meta_path.remove(self)
            try:
                spec = importlib.util.find_spec(name)
            finally:
                sys.meta_path.insert(0, self)
            run = spec.loader.exec_module
            def exec_module(module):
                run(module)
                if name == "featx.decode":
                    decode, seen = module.decode_image, []
                    def first(*a, **k):
                        if not seen:
                            seen.append(1)
                            note("first-decode")
                        return decode(*a, **k)
                    module.decode_image = first
                else:
                    base = module.InferenceSession
                    class Timed(base):
                        def __init__(self, *a, **k):
                            t = time.time()
                            super().__init__(*a, **k)
                            note(f"session:{time.time() - t:.4f}")
                    module.InferenceSession = Timed
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, _Probe())
''')


def run_case(code: Path, probe_dir: Path, args: list[str], out: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(probe_dir), str(code)]))
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # timed with bytecode, as an install runs
    t0 = time.time()
    env["STARTUP_T0"] = repr(t0)
    p = subprocess.Popen([sys.executable, "-m", "featx", *args, "-o", str(out), "--overwrite", "-q"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         cwd=str(ROOT / "samples"))
    _out, err = p.communicate()
    wall = time.time() - t0
    if p.returncode:
        raise SystemExit(f"featx {' '.join(args)} failed:\n{err}")
    lines = [ln.split() for ln in err.splitlines() if ln.startswith("STARTUP ")]
    first = min((float(ln[-1]) for ln in lines if ln[2] == "first-decode"), default=float("nan"))
    sessions = [(ln[1], float(ln[2].split(":")[1])) for ln in lines if ln[2].startswith("session:")]
    main = f"pid={p.pid}"
    return {"wall": wall, "first": first, "sessions": len(sessions),
            "session_s": sum(s for _p, s in sessions),
            "main_sessions": sum(1 for pid, _s in sessions if pid == main)}


def startup(args) -> None:
    from bench_photos import make_photos

    names = args.only.split(",")
    codes = {"now": ROOT}
    if args.base:
        codes = {"base": Path(args.base).resolve(), "now": ROOT}
    with tempfile.TemporaryDirectory(prefix="featx-startup-") as tmp:
        tmp = Path(tmp)
        probe = tmp / "probe"
        probe.mkdir()
        (probe / "sitecustomize.py").write_text(PROBE)
        photos = tmp / "photos"
        make_photos(photos, 12, args.n, 6.0)
        cases = []
        for name in names:
            extra = ["--resize", "256x256"] if name == "hog" else []
            for j in (1, 2):
                cases.append((f"{name} one photo -j {j}", ["extract", name, *extra, "coffee.jpg", "-j", str(j)]))
                cases.append((f"{name} {args.n} 12-MP photos -j {j}",
                              ["extract", name, *extra, str(photos), "-j", str(j)]))
        for c, code in codes.items():   # compiled, and one untimed run each (see the docstring)
            compileall.compile_dir(str(code / "featx"), quiet=1)
            run_case(code, probe, cases[0][1], tmp / "out.npy")
        res: dict = {}
        for r in range(args.repeats):
            order = list(codes) if r % 2 == 0 else list(codes)[::-1]
            for label, a in cases:
                for c in order:
                    res.setdefault((label, c), []).append(run_case(codes[c], probe, a, tmp / "out.npy"))
        print(f"load average after: {os.getloadavg()}")
        med = statistics.median
        for label, _a in cases:
            row = [f"{label:28s}"]
            for c in codes:
                rs = res[(label, c)]
                row.append(f"{c}: first decode {med(x['first'] for x in rs):.3f} s, wall {med(x['wall'] for x in rs):.2f} s, "
                           f"{rs[0]['sessions']} session(s), {rs[0]['main_sessions']} in the main process "
                           f"({med(x['session_s'] for x in rs):.3f} s)")
            if args.base:
                b, n = res[(label, "base")], res[(label, "now")]
                row.append(f"ratio base/now: first decode {med(x['first'] for x in b) / med(x['first'] for x in n):.2f}x, "
                           f"wall {med(x['wall'] for x in b) / med(x['wall'] for x in n):.2f}x")
            print(" | ".join(row))


def graph(args) -> None:
    import numpy as np
    import onnxruntime as ort

    from featx.extractors.cnn import models, onnxproto

    data, _prov = models.default_model_bytes()
    cut = onnxproto.prune(data, ["embedding"])
    x = np.random.default_rng(0).standard_normal((16, 3, 224, 224)).astype(np.float32)
    for threads in (1, 2):
        def session(model):
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
            so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])

        whole, pruned = session(data), session(cut)
        assert np.array_equal(whole.run(["embedding"], {"input": x})[0], pruned.run(["embedding"], {"input": x})[0])
        times: dict = {"whole": [], "pruned": []}
        for i in range(args.repeats * 4):
            for k, s in (("whole", whole), ("pruned", pruned)) if i % 2 == 0 else (("pruned", pruned), ("whole", whole)):
                t = time.perf_counter()
                s.run(["embedding"], {"input": x})
                times[k].append((time.perf_counter() - t) / 16 * 1000)
        w, p = statistics.median(times["whole"]), statistics.median(times["pruned"])
        print(f"inference, {threads} thread(s), batch 16: whole graph {w:.2f} ms/photo, embedding only "
              f"{p:.2f} ms/photo: {w / p:.3f}x (identical embeddings); model file {len(data) / 1e6:.1f} MB, "
              f"cut {len(cut) / 1e6:.1f} MB; load average {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=40, help="12-MP photos of the many-photo case")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--base", help="a checkout of another featx to compare with (interleaved)")
    ap.add_argument("--only", default="cnn,hog")
    ap.add_argument("--graph", action="store_true", help="only the inference comparison")
    ap.add_argument("--quick", action="store_true", help="8 photos, 1 repeat")
    args = ap.parse_args()
    if args.quick:
        args.n, args.repeats = 8, 1
    print(f"load average before: {os.getloadavg()}")
    if args.graph:
        graph(args)
    else:
        startup(args)


if __name__ == "__main__":
    main()
