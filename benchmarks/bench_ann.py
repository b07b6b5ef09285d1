#!/usr/bin/env python
"""Which approximate index featx uses: usearch, hnswlib and faiss-cpu measured on the same vectors.

Each library builds an HNSW graph (M / connectivity 16, 128 candidates while adding, 64
while searching, float32, every thread) over ``--rows`` vectors of ``--dim`` values in a
fresh process, and answers ``--queries`` rows sampled from the data; reported per library:
build time, search time, peak memory of the process (VmHWM, the memory-mapped vectors it touched included), the
index's size on disk, and recall@10 against featx's exact search (cosine) on the same queries.

The vectors: a Gaussian mixture of 2,000 clusters on a 64-d subspace, lifted to ``--dim`` by a
random matrix, plus noise and a ReLU -- non-negative, clustered, low intrinsic dimension, as
CNN embeddings are (uniform noise would make every index look bad and rank nothing).

Usage::

    nice python benchmarks/bench_ann.py --rows 100000 [--dim 1280] [--libs usearch,hnswlib,faiss]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_vectors(path: str, rows: int, dim: int, seed: int = 0, block: int = 50_000) -> None:
    """Write the benchmark's (rows, dim) float32 matrix to ``path`` (.npy), block by block."""
    rng = np.random.default_rng(seed)
    lift = rng.standard_normal((64, dim)).astype(np.float32) / 8
    centers = rng.standard_normal((2000, 64)).astype(np.float32) * 3
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for r0 in range(0, rows, block):
        n = min(block, rows - r0)
        z = centers[rng.integers(0, 2000, n)] + rng.standard_normal((n, 64)).astype(np.float32)
        x = z @ lift + 0.05 * rng.standard_normal((n, dim)).astype(np.float32)
        out[r0:r0 + n] = np.maximum(x, 0)
    out.flush()
    del out


def exact_truth(X: np.ndarray, qidx: np.ndarray, k: int) -> np.ndarray:
    sys.path.insert(0, str(ROOT))
    from featx.neighbors import nearest

    idx, _ = nearest(X, k + 1, "cosine", X[qidx])
    return np.array([[j for j in row if j != q][:k] for row, q in zip(idx, qidx)])


def unit(X):
    n = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(n == 0, 1, n)


def peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ``ru_maxrss`` would carry the parent's
    peak across fork and exec on Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def progress(data: str, lib: str, rows: int, seconds: float) -> None:
    """A line per block added, in DATA.LIB.progress: what a build that runs out of time reached."""
    rss = peak_mb()
    with open(f"{data}.{lib}.progress", "a") as fh:
        fh.write(f"{rows} rows added in {seconds:.0f} s, peak RSS {rss:.0f} MB\n")


def run_one(lib: str, data: str, qfile: str, k: int, threads: int) -> dict:
    X = np.load(data, mmap_mode="r")
    n, dim = X.shape
    qidx = np.load(qfile)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        if lib == "usearch":
            from usearch.index import Index
            index = Index(ndim=dim, metric="cos", dtype="f32", connectivity=16, expansion_add=128,
                          expansion_search=64)
            for r0 in range(0, n, 50_000):
                index.add(np.arange(r0, min(n, r0 + 50_000)), np.asarray(X[r0:r0 + 50_000]), threads=threads)
            build = time.perf_counter() - t0
            t1 = time.perf_counter()
            res = index.search(np.asarray(X[qidx]), k + 1, threads=threads)
            found = np.asarray(res.keys)
            search = time.perf_counter() - t1
            index.save(os.path.join(tmp, "i"))
        elif lib == "hnswlib":
            import hnswlib
            index = hnswlib.Index(space="cosine", dim=dim)
            index.init_index(max_elements=n, ef_construction=128, M=16)
            index.set_num_threads(threads)
            for r0 in range(0, n, 50_000):
                index.add_items(np.asarray(X[r0:r0 + 50_000]), np.arange(r0, min(n, r0 + 50_000)))
            build = time.perf_counter() - t0
            index.set_ef(64)
            t1 = time.perf_counter()
            found, _ = index.knn_query(np.asarray(X[qidx]), k=k + 1)
            search = time.perf_counter() - t1
            index.save_index(os.path.join(tmp, "i"))
        else:
            import faiss
            faiss.omp_set_num_threads(threads)
            index = faiss.IndexHNSWFlat(dim, 16, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = 128
            for r0 in range(0, n, 50_000):
                index.add(unit(np.asarray(X[r0:r0 + 50_000], dtype=np.float32)))
                progress(data, lib, r0 + 50_000, time.perf_counter() - t0)
            build = time.perf_counter() - t0
            index.hnsw.efSearch = 64
            t1 = time.perf_counter()
            _, found = index.search(unit(np.asarray(X[qidx], dtype=np.float32)), k + 1)
            search = time.perf_counter() - t1
            faiss.write_index(index, os.path.join(tmp, "i"))
        disk = os.path.getsize(os.path.join(tmp, "i"))
    peak = peak_mb()   # the whole process: the memory-mapped vectors it reads count too
    found = np.array([[j for j in row if j != q][:k] for row, q in zip(np.asarray(found), qidx)])
    return {"lib": lib, "rows": n, "build_s": round(build, 1), "search_ms_per_query": round(1000 * search / len(qidx), 3),
            "peak_mb_over_start": round(peak), "disk_mb": round(disk / 2**20), "found": found.tolist()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--libs", default="usearch,hnswlib,faiss")
    ap.add_argument("--workdir", default=None, help="where the vectors are written (default: a temporary folder)")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        lib, data = args.one
        print(json.dumps(run_one(lib, data, data + ".q.npy", args.k, args.threads)))
        return
    work = args.workdir or tempfile.mkdtemp(prefix="bench-ann-")
    data = os.path.join(work, f"vectors-{args.rows}x{args.dim}.npy")
    if not os.path.exists(data):
        t0 = time.perf_counter()
        make_vectors(data, args.rows, args.dim)
        print(f"made {args.rows} x {args.dim} vectors in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    X = np.load(data, mmap_mode="r")
    qidx = np.random.default_rng(1).choice(args.rows, size=min(args.queries, args.rows), replace=False)
    np.save(data + ".q.npy", qidx)
    t0 = time.perf_counter()
    truth = exact_truth(X, qidx, args.k)
    print(f"exact search of {len(qidx)} queries: {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(f"| library | rows | build (s) | search (ms/query) | peak RSS (MB, incl. the mapped vectors) | on disk (MB) | recall@{args.k} |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for lib in args.libs.split(","):
        r = subprocess.run([sys.executable, __file__, "--one", lib, data, "--k", str(args.k),
                            "--threads", str(args.threads)], capture_output=True, text=True)
        if r.returncode:
            print(f"| {lib} | failed: {r.stderr.strip().splitlines()[-1:]} |")
            continue
        res = json.loads(r.stdout)
        found = np.array(res["found"])
        recall = np.mean([len(set(f) & set(t)) / args.k for f, t in zip(found, truth)])
        print(f"| {lib} | {res['rows']} | {res['build_s']} | {res['search_ms_per_query']} | "
              f"{res['peak_mb_over_start']} | {res['disk_mb']} | {recall:.3f} |", flush=True)


if __name__ == "__main__":
    main()
