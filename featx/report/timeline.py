"""Video timelines: how much each frame differs from the previous one, and where the content changes.

For every video (or frame sequence) of an output, the distance between consecutive frame
vectors, by the report's metric, is a signal that stays low while the picture changes
little and jumps where it cuts to something else.  A frame is marked as a **shot
boundary** by the rule of :mod:`featx.shots` (one implementation, also behind
``featx segments``): its distance is an outlier of its video's distances by a robust
z-score,

    z = (d - median(d)) / (1.4826 * MAD(d))       MAD = median(|d - median(d)|)

above ``Z_THRESHOLD`` (6 by default, ``featx report --cut-z``), and the largest distance
within ``MIN_SHOT`` frames on either side (see :func:`featx.shots.boundaries`).
"""
from __future__ import annotations

import html

import numpy as np

from ..shots import Z_THRESHOLD, robust_z

#: Thumbnails shown under one timeline, and timelines drawn in one report.
THUMBS_PER_VIDEO = 16
MAX_TIMELINES = 50
#: Points of one timeline's line (longer videos are binned, keeping each bin's maximum).
MAX_POINTS = 1200


def thumb_positions(n: int, cuts: np.ndarray, most: int = THUMBS_PER_VIDEO) -> list[int]:
    """Which frames get a thumbnail: the first, each cut's frame and the one before it (as
    many cuts as fit), then evenly spaced frames up to ``most``."""
    if n == 0:
        return []
    want: list[int] = [0]
    for c in cuts.tolist():
        for p in (c - 1, c):
            if 0 <= p < n and p not in want and len(want) < most:
                want.append(p)
    if len(want) < most:
        for p in np.linspace(0, n - 1, num=min(n, most - len(want) + 2)).round().astype(int).tolist():
            if p not in want and len(want) < most:
                want.append(p)
    return sorted(want)


def _binned(d: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """(positions, values) of at most ``most`` points: each bin's largest distance."""
    n = len(d)
    vals = np.nan_to_num(d, nan=0.0)
    if n <= most:
        return np.arange(n), vals
    edges = np.linspace(0, n, most + 1).astype(int)
    pos = np.empty(most, int)
    out = np.empty(most)
    for b in range(most):
        seg = vals[edges[b]:edges[b + 1]]
        j = int(np.argmax(seg))
        pos[b], out[b] = edges[b] + j, seg[j]
    return pos, out


def svg(d: np.ndarray, frames: np.ndarray, cuts: np.ndarray, z_threshold: float = Z_THRESHOLD,
        width: int = 960, height: int = 140) -> str:
    """The timeline as an inline SVG: the distances as a line, the boundary threshold as a
    dashed line, each boundary as a red bar with its frame number as a tooltip."""
    n = len(d)
    pad_l, pad_b, pad_t = 44, 18, 8
    w, h = width - pad_l - 6, height - pad_b - pad_t
    vals = np.nan_to_num(np.asarray(d, np.float64), nan=0.0)
    z = robust_z(d)
    ok = np.isfinite(np.asarray(d, np.float64))
    line_at = None
    if ok.any():
        v = np.asarray(d, np.float64)[ok]
        med = float(np.median(v))
        scale = 1.4826 * float(np.median(np.abs(v - med))) or 1.2533 * float(np.mean(np.abs(v - med)))
        if scale > 0:
            line_at = med + z_threshold * scale
    top = max(float(vals.max()) if n else 0.0, line_at or 0.0) or 1.0

    def X(i: float) -> float:
        return pad_l + (w * i / max(1, n - 1))

    def Y(v: float) -> float:
        return pad_t + h - h * v / top

    parts = [f'<svg class="timeline" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
             f'role="img" aria-label="distance between consecutive frames">',
             f'<line class="axis" x1="{pad_l}" y1="{pad_t + h}" x2="{pad_l + w}" y2="{pad_t + h}"/>',
             f'<text class="tick" x="{pad_l - 4}" y="{pad_t + 8}" text-anchor="end">{top:.3g}</text>',
             f'<text class="tick" x="{pad_l - 4}" y="{pad_t + h}" text-anchor="end">0</text>']
    for c in cuts.tolist():
        fr = int(frames[c]) if c < len(frames) else c
        parts.append(f'<rect class="cut" x="{X(c) - 1.5:.1f}" y="{pad_t}" width="3" height="{h}">'
                     f'<title>shot boundary at frame {fr} (z = {z[c]:.1f})</title></rect>')
    if line_at is not None:
        parts.append(f'<line class="limit" x1="{pad_l}" y1="{Y(line_at):.1f}" x2="{pad_l + w}" '
                     f'y2="{Y(line_at):.1f}"><title>boundary threshold: z &gt; {z_threshold:g}</title></line>')
    pos, pv = _binned(np.asarray(d, np.float64), MAX_POINTS)
    pts = " ".join(f"{X(p):.1f},{Y(v):.1f}" for p, v in zip(pos.tolist(), pv.tolist()))
    if pts:
        parts.append(f'<polyline class="diff" points="{pts}"/>')
    if n:
        parts.append(f'<text class="tick" x="{pad_l}" y="{height - 4}">frame {int(frames[0])}</text>')
        parts.append(f'<text class="tick" x="{pad_l + w}" y="{height - 4}" text-anchor="end">frame '
                     f'{html.escape(str(int(frames[-1])))}</text>')
    parts.append("</svg>")
    return "".join(parts)
