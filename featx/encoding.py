"""Encodings of local descriptors into one fixed-length vector, and codebooks.

Everything here is extractor-agnostic: it works on ``(N, D)`` float32
descriptor arrays (and, for spatial pyramids, their ``(x, y)`` positions), so
any extractor that produces local descriptors can offer the same encodings.

Encodings
---------
* **Bag of visual words** (:func:`bovw`): each descriptor votes for its
  nearest word (hard assignment) or spreads one vote over its ``soft``
  nearest words with Gaussian weights (localised soft assignment, Liu et al.
  2011; kernel width = the codebook's RMS quantisation error).  Optional
  spatial pyramid (Lazebnik et al. 2006): levels ``0..L-1`` with ``2^l x 2^l``
  cells each, concatenated coarse to fine, cells in row-major order; each
  level therefore carries the same total mass.  Length ``K * sum(4^l)``.
* **VLAD** (:func:`vlad`, Jégou et al. 2010): per word, the sum of the
  residuals ``x - c_k`` of the descriptors assigned to it; intra-normalisation
  (each word's block L2-normalised, Arandjelović & Zisserman 2013), then the
  power and global normalisation below.  Length ``K * D``.
* **Fisher vector** (:func:`fisher`, Perronnin et al. 2010): gradients of the
  log-likelihood w.r.t. the means and standard deviations of a diagonal GMM,
  ``G_mu_k = sum_i g_ik (x_i - mu_k) / sigma_k / (N sqrt(w_k))`` and
  ``G_sigma_k = sum_i g_ik ((x_i - mu_k)^2 / sigma_k^2 - 1) / (N sqrt(2 w_k))``
  with ``g_ik`` the posteriors; ``[G_mu_1..G_mu_K, G_sigma_1..G_sigma_K]``,
  length ``2 * K * D``.  The improved FV is power + L2 (the defaults).

Normalisation (all encodings, in this order): ``power`` = signed square root
``sign(v) * sqrt(|v|)``; then ``norm`` = ``l2`` (unit Euclidean length),
``l1`` (unit sum of absolute values) or ``none``.  An image with no
descriptors encodes to the all-zero vector (normalisation leaves a zero
vector at zero), and so does any empty pyramid cell.

Codebooks
---------
:func:`learn_codebook` draws a bounded, seeded, uniform random sample of
descriptors from a stream of per-image arrays (reservoir sampling, so memory
is ``sample x D`` floats however many images), runs k-means (Lloyd's
algorithm with k-means++ seeding, numpy/BLAS) and optionally fits a
diagonal-covariance GMM by EM initialised from the k-means solution.
:func:`save_codebook` writes an ``.npz`` (arrays + a JSON metadata string;
no pickle) atomically; :func:`load_codebook` reads it with
``allow_pickle=False``.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .errors import ParamError, UsageError
from .extractor import Keypoints, param

__all__ = [
    "Codebook", "EncodingParams", "FeatureEncoder", "ReservoirSampler",
    "kmeans", "fit_gmm", "learn_codebook", "save_codebook", "load_codebook",
    "check_codebook", "supports_codebook", "local_descriptors", "bovw", "vlad", "fisher", "normalise", "pyramid_cells",
    "ENCODINGS", "CODEBOOK_FORMAT", "CODEBOOK_FORMAT_VERSION",
]

ENCODINGS = ("none", "bovw", "vlad", "fisher")
NORMS = ("l2", "l1", "none")
CODEBOOK_FORMAT = "featx-codebook"
CODEBOOK_FORMAT_VERSION = 1


# ---------------------------------------------------------------------------
# Normalisation


def normalise(v: np.ndarray, norm: str = "l2", power: bool = True) -> np.ndarray:
    """Power- and then L1/L2-normalise a vector (a zero vector stays zero).

    Parameters
    ----------
    v : ndarray, shape (M,)
    norm : {"l2", "l1", "none"}
    power : bool
        Apply the signed square root ``sign(v) * sqrt(|v|)`` first.

    Returns
    -------
    ndarray, shape (M,), float64
    """
    v = np.asarray(v, dtype=np.float64)
    if power:
        v = np.sign(v) * np.sqrt(np.abs(v))
    if norm == "l2":
        n = math.sqrt(float(np.dot(v, v)))
    elif norm == "l1":
        n = float(np.abs(v).sum())
    elif norm == "none":
        return v
    else:
        raise ValueError(f"unknown norm {norm!r}")
    return v / n if n > 0 else v


# ---------------------------------------------------------------------------
# Assignment helpers


def _sq_distances(x: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(N, K)``, float32, clipped at 0.

    float32 BLAS: assignment only needs the order of the distances, and one
    image's worth of descriptors against 256 words then costs ~1 ms.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = np.ascontiguousarray(centers, dtype=np.float32)
    d = x @ c.T
    d *= np.float32(-2.0)
    d += np.einsum("kd,kd->k", c, c)[None, :]
    d += np.einsum("nd,nd->n", x, x)[:, None]
    np.maximum(d, 0.0, out=d)
    return d


def pyramid_cells(positions: np.ndarray, height: int, width: int, levels: int) -> np.ndarray:
    """Spatial-pyramid cell index of each position at every level.

    Level ``l`` splits the image into ``n = 2^l`` columns and rows; a point
    at pixel coordinates ``(x, y)`` (pixel centres at integers, so the image
    spans ``[-0.5, W - 0.5]``) falls in column ``clip(floor((x + 0.5) n / W),
    0, n - 1)`` and likewise for the row.  Cells are numbered coarse to fine,
    row-major within a level: level ``l`` starts at ``sum_{j<l} 4^j``.

    Parameters
    ----------
    positions : ndarray, shape (N, 2)
        ``x, y`` of each descriptor.
    height, width : int
    levels : int
        Number of pyramid levels (1 = the whole image only).

    Returns
    -------
    ndarray, shape (N, levels), int64
        Global cell index per level.
    """
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    out = np.empty((pos.shape[0], levels), dtype=np.int64)
    start = 0
    for lev in range(levels):
        n = 1 << lev
        cx = np.clip(np.floor((pos[:, 0] + 0.5) * n / width), 0, n - 1).astype(np.int64)
        cy = np.clip(np.floor((pos[:, 1] + 0.5) * n / height), 0, n - 1).astype(np.int64)
        out[:, lev] = start + cy * n + cx
        start += n * n
    return out


# ---------------------------------------------------------------------------
# Encoders


def bovw(descriptors: np.ndarray, centers: np.ndarray, *, soft: int = 0,
         sigma: float | None = None, positions: np.ndarray | None = None,
         image_size: tuple[int, int] | None = None, pyramid: int = 1,
         norm: str = "l2", power: bool = True) -> np.ndarray:
    """Bag-of-visual-words histogram.

    Parameters
    ----------
    descriptors : ndarray, shape (N, D)
    centers : ndarray, shape (K, D)
        The visual words.
    soft : int
        0 or 1: hard assignment (one vote for the nearest word).  ``s > 1``:
        each descriptor's vote is split over its ``s`` nearest words with
        weights ``exp(-d_j^2 / (2 sigma^2))`` normalised to sum to 1.
    sigma : float, optional
        Kernel width for soft assignment (required when ``soft > 1``).
    positions : ndarray, shape (N, 2), optional
        ``x, y`` of each descriptor; required when ``pyramid > 1``.
    image_size : (height, width), optional
        Required when ``pyramid > 1``.
    pyramid : int
        Number of spatial-pyramid levels (see :func:`pyramid_cells`).
    norm, power
        See :func:`normalise`.

    Returns
    -------
    ndarray, shape (K * sum_{l<pyramid} 4^l,), float32
    """
    centers = np.asarray(centers)
    k = centers.shape[0]
    ncells = sum(4 ** lev for lev in range(pyramid))
    hist = np.zeros((ncells, k), dtype=np.float64)
    x = np.asarray(descriptors).reshape(-1, centers.shape[1])
    if x.shape[0]:
        d = _sq_distances(x, centers)
        if soft > 1:
            if sigma is None or not sigma > 0:
                raise ValueError("soft assignment needs a positive sigma")
            s = min(soft, k)
            idx = np.argpartition(d, s - 1, axis=1)[:, :s] if s < k else np.tile(np.arange(k), (x.shape[0], 1))
            dd = np.take_along_axis(d, idx, axis=1).astype(np.float64)
            w = np.exp(-(dd - dd.min(axis=1, keepdims=True)) / (2.0 * sigma * sigma))
            w /= w.sum(axis=1, keepdims=True)
        else:
            idx = np.argmin(d, axis=1)[:, None]
            w = np.ones(idx.shape, dtype=np.float64)
        if pyramid > 1:
            if positions is None or image_size is None:
                raise ValueError("a spatial pyramid needs positions and image_size")
            cells = pyramid_cells(positions, image_size[0], image_size[1], pyramid)
        else:
            cells = np.zeros((x.shape[0], 1), dtype=np.int64)
        flat = hist.reshape(-1)
        for lev in range(cells.shape[1]):
            target = cells[:, lev][:, None] * k + idx
            flat += np.bincount(target.ravel(), weights=w.ravel(), minlength=flat.size)
    return normalise(hist.reshape(-1), norm, power).astype(np.float32)


def vlad(descriptors: np.ndarray, centers: np.ndarray, *, intra: bool = True,
         norm: str = "l2", power: bool = True) -> np.ndarray:
    """VLAD: per-word sums of residuals to the nearest word.

    Parameters
    ----------
    descriptors : ndarray, shape (N, D)
    centers : ndarray, shape (K, D)
    intra : bool
        L2-normalise each word's residual block before the global
        normalisation (blocks of unused words stay zero).
    norm, power
        See :func:`normalise` (applied after intra-normalisation).

    Returns
    -------
    ndarray, shape (K * D,), float32
        Word-major: ``v[k * D:(k + 1) * D]`` belongs to word ``k``.
    """
    centers = np.asarray(centers, dtype=np.float64)
    k, dim = centers.shape
    x = np.asarray(descriptors, dtype=np.float64).reshape(-1, dim)
    v = np.zeros((k, dim), dtype=np.float64)
    if x.shape[0]:
        a = np.argmin(_sq_distances(x, centers), axis=1)
        counts = np.bincount(a, minlength=k).astype(np.float64)
        order = np.argsort(a, kind="stable")
        used = np.flatnonzero(counts)
        starts = np.concatenate(([0], np.cumsum(counts[used])[:-1])).astype(np.int64)
        v[used] = np.add.reduceat(x[order], starts, axis=0)
        v -= counts[:, None] * centers
        if intra:
            n = np.sqrt(np.einsum("kd,kd->k", v, v))
            nz = n > 0
            v[nz] /= n[nz, None]
    return normalise(v.reshape(-1), norm, power).astype(np.float32)


def gmm_log_densities(x: np.ndarray, weights: np.ndarray, means: np.ndarray,
                      variances: np.ndarray) -> np.ndarray:
    """``log(w_k) + log N(x_i | mu_k, diag(var_k))``, shape ``(N, K)``, float64."""
    x = np.asarray(x, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    inv = 1.0 / var
    dim = x.shape[1]
    const = (np.log(np.asarray(weights, dtype=np.float64))
             - 0.5 * (dim * math.log(2 * math.pi) + np.log(var).sum(axis=1)
                      + np.einsum("kd,kd->k", mu * mu, inv)))
    quad = (x * x) @ inv.T - 2.0 * (x @ (mu * inv).T)
    return const[None, :] - 0.5 * quad


def gmm_posteriors(x: np.ndarray, weights: np.ndarray, means: np.ndarray,
                   variances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posteriors ``(N, K)`` and per-sample log-likelihoods ``(N,)``."""
    lp = gmm_log_densities(x, weights, means, variances)
    m = lp.max(axis=1, keepdims=True)
    p = np.exp(lp - m)
    s = p.sum(axis=1, keepdims=True)
    p /= s
    return p, (m + np.log(s))[:, 0]


