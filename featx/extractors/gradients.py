"""Image gradients pooled into orientation histograms over a grid of cells.

The classical first stage of gradient-based descriptors, kept as a small,
fixed-length global descriptor: gradient magnitude and orientation of the
grayscale image, magnitude-weighted orientation histograms in a
``ROWS x COLS`` grid of cells, one vector whatever the image size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from ..errors import InputError
from ..extractor import Extractor, OutputSpec, param
from ..imageops import to_gray_float32

#: Derivative operators.  Sobel's kernel weighs the difference 8x (1+2+1
#: rows, 2 pixels apart), Scharr's 32x (3+10+3), central differences
#: ``I[x+1] - I[x-1]`` 2x: each is divided by that factor.
OPERATORS = ("sobel", "scharr", "central")
NORMS = ("none", "l1", "l2")

#: Images of up to this many pixels are computed in one piece.  Bigger ones (camera
#: photos) in bands of rows of about :data:`BAND_PIXELS` pixels, each with the row
#: above and below it that the 3x3 operators reach, so that the float64 maps of one
#: band at a time are held, not of the whole photo: the working memory stops growing
#: with the image (11 MB for a 12-MP photo instead of about 600 MB).  Gradients,
#: orientations and bins are the same pixel for pixel; the cell sums are added band
#: by band, which may move a float32 output value by one unit in the last place.
WHOLE_PIXELS = 1 << 20
BAND_PIXELS = 1 << 18


class Gradients(Extractor):
    """Orientation histograms of the image gradient over a grid of cells.

    What it computes:

    1. Luma of the image (BT.601 as OpenCV's RGB2GRAY) as float32 on the
       0-255 scale (16-bit input divided by 257; grayscale input as is).
    2. The gradient ``(dx, dy)`` with the chosen ``operator`` (x to the
       right, y down), scaled to approximate the derivative in gray levels
       per pixel: ``sobel`` = 3x3 Sobel / 8, ``scharr`` = 3x3 Scharr / 32,
       ``central`` = ``(I[x+1] - I[x-1]) / 2``.  Borders are mirrored
       without repeating the edge pixel (OpenCV ``BORDER_REFLECT_101``), so
       the gradient across the image border is zero.
    3. Magnitude ``sqrt(dx^2 + dy^2)`` and orientation
       ``theta = degrees(atan2(dy, dx))`` in [0, 360), or modulo 180 when
       ``signed`` is false (opposite gradients then count the same).
    4. ``bins`` orientation bins of width ``w = 360/bins`` (180/bins
       unsigned) *centred* on 0, w, 2w, ...: bin ``k`` holds
       ``k*w - w/2 <= theta < k*w + w/2`` (modulo the full turn), so that
       horizontal and vertical gradients sit in the middle of a bin, not on
       an edge.  With the default 8 signed bins, bin 0 is a gradient
       pointing right (dark-to-bright from left to right), bin 2 down,
       bin 4 left, bin 6 up.
    5. The image is split into ``ROWS x COLS`` cells with integer
       boundaries: pixel ``(y, x)`` of an ``H x W`` image is in cell row
       ``y * ROWS // H`` and cell column ``x * COLS // W`` (cells differ by
       at most one pixel in size; on images smaller than the grid, some
       cells are empty and hold zeros).  Each cell histogram is the sum of
       its pixels' magnitudes per bin divided by the cell's pixel count
       (mean gradient magnitude per pixel).
    6. The vector (cell row, cell column, bin order) is normalised as a
       whole with ``norm``: ``l2`` (default, unit Euclidean length, ready
       for cosine/Euclidean comparison), ``l1`` (sums to one: a
       distribution of gradient energy over cells and orientations) or
       ``none`` (mean magnitudes in gray levels per pixel).  A vector of
       zeros (a constant image) stays zeros.

    Output: float32 vector of ``ROWS * COLS * bins`` values, the same length
    for every image size.
    """

    name: ClassVar[str] = "gradients"
    #: non-negative orientation histograms: compared as distributions
    neighbor_metric = "hellinger"
    summary: ClassVar[str] = ("Gradient orientation histograms (Sobel/Scharr/central) over a "
                              "grid of cells: a fixed-length vector")

    @dataclass(frozen=True)
    class Params:
        operator: str = param("sobel", "Derivative operator: 3x3 Sobel, 3x3 Scharr, or central "
                                       "differences (no smoothing).", choices=OPERATORS)
        grid: tuple[int, int] = param((4, 4), "Cells as ROWSxCOLS; the image is split with "
                                              "integer boundaries (cell row = y*ROWS//H).",
                                      min=1, max=64)
        bins: int = param(8, "Orientation bins, centred on 0 degrees (gradient pointing "
                             "right).", min=1, max=180)
        signed: bool = param(True, "Signed orientation over 0-360 degrees; false folds "
                                   "opposite directions together (0-180).")
        norm: str = param("l2", "Normalisation of the whole vector: l2 (unit length), l1 "
                                "(sums to 1) or none (mean magnitude per pixel).",
                          choices=NORMS)

    def __init__(self, params=None):
        super().__init__(params)
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    # ----------------------------------------------------------------- spec

    def output_spec(self, height: int, width: int) -> OutputSpec:
        """``ROWS * COLS * bins`` values, whatever the image size."""
        rows, cols = self.params.grid
        n = self.params.bins
        names = tuple(f"cell{r}_{c}_bin{k}" for r in range(rows) for c in range(cols)
                      for k in range(n))
        return OutputSpec("vector", (rows * cols * n,), columns=names)

    # ---------------------------------------------------------------- maths

    def gradient(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The gradient of the image's luma.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray, uint8 or uint16
            The picture (RGB order for colour).

        Returns
        -------
        dx, dy : (H, W) ndarray, float64
            Derivatives along x (right) and y (down), gray levels per pixel.
            float64 (from the float32 luma) so that orientations next to a
            bin edge are decided by the definition, not by float32 rounding
            of the filter sums.
        """
        return self._derivatives(to_gray_float32(self._checked(image)))

    @staticmethod
    def _checked(image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] != 3):
            raise InputError(f"gradients: expected an (H, W) or (H, W, 3) image, got shape "
                             f"{image.shape}")
        if image.shape[0] < 1 or image.shape[1] < 1:
            raise InputError(f"gradients: empty image of shape {image.shape}")
        return image

    def _derivatives(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``dx, dy`` (float64) of a float32 luma image."""
        import cv2

        op = self.params.operator
        border = cv2.BORDER_REFLECT_101
        if op == "sobel":
            dx = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=3, scale=1 / 8, borderType=border)
            dy = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=3, scale=1 / 8, borderType=border)
        elif op == "scharr":
            dx = cv2.Scharr(gray, cv2.CV_64F, 1, 0, scale=1 / 32, borderType=border)
            dy = cv2.Scharr(gray, cv2.CV_64F, 0, 1, scale=1 / 32, borderType=border)
        elif op == "central":
            dx = cv2.Sobel(gray, cv2.CV_64F, 1, 0, ksize=1, scale=0.5, borderType=border)
            dy = cv2.Sobel(gray, cv2.CV_64F, 0, 1, ksize=1, scale=0.5, borderType=border)
        else:  # pragma: no cover - Params validation rejects it
            raise ValueError(f"unknown operator {op!r}")
        return dx, dy

    def _orientation_degrees(self, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
        """``degrees(atan2(dy, dx))`` in float64, in (-180, 180]."""
        theta = np.arctan2(dy, dx)
        theta *= 180.0 / np.pi  # what np.rad2deg computes (bit for bit), 8x faster
        return theta

    def _cells(self, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per row and per column, the cell row and column of a pixel (times the slots
        of a cell row / cell); and pixels per cell."""
        key = (h, w)
        hit = self._cache.get(key)
        if hit is None:
            rows, cols = self.params.grid
            slots = 2 * self.params.bins + 1
            rc = np.arange(h, dtype=np.intp) * rows // h
            cc = np.arange(w, dtype=np.intp) * cols // w
            counts = (np.bincount(rc, minlength=rows)[:, None]
                      * np.bincount(cc, minlength=cols)[None, :]).ravel()
            hit = (rc * (cols * slots), cc * slots, np.maximum(counts, 1).astype(np.float64))
            if len(self._cache) >= 4:
                self._cache.clear()
            self._cache[key] = hit
        return hit

    @staticmethod
    def bands(h: int, w: int) -> list[tuple[int, int]]:
        """The row ranges ``[y0, y1)`` an ``h`` x ``w`` image is computed in (see
        :data:`WHOLE_PIXELS`)."""
        if h * w <= WHOLE_PIXELS:
            return [(0, h)]
        step = max(1, BAND_PIXELS // w)
        return [(y, min(h, y + step)) for y in range(0, h, step)]

    def histograms(self, image: np.ndarray) -> np.ndarray:
        """Cell histograms before the final normalisation.

        Returns
        -------
        hist : (ROWS, COLS, bins) ndarray, float32
            Mean gradient magnitude per pixel of each cell, per orientation bin.
        """
        import cv2

        image = self._checked(image)
        h, w = image.shape[:2]
        n = self.params.bins
        rows, cols = self.params.grid
        width = (360.0 if self.params.signed else 180.0) / n
        row_base, col_base, counts = self._cells(h, w)
        raw = None
        for y0, y1 in self.bands(h, w):
            # the band and the rows above and below it that the 3x3 operators reach: the
            # band's gradients are then those of the whole image (same borders at its edges)
            a, b = max(0, y0 - 1), min(h, y1 + 1)
            dx, dy = self._derivatives(to_gray_float32(image[a:b]))
            dx, dy = dx[y0 - a:y1 - a], dy[y0 - a:y1 - a]
            mag = cv2.magnitude(dx, dy)
            theta = self._orientation_degrees(dx, dy)
            del dx, dy
            # bin = floor(theta / width + 1/2) lies in [-n, n] for theta in
            # (-180, 180] (either way); slots b + n in [0, 2n] are folded back
            # modulo n after counting, which costs nothing per pixel.
            theta /= width
            theta += 0.5
            np.floor(theta, out=theta)
            slot = theta.astype(np.intp)
            del theta
            slot += row_base[y0:y1, None]
            slot += col_base[None, :]
            slot += n
            part = np.bincount(slot.ravel(), weights=mag.ravel(), minlength=rows * cols * (2 * n + 1))
            del slot, mag
            raw = part if raw is None else raw + part
        raw = raw.reshape(rows * cols, 2 * n + 1)
        hist = raw[:, :n] + raw[:, n:2 * n]
        hist[:, 0] += raw[:, 2 * n]
        hist /= counts[:, None]
        return hist.reshape(rows, cols, n).astype(np.float32)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """The gradient-histogram vector of one image.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray, uint8 or uint16
            The picture (RGB order for colour).

        Returns
        -------
        vector : (ROWS * COLS * bins,) ndarray, float32
            Cell histograms in (cell row, cell column, bin) order, normalised
            with ``norm``.
        """
        v = self.histograms(image).ravel()
        norm = self.params.norm
        if norm != "none":
            v64 = v.astype(np.float64)
            total = np.abs(v64).sum() if norm == "l1" else np.sqrt(np.dot(v64, v64))
            if total > 0:
                v = (v64 / total).astype(np.float32)
        return v

    # -------------------------------------------------------------- picture

    def bytes_per_pixel(self) -> float:
        """Float64 gradients, magnitude and orientation: measured 52 bytes per pixel of
        an image computed in one piece (peak RSS growth, tests/test_faults_inputs.py)."""
        return 64.0

    def working_memory(self, height: int, width: int) -> int:
        """:meth:`bytes_per_pixel` times the pixels of the largest piece computed at once
        (the whole image, or one band of rows and its two margin rows)."""
        rows = max(y1 - y0 for y0, y1 in self.bands(height, width))
        return int(self.bytes_per_pixel() * min(height, rows + 2) * width)

    def render(self, image: np.ndarray) -> np.ndarray:
        """The picture ``featx show gradients`` draws (see :meth:`figure`)."""
        return self.figure(image).pixels

    def figure(self, image: np.ndarray):
        """The gradient field as colour, with its keys.

        The picture (image size): hue = orientation (once round the colour
        circle over 360 degrees signed, 180 unsigned), brightness = magnitude
        (full at the 99th percentile); the cell boundaries as thin gray lines.
        Caption: a colour wheel (direction and strength -> colour, spokes at
        the bin edges) and a magnitude bar in gray levels per pixel.

        Returns
        -------
        figure : :class:`featx.picture.Figure`
            Regions ``picture``, ``caption``, ``wheel``, ``magnitude``.
        """
        import cv2

        from .. import picture as pic

        dx, dy = self.gradient(image)
        mag = cv2.magnitude(dx, dy)
        theta = self._orientation_degrees(dx, dy)
        turn = 360.0 if self.params.signed else 180.0
        top = float(np.percentile(mag, 99)) if mag.size else 0.0
        strength = mag / top if top > 0 else np.zeros_like(mag)
        rgb = pic.hue_picture(theta, strength, period=turn)
        h, w = mag.shape
        rows, cols = self.params.grid
        for r in range(1, rows):
            y = -(-r * h // rows)  # first pixel row of cell row r
            if y < h:
                rgb[y, :] = 96
        for c in range(1, cols):
            x = -(-c * w // cols)
            if x < w:
                rgb[:, x] = 96
        style = pic.Style.for_size(h, w)
        n = self.params.bins
        width = turn / n
        if self.params.signed:
            labels = {0: "0 right", 90: "90 down", 180: "180 left", 270: "270 up"}
        else:
            labels = {0: "0", 90: "90", 180: "0", 270: "90"}
        edges = [(k + 0.5) * width for k in range(n)]
        spokes = edges if self.params.signed else edges + [e + 180.0 for e in edges]
        wheel = pic.colour_wheel(
            lambda a, r: pic.hue_picture(a, r, period=turn), style,
            title="direction (deg)" if self.params.signed else "orientation (deg, mod 180)",
            labels=labels, spokes=spokes, note=f"{n} bins (lines: bin edges)")
        bar = pic.colour_bar(lambda t: pic.colormap(t, "gray"), 0.0, top,
                             "magnitude (gray levels/px)", style)
        op = self.params.operator
        hue = ("gradient direction (dark to bright)" if self.params.signed
               else "gradient orientation (mod 180 deg: opposite directions alike)")
        title = (f"gradients ({op}): hue = {hue}, brightness = "
                 f"magnitude (full at the 99th percentile); gray lines: the {rows}x{cols} cells, "
                 f"one {n}-bin histogram each")
        return pic.with_caption(rgb, title, [("wheel", wheel), ("magnitude", bar)], style)
