"""Codebooks learnt from local descriptors.

:func:`learn_codebook` draws a bounded, seeded, uniform random sample of
descriptors from a stream of per-image arrays (reservoir sampling, so memory
is ``sample x D`` floats however many images), runs k-means (Lloyd's
algorithm with k-means++ seeding, numpy/BLAS) and optionally fits a
diagonal-covariance GMM by EM initialised from the k-means solution.  The
result is a :class:`featx.encoding.Codebook`, saved with
:func:`featx.encoding.save_codebook`; the encodings that use it are in
:mod:`featx.encoding`.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .encoding import CODEBOOK_FORMAT, CODEBOOK_FORMAT_VERSION, Codebook, gmm_posteriors
from .errors import UsageError

__all__ = ["ReservoirSampler", "kmeans", "fit_gmm", "learn_codebook", "supports_codebook", "local_descriptors"]


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
