"""What to read: inputs enumerated in the main process.

Enumeration is cheap and streaming: it yields :class:`Input` records (a path
and what kind of input it is), never pixels.  Folders are walked in sorted
order; every entry met is taken or counted (:class:`Enumeration`); paths come
from the command line, stdin or list files; a regions file (``--regions``)
gives one input per file with its boxes.  The image, video and frame-file
extension lists and frame :class:`Sampling` live here, so that both the
decoding side (:mod:`featx.items`, :mod:`featx.video`) and the run's
checks use one declaration.
"""
from __future__ import annotations

import math
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from .decode import os_reason, sniff_image, special_kind
from .errors import UsageError
from .names import unescape_name

#: Extensions taken as images without looking inside (lower case).
IMAGE_EXTENSIONS = frozenset({
    ".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".tif", ".tiff", ".bmp", ".dib",
    ".webp", ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".jp2", ".sr", ".ras", ".exr", ".hdr", ".pic",
})

def is_image_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS


#: File extensions treated as video (lower case, with the dot).
VIDEO_EXTENSIONS = frozenset({
    ".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".mts",
    ".m2ts", ".wmv", ".flv", ".3gp", ".ogv", ".mxf",
})

#: File extensions of the still images a frame folder may hold.
FRAME_EXTENSIONS = frozenset({
    ".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pnm",
})


