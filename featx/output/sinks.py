"""Outputs: ``csv``, ``npy`` (stacked matrix + index), ``npy-dir`` and ``parquet``.

:func:`make_sink` picks the sink of an output: :class:`~.csvsink.CsvSink`,
:class:`~.npysink.NpySink`, :class:`~.npydir.NpyDirSink` or
:class:`~.parquet.ParquetSink` (imported only when used: it needs pyarrow) (and
:class:`~.csvsink.RegionsCsvSink` for boxes).  What they share (the
:class:`Encoder` / :class:`Sink` contract, stacked files, commits and
compaction) is in :mod:`.sinkbase`; the names here are the ones the rest of
featx uses.
"""
from __future__ import annotations

import os
from collections.abc import Sequence

from ..errors import OutputError
from .atomic import tmp_name, write_atomic
from .csvsink import CsvEncoder, CsvSink, RegionsCsvSink, RegionsEncoder
from .npydir import NpyDirEncoder, NpyDirSink
from .npysink import NpySink
from .sinkbase import (FORMATS, Encoder, RawEncoder, Sink, canonical_output, csv_records, format_floats,
                       infer_format, key_text)

__all__ = ["make_sink", "infer_format", "write_atomic", "tmp_name", "Sink", "Encoder", "RawEncoder", "CsvEncoder",
           "NpyDirEncoder", "RegionsEncoder", "CsvSink", "RegionsCsvSink", "NpySink", "NpyDirSink", "FORMATS",
           "canonical_output", "csv_records", "format_floats", "key_text", "MAX_NAME_BYTES"]


#: the longest name of an output: featx keeps hidden files beside it whose names add up to ~50
#: bytes more (``.NAME.featx-state-journal``, temporary names with a pid), within the usual 255
MAX_NAME_BYTES = 200


def _check_extension(output: str, fmt: str) -> None:
    """The name and the format must agree both ways: CSV text in a ``.npy`` (or a folder of
    arrays named ``.csv``) would mislead every reader of the file."""
    if output == "-":
        return
    low = output.lower()
    folder = output.endswith(("/", os.sep))
    ext = ".npy" if low.endswith(".npy") else ".csv" if low.endswith(".csv") else None
    if low.rstrip("/" + os.sep).endswith(".parquet"):
        ext = ".parquet"
    if fmt == "parquet" and ext != ".parquet":
        name = os.path.splitext(output.rstrip("/" + os.sep) or output)[0]
        raise OutputError(f"--format parquet writes a folder named NAME.parquet, not {output}",
                          f"name the output {name}.parquet")
    if fmt in ("csv", "npy", "npy-dir") and ext == ".parquet":
        raise OutputError(f"--format {fmt} output named {output} would look like a parquet dataset",
                          "name it apart, or drop --format to write parquet")
    if fmt in ("csv", "npy") and folder:
        name = output.rstrip("/" + os.sep) or output
        raise OutputError(f"--format {fmt} writes one file, not a folder ({output})",
                          f"name the file (-o {name}.{fmt}), or use --format npy-dir for a folder")
    if fmt == "csv" and ext == ".npy" and not folder:
        raise OutputError(f"--format csv writes CSV text, which a name ending .npy ({output}) would hide",
                          "name the output .csv, or drop --format csv to write a .npy matrix")
    if fmt == "npy-dir" and ext is not None and not folder and not os.path.isdir(output):
        raise OutputError(f"--format npy-dir writes a folder of arrays, not a {ext} file ({output})",
                          f"end the folder's name with / (-o {output}/), or drop --format")


def make_sink(output: str, fmt: str | None, *, key_columns: Sequence[str] = ("path",),
              overwrite: bool = False, columns: Sequence[str] | None = None, kind: str = "vector",
              labels: Sequence[str] | None = None, label_columns: Sequence[int] = ()) -> Sink:
    fmt = infer_format(output, fmt)
    name = os.path.basename(output.rstrip("/" + os.sep))
    if len(os.fsencode(name)) > MAX_NAME_BYTES:
        raise OutputError(f"the output name is {len(os.fsencode(name))} bytes long, over featx's limit of "
                          f"{MAX_NAME_BYTES}", "featx keeps hidden files beside an output whose names are "
                          "about 50 bytes longer than its own; choose a shorter -o")
    if kind == "regions":
        if fmt != "csv":
            raise OutputError(f"regions are written as CSV, not {fmt}", "use -o NAME.csv or -o -")
        return RegionsCsvSink(output, key_columns, overwrite)
    if output == "-" and fmt != "csv":
        raise OutputError(f"-o - writes CSV to stdout, not {fmt}", "drop --format or write to a file")
    _check_extension(output, fmt)
    if fmt == "csv":
        return CsvSink(output, key_columns, overwrite, columns, labels, label_columns)
    if fmt == "npy":
        if not output.lower().endswith(".npy"):
            raise OutputError(f"a stacked npy output must end with .npy, got {output!r}")
        return NpySink(output, key_columns, overwrite)
    if fmt == "parquet":
        from .parquet import ParquetSink

        return ParquetSink(output, key_columns, overwrite)
    return NpyDirSink(output, key_columns, overwrite)
