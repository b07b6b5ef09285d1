"""The pieces every ``featx show`` picture is made of: text, keys and layout.

All pictures read the same way.  What the extractor computes is drawn at the
top left, in the pixels of the image it was computed on (so pixel ``(y, x)``
of the picture is pixel ``(y, x)`` of the image); below it, on white, a
caption: a title saying what is drawn and how to read it, then its keys —
colour wheels (direction -> colour), colour bars (value -> colour, with the
numbers and their unit) and legends (colour -> meaning).  Pictures made of
several tiles (a filter bank, template maps) label their rows and columns.
A folder, or several images, becomes a contact sheet: one labelled tile per
image.

Everything is plain OpenCV drawing on uint8 RGB arrays.  Text uses OpenCV's
Hershey font, which draws ASCII only (other characters show as ``?``).  Sizes
follow :class:`Style`: text, bars and wheels grow with the picture, so that a
12-megapixel photo's caption is as readable, once the picture is scaled to a
screen, as a 640-pixel one's.

Each builder returns a :class:`Figure`: the pixels and the named boxes of
what is where (tests use them to find the key of a picture without a
screenshot).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

#: Background of captions, keys and headers.
PAPER = (255, 255, 255)
#: Text and outlines.
INK = (25, 25, 25)
#: Secondary lines (grid lines, bin edges).
FAINT = (140, 140, 140)
#: Background between the tiles of a contact sheet.
SHEET = (215, 215, 215)

Box = tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True)
class Style:
    """Sizes of text and keys for one picture: everything scales with ``unit``.

    ``unit`` is 1 for pictures up to 640 pixels on their longer side and grows
    in proportion beyond (see :meth:`for_size`).
    """

    unit: float = 1.0

    @classmethod
    def for_size(cls, height: int, width: int) -> Style:
        return cls(max(1.0, max(int(height), int(width)) / 640.0))

    def px(self, n: float) -> int:
        """``n`` pixels at unit 1, in this style's pixels."""
        return max(1, int(round(n * self.unit)))

    @property
    def font_scale(self) -> float:
        return 0.45 * self.unit

    @property
    def thickness(self) -> int:
        return max(1, int(round(self.unit)))

    @property
    def line_height(self) -> int:
        return self.px(18)

    @property
    def pad(self) -> int:
        return self.px(6)


@dataclass
class Figure:
    """A picture and where its parts are: ``regions`` maps a name to ``(x, y, w, h)``."""

    pixels: np.ndarray
    regions: dict[str, Box] = field(default_factory=dict)

    def crop(self, name: str) -> np.ndarray:
        """The pixels of one named region."""
        x, y, w, h = self.regions[name]
        return self.pixels[y:y + h, x:x + w]


# ---------------------------------------------------------------------------
# text


def ascii_text(text: str) -> str:
    """``text`` as the Hershey font can draw it (ASCII; anything else as ``?``)."""
    return "".join(c if " " <= c <= "~" else "?" for c in str(text))


def text_width(text: str, style: Style) -> int:
    import cv2

    (w, _h), _ = cv2.getTextSize(ascii_text(text), cv2.FONT_HERSHEY_SIMPLEX, style.font_scale,
                                 style.thickness)
    return int(w)


def draw_text(canvas: np.ndarray, text: str, x: int, y: int, style: Style,
              colour: tuple[int, int, int] = INK) -> None:
    """Write one line of text whose line box has its top left corner at ``(x, y)``."""
    import cv2

    (_, h), _ = cv2.getTextSize("Hg", cv2.FONT_HERSHEY_SIMPLEX, style.font_scale, style.thickness)
    baseline = y + (style.line_height + h) // 2 - style.px(1)
    cv2.putText(canvas, ascii_text(text), (int(x), int(baseline)), cv2.FONT_HERSHEY_SIMPLEX,
                style.font_scale, tuple(int(c) for c in colour), style.thickness, cv2.LINE_AA)


