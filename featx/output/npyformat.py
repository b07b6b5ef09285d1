"""The ``npy`` output format: a float32 ``(N, D)`` matrix in a ``.npy`` file with a
fixed-size header, and ``NAME.index.csv`` naming each row (``row,path,...``).

Everything that writes this format goes through here: the sink appending rows
and moving the header (:class:`featx.output.sinks.NpySink`), and the two
writers of a whole output — compaction and ``featx merge`` — through
:func:`write_whole`.
"""
from __future__ import annotations

import io
import re
from collections.abc import Iterable

from numpy.lib import format as npformat

from .atomic import write_file

#: Fixed header length: the row count can be rewritten in place.
NPY_HEADER_LEN = 128


def npy_header(rows: int, cols: int) -> bytes:
    """A version 1.0 ``.npy`` header of fixed length for a C-order float32 matrix,
    written by numpy's own writer.  numpy pads the header to a multiple of 64 bytes
    with room for the row count to grow to 21 digits, so any ``(rows, cols)`` a file
    can hold gives the same 128 bytes (checked here: the row count is rewritten in
    place at each commit, and a header of another length would overwrite the data)."""
    buf = io.BytesIO()
    npformat.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                          "shape": (int(rows), int(cols))})
    head = buf.getvalue()
    if len(head) != NPY_HEADER_LEN:  # pragma: no cover - a numpy that pads otherwise
        raise ValueError(f"numpy wrote a {len(head)}-byte .npy header for shape ({rows}, {cols}); "
                         f"featx rewrites a {NPY_HEADER_LEN}-byte one in place")
    return head


def header_rows(head: bytes) -> int:
    """The row count of a featx ``.npy`` header (-1 if it is not one)."""
    m = re.search(rb"'shape': \((\d+), \d+\)", head)
    return int(m.group(1)) if m else -1


def index_record(row: int, tail: bytes) -> bytes:
    """An index line: the row number, then ``tail`` (the row's key fields as a CSV
    record, newline included)."""
    return b"%d," % row + tail


def record_tail(record: bytes) -> bytes:
    """The key fields of an index line (its row number cut off)."""
    return record.split(b",", 1)[1]


def write_whole(data_path: str, index_path: str, rows: int, width: int, index_header: bytes,
                data: Iterable[bytes], tails: Iterable[bytes]) -> tuple[int, int]:
    """Write a whole output: the matrix (``rows`` x ``width``, from the ``data`` chunks) to
    ``data_path`` and its index (``index_header``, then one line per row from ``tails``,
    numbered from 0) to ``index_path`` — both temporary names, written durably, renamed
    by the caller.  Returns their lengths.  Raises ``ValueError`` if the chunks or the
    tails do not hold exactly ``rows`` rows (neither file is then kept)."""
    want = rows * width * 4

    def matrix(fh):
        fh.write(npy_header(rows, width))
        n = 0
        for chunk in data:
            fh.write(chunk)
            n += len(chunk)
        if n != want:
            raise ValueError(f"{data_path}: {n} bytes of rows, expected {want}")

    def index(fh):
        fh.write(index_header)
        n = 0
        for n, tail in enumerate(tails, 1):
            fh.write(index_record(n - 1, tail))
        if n != rows:
            raise ValueError(f"{index_path}: {n} index lines, expected {rows}")

    import os

    data_len = write_file(data_path, matrix)
    try:
        index_len = write_file(index_path, index)
    except BaseException:
        os.unlink(data_path)
        raise
    return data_len, index_len