def fisher(descriptors: np.ndarray, weights: np.ndarray, means: np.ndarray,
           variances: np.ndarray, *, norm: str = "l2", power: bool = True) -> np.ndarray:
    """Fisher vector w.r.t. a diagonal-covariance GMM (Perronnin et al. 2010).

    Parameters
    ----------
    descriptors : ndarray, shape (N, D)
    weights : ndarray, shape (K,)
    means, variances : ndarray, shape (K, D)
    norm, power
        See :func:`normalise`; ``power=True, norm="l2"`` is the improved FV.

    Returns
    -------
    ndarray, shape (2 * K * D,), float32
        ``[G_mu (K*D, word-major), G_sigma (K*D, word-major)]``.
    """
    w = np.asarray(weights, dtype=np.float64)
    mu = np.asarray(means, dtype=np.float64)
    var = np.asarray(variances, dtype=np.float64)
    k, dim = mu.shape
    x = np.asarray(descriptors, dtype=np.float64).reshape(-1, dim)
    n = x.shape[0]
    if n == 0:
        return np.zeros(2 * k * dim, dtype=np.float32)
    g, _ = gmm_posteriors(x, w, mu, var)
    sd = np.sqrt(var)
    s0 = g.sum(axis=0)                          # (K,)
    s1 = g.T @ x                                # (K, D)
    s2 = g.T @ (x * x)                          # (K, D)
    # sum_i g_ik (x_i - mu_k) = s1 - s0 mu ;  sum_i g_ik (x_i - mu_k)^2 = s2 - 2 mu s1 + s0 mu^2
    gmu = (s1 - s0[:, None] * mu) / sd / (n * np.sqrt(w))[:, None]
    sq = s2 - 2.0 * mu * s1 + s0[:, None] * mu * mu
    gsig = (sq / var - s0[:, None]) / (n * np.sqrt(2.0 * w))[:, None]
    return normalise(np.concatenate([gmu.ravel(), gsig.ravel()]), norm, power).astype(np.float32)


