"""``featx similar``: the nearest rows of every row of an output (or of query files),
exact or through the approximate index, written as CSV.

The search is exact (:func:`featx.neighbors.nearest`) up to :data:`APPROX_ROWS` rows and
approximate above (:mod:`featx.ann`, the ``featx[ann]`` extra), unless asked for one or
the other; an approximate answer comes with its recall@k measured against the exact
search on a sample of the queries.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .errors import UsageError
from .neighbors import check_metric, default_metric, nearest
from .output.sinkbase import csv_line, key_text, to_bytes
from .vectors import Vectors

#: Above this many rows, ``--approximate`` is the default.  The exact search of every row
#: against every other grows as rows^2: 13 s for 10^4 rows of 1,280 values on one core of
#: the development machine, so ~5 min at 5 x 10^4 and ~22 min at 10^5; building the HNSW
#: index and searching it costs ~3 ms a row there (bench_ann.py: 205 s to build 10^5 rows,
#: 0.9 ms a query).  They cross near 2 x 10^4 rows; once built, the index is only grown.
APPROX_ROWS = 20_000

#: How many queries the approximate search's recall is measured on.
RECALL_SAMPLE = 200

MODES = ("auto", "exact", "approximate")


@dataclass
class Answer:
    indices: np.ndarray             # (Q, k) rows of the output, -1 for none
    distances: np.ndarray           # (Q, k) float32
    query_keys: list[dict]          # one per query
    metric: str
    approximate: bool = False
    recall: float | None = None     # recall@k of the approximate search on a sample
    sampled: int = 0


def choose_metric(vec: Vectors, metric: str | None) -> str:
    return check_metric(metric) if metric else default_metric(vec.extractor)


def search(vec: Vectors, k: int, metric: str | None = None, *, queries: tuple[np.ndarray, list[dict]] | None = None,
           mode: str = "auto", say: Callable[[str], None] = lambda m: None) -> Answer:
    """The ``k`` nearest rows of ``vec`` for each of its rows (a row is never its own
    neighbour) or each query ``(vectors, keys)``."""
    if k < 1:
        raise UsageError(f"--k must be at least 1, not {k}")
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}", f"use one of: {', '.join(MODES)}")
    metric = choose_metric(vec, metric)
    Q, qkeys = (None, [vec.key(i) for i in range(len(vec))]) if queries is None else queries
    approximate = mode == "approximate" or (mode == "auto" and len(vec) > APPROX_ROWS)
    if not approximate:
        idx, dist = nearest(vec.matrix, k, metric, Q)
        return Answer(idx, dist, qkeys, metric)
    from . import ann

    index = ann.open_index(vec, metric, say=say)
    idx, dist = index.search(Q, k)
    rng = np.random.default_rng(0)
    nq = len(qkeys)
    sample = np.sort(rng.choice(nq, size=min(RECALL_SAMPLE, nq), replace=False)) if nq else np.zeros(0, int)
    if sample.size:
        if Q is None:
            truth, _ = _exact_rows(vec, sample, k, metric)
        else:
            truth, _ = nearest(vec.matrix, k, metric, Q[sample])
        recall = ann.recall(idx[sample], truth)
    else:
        recall = None
    return Answer(idx, dist, qkeys, metric, True, recall, int(sample.size))


def _exact_rows(vec: Vectors, rows: np.ndarray, k: int, metric: str):
    """Exact neighbours of some rows of ``vec`` among the others."""
    idx, dist = nearest(vec.matrix, k + 1, metric, np.asarray(vec.matrix[rows]))
    out_i = np.full((len(rows), k), -1, np.int64)
    out_d = np.full((len(rows), k), np.inf, np.float32)
    for n, r in enumerate(rows):
        keep = idx[n] != r
        out_i[n] = idx[n][keep][:k]
        out_d[n] = dist[n][keep][:k]
    return out_i, out_d


def header(vec: Vectors, query_columns: tuple[str, ...]) -> list[str]:
    """The CSV header: the query's key columns, ``neighbor`` (the neighbour's path, or row
    number for a plain matrix) and its other keys as ``neighbor_frame``..., ``rank``, ``distance``."""
    return list(query_columns) + ["neighbor"] + [f"neighbor_{c}" for c in vec.key_columns[1:]] + ["rank", "distance"]


def write_csv(write: Callable[[bytes], object], vec: Vectors, ans: Answer, query_columns: tuple[str, ...]) -> int:
    """Write the answer as CSV lines through ``write`` (bytes); returns the rows written.
    Columns: see :func:`header`; ``rank`` 1 is the nearest, ``distance`` is ``%.6g``.
    Missing neighbours (fewer rows than k) are not written."""
    write(to_bytes(csv_line(header(vec, query_columns))))
    named: dict[int, str] = {}

    def text(key: dict, cols) -> str:   # the key's fields, CSV-quoted where a name needs it
        return csv_line(key_text(key, cols))[:-1]

    n = 0
    lines: list[str] = []
    for q, key in enumerate(ans.query_keys):
        qtext = text(key, query_columns)
        for rank in range(ans.indices.shape[1]):
            j = int(ans.indices[q, rank])
            if j < 0:
                break
            nt = named.get(j)
            if nt is None:
                nt = named[j] = text(vec.key(j), vec.key_columns)
            lines.append(f"{qtext},{nt},{rank + 1},{float(ans.distances[q, rank]):.6g}\n")
            n += 1
        if len(lines) >= 8192:
            write(to_bytes("".join(lines)))
            lines = []
    if lines:
        write(to_bytes("".join(lines)))
    return n
