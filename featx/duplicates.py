"""Near-duplicate groups of feature vectors, and exact duplicates of files.

:func:`groups` joins rows whose distance is within a threshold into connected
components (union-find over the pairs :func:`featx.neighbors.pairs_within`
finds tile by tile, so no N x N matrix is held).  :func:`groups_from_pairs` does
the same from any pairs (an approximate index's neighbour lists).
:func:`exact_groups` finds files with the same bytes without any features: by
size first, then by a hash of those that share a size.  :func:`to_remove` applies
a ``--keep`` rule (what would be removed; nothing is ever deleted here).

:data:`DEFAULT_THRESHOLDS` (:func:`default_threshold`) are measured, not guessed: see
``benchmarks/bench_duplicates.py`` and docs/similar.md.
"""
from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Sequence

import numpy as np

from .neighbors import check_metric, pairs_within

#: The default ``--threshold`` of an extractor's vectors under its default metric, chosen
#: from the edited-photo measurement (benchmarks/bench_duplicates.py, docs/similar.md):
#: cnn (cosine): the smallest distance at which every edited copy of the set joins its
#: original (0.25) with a margin: 0.3, well under the closest two different pictures (0.43); hog and
#: gradients (Hellinger): just under their closest two different pictures (0.22, 0.048),
#: so that what is grouped is right (precision 1 there, recall only about 0.3: these
#: features do not survive crops, flips and rotations).  Per extractor and metric, not per
#: metric alone: hog's and gradients' Hellinger distances live on different scales.
#: Anything else (another metric, a plugin, a plain matrix) has no default:
#: ``--threshold`` is asked for.
DEFAULT_THRESHOLDS = {("cnn", "cosine"): 0.3, ("hog", "hellinger"): 0.2, ("gradients", "hellinger"): 0.04}

KEEP_RULES = ("first", "largest", "oldest")


def default_threshold(extractor: str | None, metric: str) -> float | None:
    """The measured default ``--threshold`` for ``extractor``'s vectors under ``metric``
    (None: not measured, the user must give one)."""
    return DEFAULT_THRESHOLDS.get((extractor or "", metric))


class UnionFind:
    """Disjoint sets of ``0..n-1`` (path halving, union by lower root so a group's root is
    its first row)."""

    def __init__(self, n: int):
        self.parent = np.arange(n, dtype=np.int64)

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return int(i)

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = (ra, rb) if ra < rb else (rb, ra)
            self.parent[hi] = lo

    def components(self) -> list[list[int]]:
        """Sets of two or more members, each sorted, in order of their first member."""
        n = len(self.parent)
        roots = np.fromiter((self.find(i) for i in range(n)), dtype=np.int64, count=n)
        out: dict[int, list[int]] = {}
        for i, r in enumerate(roots.tolist()):
            out.setdefault(r, []).append(i)
        return [g for g in sorted(out.values(), key=lambda g: g[0]) if len(g) > 1]


def groups_from_pairs(n: int, pairs: Iterable[tuple[Iterable[int], Iterable[int]]]) -> list[list[int]]:
    """Connected components (two or more rows) of ``n`` rows joined by ``pairs`` of index arrays."""
    uf = UnionFind(n)
    for i, j in pairs:
        for a, b in zip(np.asarray(i).tolist(), np.asarray(j).tolist()):
            if a >= 0 and b >= 0:
                uf.union(a, b)
    return uf.components()


def groups(X: np.ndarray, metric: str, threshold: float) -> list[list[int]]:
    """Near-duplicate groups: connected components of rows whose distance is <= threshold,
    groups of two or more rows, each sorted, groups in order of their first row."""
    check_metric(metric)
    X = np.asarray(X)
    return groups_from_pairs(X.shape[0], ((i, j) for i, j, _ in pairs_within(X, metric, threshold)))


def exact_groups(paths: Sequence[str], chunk: int = 1 << 20) -> list[list[int]]:
    """Groups (indices into ``paths``) of existing files with the same bytes: files are
    compared by size, and only those sharing a size are hashed (BLAKE2b).  The same path
    twice counts once; missing files are skipped."""
    by_size: dict[int, list[int]] = {}
    seen: set[str] = set()
    for i, p in enumerate(paths):
        real = os.path.realpath(p)
        if real in seen:
            continue
        try:
            if not os.path.isfile(p):
                continue
            size = os.path.getsize(p)
        except OSError:
            continue
        seen.add(real)
        by_size.setdefault(size, []).append(i)
    found: list[list[int]] = []
    for members in by_size.values():
        if len(members) < 2:
            continue
        by_hash: dict[bytes, list[int]] = {}
        for i in members:
            h = hashlib.blake2b(digest_size=20)
            try:
                with open(paths[i], "rb") as fh:
                    while block := fh.read(chunk):
                        h.update(block)
            except OSError:
                continue
            by_hash.setdefault(h.digest(), []).append(i)
        found.extend(sorted(g) for g in by_hash.values() if len(g) > 1)
    return sorted(found, key=lambda g: g[0])


def to_remove(group: Sequence[int], paths: Sequence[str], keep: str) -> tuple[int, list[int]]:
    """The row kept by ``keep`` and the others (what would be removed), for one group.

    ``first``: the first row of the output; ``largest``: the largest file (bytes; ties to
    the first); ``oldest``: the oldest modification time (ties to the first).  A file
    that is gone counts as size -1 and as the newest."""
    if keep not in KEEP_RULES:
        raise ValueError(f"unknown keep rule {keep!r}")
    members = list(group)
    if keep == "first":
        kept = members[0]
    else:
        def stat(i):
            try:
                st = os.stat(paths[i])
                return st.st_size, st.st_mtime
            except OSError:
                return -1, float("inf")
        if keep == "largest":
            kept = min(members, key=lambda i: (-stat(i)[0], members.index(i)))
        else:
            kept = min(members, key=lambda i: (stat(i)[1], members.index(i)))
    return kept, [i for i in members if i != kept]


def near_groups(vec, metric: str, threshold: float, *, mode: str = "auto", neighbours: int = 16,
                say=lambda m: None) -> list[list[int]]:
    """Near-duplicate groups of the rows of a :class:`featx.vectors.Vectors`: exact
    (:func:`groups`) up to :data:`featx.similar.APPROX_ROWS` rows, or through the approximate
    index above (or when ``mode`` is ``"approximate"``): pairs among each row's ``neighbours``
    nearest within ``threshold``, so a group is found wherever its members are among each
    other's nearest (a group larger than ``neighbours`` may be split)."""
    from .similar import APPROX_ROWS

    check_metric(metric)
    if mode == "exact" or (mode == "auto" and len(vec) <= APPROX_ROWS):
        return groups(vec.matrix, metric, threshold)
    from . import ann

    index = ann.open_index(vec, metric, say=say)
    idx, dist = index.search(None, neighbours)
    rows = np.broadcast_to(np.arange(len(vec))[:, None], idx.shape)
    ok = (idx >= 0) & (dist <= threshold)
    say(f"near duplicates from the approximate index ({neighbours} neighbours per row)")
    return groups_from_pairs(len(vec), [(rows[ok], idx[ok])])
