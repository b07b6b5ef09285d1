"""SIFT keypoints and descriptors (OpenCV), dense SIFT, and their encodings.

Output
------
* Default (detected keypoints, ``--encode none``): a :class:`~featx.extractor.Keypoints`
  per image.  ``points`` is float32 ``(N, 6)`` with columns

  ``x, y``
      position in pixels of the input image (pixel centres at integer
      coordinates, origin at the top-left pixel, ``y`` down);
  ``size``
      OpenCV's keypoint diameter: ``2 * sigma_kp`` in input pixels, where
      ``sigma_kp`` is the scale of the detection;
  ``angle``
      dominant orientation in degrees, ``[0, 360)``, in image coordinates:
      the direction ``(cos a, sin a)`` in ``(x, y)`` with ``y`` pointing down,
      i.e. measured clockwise on screen from the ``+x`` axis;
  ``response``
      the DoG contrast at the extremum (OpenCV's response);
  ``octave``
      the signed octave number decoded from OpenCV's packed ``kp.octave``
      (low byte as a signed char): ``-1`` is the 2x-upsampled first octave,
      ``0`` the input resolution, ``o`` a ``2^o`` downsampling.  The layer
      within the octave is dropped.

  ``descriptors`` is float32 ``(N, 128)`` as OpenCV computes them (entries
  are integers 0..255, L2 norm ~512), or with ``--root-sift`` the RootSIFT
  transform ``sqrt(d / sum(d))`` (Arandjelović & Zisserman 2012; unit L2
  norm; an all-zero descriptor stays zero).  Rows are ordered by decreasing
  response, ties by increasing x, y, size, angle, octave, so ``--max-keypoints
  N`` keeps exactly the first N rows.  An image without keypoints (e.g. a
  flat one) gives N = 0, not an error.

* ``--dense``: upright descriptors on a regular grid, one fixed-length vector
  per image.  For an image ``W`` wide, with ``s = step`` and ``p = scale``::

      nx = max(1, floor((W - p) / s) + 1)
      x0 = max(0, floor((W - 1 - (nx - 1) * s) / 2))
      x_i = x0 + i * s,   i = 0 .. nx-1

  and the same for rows with ``H``: the grid is centred and, when the image
  is at least ``p`` pixels wide, every ``p x p`` patch lies inside it.  The
  descriptor at each point describes a ``p x p`` patch (4 x 4 spatial bins of
  ``p / 4`` pixels; OpenCV keypoint size ``p / 6``, angle 0) on the level
  of OpenCV's Gaussian pyramid whose blur is nearest ``p / 12``, never finer
  than octave 0, layer 0.  The vector is the ``ny * nx * 128`` descriptors
  concatenated row by row (y outer, x inner).

* ``--encode bovw|vlad|fisher --codebook FILE``: the (detected or dense)
  descriptors encoded into one vector, see :mod:`featx.encoding`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..encoding import FeatureEncoder, EncodingParams
from ..errors import ParamError
from ..extractor import Extractor, Keypoints, OutputSpec, param
from ..imageops import to_gray_uint8

DESCRIPTOR_LENGTH = 128


@dataclass(frozen=True)
class _SIFTParams:
    max_keypoints: int = param(0, "keep the N strongest keypoints by response (ties broken by "
                               "position, size, angle); 0 = keep all", min=0, max=1_000_000,
                               metavar="N")
    n_octave_layers: int = param(3, "scale levels per octave in the DoG pyramid (Lowe: 3)",
                                 min=1, max=10)
    contrast_threshold: float = param(0.04, "minimum DoG contrast of a keypoint (OpenCV divides "
                                      "it by --n-octave-layers); larger = fewer keypoints",
                                      min=0.0, max=1.0)
    edge_threshold: float = param(10.0, "maximum principal-curvature ratio; larger = more "
                                  "edge-like keypoints kept", min=1.0, max=1000.0)
    sigma: float = param(1.6, "Gaussian blur of octave 0 in pixels", min=0.5, max=10.0)
    root_sift: bool = param(False, "RootSIFT: L1-normalise each descriptor, then square root "
                            "(Hellinger kernel; unit L2 norm)")
    dense: bool = param(False, "dense SIFT: upright descriptors on a centred regular grid, one "
                        "fixed-length vector per image (see --step, --scale)")
    step: int = param(8, "dense SIFT: grid spacing in pixels", min=1, max=4096)
    scale: int = param(16, "dense SIFT: side of the square patch each descriptor describes, in "
                       "pixels (4x4 bins of scale/4 pixels)", min=4, max=4096)


def decode_octave(packed: np.ndarray) -> np.ndarray:
    """Signed octave from OpenCV's packed ``KeyPoint.octave`` (low byte, signed char).

    Parameters
    ----------
    packed : ndarray of int, shape (N,)

    Returns
    -------
    ndarray of int64, shape (N,)
    """
    o = np.asarray(packed, dtype=np.int64) & 255
    return np.where(o >= 128, o - 256, o)


def root_sift(descriptors: np.ndarray) -> np.ndarray:
    """RootSIFT: ``sqrt(d / sum(d))`` row-wise (zero rows stay zero).

    Parameters
    ----------
    descriptors : ndarray, shape (N, D), non-negative

    Returns
    -------
    ndarray, shape (N, D), float32
    """
    d = np.asarray(descriptors, dtype=np.float32)
    s = d.sum(axis=1, keepdims=True)
    out = np.divide(d, s, out=np.zeros_like(d), where=s > 0)
    return np.sqrt(out, out=out)


def dense_grid_axis(length: int, step: int, scale: int) -> np.ndarray:
    """Grid coordinates along one axis of ``length`` pixels (see the module docstring).

    Returns
    -------
    ndarray of int64, shape (n,)
    """
    n = max(1, (length - scale) // step + 1)
    x0 = max(0, (length - 1 - (n - 1) * step) // 2)
    return x0 + step * np.arange(n, dtype=np.int64)


class SIFT(Extractor):
    """SIFT (Lowe 2004) keypoints with 128-d descriptors, via OpenCV.

    Detected keypoints (variable count per image: use ``--format npy-dir`` or
    an encoding), dense SIFT on a grid (``--dense``: one fixed-length vector),
    or either encoded with a codebook into a bag of visual words, VLAD or
    Fisher vector (``--encode``, ``--codebook``; learn the codebook with
    ``featx codebook sift IMAGES... -k K -o FILE``).

    Keypoints are ``(N, 6)`` float32: x, y, size, angle (degrees, clockwise
    on screen from +x), response, octave (signed; -1 = upsampled first
    octave), ordered by decreasing response.  Descriptors are ``(N, 128)``
    float32 (OpenCV scale 0..255, or RootSIFT with unit norm).  A flat image
    gives zero keypoints, and encodes to the zero vector.
    """

    name = "sift"
    #: its encodings are already power (square-root) and L2 normalised, which makes L2 the
    #: Hellinger distance for BoVW and the usual metric for VLAD/Fisher
    neighbor_metric = "l2"
    has_local_descriptors = True
    summary = "SIFT keypoints + 128-d descriptors, dense SIFT, BoVW/VLAD/Fisher encodings"
    descriptor_length = DESCRIPTOR_LENGTH

    @dataclass(frozen=True)
    class Params(EncodingParams, _SIFTParams):
        def validate(self) -> None:
            if self.dense and self.max_keypoints:
                raise ParamError("sift: --max-keypoints applies to detected keypoints, not --dense",
                                 "drop --max-keypoints, or use a larger --step")
            EncodingParams.validate(self)

    def __init__(self, params: Any = None):
        super().__init__(params)
        self._sift = None
        self._grids: dict[tuple[int, int], tuple[np.ndarray, list]] = {}
        self.encoder = FeatureEncoder(self.params, extractor=self.name,
                               descriptor=self.descriptor_signature(), dim=DESCRIPTOR_LENGTH)

    # OpenCV objects do not pickle: rebuild them lazily in each process.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_sift"] = None
        state["_grids"] = {}
        return state

    def descriptor_signature(self) -> dict:
        """The parameters that define the descriptor space (a codebook must match them).

        Detection thresholds and ``max_keypoints``/``step`` only change which
        or how many descriptors an image gives, so they are not included.
        """
        p = self.params
        sig = {"root_sift": p.root_sift, "dense": p.dense, "sigma": p.sigma,
               "n_octave_layers": p.n_octave_layers}
        if p.dense:
            sig["scale"] = p.scale
        return sig

    @property
    def sift(self):
        if self._sift is None:
            import cv2

            p = self.params
            self._sift = cv2.SIFT_create(0, p.n_octave_layers, p.contrast_threshold,
                                         p.edge_threshold, p.sigma)
        return self._sift

    # -- output ------------------------------------------------------------

    def grid_shape(self, height: int, width: int) -> tuple[int, int]:
        """Dense grid rows and columns ``(ny, nx)`` for an image of this size."""
        p = self.params
        return (len(dense_grid_axis(height, p.step, p.scale)),
                len(dense_grid_axis(width, p.step, p.scale)))

    def grid(self, height: int, width: int) -> np.ndarray:
        """Dense grid points ``(ny * nx, 2)`` as ``x, y`` (int64), row by row."""
        p = self.params
        ys = dense_grid_axis(height, p.step, p.scale)
        xs = dense_grid_axis(width, p.step, p.scale)
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1)

    def output_spec(self, height: int, width: int) -> OutputSpec:
        if self.encoder.enabled:
            return OutputSpec("vector", (self.encoder.length,))
        if self.params.dense:
            ny, nx = self.grid_shape(height, width)
            return OutputSpec("vector", (ny * nx * DESCRIPTOR_LENGTH,))
        return OutputSpec("keypoints", (None, DESCRIPTOR_LENGTH))

    def extract(self, image: np.ndarray) -> np.ndarray | Keypoints:
        feats = self.describe(image)
        if self.encoder.enabled:
            return self.encoder(feats, image.shape[0], image.shape[1])
        if self.params.dense:
            return feats.descriptors.reshape(-1)
        return feats

    def working_memory(self, height: int, width: int) -> int:
        """OpenCV's scale space on the image upsampled 2x (measured 235 bytes per pixel of
        the input on a 2000x1500 photo); dense SIFT: the luma and the descriptors of the
        grid (measured 35 bytes per pixel at step 8, 67 at step 4); encodings: per
        descriptor, its distances (or posteriors) to the K words and its squares."""
        p = self.params
        if p.dense:
            ny, nx = self.grid_shape(height, width)
            n = ny * nx
            need = 40 * height * width + 2 * 128 * 4 * n
        else:
            n = height * width // 50   # a generous keypoint density for photos
            if p.max_keypoints:
                n = min(n, 4 * p.max_keypoints)  # all are found before the strongest are kept
            need = 272 * height * width + 3 * 128 * 4 * n
        cb = self.encoder.codebook
        if cb is not None:
            need += n * (cb.k + cb.dim) * 16
        return int(need)

    # -- local features ------------------------------------------------------

    def describe(self, image: np.ndarray) -> Keypoints:
        """The local features of ``image``, whatever ``encode`` is set to.

        Detected keypoints, or the dense grid with ``dense``; RootSIFT
        applied when asked.  This is what codebooks are learnt from.

        Returns
        -------
        Keypoints
            ``points`` float32 (N, 6), ``descriptors`` float32 (N, 128).
        """
        gray = to_gray_uint8(image)
        if self.params.dense:
            pts, desc = self._dense(gray)
        else:
            pts, desc = self._detect(gray)
        if self.params.root_sift:
            desc = root_sift(desc)
        return Keypoints(points=pts, descriptors=desc)

    def _detect(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        kps, desc = self.sift.detectAndCompute(gray, None)
        n = len(kps)
        if n == 0 or desc is None:
            return (np.zeros((0, 6), np.float32), np.zeros((0, DESCRIPTOR_LENGTH), np.float32))
        raw = np.array([(k.pt[0], k.pt[1], k.size, k.angle, k.response, k.octave) for k in kps],
                       dtype=np.float64)
        pts = raw.astype(np.float32)
        pts[:, 5] = decode_octave(raw[:, 5].astype(np.int64))
        # decreasing response; ties: x, y, size, angle, octave (lexsort: last key is primary)
        order = np.lexsort((pts[:, 5], pts[:, 3], pts[:, 2], pts[:, 1], pts[:, 0], -pts[:, 4]))
        cap = self.params.max_keypoints
        if cap and n > cap:
            order = order[:cap]
        return pts[order], np.ascontiguousarray(desc[order], dtype=np.float32)

    def _dense_keypoints(self, height: int, width: int) -> tuple[np.ndarray, list]:
        key = (height, width)
        if key not in self._grids:
            import cv2

            p = self.params
            xy = self.grid(height, width)
            size = p.scale / 6.0
            # pyramid level whose blur (sigma * 2^(level / S)) is nearest the patch's scale size / 2
            level = max(0, round(p.n_octave_layers * math.log2((size / 2.0) / p.sigma)))
            octave, layer = divmod(level, p.n_octave_layers)
            packed = (octave & 255) | (layer << 8)
            kps = [cv2.KeyPoint(float(x), float(y), size, 0.0, 0.0, packed) for x, y in xy]
            pts = np.zeros((len(kps), 6), np.float32)
            pts[:, :2] = xy
            pts[:, 2] = size
            pts[:, 5] = octave
            self._grids[key] = (pts, kps)
        return self._grids[key]

    def _dense(self, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pts, kps = self._dense_keypoints(*gray.shape[:2])
        out_kps, desc = self.sift.compute(gray, kps)
        if desc is None or len(out_kps) != len(kps):  # pragma: no cover - OpenCV contract
            raise RuntimeError("OpenCV dropped dense keypoints")
        return pts.copy(), np.ascontiguousarray(desc, dtype=np.float32)

    # -- picture -------------------------------------------------------------

    #: Keypoint colours by octave (RGB): -1 (2x upsampled), 0, 1, 2, 3, 4 and coarser.
    OCTAVE_COLOURS = ((0, 220, 255), (70, 235, 70), (255, 230, 0), (255, 140, 0),
                      (255, 50, 50), (255, 70, 255))

    @classmethod
    def octave_colour(cls, octave: int) -> tuple[int, int, int]:
        """The colour keypoints of ``octave`` are drawn in."""
        return cls.OCTAVE_COLOURS[int(min(max(octave, -1), len(cls.OCTAVE_COLOURS) - 2)) + 1]

    def render(self, image: np.ndarray) -> np.ndarray:
        """The picture ``featx show sift`` draws (see :meth:`figure`)."""
        return self.figure(image).pixels

    def figure(self, image: np.ndarray, underlay: float = 0.55):
        """The keypoints over the image, with a legend of their colours.

        The picture (image size): the image in gray dimmed to ``underlay`` of
        its brightness; each keypoint a circle of diameter ``size`` (OpenCV's
        convention, as ``DRAW_RICH_KEYPOINTS``) with a radius along its
        orientation, coloured by octave (:attr:`OCTAVE_COLOURS`).  Dense mode:
        a dot per grid point and the square patch of the first and middle
        points.  Caption: the count, and a legend of the octaves present with
        their keypoint counts and sizes.

        Returns
        -------
        figure : :class:`featx.picture.Figure`
            Regions ``picture``, ``caption``, ``legend``.
        """
        import cv2

        from .. import picture as pic

        p = self.params
        canvas = np.ascontiguousarray(pic.dim(image, underlay))
        h, w = canvas.shape[:2]
        style = pic.Style.for_size(h, w)
        pts = self.describe(image).points
        shift = 4
        f = float(1 << shift)
        th = style.thickness
        if p.dense:
            colour = self.octave_colour(int(pts[0, 5]) if len(pts) else 0)
            for x, y in pts[:, :2]:
                cv2.circle(canvas, (int(round(x * f)), int(round(y * f))), int(round(style.unit * f)),
                           colour, -1, cv2.LINE_AA, shift)
            half = p.scale / 2.0
            centre = int(np.argmin(np.hypot(pts[:, 0] - w / 2.0, pts[:, 1] - h / 2.0))) if len(pts) else 0
            for x, y in pts[[0, centre], :2] if len(pts) else []:
                cv2.rectangle(canvas, (int(round((x - half) * f)), int(round((y - half) * f))),
                              (int(round((x + half) * f)), int(round((y + half) * f))),
                              (255, 255, 255), th, cv2.LINE_AA, shift)
            xs, ys = np.unique(pts[:, 0]).size, np.unique(pts[:, 1]).size
            title = (f"dense sift: a {ys}x{xs} grid, every {p.step} px; each point (dot) is described "
                     f"by its {p.scale}x{p.scale} px patch (the first and the central one drawn as "
                     "white squares), over the image dimmed (gray)")
            entries = [(colour, f"grid point ({len(pts)}), patch {p.scale} px")]
        else:
            for x, y, size, angle, _resp, octave in pts:
                colour = self.octave_colour(int(octave))
                r = max(size / 2.0, 1.0)
                c = (int(round(x * f)), int(round(y * f)))
                cv2.circle(canvas, c, int(round(r * f)), colour, th, cv2.LINE_AA, shift)
                a = math.radians(angle)
                e = (int(round((x + r * math.cos(a)) * f)), int(round((y + r * math.sin(a)) * f)))
                cv2.line(canvas, c, e, colour, th, cv2.LINE_AA, shift)
            cap = f" (the {p.max_keypoints} strongest)" if p.max_keypoints else ""
            title = (f"sift: {len(pts)} keypoints{cap} over the image dimmed (gray); circle "
                     "diameter = keypoint size, line = orientation, colour = octave (the "
                     "pyramid level it was found at: higher = coarser)")
            entries = []
            octs = pts[:, 5].astype(int) if len(pts) else np.zeros(0, int)
            top = len(self.OCTAVE_COLOURS) - 2
            for o in sorted(set(np.minimum(octs, top).tolist())):
                sel = np.minimum(octs, top) == o
                sizes = pts[sel, 2]
                name = ("octave -1 (2x upsampled)" if o == -1 else
                        f"octave {o}+" if o == top and (octs > top).any() else f"octave {o}")
                entries.append((self.octave_colour(o),
                                f"{name}: {int(sel.sum())}, size {pic.number(sizes.min(), 2)}-"
                                f"{pic.number(sizes.max(), 2)} px"))
            if not entries:
                entries = [((128, 128, 128), "no keypoints (a flat image?)")]
        if p.encode != "none":
            title += f"; the vector is their {p.encode} encoding"
        leg = pic.legend(entries, style, shape="circle", background=(50, 50, 50))
        return pic.with_caption(canvas, title, [("legend", leg)], style)
