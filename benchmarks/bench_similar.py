#!/usr/bin/env python
"""``featx similar`` end to end at scale: time, peak memory and recall@10.

Writes ``--rows`` vectors of ``--dim`` values (the clustered, non-negative vectors of
bench_ann.py, as a plain .npy) and runs, each in a fresh process::

    featx similar X.npy --k 10 --approximate -o out.csv     # build the index, search every row
    featx similar X.npy --k 10 --approximate -o out.csv     # again: the index is reused
    featx similar X.npy --k 10 --exact -o out.csv           # only with --exact (rows^2: slow)

reporting wall time, peak RSS of the process (``ru_maxrss`` of the child: the memory-mapped
vectors it touches count) and the recall@10 featx prints (measured against the exact search
on 200 sampled rows).

Usage::

    nice python benchmarks/bench_similar.py --rows 100000 [--rows 1000000] [--exact] [--timeout 900]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(args: list[str], timeout: float) -> tuple[float, float, str, int]:
    """(seconds, peak MB of that process, stderr, exit code; -9 when it ran out of time) of
    ``featx ARGS`` in a fresh process."""
    import threading

    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "featx", *args], stderr=subprocess.PIPE, text=True)
    timer = threading.Timer(timeout, p.kill)
    timer.start()
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    timer.cancel()
    p.returncode = rc = os.waitstatus_to_exitcode(status)
    return time.perf_counter() - t0, ru.ru_maxrss / 1024, err, rc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, action="append", help="rows (repeatable; default 100000)")
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--exact", action="store_true", help="also time the exact search of every row")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed per command")
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="bench-similar-")
    print("| rows | search | wall (s) | peak RSS (MB) | recall@%d | note |" % args.k)
    print("|---:|---|---:|---:|---:|---|")
    for n in args.rows or [100_000]:
        data = os.path.join(work, f"vectors-{n}x{args.dim}.npy")
        if not os.path.exists(data):   # in a child: this process stays small, so the peaks
            # measured below are featx's own (Linux carries a parent's peak RSS into its children)
            subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
                            "from bench_ann import make_vectors; make_vectors(sys.argv[2], int(sys.argv[3]), "
                            "int(sys.argv[4]))", str(Path(__file__).resolve().parent), data, str(n), str(args.dim)],
                           check=True)
        out = os.path.join(work, "out.csv")
        runs = [("approximate (build)", "--approximate"), ("approximate (index reused)", "--approximate")]
        if args.exact:
            runs.append(("exact", "--exact"))
        for what, flag in runs:
            wall, peak, err, rc = run(["similar", data, "--k", str(args.k), flag, "-o", out], args.timeout)
            m = re.search(r"recall@\d+ ([0-9.]+)", err)
            note = "timed out" if rc == -9 else ("" if rc == 0 else f"exit {rc}: {err.strip().splitlines()[-1:]}")
            print(f"| {n} | {what} | {wall:.0f} | {peak:.0f} | {m.group(1) if m else '—'} | {note} |", flush=True)
            if rc == -9:
                break


if __name__ == "__main__":
    main()
