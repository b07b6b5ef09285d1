"""``featx segments VIDEO...``: segments at shot boundaries, as a file ``--segments`` reads."""
from __future__ import annotations

import io
import os
import sys

import click

from ..errors import ExitCode, FeatxError, UsageError
from .options import CONTEXT, FLOAT, FiniteFloat
from .report import _fail, _pipe_closed, _say


def _is_segments_file(path: str) -> bool:
    """Whether ``path`` holds a segments file (what this command writes), by its header."""
    try:
        with open(path, "rb") as fh:
            head = fh.readline(256)
    except OSError:
        return False
    return head.rstrip(b"\r\n") in (b"path,start,end,label", b"path,start,end")


@click.command("segments", context_settings=CONTEXT,
               short_help="Segments of videos at shot boundaries, as a file --segments reads.")
@click.argument("videos", nargs=-1, required=True, metavar="VIDEO...")
@click.option("-o", "--output", default=None, metavar="CSV",
              help="Segments file to write (path,start,end,label); - or none: stdout.")
@click.option("--threshold", type=FLOAT, default=None, metavar="Z",
              help="Robust z-score a frame's change must exceed to start a shot (default 6).")
@click.option("--min-length", type=FiniteFloat(0), default=None, metavar="SECONDS",
              help="Shortest shot: cuts closer than this to another (or to an end) are dropped, "
                   "the weaker first (default 0.5).")
@click.option("--overwrite", is_flag=True, help="Replace an existing file that is not a segments file.")
@click.option("-q", "--quiet", is_flag=True, help="No messages on stderr but errors.")
@click.pass_context
def segments_cmd(ctx: click.Context, videos: tuple[str, ...], output: str | None, threshold: float | None,
                 min_length: float | None, overwrite: bool, quiet: bool) -> None:
    """Propose segments of each VIDEO at its shot boundaries, where the picture is replaced
    by another: one row per shot, path,start,end,label (seconds; start <= time < end;
    labels shot1, shot2, ...), the file `featx extract --segments` reads, so that a video
    without labels still gets one vector per scene.

    Every frame is decoded; a colour histogram of each (hue x saturation x value) is
    compared with the one before it, and a frame starts a shot where that change is an
    outlier of the video's own changes: a robust z-score (median and MAD) above --threshold,
    and the largest change within 4 frames on either side.  Pans, zooms and slow changes
    (fades, light) are not cuts.  A video that cannot be read is reported and left out
    (exit 1); the others are written.

    \b
    Examples:
      featx segments clip.mp4
      featx segments clip.mp4 -o shots.csv
      featx extract cnn --segments shots.csv -o shots.npy
    """
    from .. import shots
    from ..inputs import check_named, is_video_name
    from ..names import printable, quote_name
    from ..output.atomic import check_replaceable, same_file, write_atomic

    say = (lambda m: None) if quiet else _say
    threshold = shots.Z_THRESHOLD if threshold is None else threshold
    min_length = shots.MIN_LENGTH if min_length is None else min_length
    dest = None if output in (None, "-") else output
    try:
        check_named(videos)
        not_videos = [v for v in videos if not is_video_name(v)]
        if not_videos:
            raise UsageError(f"not a video (by its name): {', '.join(quote_name(v) for v in not_videos[:5])}",
                             "featx segments cuts video files (.mp4, .mkv, .avi, ...); nothing was written")
        if dest is not None:
            if os.path.isdir(dest):
                raise UsageError(f"-o {dest} is a folder", "name a file, e.g. -o segments.csv")
            if not os.path.isdir(os.path.dirname(os.path.abspath(dest))):
                raise UsageError(f"the folder of -o {dest} does not exist", "create it first; nothing was written")
            read = same_file(dest, videos)
            if read is not None:
                raise UsageError(f"-o {dest} would write {read}, which this command reads",
                                 "name the segments file apart from the videos; nothing was written")
            check_replaceable(dest, "segments file", overwrite=overwrite, ours=_is_segments_file)
    except FeatxError as exc:
        _fail(exc, ctx)
    rows: list[list[str]] = []
    failed = 0
    for v in videos:
        try:
            found = shots.find_shots(v, threshold=threshold, min_length=min_length)
        except FeatxError as exc:
            failed += 1
            found = getattr(exc, "shots", [])
            _say(f"error: {quote_name(v)}: {printable(str(exc))}"
                 + (f" (the {len(found)} shot(s) before it are written)" if found else ""))
        rows += shots.segment_rows(shots.listed_path(v, dest), found)
        say(f"{quote_name(v)}: {len(found)} shot(s)")
    try:
        if dest is None:
            buf = io.BytesIO()
            shots.write_segments(buf, rows)
            sys.stdout.buffer.write(buf.getvalue())
            sys.stdout.buffer.flush()
        else:
            write_atomic(dest, lambda fh: shots.write_segments(fh, rows))
    except BrokenPipeError:
        sys.exit(_pipe_closed())
    except OSError as exc:
        from ..output.atomic import disk_error

        _fail(disk_error(f"the segments file {dest}", exc), ctx)
    if failed:
        sys.exit(int(ExitCode.ITEMS_FAILED))
