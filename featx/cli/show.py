"""``featx show NAME``: a picture of what an extractor computes (a contact sheet for a
folder; the motion between two frames for a temporal extractor)."""
from __future__ import annotations

import sys

import click

from ..errors import ExitCode, FeatxError, UsageError
from ..names import printable, quote_name
from ..runopts import BY_NAME
from ..showframes import check_show_output, encode_picture, frames_to_show
from .options import CONTEXT, ExtractorGroup, _config_option, _resize_options, _split_params, \
    _with_extractor_options, run_option
from .report import _fail, _say


def _show_examples(cls) -> str:
    """Commands that run as written for extractor ``cls``, as the help's epilog."""
    n = cls.name
    if cls.temporal:
        lines = [f"featx show {n} frame1.png frame2.png -o {n}.png   # the motion between two images",
                 f"featx show {n} clip.mp4 --frame 10 -o {n}.png      # from frame 10 to 11",
                 f"featx show {n} clip.mp4 --frame 10 --arrows -o {n}.png"]
    else:
        lines = [f"featx show {n} photo.jpg -o {n}.png                # one image",
                 f"featx show {n} photos/ -o {n}-sheet.jpg            # a contact sheet of a folder",
                 f"featx show {n} photo.jpg --resize 256x256 -o {n}-256.png"
                 if getattr(cls, "shared_resize", True) else f"featx show {n} clip.mp4 --frame 30 -o {n}-30.png"]
    return "\b\nExamples:\n" + "\n".join("  " + line for line in lines)


def _build_show(cls) -> click.Command:
    def callback(images, output, resize, resize_mode, frame, max_pixels, max_memory, overwrite, **kwargs):
        ctx = click.get_current_context()
        arrows = kwargs.pop("arrows", False)
        params = _split_params(cls, kwargs)
        failed = 0
        try:
            from .. import imageops, memory
            from ..engine.worker import DEFAULT_MAX_PIXELS
            from ..errors import InputError
            from ..extractor import build_params, construct
            from ..output.atomic import write_atomic

            check_show_output(output, images, overwrite)   # before any work
            extractor = construct(cls, build_params(cls, params))
            limit = memory.resolve(max_memory, 1)
            budget = memory.MemoryBudget.for_extractor(limit, extractor, resize) if limit else None
            pics, sheet = frames_to_show(cls, images, frame, resize, resize_mode, on_note=_say,
                                         max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                                         memory=budget)
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
                            _say(f"error: {quote_name(name)}: {printable(exc.message)}")
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
            pic = imageops.to_rgb_uint8(pic)
            write_atomic(output, encode_picture(pic, output))
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
                        short_help=cls.summary, epilog=_show_examples(cls))
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["images"], nargs=-1, required=True, type=click.Path()),
        click.Option(["-o", "--output"], required=True, metavar="PNG", help="Picture to write (.png or .jpg)."),
        *_resize_options(),
        *(run_option(BY_NAME[n]) for n in ("max_pixels", "max_memory")),
        click.Option(["--overwrite"], is_flag=True,
                     help="Replace an existing file that featx did not write (never an input)."),
        click.Option(["--frame"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="For a video or frame folder: the frame to show (temporal extractors: from it "
                          "to the next)."),
        *([click.Option(["--arrows"], is_flag=True, help="Draw motion arrows too.")] if cls.temporal else []),
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
