"""Haar-like features (Viola–Jones rectangle features) from an integral image.

See :class:`Haar` (its docstring is what ``featx info haar`` shows).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ..errors import ParamError
from ..extractor import Extractor, OutputSpec, param
from ..regions import DetectParams

#: Feature types, in scikit-image's default order.
HAAR_TYPES = ("type-2-x", "type-2-y", "type-3-x", "type-3-y", "type-4")

#: Sign of each rectangle, as a (rows, cols) grid of cells: scikit-image's
#: convention (``sum(+) - sum(-)``).
_SIGNS = {
    "type-2-x": np.array([[-1, 1]]),
    "type-2-y": np.array([[-1], [1]]),
    "type-3-x": np.array([[-1, 1, -1]]),
    "type-3-y": np.array([[-1], [1], [-1]]),
    "type-4": np.array([[-1, 1], [1, -1]]),
}


def _same_as(cls: type, name: str):
    """A new dataclass field with the declaration of ``cls.name`` (declared once)."""
    f = cls.__dataclass_fields__[name]
    m = f.metadata
    return param(f.default, m["help"] + " (featx show --show boxes)", min=m["min"],
                 max=m["max"], choices=m["choices"], metavar=m["metavar"], show_only=True)


def parse_types(text: str) -> tuple[str, ...]:
    """``"all"`` or a comma-separated list of feature types -> tuple of type names.

    Short spellings ``2x, 2y, 3x, 3y, 4`` are accepted.  Raises
    :class:`ParamError` for an unknown or repeated type.
    """
    s = str(text).strip().lower()
    if s in ("", "all"):
        return HAAR_TYPES
    out = []
    for part in s.split(","):
        t = part.strip()
        if t and not t.startswith("type-"):
            t = "type-" + "-".join(t)  # 2x -> type-2-x, 4 -> type-4
        if t not in HAAR_TYPES:
            raise ParamError(f"haar: unknown feature type {part.strip()!r} in --types",
                             "valid: all, or a comma-separated list of " + ", ".join(HAAR_TYPES))
        if t in out:
            raise ParamError(f"haar: feature type {t!r} given twice in --types",
                             "list each type once")
        out.append(t)
    return tuple(out)


def window_layout(height: int, width: int, feature_type: str) -> np.ndarray:
    """Every feature of one type in a ``height × width`` window, in scikit-image's order.

    Parameters
    ----------
    height, width : int
        Window size in pixels.
    feature_type : str
        One of :data:`HAAR_TYPES`.

    Returns
    -------
    boxes : (n, 4) ndarray of int32
        ``row, col, cell_height, cell_width`` of each feature: its top-left
        pixel and the size of one of its rectangles.  The feature covers
        ``ny * cell_height`` rows and ``nx * cell_width`` columns, where
        ``(ny, nx)`` is the rectangle grid of the type ((1, 2) for
        ``type-2-x``, (2, 1) for ``type-2-y``, (1, 3), (3, 1), (2, 2)).
        Order: row, then col, then cell height, then cell width (the last
        varies fastest), as :func:`skimage.feature.haar_like_feature_coord`.
    """
    ny, nx = _SIGNS[feature_type].shape
    y, x, dy, dx = np.meshgrid(np.arange(height), np.arange(width), np.arange(1, height + 1),
                               np.arange(1, width + 1), indexing="ij", sparse=True)
    ok = (y + ny * dy <= height) & (x + nx * dx <= width)
    rows, cols, hs, ws = (np.broadcast_to(a, ok.shape)[ok] for a in (y, x, dy, dx))
    return np.stack([rows, cols, hs, ws], axis=1).astype(np.int32)


def _corner_weights(signs: np.ndarray) -> np.ndarray:
    """Weights of the ``(ny + 1, nx + 1)`` lattice corners in the integral image."""
    sp = np.pad(signs.astype(np.float64), 1)
    return sp[:-1, :-1] - sp[:-1, 1:] - sp[1:, :-1] + sp[1:, 1:]


@dataclass(frozen=True)
class _WindowPlan:
    """Gather indices and weights that evaluate one type's features from an integral image."""

    index: np.ndarray    # (K, n) int32 flat indices into the (H+1, W+1) integral image
    weights: np.ndarray  # (K,) float64