# ---------------------------------------------------------------------------
# Learning


class ReservoirSampler:
    """A uniform random sample of at most ``size`` rows from a stream of arrays.

    Algorithm R (Vitter 1985), vectorised per array: row ``i`` (0-based over
    the whole stream) is kept with probability ``size / (i + 1)``.  Memory is
    ``size x D``; the result depends only on the seed and the rows in order.

    Parameters
    ----------
    size : int
        Maximum number of rows kept.
    seed : int
    """

    def __init__(self, size: int, seed: int = 0):
        if size < 1:
            raise ValueError("size must be >= 1")
        self.size = int(size)
        self.seen = 0
        self.arrays = 0
        self._rng = np.random.default_rng(seed)
        self._buf: np.ndarray | None = None
        self._filled = 0

    def add(self, rows: np.ndarray) -> None:
        """Offer the rows of one ``(n, D)`` array (n may be 0)."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2:
            raise ValueError(f"expected an (n, D) array, got shape {rows.shape}")
        if self._buf is None:
            self._buf = np.empty((self.size, rows.shape[1]), dtype=np.float32)
        elif rows.shape[1] != self._buf.shape[1] and rows.shape[0]:
            raise ValueError(f"descriptor length changed from {self._buf.shape[1]} to {rows.shape[1]}")
        self.arrays += 1
        n = rows.shape[0]
        if n == 0:
            return
        take = min(n, self.size - self._filled)
        if take > 0:
            self._buf[self._filled:self._filled + take] = rows[:take]
            self._filled += take
        rest = rows[take:]
        first = self.seen + take          # global index of rest[0]
        self.seen += n
        if rest.shape[0] == 0:
            return
        idx = first + np.arange(rest.shape[0], dtype=np.int64)
        j = (self._rng.random(rest.shape[0]) * (idx + 1)).astype(np.int64)   # uniform in [0, i]
        keep = np.flatnonzero(j < self.size)
        if keep.size == 0:
            return
        slots = j[keep]
        # later rows overwrite earlier ones: keep the last write per slot
        rev = keep[::-1]
        uslots, first_in_rev = np.unique(slots[::-1], return_index=True)
        self._buf[uslots] = rest[rev[first_in_rev]]

    @property
    def sample(self) -> np.ndarray:
        """The current sample, ``(min(seen, size), D)`` float32."""
        if self._buf is None:
            return np.zeros((0, 0), dtype=np.float32)
        return self._buf[:self._filled]


def _kmeans_pp(x: np.ndarray, x2: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding (Arthur & Vassilvitskii 2007), with 2 + log k local trials."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    centers = np.empty((k, x.shape[1]), dtype=x.dtype)
    i0 = int(rng.integers(n))
    centers[0] = x[i0]
    closest = np.maximum(x2 - 2.0 * (x @ x[i0]) + x2[i0], 0.0)
    for c in range(1, k):
        total = closest.sum()
        if total <= 0:
            cand = rng.integers(n, size=trials)
        else:
            cand = np.searchsorted(np.cumsum(closest), rng.random(trials) * total)
            cand = np.minimum(cand, n - 1)
        dc = np.maximum(x2[:, None] - 2.0 * (x @ x[cand].T) + x2[cand][None, :], 0.0)
        new = np.minimum(closest[:, None], dc)
        best = int(np.argmin(new.sum(axis=0)))
        centers[c] = x[cand[best]]
        closest = new[:, best]
    return centers


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 100,
           tol: float = 1e-4) -> tuple[np.ndarray, np.ndarray, float]:
    """Lloyd's k-means with k-means++ seeding.

    Deterministic for a given ``seed`` and input.  The k-means++ seeding
    runs on a seeded random subset of ``max(50 k, 10000)`` points (all of
    them when there are fewer), which costs a few percent of inertia at most
    and saves most of the seeding time.  Stops when no assignment
    changes, when the relative decrease of the inertia falls below ``tol``,
    or after ``max_iter`` iterations.  An empty cluster is re-seeded with
    the point farthest from its centre.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    k : int
        Number of clusters, ``1 <= k <= N``.

    Returns
    -------
    centers : ndarray, shape (k, D), float32
    labels : ndarray, shape (N,), int64
    inertia : float
        Sum of squared distances to the assigned centres.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, dim = x.shape
    if not 1 <= k <= n:
        raise ValueError(f"k = {k} needs 1 <= k <= number of samples ({n})")
    rng = np.random.default_rng(seed)
    x2 = np.einsum("nd,nd->n", x, x, dtype=np.float64).astype(np.float32)
    m = min(n, max(50 * k, 10_000))
    seed_rows = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
    centers = _kmeans_pp(x[seed_rows], x2[seed_rows], k, rng)
    labels = np.full(n, -1, dtype=np.int64)
    prev = np.inf
    inertia = np.inf
    for _ in range(max_iter):
        c2 = np.einsum("kd,kd->k", centers, centers)
        d = (x @ centers.T) * np.float32(-2.0)
        d += c2[None, :]
        new = np.argmin(d, axis=1)
        dist = np.maximum(d[np.arange(n), new].astype(np.float64) + x2, 0.0)
        inertia = float(dist.sum())
        changed = bool((new != labels).any())
        labels = new
        counts = np.bincount(labels, minlength=k)
        order = np.argsort(labels, kind="stable")
        used = np.flatnonzero(counts)
        starts = np.concatenate(([0], np.cumsum(counts[used])[:-1]))
        sums = np.add.reduceat(x[order], starts, axis=0)
        centers = centers.copy()
        centers[used] = sums / counts[used, None].astype(np.float32)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-dist, kind="stable")[:empty.size]
            centers[empty] = x[far]
            changed = True
        if not changed or (np.isfinite(prev) and prev - inertia <= tol * prev):
            break
        prev = inertia
    # final assignment to the final centres
    d = x @ centers.T * np.float32(-2.0) + np.einsum("kd,kd->k", centers, centers)[None, :]
    labels = np.argmin(d, axis=1)
    inertia = float(np.maximum(d[np.arange(n), labels].astype(np.float64) + x2, 0.0).sum())
    return centers, labels, inertia


