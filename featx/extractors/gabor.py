"""Gabor filter banks: complex responses of scales × orientations, pooled per cell.

See :class:`Gabor` (its docstring is what ``featx info gabor`` shows).
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from ..extractor import Extractor, OutputSpec, param

#: scipy.ndimage border mode -> OpenCV border type name.
BORDERS = {
    "reflect": "BORDER_REFLECT",       # d c b a | a b c d | d c b a
    "mirror": "BORDER_REFLECT_101",    # d c b | a b c d | c b a
    "nearest": "BORDER_REPLICATE",     # a a a | a b c d | d d d
    "wrap": "BORDER_WRAP",             # b c d | a b c d | a b c
    "constant": "BORDER_CONSTANT",     # 0 0 0 | a b c d | 0 0 0
}

PARTS = {"magnitude": ("mag",), "real": ("real",), "imag": ("imag",),
         "all": ("mag", "real", "imag")}

#: Largest kernel half-size (pixels) a bank may have.
MAX_KERNEL_RADIUS = 1024

#: Kernel spectra are kept for one padded image size while they fit in this
#: many bytes; beyond it they are recomputed for every image.
SPECTRA_CACHE_BYTES = 512 * 2 ** 20

#: Images of up to this many pixels are filtered in one piece (one transform of the
#: whole padded image).  Bigger ones (camera photos) tile by tile (overlap-save): each
#: tile with the margin the largest kernel reaches, transformed at a fixed size of
#: about :data:`TILE_DFT` on a side (or twice the largest kernel), so that the working
#: memory no longer grows with the photo (about 50 MB with the default bank, against
#: 650 MB for a 12-MP photo in one piece) and the kernel spectra are computed once per
#: run.  The responses are the same convolution; they differ from the one-piece
#: transform by float32 rounding (~1e-6 of the values).
WHOLE_PIXELS = 1 << 20
TILE_DFT = 384


def sigma_for_bandwidth(frequency: float, bandwidth: float) -> float:
    """Gaussian sigma (pixels, along the wave) giving a half-magnitude bandwidth in octaves.

    Parameters
    ----------
    frequency : float
        Cycles per pixel.
    bandwidth : float
        Octaves between the half-magnitude frequencies (1 is the usual choice).
    """
    two_b = 2.0 ** bandwidth
    return math.sqrt(math.log(2.0) / 2.0) / math.pi * (two_b + 1.0) / (two_b - 1.0) / frequency


@dataclass(frozen=True)
class KernelInfo:
    """Where one kernel sits in the bank."""

    index: int
    scale: int
    orientation: int
    frequency: float
    theta: float
    sigma_x: float
    sigma_y: float


class Gabor(Extractor):
    """Gabor filter bank: complex responses pooled per grid cell, or raw response maps.

    The bank
        ``n_scales × n_orientations`` complex Gabor kernels (default 4 × 8 = 32).
        Kernel ``k = scale * n_orientations + orientation`` has

        * frequency ``f = frequency / scale_ratio**scale`` cycles per pixel
          (wavelength ``1 / f`` pixels; defaults 0.25, 0.125, 0.0625, 0.03125);
        * orientation ``theta = orientation * pi / n_orientations`` — the
          direction of the wave vector, measured from the x axis (columns)
          towards the y axis (rows, pointing down); ``theta = 0`` responds to
          vertical stripes;
        * Gaussian envelope ``sigma_x`` along the wave vector and
          ``sigma_y = sigma_x / aspect`` along the stripes.  By default
          ``sigma_x`` follows from the half-magnitude bandwidth ``b`` in octaves:
          ``sigma_x = sqrt(ln 2 / 2) / pi * (2**b + 1) / (2**b - 1) / f``; given
          ``--sigma``, it is ``sigma * scale_ratio**scale`` (the bank stays
          self-similar either way);
        * phase offset ``phase`` (radians) and support ``±n_stds`` standard
          deviations.

        The kernels are made by :func:`skimage.filters.gabor_kernel` with these
        ``frequency, theta, sigma_x, sigma_y, n_stds, offset`` (complex,
        normalised by ``1 / (2 pi sigma_x sigma_y)``) — not
        :func:`cv2.getGaborKernel`, whose kernel is real, unnormalised and
        parameterised by wavelength and ``gamma``.

    The responses
        The luma image (0–255 scale, float32) is convolved with each complex
        kernel, borders extended as ``--border`` (scipy.ndimage's names; the
        default ``reflect`` repeats the edge pixel: ``d c b a | a b c d``), exactly
        as :func:`skimage.filters.gabor` does with ``ndimage.convolve``.  The
        image is padded and transformed once (``cv2.dft``, float32); each kernel's
        spectrum is computed once per image size and kept; each response is one
        spectrum product and one inverse transform.  From the complex response
        ``r``: magnitude ``|r|`` (energy, default), real (even) part, imaginary
        (odd) part, or all three (``--response``).

    The output
        ``--result pooled`` (default): per kernel and response part, the mean and
        standard deviation (``--stats``) over each cell of a ``ROWSxCOLS`` grid —
        a fixed-length vector for any image size, ordered kernel, part, statistic,
        cell row, cell column (named in ``output_spec(...).columns``).
        ``--result maps``: the raw maps, dense ``(H, W, n_kernels * n_parts)``
        float32, channel ``kernel * n_parts + part`` (write them with
        ``npy-dir``).
    """

    name = "gabor"
    #: filter-response statistics (not a distribution): Euclidean
    neighbor_metric = "l2"
    summary = "Gabor filter bank (scales x orientations): pooled magnitude statistics or maps"

    @dataclass(frozen=True)
    class Params:
        n_scales: int = param(4, "number of scales (frequencies) in the bank", min=1, max=12)
        n_orientations: int = param(8, "number of orientations, evenly spaced over 180 degrees",
                                    min=1, max=64)
        frequency: float = param(0.25, "frequency of the finest scale in cycles per pixel "
                                       "(wavelength 1/frequency pixels)", min=0.002, max=0.5)
        scale_ratio: float = param(2.0, "ratio between the frequencies of successive scales "
                                        "(2: one octave apart)", min=1.05, max=4.0)
        bandwidth: float = param(1.0, "half-magnitude bandwidth in octaves; sets sigma when "
                                      "--sigma is not given", min=0.1, max=4.0)
        sigma: float | None = param(None, "Gaussian sigma in pixels along the wave vector at the "
                                          "finest scale, multiplied by --scale-ratio at each "
                                          "coarser scale (default: from --bandwidth)",
                                    min=0.3, max=200.0)
        aspect: float = param(1.0, "spatial aspect ratio sigma_x / sigma_y (OpenCV's gamma): "
                                   "below 1 elongates the kernel along its stripes (sharper "
                                   "orientation tuning)",
                              min=0.1, max=10.0)
        phase: float = param(0.0, "phase offset of the carrier in radians (skimage's offset)",
                             min=-math.pi, max=math.pi)
        n_stds: float = param(3.0, "kernel half-size in standard deviations of the envelope",
                              min=1.0, max=6.0)
        response: str = param("magnitude", "which part of the complex response: magnitude "
                                            "(energy), real (even), imag (odd), or all three",
                              choices=tuple(PARTS))
        result: str = param("pooled", "pooled: statistics per grid cell (a vector); maps: the "
                                      "raw response maps, dense (H, W, kernels x parts)",
                            choices=("pooled", "maps"))
        grid: tuple[int, int] = param((4, 4), "pooled output: cells ROWSxCOLS", min=1, max=64)
        stats: str = param("mean-std", "pooled output: per cell, the mean and standard "
                                       "deviation (mean-std) or the mean only (mean)",
                           choices=("mean-std", "mean"))
        border: str = param("reflect", "how the image is extended past its borders "
                                       "(scipy.ndimage mode names, as skimage.filters.gabor)",
                            choices=tuple(BORDERS))

        def validate(self) -> None:
            from ..errors import ParamError

            coarsest = self.frequency / self.scale_ratio ** (self.n_scales - 1)
            sx = (self.sigma * self.scale_ratio ** (self.n_scales - 1) if self.sigma is not None
                  else sigma_for_bandwidth(coarsest, self.bandwidth))
            reach = self.n_stds * max(sx, sx / self.aspect)
            if reach > MAX_KERNEL_RADIUS:
                raise ParamError(f"gabor: the coarsest kernel would reach {reach:.0f} px from its "
                                 f"centre (more than {MAX_KERNEL_RADIUS})",
                                 "raise --frequency or --sigma's scale, or lower --n-scales, "
                                 "--scale-ratio or --n-stds")

    def __init__(self, params=None):
        # scikit-image's kernels, not a copy of them: the same numbers (tests compare the
        # bank with it), one definition to keep right.  The import loads scipy.ndimage:
        # about 0.5 s of CPU once per process that builds a bank (measured on the 2-core
        # development box; forked workers inherit it), against ~50 ms per 640x480 image.
        from skimage.filters import gabor_kernel

        super().__init__(params)
        p = self.params
        self.kernel_info: list[KernelInfo] = []
        self.kernels: list[np.ndarray] = []
        for si in range(p.n_scales):
            f = p.frequency / p.scale_ratio ** si
            sx = (p.sigma * p.scale_ratio ** si) if p.sigma is not None \
                else sigma_for_bandwidth(f, p.bandwidth)
            sy = sx / p.aspect
            for oi in range(p.n_orientations):
                th = oi * math.pi / p.n_orientations
                self.kernel_info.append(KernelInfo(len(self.kernels), si, oi, f, th, sx, sy))
                self.kernels.append(gabor_kernel(f, th, sigma_x=sx, sigma_y=sy, n_stds=p.n_stds,
                                                 offset=p.phase))
        self.ry = max(k.shape[0] // 2 for k in self.kernels)
        self.rx = max(k.shape[1] // 2 for k in self.kernels)
        self.parts = PARTS[p.response]
        self._spectra: dict[tuple[int, int], list[np.ndarray]] = {}
        self._lock = threading.Lock()

    # -- sizes ---------------------------------------------------------------

    @property
    def n_kernels(self) -> int:
        return len(self.kernels)

    def output_spec(self, height: int, width: int) -> OutputSpec:
        p = self.params
        if p.result == "maps":
            return OutputSpec("dense", (height, width, self.n_kernels * len(self.parts)))
        rows, cols = p.grid
        stats = ("mean", "std") if p.stats == "mean-std" else ("mean",)
        names = tuple(f"s{k.scale}_o{k.orientation}_{part}_{st}_r{r}c{c}"
                      for k in self.kernel_info for part in self.parts for st in stats
                      for r in range(rows) for c in range(cols))
        return OutputSpec("vector", (len(names),), columns=names)

    # -- filtering -----------------------------------------------------------

    def _padded_spectrum(self, gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
        """The DFT of the border-extended image, laid out so outputs start at (0, 0)."""
        import cv2

        h, w = gray.shape
        ry, rx = self.ry, self.rx
        border = getattr(cv2, BORDERS[self.params.border])
        padded = cv2.copyMakeBorder(gray, ry, ry, rx, rx, border, value=0)
        m = cv2.getOptimalDFTSize(h + 2 * ry)
        n = cv2.getOptimalDFTSize(w + 2 * rx)
        buf = np.zeros((m, n), np.float32)
        buf[:h + 2 * ry, :w + 2 * rx] = padded
        # Circular shift by the kernel diameter: with kernels stored at the top
        # left (centre at (ry, rx)), output (i, j) is then the response at
        # image pixel (i, j), and no wrapped-around value reaches it.
        buf = np.roll(buf, (-2 * ry, -2 * rx), axis=(0, 1))
        return cv2.dft(buf, flags=cv2.DFT_COMPLEX_OUTPUT), (m, n)

    def _kernel_spectrum(self, k: int, shape: tuple[int, int]) -> np.ndarray:
        import cv2

        ker = self.kernels[k]
        ky, kx = ker.shape[0] // 2, ker.shape[1] // 2
        buf = np.zeros(shape + (2,), np.float32)
        win = buf[self.ry - ky:self.ry + ky + 1, self.rx - kx:self.rx + kx + 1]
        win[..., 0] = ker.real
        win[..., 1] = ker.imag
        return cv2.dft(buf, flags=cv2.DFT_COMPLEX_OUTPUT)

    def _tile_grid(self, h: int, w: int):
        """None (filter in one piece), or the transform size ``(m, n)`` of a tile and the
        tiles ``(y0, y1, x0, x1)`` (output pixels) covering an ``h`` x ``w`` image."""
        import cv2

        if h * w <= WHOLE_PIXELS:
            return None
        ry, rx = self.ry, self.rx
        m = cv2.getOptimalDFTSize(max(TILE_DFT, 4 * ry + 2))
        n = cv2.getOptimalDFTSize(max(TILE_DFT, 4 * rx + 2))
        th, tw = m - 2 * ry, n - 2 * rx
        if th >= h and tw >= w:
            return None
        return (m, n), [(y, min(h, y + th), x, min(w, x + tw)) for y in range(0, h, th) for x in range(0, w, tw)]

    def _tile_spectrum(self, image: np.ndarray, rect: tuple[int, int, int, int],
                       shape: tuple[int, int]) -> np.ndarray:
        """The DFT of one tile of the border-extended luma, laid out as
        :meth:`_padded_spectrum` lays out the whole image: the pixels of the tile and
        of its margin, the margin beyond the image's edges filled as ``border`` fills
        the whole image's (``cv2.borderInterpolate``, as ``copyMakeBorder`` does)."""
        import cv2

        from ..imageops import to_gray_float32

        y0, y1, x0, x1 = rect
        ry, rx = self.ry, self.rx
        h, w = image.shape[:2]
        border = getattr(cv2, BORDERS[self.params.border])

        def index(lo: int, hi: int, size: int) -> np.ndarray:
            idx = np.arange(lo, hi)
            out = (idx < 0) | (idx >= size)
            if out.any():
                idx[out] = [cv2.borderInterpolate(int(i), size, border) for i in idx[out]]
            return idx

        rows, cols = index(y0 - ry, y1 + ry, h), index(x0 - rx, x1 + rx, w)
        region = image[np.clip(rows, 0, None)][:, np.clip(cols, 0, None)]
        gray = to_gray_float32(region) if region.dtype.kind in "ui" or region.ndim == 3 \
            else np.asarray(region, np.float32)
        if border == cv2.BORDER_CONSTANT:
            gray[rows < 0, :] = 0
            gray[:, cols < 0] = 0
        buf = np.zeros(shape, np.float32)
        buf[:gray.shape[0], :gray.shape[1]] = gray
        buf = np.roll(buf, (-2 * ry, -2 * rx), axis=(0, 1))
        return cv2.dft(buf, flags=cv2.DFT_COMPLEX_OUTPUT)

    def tiled_responses(self, image: np.ndarray, grid):
        """Complex responses tile by tile (``grid`` from :meth:`_tile_grid`).

        Yields
        ------
        rect, k, response
            For each tile ``(y0, y1, x0, x1)`` and kernel ``k`` in bank order, the
            ``(y1 - y0, x1 - x0)`` complex64 response there: a view of a buffer reused
            for the next one.
        """
        import cv2

        shape, rects = grid
        kernel_specs = self._spectra_for(shape)
        prod = full = None
        for rect in rects:
            spec = self._tile_spectrum(image, rect, shape)
            if prod is None:
                prod, full = np.empty_like(spec), np.empty_like(spec)
            view = full.view(np.complex64)[:rect[1] - rect[0], :rect[3] - rect[2], 0]
            for k in range(self.n_kernels):
                ks = kernel_specs[k] if kernel_specs is not None else self._kernel_spectrum(k, shape)
                cv2.mulSpectrums(spec, ks, 0, prod)
                cv2.idft(prod, full, flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE)
                yield rect, k, view

    def _spectra_for(self, shape: tuple[int, int]) -> list[np.ndarray] | None:
        with self._lock:
            if shape in self._spectra:
                return self._spectra[shape]
            if self.n_kernels * shape[0] * shape[1] * 8 > SPECTRA_CACHE_BYTES:
                return None
            self._spectra.clear()  # keep one image size only
            specs = [self._kernel_spectrum(k, shape) for k in range(self.n_kernels)]
            self._spectra[shape] = specs
            return specs

    def complex_responses(self, image: np.ndarray):
        """Complex response of every kernel, one at a time.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray of uint8 or uint16, or (H, W) float
            Pixels (converted to float32 luma on the 0–255 scale; a float
            image is used as it is).

        Yields
        ------
        response : (H, W) ndarray of complex64
            ``real + 1j * imag`` of the convolution with kernel ``k``, for
            ``k = 0 .. n_kernels - 1`` in bank order.  A view of a buffer
            reused for the next kernel: copy it to keep it.
        """
        import cv2

        from ..imageops import to_gray_float32

        gray = to_gray_float32(image) if image.dtype.kind in "ui" or image.ndim == 3 \
            else np.asarray(image, np.float32)
        h, w = gray.shape
        spec, shape = self._padded_spectrum(np.ascontiguousarray(gray))
        kernel_specs = self._spectra_for(shape)
        # Buffers reused for every kernel: large temporaries allocated per
        # kernel cost page faults that take as long as the transforms.
        prod = np.empty_like(spec)
        full = np.empty_like(spec)
        view = full.view(np.complex64)[:h, :w, 0]
        for k in range(self.n_kernels):
            ks = kernel_specs[k] if kernel_specs is not None else self._kernel_spectrum(k, shape)
            cv2.mulSpectrums(spec, ks, 0, prod)
            cv2.idft(prod, full, flags=cv2.DFT_COMPLEX_OUTPUT | cv2.DFT_SCALE)
            yield view

    def _parts_into(self, r: np.ndarray, out: list[np.ndarray]) -> None:
        """Write the selected parts of the complex response ``r`` into ``out``."""
        for part, dst in zip(self.parts, out):
            if part == "mag":
                np.abs(r, out=dst)
            elif part == "real":
                np.copyto(dst, r.real)
            else:
                np.copyto(dst, r.imag)

    def response_maps(self, image: np.ndarray) -> np.ndarray:
        """The raw maps: ``(H, W, n_kernels * n_parts)`` float32 (see the module notes)."""
        h, w = image.shape[:2]
        n = len(self.parts)
        out = np.empty((h, w, self.n_kernels * n), np.float32)
        grid = self._tile_grid(h, w)
        if grid is not None:
            for (y0, y1, x0, x1), k, r in self.tiled_responses(image, grid):
                self._parts_into(r, [out[y0:y1, x0:x1, k * n + i] for i in range(n)])
            return out
        for k, r in enumerate(self.complex_responses(image)):
            self._parts_into(r, [out[:, :, k * n + i] for i in range(n)])
        return out

    def _pooled(self, image: np.ndarray) -> np.ndarray:
        import cv2

        rows, cols = self.params.grid
        h, w = image.shape[:2]
        if h < rows or w < cols:  # every cell needs at least one pixel
            image = cv2.resize(image, (max(w, cols), max(h, rows)),
                               interpolation=cv2.INTER_NEAREST)
            h, w = image.shape[:2]
        ys = np.rint(np.linspace(0, h, rows + 1)).astype(np.intp)
        xs = np.rint(np.linspace(0, w, cols + 1)).astype(np.intp)
        cells = [(slice(ys[i], ys[i + 1]), slice(xs[j], xs[j + 1]))
                 for i in range(rows) for j in range(cols)]
        with_std = self.params.stats == "mean-std"
        grid = self._tile_grid(h, w)
        if grid is not None:
            return self._pooled_tiled(image, grid, cells, with_std)
        bufs = [np.empty((h, w), np.float32) for _ in self.parts]
        n_stats = 2 if with_std else 1
        out = np.empty((self.n_kernels, len(self.parts), n_stats, len(cells)), np.float64)
        for k, r in enumerate(self.complex_responses(image)):
            self._parts_into(r, bufs)
            for p, m in enumerate(bufs):
                for c, cell in enumerate(cells):
                    if with_std:
                        mean, std = cv2.meanStdDev(m[cell])  # population std, in float64
                        out[k, p, 0, c], out[k, p, 1, c] = mean[0, 0], std[0, 0]
                    else:
                        out[k, p, 0, c] = cv2.mean(m[cell])[0]
        return out.ravel().astype(np.float32)

    def _pooled_tiled(self, image: np.ndarray, grid, cells: list, with_std: bool) -> np.ndarray:
        """Cell means (and population standard deviations) from sums and sums of squares
        (float64) gathered tile by tile."""
        import cv2

        (m, n), _ = grid
        n_parts = len(self.parts)
        sums = np.zeros((self.n_kernels, n_parts, len(cells)))
        squares = np.zeros_like(sums)
        bufs = [np.empty((m, n), np.float32) for _ in self.parts]
        pieces: list = []
        for rect, k, r in self.tiled_responses(image, grid):
            y0, y1, x0, x1 = rect
            if k == 0:  # the cells this tile overlaps, in the tile's own pixels
                pieces = []
                for c, (ys, xs) in enumerate(cells):
                    a, b = max(ys.start, y0), min(ys.stop, y1)
                    u, v = max(xs.start, x0), min(xs.stop, x1)
                    if a < b and u < v:
                        pieces.append((c, slice(a - y0, b - y0), slice(u - x0, v - x0)))
            parts = [buf[:y1 - y0, :x1 - x0] for buf in bufs]
            self._parts_into(r, parts)
            for p, part in enumerate(parts):
                for c, ys, xs in pieces:
                    sub = part[ys, xs]
                    sums[k, p, c] += cv2.sumElems(sub)[0]
                    if with_std:
                        squares[k, p, c] += cv2.norm(sub, cv2.NORM_L2SQR)
        counts = np.array([(ys.stop - ys.start) * (xs.stop - xs.start) for ys, xs in cells], np.float64)
        mean = sums / counts
        if not with_std:
            return mean[:, :, None, :].ravel().astype(np.float32)
        std = np.sqrt(np.maximum(squares / counts - mean * mean, 0.0))
        return np.stack([mean, std], axis=2).ravel().astype(np.float32)

    # -- the contract --------------------------------------------------------

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Gabor features of one image.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray of uint8 or uint16

        Returns
        -------
        features : ndarray of float32
            ``result=pooled``: ``(n_kernels * n_parts * n_stats * rows * cols,)``.
            ``result=maps``: ``(H, W, n_kernels * n_parts)``.
        """
        if self.params.result == "maps":
            return self.response_maps(image)
        return self._pooled(image)

    def working_memory(self, height: int, width: int) -> int:
        """Three complex buffers of the padded DFT size (measured 51-59 bytes per padded
        pixel), one float32 plane per response part, the kernel-spectrum cache when it
        is kept for this size, and the maps themselves with ``--result maps``; for an
        image filtered tile by tile, the same at the tile's transform size."""
        import cv2

        grid = self._tile_grid(height, width)
        if grid is not None:   # tile by tile: one tile's buffers and the spectra at the tile size
            (m, n), _ = grid
            need = (64 + 4 * len(self.parts) + 16) * m * n
        else:
            m = cv2.getOptimalDFTSize(height + 2 * self.ry)
            n = cv2.getOptimalDFTSize(width + 2 * self.rx)
            need = 64 * m * n + 4 * (len(self.parts) + 2) * height * width
        cache = self.n_kernels * m * n * 8   # the kernels' spectra at that transform size
        if cache <= SPECTRA_CACHE_BYTES:
            need += cache
        if self.params.result == "maps":
            need += 4 * self.n_kernels * len(self.parts) * height * width
        return int(need)

    def render(self, image: np.ndarray, tile: int = 96) -> np.ndarray:
        """The picture ``featx show gabor`` draws (see :meth:`figure`)."""
        return self.figure(image, tile).pixels

    def figure(self, image: np.ndarray, tile: int = 96):
        """The bank's kernels above the responses of ``image``, labelled, with keys.

        Two grids of ``n_scales`` rows × ``n_orientations`` columns, columns
        headed by the orientation (degrees), rows labelled by the frequency
        (cycles per pixel), the wavelength and the kernel's size: kernels (real
        part, each scaled to a ``tile``-pixel square and to its own peak: red
        positive, blue negative), then the responses the features are computed
        from (the first part of ``response``: magnitude in viridis, real or
        imaginary parts red/blue; each tile scaled to its own peak), with the
        pooling cells as thin lines (``result=pooled``).

        Returns
        -------
        figure : :class:`featx.picture.Figure`
            Regions ``picture``, ``caption``, ``kernels``, ``responses`` and
            their tiles (``kernels tile S O``, ``kernels tile header O``,
            ``kernels tile row S``, ``responses tile S O``...), ``kernel key``,
            ``response key``.
        """
        import cv2

        from .. import picture as pic

        p = self.params
        ns, no = p.n_scales, p.n_orientations
        h, w = image.shape[:2]
        th = max(1, round(tile * min(4.0, max(0.25, h / max(1, w)))))  # maps 96 px wide, 24..384 tall
        style = pic.Style()
        ker_tiles = [[None] * no for _ in range(ns)]
        for info, ker in zip(self.kernel_info, self.kernels):
            big = cv2.resize(ker.real.astype(np.float32), (tile, tile),
                             interpolation=cv2.INTER_NEAREST if max(ker.shape) < tile
                             else cv2.INTER_AREA)
            ker_tiles[info.scale][info.orientation] = pic.diverging_rgb(big)
        part = self.parts[0]
        rows, cols = p.grid
        map_tiles = [[None] * no for _ in range(ns)]
        buf = [np.empty((h, w), np.float32)]
        for info, r in zip(self.kernel_info, self.complex_responses(image)):
            self._parts_into(r, buf)
            small = cv2.resize(buf[0], (tile, th), interpolation=cv2.INTER_AREA)
            if part == "mag":
                peak = float(small.max())
                rgb = pic.colormap(small / peak if peak > 0 else small, "viridis")
            else:
                rgb = pic.diverging_rgb(small)
            if p.result == "pooled":
                for k in range(1, rows):
                    rgb[min(th - 1, round(k * th / rows)), :] = 255
                for k in range(1, cols):
                    rgb[:, min(tile - 1, round(k * tile / cols))] = 255
            map_tiles[info.scale][info.orientation] = rgb
        by_scale = {i.scale: i for i in self.kernel_info}
        labels = []
        for si in range(ns):
            f = by_scale[si].frequency
            kh, kw = self.kernels[si * no].shape
            labels.append([f"f {pic.number(f)} c/px", f"(waves {pic.number(1.0 / f)} px)",
                           f"kernel {kw}x{kh} px"])
        heads = [f"{pic.number(180.0 * o / no, 4)} deg" for o in range(no)]
        kernels = pic.grid(ker_tiles, style, row_labels=labels, col_labels=heads,
                           heading="kernels (real part; orientation = direction of the wave, "
                                   "0 deg = vertical stripes; each drawn as a square)")
        what = {"mag": "magnitude", "real": "real part", "imag": "imaginary part"}[part]
        cells = f", lines: the {rows}x{cols} pooling cells" if p.result == "pooled" else ""
        responses = pic.grid(map_tiles, style, row_labels=labels, col_labels=heads,
                             heading=f"responses of the image: {what}{cells}")
        body = pic.stack([("kernels", kernels), ("responses", responses)], gap=style.px(6))
        kkey = pic.colour_bar(lambda t: pic.diverging_rgb(2 * t - 1), -1.0, 1.0,
                              "kernel value / its peak", style,
                              tick_labels=["-peak (blue)", "0", "+peak"])
        if part == "mag":
            rkey = pic.colour_bar(lambda t: pic.colormap(t, "viridis"), 0.0, 1.0,
                                  "response magnitude / the map's peak", style)
        else:
            rkey = pic.colour_bar(lambda t: pic.diverging_rgb(2 * t - 1), -1.0, 1.0,
                                  f"response {what} / the map's peak", style)
        if p.result == "pooled":
            st = "mean and std" if p.stats == "mean-std" else "mean"
            out = f"the {st} of each response over each of {rows}x{cols} cells"
        else:
            out = "the response maps themselves"
        title = (f"gabor: {ns} scales x {no} orientations = {self.n_kernels} kernels; the "
                 f"features are {out}")
        fig = pic.with_caption(body.pixels, title, [("kernel key", kkey), ("response key", rkey)],
                               style, regions=body.regions)
        return fig
