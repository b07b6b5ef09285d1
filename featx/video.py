"""Streaming video and frame-folder reading, with frame keys and sampling.

A pure library module: it decodes frames and says which frame of the source
each one is (``index``) and when it is shown (``time``, seconds).  The
dispatcher in :mod:`featx.items` turns these frames into items.

Video files
-----------
Decoded with OpenCV's FFmpeg backend (``cv2.CAP_FFMPEG``), one frame at a
time, so memory does not grow with the length of the video.  The wheels this
project uses read H.264, HEVC, VP8/VP9, MPEG-4 part 2 (mp4v, XVID), MJPG,
FFV1 and HuffYUV in the containers ``.mp4 .m4v .mov .avi .mkv .webm`` (and
the other extensions in :data:`VIDEO_EXTENSIONS`).  AV1: the 4.x wheels
carry FFmpeg's libdav1d decoder (untested here, as OpenCV cannot write AV1);
OpenCV 5.0's wheels cannot read it.  Codecs without a decoder fail to open.

* ``index`` counts decoded frames from 0 in presentation order, whatever the
  sampling: it is the frame's position in the source.
* ``time`` is the frame's presentation timestamp in seconds, relative to the
  start of the video stream, as FFmpeg reports it for the decoded frame
  (``CAP_PROP_POS_MSEC`` after the frame is grabbed).  It is never computed
  from a nominal frame rate, so variable-frame-rate video gets its true
  times.

Frame folders
-------------
Image files of one folder, in natural order (``frame2`` before ``frame10``).
``index`` is the position in that order; ``time`` is ``index / frame_rate``
when a frame rate is given, else ``None`` (and time-based sampling is then a
usage error).

Sampling
--------
All sampling selects decoded frames; nothing is re-encoded.  See
:class:`Sampling`: every N-th frame, a target rate chosen by timestamp, a
half-open time window ``[start, end)`` and a maximum number of frames.

Errors
------
:class:`VideoError` (an :class:`~featx.errors.InputError`: per input, the run
goes on) is raised *after* every frame that could be decoded has been
yielded; its ``frames_read`` and ``partial`` say how far it got, so the frames
already written can be marked partial.  See :func:`iter_video` for what is
detected and what cannot be.
"""
from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .decode import check_memory, decode_image, special_kind
from .errors import InputError, UsageError
from .inputs import FRAME_EXTENSIONS, TIME_EPS as _TIME_EPS, VIDEO_EXTENSIONS, Sampling
from .memory import MemoryBudget
from .videoahead import decoded_ahead

__all__ = ["FRAME_EXTENSIONS", "VIDEO_EXTENSIONS", "Frame", "FrameRef", "Sampling", "VideoError", "VideoInfo",
           "decode_frames", "estimate_frames", "find_videos", "is_video", "iter_frame_folder", "iter_video",
           "list_frames", "load_frame", "natural_key", "probe_video", "read_frames", "select_frames"]

# How far short of its declared end a video may stop and still count as
# complete (see iter_video).
_SLACK_S = 0.5


# ---------------------------------------------------------------------------
# Errors


class VideoError(InputError):
    """A video (or frame folder) that could not be read to its end.

    The message does not repeat the input's path (it is in ``path``); for a
    frame folder it names the frame file that failed.

    Attributes
    ----------
    path : str
        The input.
    frames_read : int
        Frames decoded from the source before the failure (not only the
        sampled ones).  Those that were sampled have already been yielded.
    frames_yielded : int
        Sampled frames yielded before the failure.
    reason : str
        ``"missing"`` (no such file), ``"unopenable"`` (not a video, or no
        decoder for its codec: OpenCV cannot tell the two apart),
        ``"no-frames"`` (opens, but no frame decodes: an empty video or an
        undecodable stream), ``"truncated"`` (frames or time missing before
        the end the container declares: a cut or damaged file), ``"corrupt"``
        (timestamps out of order: damaged packets) or ``"unreadable-frame"``
        (a frame-folder image that cannot be read).
    """

    def __init__(self, message: str, hint: str | None = None, *, path: str | os.PathLike = "",
                 frames_read: int = 0, frames_yielded: int = 0, reason: str = "unopenable"):
        super().__init__(message, hint)
        self.path = str(path)
        self.frames_read = int(frames_read)
        self.frames_yielded = int(frames_yielded)
        self.reason = reason

    @property
    def partial(self) -> bool:
        """True when some frames were yielded before the error."""
        return self.frames_yielded > 0


