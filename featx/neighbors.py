"""Exact nearest neighbours of feature vectors, in blocks.

:func:`nearest` finds, for every query row, its ``k`` nearest rows of a matrix
``X`` by one of :data:`METRICS`; :func:`pairs_within` yields every pair of rows
closer than a distance.  Both work tile by tile — a block of queries against a
block of rows, one BLAS matrix product each — so memory stays at one tile
(about :data:`TILE_BYTES`) whatever the number of rows: never an N x N matrix.

Metrics (all return a distance, smaller is nearer):

``cosine``
    ``1 - cos(q, x)`` in [0, 2]; a zero row is at distance 1 from everything.
    For embeddings (cnn), whose direction carries the meaning, not the length.
``l2``
    The Euclidean distance ``||q - x||``.
``hellinger``
    ``||sqrt(q / sum q) - sqrt(x / sum x)|| / sqrt(2)`` in [0, 1], for
    histograms (hog, gradients): non-negative values, compared as distributions.
    Chosen over chi-squared because it is an L2 distance after a per-row
    transform, so it runs on the same matrix products (chi-squared needs a
    division per pair of values and cannot), and it down-weights the large bins
    that dominate L2 on histograms, as chi-squared does.  Negative values are an
    error (they are not histograms).

Distances of the neighbours returned are recomputed directly (float64, from the
transformed rows), so they do not carry the cancellation error of the
``|q|^2 + |x|^2 - 2 q.x`` expansion used to find them.  Ties are broken by the
lower row index, so the result is deterministic.
"""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from .errors import FeatxError

#: The metrics :func:`nearest` knows.
METRICS = ("cosine", "l2", "hellinger")

#: About how many bytes one tile of distances takes (a block of queries times a block of rows).
TILE_BYTES = 64 << 20


def default_metric(extractor: str | None) -> str:
    """The metric to compare the vectors of ``extractor`` by: what its class declares
    (:attr:`featx.extractor.Extractor.neighbor_metric`); ``"l2"`` for a plain matrix
    (None) or an extractor that is not installed."""
    if not extractor:
        return "l2"
    from . import registry

    try:
        cls = registry.get(extractor)
    except FeatxError:
        return "l2"
    metric = getattr(cls, "neighbor_metric", "l2")
    return metric if metric in METRICS else "l2"


def check_metric(metric: str) -> str:
    """``metric`` if featx knows it, else a :class:`~featx.errors.FeatxError` naming those it knows."""
    if metric not in METRICS:
        raise FeatxError(f"unknown metric {metric!r}", f"use one of: {', '.join(METRICS)}")
    return metric


def prepare(X: np.ndarray, metric: str) -> np.ndarray:
    """``X`` as float32 rows in the space where ``metric`` is an L2 or a dot product:
    unit rows for cosine, ``sqrt`` of the L1-normalised rows for hellinger, as is for l2."""
    check_metric(metric)
    X = np.asarray(X)
    if X.ndim != 2:
        raise FeatxError(f"expected a matrix of rows, got an array of shape {X.shape}")
    X = np.ascontiguousarray(X, dtype=np.float32)
    if metric == "l2":
        return X
    X = np.array(X, dtype=np.float32, copy=True)
    if metric == "cosine":
        norms = np.sqrt(np.einsum("ij,ij->i", X, X, dtype=np.float64))
        norms[norms == 0] = 1.0
        X /= norms[:, None].astype(np.float32)
        return X
    neg = np.flatnonzero((X < 0).any(axis=1)) if X.size else np.array([], int)
    if neg.size:
        raise FeatxError("hellinger compares histograms, and these vectors have negative values",
                         "use --metric l2 or cosine for vectors that are not histograms")
    sums = X.sum(axis=1, dtype=np.float64)
    sums[sums == 0] = 1.0
    X /= sums[:, None].astype(np.float32)
    np.sqrt(X, out=X)
    return X


def _scale(metric: str) -> float:
    return 1 / np.sqrt(2) if metric == "hellinger" else 1.0


def _from_sq(sq: np.ndarray, metric: str) -> np.ndarray:
    """The distance from the squared L2 distance of prepared rows: for unit rows
    ``1 - cos = |u - v|^2 / 2`` (no cancellation: identical rows are exactly 0)."""
    return sq / 2 if metric == "cosine" else np.sqrt(sq) * _scale(metric)


