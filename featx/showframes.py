"""What ``featx show`` draws from: the pictures named by its arguments (one image, a video
frame, a frame pair for a temporal extractor, or the images of a folder for a contact
sheet), decoded and resized as ``featx extract`` would."""
from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

from .errors import FeatxError, InputError, UsageError


def frames_to_show(cls, images: tuple[str, ...], frame: int, resize, resize_mode,
                   on_note: Callable[[str], None] | None = None, max_pixels: int | None = None,
                   memory=None):
    """What ``featx show`` renders: ``(pictures, sheet)``.

    A temporal extractor gets ``[previous, next]``: two images, or frames ``frame``
    and ``frame + 1`` of a video or a frame folder.  Others get ``[image]`` for one
    image (or a video's frame ``frame``), or, for a folder or several images,
    ``sheet`` is true and ``pictures`` yields ``(name, image)`` one at a time (at
    most ``most``; ``image`` is an :class:`InputError` for one that cannot be
    decoded), for a contact sheet; ``on_note(text)`` hears when images are left out.
    ``max_pixels``, ``memory`` (a :class:`~featx.memory.MemoryBudget`): as ``featx
    extract``'s, checked against each image's header before it is decoded.
    """
    from . import imageops
    from .decode import decode_image
    from .inputs import check_named, enumerate_inputs, is_video_name

    def fit(p):
        return imageops.resize(p, resize[0], resize[1], resize_mode) if resize else p

    def load_one(path: str):
        try:
            return decode_image(path, max_pixels, memory)
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}", exc.hint) from None

    def video_frames(path: str, want: int) -> list:
        from .video import Sampling, iter_video

        try:
            pics = [f.image for f in iter_video(path, sampling=Sampling(start=None, max_frames=frame + want))]
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}") from None
        n = len(pics)
        pics = pics[frame:frame + want]
        if len(pics) < want:
            raise UsageError(_past_the_end(path, n, frame, want), f"choose --frame 0 to {max(n - want, 0)}")
        return pics

    one_file = len(images) == 1 and not os.path.isdir(images[0])
    if cls.temporal:
        if len(images) > 2:
            raise UsageError(f"{cls.name} shows the motion between two frames: give two images, "
                             "a video or a frame folder (--frame N picks the pair)")
        if len(images) == 1 and os.path.isdir(images[0]):
            from .video import list_frames

            try:
                every = [str(p) for p in list_frames(images[0])]
            except FeatxError as exc:
                raise UsageError(f"{images[0]}: {exc.message}", exc.hint) from None
            paths = every[frame:frame + 2]
            if len(paths) < 2:
                raise UsageError(_past_the_end(images[0], len(every), frame, 2),
                                 f"choose --frame 0 to {max(len(every) - 2, 0)}")
            return [fit(load_one(p)) for p in paths], False
        if len(images) == 1 and is_video_name(images[0]):
            return [fit(p) for p in video_frames(images[0], 2)], False
        return [fit(load_one(p)) for p in images], False
    if one_file:
        if is_video_name(images[0]):
            return [fit(video_frames(images[0], 1)[0])], False
        return [fit(load_one(images[0]))], False

    check_named(images)

    def named() -> Iterator[tuple[str, Any]]:
        for arg in images:
            root = os.path.realpath(arg) if os.path.isdir(arg) else None
            for inp in enumerate_inputs([arg]):
                name = arg if root is None else os.path.join(arg, os.path.relpath(inp.path, root))
                if inp.kind == "video":
                    yield f"{name} frame {frame}", lambda p=inp.path: video_frames(p, 1)[0]
                elif inp.error is not None:
                    yield name, InputError(inp.error)
                else:
                    yield name, lambda p=inp.path: decode_image(p, max_pixels, memory)

    def sheet(most: int = 48) -> Iterator[tuple[str, Any]]:
        count = 0
        for name, get in named():
            if count == most:
                if on_note is not None:
                    on_note(f"a contact sheet shows at most {most} images: the rest are left out")
                return
            count += 1
            if isinstance(get, InputError):
                yield name, get
                continue
            try:
                yield name, fit(get())
            except FeatxError as exc:
                yield name, InputError(exc.message)
        if count == 0:
            raise UsageError(f"no images in {', '.join(images)}", "featx show takes image files and folders")

    return sheet(), True


def _past_the_end(path: str, n: int, frame: int, want: int) -> str:
    """``clip.mp4 has 62 frames (0 to 61); --frame 500 is past its end`` (with ``want`` 2:
    the motion from frame N needs frame N+1 too)."""
    what = f"{path} has {n} frame{'s' if n != 1 else ''}" + (f" (0 to {n - 1})" if n > 1 else "")
    if frame < n:
        return f"{what}; the motion from --frame {frame} needs frame {frame + 1} too"
    return f"{what}; --frame {frame} is past its end"


# ---------------------------------------------------------------------------
# the picture file

#: The picture files ``featx show -o`` writes.
SHOW_FORMATS = (".png", ".jpg", ".jpeg")
#: What marks a picture as written by ``featx show`` (a PNG ``tEXt`` chunk, a JPEG comment),
#: so that ``-o`` replaces its own pictures and nothing else without ``--overwrite``.
MARK = b"featx show"


def check_show_output(output: str, images, overwrite: bool) -> None:
    """Before any work: ``output`` names a picture featx can write (by its extension), is
    none of the inputs, and replaces no file featx did not write (without ``overwrite``)."""
    ext = os.path.splitext(output)[1].lower()
    if ext not in SHOW_FORMATS:
        raise UsageError(f"cannot write a picture as {output}: featx show writes "
                         + ", ".join(SHOW_FORMATS) + " files", "name the picture NAME.png or NAME.jpg")
    folder = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(folder):  # (it was a traceback after all the work)
        raise UsageError(f"output folder {folder} does not exist", "create it first")
    from .output.atomic import check_replaceable, same_file

    if same_file(output, images) is not None:
        raise UsageError(f"{output} is an input of this command; featx show will not replace it",
                         "name the picture apart")

    check_replaceable(output, "picture", overwrite=overwrite, ours=_marked, own="name a picture of its own")


def _marked(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return MARK in head and (head[:8] == b"\x89PNG\r\n\x1a\n" or head[:2] == b"\xff\xd8")


def encode_picture(pic, output: str) -> bytes:
    """``pic`` (uint8 RGB) as the file ``output`` names (.png or .jpg), marked as featx's."""
    import struct
    import zlib

    import cv2

    ok, buf = cv2.imencode(os.path.splitext(output)[1].lower(), cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
    if not ok:
        raise UsageError(f"cannot encode a picture as {output}", "use a .png or .jpg name")
    data = buf.tobytes()
    if data[:8] == b"\x89PNG\r\n\x1a\n":   # a tEXt chunk after IHDR (8 + 4 + 4 + 13 + 4 bytes)
        text = b"Software\x00" + MARK
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text \
            + struct.pack(">I", zlib.crc32(b"tEXt" + text) & 0xffffffff)
        return data[:33] + chunk + data[33:]
    if data[:2] == b"\xff\xd8":            # a COM segment after SOI
        return data[:2] + b"\xff\xfe" + struct.pack(">H", len(MARK) + 2) + MARK + data[2:]
    return data
