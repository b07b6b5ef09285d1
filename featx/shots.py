"""Shot boundaries: where a video cuts from one picture to another, and the segments between.

A cheap signature of every frame — a colour histogram (hue x saturation x value, 8 x 4 x 4
bins, of the frame shrunk to at most 160 pixels wide) — and the distance between the
signatures of consecutive frames (half the L1 distance of the two histograms: the share of
pixels whose colour changed bin, from 0 to 1) give a signal that stays low while the camera
looks at one scene, pans or zooms included (a histogram does not care where a colour is),
and jumps where the picture is replaced.  A frame is a **shot boundary** where its distance
is an outlier of its video's distances by a robust z-score:

    z = (d - median(d)) / (1.4826 * MAD(d))       MAD = median(|d - median(d)|)

and ``z > threshold`` (:data:`Z_THRESHOLD`, 6), and it is the largest distance within
:data:`MIN_SHOT` frames on either side (a cut is one jump; a change that builds over several
frames — a flash, a fast pan — is marked once, at its largest step).  The median and the
MAD ignore the few large jumps themselves, so one cut does not hide another, and the scale
is the video's own: a shaky hand-held clip needs a larger jump than a still tripod shot.
(Where the MAD is 0 — half the frames or more identical — the mean absolute deviation stands
in for it; where that is 0 too, nothing changes and nothing is marked.)  A slow change —
a fade, a dissolve, light that changes — spreads over many small steps and is not marked.

:func:`robust_z` and :func:`boundaries` are the one implementation of this rule: the HTML
report (:mod:`featx.report.timeline`) marks the boundaries of its timelines with them too,
on the distances of an output's own vectors.

:func:`find_shots` then keeps the boundaries at least ``min_length`` seconds apart (the
strongest first) and turns them into segments ``start <= time < end`` that cover the
video: each starts at its first frame's time; the last ends one frame after its last frame
— a segments file (:func:`write_segments`) that ``featx extract --segments`` reads.
"""
from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import IO

import numpy as np

#: A frame whose robust z-score is above this starts a new shot.
Z_THRESHOLD = 6.0
#: Frames on either side of a boundary that cannot be another boundary.
MIN_SHOT = 4
#: The shortest shot :func:`find_shots` makes, in seconds (``featx segments --min-length``).
MIN_LENGTH = 0.5
#: Bins of the colour histogram: hue, saturation, value.
HIST_BINS = (8, 4, 4)
#: Frames are shrunk to at most this width before their histogram is taken.
SIGNATURE_WIDTH = 160


def robust_z(d: np.ndarray) -> np.ndarray:
    """The robust z-score of each distance (nan stays nan: the first frame has none)."""
    d = np.asarray(d, dtype=np.float64)
    ok = np.isfinite(d)
    z = np.full(d.shape, np.nan)
    if not ok.any():
        return z
    v = d[ok]
    med = float(np.median(v))
    scale = 1.4826 * float(np.median(np.abs(v - med)))
    if scale <= 0:
        scale = 1.2533 * float(np.mean(np.abs(v - med)))
    if scale <= 0:
        z[ok] = 0.0
        return z
    z[ok] = (v - med) / scale
    return z


def boundaries(d: np.ndarray, z_threshold: float = Z_THRESHOLD, min_shot: int = MIN_SHOT) -> np.ndarray:
    """Positions (into ``d``, the distance of each frame to the one before it) of the frames
    that start a new shot (see the module docstring)."""
    z = np.nan_to_num(robust_z(d), nan=-np.inf)
    over = np.flatnonzero(z > z_threshold)
    keep = []
    for i in over.tolist():
        lo, hi = max(0, i - min_shot), min(len(z), i + min_shot + 1)
        window = z[lo:hi]
        # the largest in its window; on a tie, the first
        if z[i] >= window.max() and not (window[:i - lo] == z[i]).any():
            keep.append(i)
    return np.asarray(keep, dtype=np.int64)


def signature(rgb: np.ndarray) -> np.ndarray:
    """The colour histogram of one ``uint8`` RGB frame: :data:`HIST_BINS` bins of hue,
    saturation and value (OpenCV's HSV), float64, summing to 1."""
    import cv2

    img = np.asarray(rgb)
    if img.ndim == 2:
        img = cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    h, w = img.shape[:2]
    if w > SIGNATURE_WIDTH:
        img = cv2.resize(img, (SIGNATURE_WIDTH, max(1, round(h * SIGNATURE_WIDTH / w))),
                         interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(HIST_BINS), [0, 180, 0, 256, 0, 256]).ravel()
    hist = hist.astype(np.float64)
    return hist / max(hist.sum(), 1.0)


def distances(signatures: Iterable[np.ndarray]) -> np.ndarray:
    """Half the L1 distance of each signature to the one before it (nan for the first)."""
    out, prev = [], None
    for s in signatures:
        out.append(np.nan if prev is None else 0.5 * float(np.abs(s - prev).sum()))
        prev = s
    return np.asarray(out, dtype=np.float64)