def is_video_name(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in VIDEO_EXTENSIONS



# ---------------------------------------------------------------------------
# Enumeration (main process)


@dataclass(frozen=True)
class Input:
    """One thing to process, as enumerated in the main process.

    ``path`` is the path as given (or joined from a directory argument);
    ``mirror`` is the relative path under an ``npy-dir`` output folder.
    """

    path: str
    mirror: str = ""    # set by the engine for inputs it processes (see mirror_path)
    ident: Any = None   # the input's identity when enumerated (size, mtime[, hash]); set by the engine
    boxes: tuple[tuple, ...] | None = None   # regions to crop (--regions): (x, y, w, h), (frame, time, x, y, w, h)
    #                                          or, from a file with a track column, (track, frame, time, x, y, w, h)
    segments: tuple[tuple, ...] | None = None  # stretches of time to keep (--segments): (start, end, label)
    kind: str = "image"  # "image", "video", "frames" (a folder of frames), "sequence" (image files in
    #                      order) or "error" (an entry met while walking a folder that fails with ``error``)
    paths: tuple[str, ...] | None = None   # the images of a "sequence"
    mirrors: tuple[str, ...] | None = None  # their mirror paths (set by the engine)
    error: str | None = None   # why this input fails (kind "error"): reported like any failed input
    canonical: bool = False  # ``path`` is known to be canonical already (found by a walk from a resolved root)
    wants: tuple[int, ...] | None = None  # the outputs of the run that need it (None: all; set by the engine)


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
            real = os.path.realpath(full)
            if os.path.exists(real):  # a broken link or a loop keeps its own name (it fails as itself)
                return real
        return full


@dataclass
class Enumeration:
    """Counts gathered while enumerating (read after the iterator is drained).

    Nothing met in a folder is passed over without a count: entries that are
    errors (an unreadable folder, a broken link named like an image) become
    inputs that fail with their reason (see :attr:`Input.error`); the others
    are counted here.
    """

    skipped_non_images: int = 0
    skipped_videos: int = 0
    skipped_special: int = 0        # FIFOs, sockets, devices (never read: a FIFO would block)
    skipped_folder_links: int = 0   # symbolic links to folders inside a walked folder (not followed)
    skipped_examples: list[str] = field(default_factory=list)

    def _skip_non_image(self, path: str) -> None:
        self.skipped_non_images += 1
        if len(self.skipped_examples) < 5:
            self.skipped_examples.append(path)


def vanished(path: str) -> bool:
    """True only if ``path`` is really gone: not when it cannot be looked at (a file in
    a folder that became unreadable is not deleted, and its output must not be pruned)."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return False


def _link_reason(exc: OSError) -> str:
    import errno

    if isinstance(exc, FileNotFoundError):
        return "broken symbolic link (its target does not exist)"
    if exc.errno == errno.ELOOP:
        return os_reason(exc)
    return f"cannot follow symbolic link: {os_reason(exc)}"


def _list(folder: str) -> tuple[list[os.DirEntry] | None, str | None]:
    """The visible entries of ``folder`` sorted by name, or (None, reason)."""
    try:
        with os.scandir(folder) as it:
            return sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name), None
    except OSError as exc:
        return None, f"cannot list folder: {os_reason(exc)}"


def _classify(e: os.DirEntry) -> tuple[str, str | None]:
    """What a folder entry is, without following a link more than once:
    ``("dir" | "file" | "special" | "dirlink" | "error", reason)``."""
    try:
        if e.is_symlink():
            try:
                mode = e.stat(follow_symlinks=True).st_mode
            except OSError as exc:
                return "error", _link_reason(exc)
            if stat.S_ISDIR(mode):
                return "dirlink", None
        elif e.is_dir(follow_symlinks=False):
            return "dir", None
        elif e.is_file(follow_symlinks=False):
            return "file", None
        else:
            mode = e.stat(follow_symlinks=False).st_mode
    except OSError as exc:  # vanished while the folder was read, or cannot be looked at
        return "error", os_reason(exc)
    if stat.S_ISREG(mode):
        return "file", None
    if stat.S_ISDIR(mode):
        return "dir", None
    return "special", special_kind(mode)


def _walk(root: str, stats: Enumeration, videos: bool,
          skip: Sequence[str] = ()) -> Iterator[tuple[str, str, str | None]]:
    """(kind, path, error) of the images (and videos) under ``root``, recursively,
    in sorted order; names starting with a dot are skipped.

    Every other entry is taken or accounted for: a folder that cannot be listed,
    and a broken link or one that cannot be followed named like an image (or a
    video taken with ``videos``), come out as ``("error", path, reason)``;
    special files (FIFOs, sockets, devices) and links to folders (not followed,
    so the walk stays inside ``root`` and cannot loop) are counted in ``stats``.
    A subfolder in ``skip`` (walked already in this run) is not entered again.
    """
    entries, why = _list(root)
    if entries is None:
        yield "error", root, why
        return
    for e in entries:
        path = os.path.join(root, e.name)
        what, reason = _classify(e)
        if what == "dir":
            if path not in skip:
                yield from _walk(path, stats, videos, skip)
        elif what == "dirlink":
            stats.skipped_folder_links += 1
        elif what == "special":
            stats.skipped_special += 1
        elif what == "error":
            if is_image_name(e.name) or (videos and is_video_name(e.name)):
                yield "error", path, reason
            elif is_video_name(e.name):
                stats.skipped_videos += 1
            else:
                stats._skip_non_image(path)
        elif is_image_name(e.name):
            yield "image", _resolved(e, path), None
        elif is_video_name(e.name):
            if videos:
                yield "video", _resolved(e, path), None
            else:
                stats.skipped_videos += 1
        elif sniff_image(path):
            yield "image", _resolved(e, path), None
        else:
            stats._skip_non_image(path)


def _resolved(entry: os.DirEntry, path: str) -> str:
    """A walked file's canonical name: a link to a file is known by its target
    (the walk's root is resolved already, so other names are canonical as they are)."""
    return os.path.realpath(path) if entry.is_symlink() else path


def _frame_folders(root: str, stats: Enumeration) -> Iterator[tuple[str, str, str | None]]:
    """("frames", folder, None) for the folders under ``root`` (itself included)
    that directly hold image files, sorted; ("error", folder, reason) for a folder
    that cannot be listed.  Links to folders are counted, not followed."""
    entries, why = _list(root)
    if entries is None:
        yield "error", root, why
        return
    kinds = [(e, _classify(e)[0]) for e in entries]
    if any(k == "file" and is_image_name(e.name) for e, k in kinds):
        yield "frames", root, None
    for e, k in kinds:
        if k == "dir":
            yield from _frame_folders(os.path.join(root, e.name), stats)
        elif k == "dirlink":
            stats.skipped_folder_links += 1
        elif k == "special":
            stats.skipped_special += 1


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
    missing = [a for a in args if a != "-" and not os.path.lexists(a)]
    if missing:
        raise UsageError(f"no such file or folder: {', '.join(missing[:5])}"
                         + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""),
                         "check the spelling; nothing was written")


def check_sampling_applies(args: Iterable[str], sampling: dict, *, files_from: Iterable[str] = (),
                           frames: bool = False) -> None:
    """Frame sampling (``--every``, ``--fps``, ``--start``, ``--end``, ``--max-frames``,
    ``--frame-rate``) picks frames of videos and frame folders.  Given when every input
    named is an image file, it would do nothing but add empty ``frame,time`` columns: a
    usage error, before any work.  (With a folder, stdin, a list file or ``--frames`` the
    inputs may hold videos or frames, and sampling applies to those.)"""
    given = [k for k in ("fps", "every", "start", "end", "max_frames", "frame_rate")
             if sampling.get(k) is not None]
    args = list(args)
    if not given or frames or list(files_from) or not args or "-" in args:
        return
    if any(is_video_name(a) or os.path.isdir(a) for a in args):
        return
    option = "--" + given[0].replace("_", "-")
    raise UsageError(f"{option} picks frames of videos and frame folders, but the inputs are images",
                     f"drop {option}, or name a video (or a folder of videos with --video, "
                     "of frame sequences with --frames)")


def enumerate_inputs(args: Iterable[str], *, files_from: Iterable[str] = (), null: bool = False,
                     stdin: IO[bytes] | None = None, stats: Enumeration | None = None,
                     videos: bool = False, frames: bool = False, sequence: bool = False) -> Iterator[Input]:
    """Turn command-line arguments into a stream of :class:`Input`.

    * a directory is walked recursively in sorted order; image files are
      recognised by extension or, failing that, by content; others are
      counted in ``stats`` and skipped (special files and links to folders
      too); a subfolder that cannot be listed, and a broken link named like
      an image, are inputs of kind ``"error"`` that fail with their reason;
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
    walked_roots: list[str] = []   # folders walked already (few): one named again is not walked again

    def covered(folder: str) -> bool:
        """Whether a walk already met everything in ``folder``: it is a walked folder, or
        inside one by names the walk enters (no dot-named part; links are resolved)."""
        for root in walked_roots:
            rel = os.path.relpath(folder, root)
            if rel == os.curdir or (not rel.startswith(os.pardir) and not os.path.isabs(rel)
                                    and not any(part.startswith(".") for part in rel.split(os.sep))):
                return True
        return False

    def expand(path: str) -> Iterator[tuple[str, str, str | None]]:
        if os.path.isdir(path):
            path = os.path.realpath(path)  # walked names come out canonical (see Canonical)
            if covered(path):  # `s s`, `s ./s/`, `s s/sub`: its images are in already, and
                return         # its skipped files must not be counted twice
            walked_roots.append(path)
            if frames:
                yield from _frame_folders(path, stats)
                if videos:  # the videos of the same folders (their other entries are counted above)
                    yield from ((k, p, e) for k, p, e in _walk(path, Enumeration(), True)
                                if k == "video" or (k == "error" and is_video_name(p)))
            else:
                yield from _walk(path, stats, videos, walked_roots[:-1])
        elif is_video_name(path):
            yield "video", path, None
        else:
            yield "image", path, None

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
        walked = os.path.isdir(p)  # names found by a walk from a resolved root are canonical already
        for kind, path, error in expand(p):
            if sequence and kind == "image":
                group.append(path)
                continue
            yield from flush()
            yield Input(path=path, kind=kind, error=error, canonical=walked)
    yield from flush()


# ---------------------------------------------------------------------------
# Decoding (worker side)



# ---------------------------------------------------------------------------
# Frame sampling

# A frame whose timestamp is this close below a time it is compared with (a sampling
# target, --start, --end, a segment's bounds) still meets it: FFmpeg's times are
# rationals turned into floats, targets are k / fps.
TIME_EPS = 1e-6


@dataclass(frozen=True)
class Sampling:
    """Which decoded frames to keep.  All options combine with AND.

    Parameters
    ----------
    every : int, default 1
        Keep every N-th frame (counted from the first frame at or after
        ``start``).  Cannot be combined with ``fps``.
    fps : float, optional
        Target rate in frames per second, chosen by timestamp: with
        ``t0 = start`` (or the first frame's time when ``start`` is None) the
        targets are ``t0 + k / fps``; a frame is kept when its time reaches
        the next target not yet met, and targets it skipped over are dropped
        (so no frame is kept twice and gaps in variable-frame-rate video
        stay gaps).  The output rate never exceeds ``fps``; a source slower
        than ``fps`` keeps every frame.
    start, end : float, optional
        Keep frames with ``start <= time < end`` (seconds).
    max_frames : int, optional
        Stop after this many kept frames (decoding stops too).
    """

    every: int = 1
    fps: float | None = None
    start: float | None = None
    end: float | None = None
    max_frames: int | None = None

    def __post_init__(self):
        if isinstance(self.every, bool) or int(self.every) != self.every or self.every < 1:
            raise UsageError(f"invalid sampling: every={self.every!r}", "an integer >= 1")
        if self.fps is not None and not (self.fps > 0 and math.isfinite(self.fps)):
            raise UsageError(f"invalid sampling: fps={self.fps!r}", "a rate > 0 frames per second")
        if self.fps is not None and self.every != 1:
            raise UsageError("sampling by --every and by --fps cannot be combined",
                             "use one of them")
        for name in ("start", "end"):
            v = getattr(self, name)
            if v is not None and not (v >= 0 and math.isfinite(v)):
                raise UsageError(f"invalid sampling: {name}={v!r}", "seconds >= 0")
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise UsageError(f"invalid sampling: end ({self.end}) <= start ({self.start})",
                             "end must be later than start")
        if self.max_frames is not None and (isinstance(self.max_frames, bool)
                                            or int(self.max_frames) != self.max_frames
                                            or self.max_frames < 1):
            raise UsageError(f"invalid sampling: max_frames={self.max_frames!r}", "an integer >= 1")

    @property
    def needs_time(self) -> bool:
        """True when a frame's time is needed to decide (fps, start or end)."""
        return self.fps is not None or self.start is not None or self.end is not None

    @property
    def is_default(self) -> bool:
        return self == Sampling()


def sampling_of(options: dict[str, Any]) -> Sampling:
    """The :class:`Sampling` of a run's source options (``every``, ``fps``...)."""
    return Sampling(**{k: options[k] for k in ("every", "fps", "start", "end", "max_frames") if k in options})


# ---------------------------------------------------------------------------
# Key columns and regions lists


#: Key columns of video frames and of frames of a frame folder.
VIDEO_KEYS = ("path", "frame", "time")
REGION_KEYS = ("path", "x", "y", "w", "h")
#: Key columns of regions of video frames (what ``featx detect`` writes for a
#: video or a frame folder, and what ``--regions`` writes back for such a file).
VIDEO_REGION_KEYS = ("path", "frame", "time", "x", "y", "w", "h")
#: ... and of tracked regions (``featx detect --track``).
TRACK_REGION_KEYS = ("path", "track", "frame", "time", "x", "y", "w", "h")


def _open_regions(path: str):
    """(file, csv reader, has frame column, has track column) of a regions file; UsageError
    if unusable."""
    import csv as _csv

    try:
        # UTF-8 (with featx's escape of names, featx.names); bytes that are not UTF-8 are
        # taken as a file name's own bytes, as os.fsdecode takes them
        fh = open(path, newline="", encoding="utf-8", errors="surrogateescape")
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
    return fh, reader, "frame" in names, "track" in names


def region_keys(path: str) -> tuple[str, ...]:
    """The key columns of an output made from the regions file ``path``:
    :data:`TRACK_REGION_KEYS` when it has a ``track`` column (``featx detect
    --track``), :data:`VIDEO_REGION_KEYS` when it has a ``frame`` column (boxes
    of video frames), else :data:`REGION_KEYS`.  Raises UsageError as
    :func:`read_regions`."""
    fh, _, has_frames, has_track = _open_regions(path)
    fh.close()
    if has_track:
        return TRACK_REGION_KEYS
    return VIDEO_REGION_KEYS if has_frames else REGION_KEYS


def read_regions(path: str) -> Iterator[Input]:
    """Inputs from a CSV of boxes (``path,x,y,w,h``, e.g. from ``featx detect``).

    The rows of one file — on any lines, however its path is spelled — become
    one input, decoded once (the file is read whole first: two inputs of one
    path would replace each other's rows); each box becomes one item (one
    output row), keyed by path and box, in the order of the file.  Boxes are in
    the pixels of the image as decoded (EXIF orientation applied).

    A file with ``frame`` and ``time`` columns (``path,frame,time,x,y,w,h``,
    what ``featx detect`` writes for videos and frame folders) gives boxes
    ``(frame, time, x, y, w, h)``: on a video path, ``frame`` is the frame
    number as featx counts it (decoded frames from 0) and the video is decoded
    once, up to the last frame named; on an image path (a frame of a frame
    folder) the image is read and ``frame``/``time`` are carried into the key.
    A row with an empty ``frame`` is a still image.

    A file with a ``track`` column (``path,track,frame,time,x,y,w,h``, what
    ``featx detect --track`` writes) gives boxes ``(track, frame, time, x, y,
    w, h)``: the track id is carried into the key (empty: None).
    """
    fh, reader, has_frames, has_track = _open_regions(path)
    folder = os.path.dirname(path) if path != "-" else ""
    if folder and os.path.realpath(folder) == os.path.realpath(os.curdir):
        folder = ""   # a list in the working folder: its paths are kept as written
    canonical = Canonical()
    groups: dict[str, tuple[str, list[tuple]]] = {}   # canonical path -> (path as first written, boxes)
    bad: list[str] = []   # lines whose box is not numbers: all are reported (the first few named)
    with fh:
        for n, row in enumerate(reader, start=2):
            where = f"--regions {path}, line {n}"
            try:
                box = tuple(int(float(row[c])) for c in ("x", "y", "w", "h"))
            except (TypeError, ValueError, OverflowError):  # OverflowError: inf, 1e400
                found = ",".join(str(row.get(c)) for c in ("x", "y", "w", "h"))
                bad.append(f"line {n} ({found})")
                continue
            p = unescape_name(row["path"] or "")
            if not p:
                raise UsageError(f"{where}: no path")
            if folder and not os.path.isabs(p):  # relative to the list's folder, as a recipe's
                p = os.path.normpath(os.path.join(folder, p))
            if has_frames or has_track:
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
            if has_track:
                ktext = (row.get("track") or "").strip()
                try:
                    track = int(ktext) if ktext else None
                except ValueError:
                    raise UsageError(f"{where}: track must be a whole number (found {ktext!r})") from None
                box = (track, *box)
            groups.setdefault(canonical(p), (p, []))[1].append(box)
    if bad:
        listed = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise UsageError(f"--regions {path}: x, y, w, h must be finite numbers: {len(bad)} bad box(es), "
                         f"on {listed}")
    for p, boxes in groups.values():
        yield _region_input(p, boxes)


def _region_input(path: str, boxes: list[tuple]) -> Input:
    kind = "video" if len(boxes[0]) >= 6 and is_video_name(path) else "image"
    return Input(path, boxes=tuple(boxes), kind=kind)




# ---------------------------------------------------------------------------
# Segments lists (--segments): the time counterpart of regions


#: Key columns of the frames of time segments (``--segments``).
SEGMENT_KEYS = ("path", "segment", "label", "frame", "time")
#: The columns a segments file must have (``label`` may follow).
SEGMENT_COLUMNS = ("path", "start", "end")
#: The longest label a segment may have, %-encoded as it is in an npy-dir file name.
LABEL_MAX = 200


def _segment_lines(path: str) -> list[tuple[int, str, float, float, str | None]]:
    """``(line, path, start, end, label)`` of every row of the segments file ``path``, in
    file order, each checked (see :func:`read_segments`); paths relative to the file's
    folder are joined to it.  Raises UsageError, naming the line."""
    import csv as _csv
    import urllib.parse

    try:
        # UTF-8 (with featx's escape of names, featx.names), as a regions file
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
            table = list(_csv.reader(fh))
    except OSError as exc:
        raise UsageError(f"--segments {path}: cannot read: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, _csv.Error) as exc:
        raise UsageError(f"--segments {path}: not a CSV file ({exc})") from None
    hint = "a segments file has a header path,start,end or path,start,end,label (seconds), as featx segments writes"
    cols = {"path": 0, "start": 1, "end": 2, "label": 3}   # a file without a header: in this order
    first = 1
    if table and table[0] and table[0][0].strip().lower() == "path":
        names = [c.strip().lower() for c in table[0]]
        missing = [c for c in SEGMENT_COLUMNS if c not in names]
        if missing:
            raise UsageError(f"--segments {path}: no column {', '.join(missing)} "
                             f"(found: {', '.join(table[0]) or 'nothing'})", hint)
        cols = {c: names.index(c) for c in ("path", "start", "end", "label") if c in names}
        first = 2
    folder = os.path.dirname(path) if path != "-" else ""
    if folder and os.path.realpath(folder) == os.path.realpath(os.curdir):
        folder = ""   # a list in the working folder: its paths are kept as written
    out: list[tuple[int, str, float, float, str | None]] = []
    bad: list[str] = []   # lines whose times are not numbers: all are reported (the first few named)
    for n, row in enumerate(table[first - 1:], start=first):
        if not any(f.strip() for f in row):
            continue   # a blank line
        where = f"--segments {path}, line {n}"
        if (len(row) not in (3, 4)) if first == 1 else len(row) <= max(cols["path"], cols["start"], cols["end"]):
            raise UsageError(f"{where}: {len(row)} fields", hint)
        field = {c: (row[i] if i < len(row) else "") for c, i in cols.items()}
        try:
            start, end = float(field["start"]), float(field["end"])
            if not (math.isfinite(start) and math.isfinite(end)):
                raise ValueError
        except ValueError:
            bad.append(f"line {n} ({field['start']},{field['end']})")
            continue
        p = unescape_name(field["path"])
        if not p:
            raise UsageError(f"{where}: no path")
        if folder and not os.path.isabs(p):  # relative to the list's folder, as a recipe's
            p = os.path.normpath(os.path.join(folder, p))
        if start < 0:
            raise UsageError(f"{where}: start {start:g} is negative", "times are seconds from the video's start")
        if start >= end:
            raise UsageError(f"{where}: start {start:g} is not before end {end:g}",
                             "a segment keeps the frames with start <= time < end")
        label = unescape_name(field.get("label") or "")
        if len(urllib.parse.quote(label, safe="", errors="surrogateescape")) > LABEL_MAX:
            raise UsageError(f"{where}: the label is too long ({len(label)} characters)",
                             f"a label is a short name: at most {LABEL_MAX} ASCII characters "
                             "(it names files of an npy-dir output)")
        out.append((n, p, start, end, label or None))
    if bad:
        listed = ", ".join(bad[:10]) + (f" and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise UsageError(f"--segments {path}: start and end must be finite numbers of seconds: "
                         f"{len(bad)} bad segment(s), on {listed}")
    return out


def read_segments(path: str) -> Iterator[Input]:
    """Inputs from a CSV of time segments (``path,start,end[,label]``, seconds, e.g.
    from ``featx segments``; a file without a header line has these columns in this order).

    The rows of one video (or frame folder) — on any lines, however its path is
    spelled — become one input, decoded once; its segments are kept in file order
    (a row's ``segment`` key is its 0-based place among that path's segments) and
    keep the frames with ``start <= time < end`` (see :func:`segments_holding`).  Paths
    are relative to the file's folder, as in a regions file.  A path named like a
    video is a video; a folder is a frame folder (its times need ``--frame-rate``);
    anything else is refused, as are rows without a path, times that are not finite
    numbers (all such lines are named), a negative start, and ``start >= end``.
    An empty ``label`` (or no ``label`` column) is None.
    """
    canonical = Canonical()
    groups: dict[str, tuple[str, str, list[tuple]]] = {}   # canonical path -> (path as written, kind, segments)
    for n, p, start, end, label in _segment_lines(path):
        key = canonical(p)
        if key not in groups:
            if is_video_name(p):
                kind = "video"
            elif os.path.isdir(p):
                kind = "frames"
            else:
                raise UsageError(f"--segments {path}, line {n}: {p} is not a video or a frame folder",
                                 "segments cut videos (and frame folders, with --frame-rate); "
                                 "for still images use --regions or name them as INPUTS")
            groups[key] = (p, kind, [])
        groups[key][2].append((start, end, label))
    for p, kind, segs in groups.values():
        yield Input(p, segments=tuple(segs), kind=kind)


def segment_table(path: str) -> dict[str, tuple[tuple[float, float, str | None], ...]]:
    """The segments of the file ``path`` by canonical path (:class:`Canonical`), each
    path's ``(start, end, label)`` in file order — read and checked as
    :func:`read_segments` reads them, for rows that exist already (``featx pool
    --segments``): the paths are not looked at (a video may be gone since)."""
    canonical = Canonical()
    out: dict[str, list[tuple]] = {}
    for _, p, start, end, label in _segment_lines(path):
        out.setdefault(canonical(p), []).append((start, end, label))
    return {p: tuple(v) for p, v in out.items()}


def segments_holding(segments: Sequence[tuple], time: float | None) -> list[int]:
    """The indices of ``segments`` ((start, end, label) each) that hold a frame shown at
    ``time``: ``start <= time < end``, with the tolerance of the sampling's ``--start``
    and ``--end`` (a time within 1e-6 s below a bound counts as on it, as FFmpeg's times
    are rationals turned into floats).  None (a frame without a time) is in none."""
    if time is None:
        return []
    return [j for j, (a, b, _) in enumerate(segments) if a - TIME_EPS <= time < b - TIME_EPS]


class SegmentIndex:
    """:func:`segments_holding` for the frames of one video in time order, without
    looking at every segment for every frame: a sweep over the segments sorted by start
    keeps those that have begun and not ended.  A time earlier than the one before
    (damaged timestamps) starts the sweep again, so the answer is always the same as
    :func:`segments_holding`'s."""

    def __init__(self, segments: Sequence[tuple]):
        self.segments = tuple(segments)
        self._order = sorted(range(len(self.segments)), key=lambda j: self.segments[j][0])
        self._reset()

    def _reset(self) -> None:
        self._next = 0                 # the next segment (in start order) not yet begun
        self._active: list[int] = []   # begun, not known to have ended
        self._last: float | None = None

    def holding(self, time: float | None) -> list[int]:
        """The indices (in file order) of the segments with ``start <= time < end``."""
        if time is None:
            return []
        if self._last is not None and time < self._last:
            self._reset()
        self._last = time
        segs, order = self.segments, self._order
        while self._next < len(order) and segs[order[self._next]][0] - TIME_EPS <= time:
            self._active.append(order[self._next])
            self._next += 1
        self._active = [j for j in self._active if time < segs[j][1] - TIME_EPS]
        return sorted(self._active)