def fit_gmm(x: np.ndarray, k: int, *, seed: int = 0, max_iter: int = 100, tol: float = 1e-4,
            reg: float = 1e-3, init: tuple[np.ndarray, np.ndarray] | None = None
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Diagonal-covariance Gaussian mixture by EM, initialised from k-means.

    Initialisation: the k-means centres (``init=(centers, labels)`` reuses a
    run already made) as means, each cluster's per-dimension variance and
    its share of the points as weight.  Every variance is floored at
    ``reg * mean(var(x))`` (so a component never collapses).  Stops when the
    mean log-likelihood per sample improves by less than ``tol * |loglik|``
    or after ``max_iter`` EM steps.  (On SIFT descriptors, k = 64, the
    default tolerance stops after ~12 steps within 0.3% of the
    log-likelihood reached after 100.)

    Parameters
    ----------
    x : ndarray, shape (N, D)
    k : int

    Returns
    -------
    weights : ndarray, shape (k,), float32 (sums to 1)
    means, variances : ndarray, shape (k, D), float32
    loglik : float
        Final mean log-likelihood per sample.
    """
    x = np.asarray(x, dtype=np.float64)
    n, dim = x.shape
    if init is None:
        centers, labels, _ = kmeans(x, k, seed=seed)
    else:
        centers, labels = init
    floor = reg * float(x.var(axis=0).mean()) + 1e-12
    mu = np.asarray(centers, dtype=np.float64).copy()
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    s2 = np.zeros((k, dim))
    _add_rows(s2, labels, x * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = s2 / counts[:, None] - mu * mu
    var[counts == 0] = float(x.var(axis=0).mean())
    var = np.maximum(var, floor)
    w = np.maximum(counts, 1.0) / np.maximum(counts, 1.0).sum()
    prev = -np.inf
    ll = -np.inf
    for _ in range(max_iter):
        g, lls = gmm_posteriors(x, w, mu, var)
        ll = float(lls.mean())
        if ll - prev < tol * abs(ll):
            break
        prev = ll
        nk = g.sum(axis=0) + 1e-10
        w = nk / n
        mu = (g.T @ x) / nk[:, None]
        var = np.maximum((g.T @ (x * x)) / nk[:, None] - mu * mu, floor)
    return w.astype(np.float32), mu.astype(np.float32), var.astype(np.float32), ll


def _add_rows(acc: np.ndarray, labels: np.ndarray, rows: np.ndarray) -> None:
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=acc.shape[0])
    used = np.flatnonzero(counts)
    starts = np.concatenate(([0], np.cumsum(counts[used])[:-1]))
    acc[used] += np.add.reduceat(rows[order], starts, axis=0)


@dataclass
class Codebook:
    """Visual words (and optionally a GMM) plus the metadata they were made with.

    Attributes
    ----------
    centers : ndarray, shape (K, D), float32
        k-means centres (BoVW, VLAD).
    metadata : dict
        ``format``, ``format_version``, ``extractor``, ``params`` (all the
        extractor's parameters), ``descriptor`` (the parameters that define
        the descriptor space; must match at use), ``k``,
        ``descriptor_length``, ``featx_version``, ``seed``, ``sample``
        (requested), ``n_sampled``, ``n_descriptors_seen``, ``n_images``,
        ``quantisation_rms`` (RMS distance of the sample to its nearest word:
        the soft-assignment kernel width), ``inertia``, ``gmm`` (bool) and,
        with a GMM, ``gmm_loglik``.
    gmm_weights : ndarray, shape (K,), optional
    gmm_means, gmm_variances : ndarray, shape (K, D), optional
    """

    centers: np.ndarray
    metadata: dict = field(default_factory=dict)
    gmm_weights: np.ndarray | None = None
    gmm_means: np.ndarray | None = None
    gmm_variances: np.ndarray | None = None

    @property
    def k(self) -> int:
        return int(self.centers.shape[0])

    @property
    def dim(self) -> int:
        return int(self.centers.shape[1])

    @property
    def has_gmm(self) -> bool:
        return self.gmm_weights is not None


def _signature_of(extractor: Any) -> tuple[str, dict, dict, int]:
    from .extractor import params_to_dict

    name = getattr(extractor, "name", "") or type(extractor).__name__
    params = params_to_dict(extractor.params) if getattr(extractor, "params", None) is not None else {}
    sig = extractor.descriptor_signature() if hasattr(extractor, "descriptor_signature") else {}
    dim = int(getattr(extractor, "descriptor_length", 0) or 0)
    return name, params, sig, dim


def supports_codebook(extractor: Any) -> bool:
    """True if an extractor (class or instance) offers local descriptors to encode.

    Such an extractor declares ``has_local_descriptors`` (see
    :class:`featx.extractor.Extractor`): ``describe(image) -> Keypoints`` (its
    local features whatever its ``encode`` setting), ``descriptor_signature()
    -> dict`` and ``descriptor_length``.
    """
    return bool(getattr(extractor, "has_local_descriptors", False))


def local_descriptors(extractor: Any, image: np.ndarray) -> np.ndarray:
    """The ``(N, D)`` float32 local descriptors of ``image`` that codebooks are learnt from.

    Raises
    ------
    UsageError
        If the extractor has no local descriptors (see :func:`supports_codebook`).
    """
    if not supports_codebook(extractor):
        name = getattr(extractor, "name", type(extractor).__name__)
        raise UsageError(f"{name} has no local descriptors to learn a codebook from",
                         "codebooks are for extractors with keypoint descriptors, such as sift")
    return np.ascontiguousarray(extractor.describe(image).descriptors, dtype=np.float32)


def learn_codebook(descriptors: Iterable[np.ndarray], k: int, *, sample: int = 100_000,
                   seed: int = 0, gmm: bool = False, extractor: Any = None,
                   max_iter: int = 100, metadata: dict | None = None) -> Codebook:
    """Learn ``k`` visual words (and optionally a diagonal GMM) from a descriptor stream.

    Parameters
    ----------
    descriptors : iterable of ndarray, each shape (n_i, D), or ReservoirSampler
        One array per image, in a deterministic order (e.g.
        ``(ext.describe(item.pixels).descriptors for item in items)``).
        Consumed once; only a reservoir of ``sample`` rows is kept.  Or a
        :class:`ReservoirSampler` of ``sample`` rows and ``seed`` already fed.
    k : int
        Number of words / mixture components.
    sample : int
        Size of the uniform random sample of descriptors (memory bound:
        ``sample * D * 4`` bytes).
    seed : int
        Seeds the sampling, k-means++ and so the whole result.
    gmm : bool
        Also fit a diagonal-covariance GMM (needed for Fisher vectors).
    extractor : Extractor, optional
        The extractor that made the descriptors; its ``name``, parameters
        and ``descriptor_signature()`` go into the metadata and are checked
        when the codebook is used.
    max_iter : int
        Most k-means iterations (and EM steps).
    metadata : dict, optional
        Extra JSON-serialisable entries for the metadata (e.g. the
        pipeline's ``resize``, the inputs); they cannot replace the
        entries above.

    Returns
    -------
    Codebook

    Raises
    ------
    UsageError
        If fewer than ``k`` descriptors were seen.
    """
    from . import __version__

    if k < 1:
        raise UsageError(f"invalid k {k}", "k must be >= 1")
    if isinstance(descriptors, ReservoirSampler):  # filled by the caller (featx.learn, row by row)
        res, descriptors = descriptors, ()
    else:
        res = ReservoirSampler(max(int(sample), 1), seed=seed)
    for arr in descriptors:
        arr = np.asarray(arr, dtype=np.float32)
        if arr.ndim != 2:
            if arr.size:
                raise ValueError(f"expected (n, D) descriptor arrays, got shape {arr.shape}")
            res.arrays += 1
            continue
        res.add(arr)
    x = res.sample
    if x.shape[0] < k:
        raise UsageError(f"only {x.shape[0]} descriptors from {res.arrays} images (sample size {sample}); "
                         f"cannot learn k = {k} words",
                         "give more images, a larger --sample, or a smaller -k")
    centers, labels, inertia = kmeans(x, k, seed=seed, max_iter=max_iter)
    name, params, sig, dim = _signature_of(extractor) if extractor is not None else ("", {}, {}, 0)
    meta = {
        "format": CODEBOOK_FORMAT, "format_version": CODEBOOK_FORMAT_VERSION,
        "extractor": name, "params": params, "descriptor": sig,
        "k": int(k), "descriptor_length": int(x.shape[1]), "featx_version": __version__,
        "seed": int(seed), "sample": int(sample), "n_sampled": int(x.shape[0]),
        "n_descriptors_seen": int(res.seen), "n_images": int(res.arrays),
        "quantisation_rms": math.sqrt(inertia / x.shape[0]), "inertia": inertia,
        "gmm": bool(gmm),
    }
    for key, value in (metadata or {}).items():
        meta.setdefault(key, value)
    if dim and dim != x.shape[1]:
        raise UsageError(f"{name} declares {dim}-long descriptors but produced {x.shape[1]}")
    cb = Codebook(centers=centers, metadata=meta)
    if gmm:
        w, mu, var, ll = fit_gmm(x, k, seed=seed, max_iter=max_iter, init=(centers, labels))
        cb.gmm_weights, cb.gmm_means, cb.gmm_variances = w, mu, var
        meta["gmm_loglik"] = ll
    return cb


# ---------------------------------------------------------------------------
# Storage


def save_codebook(codebook: Codebook, path: str | os.PathLike) -> None:
    """Write ``path`` (``.npz``) atomically: temporary file, then rename.

    Arrays ``centers`` and, with a GMM, ``gmm_weights``, ``gmm_means``,
    ``gmm_variances`` (all float32), plus ``metadata``: a 0-d unicode array
    holding the JSON metadata.  Readable with ``np.load(allow_pickle=False)``.
    """
    path = Path(path)
    arrays = {"centers": np.asarray(codebook.centers, dtype=np.float32),
              "metadata": np.array(json.dumps(codebook.metadata, sort_keys=True))}
    if codebook.has_gmm:
        arrays["gmm_weights"] = np.asarray(codebook.gmm_weights, dtype=np.float32)
        arrays["gmm_means"] = np.asarray(codebook.gmm_means, dtype=np.float32)
        arrays["gmm_variances"] = np.asarray(codebook.gmm_variances, dtype=np.float32)
    from .output.atomic import sweep_tmp, write_atomic

    # a killed earlier save left its temporary file: gone before this one is written
    sweep_tmp(str(path.parent) if str(path.parent) else ".", names=[path.name])
    write_atomic(str(path), lambda f: np.savez(f, **arrays))


#: No codebook array may claim more than this (featx's own are a few MB): a
#: header that claims more is refused before anything is allocated.
MAX_CODEBOOK_ARRAY_BYTES = 4 << 30

_CODEBOOK_ARRAYS = {"centers": 2, "gmm_weights": 1, "gmm_means": 2, "gmm_variances": 2}


def _npz_members(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of each array in an ``.npz``, from the headers alone, after
    checking that each header agrees with the bytes the archive really holds."""
    import zipfile

    out = {}
    with zipfile.ZipFile(path) as zf:
        for info in zf.infolist():
            if not info.filename.endswith(".npy"):
                continue
            name = info.filename[:-4]
            with zf.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                offset = fh.tell()
            if dtype.hasobject:
                raise ValueError(f"array {name!r} holds Python objects, not numbers")
            claimed = math.prod(shape) * dtype.itemsize
            dims = " x ".join(str(n) for n in shape) or "a scalar"
            if claimed > MAX_CODEBOOK_ARRAY_BYTES:
                raise ValueError(f"array {name!r} claims {dims} values ({claimed / 2**30:.1f} GiB), "
                                 "far more than any codebook")
            if claimed != info.file_size - offset:
                raise ValueError(f"array {name!r} claims {dims} values ({claimed} bytes) but holds "
                                 f"{info.file_size - offset} bytes (truncated or forged)")
            out[name] = (tuple(shape), dtype)
    return out


def load_codebook(path: str | os.PathLike) -> Codebook:
    """Read a codebook written by :func:`save_codebook` (never unpickles).

    Everything is checked before use, and the array headers before anything
    is allocated: a file that is not an ``.npz`` (a plain ``.npy``, random
    bytes), arrays whose headers disagree with the data or claim absurd
    sizes, no words (k = 0), non-finite centres or GMM parameters, and
    non-positive variances are refused.

    Raises
    ------
    UsageError
        If the file is missing, unreadable or not a valid featx codebook; the
        message names the file and what is wrong.
    """
    import zipfile

    path = Path(path)
    hint = "make one with `featx codebook`"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except FileNotFoundError:
        raise UsageError(f"codebook {path} does not exist", hint) from None
    except IsADirectoryError:
        raise UsageError(f"codebook {path} is a folder, not a file", hint) from None
    except OSError as e:
        raise UsageError(f"cannot read codebook {path}: {e.strerror or e}") from None
    if head.startswith(b"\x93NUMPY"):
        raise UsageError(f"{path} is a plain .npy array, not a featx codebook "
                         "(an .npz archive with centers and metadata)", hint)
    if not head.startswith(b"PK"):
        raise UsageError(f"{path} is not a featx codebook (not an .npz archive)", hint)

    def bad(what: str) -> UsageError:
        return UsageError(f"{path} is not a valid featx codebook: {what}", hint)

    try:
        members = _npz_members(path)
    except ValueError as e:
        raise bad(str(e)) from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError, SyntaxError, RuntimeError, NotImplementedError):
        raise bad("damaged .npz archive") from None
    if not {"centers", "metadata"} <= set(members):
        raise UsageError(f"{path} is not a featx codebook (no centers/metadata arrays)", hint)
    for name, (shape, dtype) in members.items():
        if name == "metadata" and (shape != () or dtype.kind != "U"):
            raise bad("its metadata is not a JSON text")
        if name in _CODEBOOK_ARRAYS and (len(shape) != _CODEBOOK_ARRAYS[name] or dtype.kind not in "fiu"):
            raise bad(f"array {name!r} is {dtype} of shape {shape}, not a "
                      f"{_CODEBOOK_ARRAYS[name]}-D array of numbers")
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["metadata"][()]))
            centers = np.asarray(z["centers"], dtype=np.float32)
            gmm = {n: np.asarray(z[n], dtype=np.float32)
                   for n in ("gmm_weights", "gmm_means", "gmm_variances") if n in members}
    except json.JSONDecodeError:
        raise bad("its metadata is not valid JSON") from None
    except Exception:  # noqa: BLE001 - numpy's own messages may advise allow_pickle: never show them
        raise bad("damaged .npz archive") from None
    if not isinstance(meta, dict):
        raise bad("its metadata is not a JSON object")
    if meta.get("format") != CODEBOOK_FORMAT or meta.get("format_version") != CODEBOOK_FORMAT_VERSION:
        raise UsageError(f"{path}: unsupported codebook format {meta.get('format')!r} "
                         f"version {meta.get('format_version')!r}",
                         f"this featx reads {CODEBOOK_FORMAT} version {CODEBOOK_FORMAT_VERSION}")
    if len(gmm) not in (0, 3):
        raise UsageError(f"{path}: malformed codebook arrays")
    k, dim = centers.shape
    if k == 0 or dim == 0:
        raise bad(f"it has no words (centers of shape {k} x {dim}; k must be at least 1)")
    if meta.get("k") is not None and meta.get("k") != k:
        raise bad(f"its metadata says k = {meta.get('k')} but it holds {k} centres")
    for name, arr in (("centres", centers), *((n, gmm[n]) for n in sorted(gmm))):
        n_bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if n_bad:
            raise bad(f"{n_bad} of its {name} values are not finite numbers (NaN or infinity)")
    rms = meta.get("quantisation_rms")
    if rms is not None and not (isinstance(rms, (int, float)) and math.isfinite(rms) and rms >= 0):
        raise bad(f"its quantisation_rms {rms!r} is not a finite number >= 0")
    cb = Codebook(centers=centers, metadata=meta, gmm_weights=gmm.get("gmm_weights"),
                  gmm_means=gmm.get("gmm_means"), gmm_variances=gmm.get("gmm_variances"))
    if cb.has_gmm and (cb.gmm_means.shape != centers.shape or cb.gmm_weights.shape != (cb.k,)
                       or cb.gmm_variances.shape != centers.shape):
        raise UsageError(f"{path}: malformed codebook GMM arrays")
    if cb.has_gmm and (np.any(cb.gmm_variances <= 0) or np.any(cb.gmm_weights < 0) or cb.gmm_weights.sum() <= 0):
        raise bad("its GMM has variances <= 0 or negative weights")
    return cb