def _blocks(nq: int, nx: int, dim: int) -> tuple[int, int]:
    """Rows per query block and per row block so that one tile is about TILE_BYTES."""
    bx = max(1, min(nx, 32768))
    bq = max(1, min(nq, TILE_BYTES // 4 // bx, 4096))
    return bq, bx


def _tile(Q, qsq, B, bsq, metric: str) -> np.ndarray:
    """Distances (squared L2 for l2/hellinger, 1 - dot for cosine) of a tile, float32."""
    dots = Q @ B.T
    if metric == "cosine":
        np.subtract(1.0, dots, out=dots)
        return dots
    dots *= -2.0
    dots += qsq[:, None]
    dots += bsq[None, :]
    np.maximum(dots, 0.0, out=dots)
    return dots


def _topk(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` smallest of each row of ``D`` (column indices, values), ties to the lower column."""
    n = D.shape[1]
    if k >= n:
        idx = np.broadcast_to(np.arange(n), D.shape).copy()
        return idx, D.copy()
    idx = np.argpartition(D, k - 1, axis=1)[:, :k]
    vals = np.take_along_axis(D, idx, axis=1)
    kth = vals.max(axis=1)
    # where more columns equal the k-th value than were taken, take the lowest of them
    tied = np.flatnonzero((D <= kth[:, None]).sum(axis=1) > k)
    for r in tied:
        cand = np.flatnonzero(D[r] <= kth[r])
        order = np.lexsort((cand, D[r, cand]))[:k]
        idx[r] = cand[order]
        vals[r] = D[r, cand[order]]
    return idx, vals


def _merge(bi, bd, ci, cd, k):
    """The ``k`` best of two candidate lists per row, ordered by (distance, index)."""
    idx = np.concatenate([bi, ci], axis=1)
    dist = np.concatenate([bd, cd], axis=1)
    key_i = np.where(idx < 0, np.iinfo(np.int64).max, idx)
    order = np.lexsort((key_i, dist), axis=1)[:, :k]
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(dist, order, axis=1)


def nearest(X: np.ndarray, k: int, metric: str, queries: np.ndarray | None = None,
            ) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest rows of ``X``, blockwise (never an N x N matrix in memory).

    Parameters
    ----------
    X : (N, D) array
        The rows searched (a memory-mapped ``.npy`` is read block by block, not copied).
    k : int
        Neighbours per query (>= 1).
    metric : str
        One of :data:`METRICS`.
    queries : (Q, D) array, optional
        The rows whose neighbours are wanted.  None: every row of ``X`` against the
        others (a row is never its own neighbour; an identical other row is).

    Returns
    -------
    indices : (Q, k) int64
        Row numbers in ``X``, nearest first, ties to the lower row; ``-1`` pads the
        rest where ``X`` has fewer than ``k`` (other) rows.
    distances : (Q, k) float32
        Their distances; ``inf`` where the index is ``-1``.
    """
    if k < 1:
        raise FeatxError(f"k must be at least 1, not {k}")
    check_metric(metric)
    if np.ndim(X) != 2:
        raise FeatxError(f"expected a matrix of rows, got an array of shape {np.shape(X)}")
    self_search = queries is None
    if not self_search:
        queries = np.asarray(queries)
        if queries.ndim != 2 or queries.shape[1] != X.shape[1]:
            raise FeatxError(f"the queries have shape {queries.shape}, the rows {X.shape[1]} values each")
    nq = X.shape[0] if self_search else queries.shape[0]
    nx = X.shape[0]
    out_i = np.full((nq, k), -1, dtype=np.int64)
    out_d = np.full((nq, k), np.inf, dtype=np.float32)
    if nq == 0 or nx == 0:
        return out_i, out_d
    bq, bx = _blocks(nq, nx, X.shape[1])
    kk = min(k + (1 if self_search else 0), nx)
    for q0 in range(0, nq, bq):
        q1 = min(nq, q0 + bq)
        Qb = prepare(X[q0:q1] if self_search else queries[q0:q1], metric)
        qsq = np.einsum("ij,ij->i", Qb, Qb)
        best_i = np.full((q1 - q0, 0), -1, dtype=np.int64)
        best_d = np.full((q1 - q0, 0), np.inf, dtype=np.float32)
        for x0 in range(0, nx, bx):
            x1 = min(nx, x0 + bx)
            B = Qb[x0 - q0:x1 - q0] if self_search and q0 <= x0 and x1 <= q1 else prepare(X[x0:x1], metric)
            D = _tile(Qb, qsq, B, np.einsum("ij,ij->i", B, B), metric)
            if self_search:  # a row is never its own neighbour
                rows = np.arange(q0, q1)
                hit = (rows >= x0) & (rows < x1)
                D[np.flatnonzero(hit), rows[hit] - x0] = np.inf
            ti, td = _topk(D, min(kk, x1 - x0))
            ti = ti + x0
            ti[~np.isfinite(td)] = -1
            best_i, best_d = _merge(best_i, best_d, ti, td, kk)
        fi, fd = exact_distances(X, Qb, best_i[:, :k], metric)
        out_i[q0:q1, :fi.shape[1]], out_d[q0:q1, :fi.shape[1]] = fi, fd
    return out_i, out_d


def exact_distances(X, Qb, idx, metric):
    """Distances from prepared queries ``Qb`` to the rows ``idx`` of ``X`` (-1: none),
    computed directly in float64, and both re-ordered by them (ties to the lower row).
    A few queries at a time (about 64 MB of float64 neighbours)."""
    nq, k = idx.shape
    step = max(1, (8 << 20) // max(1, k * Qb.shape[1]))
    d = np.empty((nq, k), np.float32)
    for q0 in range(0, nq, step):
        sub = idx[q0:q0 + step]
        valid = sub >= 0
        safe = np.where(valid, sub, 0)
        uniq, inv = np.unique(safe, return_inverse=True)
        V = prepare(np.asarray(X[uniq]), metric).astype(np.float64)[inv.reshape(safe.shape)]   # (q, k, D)
        diff = V - Qb[q0:q0 + step].astype(np.float64)[:, None, :]
        d[q0:q0 + step] = np.where(valid, _from_sq(np.einsum("qkd,qkd->qk", diff, diff), metric), np.inf)
    key_i = np.where(idx >= 0, idx, np.iinfo(np.int64).max)
    order = np.lexsort((key_i, d), axis=1)
    return np.take_along_axis(idx, order, axis=1), np.take_along_axis(d, order, axis=1)


def pairs_within(X: np.ndarray, metric: str, threshold: float
                 ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Every pair of rows ``i < j`` of ``X`` whose ``metric`` distance is ``<= threshold``,
    tile by tile: yields ``(i, j, distance)`` arrays (distances exact, float64 recomputed)."""
    check_metric(metric)
    n = X.shape[0]
    if n < 2:
        return
    bq, bx = _blocks(n, n, X.shape[1])
    scale = _scale(metric)
    for q0 in range(0, n, bq):
        q1 = min(n, q0 + bq)
        Qb = prepare(X[q0:q1], metric)
        qsq = np.einsum("ij,ij->i", Qb, Qb)
        for x0 in range(q0, n, bx):
            x1 = min(n, x0 + bx)
            B = prepare(X[x0:x1], metric)
            bsq = np.einsum("ij,ij->i", B, B)
            D = _tile(Qb, qsq, B, bsq, metric)
            # the expansion's float32 error: a margin so no true pair is missed, then checked exactly
            margin = 1e-4 * (1.0 if metric == "cosine" else float(max(qsq.max(), bsq.max())) + 1e-12)
            if metric == "cosine":
                lim = threshold + margin
            else:
                lim = (threshold / scale) ** 2 + margin
            r, c = np.nonzero(D <= lim)
            i, j = r + q0, c + x0
            keep = i < j
            i, j = i[keep], j[keep]
            if not i.size:
                continue
            diff = Qb[i - q0].astype(np.float64) - B[j - x0].astype(np.float64)
            d = _from_sq(np.einsum("nd,nd->n", diff, diff), metric)
            ok = d <= threshold
            if ok.any():
                yield i[ok], j[ok], d[ok]
