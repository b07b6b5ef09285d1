"""The approximate nearest-neighbour index of an output (the ``featx[ann]`` extra).

An HNSW graph (:data:`LIBRARY`, chosen by measurement: benchmarks/bench_ann.py) over the
output's rows, transformed as :func:`featx.neighbors.prepare` does so that every metric is
an inner product (cosine) or an L2 distance (l2, hellinger).  The distances written are the
library's (float32; re-reading every neighbour's row to recompute them cost more than the
search itself at 10^6 rows), turned into featx's.

It is kept beside the output, as featx keeps its state: ``.NAME.featx-ann/`` (a folder:
``meta.json``, the graph, and one 64-bit digest of each row's values), written under new
names and committed by renaming ``meta.json`` last, so a killed build leaves the old index
or none.  It is keyed by the rows themselves, not by dates or counts: when it is opened,
the digests of the output's rows are compared with those it was built from --

* the same rows: used as is;
* the same first rows and more after them (the output grew, new inputs appended): only
  the new rows are added (``updated``);
* any row replaced or removed, another metric, dimension or library: built again, and
  said so (``rebuilt``) -- a stale index is never used.
"""
from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable
from importlib import metadata

import numpy as np

from .errors import UsageError
from .neighbors import check_metric, prepare

#: The library the index is built with (its pip name); see _Graph.
LIBRARY = "faiss-cpu"
MODULE = {"faiss-cpu": "faiss"}.get(LIBRARY, LIBRARY)     # what is imported
M = 16                 # graph degree
EF_CONSTRUCTION = 128  # candidates while adding
EF_SEARCH = 64         # candidates while searching (at least 2 k)
ADD_BLOCK = 20_000     # rows prepared and added (or searched) at a time

INSTALL_HINT = f"pip install 'featx[ann]' (installs {LIBRARY}), or pass --exact (slow above ~20,000 rows)"