def _fmt_sig(sig: dict) -> str:
    """Descriptor settings as options: ``--dense off, --root-sift on, --sigma 1.6``."""
    def text(v) -> str:
        if isinstance(v, bool):
            return "on" if v else "off"
        return "not set" if v is None else str(v)

    return ", ".join(f"--{k.replace('_', '-')} {text(v)}" for k, v in sorted(sig.items())) or "(none)"


def check_codebook(codebook: Codebook, extractor: str, descriptor: dict, dim: int,
                   path: str = "codebook") -> None:
    """Refuse a codebook made for another extractor or descriptor space.

    Raises
    ------
    ParamError
        Naming what the codebook was made for and what this run uses.
    """
    meta = codebook.metadata
    made = meta.get("extractor")
    if made != extractor:
        raise ParamError(f"{path} was made for extractor {made!r}, not {extractor!r}",
                         f"learn one with `featx codebook {extractor} ...`")
    theirs = meta.get("descriptor", {})
    if theirs != descriptor or codebook.dim != dim:
        raise ParamError(
            f"{path} was made for {made} descriptors with {_fmt_sig(theirs)} (length {codebook.dim}); "
            f"this run uses {_fmt_sig(descriptor)} (length {dim})",
            f"learn a codebook with the same descriptor parameters: featx codebook {extractor} ...")


