"""``python -m tests.golden ACTION [NAME ...]`` from the repository root.

* ``regen``: run the commands and store their outputs in tests/golden/data/ — commit
  the result with a message that says why the numbers changed.
* ``check``: compare fresh outputs with the stored ones, as tests/test_golden.py does.
* ``diff``: print, per entry, the largest difference of each array or column and how
  much of its tolerance that is; exit 1 if any fails.
* ``mutants``: plant each entry's realistic bug (tests/golden/mutants.py) and show that
  the comparison fails; exit 1 if one is not caught.
* ``reduced``: ``diff`` in a fresh interpreter whose libraries are held to fewer
  instruction-set features (see :data:`REDUCED_ENV` and :func:`reduce_isa`): another
  CPU, as far as this one can play it.

``--markdown`` prints ``diff``, ``mutants`` and ``reduced`` as a markdown table.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from . import ROOT, compare, load_manifest, produce, regen

#: numpy: no dispatch above the X86_V2 baseline (SSE4.2): AVX2/FMA3 (X86_V3) and the
#: AVX-512 targets off; OpenBLAS (numpy's matmul/einsum via BLAS): the SSE-only Nehalem
#: kernels; OpenCV: its dispatched AVX/AVX2/FMA3/AVX-512 code paths off (and
#: cv2.setUseOptimized(False) in the process, see reduce_isa).
REDUCED_ENV = {
    "numpy": {"NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
              "OPENBLAS_CORETYPE": "Nehalem"},
    "opencv": {"OPENCV_CPU_DISABLE": "AVX512_SKX,AVX512_ICL,AVX512_COMMON,AVX2,FMA3,AVX,FP16"},
    "onnxruntime": {},
}
LIBRARIES = tuple(REDUCED_ENV)


def reduce_isa(libraries=LIBRARIES) -> list[str]:
    """Hold the libraries loaded in this process to fewer instruction-set features where
    they have a switch; returns what was done.  ONNX Runtime has none (its MLAS kernels
    are chosen by CPUID at start, with no run-time override): its graph optimisations
    (operator fusion, constant folding) are turned off instead, which changes the order
    and grouping of its float32 arithmetic as another build or CPU would."""
    import cv2
    import numpy as np

    done = []
    if "opencv" in libraries:
        cv2.setUseOptimized(False)
    done.append(f"cv2.useOptimized() = {cv2.useOptimized()}")
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats
    except ImportError:  # numpy 1.x
        from numpy.core._multiarray_umath import __cpu_features__ as feats
    done.append("numpy features on: " + " ".join(k for k, v in feats.items() if v))
    try:
        import onnxruntime as ort
    except ImportError:
        return done
    if "onnxruntime" not in libraries:
        return done
    base = ort.SessionOptions

    def options():
        so = base()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return so

    ort.SessionOptions = options
    done.append("onnxruntime: graph optimisations off (no instruction-set switch)")
    del np
    return done


def _row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.golden", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", choices=("regen", "check", "diff", "mutants", "reduced"))
    ap.add_argument("names", nargs="*", help="entries (default: all)")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--only", default=",".join(LIBRARIES),
                    help="reduced: the libraries to hold back (comma-separated; default: %(default)s)")
    ap.add_argument("--reduced-isa", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    entries = load_manifest()
    if args.names:
        unknown = set(args.names) - {e.name for e in entries}
        if unknown:
            ap.error(f"unknown entries: {', '.join(sorted(unknown))}")
        entries = [e for e in entries if e.name in args.names]
    if args.action == "regen":
        regen(entries)
        return 0
    if args.action == "reduced":
        libs = [x for x in args.only.split(",") if x]
        if set(libs) - set(LIBRARIES):
            ap.error(f"--only: one of {', '.join(LIBRARIES)}")
        env = dict(os.environ)
        for lib in libs:
            env.update(REDUCED_ENV[lib])
        cmd = [sys.executable, "-m", "tests.golden", "diff", "--reduced-isa", ",".join(libs), *args.names]
        if args.markdown:
            cmd.append("--markdown")
        return subprocess.run(cmd, cwd=ROOT, env=env).returncode
    if args.reduced_isa:
        for line in reduce_isa(args.reduced_isa.split(",")):
            print(f"<!-- {line} -->" if args.markdown else f"# {line}")
    if args.action == "mutants":
        return _mutants(entries, args.markdown)
    failed = 0
    if args.markdown:
        print(_row(["entry", "largest difference (where it used most of its tolerance)", "tolerance there",
                     "fraction used", "ok"]))
        print(_row(["---"] * 5))
    with tempfile.TemporaryDirectory(prefix="featx-golden-") as tmp:
        for e in entries:
            d = compare(e, produce(e, Path(tmp)))
            failed += bool(d.problems)
            if args.action == "diff":
                key = max(d.used, key=lambda k: d.used[k], default=None)
                if args.markdown:
                    print(_row([e.name, f"{key}: {d.worst[key]:.3g}" if key and d.worst[key] else "0 (identical)",
                                f"{d.allowed[key]:.3g}" if key else "-",
                                f"{d.used[key]:.2g}" if key else "0", "no" if d.problems else "yes"]))
                else:
                    print(f"{e.name:24s} "
                          + (f"worst {key} {d.worst[key]:.3g} = {d.used[key]:.2g} of tolerance {d.allowed[key]:.3g}"
                             if key and d.used[key] else "identical"))
            for p in d.problems:
                print(f"  FAIL {p}")
            if args.action == "check" and not d.problems:
                print(f"{e.name}: ok")
    return 1 if failed else 0


def _mutants(entries, markdown: bool) -> int:
    from .mutants import BLIND, FOR_ENTRY, MUTANTS, mutated

    missed = 0
    if markdown:
        print(_row(["entry", "perturbation", "largest difference", "tolerance there", "fraction used",
                    "caught"]))
        print(_row(["---"] * 6))
    names = {e.name for e in entries}
    runs = [(e, FOR_ENTRY.get(e.name), None) for e in entries]
    by_name = {e.name: e for e in entries}
    runs += [(by_name[n], m, other) for n, m, other in BLIND if n in names]
    for e, name, other in runs:
        if name is None:
            print(f"{e.name}: no mutant")
            missed += 1
            continue
        with tempfile.TemporaryDirectory(prefix="featx-golden-") as tmp:
            with mutated(name):
                try:
                    d = compare(e, produce(e, Path(tmp)))
                except RuntimeError as exc:  # the command itself failed: caught too
                    print(f"{e.name}: {name}: the command failed: {str(exc).splitlines()[0]}")
                    continue
        caught = bool(d.problems)
        if other is None:
            missed += not caught
        key = max(d.used, key=lambda k: d.used[k], default=None)
        structural = [p for p in d.problems if "tolerance" not in p]
        verdict = "yes" if caught else ("no (expected: " + other + " catches it)" if other else "**NO**")
        if markdown:
            worst = f"{key}: {d.worst[key]:.3g}" if key and d.worst[key] else "0 (identical)"
            if structural:
                worst += f"; {len(structural)} structural ({structural[0][:70]}...)"
            used = d.used.get(key, 0.0) if key else 0.0
            print(_row([e.name, f"{name}: {MUTANTS[name].what}", worst,
                        f"{d.allowed[key]:.3g}" if key else "-",
                        "inf (exact)" if used == float("inf") else f"{used:.3g}", verdict]))
        else:
            print(f"{e.name:20s} {name:20s} {verdict:12s} " + (d.problems[0][:150] if d.problems else ""))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
