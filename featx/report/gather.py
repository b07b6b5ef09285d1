"""What a report shows of an output's rows: read once or twice, in batches, whatever its size.

:func:`gather` reads the output through :func:`featx.output.reader.open_output` and
returns a :class:`Gathered`: every row's keys, the vectors of the rows drawn on the map
(a deterministic sample of at most ``max_points`` rows: all of them when there are
fewer), the ``k`` nearest neighbours of each drawn row among *all* rows (exact, by
:func:`featx.neighbors.nearest`, one batch of the output at a time, so memory stays at
one batch plus the drawn rows), near-duplicate groups among the drawn rows
(:func:`featx.duplicates.groups`), an outlier score per drawn row (the distance to its
k-th neighbour), and, for frames of videos and frame sequences, the distance of every
frame's vector to the previous frame's of the same sequence (see
:mod:`featx.report.timeline`).

The first pass reads the keys and the drawn rows' vectors; the second, every batch
again for the neighbour search and the frame-to-frame distances (a ``.npy`` is
memory-mapped, so the second pass costs little more than the arithmetic).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import FeatxError
from ..output import reader as rd

#: Rows read per batch, and drawn rows searched for at a time (one tile of distances,
#: with neighbors.nearest's temporaries, stays under ~100 MB).
BATCH_ROWS = 4096
QUERY_ROWS = 512


@dataclass
class Gathered:
    """Everything the page is made from (row numbers are output rows)."""

    rows: int = 0
    kind: str = "vector"
    width: int | None = None
    key_columns: tuple[str, ...] = ("path",)
    keys: list[dict] = field(default_factory=list)
    drawn: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # sorted row numbers
    vectors: np.ndarray | None = None            # (len(drawn), D) float32
    metric: str | None = None
    metric_note: str | None = None
    k: int = 0
    neighbors: np.ndarray | None = None          # (len(drawn), k) int64 rows, -1 padded
    distances: np.ndarray | None = None          # (len(drawn), k) float32, inf padded
    threshold: float | None = None
    threshold_note: str | None = None
    groups: list[list[int]] = field(default_factory=list)   # output rows
    outlier: np.ndarray | None = None            # (len(drawn),) distance to the k-th neighbour
    diffs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=dict)
    #: sequence name -> (rows, frames, distance to the previous row); distance nan for the first
    why_no_map: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def choose_rows(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """The rows drawn: all of ``range(n)`` when ``n <= max_points``, else a uniform
    sample of ``max_points`` of them, the same for the same ``n`` and ``seed``, sorted."""
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def sequence_of(key: dict) -> str | None:
    """The video or frame sequence a row belongs to (None for a still image): a video's
    path, or the folder of a frame sequence's frame file."""
    if key.get("frame") is None:
        return None
    path = str(key.get("path"))
    from ..video import is_video

    return path if is_video(path) else os.path.dirname(path)


def default_threshold(extractor: str | None, metric: str) -> tuple[float, str]:
    """The near-duplicate threshold (featx duplicates' measured default for the extractor
    and metric), and where it comes from; 0 (identical vectors only) where there is none."""
    from ..duplicates import default_threshold as measured

    t = measured(extractor, metric)
    if t is None:
        return 0.0, (f"featx duplicates has no measured threshold for {extractor or 'a plain matrix'} by "
                     f"{metric}: only identical vectors are grouped (--threshold T for near-duplicates)")
    return float(t), f"the default of featx duplicates for {extractor} by {metric}"


def _merge(best_i: np.ndarray, best_d: np.ndarray, new_i: np.ndarray, new_d: np.ndarray, keep: int):
    """The ``keep`` nearest of two candidate lists per query (ties to the lower row)."""
    ci = np.concatenate([best_i, new_i], axis=1)
    cd = np.concatenate([best_d, new_d], axis=1)
    big = np.iinfo(np.int64).max
    order = np.lexsort((np.where(ci < 0, big, ci), cd), axis=1)[:, :keep]
    return np.take_along_axis(ci, order, 1), np.take_along_axis(cd, order, 1)


