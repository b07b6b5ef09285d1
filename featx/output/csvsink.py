"""The ``csv`` output: one line per item (key columns, then the values), and
the regions CSV of ``featx detect`` (one line per box)."""
from __future__ import annotations

import sys
from collections.abc import Sequence

import numpy as np

from ..errors import OutputError
from .sinkbase import Encoder, _compact_lines, _StackedSink, csv_line, format_floats, key_text, to_bytes



class CsvEncoder(Encoder):
    """One CSV line: key columns, then the values (class names where the spec says)."""

    def __init__(self, key_columns: Sequence[str], labels: Sequence[str] | None = None,
                 label_columns: Sequence[int] = ()):
        self.key_columns = tuple(key_columns)
        self.labels = tuple(labels) if labels else None
        self.label_columns = tuple(label_columns) if labels else ()

    def encode(self, key, mirror, value):
        head = csv_line(key_text(key, self.key_columns))[:-1]
        if self.label_columns:
            v = np.asarray(value, dtype=np.float32).ravel()
            fields = format_floats(v).split(",")
            for c in self.label_columns:
                i = int(v[c])
                if 0 <= i < len(self.labels):
                    fields[c] = csv_line([self.labels[i]])[:-1]
            vals = ",".join(fields)
        else:
            vals = format_floats(value)
        return to_bytes(head + ("," + vals if vals else "") + "\n")



class CsvSink(_StackedSink):
    """One CSV: a header ``path,...,f0..f{D-1}``, then a line per row.

    To stdout (``-o -``) lines are streamed with no state.  To a file, the
    header is written once the vector length is known (from the first row).
    """

    format = "csv"

    def __init__(self, output, key_columns=("path",), overwrite=False, columns: Sequence[str] | None = None,
                 labels: Sequence[str] | None = None, label_columns: Sequence[int] = ()):
        super().__init__(output, key_columns, overwrite)
        self.columns = tuple(columns) if columns else None
        self.labels, self.label_columns = labels, tuple(label_columns)

    def encoder(self):
        return CsvEncoder(self.key_columns, self.labels, self.label_columns)

    #: The value columns' names for rows of a width known only at the first row (pooled rows
    #: of an extractor whose length depends on the image): ``names_of(width)``; None: f0...
    names_of = None

    def _header_line(self, width: int | None) -> bytes:
        if self.names_of is not None and not (self.columns and width == len(self.columns)):
            names = list(self.names_of(width or 0))
        else:
            names = list(self.columns) if self.columns and width == len(self.columns) else \
                [f"f{i}" for i in range(width or 0)]
        return to_bytes(csv_line(list(self.key_columns) + names))

    def _data_header(self):
        return b""

    def open(self, state):
        if self.output == "-":
            self._fh = sys.stdout.buffer
            self.data_len = 0
            return
        super().open(state)

    def append(self, key, data, shape):
        if self.width is None and self.rows == 0 and self.data_len == 0:
            head = self._header_line(int(shape[0]))
            self._write(head)
            self.data_len += len(head)
        super().append(key, data, shape)

    def _write(self, data):
        if self.output == "-":
            self._fh.write(data)
        else:
            super()._write(data)

    def prepare_commit(self):
        if self.output == "-":
            self._fh.flush()
            return [], {}, None
        if self.data_len == 0 and self.width is not None:  # a known width: the header even without rows
            head = self._header_line(self.width)
            self._write(head)
            self.data_len += len(head)
        return super().prepare_commit()

    def close(self):
        if self.output == "-":
            try:
                self._fh.flush()
            except BrokenPipeError:  # the reader went away: the run has heard of it at a commit
                pass
            return
        super().close()

    def compact(self, state):
        return _compact_lines(self, state, self.output, header_lines=1, also_data=None)


#: Key columns that a box carries itself (``detect --track``): a box's row of the
#: extractor's value starts with them, and they go into its line's key.
BOX_KEYS = ("track",)


class RegionsEncoder(Encoder):
    """One CSV line per box: key columns, then x, y, w, h as integers.

    Key columns in :data:`BOX_KEYS` come from each box's row (its first values),
    the others from the item's key."""

    def __init__(self, key_columns: Sequence[str]):
        self.key_columns = tuple(key_columns)
        self.box_keys = tuple(c for c in self.key_columns if c in BOX_KEYS)

    def encode(self, key, mirror, value):
        if self.box_keys:
            n = len(self.box_keys)
            rows = np.asarray(value).reshape(-1, n + 4).astype(np.int64).tolist()
            return to_bytes("".join(
                csv_line(key_text({**key, **dict(zip(self.box_keys, r[:n]))}, self.key_columns))[:-1]
                + ",%d,%d,%d,%d\n" % tuple(r[n:]) for r in rows))
        head = csv_line(key_text(key, self.key_columns))[:-1]
        boxes = np.asarray(value).reshape(-1, 4).astype(np.int64)
        return to_bytes("".join(f"{head},{x},{y},{w},{h}\n" for x, y, w, h in boxes.tolist()))


class RegionsCsvSink(CsvSink):
    """``path,x,y,w,h``: one row per region (``featx detect``); an image without
    regions writes no row."""

    def __init__(self, output, key_columns=("path",), overwrite=False):
        super().__init__(output, key_columns, overwrite, columns=("x", "y", "w", "h"))
        self.width = 4

    def open(self, state):
        super().open(state)
        self.width = 4

    def check_kind(self, kind, extractor):
        if kind != "regions":
            raise OutputError(f"{extractor} does not produce regions")

    def encoder(self):
        return RegionsEncoder(self.key_columns)

    def check_width(self, key, shape, first_key):
        return None

    def append(self, key, data, shape):
        if self.rows == 0 and self.data_len == 0:
            head = self._header_line(4)
            self._write(head)
            self.data_len += len(head)
        self.width = 4
        self._write(data)
        self.data_len += len(data)
        self.rows += int(shape[0])


