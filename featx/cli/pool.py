"""``featx pool OUTPUT -o OUT``: rows pooled into one per video, picture, segment, track or window."""
from __future__ import annotations

import sys

import click

from ..errors import ExitCode, FeatxError
from .options import CONTEXT
from .report import _fail, _say


@click.command("pool", context_settings=CONTEXT,
               short_help="Pool rows into one per video, picture, segment, track or window.")
@click.argument("source", metavar="OUTPUT")
@click.option("-o", "--output", "dst", required=True, metavar="OUT", help="The pooled output (.npy, .csv, folder/, "
              ".parquet).")
@click.option("--format", "fmt", default=None, metavar="FORMAT",
              help="Format of OUT: csv, npy, npy-dir or parquet (default: from OUT's name; a folder/ is npy-dir).")
@click.option("--over", default=None, metavar="UNIT",
              help="What one pooled row covers: video (default), image (the boxes of one picture), segment "
                   "(default with --segments) or track.")
@click.option("--stats", default="mean", show_default=True, metavar="LIST",
              help="Statistics, comma-separated, from mean, std, min, max, diff (mean absolute change between "
                   "consecutive rows); written in that order whatever order they are given.")
@click.option("--window", default=None, metavar="W",
              help="Sliding windows inside each unit: seconds (2, 2.5s) or rows (30f).")
@click.option("--stride", default=None, metavar="S", help="Step between windows, as --window (default: the window).")
@click.option("--pyramid", is_flag=True, help="Also pool the halves and quarters of each unit (temporal pyramid: "
              "all, h1, h2, q1..q4).")
@click.option("--segments", default=None, metavar="FILE",
              help="CSV path,start,end[,label] (seconds): pool the rows with start <= time < end of each segment.")
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists (also when its settings differ).")
@click.option("-q", "--quiet", is_flag=True, help="No summary line.")
@click.pass_context
def pool_cmd(ctx: click.Context, source: str, dst: str, fmt: str | None, over: str | None, stats: str,
             window: str | None, stride: str | None, pyramid: bool, segments: str | None, overwrite: bool,
             quiet: bool) -> None:
    """Pool the rows of OUTPUT (any featx output) into OUT: one row per video, per
    picture's boxes, per segment or per track, or per sliding window inside them, with
    the statistics asked concatenated in the order mean, std, min, max, diff.

    Keys say what each row covers: path (and segment, label, track, window), start and
    end (times of the first and last rows pooled) and frames (rows pooled).  Run again
    when OUTPUT grew: only the inputs whose rows changed are pooled again.

    \b
    Examples:
      featx pool clip.npy -o clip-mean.npy
      featx pool clip.npy -o clip-2s.csv --window 2s --stride 1s --stats mean,max
      featx pool clip.npy -o scenes.csv --segments scenes.csv --stats mean,std
    """
    import time

    from ..poolrun import pool

    t0 = time.time()
    argv = ["featx", "pool", source, "-o", dst] + (["--format", fmt] if fmt else []) + \
        (["--over", over] if over else []) + ["--stats", stats] + (["--window", window] if window else []) + \
        (["--stride", stride] if stride else []) + (["--pyramid"] if pyramid else []) + \
        (["--segments", segments] if segments else []) + (["--overwrite"] if overwrite else [])
    try:
        info = pool(source, dst, fmt, over=over, stats=stats, window=window, stride=stride, pyramid=pyramid,
                    segments=segments, overwrite=overwrite, argv=argv)
    except FeatxError as exc:
        _fail(exc, ctx)
    for f in info["failures"]:
        _say(f"{f['path']}: {f['reason']}")
    if not quiet:
        parts = [f"{info['processed']} processed"]
        if info["up_to_date"]:
            parts.append(f"{info['up_to_date']} up to date")
        if info["failed"]:
            parts.append(f"{info['failed']} failed")
        if info["dropped"]:
            parts.append(f"{info['dropped']} dropped (gone from {source})")
        shape = info.get("shape")
        if info.get("format") == "npy-dir":
            what = f" ({info['rows']} files)"
        elif isinstance(shape, list) and len(shape) == 2:
            what = f" {tuple(shape)}"
        else:
            what = f" ({info['rows']} rows)"
        _say(", ".join(parts) + f" in {time.time() - t0:.1f} s -> {dst}{what}")
    if info["failures"]:
        _say(f"{info['failed']} input(s) could not be pooled in whole or in part; they are listed in "
             f"{dst.rstrip('/')}.featx.json")
        sys.exit(int(ExitCode.ITEMS_FAILED))
