#!/usr/bin/env python
"""How well ``featx similar`` and ``featx duplicates`` find edited copies of real photos.

The set (made here, nothing downloaded): every photo of samples/ and the photos bundled
with scikit-image (``skimage.data``) that are not the same picture, each with nine edited
copies -- crops of 10 % and 30 % of each side, half size, JPEG at quality 30 and 70, a
5-degree rotation, brightness/contrast, a horizontal flip, a text overlay (cv2.putText) --
plus distractors (bundled pictures with no copies).  A *family* is an original and its
copies.

Measured per extractor with its default metric (cnn: cosine; hog, gradients: hellinger)
and for the perceptual hash pHash (``imagehash``, Hamming distance of 64-bit hashes; a
benchmark-only dependency):

* recall@1: for each picture of a family, is its nearest other picture of the same family;
* duplicates (connected components at a threshold, as ``featx duplicates``): precision and
  recall over pairs -- a pair of pictures put in one group is right when they are of one
  family -- at featx's default threshold, and the threshold that gives the best F1 on the
  set (how the defaults were chosen; pHash at imagededup's default of 10 bits and its best).

Usage::

    python benchmarks/bench_duplicates.py [--workdir DIR] [--jobs 2]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: bundled pictures used as originals (the samples are the same photos as astronaut, camera,
#: chelsea, coffee and rocket, so they come from samples/), and as distractors
FAMILIES = ("brick", "cell", "clock", "coins", "colorwheel", "grass", "gravel", "hubble_deep_field",
            "immunohistochemistry", "moon", "page", "retina", "text")
DISTRACTORS = ("logo", "checkerboard", "horse", "shepp_logan_phantom", "microaneurysms", "motorcycle_left")
EDITS = ("crop10", "crop30", "half", "jpeg30", "jpeg70", "rotate5", "bright", "flip", "text")
EXTRACTORS = {"cnn": {}, "hog": {"resize": (128, 128)}, "gradients": {}}


def _rgb8(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    elif a.dtype != np.uint8:
        a = np.clip(a / max(float(a.max()), 1e-9) * 255, 0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 4:
        a = a[:, :, :3]
    return a


def originals() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    import cv2
    import skimage.data as data

    fam: dict[str, np.ndarray] = {}
    for f in sorted((ROOT / "samples").iterdir()):
        if f.suffix.lower() in (".png", ".jpg"):
            img = cv2.imread(str(f), cv2.IMREAD_UNCHANGED)
            fam[f.stem] = cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img
    for name in FAMILIES:
        fam[name] = _rgb8(getattr(data, name)())
    dis = {}
    for name in DISTRACTORS:
        dis[name] = _rgb8(data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(data, name)())
    return fam, dis


def edit(img: np.ndarray, how: str, seed: int) -> tuple[np.ndarray, int | None]:
    """An edited copy, and the JPEG quality to save it at (None: PNG)."""
    import cv2

    rng = np.random.default_rng(seed)
    h, w = img.shape[:2]
    if how.startswith("crop"):
        f = int(how[4:]) / 100
        dy, dx = int(h * f), int(w * f)
        y0, x0 = int(rng.integers(0, dy + 1)), int(rng.integers(0, dx + 1))
        return img[y0:y0 + h - dy, x0:x0 + w - dx].copy(), None
    if how == "half":
        return cv2.resize(img, (w // 2, h // 2), interpolation=cv2.INTER_AREA), None
    if how.startswith("jpeg"):
        return img, int(how[4:])
    if how == "rotate5":
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 5.0, 1.0)
        return cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT), None
    if how == "bright":
        return cv2.convertScaleAbs(img, alpha=1.25, beta=20), None
    if how == "flip":
        return img[:, ::-1].copy(), None
    if how == "text":
        out = img.copy()
        scale = max(0.6, w / 400)
        cv2.putText(out, "(c) featx 2026", (int(w * 0.05), int(h * 0.9)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (255, 255, 255) if out.ndim == 3 else 255, max(1, int(2 * scale)), cv2.LINE_AA)
        return out, None
    raise ValueError(how)


def make_set(folder: str) -> tuple[list[str], list[int]]:
    """Write the set into ``folder``; returns the paths and the family of each (-1: distractor)."""
    import cv2

    fam, dis = originals()
    paths, family = [], []

    def save(name, img, quality):
        bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
        p = os.path.join(folder, name + (".jpg" if quality else ".png"))
        cv2.imwrite(p, bgr, [cv2.IMWRITE_JPEG_QUALITY, quality] if quality else [])
        return p

    for f, (name, img) in enumerate(sorted(fam.items())):
        paths.append(save(f"{name}", img, None)); family.append(f)
        for e, how in enumerate(EDITS):
            out, q = edit(img, how, seed=1000 * f + e)
            paths.append(save(f"{name}-{how}", out, q)); family.append(f)
    for name, img in sorted(dis.items()):
        paths.append(save(f"distractor-{name}", img, None)); family.append(-1)
    return paths, family


def all_distances(X: np.ndarray, metric: str) -> np.ndarray:
    from featx.neighbors import nearest

    n = len(X)
    idx, dist = nearest(X, n - 1, metric)
    D = np.full((n, n), np.inf)
    np.put_along_axis(D, idx, dist.astype(np.float64), axis=1)
    return D


def recall_at_1(D: np.ndarray, family: np.ndarray) -> float:
    nn = np.argmin(D, axis=1)
    members = family >= 0
    return float(np.mean(family[nn][members] == family[members]))


def pair_scores(groups: list[list[int]], family: np.ndarray) -> tuple[float, float]:
    predicted = {(a, b) for g in groups for a, b in itertools.combinations(sorted(g), 2)}
    true = {(a, b) for a, b in itertools.combinations(range(len(family)), 2)
            if family[a] >= 0 and family[a] == family[b]}
    tp = len(predicted & true)
    return (tp / len(predicted) if predicted else 1.0), tp / len(true)


def groups_at(D: np.ndarray, t: float) -> list[list[int]]:
    from featx.duplicates import groups_from_pairs

    i, j = np.nonzero(np.triu(D <= t, 1))
    return groups_from_pairs(len(D), [(i, j)])


def sweep(D: np.ndarray, family: np.ndarray) -> tuple[tuple, tuple]:
    """Over the distances that occur: (threshold, precision, recall) of the best F1, and of
    the largest threshold whose precision is still >= 0.95 (what a tool that proposes
    removals should favour)."""
    cands = np.unique(np.round(D[np.isfinite(D)], 3))
    best, safe = (0.0, 1.0, 0.0, -1.0), (0.0, 1.0, 0.0)
    for t in cands[:: max(1, len(cands) // 400)]:
        p, r = pair_scores(groups_at(D, t), family)
        f1 = 2 * p * r / (p + r) if p + r else 0
        if f1 > best[3]:
            best = (float(t), p, r, f1)
        if p >= 0.95:
            safe = (float(t), p, r)
    return best[:3], safe


def closest_different(D: np.ndarray, family: np.ndarray) -> float:
    """The smallest distance between two pictures that are not of one family."""
    same = (family[:, None] == family[None, :]) & (family[:, None] >= 0)
    return float(np.min(np.where(same, np.inf, D)))


def phash_distances(paths: list[str]) -> np.ndarray:
    import imagehash
    from PIL import Image

    hashes = [imagehash.phash(Image.open(p)) for p in paths]
    n = len(hashes)
    D = np.array([[hashes[a] - hashes[b] for b in range(n)] for a in range(n)], dtype=np.float64)
    np.fill_diagonal(D, np.inf)
    return D


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args()
    from featx.api import extract_files
    from featx.duplicates import default_threshold
    from featx.neighbors import default_metric

    work = args.workdir or tempfile.mkdtemp(prefix="bench-dup-")
    os.makedirs(work, exist_ok=True)
    paths, family = make_set(work)
    family = np.array(family)
    nf = len(set(family[family >= 0].tolist()))
    print(f"set: {nf} originals x {len(EDITS)} edits ({', '.join(EDITS)}) + {np.sum(family < 0)} distractors "
          f"= {len(paths)} pictures", file=sys.stderr)
    rows = []
    for name, opts in EXTRACTORS.items():
        values, keys, failed = extract_files(paths, name, jobs=args.jobs, **opts)
        assert not failed, failed
        order = {k["path"]: i for i, k in enumerate(keys)}
        X = np.asarray(values)[[order[p] for p in paths]]
        metric = default_metric(name)
        D = all_distances(X, metric)
        t0 = default_threshold(name, metric)
        p, r = pair_scores(groups_at(D, t0), family) if t0 is not None else (0.0, 0.0)
        rows.append((f"{name} ({metric})", recall_at_1(D, family), t0, p, r, *sweep(D, family),
                     closest_different(D, family)))
    D = phash_distances(paths)
    p, r = pair_scores(groups_at(D, 10), family)
    rows.append(("pHash (Hamming, 64 bits)", recall_at_1(D, family), 10, p, r, *sweep(D, family),
                 closest_different(D, family)))
    print("| features | recall@1 | default threshold | precision | recall | best-F1 threshold (P / R) "
          "| largest threshold with P >= 0.95 (P / R) | closest two different pictures |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    fmt = lambda t: f"{t[0]:g} ({t[1]:.2f} / {t[2]:.2f})"  # noqa: E731
    for name, r1, t0, p, r, best, safe, gap in rows:
        t0s, ps, rs = ("—", "—", "—") if t0 is None else (f"{t0:g}", f"{p:.3f}", f"{r:.3f}")
        print(f"| {name} | {r1:.3f} | {t0s} | {ps} | {rs} | {fmt(best)} | {fmt(safe)} | {gap:.3g} |")


if __name__ == "__main__":
    main()
