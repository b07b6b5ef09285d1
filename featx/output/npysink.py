"""The stacked ``npy`` output: one float32 matrix (a fixed-size header whose row
count is rewritten at each commit) and ``NAME.index.csv`` naming its rows."""
from __future__ import annotations

import os

from .atomic import disk_error, is_disk_error, tmp_name, write_atomic
from .npyformat import NPY_HEADER_LEN, header_rows, index_record, npy_header
from .sinkbase import RawEncoder, _compact_lines, _StackedSink, _tail, csv_line, file_check, key_text, pwrite_all, \
    to_bytes



class NpySink(_StackedSink):
    """Stacked float32 ``(N, D)`` matrix, plus ``<name>.index.csv`` (row, key columns).

    Readers see rows only once they are committed, and the index never lists a
    row the matrix does not show until that commit is recorded: at a commit
    the new rows are made durable, the state records them together with the
    index lines that name them, then the lines are appended to the index and
    the ``.npy`` header's row count is moved — two small writes, one after
    the other, with Ctrl-C held back.  After a crash at any point the next run
    finds the recorded lines in the state and puts the index right.
    """

    format = "npy"
    data_start = NPY_HEADER_LEN

    @property
    def index_path(self) -> str:
        return self.base + ".index.csv"

    def paths(self):
        return [self.output, self.index_path]

    def _first_files(self):
        return [(tmp_name(self.output), self.output), (tmp_name(self.index_path), self.index_path)]

    def encoder(self):
        return RawEncoder()

    #: D of the rows, when the extractor's contract fixes it before any row (set by the plan):
    #: an output with no rows is then ``(0, D)``, as numpy users expect, not ``(0, 0)``.
    expected_width: int | None = None

    def _data_header(self):
        return npy_header(0, self.expected_width or 0)

    def damage(self, state):
        why = super().damage(state)
        if why or state.get("data_len") is None:
            return why
        with open(self.output, "rb") as fh:
            head = fh.read(NPY_HEADER_LEN)
        width = state.get("width")
        widths = {width or 0}
        if width is None:   # no row yet: the header may give the width the extractor fixes, (0, D)
            import re

            m = re.search(rb"'shape': \(0, (\d+)\)", head)
            widths.add(int(m.group(1)) if m else 0)
        if all(head[:NPY_HEADER_LEN - 1] != npy_header(header_rows(head), w)[:NPY_HEADER_LEN - 1] for w in widths) \
                or header_rows(head) > state.get("rows", 0):
            return f"{self.output} has a header featx did not write (replaced since its last run?)"
        committed, tail = state.get("index_len"), _tail(state)
        try:
            size = os.stat(self.index_path).st_size
        except FileNotFoundError:
            return f"{self.index_path} is missing (deleted since its last run?)"
        if committed is not None and size < committed - len(tail):
            return f"{self.index_path} is shorter ({size} bytes) than its last commit ({committed} bytes)"
        if committed is not None and self._changed("index", self.index_path, 0, committed - len(tail), state):
            return f"{self.index_path} was replaced or changed since its last commit (by another program?)"
        return None

    def open(self, state):
        super().open(state)
        self._pending: list[bytes] = []   # index lines of rows appended since the last commit
        if self.created:
            tmp = self._renames[1][0]
            write_atomic(tmp, self._ifh_bytes_written_new())
            self._ifh = open(tmp, "r+b")
            self._ifh.seek(0, os.SEEK_END)
        else:
            committed, tail = state.get("index_len"), _tail(state)
            self._ifh = open(self.index_path, "r+b")
            # the last commit's lines, if a crash came before they reached the index
            self._ifh.truncate(committed - len(tail))
            self._ifh.seek(committed - len(tail))
            self._ifh.write(tail)
            self._ifh.flush()
        self.index_len = self._ifh.tell()
        # the index as the last commit left it: checked part, then lines written since
        if self.created:
            self._index_known = (0, None, self._ifh_bytes_written_new())
        else:
            self._index_known = (committed - len(tail), (state.get("checks") or {}).get("index"), tail)
        self._set_header(self.rows, self.width)  # a crash may have left the header behind its commit

    def _ifh_bytes_written_new(self) -> bytes:
        return to_bytes(csv_line(["row", *self.key_columns]))

    def append(self, key, data, shape):
        self._pending.append(index_record(self.rows, to_bytes(csv_line(key_text(key, self.key_columns)))))
        super().append(key, data, shape)

    def prepare_commit(self):
        fds, meta, _ = super().prepare_commit()
        tail = b"".join(self._pending)
        self._pending = []
        start = self.index_len
        self.index_len += len(tail)
        meta["index_len"] = self.index_len
        meta["index_tail"] = tail.decode("latin-1")   # lossless: bytes 0-255 as code points
        name = self._renames[1][0] if self._renames else self.index_path
        end, old, expect = self._index_known
        self._verify(name, self._ifh.fileno(), 0, end, old, start, expect=expect)
        meta["checks"]["index"] = file_check(name, 0, start)
        self._index_known = (start, meta["checks"]["index"], tail)
        rows, width = self.rows, self.width
        renames = meta.get("renames")

        def after():
            # the index first, then the header: every row the .npy shows has its line
            try:
                pwrite_all(self._ifh.fileno(), tail, start)
            except OSError as exc:
                self._ifh.truncate(start)  # the state holds these lines: the next run writes them
                self.broken = disk_error(self.index_path, exc) if is_disk_error(exc) else exc
                raise self.broken from None
            self._set_header(rows, width)
            if renames:
                for src, dst in renames:
                    os.replace(src, dst)
                self._renames = []
        # the index written at the last commit becomes durable with this one's data
        return fds + [self._ifh.fileno()], meta, after

    def _set_header(self, rows: int, width: int | None) -> None:
        pwrite_all(self._fh.fileno(), npy_header(rows, width or (self.expected_width if not rows else 0) or 0), 0)

    def info(self):
        out = super().info()
        if not self.rows and self.expected_width:
            out["shape"] = [0, self.expected_width]
        return out

    def close(self):
        super().close()
        if getattr(self, "_ifh", None) is not None and not self._ifh.closed:
            self._ifh.close()

    def compact(self, state):
        return _compact_lines(self, state, self.index_path, header_lines=1, also_data=self.output)