# ---------------------------------------------------------------------------
# Records


class Frame(NamedTuple):
    """One decoded frame and its key.

    ``image`` is ``uint8`` RGB ``(H, W, 3)`` for video; for frame folders it
    is whatever the loader returns (the default keeps grayscale and 16-bit
    images as they are, as featx's image decoder does).
    """

    index: int
    time: float | None
    image: np.ndarray
    path: str


class FrameRef(NamedTuple):
    """A selected frame of a frame folder, not yet loaded."""

    index: int
    time: float | None
    path: str


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (see :func:`probe_video`).

    ``frame_count`` is FFmpeg's count, which for some containers (mkv, webm)
    is only an estimate from the duration and ``fps``; ``fps`` is nominal
    (for variable-frame-rate video it may be meaningless).  ``duration`` is
    ``frame_count / fps`` (0 when unknown).
    """

    path: str
    width: int
    height: int
    fps: float
    frame_count: int
    fourcc: str
    duration: float


_SKIP, _KEEP, _STOP = 0, 1, 2


class _Selector:
    """Stateful frame selection for one source (see :class:`Sampling`).

    ``keep(time)``: a further test of the frames the sampling picks (``--segments``):
    a frame it refuses is skipped (and not counted by ``max_frames``); ``until``:
    no frame at or after this time is wanted (decoding stops there)."""

    def __init__(self, s: Sampling, keep: Callable[[float | None], bool] | None = None,
                 until: float | None = None):
        self.s = s
        self.keep, self.until = keep, until
        self.seen = 0          # frames at or after start
        self.kept = 0
        self.origin: float | None = s.start
        self.next_target: float | None = None

    def decide(self, time: float | None) -> int:
        s = self.s
        if s.max_frames is not None and self.kept >= s.max_frames:
            return _STOP
        if s.end is not None and time >= s.end - _TIME_EPS:
            return _STOP
        if self.until is not None and time is not None and time >= self.until - _TIME_EPS:
            return _STOP
        if s.start is not None and time < s.start - _TIME_EPS:
            return _SKIP
        n = self.seen
        self.seen += 1
        if s.fps is not None:
            if self.origin is None:
                self.origin = time
            if self.next_target is None:
                self.next_target = self.origin
            if time < self.next_target - _TIME_EPS:
                return _SKIP
            # next target strictly after this frame's time
            x = (time - self.origin) * s.fps + _TIME_EPS * s.fps
            if x < 2.0 ** 53:
                k = math.floor(x) + 1
                self.next_target = self.origin + k / s.fps
            else:  # a rate finer than any timestamp (--fps 1e308: inf here): every frame is kept
                self.next_target = time
        elif n % s.every:
            return _SKIP
        if self.keep is not None and not self.keep(time):
            return _SKIP
        self.kept += 1
        return _KEEP

    @property
    def done(self) -> bool:
        return self.s.max_frames is not None and self.kept >= self.s.max_frames


def _as_sampling(sampling: Sampling | None, every, fps, start, end, max_frames) -> Sampling:
    if sampling is not None:
        return sampling
    return Sampling(every=every, fps=fps, start=start, end=end, max_frames=max_frames)


# ---------------------------------------------------------------------------
# Natural order and discovery


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str | os.PathLike) -> tuple:
    """Sort key for natural order: ``frame2`` < ``frame10``, case-insensitive.

    Paths compare component by component.  Ties (``f01`` vs ``f1``, ``A`` vs
    ``a``) are broken by the exact text, so the order is total and
    deterministic.
    """
    parts = Path(name).parts

    def one(s: str) -> tuple:
        pieces = _DIGITS.split(s)
        return tuple((int(p), len(p)) if i % 2 else p.casefold() for i, p in enumerate(pieces))

    return tuple(one(p) for p in parts), tuple(parts)


def is_video(path: str | os.PathLike, probe: bool = False) -> bool:
    """Whether ``path`` is a video file.

    By extension (:data:`VIDEO_EXTENSIONS`, case-insensitive).  With
    ``probe=True`` a file with another extension that is not a still image
    is also opened with FFmpeg and counts as a video if it opens (costs an
    open, a few milliseconds).  Directories are never videos.
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext in VIDEO_EXTENSIONS:
        return not p.is_dir()
    if not probe or ext in FRAME_EXTENSIONS or ext == ".gif" or not p.is_file():
        return False
    try:
        probe_video(p)
    except VideoError:
        return False
    return True