def wrap(text: str, width: int, style: Style) -> list[str]:
    """``text`` broken at spaces into lines no wider than ``width`` pixels
    (a single word that does not fit is shortened with ``...``)."""
    lines: list[str] = []
    for para in str(text).split("\n"):
        line = ""
        for word in para.split(" "):
            cand = word if not line else line + " " + word
            if text_width(cand, style) <= width or not line:
                line = cand
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return [shorten(s, width, style, keep="start") for s in lines]


def shorten(text: str, width: int, style: Style, keep: str = "end") -> str:
    """``text`` cut to ``width`` pixels with ``...``; ``keep="end"`` keeps its end
    (file names: the name matters more than the folders above it)."""
    if text_width(text, style) <= width:
        return text
    for n in range(len(text) - 1, 0, -1):
        cand = "..." + text[-n:] if keep == "end" else text[:n] + "..."
        if text_width(cand, style) <= width:
            return cand
    return "..."


def number(v: float, digits: int = 3) -> str:
    """A number as a key writes it: ``digits`` significant digits (integer digits are
    never dropped), no exponent between 1e-3 and 1e6, no trailing zeros."""
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    mag = math.floor(math.log10(abs(v)))
    if not -3 <= mag < 6:
        mant, exp = f"{v:.{digits - 1}e}".split("e")
        return f"{mant.rstrip('0').rstrip('.')}e{int(exp)}"
    s = f"{v:.{max(0, digits - 1 - mag)}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


# ---------------------------------------------------------------------------
# colours


def colormap(values: np.ndarray, name: str = "viridis") -> np.ndarray:
    """Values in [0, 1] (any shape) through an OpenCV colour map, as uint8 RGB."""
    import cv2

    maps = {"viridis": cv2.COLORMAP_VIRIDIS, "jet": cv2.COLORMAP_JET,
            "magma": cv2.COLORMAP_MAGMA, "gray": None}
    v = np.clip(np.nan_to_num(np.asarray(values, np.float32)), 0, 1)
    u8 = np.rint(v * 255).astype(np.uint8)
    if maps[name] is None:
        return np.repeat(u8[..., None], 3, axis=-1)
    shape = u8.shape
    rgb = cv2.cvtColor(cv2.applyColorMap(u8.reshape(-1, 1), maps[name]), cv2.COLOR_BGR2RGB)
    return rgb.reshape(shape + (3,))


def diverging_rgb(values: np.ndarray, peak: float | None = None) -> np.ndarray:
    """Colour a signed map: white at 0, red for positive, blue for negative.

    Parameters
    ----------
    values : ndarray
    peak : float, optional
        The value drawn as pure red (``-peak`` pure blue); default the largest
        absolute value.

    Returns
    -------
    picture : ``values.shape + (3,)`` ndarray of uint8
    """
    v = np.asarray(values, dtype=np.float32)
    if peak is None:
        peak = float(np.abs(v).max()) if v.size else 0.0
    v = v / peak if peak > 0 else np.zeros_like(v)
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgb = np.empty(v.shape + (3,), np.float32)
    rgb[..., 0] = 1.0 - neg
    rgb[..., 1] = 1.0 - pos - neg
    rgb[..., 2] = 1.0 - pos
    return np.rint(rgb * 255).astype(np.uint8)


