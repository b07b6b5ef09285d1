"""Viola–Jones object detection with OpenCV's Haar cascades.

Finds regions (faces, eyes, or whatever a cascade XML file was trained on)
in an image, so that a region list can be written next to the image paths
and any extractor can later run per region.

The cascades are located, not downloaded: OpenCV 4.x wheels
(``opencv-python``, ``opencv-python-headless``) ship the standard Haar
cascades in ``cv2.data.haarcascades``, so detection works offline on a fresh
install.  A cascade is named either by its short name (``frontalface_default``
for ``haarcascade_frontalface_default.xml``; the ``haarcascade_`` prefix and
the ``.xml`` suffix are optional) or by the path of any cascade XML file.

Example
-------
>>> from featx.regions import detect_regions
>>> boxes = detect_regions(image)                     # doctest: +SKIP
>>> boxes                                             # doctest: +SKIP
array([[177,  66,  95,  95]], dtype=int32)            # x, y, w, h
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import UsageError
from .extractor import param
from .tracking import DEFAULT_MAX_GAP, DEFAULT_MIN_IOU

#: Default cascade: OpenCV's frontal face detector (Lienhart's Haar cascade).
DEFAULT_CASCADE = "frontalface_default"

#: Columns of a region row, in order (after the image key).
REGION_COLUMNS = ("x", "y", "w", "h")

#: Default ``detect_size``: the long side, in pixels, of the copy the cascade
#: works on.  Chosen from ``benchmarks/bench_detect.py`` (docs/extractors.md, ``featx
#: detect``): photos up to 640 px (all the samples) are searched as they are,
#: so their boxes do not change; a 12-MP photo is searched at about 1/6 of its
#: side, >= 10x faster end to end, and without the false faces that sensor
#: noise and fine texture give at full resolution.  The price: the smallest
#: region found by default is the cascade's window (24 px) times long side /
#: 640, e.g. 150 px on a 4000x3000 photo; ``min_size`` lowers it.
DEFAULT_DETECT_SIZE = 640
#: Smallest ``detect_size`` accepted (other than 0): a few cascade windows.
MIN_DETECT_SIZE = 64


@dataclass(frozen=True)
class DetectParams:
    """Parameters of cascade detection, declared once with :func:`param`.

    The ``featx detect`` command derives its options from this declaration
    (``featx.extractor.param_infos(DetectParams)``), and the ``haar``
    extractor uses the same values for ``featx show haar``.
    """

    cascade: str = param(DEFAULT_CASCADE,
                         "Haar cascade: a name from OpenCV's bundled set (frontalface_default, "
                         "frontalface_alt, frontalface_alt2, profileface, eye, "
                         "eye_tree_eyeglasses, smile, fullbody, upperbody, ...) or the path of "
                         "a cascade XML file", metavar="NAME|XML")
    scale_factor: float = param(1.1, "step between the scales of the detection window "
                                     "(smaller is slower and finds more)", min=1.01, max=2.0)
    min_neighbors: int = param(5, "overlapping raw detections needed to keep a region "
                                  "(higher: fewer false detections)", min=0, max=100)
    min_size: int = param(0, "smallest region side in pixels of the image as decoded (0: the "
                             "cascade's window on the working copy, e.g. 24 px for "
                             "frontalface_default, x long side / --detect-size on bigger images); "
                             "the working copy is kept large enough to see regions this small",
                          min=0, max=100000)
    max_size: int = param(0, "largest region side in pixels of the image as decoded (0: no limit)",
                          min=0, max=100000)
    equalize: bool = param(False, "equalise the grey-level histogram before detecting "
                                  "(helps on low-contrast images)")
    detect_size: int = param(DEFAULT_DETECT_SIZE,
                             "the cascade works on a copy whose long side is at most this many "
                             "pixels (after --resize); boxes are mapped back to the image's own "
                             "pixels (0: full size, slower and more false detections on big photos)",
                             min=0, max=100000, metavar="PIXELS")
    track: bool = param(False, "link the boxes of consecutive frames of each video (or frame folder) "
                               "into tracks and write a track column (path,track,frame,time,x,y,w,h): "
                               "greedy IoU matching against each track's constant-velocity prediction "
                               "(featx.tracking)")
    track_iou: float = param(DEFAULT_MIN_IOU, "with --track: smallest IoU between a track's predicted "
                                              "box and a box for the box to continue the track",
                             min=0.01, max=1.0)
    track_gap: int = param(DEFAULT_MAX_GAP, "with --track: sampled frames a track may go undetected and "
                                            "still continue (0: it ends at its first miss)",
                           min=0, max=100000, metavar="FRAMES")

    def validate(self) -> None:
        from .errors import ParamError

        if self.max_size and self.max_size < self.min_size:
            raise ParamError(f"invalid value {self.max_size} for --max-size: smaller than "
                             f"--min-size {self.min_size}",
                             "valid: 0 (no limit) or a value >= --min-size")
        if 0 < self.detect_size < MIN_DETECT_SIZE:
            raise ParamError(f"invalid value {self.detect_size} for --detect-size: too small "
                             "for a cascade to find anything",
                             f"valid: 0 (full size) or {MIN_DETECT_SIZE} to 100000")
        resolve_cascade(self.cascade)
        if not self.track:
            for name, default in (("track_iou", DEFAULT_MIN_IOU), ("track_gap", DEFAULT_MAX_GAP)):
                if getattr(self, name) != default:
                    flag = "--" + name.replace("_", "-")
                    raise ParamError(f"{flag} {getattr(self, name)} is a setting of --track, which is off",
                                     f"add --track, or drop {flag}")


# ---------------------------------------------------------------------------
# Finding cascades


def cascade_dirs() -> list[Path]:
    """Folders searched for cascade names, in order.

    ``$FEATX_CASCADE_DIR`` (if set), then ``featx/data/haarcascades`` (if a
    build ships copies there), then OpenCV's ``cv2.data.haarcascades``.
    """
    dirs = []
    env = os.environ.get("FEATX_CASCADE_DIR")
    if env:
        dirs.append(Path(env))
    dirs.append(Path(__file__).resolve().parent / "data" / "haarcascades")
    try:
        import cv2

        dirs.append(Path(cv2.data.haarcascades))
    except (ImportError, AttributeError):  # pragma: no cover - OpenCV 5 / no data module
        pass
    return [d for d in dirs if d.is_dir()]


def available_cascades() -> dict[str, Path]:
    """Short name -> path of every cascade file found in :func:`cascade_dirs`.

    Earlier folders win when two hold the same name.
    """
    found: dict[str, Path] = {}
    for d in cascade_dirs():
        for p in sorted(d.glob("*.xml")):
            name = p.stem
            if name.startswith("haarcascade_"):
                name = name[len("haarcascade_"):]
            found.setdefault(name, p)
    return found


def resolve_cascade(cascade: str | os.PathLike) -> Path:
    """The XML file for a cascade name or path.

    Parameters
    ----------
    cascade : str or path-like
        A short name (``"eye"``, ``"haarcascade_eye"``, ``"haarcascade_eye.xml"``)
        or the path of a cascade XML file.

    Returns
    -------
    path : Path

    Raises
    ------
    UsageError
        Unknown name (the message lists the available names) or a path
        that does not exist.
    """
    text = os.fspath(cascade)
    path = Path(text).expanduser()
    if path.is_file():
        return path
    names = available_cascades()
    has_sep = os.sep in text or bool(os.altsep and os.altsep in text)
    if not has_sep:
        key = text[:-4] if text.lower().endswith(".xml") else text
        if key.startswith("haarcascade_"):
            key = key[len("haarcascade_"):]
        if key in names:
            return names[key]
    listing = ", ".join(sorted(names)) or "(none found: install opencv-python-headless 4.x)"
    if has_sep or text.lower().endswith(".xml"):
        raise UsageError(f"cascade file not found: {text}",
                         f"give the path of a cascade XML file or one of: {listing}")
    raise UsageError(f"unknown cascade {text!r}",
                     f"available: {listing}; or give the path of a cascade XML file")


@functools.lru_cache(maxsize=16)
def _load(path: str, mtime_ns: int):
    import cv2

    try:
        clf = cv2.CascadeClassifier()
        ok = clf.load(path)
    except Exception:  # OpenCV raises SystemError/cv2.error on malformed XML
        ok = False
    if not ok or clf.empty():
        raise UsageError(f"cannot read cascade file {path}",
                         "it must be an OpenCV cascade XML (Haar or LBP), such as those in "
                         "cv2.data.haarcascades")
    return clf


def load_cascade(cascade: str | os.PathLike):
    """A loaded ``cv2.CascadeClassifier`` (cached per file and modification time).

    Raises :class:`UsageError` for an unknown name or an unreadable file.
    """
    path = resolve_cascade(cascade)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError as exc:
        raise UsageError(f"cannot read cascade file {path}: {exc.strerror}") from None
    return _load(str(path), mtime)


# ---------------------------------------------------------------------------
# Detection


def _sort_boxes(boxes: np.ndarray) -> np.ndarray:
    boxes = np.asarray(boxes, dtype=np.int32).reshape(-1, 4)
    if len(boxes) > 1:
        # reading order: top to bottom, then left to right, then size
        order = np.lexsort((boxes[:, 3], boxes[:, 2], boxes[:, 0], boxes[:, 1]))
        boxes = boxes[order]
    return np.ascontiguousarray(boxes)


class Detector:
    """A cascade detector built once from :class:`DetectParams`, called per image.

    The cascade runs on a grey copy of the image whose long side is at most
    ``params.detect_size`` (see :meth:`working_shape`); the boxes are mapped
    back to the image's own pixels.

    Parameters
    ----------
    params : DetectParams, optional
        Defaults to ``DetectParams()`` (OpenCV's frontal face cascade).
    """

    def __init__(self, params: DetectParams | None = None):
        self.params = params if params is not None else DetectParams()
        self.cascade_path = resolve_cascade(self.params.cascade)
        self._clf = load_cascade(self.cascade_path)
        w, h = self._clf.getOriginalWindowSize()
        #: The cascade's detection window at scale 1, ``(width, height)``.
        self.window = (int(w), int(h))

    def working_shape(self, height: int, width: int,
                      pixel_size: tuple[float, float] = (1.0, 1.0)) -> tuple[int, int]:
        """The ``(height, width)`` of the copy the cascade searches for an image of this size.

        The long side is brought down to ``detect_size`` (0: kept), never
        enlarged, except as far as needed for a region of ``min_size`` (or,
        without it, ``max_size``) pixels to still cover the cascade's window.

        Parameters
        ----------
        height, width : int
            The image handed to :meth:`detect`.
        pixel_size : (float, float)
            How many pixels of the original image one pixel of that image
            spans, across and down (``--resize`` shrank it: > 1); sizes in
            the parameters are in original pixels.
        """
        p = self.params
        height, width = int(height), int(width)
        f = 1.0
        if p.detect_size and max(height, width) > p.detect_size:
            f = p.detect_size / max(height, width)
        bound = p.min_size or p.max_size
        if bound and f < 1.0:
            need = max(self.window[0] * pixel_size[0], self.window[1] * pixel_size[1]) / bound
            f = max(f, min(1.0, need))
        if f >= 1.0:
            return height, width
        return max(1, round(height * f)), max(1, round(width * f))

    def _work_image(self, gray: np.ndarray, shape: tuple[int, int]):
        """``gray`` reduced to ``shape`` by area averaging, and the size
        ``(sx, sy)`` of one reduced pixel in ``gray``'s pixels."""
        import cv2

        h, w = gray.shape
        th, tw = shape
        if (th, tw) == (h, w):
            return gray, 1.0, 1.0
        # An integer reduction first (OpenCV's fast path for INTER_AREA, ~6x
        # quicker on a 12-MP photo); it drops the last < k rows and columns.
        k = max(1, min(h // th, w // tw))
        if k > 1:
            h, w = h // k * k, w // k * k
            gray = cv2.resize(gray[:h, :w], (w // k, h // k), interpolation=cv2.INTER_AREA)
        if gray.shape != (th, tw):
            gray = cv2.resize(gray, (tw, th), interpolation=cv2.INTER_AREA)
        return gray, w / tw, h / th

    def detect_float(self, image: np.ndarray,
                     pixel_size: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
        """Like :meth:`detect`, but the boxes are not rounded: ``(N, 4)`` float64
        ``x, y, w, h`` in ``image``'s pixels, unsorted (for mapping further
        back without rounding twice)."""
        import cv2

        from .imageops import to_gray_uint8

        p = self.params
        gray = to_gray_uint8(image)
        shape = self.working_shape(gray.shape[0], gray.shape[1], pixel_size)
        work, sx, sy = self._work_image(gray, shape)
        if p.equalize:
            work = cv2.equalizeHist(work)
        # sizes are in original pixels: one of them spans 1 / (pixel_size * s) working pixels
        fx, fy = 1.0 / (pixel_size[0] * sx), 1.0 / (pixel_size[1] * sy)
        kw = {"scaleFactor": p.scale_factor, "minNeighbors": p.min_neighbors}
        if p.min_size:
            kw["minSize"] = (math.ceil(p.min_size * fx - 1e-9), math.ceil(p.min_size * fy - 1e-9))
        if p.max_size:
            kw["maxSize"] = (math.floor(p.max_size * fx + 1e-9), math.floor(p.max_size * fy + 1e-9))
        boxes = np.asarray(self._clf.detectMultiScale(work, **kw), dtype=np.float64).reshape(-1, 4)
        return boxes * np.array([sx, sy, sx, sy])

    def detect(self, image: np.ndarray) -> np.ndarray:
        """Detect regions in one image.

        Parameters
        ----------
        image : (H, W) or (H, W, 3) ndarray of uint8 or uint16
            Grayscale or RGB pixels (featx's conventions; 16-bit is reduced
            to 8 bits, as the cascades expect).

        Returns
        -------
        boxes : (N, 4) ndarray of int32
            ``x, y, w, h`` of each region in ``image``'s pixels (``x`` =
            column of the left edge, ``y`` = row of the top edge; edges
            rounded to the nearest pixel), sorted by ``y``, then ``x``, then
            size.  ``N`` may be 0.
        """
        return _round_boxes(self.detect_float(image), image.shape)


def _round_boxes(boxes: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Float ``x, y, w, h`` boxes with their edges rounded to the nearest
    pixel and clipped to an image of ``shape``; sorted."""
    h, w = int(shape[0]), int(shape[1])
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    x0, y0 = np.floor(b[:, 0] + 0.5), np.floor(b[:, 1] + 0.5)
    x1, y1 = np.floor(b[:, 0] + b[:, 2] + 0.5), np.floor(b[:, 1] + b[:, 3] + 0.5)
    x0, x1 = np.clip(x0, 0, w), np.clip(x1, 0, w)
    y0, y1 = np.clip(y0, 0, h), np.clip(y1, 0, h)
    return _sort_boxes(np.stack([x0, y0, x1 - x0, y1 - y0], axis=1))


def detect_regions(image: np.ndarray, cascade: str | os.PathLike = DEFAULT_CASCADE, *,
                   scale_factor: float = 1.1, min_neighbors: int = 5, min_size: int = 0,
                   max_size: int = 0, equalize: bool = False,
                   detect_size: int = DEFAULT_DETECT_SIZE) -> np.ndarray:
    """Detect objects in an image with a Viola–Jones Haar cascade.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray of uint8 or uint16
        Grayscale or RGB pixels.
    cascade : str or path-like
        A cascade name from OpenCV's bundled set (see
        :func:`available_cascades`) or the path of a cascade XML file.
    scale_factor : float
        Ratio between successive scales of the detection window (> 1).
    min_neighbors : int
        How many overlapping raw detections a region needs to be kept.
    min_size, max_size : int
        Smallest and largest region side in pixels (0: no bound).
    equalize : bool
        Equalise the grey-level histogram first.
    detect_size : int
        Long side, in pixels, of the copy the cascade searches (0: the
        image as it is); see :meth:`Detector.working_shape`.

    Returns
    -------
    boxes : (N, 4) ndarray of int32
        ``x, y, w, h`` per region, sorted by ``y``, then ``x``, then size.

    Raises
    ------
    featx.errors.UsageError
        Unknown cascade name (the message lists the available ones) or an
        unreadable cascade file.
    """
    from .extractor import build_params

    values = {"cascade": os.fspath(cascade), "scale_factor": scale_factor,
              "min_neighbors": min_neighbors, "min_size": min_size, "max_size": max_size,
              "equalize": equalize, "detect_size": detect_size}
    params = build_params(_DetectParamsOwner, values)
    return Detector(params).detect(image)


from .extractor import Extractor, OutputSpec  # noqa: E402  (after the declarations above)


def _resize_geometry(height: int, width: int, size: tuple[int, int], mode: str):
    """How :func:`featx.imageops.resize` maps an image of ``height`` x ``width``
    to ``size`` (width, height): ``(sx, sy, ox, oy)`` such that the resized
    image's pixel edge ``u`` (column) lies at ``(u + ox) * sx`` in the
    original, and likewise rows with ``sy`` and ``oy``.

    Mirrors ``imageops.resize`` step by step (same rounding of the scaled size
    and of the centre cut); ``test_regions`` checks the two agree.
    """
    tw, th = int(size[0]), int(size[1])
    if (height, width) == (th, tw):
        return 1.0, 1.0, 0, 0
    if mode == "crop":
        scale = max(tw / width, th / height)
        nw, nh = max(tw, round(width * scale)), max(th, round(height * scale))
        return width / nw, height / nh, (nw - tw) // 2, (nh - th) // 2
    if mode != "stretch":
        raise ValueError(f"unknown resize mode {mode!r}")
    return width / tw, height / th, 0, 0


def boxes_to_original(boxes: np.ndarray, shape: tuple[int, ...], size: tuple[int, int],
                      mode: str = "stretch") -> np.ndarray:
    """Boxes found on a resized image, in the pixels of the image before the resize.

    Parameters
    ----------
    boxes : (N, 4) array-like of int or float
        ``x, y, w, h`` on the image that :func:`featx.imageops.resize` made
        from the original with ``size`` and ``mode``.
    shape : tuple
        The original image's shape (``(H, W)`` or ``(H, W, C)``).
    size : (width, height)
        The resize target (``--resize WxH``).
    mode : {"stretch", "crop"}
        The resize mode (``--resize-mode``); ``crop`` adds the offset of the
        centre cut before scaling.

    Returns
    -------
    boxes : (N, 4) ndarray of int32
        Edges scaled back and rounded to the nearest pixel, clipped to the
        original image; sorted as :meth:`Detector.detect` sorts.
    """
    h, w = int(shape[0]), int(shape[1])
    sx, sy, ox, oy = _resize_geometry(h, w, size, mode)
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return _round_boxes(np.stack([(b[:, 0] + ox) * sx, (b[:, 1] + oy) * sy,
                                  b[:, 2] * sx, b[:, 3] * sy], axis=1), shape)


class RegionDetector(Extractor):
    """Viola–Jones cascade detection as a pipeline stage: pixels in, boxes out.

    Registered as the extractor ``detect`` and run by ``featx detect``: its output is a
    variable number of boxes per image, one CSV row each.  Boxes are always
    in the pixels of the image as decoded: the cascade runs on a copy reduced
    to ``detect_size`` (and before that to ``--resize``, if given) and the
    boxes are mapped back (``handles_resize``), so ``featx extract --regions``
    crops exactly them.  ``min_size``/``max_size`` are in those pixels too.
    """

    name = "detect"
    #: box coordinates: Euclidean
    neighbor_metric = "l2"
    summary = "Regions found by a Viola-Jones Haar cascade (x, y, w, h per region)"
    Params = DetectParams
    handles_resize = True

    def __init__(self, params: DetectParams | None = None):
        super().__init__(params)
        self._detector = Detector(self.params)
        self._tracker = None
        if self.params.track:
            from .tracking import IouTracker

            self._tracker = IouTracker(self.params.track_iou, self.params.track_gap)
            #: each box's row starts with its track id (see ``Extractor.row_keys``)
            self.row_keys = ("track",)
        else:
            # without --track its settings change nothing: an output made before they
            # existed (or with other values of them) is continued as it is
            self.runtime_params = _TRACK_PARAMS

    def output_spec(self, height: int, width: int) -> OutputSpec:
        if self._tracker is not None:
            return OutputSpec("regions", (None, 5), columns=("track",) + REGION_COLUMNS)
        return OutputSpec("regions", (None, 4), columns=REGION_COLUMNS)

    def reset(self) -> None:
        """A new video (or frame folder): its tracks are numbered from 0."""
        if self._tracker is not None:
            self._tracker.reset()

    def _tracked(self, boxes: np.ndarray) -> np.ndarray:
        """``boxes`` (N, 4) as float32 rows, led by their track ids with ``--track``."""
        boxes = np.asarray(boxes).reshape(-1, 4)
        if self._tracker is None:
            return boxes.astype(np.float32)
        ids = self._tracker.update(boxes)
        return np.column_stack([ids, boxes]).astype(np.float32).reshape(-1, 5)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Boxes ``x, y, w, h`` (N, 4); with ``track``, ``track, x, y, w, h`` (N, 5), the
        track linking this image to the ones before it since the last :meth:`reset`."""
        return self._tracked(self._detector.detect(image))

    def extract_resized(self, image: np.ndarray, size: tuple[int, int] | None,
                        mode: str = "stretch") -> np.ndarray:
        """Detect on ``image`` resized to ``size``; boxes in ``image``'s pixels."""
        if size is None:
            return self.extract(image)
        from .imageops import resize

        sx, sy, _, _ = _resize_geometry(image.shape[0], image.shape[1], size, mode)
        boxes = self._detector.detect_float(resize(image, size[0], size[1], mode), (sx, sy))
        return self._tracked(boxes_to_original(boxes, image.shape, size, mode))

    def bytes_per_pixel(self) -> float:
        """The luma, and OpenCV's image pyramid with its integral images (measured 60 bytes
        per pixel on a 2000x1500 photo)."""
        return 80.0

    def render(self, image: np.ndarray) -> np.ndarray:
        return draw_boxes(image, self._detector.detect(image))


_DetectParamsOwner = RegionDetector
#: The parameters of ``--track``.
_TRACK_PARAMS = ("track", "track_iou", "track_gap")


def build_detect_params(values: dict | None = None) -> DetectParams:
    """Validate option values (names with ``_`` or ``-``) into :class:`DetectParams`.

    Raises :class:`featx.errors.ParamError` naming the valid values, exactly
    as for extractor parameters.
    """
    from .extractor import build_params

    return build_params(_DetectParamsOwner, values)


def crop_regions(image: np.ndarray, boxes: np.ndarray) -> list[np.ndarray]:
    """The pixels of each box (clipped to the image), for running an extractor per region.

    Parameters
    ----------
    image : (H, W) or (H, W, C) ndarray
    boxes : (N, 4) array-like of int
        ``x, y, w, h`` per region.

    Returns
    -------
    crops : list of N ndarrays
        Views into ``image``; a box entirely outside gives an empty array.
    """
    h, w = image.shape[:2]
    out = []
    for x, y, bw, bh in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
        x0, y0 = max(0, x), max(0, y)
        x1, y1 = min(w, x + bw), min(h, y + bh)
        out.append(image[y0:max(y0, y1), x0:max(x0, x1)])
    return out


def draw_boxes(image: np.ndarray, boxes: np.ndarray, color=(0, 255, 0),
               thickness: int | None = None) -> np.ndarray:
    """An RGB uint8 copy of ``image`` with the boxes drawn.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray of uint8 or uint16
    boxes : (N, 4) array-like of int
        ``x, y, w, h`` per region.
    color : tuple of 3 ints
        RGB colour of the outlines.
    thickness : int, optional
        Line width in pixels; by default about 1/200 of the image size.

    Returns
    -------
    picture : (H, W, 3) ndarray of uint8
    """
    import cv2

    from .imageops import to_rgb_uint8

    out = np.ascontiguousarray(to_rgb_uint8(image)).copy()
    if thickness is None:
        thickness = max(1, round(max(out.shape[:2]) / 200))
    for x, y, bw, bh in np.asarray(boxes, dtype=np.int64).reshape(-1, 4):
        cv2.rectangle(out, (int(x), int(y)), (int(x + bw - 1), int(y + bh - 1)),
                      tuple(int(c) for c in color), thickness)
    return out