# ---------------------------------------------------------------------------
# Parameters shared by every extractor that offers encodings


@dataclass(frozen=True)
class EncodingParams:
    """Encoding parameters; an extractor's ``Params`` inherits them.

    Declare ``class Params(EncodingParams, _OwnParams)`` so that the
    extractor's own parameters come first in ``featx info`` and ``--help``.
    """

    encode: str = param("none", "encode the local descriptors into one fixed-length vector: "
                        "bag of visual words, VLAD or Fisher vector (needs --codebook)",
                        choices=ENCODINGS)
    codebook: str | None = param(None, "codebook .npz made by `featx codebook` for the same "
                                 "extractor and descriptor parameters (Fisher needs one with --gmm)",
                                 metavar="FILE")
    soft: int = param(0, "BoVW soft assignment: split each descriptor's vote over its N nearest "
                      "words with Gaussian weights (kernel width: the codebook's RMS quantisation "
                      "error); 0 = hard assignment", min=0, max=64)
    pyramid: int = param(1, "BoVW spatial pyramid levels: 1 = whole image, 2 = 1x1 + 2x2, "
                         "3 = 1x1 + 2x2 + 4x4 (length k * (4^L - 1) / 3)", min=1, max=5)
    norm: str = param("l2", "final normalisation of the encoded vector", choices=NORMS)
    power: bool = param(True, "signed square-root (power) normalisation before --norm "
                        "(Hellinger for BoVW, improved VLAD/Fisher)")
    intra_norm: bool = param(True, "VLAD: L2-normalise each word's residual block first")

    def validate(self) -> None:
        if self.encode == "none":
            if self.codebook is not None:
                raise ParamError("--codebook given without --encode",
                                 "add --encode bovw, vlad or fisher")
            return
        if self.codebook is None:
            raise ParamError(f"--encode {self.encode} needs --codebook FILE",
                             "make one with `featx codebook EXTRACTOR IMAGES... -k K -o FILE`")
        if self.encode != "bovw":
            if self.pyramid != 1:
                raise ParamError(f"--pyramid applies to --encode bovw, not {self.encode}",
                                 "use --pyramid 1 or --encode bovw")
            if self.soft != 0:
                raise ParamError(f"--soft applies to --encode bovw, not {self.encode}",
                                 "use --soft 0 or --encode bovw")


