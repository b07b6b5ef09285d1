"""Inputs: enumerate what to process (main process) and decode it (workers).

Enumeration is cheap and streaming: it yields :class:`Input` records (a path
and where its output goes), never pixels.  Decoding happens where the
extraction happens (a worker process), through :func:`load`, which yields
:class:`Item` records (a key and the decoded pixels).

What the extractor sees (documented in the README):

* 8-bit images arrive as ``uint8``, 16-bit PNG/TIFF as ``uint16``;
* grayscale files as ``(H, W)``, colour files as ``(H, W, 3)`` in RGB order;
* an alpha channel is dropped: the colour channels are used as stored;
* JPEGs with an EXIF orientation tag are rotated upright first.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from .errors import InputError

#: Extensions taken as images without looking inside (lower case).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".dib",
    ".webp", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".jp2", ".sr", ".ras", ".exr", ".hdr", ".pic",
})

# File signatures of formats OpenCV decodes, for files without a known extension.
_MAGIC = (
    b"\xff\xd8\xff",            # JPEG
    b"\x89PNG\r\n\x1a\n",       # PNG
    b"II*\x00", b"MM\x00*",      # TIFF
    b"BM",                      # BMP
    b"\x00\x00\x00\x0cjP  ",    # JPEG 2000
    b"\x76\x2f\x31\x01",        # OpenEXR
)


def sniff_image(path: str) -> bool:
    """True if the file starts with the signature of an image format."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return False
    if head.startswith(_MAGIC):
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return len(head) >= 3 and head[0:1] == b"P" and head[1:2] in b"123456" and head[2:3] in b" \t\r\n"


def is_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


# ---------------------------------------------------------------------------
# Enumeration (main process)


@dataclass(frozen=True)
class Input:
    """One thing to process, as enumerated in the main process.

    ``path`` is the path as given (or joined from a directory argument);
    ``mirror`` is the relative path under an ``npy-dir`` output folder.
    """

    path: str
    mirror: str = ""    # set by the pipeline for inputs it processes (see mirror_path)
    ident: Any = None   # the input's identity when enumerated (size, mtime[, hash]); set by the pipeline
    boxes: tuple[tuple, ...] | None = None   # regions to crop (--regions): (x, y, w, h) or (frame, time, x, y, w, h)
    kind: str = "image"  # "image", "video", "frames" (a folder of frames) or "sequence" (image files in order)
    paths: tuple[str, ...] | None = None   # the images of a "sequence"
    mirrors: tuple[str, ...] | None = None  # their mirror paths (set by the pipeline)
    committed: bool = False  # rows of it are in the output from an earlier run (set by the pipeline)


class Canonical:
    """The one name of a file, whatever its spelling: absolute, normalised
    (``./``, ``//``, ``..``, a trailing ``/`` gone) and with symbolic links
    resolved, so ``p``, ``./p``, ``$PWD/p`` and ``link-to-p`` from any working
    directory are one input.  Folders already resolved are remembered, so an
    input costs one ``lstat`` on top of the first one of its folder."""

    def __init__(self):
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        head, tail = os.path.split(path)
        if tail in ("", os.curdir, os.pardir):
            return os.path.realpath(path)
        real_head = self._dirs.get(head)
        if real_head is None:  # the folder as spelled -> its canonical name, once per folder
            if len(self._dirs) > 4096:
                self._dirs.clear()
            real_head = self._dirs[head] = os.path.realpath(head or os.curdir)
        full = os.path.join(real_head, tail)
        if os.path.islink(full):
            return os.path.realpath(full)
        return full


def mirror_path(path: str, base: str | None = None) -> str:
    """Where ``path``'s output goes under an output folder (relative, safe).

    Paths inside ``base`` (the output's own parent folder; the current
    folder if not given) keep their relative form (``photos/a/x.jpg``), so the
    layout does not depend on where featx is started; paths outside it go
    under ``_abs/`` followed by their absolute path without the leading
    separator.  Distinct input paths never share a mirror path, and no mirror
    path can leave the output folder (``..`` is resolved away before it is used).
    """
    ap = os.path.abspath(path)
    cwd = base if base is not None else os.getcwd()
    try:
        rel = os.path.relpath(ap, cwd)
    except ValueError:  # another drive on Windows
        rel = os.pardir
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        drive, tail = os.path.splitdrive(ap)
        rel = os.path.join("_abs", drive.replace(":", ""), tail.lstrip("\\/"))
    elif rel.split(os.sep, 1)[0] == "_abs":
        rel = os.path.join("_rel", rel)  # keep "_abs" free for outside paths
    return rel


