"""``featx show NAME``: a picture of what an extractor computes (a contact sheet for a
folder; the motion between two frames for a temporal extractor)."""
from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import ExitCode, FeatxError, UsageError
from .options import CONTEXT, ExtractorGroup, _config_option, _resize_options, _split_params, \
    _with_extractor_options
from .report import _fail, _say


def _show_frames(cls, images: tuple[str, ...], frame: int, resize, resize_mode):
    """What ``featx show`` renders: ``(pictures, sheet)``.

    A temporal extractor gets ``[previous, next]``: two images, or frames ``frame``
    and ``frame + 1`` of a video or a frame folder.  Others get ``[image]`` for one
    image (or a video's frame ``frame``), or, for a folder or several images,
    ``sheet`` is true and ``pictures`` yields ``(name, image)`` one at a time (at
    most ``most``; ``image`` is an :class:`InputError` for one that cannot be
    decoded), for a contact sheet.
    """
    from collections.abc import Iterator

    from .. import imageops, sources
    from ..errors import InputError

    def fit(p):
        return imageops.resize(p, resize[0], resize[1], resize_mode) if resize else p

    def load_one(path: str):
        try:
            return sources.decode_image(path)
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}") from None

    def video_frames(path: str, want: int) -> list:
        from ..video import Sampling, iter_video

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
            from ..video import list_frames

            try:
                every = [str(p) for p in list_frames(images[0])]
            except FeatxError as exc:
                raise UsageError(f"{images[0]}: {exc.message}", exc.hint) from None
            paths = every[frame:frame + 2]
            if len(paths) < 2:
                raise UsageError(_past_the_end(images[0], len(every), frame, 2),
                                 f"choose --frame 0 to {max(len(every) - 2, 0)}")
            return [fit(load_one(p)) for p in paths], False
        if len(images) == 1 and sources.is_video_name(images[0]):
            return [fit(p) for p in video_frames(images[0], 2)], False
        return [fit(load_one(p)) for p in images], False
    if one_file:
        if sources.is_video_name(images[0]):
            return [fit(video_frames(images[0], 1)[0])], False
        return [fit(load_one(images[0]))], False

    sources.check_named(images)

    def named() -> Iterator[tuple[str, Any]]:
        for arg in images:
            root = os.path.realpath(arg) if os.path.isdir(arg) else None
            for inp in sources.enumerate_inputs([arg]):
                name = arg if root is None else os.path.join(arg, os.path.relpath(inp.path, root))
                if inp.kind == "video":
                    yield f"{name} frame {frame}", lambda p=inp.path: video_frames(p, 1)[0]
                elif inp.error is not None:
                    yield name, InputError(inp.error)
                else:
                    yield name, lambda p=inp.path: sources.decode_image(p)

    def sheet(most: int = 48) -> Iterator[tuple[str, Any]]:
        count = 0
        for name, get in named():
            if count == most:
                _say(f"a contact sheet shows at most {most} images: the rest are left out")
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


def _build_show(cls) -> click.Command:
    def callback(images, output, resize, resize_mode, frame, arrows, **kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        failed = 0
        try:
            from .. import imageops
            from ..errors import InputError
            from ..extractor import build_params
            from ..output.atomic import write_atomic

            extractor = cls(build_params(cls, params))
            pics, sheet = _show_frames(cls, images, frame, resize, resize_mode)
            try:
                if sheet:
                    from ..picture import SHEET_TILE, contact_sheet, fit

                    tiles, names = [], []
                    for name, img in pics:
                        try:
                            if isinstance(img, InputError):
                                raise img
                            tiles.append(fit(imageops.to_rgb_uint8(extractor.render(img)), SHEET_TILE))
                            names.append(name)
                        except InputError as exc:  # one image: the others are still shown
                            failed += 1
                            _say(f"error: {name}: {exc.message}")
                    if not tiles:
                        raise InputError("no image could be shown")
                    pic = contact_sheet(tiles, names).pixels
                elif len(pics) == 2:
                    if not hasattr(extractor, "render_pair"):
                        raise UsageError(f"{cls.name} renders one image; give one")
                    pic = extractor.render_pair(pics[0], pics[1], arrows=arrows)
                elif cls.temporal:
                    raise UsageError(f"{cls.name} needs two frames: give two images, a frame folder, or a "
                                     "video (--frame N shows the motion from frame N to N+1)")
                else:
                    pic = extractor.render(pics[0])
            except NotImplementedError as exc:
                raise UsageError(str(exc)) from None
            import cv2

            pic = imageops.to_rgb_uint8(pic)
            ok, buf = cv2.imencode(os.path.splitext(output)[1] or ".png", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
            if not ok:
                raise UsageError(f"cannot encode a picture as {output}", "use a .png or .jpg name")
            write_atomic(output, buf.tobytes())
            what = f"a contact sheet of {len(tiles)} image{'s' if len(tiles) != 1 else ''}" if sheet else ""
            _say(f"wrote {output} ({pic.shape[1]}x{pic.shape[0]}{', ' + what if what else ''})"
                 + (f"; {failed} could not be shown" if failed else ""))
        except FeatxError as exc:
            _fail(exc, ctx)
        if failed:
            sys.exit(int(ExitCode.ITEMS_FAILED))

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"Render what {cls.name} computes for IMAGE as a PNG, with its key. "
                             + ("Give two images, a video or a frame folder (--frame N: the motion from "
                                "frame N to N+1)." if cls.temporal else
                                "A folder or several images give a contact sheet: one labelled tile each."),
                        short_help=cls.summary)
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["images"], nargs=-1, required=True, type=click.Path()),
        click.Option(["-o", "--output"], required=True, metavar="PNG", help="Picture to write (.png or .jpg)."),
        *_resize_options(),
        click.Option(["--frame"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="For a video or frame folder: the frame to show (temporal extractors: from it "
                          "to the next)."),
        click.Option(["--arrows"], is_flag=True, help="Temporal extractors: draw motion arrows too."),
        _config_option(),
    ])
    return cmd


show_cmd = ExtractorGroup(
    "show", build=_build_show, show_params=True, context_settings=CONTEXT,
    short_help="Render a picture of what an extractor computes for one image.",
    help="Render a picture of what an extractor computes for one image (two images, or a video "
         "frame, for flow). `featx show NAME --help` lists NAME's options.\n\n"
         "\b\nExamples:\n"
         "  featx show hog samples/astronaut.png -o hog.png\n"
         "  featx show flow samples/clip.mp4 --frame 10 -o flow.png\n"
         "  featx show cnn samples/chelsea.png -o cam.png")