class _Graph:
    """The few calls featx makes of the HNSW library (faiss, hnswlib or usearch: all three were
    measured, see bench_ann.py); ids are row numbers, added in order."""

    def __init__(self, space: str, dim: int, capacity: int, path: str | None = None):
        try:
            self.lib = __import__(MODULE)
        except ImportError:
            raise UsageError(f"the approximate index needs {LIBRARY}, which is not installed", INSTALL_HINT) from None
        threads = max(1, os.cpu_count() or 1)
        self.threads = threads
        if LIBRARY == "faiss-cpu":
            faiss = self.lib
            faiss.omp_set_num_threads(threads)
            if path is None:
                g = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT if space == "ip" else faiss.METRIC_L2)
                g.hnsw.efConstruction = EF_CONSTRUCTION
            else:
                g = faiss.read_index(path)
        elif LIBRARY == "hnswlib":
            g = self.lib.Index(space=space, dim=dim)
            if path is None:
                g.init_index(max_elements=capacity, ef_construction=EF_CONSTRUCTION, M=M, random_seed=100)
            else:
                g.load_index(path, max_elements=capacity)
            g.set_num_threads(threads)
            if g.get_max_elements() < capacity:
                g.resize_index(capacity)
        else:
            from usearch.index import Index as UIndex

            g = UIndex(ndim=dim, metric="ip" if space == "ip" else "l2sq", dtype="f32", connectivity=M,
                       expansion_add=EF_CONSTRUCTION, expansion_search=EF_SEARCH)
            if path is not None:
                g.load(path)
        self.g = g

    def add(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if LIBRARY == "faiss-cpu":
            if self.g.ntotal != ids[0]:
                raise RuntimeError("faiss numbers rows in the order they are added")
            self.g.add(np.ascontiguousarray(vectors, dtype=np.float32))
        elif LIBRARY == "hnswlib":
            self.g.add_items(vectors, ids)
        else:
            self.g.add(ids, vectors, threads=self.threads)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers (-1: none) and the library's own distances: squared L2, or for the
        inner-product space ``1 - ip``."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if LIBRARY == "faiss-cpu":
            self.g.hnsw.efSearch = max(EF_SEARCH, 2 * k)
            d, ids = self.g.search(q, k)
            if self.g.metric_type == self.lib.METRIC_INNER_PRODUCT:
                d = 1.0 - d
            return ids.astype(np.int64), d
        if LIBRARY == "hnswlib":
            self.g.set_ef(max(EF_SEARCH, 2 * k))
            ids, d = self.g.knn_query(q, k=k)
            return ids.astype(np.int64), d
        self.g.expansion_search = max(EF_SEARCH, 2 * k)
        res = self.g.search(q, k, threads=self.threads)
        keys = np.asarray(res.keys, dtype=np.int64).reshape(len(q), -1)
        d = np.asarray(res.distances, dtype=np.float32).reshape(len(q), -1)
        counts = np.asarray(res.counts).reshape(-1)
        keys[np.arange(keys.shape[1])[None, :] >= counts[:, None]] = -1
        return keys, d

    def save(self, path: str) -> None:
        if LIBRARY == "faiss-cpu":
            self.lib.write_index(self.g, path)
        else:
            (self.g.save_index if LIBRARY == "hnswlib" else self.g.save)(path)


def index_dir(vec) -> str:
    """``.NAME.featx-ann`` beside the output (for a folder output: beside the folder)."""
    d, b = os.path.split(vec.base.rstrip("/" + os.sep) or vec.base)
    return os.path.join(d, f".{b}.featx-ann")


_WEIGHTS: dict[int, np.ndarray] = {}


def digests(X: np.ndarray, block: int = 4096) -> np.ndarray:
    """One uint64 per row: a fixed random linear combination (mod 2^64) of the bits of its
    float32 values.  Odd weights: any change of one value changes the digest; several
    changes collide with odds of about 2^-64."""
    d = X.shape[1]
    w = _WEIGHTS.get(d)
    if w is None:
        w = np.random.default_rng(0x5EED).integers(0, 2**63, size=d, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
        _WEIGHTS[d] = w
    out = np.empty(X.shape[0], dtype=np.uint64)
    for r0 in range(0, X.shape[0], block):
        bits = np.ascontiguousarray(X[r0:r0 + block], dtype=np.float32).view(np.uint32).astype(np.uint64)
        with np.errstate(over="ignore"):
            out[r0:r0 + block] = (bits * w).sum(axis=1, dtype=np.uint64)
    return out


class Index:
    """An opened (and brought up to date) index of an output's rows."""

    def __init__(self, vec, metric: str, graph, status: str):
        self.vec, self.metric, self.graph, self.status = vec, metric, graph, status

    def search(self, queries: np.ndarray | None, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As :func:`featx.neighbors.nearest`, approximately (``queries`` None: every row,
        never its own neighbour)."""
        X = self.vec.matrix
        n = X.shape[0]
        self_search = queries is None
        nq = n if self_search else len(queries)
        out_i = np.full((nq, k), -1, np.int64)
        out_d = np.full((nq, k), np.inf, np.float32)
        # a few more candidates than asked for, ordered by (distance, row): ties at the k-th
        # place go to the lower row, as in the exact search
        want = min(k + 3 + (1 if self_search else 0), n)
        if want == 0 or nq == 0:
            return out_i, out_d
        scale = 1 / np.sqrt(2) if self.metric == "hellinger" else 1.0
        for q0 in range(0, nq, ADD_BLOCK):
            q1 = min(nq, q0 + ADD_BLOCK)
            Qb = prepare(X[q0:q1] if self_search else queries[q0:q1], self.metric)
            ids, raw = self.graph.search(Qb, want)
            raw = np.asarray(raw, dtype=np.float32)
            # the library's distances, as featx's (float32: no re-reading of the rows)
            d = np.maximum(raw, 0) if self.metric == "cosine" else np.sqrt(np.maximum(raw, 0)) * scale
            d = np.where(ids >= 0, d, np.inf).astype(np.float32)
            if self_search:   # never its own neighbour
                d[ids == np.arange(q0, q1)[:, None]] = np.inf
                ids = np.where(np.isfinite(d), ids, -1)
            key_i = np.where(ids >= 0, ids, np.iinfo(np.int64).max)
            order = np.lexsort((key_i, d), axis=1)[:, :k]
            out_i[q0:q1, :order.shape[1]] = np.take_along_axis(ids, order, axis=1)
            out_d[q0:q1, :order.shape[1]] = np.take_along_axis(d, order, axis=1)
        return out_i, out_d


def _meta_ok(meta: dict, metric: str, dim: int) -> str | None:
    """Why an index's meta does not fit (None: it fits)."""
    lib = LIBRARY
    if meta.get("library") != lib or meta.get("library_version") != _version(lib):
        return f"it was built with {meta.get('library')} {meta.get('library_version')}"
    if meta.get("metric") != metric:
        return f"it was built for the {meta.get('metric')} metric"
    if meta.get("dim") != dim or meta.get("M") != M or meta.get("ef_construction") != EF_CONSTRUCTION:
        return "it was built with other settings"
    return None


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def open_index(vec, metric: str, *, say: Callable[[str], None] = lambda m: None, save: bool = True) -> Index:
    """The index of ``vec``'s rows for ``metric``: loaded, grown or (re)built as the module
    docstring says, and saved back beside the output when it changed (``save``)."""
    check_metric(metric)
    X = vec.matrix
    n, dim = X.shape
    space = "ip" if metric == "cosine" else "l2"
    where = index_dir(vec)
    now = digests(X)
    graph, status, have = None, "built", 0
    meta = _read_meta(where)
    if meta is not None:
        why = _meta_ok(meta, metric, dim)
        old = _load_digests(where, meta)
        if why is None and old is not None and len(old) <= n and np.array_equal(old, now[:len(old)]):
            try:
                graph = _Graph(space, dim, max(n, 1), os.path.join(where, meta["graph"]))
                have = len(old)
            except (RuntimeError, OSError, KeyError, ValueError):
                graph, why = None, "its files could not be read"
        elif why is None:
            why = "rows of the output were replaced or removed since it was built"
        if graph is None:
            status = "rebuilt"
            say(f"approximate index {where}: rebuilt ({why})")
    if graph is None:
        graph = _Graph(space, dim, max(n, 1))
    elif have < n:
        status = "updated"
    else:
        status = "used"
    for r0 in range(have, n, ADD_BLOCK):
        r1 = min(n, r0 + ADD_BLOCK)
        graph.add(prepare(X[r0:r1], metric), np.arange(r0, r1))
    if status == "updated":
        say(f"approximate index {where}: updated ({n - have} new rows added to {have})")
    elif status == "built" and n:
        say(f"approximate index {where}: built over {n} rows")
    if save and status != "used" and n:
        _save(where, graph, now, metric, dim)
    return Index(vec, metric, graph, status)


def _read_meta(where: str) -> dict | None:
    try:
        with open(os.path.join(where, "meta.json"), encoding="utf-8") as fh:
            meta = json.load(fh)
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and meta.get("featx_ann") == 1 else None


def _load_digests(where: str, meta: dict) -> np.ndarray | None:
    try:
        d = np.load(os.path.join(where, meta["digests"]), allow_pickle=False)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return d if d.dtype == np.uint64 and d.ndim == 1 and len(d) == meta.get("rows") else None


def _save(where: str, graph, digests_now: np.ndarray, metric: str, dim: int) -> None:
    from .output.atomic import write_atomic

    os.makedirs(where, exist_ok=True)
    token = secrets.token_hex(6)
    gname, dname = f"graph-{token}.bin", f"digests-{token}.npy"
    graph.save(os.path.join(where, gname))
    np.save(os.path.join(where, dname), digests_now)
    meta = {"featx_ann": 1, "library": LIBRARY, "library_version": _version(LIBRARY), "metric": metric,
            "dim": dim, "M": M, "ef_construction": EF_CONSTRUCTION, "rows": int(len(digests_now)),
            "graph": gname, "digests": dname}
    write_atomic(os.path.join(where, "meta.json"), json.dumps(meta, indent=1) + "\n")
    for f in os.listdir(where):   # the files of earlier commits
        if f not in (gname, dname, "meta.json") and (f.startswith("graph-") or f.startswith("digests-")):
            try:
                os.unlink(os.path.join(where, f))
            except OSError:
                pass


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean fraction of each query's true neighbours (``truth``, -1 for none) found."""
    hits, total = 0, 0
    for f, t in zip(found, truth):
        t = set(int(x) for x in t if x >= 0)
        hits += len(t & set(int(x) for x in f if x >= 0))
        total += len(t)
    return hits / total if total else 1.0
