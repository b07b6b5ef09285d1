"""``featx convert SRC DST``: an output in another format, without recomputing."""
from __future__ import annotations

import click

from ..errors import FeatxError
from .options import CONTEXT
from .report import _fail, _say


@click.command("convert", context_settings=CONTEXT,
               short_help="Write an output in another format (.npy, .csv, folder), without recomputing.")
@click.argument("src")
@click.argument("dst")
@click.option("--format", "fmt", default=None, metavar="FORMAT",
              help="Format of DST: csv, npy, npy-dir or parquet (default: from DST's name; a folder/ is npy-dir).")
@click.option("--overwrite", is_flag=True, help="Replace DST if it exists.")
@click.pass_context
def convert_cmd(ctx: click.Context, src: str, dst: str, fmt: str | None, overwrite: bool) -> None:
    """Write the output SRC again as DST in another format, without recomputing: the
    same rows, bit for bit, in the same order, with the key columns.

    DST is a real featx output: its sidecar keeps SRC's record (extractor, parameters,
    versions) and says what it was converted from, and its state keeps every input's
    identity, so the same `featx extract` command into DST continues it incrementally.
    Written whole under temporary names, then renamed: a killed convert leaves no
    half output.

    \b
    Examples:
      featx convert hog.npy hog.csv
      featx convert hog.csv hog-files/
    """
    from ..output.convert import convert

    try:
        argv = ["featx", "convert", src, dst] + (["--format", fmt] if fmt else []) + \
            (["--overwrite"] if overwrite else [])
        info = convert(src, dst, fmt, overwrite=overwrite, argv=argv)
    except FeatxError as exc:
        _fail(exc, ctx)
    shape = info.get("shape")
    if info.get("format") == "npy-dir":
        what = f"{info.get('rows', 0)} files"
    elif isinstance(shape, list) and len(shape) == 2 and shape[1]:
        what = f"({shape[0]}, {shape[1]})"
    else:
        what = f"{info.get('rows', 0)} rows"
    _say(f"converted {src} -> {dst} {what}")
