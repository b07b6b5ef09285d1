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

    ``featx show haar`` draws the regions found by a Viola–Jones cascade
    (``--show boxes``, see :mod:`featx.regions`) or the response map of the first
    selected template at the smallest scale (``--show response``: red positive,
    blue negative, white zero).
    """

    name = "haar"
    summary = "Haar-like features: detector-window features or grid-pooled template responses"

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
        show: str = param("boxes", "featx show: draw the regions a cascade finds (boxes) or the "
                                   "response map of the first type at the finest scale "
                                   "(response)", choices=("boxes", "response"), show_only=True)
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
        """Regions found by the cascade (``show=boxes``) or a response map (``show=response``).

        Returns
        -------
        picture : (H, W, 3) ndarray of uint8
        """
        if self.params.show == "boxes":
            from ..regions import Detector, build_detect_params, draw_boxes

            names = {f.name for f in dataclasses.fields(DetectParams)}
            values = {k: v for k, v in dataclasses.asdict(self.params).items() if k in names}
            boxes = Detector(build_detect_params(values)).detect(image)
            return draw_boxes(image, boxes)
        t, s = self.types[0], self.scales[0]
        m = self.response_maps(image)[(t, s)]
        return diverging_rgb(m)


def diverging_rgb(values: np.ndarray) -> np.ndarray:
    """Colour a signed map: white at 0, red for positive, blue for negative.

    Parameters
    ----------
    values : (H, W) ndarray

    Returns
    -------
    picture : (H, W, 3) ndarray of uint8
        Scaled by the largest absolute value.
    """
    v = np.asarray(values, dtype=np.float32)
    peak = float(np.abs(v).max()) if v.size else 0.0
    v = v / peak if peak > 0 else np.zeros_like(v)
    pos, neg = np.clip(v, 0, 1), np.clip(-v, 0, 1)
    rgb = np.empty(v.shape + (3,), np.float32)
    rgb[..., 0] = 1.0 - neg
    rgb[..., 1] = 1.0 - pos - neg
    rgb[..., 2] = 1.0 - pos
    return np.rint(rgb * 255).astype(np.uint8)