@dataclass(frozen=True)
class Shot:
    """One segment of a video: frames with ``start <= time < end`` (seconds), the first
    frame's number, how many frames, and the robust z-score of the cut that starts it
    (None for the first shot)."""

    start: float
    end: float
    label: str
    first_frame: int
    frames: int
    z: float | None = None


def cuts(times: np.ndarray, d: np.ndarray, z_threshold: float = Z_THRESHOLD,
         min_length: float = MIN_LENGTH, end: float | None = None) -> list[int]:
    """The frames (positions into ``times``) that start a shot: :func:`boundaries` of
    ``d``, strongest first, each kept if it lies at least ``min_length`` seconds from the
    video's start (``times[0]``), its end (``end``, default the last time) and every cut
    kept before it.  In increasing order."""
    times = np.asarray(times, dtype=np.float64)
    if len(times) < 2:
        return []
    end = float(times[-1]) if end is None else end
    z = robust_z(d)
    found = sorted(boundaries(d, z_threshold).tolist(), key=lambda i: (-z[i], i))
    kept: list[int] = []
    for i in found:
        t = times[i]
        if t - times[0] < min_length or end - t < min_length:
            continue
        if all(abs(t - times[k]) >= min_length for k in kept):
            kept.append(i)
    return sorted(kept)


def frame_step(times: np.ndarray) -> float:
    """The usual interval between frames (the median one; 0 for fewer than two frames)."""
    times = np.asarray(times, dtype=np.float64)
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def find_shots(path: str | os.PathLike, *, threshold: float = Z_THRESHOLD, min_length: float = MIN_LENGTH,
               threads: int | None = None) -> list[Shot]:
    """The shots of the video ``path`` (see the module docstring), labelled ``shot1``,
    ``shot2``...: consecutive, covering every decoded frame.

    Every frame is decoded, one at a time; what is kept of each is its time and its
    distance to the frame before (16 bytes a frame: 15 MB for ten hours at 25 fps).  Raises
    :class:`~featx.video.VideoError` when the video cannot be read; a video that breaks off
    raises it too, with the frames before the damage in ``exc.shots``.
    """
    from .video import VideoError, iter_video

    from array import array

    times, d = array("d"), array("d")       # two numbers a frame are kept, not its signature
    prev = None
    try:
        for fr in iter_video(path, threads=threads):
            sig = signature(fr.image)
            times.append(fr.time)
            d.append(np.nan if prev is None else 0.5 * float(np.abs(sig - prev).sum()))
            prev = sig
    except VideoError as exc:
        exc.shots = shots_of(np.frombuffer(times), np.frombuffer(d), threshold, min_length) if times else []
        raise
    return shots_of(np.frombuffer(times), np.frombuffer(d), threshold, min_length)


def shots_of(times: np.ndarray, d: np.ndarray, threshold: float = Z_THRESHOLD,
             min_length: float = MIN_LENGTH) -> list[Shot]:
    """The shots of frames shown at ``times`` whose distances to the frame before are ``d``."""
    times = np.asarray(times, dtype=np.float64)
    n = len(times)
    if n == 0:
        return []
    end = float(times[-1]) + (frame_step(times) or 0.04)  # one frame after the last (25 fps if one frame)
    starts = cuts(times, d, threshold, min_length, end=end)
    z = robust_z(d)
    firsts = [0] + starts
    out = []
    for k, i in enumerate(firsts):
        nxt = firsts[k + 1] if k + 1 < len(firsts) else n
        out.append(Shot(start=float(times[i]), end=float(times[nxt]) if nxt < n else end, label=f"shot{k + 1}",
                        first_frame=i, frames=nxt - i, z=None if k == 0 else float(z[i])))
    return out


def segment_rows(path: str, shots: list[Shot]) -> list[list[str]]:
    """The fields of the segments file's rows of one video: path, start, end, label
    (times as featx writes times: 6 decimals; names with featx's escape)."""
    from .names import escape_name

    return [[escape_name(path), "%.6f" % s.start, "%.6f" % s.end, escape_name(s.label)] for s in shots]


def write_segments(fh: IO[bytes], rows: Iterable[list[str]]) -> None:
    """A segments file: the header ``path,start,end,label`` and ``rows`` (see
    :func:`segment_rows`)."""
    from .output.sinkbase import csv_line, to_bytes

    fh.write(to_bytes(csv_line(["path", "start", "end", "label"])))
    for r in rows:
        fh.write(to_bytes(csv_line(r)))


def listed_path(video: str, segments_file: str | None) -> str:
    """How a segments file at ``segments_file`` names ``video`` so that it reads back as
    that video (paths in a segments file are relative to its folder): relative to that
    folder, or as given when written to stdout (None) or when absolute."""
    if segments_file is None or os.path.isabs(video):
        return video
    folder = os.path.dirname(os.path.abspath(segments_file))
    if folder == os.path.abspath(os.curdir):
        return video
    return os.path.relpath(os.path.abspath(video), folder)