def _window_plan(height: int, width: int, feature_type: str) -> _WindowPlan:
    boxes = window_layout(height, width, feature_type).astype(np.int64)
    w = _corner_weights(_SIGNS[feature_type])
    stride = width + 1
    rows_idx, cols_idx, weights = [], [], []
    for p in range(w.shape[0]):
        for q in range(w.shape[1]):
            if w[p, q] != 0:
                rows_idx.append(boxes[:, 0] + p * boxes[:, 2])
                cols_idx.append(boxes[:, 1] + q * boxes[:, 3])
                weights.append(w[p, q])
    index = (np.stack(rows_idx) * stride + np.stack(cols_idx)).astype(np.int32)
    return _WindowPlan(np.ascontiguousarray(index), np.array(weights))


# Grid-mode templates: weights per cell, mean(+) - mean(-) once divided by s*s.
_GRID_WEIGHTS = {t: np.where(s > 0, 1.0 / (s > 0).sum(), -1.0 / (s < 0).sum())
                 for t, s in _SIGNS.items()}


class Haar(Extractor):
    """Haar-like features: Viola–Jones window features or grid-pooled template responses.

    Two modes:

    ``window`` (the classic detector features)
        The image is converted to 8-bit luma and resized to a fixed detection
        window (default 24×24, ``--fit stretch`` or ``crop``).  Every Haar-like
        feature of the chosen types that fits in the window is evaluated: the
        full set for 24×24 has 162,336 values.  Values, order and sign are those
        of :func:`skimage.feature.haar_like_feature` on the integral image of the
        same window (raw sums of 0–255 pixel values, so integers stored exactly
        in float32), in the order of
        :func:`skimage.feature.haar_like_feature_coord` for the types in the
        order given.  :meth:`Haar.window_coords` maps a feature index to its
        rectangles.

    ``grid`` (a fixed-length descriptor for whole images of any size)
        The five templates at ``n_scales`` scales (rectangle sides
        ``min_scale · 2^k`` pixels) are evaluated at every pixel of the
        full-resolution luma image (0–255 scale, borders reflected), and each
        response map is pooled over a ``ROWSxCOLS`` grid of cells: the mean of
        the response (``--pool mean``) or of its absolute value (``--pool abs``).

    The five templates (``+`` is the positive part, ``-`` the negative part):

    =============  =====================  =====================================
    type           layout (one rectangle  meaning
                   per symbol)
    =============  =====================  =====================================
    ``type-2-x``   ``- +``                horizontal change (vertical edges)
    ``type-2-y``   ``-`` over ``+``       vertical change (horizontal edges)
    ``type-3-x``   ``- + -``              vertical line / bar
    ``type-3-y``   ``-`` ``+`` ``-``      horizontal line / bar
                   stacked
    ``type-4``     ``- +`` over ``+ -``   diagonal / checkerboard
    =============  =====================  =====================================

    In window mode a feature is ``sum(+) - sum(-)`` over the rectangles, as in
    scikit-image (so three-rectangle features are not zero-mean).  In grid
    mode a response is ``mean(+) - mean(-)`` (0–255 scale): every template is
    zero-mean, so a flat region responds 0 and an ideal step edge of height
    ``Δ`` responds ``±Δ`` to the two-rectangle template split on it.  The
    response at pixel ``(y, x)`` is that of the template whose top-left corner
    is at ``(y - th // 2, x - tw // 2)`` for a template of ``th × tw`` pixels,
    so the split of a two-rectangle template lies between pixels ``x - 1`` and
    ``x``.

    ``featx show haar`` draws what ``extract`` computes (``--show features``, the
    default: in grid mode each template and scale pooled over the cells, the
    numbers written in the cells; in window mode the window with each type's
    strongest feature), the response map of the first selected template at the
    smallest scale (``--show response``: red positive, blue negative, white
    zero), or the regions a Viola–Jones cascade finds (``--show boxes``, see
    :mod:`featx.regions`).  ``show`` and the cascade options do not change the
    numbers (they are ``runtime_params``).
    """

    name = "haar"
    #: signed rectangle differences: Euclidean
    neighbor_metric = "l2"
    summary = "Haar-like features: detector-window features or grid-pooled template responses"
    #: What ``featx show`` draws does not change the numbers: an output continued with
    #: other values of these (or made when ``show`` defaulted to boxes) is the same.
    runtime_params = ("show", "cascade", "scale_factor", "min_neighbors", "min_size")

    @dataclass(frozen=True)
    class Params:
        mode: str = param("grid", "window: every Haar-like feature of a fixed detection window "
                                  "(as skimage.feature.haar_like_feature); grid: template "
                                  "responses at several scales pooled over a grid of cells",
                          choices=("grid", "window"))
        types: str = param("all", "feature types: all, or a comma-separated list of type-2-x, "
                                  "type-2-y, type-3-x, type-3-y, type-4 (short: 2x,2y,3x,3y,4); "
                                  "features are ordered by type in the order given",
                           metavar="all|TYPE,...")
        window: tuple[int, int] = param((24, 24), "window mode: detection window ROWSxCOLS the "
                                                  "image is resized to", min=2, max=40)
        fit: str = param("stretch", "window mode: how the image is resized to the window "
                                    "(stretch: each axis; crop: keep the aspect, cut the centre)",
                         choices=("stretch", "crop"))
        grid: tuple[int, int] = param((4, 4), "grid mode: cells ROWSxCOLS the response maps are "
                                              "pooled over", min=1, max=64)
        min_scale: int = param(4, "grid mode: rectangle side in pixels at the finest scale",
                               min=1, max=512)
        n_scales: int = param(3, "grid mode: number of scales (the rectangle side doubles at "
                                 "each)", min=1, max=8)
        pool: str = param("abs", "grid mode: pool the mean of each response map (mean) or of "
                                 "its absolute value (abs) per cell", choices=("abs", "mean"))
        show: str = param("features", "featx show: draw what extract computes (features), the "
                                      "response map of the first type at the finest scale "
                                      "(response), or the regions a cascade finds (boxes)",
                          choices=("features", "response", "boxes"), show_only=True)
        cascade: str = _same_as(DetectParams, "cascade")
        scale_factor: float = _same_as(DetectParams, "scale_factor")
        min_neighbors: int = _same_as(DetectParams, "min_neighbors")
        min_size: int = _same_as(DetectParams, "min_size")

        def validate(self) -> None:
            types = parse_types(self.types)
            if self.mode == "window":
                rows, cols = self.window
                for t in types:
                    ny, nx = _SIGNS[t].shape
                    if rows < ny or cols < nx:
                        raise ParamError(f"haar: a {rows}x{cols} window holds no {t} feature",
                                         f"{t} needs a window of at least {ny}x{nx}")
            largest = self.min_scale * 2 ** (self.n_scales - 1)
            if self.mode == "grid" and largest > 1024:
                raise ParamError(f"haar: the largest scale, --min-scale {self.min_scale} x "
                                 f"2^(--n-scales {self.n_scales} - 1) = {largest} px, is too big",
                                 "keep min_scale * 2^(n_scales - 1) <= 1024")

    def __init__(self, params=None):
        super().__init__(params)
        self.types = parse_types(self.params.types)
        self._plans: list[_WindowPlan] | None = None

    # -- sizes -------------------------------------------------------------

    @property
    def scales(self) -> tuple[int, ...]:
        """Rectangle sides (pixels) of the grid-mode scales."""
        return tuple(self.params.min_scale * 2 ** k for k in range(self.params.n_scales))

    def _window_counts(self) -> list[int]:
        h, w = self.params.window
        counts = []
        for t in self.types:
            ny, nx = _SIGNS[t].shape
            # positions x sizes that fit, per axis: sum over d of (L - n*d + 1)
            cy = sum(h - ny * d + 1 for d in range(1, h // ny + 1))
            cx = sum(w - nx * d + 1 for d in range(1, w // nx + 1))
            counts.append(cy * cx)
        return counts

    def output_spec(self, height: int, width: int) -> OutputSpec:
        if self.params.mode == "window":
            return OutputSpec("vector", (sum(self._window_counts()),))
        rows, cols = self.params.grid
        names = tuple(f"{t}_s{s}_r{r}c{c}" for t in self.types for s in self.scales
                      for r in range(rows) for c in range(cols))
        return OutputSpec("vector", (len(names),), columns=names)

    # -- window mode -----------------------------------------------------

    def window_coords(self) -> tuple[np.ndarray, np.ndarray]:
        """What each window-mode feature is.

        Returns
        -------
        feature_type : (n_features,) ndarray of str
            The type of each feature.
        boxes : (n_features, 4) ndarray of int32
            ``row, col, cell_height, cell_width`` in the window (see
            :func:`window_layout`).
        """
        h, w = self.params.window
        layouts = [window_layout(h, w, t) for t in self.types]
        kinds = np.concatenate([np.full(len(b), t) for t, b in zip(self.types, layouts)])
        return kinds, np.concatenate(layouts)

    def _window_image(self, image: np.ndarray) -> np.ndarray:
        from ..imageops import resize, to_gray_uint8

        h, w = self.params.window
        return resize(to_gray_uint8(image), w, h, mode=self.params.fit)

    def window_features(self, window: np.ndarray) -> np.ndarray:
        """Window-mode features of a window that already has the window's size.

        Parameters
        ----------
        window : (H, W) ndarray
            Pixel values (uint8 for exact integer results); ``(H, W)`` must
            equal the ``window`` parameter.

        Returns
        -------
        features : (n_features,) ndarray of float32
        """
        import cv2

        h, w = self.params.window
        if window.shape != (h, w):
            raise ValueError(f"window must be {h}x{w}, got {window.shape}")
        if self._plans is None:
            self._plans = [_window_plan(h, w, t) for t in self.types]
        src = window if window.dtype in (np.uint8, np.float32, np.float64) \
            else window.astype(np.float64)
        ii = cv2.integral(src, sdepth=cv2.CV_64F).ravel()
        out = np.empty(sum(p.index.shape[1] for p in self._plans), np.float32)
        start = 0
        for plan in self._plans:
            n = plan.index.shape[1]
            out[start:start + n] = plan.weights @ ii[plan.index]
            start += n
        return out

    # -- grid mode -------------------------------------------------------

    def response_maps(self, image: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
        """Grid-mode template responses at every pixel.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray of uint8 or uint16

        Returns
        -------
        maps : dict mapping (type, scale) to an (H, W) ndarray of float32
            ``mean(+) - mean(-)`` of the template centred on each pixel
            (0–255 scale, image borders reflected), for the selected types and
            :attr:`scales`.
        """
        from ..imageops import to_gray_float32

        return self._maps(to_gray_float32(image))

    def _maps(self, gray: np.ndarray) -> dict[tuple[str, int], np.ndarray]:
        import cv2

        h, w = gray.shape
        pad = 3 * max(self.scales)
        padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        ii = cv2.integral(padded, sdepth=cv2.CV_64F)
        maps = {}
        for s in self.scales:
            # box[i, j] = sum of padded[i:i+s, j:j+s]
            box = (ii[s:, s:] - ii[:-s, s:] - ii[s:, :-s] + ii[:-s, :-s]).astype(np.float32)
            box *= np.float32(1.0 / (s * s))
            for t in self.types:
                wts = _GRID_WEIGHTS[t]
                ny, nx = wts.shape
                oy, ox = pad - (ny * s) // 2, pad - (nx * s) // 2
                acc = np.zeros((h, w), np.float32)
                for p in range(ny):
                    for q in range(nx):
                        y0, x0 = oy + p * s, ox + q * s
                        acc += np.float32(wts[p, q]) * box[y0:y0 + h, x0:x0 + w]
                maps[(t, s)] = acc
        return maps

    def _grid_features(self, image: np.ndarray) -> np.ndarray:
        import cv2

        from ..imageops import to_gray_float32

        gray = to_gray_float32(image)
        rows, cols = self.params.grid
        h, w = gray.shape
        if h < rows or w < cols:  # every cell needs at least one pixel
            gray = cv2.resize(gray, (max(w, cols), max(h, rows)), interpolation=cv2.INTER_NEAREST)
            h, w = gray.shape
        ys = np.rint(np.linspace(0, h, rows + 1)).astype(np.intp)
        xs = np.rint(np.linspace(0, w, cols + 1)).astype(np.intp)
        area = np.outer(np.diff(ys), np.diff(xs)).astype(np.float64)
        maps = self._maps(gray)
        out = []
        for t in self.types:
            for s in self.scales:
                m = maps[(t, s)]
                if self.params.pool == "abs":
                    m = np.abs(m)
                ii = cv2.integral(m, sdepth=cv2.CV_64F)
                sums = ii[np.ix_(ys[1:], xs[1:])] - ii[np.ix_(ys[:-1], xs[1:])] \
                    - ii[np.ix_(ys[1:], xs[:-1])] + ii[np.ix_(ys[:-1], xs[:-1])]
                out.append((sums / area).ravel())
        return np.concatenate(out).astype(np.float32)

    # -- the contract ----------------------------------------------------

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Haar-like features of one image.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray of uint8 or uint16

        Returns
        -------
        features : (D,) ndarray of float32
            Window mode: ``D`` = number of features of the selected types in
            the window (162,336 for all types in 24×24).  Grid mode:
            ``D = n_types * n_scales * rows * cols``, ordered by type, scale,
            cell row, cell column (see ``output_spec(...).columns``).
        """
        if self.params.mode == "window":
            return self.window_features(self._window_image(image))
        return self._grid_features(image)

    def working_memory(self, height: int, width: int) -> int:
        """Grid mode keeps one float32 response map per type and scale, over the image
        padded by three times the largest template (measured 93 bytes per pixel with the
        defaults, 139 with 5 scales, on a 2000x1500 photo); window mode works on the
        window only."""
        if self.params.mode == "window":
            return int(8 * height * width)
        pad = 3 * max(self.scales)
        return int((4 * len(self.types) * len(self.scales) + 48) * (height + 2 * pad) * (width + 2 * pad))

    def render(self, image: np.ndarray) -> np.ndarray:
        """The picture ``featx show haar`` draws (see :meth:`figure`)."""
        return self.figure(image).pixels

    def figure(self, image: np.ndarray):
        """A labelled picture, with its keys, of what ``show`` asks for.

        ``show=features`` (default): what :meth:`extract` computes.  Grid mode:
        one tile per type (rows) and scale (columns), the image dimmed with
        each cell coloured by its pooled value — the vector's numbers, also
        written in the cells where they fit — on one colour scale for all
        tiles.  Window mode: the detection window the image is reduced to,
        enlarged, once per type, with the type's strongest feature drawn on it.
        ``show=response``: the response map of the first type at the finest
        scale, red positive, blue negative, white zero.  ``show=boxes``: the
        regions a cascade finds (``featx detect``; not the haar features).

        Returns
        -------
        figure : :class:`featx.picture.Figure`
            Regions ``picture``, ``caption``, the keys by name, and the tiles
            (``tile R C``) of the features picture.
        """
        if self.params.show == "boxes":
            return self._boxes_figure(image)
        if self.params.show == "response":
            return self._response_figure(image)
        if self.params.mode == "window":
            return self._window_figure(image)
        return self._grid_figure(image)

    def template_glyph(self, feature_type: str, cell: int) -> np.ndarray:
        """The layout of a template as a small picture: ``+`` rectangles white,
        ``-`` black, ``cell`` pixels each, on a gray frame (uint8 RGB)."""
        signs = _SIGNS[feature_type]
        ny, nx = signs.shape
        out = np.full((ny * cell + 2, nx * cell + 2, 3), 128, np.uint8)
        for r in range(ny):
            for c in range(nx):
                out[1 + r * cell:1 + (r + 1) * cell, 1 + c * cell:1 + (c + 1) * cell] = \
                    255 if signs[r, c] > 0 else 0
        return out

    def _template_key(self, feature_type: str, style):
        from .. import picture as pic

        mark = self.template_glyph(feature_type, style.px(12))
        return pic.grid([[mark]], style, row_labels=[[feature_type]],
                        heading="template: white = +, black = -", gap=style.px(4)).pixels

    def _boxes_figure(self, image: np.ndarray):
        from .. import picture as pic
        from ..regions import Detector, build_detect_params, draw_boxes

        names = {f.name for f in dataclasses.fields(DetectParams)}
        values = {k: v for k, v in dataclasses.asdict(self.params).items() if k in names}
        boxes = Detector(build_detect_params(values)).detect(image)
        out = draw_boxes(image, boxes)
        h, w = out.shape[:2]
        style = pic.Style.for_size(h, w)
        leg = pic.legend([((0, 255, 0), f"a region found ({len(boxes)})")], style, shape="outline")
        title = (f"haar --show boxes: the regions the Viola-Jones cascade '{self.params.cascade}' "
                 "finds (as featx detect writes them; not the haar features: --show features)")
        return pic.with_caption(out, title, [("legend", leg)], style)

    def _response_figure(self, image: np.ndarray):
        from .. import picture as pic

        t, s = self.types[0], self.scales[0]
        m = self.response_maps(image)[(t, s)]
        peak = float(np.abs(m).max()) if m.size else 0.0
        h, w = m.shape
        style = pic.Style.for_size(h, w)
        bar = pic.colour_bar(lambda x: pic.diverging_rgb(2 * x - 1), -peak, peak,
                             "response (gray levels)", style)
        title = (f"haar --show response: the {t} template with {s} px rectangles at every pixel, "
                 "mean(+) - mean(-) in gray levels (0-255 scale): red where the + part is "
                 "brighter, blue where the - part is; the features pool such maps over cells")
        return pic.with_caption(pic.diverging_rgb(m, peak), title,
                                [("scale", bar), ("template", self._template_key(t, style))], style)

    def _grid_figure(self, image: np.ndarray):
        import cv2

        from .. import picture as pic

        p = self.params
        rows, cols = p.grid
        vec = self._grid_features(image).reshape(len(self.types), len(self.scales), rows, cols)
        h, w = image.shape[:2]
        style = pic.Style()
        th, tw = pic.tile_size(h, w, max(96, min(200, 600 // len(self.scales))))
        base = cv2.resize(pic.dim(image, 0.7), (tw, th), interpolation=cv2.INTER_AREA).astype(np.float32)
        signed = p.pool == "mean"
        peak = float(np.abs(vec).max()) if vec.size else 0.0
        if signed:
            def colour(v):
                return pic.diverging_rgb(v, peak)
        else:
            def colour(v):
                return pic.colormap(v / peak if peak > 0 else v, "viridis")
        ys = np.rint(np.linspace(0, th, rows + 1)).astype(int)
        xs = np.rint(np.linspace(0, tw, cols + 1)).astype(int)
        fits = min(np.diff(xs).min(), np.diff(ys).min() * 3) >= pic.text_width("-00.0", style) + 4
        tiles = []
        for ti in range(len(self.types)):
            row = []
            for si in range(len(self.scales)):
                v = vec[ti, si]
                cell = colour(v).astype(np.float32)
                big = np.repeat(np.repeat(cell, np.diff(ys), axis=0), np.diff(xs), axis=1)
                tile = np.rint(0.4 * base + 0.6 * big).astype(np.uint8)
                for y in ys[1:-1]:
                    tile[y, :] = 255
                for x in xs[1:-1]:
                    tile[:, x] = 255
                if fits:
                    for r in range(rows):
                        for c in range(cols):
                            txt = pic.number(round(float(v[r, c]), 2), 3)
                            rgb = big[ys[r], xs[c]]
                            ink = (0, 0, 0) if rgb @ np.array([0.299, 0.587, 0.114]) > 140 else (255, 255, 255)
                            tx = xs[c] + (xs[c + 1] - xs[c] - pic.text_width(txt, style)) // 2
                            ty = ys[r] + (ys[r + 1] - ys[r] - style.line_height) // 2
                            pic.draw_text(tile, txt, tx, ty, style, ink)
                row.append(tile)
            tiles.append(row)
        marks = [self.template_glyph(t, style.px(8)) for t in self.types]
        body = pic.grid(tiles, style, row_labels=[[t] for t in self.types], row_marks=marks,
                        col_labels=[f"{s} px" for s in self.scales],
                        heading="template (rows; white = +, black = -) x rectangle side (columns)")
        what = "mean response" if signed else "mean |response|"
        if signed:
            bar = pic.colour_bar(lambda x: pic.diverging_rgb(2 * x - 1, 1.0), -peak, peak,
                                 f"{what} per cell (gray levels)", style)
        else:
            bar = pic.colour_bar(lambda x: pic.colormap(x, "viridis"), 0.0, peak,
                                 f"{what} per cell (gray levels)", style)
        title = (f"haar (grid mode): each template's response mean(+) - mean(-) at every pixel, "
                 f"{what} over {rows}x{cols} cells = the {vec.size} features (over the image dimmed)"
                 + ("; the numbers are the features" if fits else ""))
        return pic.with_caption(body.pixels, title, [("scale", bar)], style, regions=body.regions)

    def _window_figure(self, image: np.ndarray):
        import cv2

        from .. import picture as pic

        win = self._window_image(image)
        feats = self.window_features(win)
        kinds, boxes = self.window_coords()
        wh, ww = self.params.window
        style = pic.Style()
        zoom = max(1, 192 // max(wh, ww))
        big = cv2.resize(win, (ww * zoom, wh * zoom), interpolation=cv2.INTER_NEAREST)
        tiles, heads = [], []
        for t in self.types:
            idx = np.flatnonzero(kinds == t)
            k = idx[int(np.argmax(np.abs(feats[idx])))]
            r, c, ch, cw = (int(v) for v in boxes[k])
            tile = np.repeat(big[..., None], 3, axis=2).astype(np.float32)
            signs = _SIGNS[t]
            for a in range(signs.shape[0]):
                for b in range(signs.shape[1]):
                    y0, x0 = (r + a * ch) * zoom, (c + b * cw) * zoom
                    y1, x1 = y0 + ch * zoom, x0 + cw * zoom
                    tint = np.array((255, 60, 60) if signs[a, b] > 0 else (60, 110, 255), np.float32)
                    tile[y0:y1, x0:x1] = 0.5 * tile[y0:y1, x0:x1] + 0.5 * tint
            tile = np.rint(tile).astype(np.uint8)
            cv2.rectangle(tile, (c * zoom, r * zoom),
                          ((c + cw * signs.shape[1]) * zoom - 1, (r + ch * signs.shape[0]) * zoom - 1),
                          (255, 255, 0), 1)
            tiles.append(tile)
            heads.append(f"{t}: {len(idx)} features; strongest {pic.number(float(feats[k]), 4)}")
        body = pic.grid([tiles], style, col_labels=heads,
                        heading=f"the {wh}x{ww} window the image is reduced to ({self.params.fit}), "
                                f"x{zoom}, with each type's strongest feature")
        leg = pic.legend([((255, 60, 60), "+ rectangles"), ((60, 110, 255), "- rectangles"),
                          ((255, 255, 0), "the feature's extent")], style)
        title = (f"haar (window mode): every Haar-like feature of the {wh}x{ww} window, "
                 f"sum(+) - sum(-) of 0-255 pixel values: {feats.size} features")
        return pic.with_caption(body.pixels, title, [("legend", leg)], style, regions=body.regions)