def find_videos(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Video files under a folder (by extension), in natural order of their
    relative paths.  Hidden files and folders (``.name``) are skipped."""
    root = Path(root)
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for f in filenames:
            if not f.startswith(".") and Path(f).suffix.lower() in VIDEO_EXTENSIONS:
                out.append(Path(dirpath) / f)
        if not recursive:
            break
    return sorted(out, key=lambda p: natural_key(p.relative_to(root)))


def list_frames(folder: str | os.PathLike) -> list[Path]:
    """The image files of a frame folder (not recursive), in natural order.

    Raises :class:`VideoError` (reason ``"missing"``) when the folder does not
    exist and ``"no-frames"`` when it holds no image file.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoError("no such folder", path=folder, reason="missing")
    files = [p for p in folder.iterdir()
             if p.suffix.lower() in FRAME_EXTENSIONS and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise VideoError("no image frames in the folder",
                         "frames are " + " ".join(sorted(FRAME_EXTENSIONS)),
                         path=folder, reason="no-frames")
    return sorted(files, key=lambda p: natural_key(p.name))


# ---------------------------------------------------------------------------
# Video


def _open_capture(path: Path, threads: int | None):
    import cv2

    if not path.exists():
        raise VideoError("no such file", path=path, reason="missing")
    if path.is_dir():
        raise VideoError("is a folder, not a video", path=path, reason="unopenable")
    try:
        kind = special_kind(path.stat().st_mode)
    except OSError:
        kind = None  # let the capture report it
    if kind is not None:  # a FIFO would block the run forever; a device never ends
        raise VideoError(f"not a regular file ({kind}): only regular files are read", path=path,
                         reason="unopenable")
    params = []
    if threads is not None:
        params = [cv2.CAP_PROP_N_THREADS, int(threads)]
    try:
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG, params)
    except cv2.error as exc:  # pragma: no cover - defensive
        raise VideoError(f"cannot open as a video ({exc})", path=path, reason="unopenable") from None
    if not cap.isOpened():
        cap.release()
        raise VideoError("cannot open as a video",
                         "not a video, a truncated file without its index, or a codec the "
                         "FFmpeg in OpenCV cannot decode",
                         path=path, reason="unopenable")
    return cap


def _fourcc(cap) -> str:
    import cv2

    code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    s = "".join(chr((code >> (8 * i)) & 0xFF) for i in range(4))
    return s if s.isprintable() and s.strip() else f"0x{code:08x}"


def _info(cap, path: Path) -> VideoInfo:
    import cv2

    fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    count = int(round(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    count = max(count, 0)
    fps = fps if math.isfinite(fps) and fps > 0 else 0.0
    return VideoInfo(path=str(path), width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
                     height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)), fps=fps, frame_count=count,
                     fourcc=_fourcc(cap), duration=count / fps if fps else 0.0)


def _counts_frames(path: Path) -> bool:
    """Does the container of ``path`` record its number of frames?  Matroska/WebM,
    MPEG-TS and FLV do not: FFmpeg's (OpenCV's) frame count is then its duration times
    the nominal rate, an estimate that a variable-rate video with a pause never reaches.
    Told by the file's signature; an unreadable file counts (the old rule holds)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(189)
    except OSError:
        return True
    if head.startswith((b"\x1a\x45\xdf\xa3", b"FLV")):
        return False
    return not (len(head) > 188 and head[0] == 0x47 and head[188] == 0x47)


def _to_rgb(bgr: np.ndarray) -> np.ndarray:
    """A retrieved frame in RGB order, as a new array.

    Not converted in place (``dst=bgr``): OpenCV then copies the source into a
    fresh buffer first, and under glibc's default allocator settings that
    buffer is mapped and faulted in anew for every frame: 9.2 instead of 6.3 ms
    per 720p H.264 frame decoded and converted (``benchmarks/bench_video.py``'s
    video, one thread).  The CLI's tuned allocator hid it; library callers
    paid it.
    """
    import cv2

    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def probe_video(path: str | os.PathLike) -> VideoInfo:
    """Open a video and report its size, nominal rate and declared length.

    Raises :class:`VideoError` if it cannot be opened.  Decodes nothing.
    """
    path = Path(path)
    cap = _open_capture(path, None)
    try:
        return _info(cap, path)
    finally:
        cap.release()


def estimate_frames(path: str | os.PathLike, sampling: Sampling | None = None) -> int:
    """About how many frames ``sampling`` keeps of a video, from its header (decodes
    nothing; for a progress bar's total).  1 when the header says nothing useful."""
    try:
        info = probe_video(path)
    except Exception:  # noqa: BLE001 - the run reports it, as one failed input
        return 1
    s = sampling or Sampling()
    if info.frame_count <= 0:
        return 1
    n = float(info.frame_count)
    if info.fps > 0:
        t0 = s.start or 0.0
        t1 = min(s.end, info.duration) if s.end is not None else info.duration
        span = max(0.0, t1 - t0)
        n = span * info.fps
        if s.fps is not None:
            n = min(n, span * s.fps + 1)
    n = math.ceil(n / s.every)
    if s.max_frames is not None:
        n = min(n, s.max_frames)
    return max(1, int(n))


def iter_video(path: str | os.PathLike, every: int = 1, fps: float | None = None,
               start: float | None = None, end: float | None = None,
               max_frames: int | None = None, *, sampling: Sampling | None = None,
               threads: int | None = None, keep: Callable[[float | None], bool] | None = None,
               until: float | None = None,
               ahead: bool | Callable[[Frame | None], bool] = False) -> Iterator[Frame]:
    """Decode a video one frame at a time and yield the sampled frames.

    Parameters
    ----------
    path : str or PathLike
        The video file.
    every, fps, start, end, max_frames
        Sampling, see :class:`Sampling` (or pass ``sampling=``).
    sampling : Sampling, optional
        Overrides the five keywords above.
    threads : int, optional
        FFmpeg decoding threads (``CAP_PROP_N_THREADS``); None keeps
        OpenCV's default (one per core).  Use 1 when several videos are
        decoded in parallel processes.
    keep : callable, optional
        ``keep(time)``: of the frames the sampling picks, only those it
        accepts are converted and yielded (``--segments``: the frames inside
        a segment); the others are grabbed, not converted, and not counted by
        ``max_frames``.
    until : float, optional
        Stop decoding at the first frame at or after this time (the end of
        the last segment): like ``end``, nothing after it is checked.
    ahead : bool or callable, optional
        Decode on a thread of its own, up to :data:`~featx.videoahead.AHEAD` frames ahead of
        the caller, so that decoding overlaps with what the caller does with
        each frame (a core that would otherwise idle).  True: from the first
        frame; a callable: asked between frames with the frame last yielded
        (None before the first), decoding moves to the thread from the first
        frame after it said True twice, ``videoahead.AHEAD_AFTER`` seconds apart
        (featx's workers: when there are fewer inputs in flight than cores,
        and ``AHEAD + 1`` more frames fit the memory budget).  The frames,
        their order, the
        error and when it is raised are the same either way; the thread
        ends with the iteration (closing the iterator stops it).

    Yields
    ------
    Frame
        ``(index, time, image, path)``: index in the source, time in
        seconds from the stream's timestamps, ``uint8`` RGB ``(H, W, 3)``.

    Raises
    ------
    VideoError
        After the last frame that could be decoded was yielded, when

        * the file is missing or cannot be opened (``reason`` "missing",
          "unopenable": not a video, a truncated mp4 whose index is lost, or
          an unsupported codec);
        * no frame decodes ("no-frames");
        * the frames stop short of the end the container declares
          ("truncated"): the last frame ends more than 0.5 s before the
          declared duration, or, for constant-frame-rate video (every
          timestamp on the 1/fps grid and at least half the intervals equal
          to 1/fps), more than ``max(1, 0.5 * fps)`` of the declared frames
          are missing (frames dropped in the middle of a damaged file);
        * timestamps go backwards ("corrupt": damaged packet headers).

        The half-second slack is there because a container's length may
        include a slightly longer audio track; a loss smaller than that at
        the very end goes unnoticed.  Frames that FFmpeg decodes with
        concealed damage cannot be detected through OpenCV.  Stopping early
        on purpose (``end``, ``max_frames``) checks nothing.

    Notes
    -----
    Frames that are not kept are grabbed (decoded) but not converted to
    RGB.  ``start`` is reached by decoding from the beginning, not by
    seeking, so that ``index`` stays exact for every container.
    """
    s = _as_sampling(sampling, every, fps, start, end, max_frames)
    frames = _decode_video(Path(path), s, threads, keep, until)
    if ahead is False or ahead is None:
        yield from frames
    else:
        yield from decoded_ahead(frames, ahead)


def _decode_video(path: Path, s: Sampling, threads: int | None, keep, until) -> Iterator[Frame]:
    """:func:`iter_video`'s frames, decoded in the calling thread."""
    import cv2

    cap = _open_capture(path, threads)
    try:
        info = _info(cap, path)
        sel = _Selector(s, keep, until)
        nominal = 1.0 / info.fps if info.fps else 0.0
        read = yielded = 0
        last_t = prev_t = None
        n_intervals = n_regular = n_on_grid = n_backwards = 0
        stopped = False
        while True:
            if sel.done:
                stopped = True
                break
            try:
                ok = cap.grab()
            except cv2.error:  # pragma: no cover - defensive
                ok = False
            if not ok:
                break
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            index = read
            read += 1
            if info.fps and abs(t * info.fps - round(t * info.fps)) <= 0.05:
                n_on_grid += 1
            if last_t is not None:
                n_intervals += 1
                if t <= last_t:
                    n_backwards += 1
                if nominal and abs((t - last_t) - nominal) <= 0.05 * nominal:
                    n_regular += 1
            prev_t, last_t = last_t, t
            decision = sel.decide(t)
            if decision == _STOP:
                stopped = True
                break
            if decision == _SKIP:
                continue
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                break
            rgb = _to_rgb(bgr)
            yielded += 1
            yield Frame(index, t, rgb, str(path))
        if stopped:
            return
        if read == 0:
            raise VideoError(
                "no frame could be decoded"
                + ("" if info.frame_count else " (the video holds no frames)"),
                f"codec {info.fourcc}, {info.width}x{info.height}; an empty or corrupt video, "
                "or a codec OpenCV's FFmpeg cannot decode",
                path=path, frames_read=0, frames_yielded=0, reason="no-frames")
        # Completeness against what the container declares.
        # A container's length may include a longer audio track, hence the
        # slack of half a second (or one frame) before calling a video short.
        step = max(nominal, (last_t - prev_t) if prev_t is not None else 0.0)
        short_time = bool(info.duration) and last_t + step + _SLACK_S < info.duration
        cfr = n_intervals > 0 and n_on_grid == read and n_regular >= 0.5 * n_intervals
        slack_frames = max(1, math.ceil(_SLACK_S * info.fps))
        # a count the container only estimates (duration x nominal rate) says nothing of the frames
        # of a variable-rate video with a pause: there only the last timestamp counts (short_time)
        short_count = (cfr and info.frame_count > 0 and read + slack_frames < info.frame_count
                       and _counts_frames(path))
        if n_backwards:
            raise VideoError(
                f"damaged video: timestamps go backwards {n_backwards} time(s) "
                f"in {read} frames",
                "the file is corrupt; the decoded frames were kept and are marked partial",
                path=path, frames_read=read, frames_yielded=yielded, reason="corrupt")
        if short_time or short_count:
            raise VideoError(
                f"video ends early: decoded {read} of {info.frame_count} frames, "
                f"last at {last_t:.3f} s of {info.duration:.3f} s",
                "the file is truncated or corrupt; the frames before the damage were kept "
                "and are marked partial",
                path=path, frames_read=read, frames_yielded=yielded, reason="truncated")
    finally:
        cap.release()


def read_frames(path: str | os.PathLike, indices: Iterable[int], *,
                threads: int | None = None) -> Iterator[Frame]:
    """Decode a video from its start and yield the frames numbered ``indices``.

    Frames are numbered as :func:`iter_video` numbers them (decoded frames
    from 0, in presentation order) and carry the same ``time``, so the
    frames of a ``featx detect`` row are found again exactly.  They are
    yielded in increasing order, each once; decoding stops after the last
    one.  Frames between them are grabbed but not converted.  Numbers past
    the end of the video are not yielded (the caller sees which are
    missing); nothing else is checked (the video is not read to its end).

    Raises
    ------
    VideoError
        The file is missing or cannot be opened as a video.
    """
    import cv2

    want = sorted({int(i) for i in indices})
    if not want:
        return
    path = Path(path)
    cap = _open_capture(path, threads)
    try:
        read = k = 0
        while k < len(want):
            try:
                ok = cap.grab()
            except cv2.error:  # pragma: no cover - defensive
                ok = False
            if not ok:
                break
            index = read
            read += 1
            if index != want[k]:
                continue
            k += 1
            t = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
            ok, bgr = cap.retrieve()
            if not ok or bgr is None:
                break
            rgb = _to_rgb(bgr)
            yield Frame(index, t, rgb, str(path))
    finally:
        cap.release()


# ---------------------------------------------------------------------------
# Frame folders


def load_frame(path: str | os.PathLike) -> np.ndarray:
    """Read one still frame as featx sees images, with its image decoder
    (:func:`featx.decode.decode_image`): uint8/uint16, gray or RGB, alpha dropped,
    EXIF orientation applied.  Raises :class:`VideoError` (reason
    ``"unreadable-frame"``; the decoder's reason is its ``__cause__``) if it cannot
    be decoded.
    """
    try:
        return decode_image(os.fspath(path))
    except InputError as exc:
        raise VideoError(f"frame {Path(path).name}: cannot read the image", path=path,
                         reason="unreadable-frame") from exc


def select_frames(paths: Iterable[str | os.PathLike], every: int = 1, fps: float | None = None,
                  start: float | None = None, end: float | None = None,
                  max_frames: int | None = None, *, sampling: Sampling | None = None,
                  frame_rate: float | None = None,
                  keep: Callable[[float | None], bool] | None = None) -> list[FrameRef]:
    """Apply sampling to an ordered list of frame files (nothing is read).

    ``index`` is the position in ``paths``; ``time`` is ``index /
    frame_rate``, or None without a frame rate, in which case ``fps``,
    ``start`` and ``end`` are a :class:`~featx.errors.UsageError`.
    ``keep(time)``: a further test of the frames sampling picks, as in
    :func:`iter_video`.
    """
    s = _as_sampling(sampling, every, fps, start, end, max_frames)
    if frame_rate is not None and not (frame_rate > 0 and math.isfinite(frame_rate)):
        raise UsageError(f"invalid frame rate {frame_rate!r}", "frames per second > 0")
    if s.needs_time and frame_rate is None:
        raise UsageError("sampling a frame folder by time (fps, start, end) needs its frame rate",
                         "give the folder's frame rate (--frame-rate)")
    sel = _Selector(s, keep)
    out = []
    for i, p in enumerate(paths):
        t = i / frame_rate if frame_rate is not None else None
        d = sel.decide(t)
        if d == _STOP:
            break
        if d == _KEEP:
            out.append(FrameRef(i, t, str(p)))
    return out


def decode_frames(refs: Iterable[FrameRef], max_pixels: int | None = None, memory: MemoryBudget | None = None,
                  min_size: tuple[int, int] | None = None, *,
                  lenient: bool = False) -> Iterator[tuple[FrameRef, np.ndarray | None, str | None]]:
    """Decode selected frame files one at a time with featx's image decoder
    (:func:`~featx.decode.decode_image`: header checks against ``max_pixels`` and
    ``memory``, EXIF orientation, a reduced JPEG decode to ``min_size``): ``(ref,
    pixels, None)``, or ``(ref, None, reason)`` for a frame that cannot be read (the
    others go on).  ``lenient``: accept damaged data (see ``decode_image``)."""
    for ref in refs:
        try:
            img = decode_image(ref.path, max_pixels, memory, min_size, lenient=lenient)
            check_memory(memory, img)
        except InputError as exc:
            yield ref, None, str(exc)
            continue
        yield ref, img, None


def iter_frame_folder(folder: str | os.PathLike, every: int = 1, fps: float | None = None,
                      start: float | None = None, end: float | None = None,
                      max_frames: int | None = None, *, sampling: Sampling | None = None,
                      frame_rate: float | None = None,
                      loader: Callable[[str], np.ndarray] | None = None) -> Iterator[Frame]:
    """Yield the sampled frames of a folder of images, in natural order.

    Parameters are those of :func:`select_frames`; ``loader`` reads one file
    (default :func:`load_frame`).  Only one frame is held at a time.  A
    frame that cannot be read raises :class:`VideoError` after the frames
    before it were yielded; a source that wants to skip bad frames and go on
    uses :func:`list_frames` + :func:`select_frames` and loads each itself.
    """
    refs = select_frames(list_frames(folder), sampling=_as_sampling(
        sampling, every, fps, start, end, max_frames), frame_rate=frame_rate)
    load = loader or load_frame
    for n, ref in enumerate(refs):
        try:
            img = load(ref.path)
        except VideoError as exc:
            exc.frames_read, exc.frames_yielded = ref.index, n
            raise
        except Exception as exc:
            raise VideoError(f"frame {Path(ref.path).name}: cannot read the image ({exc})", path=ref.path,
                             frames_read=ref.index, frames_yielded=n,
                             reason="unreadable-frame") from exc
        yield Frame(ref.index, ref.time, img, ref.path)