def _pair_distances(A: np.ndarray, B: np.ndarray, metric: str) -> np.ndarray:
    """Distance of row i of A to row i of B (both already through ``neighbors.prepare``)."""
    if metric == "cosine":
        return (1.0 - np.einsum("ij,ij->i", A, B, dtype=np.float64)).astype(np.float32)
    d = np.sqrt(np.einsum("ij,ij->i", A - B, A - B, dtype=np.float64))
    if metric == "hellinger":
        d /= np.sqrt(2.0)
    return d.astype(np.float32)


def gather(path: str, *, max_points: int = 2000, k: int = 10, metric: str | None = None,
           threshold: float | None = None, seed: int = 0, extractor: str | None = None) -> Gathered:
    """Read the output ``path`` (see the module docstring).  Raises
    :class:`~featx.errors.OutputError` where the output cannot be read."""
    from .. import neighbors

    g = Gathered()
    t0 = time.perf_counter()
    with rd.open_output(path) as r:
        g.rows, g.kind, g.width, g.key_columns = len(r), r.kind, r.width, tuple(r.key_columns)
        if g.kind != "vector":
            g.why_no_map = (f"the rows of this output are {g.kind}, not one vector each: there is nothing to "
                            "draw on a map (an encoding such as sift --encode bovw gives one vector per image)")
        elif not g.width:
            g.why_no_map = "the output holds no values (a vector length of 0)"
        elif g.rows == 0:
            g.why_no_map = "the output has no rows"
        drawn = choose_rows(g.rows, max_points, seed) if g.why_no_map is None else np.zeros(0, np.int64)
        # pass 1: keys, and the drawn rows' vectors
        S = np.zeros((len(drawn), g.width or 0), np.float32)
        start = got = 0
        lo_value = np.inf
        try:
            for keys, X in r.batches(BATCH_ROWS):
                g.keys.extend(keys)
                if g.why_no_map is None:
                    X = np.asarray(X, dtype=np.float32)
                    if X.size:
                        lo_value = min(lo_value, float(X.min()))
                    a, b = np.searchsorted(drawn, [start, start + len(keys)])
                    S[got:got + (b - a)] = X[drawn[a:b] - start]
                    got += b - a
                start += len(keys)
        except FeatxError as exc:   # rows that are not numbers (cnn --top-k class names in CSV), a broken file
            g.why_no_map = f"the rows cannot be read as vectors: {exc.message}" + (f" ({exc.hint})" if exc.hint else "")
            g.keys, g.drawn = [], np.zeros(0, np.int64)
            return g
        if start != g.rows:   # a reader that counted otherwise: trust the rows read
            g.rows = start
            drawn = drawn[drawn < start]
            S = S[:len(drawn)]
        g.seconds["read"] = time.perf_counter() - t0
        if g.why_no_map is not None:
            g.drawn = drawn
            return g
        g.drawn, g.vectors = drawn, S
        if not np.isfinite(S).all():
            bad = int(drawn[np.flatnonzero(~np.isfinite(S).all(axis=1))[0]])
            raise FeatxError(f"{path}: row {bad} holds values that are not finite numbers (nan or inf)",
                             "a report compares rows by distance, which needs finite values")
        # the metric
        m = metric or neighbors.default_metric(extractor)
        neighbors.check_metric(m)
        if m == "hellinger" and lo_value < 0:
            g.metric_note = ("the extractor's metric is hellinger (for histograms), but this output has "
                             "negative values: compared by l2 instead")
            m = "l2"
        g.metric = m
        if threshold is None:
            g.threshold, g.threshold_note = default_threshold(extractor, m)
        else:
            g.threshold, g.threshold_note = float(threshold), "given with --threshold"
        # pass 2: neighbours of the drawn rows among all rows; frame-to-frame distances
        t1 = time.perf_counter()
        keep = min(k + 1, g.rows)
        Q = len(drawn)
        best_i = np.full((Q, keep), -1, np.int64)
        best_d = np.full((Q, keep), np.inf, np.float32)
        framed = "frame" in g.key_columns
        last: dict[str, tuple[int, int, np.ndarray]] = {}
        seq_rows: dict[str, list] = {}
        start = 0
        for keys, X in r.batches(BATCH_ROWS):
            X = np.asarray(X, dtype=np.float32)
            for q0 in range(0, Q, QUERY_ROWS):   # a few hundred queries at a time: small tiles
                q1 = min(Q, q0 + QUERY_ROWS)
                idx, dist = neighbors.nearest(X, keep, m, queries=S[q0:q1])
                idx = np.where(idx >= 0, idx + start, -1)
                best_i[q0:q1], best_d[q0:q1] = _merge(best_i[q0:q1], best_d[q0:q1], idx,
                                                      dist.astype(np.float32), keep)
            if framed:
                _frame_diffs(keys, X, start, m, last, seq_rows)
            start += len(keys)
        g.seconds["neighbours"] = time.perf_counter() - t1
    # drop each drawn row itself from its list
    g.k = max(0, min(k, g.rows - 1))
    ni = np.full((Q, g.k), -1, np.int64)
    nd = np.full((Q, g.k), np.inf, np.float32)
    for q in range(Q):
        mask = best_i[q] != drawn[q]
        ii, dd = best_i[q][mask][:g.k], best_d[q][mask][:g.k]
        ni[q, :len(ii)], nd[q, :len(dd)] = ii, dd
    g.neighbors, g.distances = ni, nd
    g.outlier = nd[:, -1].copy() if g.k else np.zeros(Q, np.float32)
    t2 = time.perf_counter()
    from ..duplicates import groups

    g.groups = [[int(drawn[i]) for i in grp] for grp in groups(S, m, g.threshold)] if Q > 1 else []
    g.seconds["duplicates"] = time.perf_counter() - t2
    for name, (rows, frames, d) in seq_rows.items():
        g.diffs[name] = (np.asarray(rows, np.int64), np.asarray(frames, np.int64), np.asarray(d, np.float32))
    return g