@dataclass
class Enumeration:
    """Counts gathered while enumerating (read after the iterator is drained)."""

    skipped_non_images: int = 0
    skipped_videos: int = 0
    skipped_examples: list[str] = field(default_factory=list)


def is_video_name(path: str) -> bool:
    from .video import VIDEO_EXTENSIONS

    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS


def _walk(root: str, stats: Enumeration, videos: bool) -> Iterator[tuple[str, str]]:
    """(kind, path) of the images (and videos) under ``root``, recursively, in
    sorted order; names starting with a dot are skipped."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    for e in entries:
        if e.name.startswith("."):
            continue
        path = os.path.join(root, e.name)
        try:
            is_dir = e.is_dir(follow_symlinks=False)
            is_file = e.is_file()
        except OSError:
            continue
        if is_dir:
            yield from _walk(path, stats, videos)
        elif is_file:
            if is_image_name(e.name):
                yield "image", path
            elif is_video_name(e.name):
                if videos:
                    yield "video", path
                else:
                    stats.skipped_videos += 1
            elif sniff_image(path):
                yield "image", path
            else:
                stats.skipped_non_images += 1
                if len(stats.skipped_examples) < 5:
                    stats.skipped_examples.append(path)


def _frame_folders(root: str) -> Iterator[str]:
    """Folders under ``root`` (itself included) that directly hold image files, sorted."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError:
        return
    if any(not e.name.startswith(".") and e.is_file() and is_image_name(e.name) for e in entries):
        yield root
    for e in entries:
        if not e.name.startswith(".") and e.is_dir(follow_symlinks=False):
            yield from _frame_folders(os.path.join(root, e.name))


def read_path_list(stream: IO[bytes], null: bool = False) -> Iterator[str]:
    """Paths from a byte stream, one per line (or NUL-separated), streaming."""
    sep = b"\0" if null else b"\n"
    buf = b""
    while True:
        chunk = stream.read1(65536) if hasattr(stream, "read1") else stream.read(65536)
        if not chunk:
            break
        buf += chunk
        *parts, buf = buf.split(sep)
        for p in parts:
            p = p.rstrip(b"\r") if not null else p
            if p:
                yield os.fsdecode(p)
    if buf.rstrip(b"\r\n"):
        yield os.fsdecode(buf.rstrip(b"\r\n") if not null else buf)


def check_named(args: Iterable[str]) -> None:
    """Inputs named on the command line must exist: a misspelt one is a usage error
    (exit 2, nothing created), not a failed input.  (Paths read from stdin or list
    files are data: a missing one fails alone when it is read.)"""
    from .errors import UsageError

    missing = [a for a in args if a != "-" and not os.path.lexists(a)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing[:5])}"
                         + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""),
                         "check the spelling; nothing was written")


def enumerate_inputs(args: Iterable[str], *, files_from: Iterable[str] = (), null: bool = False,
                     stdin: IO[bytes] | None = None, stats: Enumeration | None = None,
                     videos: bool = False, frames: bool = False, sequence: bool = False) -> Iterator[Input]:
    """Turn command-line arguments into a stream of :class:`Input`.

    * a directory is walked recursively in sorted order; image files are
      recognised by extension or, failing that, by content; others are
      counted in ``stats`` and skipped;
    * a file (or a path from a list) is always taken: if it is missing or
      not an image, that is reported for that input when it is decoded;
    * ``-`` reads paths from ``stdin`` (newline- or NUL-separated);
    * ``files_from`` names list files with one path per line;
    * ``videos``: folders yield their video files too (a video named
      explicitly is always taken);
    * ``frames``: a folder is a set of frame sequences: each folder in it that
      directly holds images is one sequence (frames in natural order);
    * ``sequence`` (temporal extractors): consecutive image files are one
      sequence, in the order given (``flow a.png b.png``).
    """
    stats = stats if stats is not None else Enumeration()

    def expand(path: str) -> Iterator[tuple[str, str]]:
        if os.path.isdir(path):
            if frames:
                for folder in _frame_folders(path):
                    yield "frames", folder
                if videos:
                    yield from ((k, p) for k, p in _walk(path, stats, True) if k == "video")
            else:
                yield from _walk(path, stats, videos)
        elif is_video_name(path):
            yield "video", path
        else:
            yield "image", path

    def listed() -> Iterator[str]:
        for arg in args:
            if arg == "-":
                yield from read_path_list(stdin if stdin is not None else sys.stdin.buffer, null)
            else:
                yield arg
        for lf in files_from:
            if lf == "-":
                yield from read_path_list(stdin if stdin is not None else sys.stdin.buffer, null)
                continue
            with open(lf, "rb") as fh:
                yield from read_path_list(fh, null)

    group: list[str] = []

    def flush() -> Iterator[Input]:
        if group:
            yield Input(path=group[0], kind="sequence", paths=tuple(group))
            group.clear()

    for p in listed():
        for kind, path in expand(p):
            if sequence and kind == "image":
                group.append(path)
                continue
            yield from flush()
            yield Input(path=path, kind=kind)
    yield from flush()


