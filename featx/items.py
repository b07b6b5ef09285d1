"""The dispatcher: an :class:`~featx.inputs.Input` decoded into :class:`Item` records.

An image file gives one item; an input with boxes (``--regions``) one per
box; a video or frame folder with segments (``--segments``) one per sampled
frame and segment holding it; a video one per sampled frame (:mod:`featx.video`); a frame folder or a
sequence one per frame (decoded by :mod:`featx.decode`).  Runs in the worker
that extracts.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .decode import check_memory, decode_image
from .errors import InputError
from .inputs import Input, SegmentIndex, sampling_of
from .memory import MemoryBudget
from .output import layout


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



def _crop_box(img: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[np.ndarray | None, str | None]:
    """The pixels of box ``x, y, w, h`` of ``img``, or why there are none.

    A box must lie inside the image: one that reaches past an edge is an
    error of that region (not clipped, which would change what it holds)."""
    ih, iw = img.shape[:2]
    text = f"box {x},{y},{w},{h}"
    if w <= 0 or h <= 0:
        return None, f"{text} is an empty box (w={w})" if w <= 0 else f"{text} is an empty box (h={h})"
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        return None, f"{text} lies outside the image ({iw}x{ih} pixels)"
    if x < 0 or y < 0 or x + w > iw or y + h > ih:
        return None, (f"{text} is partly outside the image ({iw}x{ih} pixels); boxes are in the "
                      "image's pixels and must lie inside it")
    return np.ascontiguousarray(img[y:y + h, x:x + w]), None


def _box_key(path: str, b: tuple) -> dict[str, Any]:
    """The key of the box ``b`` of an input with boxes (see :attr:`Input.boxes`):
    ``x, y, w, h``, led by ``frame, time`` and ``track`` where the regions file has them."""
    key: dict[str, Any] = {"path": path}
    if len(b) == 7:
        key["track"] = b[0]
    if len(b) >= 6:
        key["frame"], key["time"] = b[-6], b[-5]
    key.update(zip(("x", "y", "w", "h"), b[-4:]))
    return key


def _load_regions(inp: Input, max_pixels: int | None, memory: MemoryBudget | None = None,
                  threads: int | None = None, lenient: bool = False) -> Iterator[Item]:
    """Items of an input with boxes: one per box (see :func:`~featx.inputs.read_regions`)."""
    from . import video   # (videos and frame folders only: not at start-up)

    if inp.kind == "video":
        by_frame: dict[int, list[tuple]] = {}
        for b in inp.boxes:
            by_frame.setdefault(b[-6], []).append(b)
        for fr in video.read_frames(inp.path, by_frame, threads=threads):
            for b in by_frame.pop(fr.index):
                x, y, w, h = b[-4:]
                crop, why = _crop_box(fr.image, x, y, w, h)
                key = {**_box_key(inp.path, b), "time": fr.time}
                mirror = layout.region_mirror(layout.frame_mirror(inp.mirror, fr.index), x, y, w, h,
                                              key.get("track"))
                yield Item(key, crop, mirror, error=why)
        for frame in sorted(by_frame):  # named, but the video ends before them
            for b in by_frame[frame]:
                yield Item(_box_key(inp.path, b), None, error=f"no frame {frame}: the video ends before it")
        return
    img = decode_image(inp.path, max_pixels, memory, lenient=lenient)
    check_memory(memory, img)
    for b in inp.boxes:
        x, y, w, h = b[-4:]
        key = _box_key(inp.path, b)  # a frame of a frame folder: frame and time as the regions file says
        crop, why = _crop_box(img, x, y, w, h)
        yield Item(key, crop, layout.region_mirror(inp.mirror, x, y, w, h, key.get("track")), error=why)


def _load_segments(inp: Input, max_pixels: int | None, memory: MemoryBudget | None, min_size, threads,
                   lenient: bool, options: dict, ahead=False) -> Iterator[Item]:
    """Items of a video or frame folder with segments (``--segments``): the frames the
    sampling picks that lie in a segment (``start <= time < end``), one item per
    (frame, segment holding it), in frame order and, for one frame, in the file's
    order of segments.  The other frames are never converted (a video's are grabbed,
    not retrieved; decoding stops at the end of the last segment)."""
    from . import video   # (videos and frame folders only: not at start-up)

    segs = inp.segments or ()
    sampling = sampling_of(options)
    sweep = SegmentIndex(segs)   # frames come in time order: a sweep, not every segment per frame
    picks = SegmentIndex(segs)   # keep()'s own: a video may decode on a thread of its own (ahead)

    def keep(t) -> bool:
        return bool(picks.holding(t))

    def items(frame: int, time, image, path: str, mirror_of) -> Iterator[Item]:
        for j in sweep.holding(time):
            label = segs[j][2]
            key = {"path": path, "segment": j, "label": label, "frame": frame, "time": time}
            yield Item(key, image, mirror_of(layout.segment_mirror(inp.mirror, j, label)))

    if inp.kind == "video":
        until = max(b for _, b, _ in segs)
        for fr in video.iter_video(inp.path, sampling=sampling, threads=threads, keep=keep, until=until,
                                   ahead=ahead):
            check_memory(memory, fr.image)
            yield from items(fr.index, fr.time, fr.image, inp.path,
                             lambda m, i=fr.index: layout.frame_mirror(m, i))
        return
    refs = video.select_frames(video.list_frames(inp.path), sampling=sampling,
                               frame_rate=options.get("frame_rate"), keep=keep)
    for ref, img, why in video.decode_frames(refs, max_pixels, memory, min_size, lenient=lenient):
        if why is not None:
            for j in sweep.holding(ref.time):
                yield Item({"path": ref.path, "segment": j, "label": segs[j][2], "frame": ref.index,
                            "time": ref.time}, None, error=why)
            continue
        yield from items(ref.index, ref.time, img, ref.path, lambda m, p=ref.path: layout.frame_file(m, p))


def load(inp: Input, max_pixels: int | None = None, memory: MemoryBudget | None = None,
         min_size: tuple[int, int] | None = None, *, threads: int | None = None,
         ahead: bool | Callable[[], bool] = False, **options: Any) -> Iterator[Item]:
    """Decode one input into items.

    An image file gives one item; an input with ``boxes`` (``--regions``) one
    per box, of the image or of the video frames named; a video one per
    sampled frame; a frame folder or a sequence one per frame.  Errors of the
    whole input raise :class:`InputError` (for a video, after the frames that
    could be decoded); a frame that cannot be read is an item with ``error``.
    ``memory``: each image is checked against this budget before it is
    decoded (from its header) and again once decoded.  ``min_size``: the
    fewest pixels the extractor needs (see :func:`~featx.decode.decode_image`);
    images with boxes are always decoded in full, since a box may need every
    pixel of it.  ``threads``: FFmpeg's decoding threads for videos (None:
    OpenCV's default; featx's workers pass 1, several processes already use
    the cores).  ``ahead``: a video decodes on a thread of its own, a few frames ahead
    (see :func:`featx.video.iter_video`).  ``options``: the frame sampling (see
    :func:`~featx.inputs.sampling_of`), ``frame_rate``, and ``lenient_decode``
    (accept pictures whose decoder reported damaged data, see
    :func:`~featx.decode.decode_image`).
    """
    lenient = bool(options.get("lenient_decode", False))
    if inp.error is not None:
        raise InputError(inp.error)
    if inp.boxes is not None:
        yield from _load_regions(inp, max_pixels, memory, threads, lenient)
        return
    if inp.segments is not None:
        yield from _load_segments(inp, max_pixels, memory, min_size, threads, lenient, options, ahead)
        return
    if inp.kind in ("video", "frames", "sequence"):
        from . import video   # (videos and frame folders only: an image needs none of it)
    if inp.kind == "video":
        for fr in video.iter_video(inp.path, sampling=sampling_of(options), threads=threads, ahead=ahead):
            check_memory(memory, fr.image)
            yield Item({"path": inp.path, "frame": fr.index, "time": fr.time}, fr.image,
                       layout.frame_mirror(inp.mirror, fr.index))
        return
    if inp.kind in ("frames", "sequence"):
        if inp.kind == "frames":
            refs = video.select_frames(video.list_frames(inp.path), sampling=sampling_of(options),
                                       frame_rate=options.get("frame_rate"))
            if not refs:
                raise InputError("no frames (no image files, or none kept by the sampling)")
        else:
            refs = [video.FrameRef(i, None, p) for i, p in enumerate(inp.paths or ())]
        mirrors = dict(zip(inp.paths or (), inp.mirrors or ()))
        for ref, img, why in video.decode_frames(refs, max_pixels, memory, min_size, lenient=lenient):
            key = {"path": ref.path, "frame": ref.index, "time": ref.time}
            if why is not None:
                yield Item(key, None, error=why)
                continue
            yield Item(key, img, mirrors.get(ref.path) or layout.frame_file(inp.mirror, ref.path))
        return
    img = decode_image(inp.path, max_pixels, memory, min_size, lenient=lenient)
    check_memory(memory, img)
    yield Item(key={"path": inp.path}, image=img, mirror=inp.mirror)