def _frame_diffs(keys: list[dict], X: np.ndarray, start: int, metric: str,
                 last: dict[str, tuple[int, int, np.ndarray]], seq_rows: dict[str, list]) -> None:
    """Append each frame row's distance to the previous frame of its sequence (rows of a
    sequence in increasing frame order, as featx writes them; a row whose frame is not
    after the last one seen starts the comparison again)."""
    from ..neighbors import prepare

    P = prepare(X, metric) if len(X) else X
    seqs = [sequence_of(k) for k in keys]
    prev = np.zeros_like(P)
    has = np.zeros(len(keys), bool)
    for i, (key, s) in enumerate(zip(keys, seqs)):
        if s is None:
            continue
        f = int(key.get("frame") or 0)
        entry = seq_rows.setdefault(s, ([], [], []))
        before = last.get(s)
        if before is not None and before[1] < f:
            prev[i] = before[2]
            has[i] = True
        last[s] = (start + i, f, P[i])
        entry[0].append(start + i)
        entry[1].append(f)
    d = np.full(len(keys), np.nan, np.float32)
    if has.any():
        d[has] = _pair_distances(P[has], prev[has], metric)
    for i, s in enumerate(seqs):
        if s is not None:
            seq_rows[s][2].append(float(d[i]))
    # keep the last vectors as copies: P is reused by the next batch
    for s, (row, f, v) in list(last.items()):
        if row >= start:
            last[s] = (row, f, np.array(v))


def common_folder(keys: list[dict]) -> str:
    """The folder that holds every row's input ("" when there is none in common)."""
    try:
        folders = {os.path.dirname(str(k.get("path"))) for k in keys}
        return os.path.commonpath(sorted(folders)) if folders else ""
    except ValueError:  # absolute and relative paths mixed
        return ""


def label(key: dict[str, Any], base: str = "") -> str:
    """A row's keys as one line for people: the path (quoted as featx's messages quote odd
    names; relative to ``base`` when given), then the frame and time, then the region."""
    from ..names import quote_name

    path = str(key.get("path"))
    if base and path.startswith(base.rstrip(os.sep) + os.sep):
        path = path[len(base.rstrip(os.sep)) + 1:]
    text = quote_name(path)
    if key.get("frame") is not None:
        text += f" frame {key['frame']}"
        if key.get("time") is not None:
            text += f" ({float(key['time']):.2f} s)"
    if key.get("x") is not None:
        text += f" region {key['x']},{key['y']} {key['w']}x{key['h']}"
    return text