class FeatureEncoder:
    """Turns one image's local features into its encoded vector.

    Built once (per worker) from an extractor's :class:`EncodingParams`; loads
    and checks the codebook there, so a wrong codebook fails before the first
    image.

    Parameters
    ----------
    params : EncodingParams
    extractor : str
        The extractor's name (must match the codebook's).
    descriptor : dict
        The extractor's descriptor signature (must match the codebook's).
    dim : int
        Descriptor length.
    """

    def __init__(self, params: EncodingParams, *, extractor: str, descriptor: dict, dim: int):
        self.kind = params.encode
        self.params = params
        self.codebook: Codebook | None = None
        if self.kind == "none":
            return
        cb = load_codebook(params.codebook)
        check_codebook(cb, extractor, descriptor, dim, path=str(params.codebook))
        if self.kind == "fisher" and not cb.has_gmm:
            raise ParamError(f"{params.codebook} has no GMM, which --encode fisher needs",
                             f"learn one with `featx codebook {extractor} ... --gmm`")
        if self.kind == "bovw" and params.soft > 1 and not cb.metadata.get("quantisation_rms", 0) > 0:
            raise ParamError(f"{params.codebook} records no quantisation error for --soft",
                             "re-learn it with `featx codebook`")
        self.codebook = cb

    @property
    def enabled(self) -> bool:
        return self.codebook is not None

    @property
    def length(self) -> int:
        """Length of the encoded vector."""
        cb = self.codebook
        if cb is None:
            raise ValueError("no encoding")
        if self.kind == "bovw":
            return cb.k * sum(4 ** lev for lev in range(self.params.pyramid))
        if self.kind == "vlad":
            return cb.k * cb.dim
        return 2 * cb.k * cb.dim

    def __call__(self, features: Keypoints, height: int, width: int) -> np.ndarray:
        """Encode ``features`` of an image of ``height x width`` pixels -> float32 ``(length,)``."""
        p, cb = self.params, self.codebook
        d = features.descriptors
        if self.kind == "bovw":
            return bovw(d, cb.centers, soft=p.soft, sigma=cb.metadata.get("quantisation_rms"),
                        positions=features.points[:, :2], image_size=(height, width),
                        pyramid=p.pyramid, norm=p.norm, power=p.power)
        if self.kind == "vlad":
            return vlad(d, cb.centers, intra=p.intra_norm, norm=p.norm, power=p.power)
        return fisher(d, cb.gmm_weights, cb.gmm_means, cb.gmm_variances, norm=p.norm, power=p.power)