# ---------------------------------------------------------------------------
# Decoding (worker side)


@dataclass
class Item:
    """One image to extract from: its key columns and its pixels (or why not).

    ``mirror`` is where its file goes under an ``npy-dir`` output (without
    the suffix).
    """

    key: dict[str, Any]
    image: np.ndarray | None
    mirror: str = ""
    error: str | None = None


#: FFmpeg decoding threads for videos: None = OpenCV's default; worker
#: processes set 1 (several processes already use the cores).
DECODE_THREADS: int | None = None
VIDEO_KEYS = ("path", "frame", "time")


_DECODE_FLAGS = None


def decode_image(path: str, max_pixels: int | None = None) -> np.ndarray:
    """Read and decode one image file as featx's extractors see it.

    Raises :class:`InputError` with a one-line reason (missing, unreadable,
    empty, not an image or corrupt, too large).
    """
    import cv2

    global _DECODE_FLAGS
    if _DECODE_FLAGS is None:
        _DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # EXIF orientation applied
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError:
        raise InputError("no such file (missing or vanished)") from None
    except IsADirectoryError:
        raise InputError("is a directory") from None
    except PermissionError:
        raise InputError("permission denied") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}") from None
    if data.size == 0:
        raise InputError("empty file (0 bytes)")
    if max_pixels:
        dims = _header_dims(data)
        if dims is not None and dims[0] * dims[1] > max_pixels:
            raise InputError(f"image is {dims[0]}x{dims[1]} pixels, over the limit of {max_pixels}",
                             "raise --max-pixels if this is intended")
    img = cv2.imdecode(data, _DECODE_FLAGS)
    if img is None:
        what = "corrupt or truncated image" if sniff_bytes(data[:16].tobytes()) or is_image_name(path) \
            else "not an image (unrecognised format)"
        raise InputError(f"cannot decode: {what}")
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype == np.float32 or img.dtype == np.float64:
            img = np.clip(img * 255.0, 0, 255).astype(np.uint8)  # HDR/EXR: 0..1 -> 8-bit
        else:
            raise InputError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 1:
            img = img[:, :, 0]
    return img


def sniff_bytes(head: bytes) -> bool:
    return head.startswith(_MAGIC) or (head[:4] == b"RIFF" and head[8:12] == b"WEBP")


