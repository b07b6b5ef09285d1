"""Parquet output: the cost of writing it against ``.npy``, and a nearest-neighbour query in DuckDB.

1. Whole-run time of ``featx extract EXTRACTOR DIR -o out.parquet`` against the same
   command with ``-o out.npy``, over N small JPEGs (by default 10,000: 200 distinct crops of
   the sample photos, each linked under 50 names), for ``cnn`` embeddings (1,280 floats a
   row) and ``gradients`` (the cheapest extractor, where the writer weighs most).  The two
   formats alternate, each run from scratch; printed: the medians and parquet / npy
   (target: at most 1.10).
2. A DuckDB query for the 10 nearest neighbours of one row by cosine similarity over R
   rows of cnn width (by default 100,000; random float32 vectors written by featx's own
   Parquet writer in parts of 10,000 rows), timed (median of the repeats), beside numpy
   doing the same over the matrix in memory.

    python benchmarks/bench_parquet.py [--files 10000] [--rows 100000] [--repeat 3] [--jobs 2]
                                       [--case cnn --case gradients] [--size 160x120]
"""
from __future__ import annotations

import argparse
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_pipeline import ENV, make_images  # noqa: E402

CNN_WIDTH = 1280


def images(folder: Path, n: int, distinct: int, size: tuple[int, int]) -> Path:
    import cv2

    base = folder / "distinct"
    make_images(base, min(n, distinct))
    files = sorted(base.iterdir())
    for p in files:
        cv2.imwrite(str(p), cv2.resize(cv2.imread(str(p)), size, interpolation=cv2.INTER_AREA))
    data = folder / "in"
    data.mkdir()
    for i in range(n):
        os.link(files[i % len(files)], data / f"img{i:05d}.jpg")
    shutil.rmtree(base, ignore_errors=True) if n <= distinct else None
    return data


def write_run(extractor: str, src: Path, out: Path, jobs: int) -> float:
    cmd = [sys.executable, "-m", "featx", "extract", extractor, str(src), "-o", str(out), "-q", "-j", str(jobs),
           "--overwrite"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=ENV, capture_output=True)
    return time.perf_counter() - t


def bench_write(args, work: Path, src: Path, extractor: str) -> None:
    npy, par = work / f"{extractor}.npy", work / f"{extractor}.parquet"
    t_npy, t_par = [], []
    write_run(extractor, src, npy, args.jobs)   # warm the page cache and the model
    for _ in range(args.repeat):
        t_npy.append(write_run(extractor, src, npy, args.jobs))
        t_par.append(write_run(extractor, src, par, args.jobs))
    a, b = statistics.median(t_npy), statistics.median(t_par)
    parts = len(list(par.glob("*.parquet")))
    print(f"{extractor:10s} {args.files:7d} inputs  npy {a:7.2f} s  parquet {b:7.2f} s  "
          f"parquet/npy {b / a:5.3f}  ({parts} parts, {sum(p.stat().st_size for p in par.iterdir()) / 1e6:.1f} MB)")


def bench_query(args, work: Path) -> None:
    import duckdb

    from featx.output.parquetio import part_name, vector_table, write_part

    folder = work / "knn.parquet"
    folder.mkdir()
    rng = np.random.default_rng(0)
    per = 10_000
    mats = []
    for k in range(0, args.rows, per):
        n = min(per, args.rows - k)
        m = rng.standard_normal((n, CNN_WIDTH), dtype=np.float32)
        mats.append(m)
        keys = [{"path": f"img{k + i:07d}.jpg"} for i in range(n)]
        fd = write_part(str(folder / part_name(k // per + 1)), vector_table(keys, m.tobytes(), CNN_WIDTH, ("path",),
                                                                            None))
        os.close(fd)
    query = (f"SELECT path, array_cosine_similarity(vector::FLOAT[{CNN_WIDTH}], "
             f"(SELECT vector::FLOAT[{CNN_WIDTH}] FROM read_parquet('{folder}/*.parquet') "
             f"WHERE path = 'img0000042.jpg')) AS s FROM read_parquet('{folder}/*.parquet') ORDER BY s DESC LIMIT 10")
    con = duckdb.connect()
    times, got = [], None
    for _ in range(args.repeat):
        t = time.perf_counter()
        got = con.sql(query).fetchall()
        times.append(time.perf_counter() - t)
    full = np.concatenate(mats)
    t = time.perf_counter()
    unit = full / np.linalg.norm(full, axis=1, keepdims=True)
    want = np.argsort(-(unit @ unit[42]))[:10]
    t_np = time.perf_counter() - t
    assert [r[0] for r in got] == [f"img{i:07d}.jpg" for i in want], (got, want)
    print(f"duckdb 10-NN by cosine over {args.rows} rows x {CNN_WIDTH}: {statistics.median(times):.3f} s "
          f"(numpy in memory: {t_np:.3f} s; parquet {sum(p.stat().st_size for p in folder.iterdir()) / 1e6:.0f} MB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=10_000, help="inputs of each write run")
    ap.add_argument("--distinct", type=int, default=200)
    ap.add_argument("--size", default="160x120", help="size of the generated JPEGs")
    ap.add_argument("--rows", type=int, default=100_000, help="rows of the nearest-neighbour query")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--case", action="append", default=None, help="extractor (repeatable); default cnn, gradients")
    args = ap.parse_args()
    w, h = (int(v) for v in args.size.split("x"))
    work = Path(tempfile.mkdtemp(prefix="featx-bench-parquet-"))
    try:
        src = images(work, args.files, args.distinct, (w, h))
        for extractor in args.case or ["cnn", "gradients"]:
            bench_write(args, work, src, extractor)
        if args.rows:
            bench_query(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
