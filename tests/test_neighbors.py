"""featx.neighbors.nearest and featx.duplicates.groups against brute-force numpy references."""
from __future__ import annotations

import numpy as np
import pytest

from featx import duplicates, neighbors
from featx.errors import FeatxError


def reference(X, metric, Q=None):
    """Full distance matrix in float64, the plain way."""
    X = np.asarray(X, np.float64)
    self_search = Q is None
    Q = X if self_search else np.asarray(Q, np.float64)
    if metric == "cosine":
        def unit(A):
            n = np.linalg.norm(A, axis=1, keepdims=True)
            return A / np.where(n == 0, 1, n)
        D = 1 - unit(Q) @ unit(X).T
        D = np.maximum(D, 0)
    elif metric == "l2":
        D = np.sqrt(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1))
    else:
        def h(A):
            s = A.sum(1, keepdims=True)
            return np.sqrt(A / np.where(s == 0, 1, s))
        D = np.sqrt(((h(Q)[:, None, :] - h(X)[None, :, :]) ** 2).sum(-1)) / np.sqrt(2)
    if self_search:
        np.fill_diagonal(D, np.inf)
    return D


def ref_knn(X, k, metric, Q=None):
    D = reference(X, metric, Q)
    idx = np.array([np.lexsort((np.arange(D.shape[1]), r))[:k] for r in D])
    return idx, np.take_along_axis(D, idx, 1)


@pytest.mark.parametrize("metric", neighbors.METRICS)
def test_matches_brute_force(metric):
    rng = np.random.default_rng(1)
    X = rng.random((120, 17)).astype(np.float32)
    idx, dist = neighbors.nearest(X, 5, metric)
    ri, rd = ref_knn(X, 5, metric)
    assert idx.dtype == np.int64 and dist.dtype == np.float32 and idx.shape == (120, 5)
    np.testing.assert_allclose(dist, rd, rtol=1e-5, atol=1e-6)
    # indices may differ only where two distances are equal to float precision
    assert (idx == ri).mean() > 0.99
    assert not (idx == np.arange(120)[:, None]).any()      # never its own neighbour


@pytest.mark.parametrize("metric", neighbors.METRICS)
def test_queries_and_blockwise_equals_one_block(metric, monkeypatch):
    rng = np.random.default_rng(2)
    X = rng.random((300, 9)).astype(np.float32)
    Q = rng.random((40, 9)).astype(np.float32)
    one = neighbors.nearest(X, 7, metric, Q)
    ri, rd = ref_knn(X, 7, metric, Q)
    np.testing.assert_allclose(one[1], rd, rtol=1e-5, atol=1e-6)
    monkeypatch.setattr(neighbors, "TILE_BYTES", 4 * 7 * 13)   # tiny tiles
    monkeypatch.setattr(neighbors, "_blocks", lambda nq, nx, d: (3, 13))
    many = neighbors.nearest(X, 7, metric, Q)
    np.testing.assert_array_equal(one[0], many[0])
    np.testing.assert_array_equal(one[1], many[1])
    self_one = neighbors.nearest(X, 4, metric)
    monkeypatch.setattr(neighbors, "_blocks", lambda nq, nx, d: (5, 11))
    self_many = neighbors.nearest(X, 4, metric)
    np.testing.assert_array_equal(self_one[0], self_many[0])


def test_ties_go_to_the_lower_row_and_duplicates_are_neighbours(monkeypatch):
    X = np.zeros((10, 3), np.float32)
    X[:, 0] = [0, 1, 1, 1, 1, 5, 5, 9, 1, 0]
    idx, dist = neighbors.nearest(X, 3, "l2")
    assert idx[1].tolist() == [2, 3, 4]          # four rows equal to row 1: the lowest three
    assert idx[0].tolist() == [9, 1, 2]          # identical row 9 first (distance 0), then ties
    assert dist[0, 0] == 0
    monkeypatch.setattr(neighbors, "_blocks", lambda nq, nx, d: (2, 3))
    assert neighbors.nearest(X, 3, "l2")[0].tolist() == idx.tolist()


def test_fewer_rows_than_k_pads():
    X = np.eye(3, dtype=np.float32)
    idx, dist = neighbors.nearest(X, 5, "cosine")
    assert idx[:, 2:].tolist() == [[-1] * 3] * 3 and np.isinf(dist[:, 2:]).all()
    assert sorted(idx[0, :2].tolist()) == [1, 2]
    one = neighbors.nearest(X[:1], 2, "l2")
    assert one[0].tolist() == [[-1, -1]]
    q = neighbors.nearest(X, 4, "l2", X[:1])
    assert q[0][0, :3].tolist() == [0, 1, 2] and q[0][0, 3] == -1   # a query is not a row: itself is found


def test_metrics_and_errors():
    assert neighbors.default_metric(None) == "l2"
    assert neighbors.default_metric("cnn") == "cosine"
    assert neighbors.default_metric("hog") == "hellinger"
    assert neighbors.default_metric("gradients") == "hellinger"
    assert neighbors.default_metric("gabor") == "l2"
    assert neighbors.default_metric("no-such-plugin") == "l2"
    with pytest.raises(FeatxError, match="negative"):
        neighbors.nearest(np.array([[1, -1], [1, 1]], np.float32), 1, "hellinger")
    with pytest.raises(FeatxError, match="unknown metric"):
        neighbors.nearest(np.ones((2, 2)), 1, "chebyshev")


@pytest.mark.parametrize("metric", neighbors.METRICS)
def test_groups_are_connected_components(metric, monkeypatch):
    rng = np.random.default_rng(3)
    X = rng.random((80, 6)).astype(np.float32) + 0.1
    D = reference(X, metric)
    t = float(np.quantile(D[np.isfinite(D)], 0.01))
    # reference: components by repeated graph search
    adj = D <= t
    seen, want = set(), []
    for s in range(len(X)):
        if s in seen:
            continue
        comp, todo = {s}, [s]
        while todo:
            u = todo.pop()
            for v in np.flatnonzero(adj[u]):
                if v not in comp:
                    comp.add(int(v))
                    todo.append(int(v))
        seen |= comp
        if len(comp) > 1:
            want.append(sorted(comp))
    got = duplicates.groups(X, metric, t)
    assert got == want and got
    monkeypatch.setattr(neighbors, "_blocks", lambda nq, nx, d: (7, 9))
    assert duplicates.groups(X, metric, t) == want


def test_exact_groups_and_keep(tmp_path):
    import os
    a = tmp_path / "a b.jpg"; a.write_bytes(b"x" * 10)
    b = tmp_path / "b,\n.jpg"; b.write_bytes(b"x" * 10)
    c = tmp_path / "c.jpg"; c.write_bytes(b"y" * 10)          # same size, other bytes
    d = tmp_path / "d.jpg"; d.write_bytes(b"x" * 11)
    paths = [str(a), str(c), str(b), str(d), str(tmp_path / "gone.jpg")]
    assert duplicates.exact_groups(paths) == [[0, 2]]
    os.utime(a, (1000, 1000)); os.utime(b, (500, 500))
    assert duplicates.to_remove([0, 2], paths, "first") == (0, [2])
    assert duplicates.to_remove([0, 2], paths, "oldest") == (2, [0])
    assert duplicates.to_remove([0, 3], paths, "largest") == (3, [0])
    assert duplicates.to_remove([4, 0], paths, "largest") == (0, [4])   # a missing file is never kept over one present
