"""`featx report` at scale: time, page size and peak memory for 10^4 and 10^5 rows.

Builds an `.npy` output of N rows of 1,280 float32 values (the size of a cnn embedding:
clustered, non-negative vectors so that both cosine and hellinger apply) with its
`NAME.index.csv`, whose rows name real JPEGs (200 distinct small photos cut from the
samples, each linked under N/200 names, so every drawn row has a thumbnail to make),
then runs `featx report` on it in a fresh interpreter as a user would, with the default
settings (2,000 rows drawn and given thumbnails; neighbours of those among all rows).
Prints one line per size: seconds, page MB, peak RSS, and the times the page reports.

    python benchmarks/bench_report.py [--rows 10000 100000] [--dim 1280] [--metric cosine]
"""
from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def make_output(folder: Path, rows: int, dim: int, distinct: int = 200, seed: int = 0) -> Path:
    import cv2

    photos = folder / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    srcs = [cv2.imread(str(ROOT / "samples" / n)) for n in ("astronaut.png", "coffee.jpg", "chelsea.png",
                                                              "rocket.jpg", "camera.png")]
    bases = []
    for i in range(distinct):
        img = srcs[i % len(srcs)]
        y, x = (i * 11) % 120, (i * 17) % 150
        p = photos / f"base{i:03d}.jpg"
        cv2.imwrite(str(p), cv2.resize(img[y:y + 300, x:x + 360], (320, 240)))
        bases.append(p)
    rng = np.random.default_rng(seed)
    centres = rng.gamma(1.0, 1.0, size=(50, dim)).astype(np.float32)
    out = folder / "emb.npy"
    X = np.lib.format.open_memmap(out, mode="w+", dtype=np.float32, shape=(rows, dim))
    lines = ["row,path\n"]
    for start in range(0, rows, 10000):
        n = min(10000, rows - start)
        c = rng.integers(0, len(centres), n)
        X[start:start + n] = np.abs(centres[c] + rng.normal(0, 0.3, (n, dim)).astype(np.float32))
        for i in range(start, start + n):
            name = photos / f"img{i:06d}.jpg"
            os.link(bases[i % distinct], name)
            lines.append(f"{i},{name}\n")
    X.flush()
    del X
    (folder / "emb.index.csv").write_text("".join(lines))
    return out


def run(rows: int, dim: int, metric: str) -> None:
    with tempfile.TemporaryDirectory(prefix="featx-bench-report-") as tmp:
        out = make_output(Path(tmp), rows, dim)
        page = Path(tmp) / "emb.html"
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "featx", "report", str(out), "-o", str(page), "--metric", metric],
                           capture_output=True, text=True)
        secs = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if r.returncode != 0:
            raise SystemExit(r.stderr)
        text = page.read_text()
        inner = re.search(r"Read ([\d,]+) rows in ([\d.]+) s; neighbours in ([\d.]+) s; ([\d,]+) thumbnails in "
                          r"([\d.]+) s", text)
        print(f"rows {rows:>7,}  dim {dim}  {metric:<9} {secs:6.1f} s  page {page.stat().st_size / 1e6:5.1f} MB  "
              f"peak RSS {max(peak, before) / 1024:6.0f} MB  (read {inner.group(2)} s, neighbours {inner.group(3)} s, "
              f"{inner.group(4)} thumbnails {inner.group(5)} s)", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[10000, 100000])
    ap.add_argument("--dim", type=int, default=1280)
    ap.add_argument("--metric", default="cosine")
    a = ap.parse_args()
    for n in a.rows:
        run(n, a.dim, a.metric)


if __name__ == "__main__":
    main()
