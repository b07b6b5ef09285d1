"""Dense optical flow between consecutive frames: HOF, MBH and the raw field.

``flow`` is a *temporal* extractor: the engine calls :meth:`Flow.reset`
at the start of each sequence (a video, a frame folder, an image pair) and
then :meth:`Flow.extract` on each sampled frame in order.  The row of frame
``t`` describes the motion from the previous sampled frame ``t-1`` to frame
``t``.

Conventions
-----------
* A flow field is float32 ``(H, W, 2)``: ``(dx, dy)`` in pixels, ``x`` to
  the right and ``y`` down, defined on the previous frame's pixel grid:
  the content at ``(x, y)`` in frame ``t-1`` is at ``(x + dx, y + dy)`` in
  frame ``t``.
* Directions are angles ``atan2(dy, dx)`` in image coordinates: 0° is
  motion to the right, 90° is motion **down**, 180° left, 270° up.  With
  ``bins`` orientation bins, bin ``k`` is centred on ``k * 360° / bins``
  and a direction between two centres is shared linearly between them.
* All computations use the frame's luma as uint8 (BT.601, see
  :mod:`featx.imageops`).

Methods
-------
``dis``
    OpenCV's Dense Inverse Search (Kroeger et al., ECCV 2016) with its
    presets ``ultrafast``, ``fast`` (default) and ``medium``.  ≈4 ms for a
    640×480 pair with ``fast`` on one core.
``farneback``
    OpenCV's polynomial-expansion flow (Farnebäck, SCIA 2003); its
    parameters are the ``fb_*`` options.  ≈40 ms for 640×480.
``tvl1``
    TV-L1 (Zach, Pock & Bischof 2007; Wedel et al. 2009) from
    scikit-image (``skimage.registration.optical_flow_tvl1``).  OpenCV's
    TV-L1 lives in the contrib module ``cv2.optflow``, which the
    ``opencv-python-headless`` wheel does not ship.  Accurate but slow:
    ≈1.2 s for a 512×512 pair.

Descriptor (``result=descriptor``)
----------------------------------
A float32 vector, its length fixed by the parameters (see
:meth:`Flow.output_spec` and the column names):

1. **HOF**, a histogram of optical flow in each cell of a ``grid``
   (ROWS×COLS) over the frame: ``bins`` orientation bins weighted by the
   flow magnitude, plus a *still* bin that counts the pixels moving less
   than ``threshold`` pixels per frame (they add nothing to the
   orientation bins).  Columns ``hof_r{r}c{c}_b{k}``, ``hof_r{r}c{c}_still``.
2. **MBH** (``mbh=true``), motion boundary histograms (Dalal, Triggs &
   Schmid, ECCV 2006): for each flow component, the histogram of its
   spatial gradient's orientation weighted by the gradient magnitude, in
   the same cells and bins.  Columns ``mbhx_*`` (from ``dx``), ``mbhy_*``.
   The gradient is the 3×3 Sobel of the sampled field (see ``step``)
   divided by ``8 * step``: change of flow per pixel of the frame.
3. **Statistics** over the frame: ``mean_dx``, ``mean_dy`` (pixels per
   frame), ``mag_mean`` and the magnitude percentiles ``mag_p50``,
   ``mag_p90``, ``mag_p99``.

Each cell's histogram is normalised by ``norm``: ``l1`` (sums to 1; the
default), ``l2`` (unit length) or ``none`` (divided by the cell's pixel
count: orientation bins in pixels per frame per pixel, the still bin the
fraction of still pixels).  MBH cells are normalised the same way.

Histograms and statistics are computed on every ``step``-th pixel in each
direction (centres of ``step``×``step`` blocks); the flow is estimated at
full resolution.  The default ``step=4`` matches the 4-pixel patch stride
on which DIS estimates flow and keeps the descriptor at a few percent of
the flow's own cost; ``step=1`` uses every pixel.

First frame
-----------
The first frame of a sequence has no previous frame.  ``first=zeros``
(default) gives it an all-zero row (an all-zero field for
``result=field``); no real row is all zero, since every cell has either
motion or still pixels.  ``first=drop`` makes :meth:`Flow.extract` return
``None`` for it, and the engine writes no row.

Picture
-------
:meth:`Flow.render_pair` (and :meth:`Flow.render` after a previous frame)
draws the flow on the first frame (in gray) with the usual colour wheel: hue
is the direction (as above), colour strength the magnitude relative to its
99th percentile, with optional arrows; below it a colour-wheel key and a
speed scale in pixels per frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import FeatxError, InputError, ParamError, opencv_message
from ..extractor import Extractor, OutputSpec, param
from ..imageops import to_gray_uint8

_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}   # cv2.DISOPTICAL_FLOW_PRESET_*
_PERCENTILES = (50, 90, 99)
_STATS = ("mean_dx", "mean_dy", "mag_mean") + tuple(f"mag_p{p}" for p in _PERCENTILES)


def _percentiles(values: np.ndarray, qs: tuple) -> list[float]:
    """Percentiles with linear interpolation between order statistics
    (numpy's default method).  One full sort: for a few values it is several
    times faster than ``np.partition`` with several ``kth``."""
    n = values.size
    ordered = np.sort(values, kind="quicksort")
    out = []
    for q in qs:
        r = q / 100.0 * (n - 1)
        i = int(math.floor(r))
        j = min(i + 1, n - 1)
        a, b = float(ordered[i]), float(ordered[j])
        out.append(a + (b - a) * (r - i))
    return out


class Flow(Extractor):
    """Dense optical flow between consecutive frames.

    Per frame: a histogram of optical flow (HOF) over a spatial grid with a
    no-motion bin, optional motion boundary histograms (MBH), and global
    statistics (mean flow, magnitude mean and percentiles) — or the raw
    ``(H, W, 2)`` float32 flow field with ``--result field``.  Methods: DIS
    (OpenCV presets), Farneback, TV-L1 (scikit-image).  Directions are in
    image coordinates (0° right, 90° down).  The first frame of each
    sequence has no previous frame: an all-zero row (``--first zeros``) or
    no row (``--first drop``).
    """

    name = "flow"
    #: signed flow statistics: Euclidean
    neighbor_metric = "l2"
    summary = "dense optical flow: HOF/MBH descriptors or the raw flow field"
    temporal = True
    renders_pairs = True

    @dataclass(frozen=True)
    class Params:
        method: str = param("dis", "flow algorithm: dis (fast), farneback, tvl1 (scikit-image, slow)",
                            choices=("dis", "farneback", "tvl1"))
        preset: str = param("fast", "DIS preset (method dis)", choices=tuple(_DIS_PRESETS))
        result: str = param("descriptor", "descriptor: HOF (+MBH) and statistics per frame; "
                            "field: the raw (H, W, 2) flow (dense output, npy-dir)",
                            choices=("descriptor", "field"))
        first: str = param("zeros", "row of a sequence's first frame, which has no previous frame: "
                           "zeros (all-zero row) or drop (no row)", choices=("zeros", "drop"))
        grid: tuple[int, int] = param((3, 3), "HOF/MBH cells, ROWSxCOLS over the frame",
                                      min=1, max=64)
        bins: int = param(8, "orientation bins (bin k centred on k*360/bins degrees, 0 = right, "
                          "90 = down)", min=2, max=36)
        threshold: float = param(0.5, "pixels per frame under which a pixel is still (HOF no-motion "
                                 "bin)", min=0.0, max=100.0)
        mbh: bool = param(False, "add motion boundary histograms (of the flow's spatial gradients)")
        norm: str = param("l1", "per-cell normalisation: l1, l2, or none (average per pixel)",
                          choices=("l1", "l2", "none"))
        step: int = param(4, "descriptor sampling stride in pixels (1 = every pixel)",
                          min=1, max=32)
        fb_pyr_scale: float = param(0.5, "Farneback pyramid scale between levels", min=0.1,
                                    max=0.9)
        fb_levels: int = param(3, "Farneback pyramid levels", min=1, max=10)
        fb_winsize: int = param(15, "Farneback averaging window size (pixels)", min=3, max=101)
        fb_iterations: int = param(3, "Farneback iterations per pyramid level", min=1, max=50)
        fb_poly_n: int = param(5, "Farneback polynomial expansion neighbourhood", choices=(5, 7))
        fb_poly_sigma: float = param(1.1, "Farneback polynomial expansion Gaussian sigma "
                                     "(1.1 for poly_n 5, 1.5 for 7)", min=0.5, max=3.0)
        fb_gaussian: bool = param(False, "Farneback: Gaussian instead of box averaging window")
        tvl1_attachment: float = param(15.0, "TV-L1 attachment (data term weight; larger = "
                                       "less smooth)", min=0.01, max=1000.0)
        tvl1_tightness: float = param(0.3, "TV-L1 tightness (coupling weight)", min=0.01,
                                      max=10.0)
        tvl1_num_warp: int = param(5, "TV-L1 warps per pyramid level", min=1, max=50)
        tvl1_num_iter: int = param(10, "TV-L1 fixed-point iterations per warp", min=1, max=1000)

    def __init__(self, params=None):
        super().__init__(params)
        self._prev: np.ndarray | None = None
        self._dis = None
        self._cells: dict = {}

    # ------------------------------------------------------------------
    # Output declaration

    def descriptor_columns(self) -> tuple[str, ...]:
        """Names of the descriptor's values, in order."""
        p = self.params
        rows, cols = p.grid
        names = []
        for r in range(rows):
            for c in range(cols):
                names += [f"hof_r{r}c{c}_b{k}" for k in range(p.bins)] + [f"hof_r{r}c{c}_still"]
        if p.mbh:
            for comp in ("mbhx", "mbhy"):
                for r in range(rows):
                    for c in range(cols):
                        names += [f"{comp}_r{r}c{c}_b{k}" for k in range(p.bins)]
        return tuple(names) + _STATS

    def output_kind(self) -> str:
        """``dense`` for ``result=field``, else ``vector`` (whatever the frame size)."""
        return "dense" if self.params.result == "field" else "vector"

    def output_spec(self, height: int, width: int) -> OutputSpec:
        p = self.params
        if p.result == "field":
            return OutputSpec("dense", (int(height), int(width), 2))
        rows, cols = p.grid
        if rows > height or cols > width:
            raise ParamError(f"flow: grid {rows}x{cols} is finer than the {width}x{height} frame",
                             "use a coarser --grid")
        names = self.descriptor_columns()
        return OutputSpec("vector", (len(names),), columns=names)

    # ------------------------------------------------------------------
    # Sequence state

    def reset(self) -> None:
        """Start a new sequence: forget the previous frame."""
        self._prev = None

    def extract(self, image: np.ndarray) -> np.ndarray | None:
        """The row of this frame: motion from the previous frame to this one.

        Returns the descriptor (float32 ``(D,)``) or the field (float32
        ``(H, W, 2)``); for the first frame of a sequence an all-zero row,
        or ``None`` with ``first=drop``.  A frame whose size differs from
        the previous one raises :class:`~featx.errors.InputError` and starts
        a new sequence from it.
        """
        gray = to_gray_uint8(image)
        prev, self._prev = self._prev, gray
        if prev is None:
            if self.params.first == "drop":
                return None
            h, w = gray.shape
            return np.zeros(self.output_spec(h, w).shape, np.float32)
        if prev.shape != gray.shape:
            raise InputError(f"flow: frame size changed from {prev.shape[1]}x{prev.shape[0]} to "
                             f"{gray.shape[1]}x{gray.shape[0]} within a sequence",
                             "the flow restarts from this frame; use --resize for mixed sizes")
        field = self.compute(prev, gray)
        if self.params.result == "field":
            return field
        return self.describe_field(field)

    def working_memory(self, height: int, width: int) -> int:
        """Per frame pair: the previous frame, the flow's pyramids and the field, then the
        descriptor's planes (measured on 2000x1500 frames: DIS fast 26 bytes per pixel,
        medium 63, Farneback 93, TV-L1 143, MBH at step 1 adds 60)."""
        p = self.params
        per = {"dis": 80.0 if p.preset == "medium" else 36.0, "farneback": 120.0, "tvl1": 180.0}[p.method]
        if p.mbh:
            per += 64.0
        return int(per * height * width)

    # ------------------------------------------------------------------
    # Flow

    def compute(self, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        """The flow field from ``prev`` to ``nxt`` (any featx image layout).

        Returns float32 ``(H, W, 2)``: ``(dx, dy)`` per pixel of ``prev``.
        Stateless with respect to the sequence (works on any image pair).
        """
        import cv2

        a, b = to_gray_uint8(prev), to_gray_uint8(nxt)
        if a.shape != b.shape:
            raise InputError(f"flow: the two images differ in size ({a.shape[1]}x{a.shape[0]} vs "
                             f"{b.shape[1]}x{b.shape[0]})", "resize them to one size")
        p = self.params
        if p.method in ("dis", "farneback"):
            try:
                if p.method == "dis":
                    if self._dis is None:
                        self._dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[p.preset])
                    flow = self._dis.calc(a, b, None)
                else:
                    flags = cv2.OPTFLOW_FARNEBACK_GAUSSIAN if p.fb_gaussian else 0
                    flow = cv2.calcOpticalFlowFarneback(a, b, None, p.fb_pyr_scale, p.fb_levels,
                                                        p.fb_winsize, p.fb_iterations, p.fb_poly_n,
                                                        p.fb_poly_sigma, flags)
            except cv2.error as e:   # e.g. DIS on frames under 12 pixels: OpenCV's words, not its source line
                raise InputError(f"flow: OpenCV cannot compute {p.method} flow on {a.shape[1]}x{a.shape[0]} "
                                 f"frames: {opencv_message(e)}",
                                 "use --resize to enlarge small frames") from None
        else:
            from skimage.registration import optical_flow_tvl1

            scale = np.float32(1.0 / 255.0)
            v = optical_flow_tvl1(a.astype(np.float32) * scale, b.astype(np.float32) * scale,
                                  attachment=p.tvl1_attachment, tightness=p.tvl1_tightness,
                                  num_warp=p.tvl1_num_warp, num_iter=p.tvl1_num_iter,
                                  dtype=np.float32)
            flow = np.empty(a.shape + (2,), np.float32)
            flow[..., 0] = v[1]   # skimage returns (rows, cols) = (dy, dx)
            flow[..., 1] = v[0]
        return np.ascontiguousarray(flow, dtype=np.float32)

    # ------------------------------------------------------------------
    # Descriptor

    def _cell_index(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray, slice, slice]:
        """Cell id of each sampled pixel and the pixel count of each cell."""
        p = self.params
        key = (height, width)
        if key not in self._cells:
            s = p.step
            off = (s - 1) // 2
            ys = np.arange(off, height, s) if off < height else np.array([0])
            xs = np.arange(off, width, s) if off < width else np.array([0])
            rows, cols = p.grid
            # a pixel belongs to the cell that contains its centre
            cy = np.minimum((ys * rows) // height, rows - 1)
            cx = np.minimum((xs * cols) // width, cols - 1)
            cell = (cy[:, None] * cols + cx[None, :]).astype(np.intp)
            counts = np.bincount(cell.ravel(), minlength=rows * cols).astype(np.float32)
            if (counts == 0).any():
                raise ParamError(f"flow: grid {rows}x{cols} with step {s} leaves empty cells on a "
                                 f"{width}x{height} frame", "use a coarser --grid or a smaller --step")
            ysl = slice(int(ys[0]), None, s)
            xsl = slice(int(xs[0]), None, s)
            self._cells[key] = (cell.ravel(), counts, ysl, xsl)
        return self._cells[key]

    def _histograms(self, cell: np.ndarray, counts: np.ndarray, dx: np.ndarray, dy: np.ndarray,
                    still_threshold: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Per-cell orientation histograms, ``(n_cells, bins [+ 1])``, unnormalised,
        and the magnitudes (flattened).

        Orientation bins are weighted by the vector magnitude with linear
        interpolation between the two nearest bin centres.  With a
        ``still_threshold``, vectors shorter than it add nothing to the
        orientation bins and 1 to an extra last bin.
        """
        import cv2

        bins = self.params.bins
        n_cells = counts.size
        slots = bins + 2          # orientation slots bins, bins+1 wrap onto 0, 1
        mag, ang = cv2.cartToPolar(dx, dy)            # ang in [0, 2*pi]
        mag = mag.ravel()
        pos = ang.ravel()
        pos *= np.float32(bins / (2 * math.pi))
        lo = pos.astype(np.intp)                      # floor: pos >= 0
        pos -= lo                                     # fraction towards the next bin
        w_hi = mag * pos
        w_lo = mag - w_hi
        if still_threshold is not None:
            moving = (mag >= np.float32(still_threshold)).astype(np.float32)
            w_hi *= moving
            w_lo *= moving
        lo += cell * slots
        size = n_cells * slots
        h = np.bincount(lo, weights=w_lo, minlength=size)
        lo += 1
        h += np.bincount(lo, weights=w_hi, minlength=size)
        h = h.reshape(n_cells, slots)
        h[:, 0] += h[:, bins]
        h[:, 1] += h[:, bins + 1]
        if still_threshold is None:
            return h[:, :bins], mag
        out = np.empty((n_cells, bins + 1), np.float64)
        out[:, :bins] = h[:, :bins]
        out[:, bins] = counts - np.bincount(cell, weights=moving, minlength=n_cells)
        return out, mag

    def _normalise(self, h: np.ndarray, counts: np.ndarray) -> np.ndarray:
        norm = self.params.norm
        if norm == "none":
            return h / counts[:, None]
        if norm == "l1":
            d = np.abs(h).sum(axis=1, keepdims=True)
        else:
            d = np.sqrt((h * h).sum(axis=1, keepdims=True))
        return h / np.maximum(d, 1e-12)

    def describe_field(self, field: np.ndarray) -> np.ndarray:
        """The descriptor (float32 ``(D,)``) of a flow field ``(H, W, 2)``."""
        import cv2

        p = self.params
        h, w = field.shape[:2]
        cell, counts, ysl, xsl = self._cell_index(h, w)
        sub = field[ysl, xsl]
        dx = np.ascontiguousarray(sub[..., 0])
        dy = np.ascontiguousarray(sub[..., 1])
        hof, mag = self._histograms(cell, counts, dx, dy, p.threshold)
        parts = [self._normalise(hof, counts).ravel()]
        if p.mbh:
            # gradients on the sampled grid, per pixel of the frame
            k = 1.0 / (8.0 * p.step)
            for comp in (dx, dy):
                gx = cv2.Sobel(comp, cv2.CV_32F, 1, 0, ksize=3, scale=k,
                               borderType=cv2.BORDER_REPLICATE)
                gy = cv2.Sobel(comp, cv2.CV_32F, 0, 1, ksize=3, scale=k,
                               borderType=cv2.BORDER_REPLICATE)
                parts.append(self._normalise(self._histograms(cell, counts, gx, gy, None)[0],
                                             counts).ravel())
        pct = _percentiles(mag, _PERCENTILES)
        stats = [dx.mean(dtype=np.float64), dy.mean(dtype=np.float64),
                 mag.mean(dtype=np.float64), *pct]
        parts.append(np.asarray(stats, np.float64))
        return np.concatenate(parts).astype(np.float32)

    # ------------------------------------------------------------------
    # Pictures

    @staticmethod
    def colorize(field: np.ndarray, max_magnitude: float | None = None,
                 underlay: np.ndarray | None = None) -> np.ndarray:
        """The colour-wheel picture of a flow field, uint8 RGB ``(H, W, 3)``.

        Hue is the direction (0° right = red, 90° down, ...) and the strength
        the magnitude divided by ``max_magnitude`` (default: the 99th
        percentile of the magnitude), clipped to 1.  Without ``underlay`` the
        strength is the brightness over black (the usual flow picture); with
        an ``underlay`` (brightness 0..1 per pixel, e.g. a dimmed frame) it is
        the saturation, so still pixels show the underlay in gray.
        """
        import cv2

        from ..picture import hue_picture

        dx = np.ascontiguousarray(field[..., 0], dtype=np.float32)
        dy = np.ascontiguousarray(field[..., 1], dtype=np.float32)
        mag, ang = cv2.cartToPolar(dx, dy, angleInDegrees=True)
        if max_magnitude is None:
            max_magnitude = float(np.percentile(mag, 99)) if mag.size else 0.0
        strength = mag / max_magnitude if max_magnitude > 0 else np.zeros_like(mag)
        return hue_picture(ang, strength, value=underlay)

    #: Brightness of the frame under the flow colours: ``LOW + SPAN * luma / 255``
    #: (never black, so that every direction's colour shows).
    UNDERLAY_LOW, UNDERLAY_SPAN = 0.3, 0.6

    def render_pair(self, prev: np.ndarray, nxt: np.ndarray, *, arrows: bool = False,
                    spacing: int = 16, key: bool = True, underlay: bool = True) -> np.ndarray:
        """A picture (uint8 RGB) of the flow from ``prev`` to ``nxt``.

        :meth:`figure_pair`'s picture; without ``key``, only its top part (the
        size of the frames, no caption).
        """
        fig = self.figure_pair(prev, nxt, arrows=arrows, spacing=spacing, underlay=underlay)
        return fig.pixels if key else fig.crop("picture").copy()

    def figure_pair(self, prev: np.ndarray, nxt: np.ndarray, *, arrows: bool = False,
                    spacing: int = 16, underlay: bool = True):
        """The flow from ``prev`` to ``nxt`` drawn on ``prev``, with its keys.

        The picture (frame size): with ``underlay``, ``prev`` in gray (dimmed,
        :attr:`UNDERLAY_LOW`, :attr:`UNDERLAY_SPAN`) coloured by the flow — hue =
        direction of motion, saturation = speed relative to the 99th
        percentile of the magnitude (:meth:`colorize`); without, the usual
        picture on black (brightness = speed).  With ``arrows``, one arrow per
        ``spacing`` pixels (the 99th-percentile magnitude spans ``spacing``).
        Caption: a colour wheel (direction and speed -> colour) and a speed bar
        in pixels per frame.

        Returns
        -------
        figure : :class:`featx.picture.Figure`
            Regions ``picture``, ``caption``, ``wheel``, ``speed``.
        """
        import cv2

        from .. import picture as pic

        field = self.compute(prev, nxt)
        mag = np.hypot(field[..., 0], field[..., 1])
        ref = float(np.percentile(mag, 99)) if mag.size else 0.0
        lo, span = self.UNDERLAY_LOW, self.UNDERLAY_SPAN
        value = None
        if underlay:
            value = lo + span * to_gray_uint8(prev).astype(np.float32) / 255.0
        picture = np.ascontiguousarray(self.colorize(field, ref, value))
        h, w = field.shape[:2]
        style = pic.Style.for_size(h, w)
        if arrows:
            gain = spacing / ref if ref > 0 else 0.0
            half = spacing // 2
            for y in range(half, h, spacing):
                for x in range(half, w, spacing):
                    fx, fy = field[y, x]
                    if math.hypot(fx, fy) < self.params.threshold:
                        continue
                    tip = (int(round(x + fx * gain)), int(round(y + fy * gain)))
                    cv2.arrowedLine(picture, (x, y), tip, (255, 255, 255), 1, cv2.LINE_AA,
                                    tipLength=0.3)
        bright = 0.9 if underlay else None

        def wheel_colour(a, r):
            return pic.hue_picture(a, r, value=None if bright is None else np.full(r.shape, bright))

        wheel = pic.colour_wheel(wheel_colour, style, title="direction of motion (deg)",
                                 labels={0: "0 right", 90: "90 down", 180: "180 left", 270: "270 up"},
                                 note=f"centre: still; rim: {pic.number(ref)} px/frame")

        def speed_ramp(t):  # four stripes: right, down, left, up
            t = np.asarray(t, np.float64)
            return np.stack([wheel_colour(np.full(t.shape, a), t) for a in (0, 90, 180, 270)])

        bar = pic.colour_bar(speed_ramp, 0.0, ref, "speed (px/frame)", style)
        p = self.params
        how = f"{p.method}, {p.preset}" if p.method == "dis" else p.method
        drawn = ("drawn on the first frame (gray): hue = direction of motion, colour strength = "
                 if underlay else "hue = direction of motion, brightness = ")
        title = (f"flow ({how}): the motion from the first frame to the second, {drawn}speed "
                 f"(full at the 99th percentile, {pic.number(ref)} px/frame)")
        if arrows:
            title += (f"; arrows every {spacing} px, {spacing} px long at {pic.number(ref)} px/frame "
                      f"(none under {pic.number(p.threshold)} px/frame)")
        return pic.with_caption(picture, title, [("wheel", wheel), ("speed", bar)], style)

    def render(self, image: np.ndarray) -> np.ndarray:
        """The flow picture from the previous frame (the last one given to
        :meth:`extract`) to ``image``.  Flow needs two frames: with no
        previous frame this raises; use :meth:`render_pair`."""
        if self._prev is None:
            raise FeatxError("flow: a flow picture needs two frames",
                             "show a video, a frame folder or two images")
        return self.render_pair(self._prev, image)
