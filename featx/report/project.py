"""The 2-D map of a report: the drawn rows projected to the plane.

PCA with numpy by default (the two directions of largest variance of the drawn rows,
compared in the metric's space: unit rows for cosine, square-rooted histograms for
hellinger); UMAP when ``umap-learn`` is importable and asked for (``method="umap"``,
or ``"auto"``) — never required.  Coordinates are scaled into [0, 1] on both axes with
the aspect kept, so the page can draw them as they are.
"""
from __future__ import annotations

import numpy as np

#: Projections :func:`project` knows.
METHODS = ("auto", "pca", "umap")


def pca2(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``X`` on their first two principal axes, and the share of the variance
    each axis explains.  Through the D x D covariance or the N x N Gram matrix, whichever is
    smaller, so a few thousand rows of 35,000-value HOG vectors stay cheap."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    if n == 0:
        return np.zeros((0, 2)), np.zeros(2)
    C = X - X.mean(axis=0)
    total = float((C * C).sum())
    if n < 2 or total <= 0:
        return np.zeros((n, 2)), np.zeros(2)
    if d <= n:
        w, V = np.linalg.eigh(C.T @ C)
        order = np.argsort(w)[::-1][:2]
        Y = C @ V[:, order]
        w = w[order]
    else:
        w, U = np.linalg.eigh(C @ C.T)
        order = np.argsort(w)[::-1][:2]
        w = np.maximum(w[order], 0)
        Y = U[:, order] * np.sqrt(w)
    if Y.shape[1] < 2:
        Y = np.hstack([Y, np.zeros((n, 2 - Y.shape[1]))])
        w = np.concatenate([w, np.zeros(2 - len(w))])
    # a deterministic sign: the largest coordinate of each axis positive
    for j in range(2):
        if Y[np.argmax(np.abs(Y[:, j])), j] < 0:
            Y[:, j] = -Y[:, j]
    return Y, np.maximum(w, 0) / total


def _umap(X: np.ndarray, metric: str, seed: int) -> np.ndarray | None:
    try:
        import umap  # type: ignore[import-not-found]
    except Exception:  # noqa: BLE001 - an optional extra that may be broken as well as absent
        return None
    n = len(X)
    if n < 5:
        return None
    reducer = umap.UMAP(n_components=2, n_neighbors=min(15, n - 1), metric="cosine" if metric == "cosine"
                        else "euclidean", random_state=seed)
    return np.asarray(reducer.fit_transform(X), dtype=np.float64)


def unit_square(Y: np.ndarray) -> np.ndarray:
    """``Y`` moved and scaled (one factor for both axes) into [0, 1] x [0, 1], centred."""
    if len(Y) == 0:
        return Y.reshape(0, 2)
    lo, hi = Y.min(axis=0), Y.max(axis=0)
    span = float((hi - lo).max())
    if span <= 0:
        return np.full_like(Y, 0.5)
    out = (Y - lo) / span
    out += (1 - (hi - lo) / span) / 2
    return out


def project(X: np.ndarray, metric: str = "l2", method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """``X`` (rows already in the metric's space) as (N, 2) coordinates in [0, 1], and a
    line saying how they were made."""
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}")
    if method in ("auto", "umap"):
        Y = _umap(X, metric, seed)
        if Y is not None:
            return unit_square(Y), "UMAP (umap-learn) of the drawn rows"
    Y, share = pca2(X)
    note = ("PCA of the drawn rows (numpy): the two axes explain "
            f"{100 * share[0]:.1f} % and {100 * share[1]:.1f} % of their variance")
    if method == "umap":
        note += "; UMAP was asked for, but umap-learn is not installed"
    return unit_square(Y), note