def _header_dims(data: np.ndarray) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header without decoding, else None."""
    b = data[:65536].tobytes()
    if b.startswith(b"\x89PNG\r\n\x1a\n") and len(b) >= 24:
        return int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big")
    if b.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
                h = int.from_bytes(b[i + 5:i + 7], "big")
                w = int.from_bytes(b[i + 7:i + 9], "big")
                return w, h
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
    return None


REGION_KEYS = ("path", "x", "y", "w", "h")
#: Key columns of regions of video frames (what ``featx detect`` writes for a
#: video or a frame folder, and what ``--regions`` writes back for such a file).
VIDEO_REGION_KEYS = ("path", "frame", "time", "x", "y", "w", "h")


def _open_regions(path: str):
    """(file, csv reader, has frame column) of a regions file; UsageError if unusable."""
    import csv as _csv

    from .errors import UsageError

    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise UsageError(f"--regions {path}: cannot read: {exc.strerror or exc}") from None
    reader = _csv.DictReader(fh)
    try:
        names = reader.fieldnames or []
    except (UnicodeDecodeError, _csv.Error) as exc:
        fh.close()
        raise UsageError(f"--regions {path}: not a CSV file ({exc})") from None
    missing = [c for c in REGION_KEYS if c not in names]
    if missing:
        fh.close()
        raise UsageError(f"--regions {path}: no column {', '.join(missing)} "
                         f"(found: {', '.join(names) or 'nothing'})",
                         "a regions file has a header path,x,y,w,h (path,frame,time,x,y,w,h for video "
                         "frames), as featx detect writes")
    return fh, reader, "frame" in names


def region_keys(path: str) -> tuple[str, ...]:
    """The key columns of an output made from the regions file ``path``:
    :data:`VIDEO_REGION_KEYS` when it has a ``frame`` column (boxes of video
    frames), else :data:`REGION_KEYS`.  Raises UsageError as :func:`read_regions`."""
    fh, _, has_frames = _open_regions(path)
    fh.close()
    return VIDEO_REGION_KEYS if has_frames else REGION_KEYS


def read_regions(path: str) -> Iterator[Input]:
    """Inputs from a CSV of boxes (``path,x,y,w,h``, e.g. from ``featx detect``).

    Consecutive rows of one file become one input, decoded once; each box
    becomes one item (one output row), keyed by path and box.  Boxes are in
    the pixels of the image as decoded (EXIF orientation applied).

    A file with ``frame`` and ``time`` columns (``path,frame,time,x,y,w,h``,
    what ``featx detect`` writes for videos and frame folders) gives boxes
    ``(frame, time, x, y, w, h)``: on a video path, ``frame`` is the frame
    number as featx counts it (decoded frames from 0) and the video is decoded
    once, up to the last frame named; on an image path (a frame of a frame
    folder) the image is read and ``frame``/``time`` are carried into the key.
    A row with an empty ``frame`` is a still image.
    """
    from .errors import UsageError

    fh, reader, has_frames = _open_regions(path)
    with fh:
        current, boxes = None, []
        for n, row in enumerate(reader, start=2):
            where = f"--regions {path}, line {n}"
            try:
                box = tuple(int(float(row[c])) for c in ("x", "y", "w", "h"))
            except (TypeError, ValueError):
                raise UsageError(f"{where}: x, y, w, h must be numbers") from None
            p = row["path"]
            if not p:
                raise UsageError(f"{where}: no path")
            if has_frames:
                ftext, ttext = (row.get("frame") or "").strip(), (row.get("time") or "").strip()
                try:
                    frame = int(ftext) if ftext else None
                    time = float(ttext) if ttext else None
                except ValueError:
                    raise UsageError(f"{where}: frame must be a whole number and time a number of seconds "
                                     f"(found {ftext!r}, {ttext!r})") from None
                if frame is not None and frame < 0:
                    raise UsageError(f"{where}: frame {frame} is negative")
                if frame is None and is_video_name(p):
                    raise UsageError(f"{where}: a box in a video needs its frame number",
                                     "featx detect VIDEO writes path,frame,time,x,y,w,h")
                box = (frame, time, *box)
            if p != current and current is not None:
                yield _region_input(current, boxes)
                boxes = []
            current = p
            boxes.append(box)
        if current is not None:
            yield _region_input(current, boxes)


def _region_input(path: str, boxes: list[tuple]) -> Input:
    kind = "video" if len(boxes[0]) == 6 and is_video_name(path) else "image"
    return Input(path, boxes=tuple(boxes), kind=kind)


def _crop_box(img: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[np.ndarray | None, str | None]:
    """The pixels of box ``x, y, w, h`` of ``img``, or why there are none.

    A box must lie inside the image: one that reaches past an edge is an
    error of that region (not clipped, which would change what it holds)."""
    ih, iw = img.shape[:2]
    if w <= 0 or h <= 0:
        return None, f"empty box (w={w})" if w <= 0 else f"empty box (h={h})"
    text = f"box {x},{y},{w},{h}"
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        return None, f"{text} lies outside the image ({iw}x{ih} pixels)"
    if x < 0 or y < 0 or x + w > iw or y + h > ih:
        return None, (f"{text} is partly outside the image ({iw}x{ih} pixels); boxes are in the "
                      "image's pixels and must lie inside it")
    return np.ascontiguousarray(img[y:y + h, x:x + w]), None


def expected_mirrors(inp: Input) -> list[str] | None:
    """The mirror paths (under an ``npy-dir`` output) of the items ``inp`` gives, when
    they are known before decoding (images, regions, sequences); None for videos and
    frame folders, whose frames are only known once read."""
    if inp.boxes is not None:
        if inp.kind == "video":
            return [os.path.join(inp.mirror, "frame%06d.region-%d-%d-%d-%d" % (b[0], *b[-4:])) for b in inp.boxes]
        return ["%s.region-%d-%d-%d-%d" % (inp.mirror, *b[-4:]) for b in inp.boxes]
    if inp.kind == "sequence":
        return list(inp.mirrors or ())
    if inp.kind == "image":
        return [inp.mirror]
    return None


def _load_regions(inp: Input, max_pixels: int | None) -> Iterator[Item]:
    """Items of an input with boxes: one per box (see :func:`read_regions`)."""
    if inp.kind == "video":
        from . import video

        by_frame: dict[int, list[tuple]] = {}
        for b in inp.boxes:
            by_frame.setdefault(b[0], []).append(b)
        for fr in video.read_frames(inp.path, by_frame, threads=DECODE_THREADS):
            for _, _, x, y, w, h in by_frame.pop(fr.index):
                crop, why = _crop_box(fr.image, x, y, w, h)
                key = {"path": inp.path, "frame": fr.index, "time": fr.time, "x": x, "y": y, "w": w, "h": h}
                mirror = os.path.join(inp.mirror, "frame%06d.region-%d-%d-%d-%d" % (fr.index, x, y, w, h))
                yield Item(key, crop, mirror, error=why)
        for frame in sorted(by_frame):  # named, but the video ends before them
            for _, t, x, y, w, h in by_frame[frame]:
                key = {"path": inp.path, "frame": frame, "time": t, "x": x, "y": y, "w": w, "h": h}
                yield Item(key, None, error=f"no frame {frame}: the video ends before it")
        return
    img = decode_image(inp.path, max_pixels)
    for b in inp.boxes:
        x, y, w, h = b[-4:]
        key = {"path": inp.path, "x": x, "y": y, "w": w, "h": h}
        if len(b) == 6:  # a frame of a frame folder: frame and time as the regions file says
            key = {"path": inp.path, "frame": b[0], "time": b[1], **key}
        crop, why = _crop_box(img, x, y, w, h)
        yield Item(key, crop, f"{inp.mirror}.region-{x}-{y}-{w}-{h}", error=why)


def sampling_of(options: dict[str, Any]):
    from .video import Sampling

    return Sampling(**{k: options[k] for k in ("every", "fps", "start", "end", "max_frames") if k in options})


def load(inp: Input, max_pixels: int | None = None, **options: Any) -> Iterator[Item]:
    """Decode one input into items.

    An image file gives one item; an input with ``boxes`` (``--regions``) one
    per box, of the image or of the video frames named; a video one per
    sampled frame; a frame folder or a sequence one per frame.  Errors of the
    whole input raise :class:`InputError` (for a video, after the frames that
    could be decoded); a frame that cannot be read is an item with ``error``.
    """
    if inp.boxes is not None:
        yield from _load_regions(inp, max_pixels)
        return
    if inp.kind == "video":
        from . import video

        for fr in video.iter_video(inp.path, sampling=sampling_of(options), threads=DECODE_THREADS):
            yield Item({"path": inp.path, "frame": fr.index, "time": fr.time}, fr.image,
                       os.path.join(inp.mirror, "frame%06d" % fr.index))
        return
    if inp.kind in ("frames", "sequence"):
        from . import video

        if inp.kind == "frames":
            refs = video.select_frames(video.list_frames(inp.path), sampling=sampling_of(options),
                                       frame_rate=options.get("frame_rate"))
            if not refs:
                raise InputError("no frames (no image files, or none kept by the sampling)")
        else:
            refs = [video.FrameRef(i, None, p) for i, p in enumerate(inp.paths or ())]
        mirrors = dict(zip(inp.paths or (), inp.mirrors or ()))
        for ref in refs:
            key = {"path": ref.path, "frame": ref.index, "time": ref.time}
            try:
                img = decode_image(ref.path, max_pixels)
            except InputError as exc:
                yield Item(key, None, error=str(exc))
                continue
            mirror = mirrors.get(ref.path) or os.path.join(inp.mirror, os.path.basename(ref.path))
            yield Item(key, img, mirror)
        return
    img = decode_image(inp.path, max_pixels)
    yield Item(key={"path": inp.path}, image=img, mirror=inp.mirror)