def hue_picture(angle_deg: np.ndarray, strength: np.ndarray, period: float = 360.0,
                value: np.ndarray | None = None) -> np.ndarray:
    """Directions as colours, uint8 RGB.

    The hue goes once round the colour circle over ``period`` degrees (0 is
    red, then yellow, green, cyan, blue, magenta).  Without ``value``,
    ``strength`` (0..1) is the brightness over black; with ``value`` (0..1,
    e.g. a dimmed image), ``strength`` is the saturation and ``value`` the
    brightness, so that weak directions show the image in gray.
    """
    import cv2

    a = np.asarray(angle_deg, np.float64)
    s = np.clip(np.asarray(strength, np.float64), 0, 1)
    hsv = np.empty(a.shape + (3,), np.uint8)
    hsv[..., 0] = (np.rint(np.mod(a, period) * (180.0 / period)) % 180).astype(np.uint8)
    if value is None:
        hsv[..., 1] = 255
        hsv[..., 2] = np.rint(s * 255).astype(np.uint8)
    else:
        hsv[..., 1] = np.rint(s * 255).astype(np.uint8)
        hsv[..., 2] = np.rint(np.clip(value, 0, 1) * 255).astype(np.uint8)
    return cv2.cvtColor(hsv.reshape(-1, 1, 3), cv2.COLOR_HSV2RGB).reshape(hsv.shape)


def dim(image: np.ndarray, level: float = 0.4) -> np.ndarray:
    """The image as a dimmed gray underlay: luma times ``level``, uint8 RGB."""
    from .imageops import to_gray_uint8

    g = np.rint(to_gray_uint8(image).astype(np.float32) * level).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


# ---------------------------------------------------------------------------
# keys


def _paper(h: int, w: int) -> np.ndarray:
    out = np.empty((max(1, h), max(1, w), 3), np.uint8)
    out[:] = PAPER
    return out


