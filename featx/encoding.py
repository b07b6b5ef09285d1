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
A :class:`Codebook` holds the visual words (and optionally a GMM) and the
metadata they were made with; :func:`save_codebook` writes an ``.npz``
(arrays + a JSON metadata string; no pickle) atomically; :func:`load_codebook`
reads it with ``allow_pickle=False``; :func:`check_codebook` checks that it
fits an extractor's descriptors.  They are learnt by
:func:`featx.codebook.learn_codebook`.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ParamError, UsageError
from .extractor import Keypoints, param

__all__ = [
    "Codebook", "EncodingParams", "FeatureEncoder", "save_codebook", "load_codebook",
    "check_codebook", "bovw", "vlad", "fisher", "normalise", "pyramid_cells", "gmm_log_densities", "gmm_posteriors",
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


#: No codebook array may claim more than this (featx's own are a few MB; 262,144 words of
#: 128 values is 128 MiB): a header that claims more is refused from the archive's header,
#: before its data is read or anything is allocated.
MAX_CODEBOOK_ARRAY_BYTES = 128 << 20
#: The most words a codebook may have: more makes every image's encoding (a distance per
#: descriptor and word, a vector of k values or more) fail on its own; it is refused once,
#: when the codebook is read (and ``featx codebook -k`` takes no more).
MAX_CODEBOOK_WORDS = 262_144

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
            if name in ("centers", "gmm_means", "gmm_variances", "gmm_weights") and shape \
                    and shape[0] > MAX_CODEBOOK_WORDS:
                raise ValueError(f"it has {shape[0]} words (array {name!r} of {dims} values); featx encodes "
                                 f"with at most {MAX_CODEBOOK_WORDS}")
            if claimed > MAX_CODEBOOK_ARRAY_BYTES:
                raise ValueError(f"array {name!r} claims {dims} values ({claimed / 2**20:.0f} MiB), "
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