def colour_bar(ramp: Callable[[np.ndarray], np.ndarray], lo: float, hi: float, label: str,
               style: Style, ticks: Sequence[float] | None = None,
               tick_labels: Sequence[str] | None = None, length: int | None = None) -> np.ndarray:
    """A horizontal colour bar: ``label`` above, the colours of ``lo .. hi`` and numbered ticks.

    Parameters
    ----------
    ramp : callable
        ``ramp(t)`` for ``t`` in [0, 1] (shape ``(n,)``) gives ``(n, 3)`` uint8 RGB
        (or ``(k, n, 3)``: ``k`` ramps drawn as stripes); ``t = 0`` is ``lo``,
        ``t = 1`` is ``hi``.
    label : str
        What the colours mean, with the unit.
    ticks : values to mark (default ``lo``, the middle, ``hi``); ``tick_labels``
        their texts (default the numbers).
    """
    import cv2

    length = length or style.px(160)
    thick = style.px(14)
    pad = style.pad
    if ticks is None:
        ticks = [lo, (lo + hi) / 2.0, hi]
    if tick_labels is None:
        tick_labels = [number(t) for t in ticks]
    lab_lines = wrap(label, max(length + 2 * pad, style.px(200)), style)
    tick_w = [text_width(s, style) for s in tick_labels]
    half = (max(tick_w) // 2) if tick_w else 0
    width = max(length + 2 * half, max(text_width(s, style) for s in lab_lines)) + 2 * pad
    x0 = pad + max(half, (width - 2 * pad - length) // 2)
    top = pad + len(lab_lines) * style.line_height
    height = top + thick + style.px(4) + style.line_height + pad
    out = _paper(height, width)
    for i, s in enumerate(lab_lines):
        draw_text(out, s, pad, pad + i * style.line_height, style)
    colours = np.asarray(ramp(np.linspace(0.0, 1.0, length)), np.uint8)
    stripes = colours.reshape(-1, length, 3)  # (length, 3): one ramp; (k, length, 3): k stripes
    edges = np.linspace(top, top + thick, len(stripes) + 1).round().astype(int)
    for k, stripe in enumerate(stripes):
        out[edges[k]:edges[k + 1], x0:x0 + length] = stripe[None, :, :]
    cv2.rectangle(out, (x0 - 1, top - 1), (x0 + length, top + thick), INK, 1)
    span = (hi - lo) if hi != lo else 1.0
    for t, s in zip(ticks, tick_labels):
        x = x0 + int(round((t - lo) / span * (length - 1)))
        cv2.line(out, (x, top + thick), (x, top + thick + style.px(3)), INK, style.thickness)
        tw = text_width(s, style)
        tx = min(max(x - tw // 2, 0), width - tw)
        draw_text(out, s, tx, top + thick + style.px(4), style)
    return out


def colour_wheel(colour_at: Callable[[np.ndarray, np.ndarray], np.ndarray], style: Style,
                 title: str, labels: dict[float, str], spokes: Sequence[float] = (),
                 note: str | None = None, diameter: int | None = None) -> np.ndarray:
    """A colour wheel key: the colour of each direction (and strength, from the centre
    out), with direction labels around it.

    Parameters
    ----------
    colour_at : callable
        ``colour_at(angle_deg, radius)`` with arrays of angles in image
        coordinates (0 = right, 90 = down) and radii in [0, 1] gives uint8 RGB.
    title : str
        Line above the wheel.
    labels : dict
        Angle (degrees) -> text written just outside the wheel.
    spokes : angles at which a thin line is drawn from the centre (bin edges).
    note : str, optional
        Line below the wheel (what the rim means).
    """
    import cv2

    d = diameter or style.px(88)
    r = (d - 1) / 2.0
    pad = style.pad
    lh = style.line_height
    side = max([text_width(s, style) for s in labels.values()] or [0]) + style.px(4)
    title_lines = wrap(title, max(d + 2 * side, style.px(160)), style)
    note_lines = wrap(note, max(d + 2 * side, style.px(160)), style) if note else []
    width = max(d + 2 * side, *(text_width(s, style) for s in title_lines + note_lines)) + 2 * pad
    top = pad + len(title_lines) * lh + lh  # a line for the label above the wheel
    height = top + d + lh + len(note_lines) * lh + pad
    out = _paper(height, width)
    for i, s in enumerate(title_lines):
        draw_text(out, s, pad, pad + i * lh, style)
    cx = width / 2.0
    yy, xx = np.mgrid[0:d, 0:d].astype(np.float64)
    dx, dy = xx - r, yy - r
    rad = np.hypot(dx, dy) / max(r, 1e-9)
    ang = np.degrees(np.arctan2(dy, dx))
    wheel = np.asarray(colour_at(ang, np.clip(rad, 0, 1)), np.uint8)
    inside = rad <= 1.0
    x0 = int(round(cx - r))
    region = out[top:top + d, x0:x0 + d]
    region[inside] = wheel[inside]
    shift = 4
    f = 1 << shift
    c = (int(round((x0 + r) * f)), int(round((top + r) * f)))
    for a in spokes:
        e = (int(round((x0 + r + r * math.cos(math.radians(a))) * f)),
             int(round((top + r + r * math.sin(math.radians(a))) * f)))
        cv2.line(out, c, e, FAINT, 1, cv2.LINE_AA, shift)
    cv2.circle(out, c, int(round(r * f)), INK, 1, cv2.LINE_AA, shift)
    for a, s in labels.items():
        ca, sa = math.cos(math.radians(a)), math.sin(math.radians(a))
        tw = text_width(s, style)
        px = x0 + r + (r + style.px(4)) * ca
        py = top + r + (r + style.px(2)) * sa
        tx = px - tw / 2.0 + ca * tw / 2.0          # left of the wheel: text ends at it
        ty = py - lh / 2.0 + sa * lh / 2.0          # above it: text sits on it
        draw_text(out, s, int(round(min(max(tx, 0), width - tw))), int(round(ty)), style)
    for i, s in enumerate(note_lines):
        draw_text(out, s, pad, top + d + lh + i * lh, style)
    return out


def legend(entries: Sequence[tuple[tuple[int, int, int], str]], style: Style,
           title: str | None = None, shape: str = "box", background: tuple[int, int, int] | None = None
           ) -> np.ndarray:
    """A legend: one row per entry, a swatch of its colour and its text.

    ``shape`` is ``box`` (a filled square), ``outline`` (a square's outline, as
    regions are drawn), ``circle`` (a ring, as keypoints are drawn) or ``line``;
    ``background`` fills the swatch's square first (the colour the marks are
    drawn on in the picture).
    """
    import cv2

    lh = style.line_height
    pad = style.pad
    sw = style.px(14)
    rows = ([title] if title else []) + [t for _, t in entries]
    width = 2 * pad + max([text_width(title, style)] if title else [0]
                          + [sw + style.px(6) + text_width(t, style) for _, t in entries])
    out = _paper(2 * pad + lh * len(rows), width)
    y = pad
    if title:
        draw_text(out, title, pad, y, style)
        y += lh
    for colour, text in entries:
        colour = tuple(int(c) for c in colour)
        sy = y + (lh - sw) // 2
        box = out[sy:sy + sw, pad:pad + sw]
        if background is not None:
            box[:] = background
        if shape == "box":
            box[:] = colour
            cv2.rectangle(out, (pad, sy), (pad + sw - 1, sy + sw - 1), INK, 1)
        elif shape == "outline":  # a box drawn as an outline, as regions are
            if background is None:
                box[:] = (60, 60, 60)
            cv2.rectangle(out, (pad + 2, sy + 2), (pad + sw - 3, sy + sw - 3), colour,
                          max(1, style.thickness), cv2.LINE_8)
        elif shape == "circle":
            cv2.circle(out, (pad + sw // 2, sy + sw // 2), sw // 2 - 1, colour,
                       max(1, style.thickness), cv2.LINE_AA)
        else:
            cv2.line(out, (pad, sy + sw // 2), (pad + sw - 1, sy + sw // 2), colour,
                     max(2, style.thickness + 1), cv2.LINE_AA)
        draw_text(out, text, pad + sw + style.px(6), y, style)
        y += lh
    return out


# ---------------------------------------------------------------------------
# layout


def with_caption(picture: np.ndarray, title: str | Sequence[str],
                 keys: Sequence[tuple[str, np.ndarray]] = (), style: Style | None = None,
                 regions: dict[str, Box] | None = None) -> Figure:
    """``picture`` at the top left, and below it on white the ``title`` (wrapped)
    and the ``keys`` side by side (wrapping to further rows).

    Returns a :class:`Figure` whose regions are ``picture``, ``caption`` (the
    whole band below), ``title`` and each key by its name (plus ``regions``
    of the picture, which keep their coordinates).
    """
    picture = np.ascontiguousarray(picture, dtype=np.uint8)
    if picture.ndim == 2:
        picture = np.repeat(picture[..., None], 3, axis=2)
    h, w = picture.shape[:2]
    style = style or Style.for_size(h, w)
    pad = style.pad
    limit = max(w, max([k.shape[1] for _, k in keys] or [0]) + 2 * pad, style.px(480))
    titles = [title] if isinstance(title, str) else list(title)
    lines = [s for t in titles for s in wrap(t, limit - 2 * pad, style)]
    # flow the keys into rows
    rows: list[list[tuple[str, np.ndarray]]] = [[]]
    x = pad
    for name, k in keys:
        if rows[-1] and x + k.shape[1] > limit - pad:
            rows.append([])
            x = pad
        rows[-1].append((name, k))
        x += k.shape[1] + pad
    rows = [r for r in rows if r]
    title_h = len(lines) * style.line_height
    keys_h = sum(max(k.shape[0] for _, k in r) for r in rows) + pad * len(rows)
    band_h = pad + title_h + keys_h + pad
    out = np.empty((h + band_h, limit, 3), np.uint8)
    out[:] = PAPER
    out[:h, :w] = picture
    found = dict(regions or {})
    found["picture"] = (0, 0, w, h)
    found["caption"] = (0, h, limit, band_h)
    y = h + pad
    found["title"] = (pad, y, limit - 2 * pad, title_h)
    for i, s in enumerate(lines):
        draw_text(out, s, pad, y + i * style.line_height, style)
    y += title_h + pad
    for r in rows:
        x = pad
        for name, k in r:
            kh, kw = k.shape[:2]
            out[y:y + kh, x:x + kw] = k
            found[name] = (x, y, kw, kh)
            x += kw + pad
        y += max(k.shape[0] for _, k in r) + pad
    return Figure(out, found)


def grid(tiles: Sequence[Sequence[np.ndarray]], style: Style,
         row_labels: Sequence[Sequence[str]] | None = None,
         col_labels: Sequence[str] | None = None, gap: int | None = None,
         heading: str | None = None, row_marks: Sequence[np.ndarray] | None = None,
         name: str = "tile") -> Figure:
    """Tiles in rows and columns on white, with column headers above and row
    labels (one or more lines each, and an optional small picture ``row_marks``)
    at the left.  Tiles of one row should share a height, of one column a width.

    Regions: ``{name} R C`` for each tile, ``{name} header C``, ``{name} row R``.
    """
    gap = style.px(4) if gap is None else gap
    lh = style.line_height
    nr = len(tiles)
    nc = max(len(r) for r in tiles) if nr else 0
    col_w = [max(r[c].shape[1] for r in tiles if c < len(r)) for c in range(nc)]
    row_h = [max(t.shape[0] for t in r) for r in tiles]
    for r in range(nr):  # a row is at least as tall as its label
        lines = len(row_labels[r]) if row_labels is not None else 0
        mark = row_marks[r].shape[0] + style.px(2) if row_marks is not None else 0
        row_h[r] = max(row_h[r], mark + lines * lh)
    label_w = 0
    if row_labels is not None:
        label_w = max(text_width(s, style) for lines in row_labels for s in (lines or [""]))
    if row_marks is not None:
        label_w = max(label_w, max(m.shape[1] for m in row_marks))
    left = label_w + 2 * gap if label_w else gap
    if col_labels:  # a column is at least as wide as its header's longest word
        col_w = [max(col_w[c], max(text_width(word, style) for word in str(s).split(" ")))
                 for c, s in enumerate(col_labels)]
    col_lines = [wrap(s, col_w[c], style) for c, s in enumerate(col_labels)] if col_labels else []
    col_h = max((len(x) for x in col_lines), default=0) * lh
    width = left + sum(col_w) + gap * nc
    head_lines = wrap(heading, width - 2 * gap, style) if heading else []
    top = gap + len(head_lines) * lh + col_h
    height = top + sum(row_h) + gap * nr
    out = _paper(height, width)
    found: dict[str, Box] = {}
    for i, s in enumerate(head_lines):
        draw_text(out, s, gap, gap + i * lh, style)
    xs = [left + sum(col_w[:c]) + gap * c for c in range(nc)]
    ys = [top + sum(row_h[:r]) + gap * r for r in range(nr)]
    for c, lines in enumerate(col_lines):
        y0 = top - col_h
        for i, s in enumerate(lines):
            tw = text_width(s, style)
            draw_text(out, s, xs[c] + max(0, (col_w[c] - tw) // 2), y0 + i * lh, style)
        found[f"{name} header {c}"] = (xs[c], y0, col_w[c], col_h)
    for r, row in enumerate(tiles):
        for c, t in enumerate(row):
            th, tw = t.shape[:2]
            x = xs[c] + (col_w[c] - tw) // 2
            out[ys[r]:ys[r] + th, x:x + tw] = t
            found[f"{name} {r} {c}"] = (x, ys[r], tw, th)
        if label_w:
            y = ys[r]
            if row_marks is not None:
                m = row_marks[r]
                out[y:y + m.shape[0], gap:gap + m.shape[1]] = m
                y += m.shape[0] + style.px(2)
            for i, s in enumerate(row_labels[r] if row_labels is not None else []):
                draw_text(out, s, gap, y + i * lh, style)
            found[f"{name} row {r}"] = (gap, ys[r], label_w, row_h[r])
    return Figure(out, found)


def stack(parts: Sequence[tuple[str, Figure]], gap: int = 0) -> Figure:
    """Figures one above the other on white, left-aligned; each figure's regions
    keep their names, prefixed with its name (``"kernels tile 0 1"``)."""
    width = max(f.pixels.shape[1] for _, f in parts)
    height = sum(f.pixels.shape[0] for _, f in parts) + gap * (len(parts) - 1)
    out = _paper(height, width)
    found: dict[str, Box] = {}
    y = 0
    for name, f in parts:
        h, w = f.pixels.shape[:2]
        out[y:y + h, :w] = f.pixels
        found[name] = (0, y, w, h)
        for k, (rx, ry, rw, rh) in f.regions.items():
            found[f"{name} {k}"] = (rx, ry + y, rw, rh)
        y += h + gap
    return Figure(out, found)


def tile_size(height: int, width: int, side: int) -> tuple[int, int]:
    """``(tile_height, tile_width)`` showing a ``height x width`` image in a tile whose
    longer side is ``side``; aspect ratios beyond 4:1 are squeezed to 4:1, so that a
    strip of an image still gets a tile one can see."""
    aspect = min(4.0, max(0.25, height / max(1, width)))
    if aspect <= 1:
        return max(1, int(round(side * aspect))), side
    return side, max(1, int(round(side / aspect)))


def fit(picture: np.ndarray, width: int, height: int | None = None) -> np.ndarray:
    """``picture`` scaled down (never up) to fit ``width`` (and ``height``), aspect kept."""
    import cv2

    h, w = picture.shape[:2]
    s = min(1.0, width / w, (height / h) if height else 1.0)
    if s >= 1.0:
        return picture
    size = (max(1, int(round(w * s))), max(1, int(round(h * s))))
    return cv2.resize(picture, size, interpolation=cv2.INTER_AREA)


#: Widest tile of a contact sheet, in pixels.
SHEET_TILE = 640


def contact_sheet(pictures: Sequence[np.ndarray], names: Sequence[str], *,
                  tile: int = SHEET_TILE, columns: int | None = None) -> Figure:
    """One tile per picture, each under a band with its name, in a grid.

    Pictures wider than ``tile`` are scaled down to it.  ``columns`` defaults
    to the number of pictures up to 3, then ``ceil(sqrt(n))`` up to 4.
    Regions: ``tile I`` (the picture) and ``label I`` (its name band).
    """
    n = len(pictures)
    if n == 0:
        raise ValueError("no pictures")
    cols = columns or (n if n <= 3 else min(4, math.ceil(math.sqrt(n))))
    tiles = [fit(np.ascontiguousarray(p, np.uint8), tile) for p in pictures]
    style = Style()
    gap = style.px(8)
    lh = style.line_height
    col_w = [max(t.shape[1] for t in tiles[c::cols]) for c in range(cols)]
    nrows = math.ceil(n / cols)
    row_h = [max(t.shape[0] for t in tiles[r * cols:(r + 1) * cols]) + lh for r in range(nrows)]
    width = gap + sum(col_w) + gap * cols
    height = gap + sum(row_h) + gap * nrows
    out = np.empty((height, width, 3), np.uint8)
    out[:] = SHEET
    found: dict[str, Box] = {}
    for i, (t, nm) in enumerate(zip(tiles, names)):
        r, c = divmod(i, cols)
        x = gap + sum(col_w[:c]) + gap * c
        y = gap + sum(row_h[:r]) + gap * r
        band = _paper(lh, col_w[c])
        draw_text(band, shorten(nm, col_w[c] - 2 * style.pad, style), style.pad, 0, style)
        out[y:y + lh, x:x + col_w[c]] = band
        found[f"label {i}"] = (x, y, col_w[c], lh)
        th, tw = t.shape[:2]
        out[y + lh:y + lh + th, x:x + tw] = t
        found[f"tile {i}"] = (x, y + lh, tw, th)
    return Figure(out, found)
