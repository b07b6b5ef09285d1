"""Outputs: ``csv``, ``npy`` (stacked matrix + index) and ``npy-dir``.

A sink is split in two halves so that big feature arrays are copied as
little as possible:

* an :class:`Encoder` (small, picklable) turns one result into the bytes the
  output holds — a CSV line, raw float32 row bytes — or, for ``npy-dir``,
  writes the per-input file itself.  It runs where the features were
  computed (a worker process);
* the :class:`Sink` (main process only) appends those bytes in input order
  and commits them progressively through the run's :class:`~featx.state.State`.

Crash safety: data is appended in place and made durable, then the state
records the committed lengths in one transaction; the ``.npy`` header's row
count is updated only after that.  On the next run anything beyond the
committed lengths is cut off.  A stacked ``.npy`` therefore always loads as
exactly its committed rows, and ``NAME.index.csv`` always lists those rows.
When inputs changed or were removed, the stacked outputs are compacted
(rewritten under a temporary name, then renamed) so rows and index agree.
"""
from __future__ import annotations

import csv
import io
import os
import sys
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from .errors import OutputError
from .extractor import Keypoints

FORMATS = ("csv", "npy", "npy-dir")

# ---------------------------------------------------------------------------
# helpers


def tmp_name(path: str) -> str:
    """A hidden temporary name beside ``path`` (same folder, so rename is atomic)."""
    d, b = os.path.split(path)
    return os.path.join(d, f".{b}.featx-tmp-{os.getpid()}")


def write_atomic(path: str, data: bytes | str) -> None:
    """Write a small file completely under a temporary name, then rename it."""
    tmp = tmp_name(path)
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(tmp, mode) as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def format_floats(values: np.ndarray) -> str:
    """Comma-joined decimal text that reads back as exactly the same float32."""
    v = np.asarray(values, dtype=np.float32).ravel()
    if v.size == 0:
        return ""
    return (",".join(["%.9g"] * v.size)) % tuple(v.tolist())


def infer_format(output: str, fmt: str | None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise OutputError(f"unknown format {fmt!r}", "valid: " + ", ".join(FORMATS))
        return fmt
    if output == "-":
        return "csv"
    low = output.lower()
    if low.endswith(".csv"):
        return "csv"
    if low.endswith(".npy"):
        return "npy"
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return "npy-dir"
    raise OutputError(f"cannot tell the output format from {output!r}",
                      "end the name with .csv or .npy, end a folder with /, or pass --format")


def key_text(key: dict[str, Any], columns: Sequence[str]) -> list[str]:
    out = []
    for c in columns:
        v = key.get(c)
        if v is None:
            out.append("")
        elif isinstance(v, float):
            out.append("%.6f" % v)
        else:
            out.append(str(v))
    return out


def csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


def _fsync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# ---------------------------------------------------------------------------
# encoders (run in workers)


class Encoder:
    """Turn one result into output bytes.  Must be picklable."""

    def encode(self, key: dict[str, Any], mirror: str, value: Any) -> bytes:  # pragma: no cover
        raise NotImplementedError


class RawEncoder(Encoder):
    """float32 row bytes for the stacked ``.npy`` (a copy: the writer thread may write
    them after the extractor has reused its buffers)."""

    def encode(self, key, mirror, value):
        return np.ascontiguousarray(value, dtype="<f4").tobytes()


class CsvEncoder(Encoder):
    """One CSV line: key columns, then the values (class names where the spec says)."""

    def __init__(self, key_columns: Sequence[str], labels: Sequence[str] | None = None,
                 label_columns: Sequence[int] = ()):
        self.key_columns = tuple(key_columns)
        self.labels = tuple(labels) if labels else None
        self.label_columns = tuple(label_columns) if labels else ()

    def encode(self, key, mirror, value):
        head = csv_line(key_text(key, self.key_columns)).rstrip("\n")
        if self.label_columns:
            v = np.asarray(value, dtype=np.float32).ravel()
            fields = format_floats(v).split(",")
            for c in self.label_columns:
                i = int(v[c])
                if 0 <= i < len(self.labels):
                    fields[c] = csv_line([self.labels[i]]).rstrip("\n")
            vals = ",".join(fields)
        else:
            vals = format_floats(value)
        return (head + ("," + vals if vals else "") + "\n").encode("utf-8")


class NpyDirEncoder(Encoder):
    """Writes ``<root>/<mirror>.npy`` (``.npz`` for keypoints) atomically."""

    def __init__(self, root: str):
        self.root = root

    def target(self, mirror: str, value: Any) -> str:
        """``mirror`` is the item's relative path: the input's, plus ``/frame000012``
        for a video frame or ``.region-x-y-w-h`` for a region."""
        return os.path.join(self.root, mirror + (".npz" if isinstance(value, Keypoints) else ".npy"))

    def encode(self, key, mirror, value):
        path = self.target(mirror, value)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = tmp_name(path)
        with open(tmp, "wb") as fh:
            if isinstance(value, Keypoints):
                np.savez(fh, keypoints=np.asarray(value.points, np.float32),
                         descriptors=np.asarray(value.descriptors, np.float32))
            else:
                np.save(fh, np.asarray(value, np.float32))
        os.replace(tmp, path)
        return b""


# ---------------------------------------------------------------------------
# sinks (main process)


class Sink:
    """Base sink.  Lifecycle: ``prepare`` → ``open`` → (``append``* ``commit``)* → ``close``."""

    format: str = ""
    stacked = True  # one matrix: every value must have the same length

    def __init__(self, output: str, key_columns: Sequence[str] = ("path",), overwrite: bool = False):
        self.output = output
        self.key_columns = tuple(key_columns)
        self.overwrite = overwrite
        self.rows = 0                 # rows appended (committed + pending)
        self.width: int | None = None
        self.created = False          # this run created the output

    # -- names ------------------------------------------------------------
    @property
    def persistent(self) -> bool:
        """False for streams (stdout, memory): no state, lock or sidecar."""
        return self.output != "-"

    def paths(self) -> list[str]:
        """The files a reader sees."""
        return [self.output]

    @property
    def base(self) -> str:
        out = self.output.rstrip("/" + os.sep) or self.output
        return out[:-4] if self.format in ("npy", "csv") and out.lower().endswith("." + self.format) else out

    @property
    def sidecar_path(self) -> str | None:
        return None if self.output == "-" else self.base + ".featx.json"

    def _hidden(self, suffix: str) -> str:
        d, b = os.path.split(self.output.rstrip("/" + os.sep))
        return os.path.join(d, f".{b}.{suffix}")

    @property
    def state_path(self) -> str | None:
        return None if self.output == "-" else self._hidden("featx-state")

    @property
    def lock_path(self) -> str | None:
        """Beside the output (for a folder too), so it exists before the output does."""
        return None if self.output == "-" else self._hidden("featx-lock")

    # -- checks -----------------------------------------------------------
    def check_kind(self, kind: str, extractor: str) -> None:
        """Refuse, before any work, outputs this format cannot hold."""
        if kind == "regions":
            raise OutputError(f"{extractor} finds regions, written one CSV row per region",
                              "write them to a .csv (or - for stdout)")
        if self.stacked and kind == "keypoints":
            raise OutputError(f"{extractor} returns a variable number of keypoints per image, "
                              f"which cannot go into one {self.format} matrix",
                              "use --format npy-dir (one .npz per image), or an option that makes "
                              "a fixed-length vector (e.g. an encoding)")
        if self.stacked and kind == "dense":
            raise OutputError(f"{extractor} returns dense maps, which cannot go into one {self.format} matrix",
                              "use --format npy-dir (one .npy per image)")

    def exists(self) -> bool:
        return any(os.path.exists(p) for p in self.paths())

    def prepare(self) -> bool:
        """Before the lock: True if there is an earlier output to continue."""
        if self.output == "-":
            return False
        have_state = os.path.exists(self.state_path)
        if self.overwrite:
            self.remove_all()
            return False
        if self.exists() and not have_state:
            raise OutputError(f"{self.output} already exists and was not written by featx's incremental mode",
                              "pass --overwrite to replace it, or choose another -o")
        return have_state

    def remove_all(self) -> None:
        for p in self.paths() + [self.state_path, self.sidecar_path]:
            if p and os.path.isfile(p):
                os.unlink(p)

    def check_width(self, key: dict[str, Any], shape: tuple, first_key: dict | None) -> str | None:
        """None if a value of ``shape`` fits; otherwise why not."""
        if not self.stacked:
            return None
        if len(shape) != 1:
            return f"value of shape {shape} is not a vector"
        if self.width is None or shape[0] == self.width:
            return None
        first = (first_key or {}).get("path", "earlier inputs")
        return (f"gives {shape[0]} values but the output has {self.width} per row "
                f"(from {first}); sizes differ")

    # -- writing ----------------------------------------------------------
    def encoder(self) -> Encoder:  # pragma: no cover
        raise NotImplementedError

    def open(self, state) -> None:
        pass

    def append(self, key: dict[str, Any], data: bytes, shape: tuple) -> None:  # pragma: no cover
        raise NotImplementedError

    def prepare_commit(self) -> tuple[list[int], dict[str, Any], Any]:
        """Main thread: push buffered data to the OS and say what a commit needs:
        the file descriptors to make durable, the lengths to record, and what to
        do once recorded (e.g. move the ``.npy`` header).  The slow part, fsync,
        can then run in the background while appending goes on."""
        return [], self._lengths(), None

    def commit(self, state, entries: list) -> None:
        """Make appended data durable, then record ``entries`` in ``state`` (synchronously)."""
        fds, meta, after = self.prepare_commit()
        for fd in fds:
            os.fsync(fd)
        if state is not None:
            state.record(entries, **meta)
        if after is not None:
            after()

    def _lengths(self) -> dict[str, Any]:
        return {"rows": self.rows, "width": self.width}

    def compact(self, state) -> int:
        """Drop rows no committed input owns (changed or removed inputs); returns how many."""
        return 0

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {"path": self.output, "format": self.format, "shape": [self.rows, self.width or 0]}


class _StackedSink(Sink):
    """Shared machinery of ``npy`` and ``csv``: one data file, appended in place."""

    def _data_header(self) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def open(self, state) -> None:
        self._fh = self._open_data(state)
        self._writer: _Writer | None = None

    def _write(self, data) -> None:
        """Append to the data file through a writer thread, so that copying big rows
        into the page cache overlaps the next extraction (it releases the GIL)."""
        if self._writer is None:
            self._writer = _Writer(self._fh)
        self._writer.put(data)

    def _drain(self) -> None:
        if getattr(self, "_writer", None) is not None:
            self._writer.drain()

    def _open_data(self, state) -> IO[bytes]:
        committed = state.get("data_len") if state is not None else None
        if committed is None or not os.path.exists(self.output):
            self.created = True
            fh = open(self.output, "w+b")
            fh.write(self._data_header())
            _fsync(fh)
            self.data_len = fh.tell()
            self.rows, self.width = 0, None
            if state is not None:
                state.set_meta(data_len=self.data_len, rows=0, width=None)
            return fh
        fh = open(self.output, "r+b")
        fh.truncate(committed)          # drop what a crashed run appended past its last commit
        fh.seek(committed)
        self.data_len = committed
        self.rows = state.get("rows", 0)
        self.width = state.get("width")
        return fh

    def append(self, key, data, shape):
        if self.width is None:
            self.width = int(shape[0])
        self._write(data)
        self.data_len += len(data)
        self.rows += 1

    def _lengths(self):
        return {"rows": self.rows, "width": self.width, "data_len": self.data_len}

    def prepare_commit(self):
        self._drain()
        self._fh.flush()
        return [self._fh.fileno()], self._lengths(), None

    def close(self):
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            fh.close()


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

    def _header_line(self, width: int | None) -> bytes:
        names = list(self.columns) if self.columns and width == len(self.columns) else \
            [f"f{i}" for i in range(width or 0)]
        return csv_line(list(self.key_columns) + names).encode("utf-8")

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
        if self.data_len == 0:  # no row yet: still write the header
            head = self._header_line(self.width)
            self._write(head)
            self.data_len += len(head)
        return super().prepare_commit()

    def close(self):
        if self.output == "-":
            self._fh.flush()
            return
        super().close()

    def compact(self, state):
        return _compact_lines(self, state, self.output, header_lines=1, also_data=None)


class RegionsEncoder(Encoder):
    """One CSV line per box: key columns, then x, y, w, h as integers."""

    def __init__(self, key_columns: Sequence[str]):
        self.key_columns = tuple(key_columns)

    def encode(self, key, mirror, value):
        head = csv_line(key_text(key, self.key_columns)).rstrip("\n")
        boxes = np.asarray(value).reshape(-1, 4).astype(np.int64)
        return "".join(f"{head},{x},{y},{w},{h}\n" for x, y, w, h in boxes.tolist()).encode("utf-8")


class RegionsCsvSink(CsvSink):
    """``path,x,y,w,h``: one row per region (``featx detect``); an image without
    regions writes no row."""

    def __init__(self, output, key_columns=("path",), overwrite=False):
        super().__init__(output, key_columns, overwrite, columns=("x", "y", "w", "h"))

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


class _Writer:
    """A thread that appends byte strings to a file in order (bounded queue)."""

    def __init__(self, fh, depth: int = 16):
        import queue
        import threading

        self.fh = fh
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="featx-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            data = self.q.get()
            try:
                if data is None:
                    return
                if self.error is None:
                    self.fh.write(data)
            except BaseException as exc:  # reported to the main thread at the next drain
                self.error = exc
            finally:
                self.q.task_done()

    def put(self, data) -> None:
        if self.error is not None:
            self.drain()
        self.q.put(data)

    def drain(self) -> None:
        self.q.join()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()


NPY_HEADER_LEN = 128


def npy_header(rows: int, cols: int) -> bytes:
    """A version 1.0 ``.npy`` header of fixed length for a C-order float32 matrix."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    pad = NPY_HEADER_LEN - 10 - len(text) - 1
    return b"\x93NUMPY\x01\x00" + (NPY_HEADER_LEN - 10).to_bytes(2, "little") + \
        (text + " " * pad + "\n").encode("latin1")


class NpySink(_StackedSink):
    """Stacked float32 ``(N, D)`` matrix, plus ``<name>.index.csv`` (row, key columns)."""

    format = "npy"

    @property
    def index_path(self) -> str:
        return self.base + ".index.csv"

    def paths(self):
        return [self.output, self.index_path]

    def encoder(self):
        return RawEncoder()

    def _data_header(self):
        return npy_header(0, 0)

    def open(self, state):
        super().open(state)
        committed = state.get("index_len") if state is not None and not self.created else None
        if committed is None or not os.path.exists(self.index_path):
            self._ifh = open(self.index_path, "w+b")
            self._ifh.write(csv_line(["row", *self.key_columns]).encode("utf-8"))
        else:
            self._ifh = open(self.index_path, "r+b")
            self._ifh.truncate(committed)
            self._ifh.seek(committed)
        self._set_rows_in_header(self.rows)  # a crash may have left the header behind its commit

    def append(self, key, data, shape):
        self._ifh.write(csv_line([str(self.rows), *key_text(key, self.key_columns)]).encode("utf-8"))
        super().append(key, data, shape)

    def _lengths(self):
        d = super()._lengths()
        d["index_len"] = self._ifh.tell()
        return d

    def prepare_commit(self):
        self._ifh.flush()
        fds, meta, _ = super().prepare_commit()
        rows, width = self.rows, self.width
        # readers see the new rows only once the state has recorded them
        return fds + [self._ifh.fileno()], meta, lambda: self._set_header(rows, width)

    def _set_rows_in_header(self, rows: int) -> None:
        self._set_header(rows, self.width)

    def _set_header(self, rows: int, width: int | None) -> None:
        os.pwrite(self._fh.fileno(), npy_header(rows, width or 0), 0)

    def close(self):
        super().close()
        if getattr(self, "_ifh", None) is not None and not self._ifh.closed:
            self._ifh.close()

    def compact(self, state):
        return _compact_lines(self, state, self.index_path, header_lines=1, also_data=self.output)


def _live_ranges(state) -> list[tuple[int, int]]:
    rng = []
    for _, row0, n in state.live_rows():
        if n:
            rng.append((row0, row0 + n))
    return rng


def _compact_lines(sink: _StackedSink, state, text_path: str, header_lines: int, also_data: str | None) -> int:
    """Rewrite the stacked output keeping only rows owned by committed inputs.

    ``text_path`` is a line-per-row file (the CSV itself, or the npy index);
    for npy, ``also_data`` is the matrix whose rows move with the lines.
    Rows keep their relative order; the state's row numbers are renumbered in
    the same transaction that schedules the renames.
    """
    if sink.rows - state.live_count() <= 0:  # the common case: nothing changed or vanished
        return 0
    ranges = _live_ranges(state)
    live = sum(b - a for a, b in ranges)
    dead = sink.rows - live
    keep = np.zeros(sink.rows, dtype=bool)
    for a, b in ranges:
        keep[a:b] = True
    new_row = np.cumsum(keep) - 1
    tmp_text = tmp_name(text_path)
    sink._drain()
    _fsync(sink._fh)
    with open(text_path, "rb") as src, open(tmp_text, "wb") as dst:
        for _ in range(header_lines):
            dst.write(src.readline())
        r = 0
        for line in src:
            if r < sink.rows and keep[r]:
                if also_data is not None:  # the npy index: renumber the row column
                    rest = line.split(b",", 1)[1]
                    line = str(int(new_row[r])).encode() + b"," + rest
                dst.write(line)
            r += 1
        _fsync(dst)
        text_len = dst.tell()
    pairs = [(tmp_text, text_path)]
    meta: dict[str, Any] = {"rows": live}
    if also_data is not None:
        row_bytes = 4 * (sink.width or 0)
        tmp_data = tmp_name(also_data)
        with open(also_data, "rb") as src, open(tmp_data, "wb") as dst:
            dst.write(npy_header(live, sink.width or 0))
            for a, b in ranges:
                src.seek(NPY_HEADER_LEN + a * row_bytes)
                remaining = (b - a) * row_bytes
                while remaining:
                    chunk = src.read(min(remaining, 1 << 24))
                    dst.write(chunk)
                    remaining -= len(chunk)
            _fsync(dst)
            meta["data_len"] = dst.tell()
        meta["index_len"] = text_len
        pairs.append((tmp_data, also_data))
    else:
        meta["data_len"] = text_len
    sink.close()
    with state.transaction():
        for path, row0, n in list(state.live_rows()):
            state.db.execute("UPDATE items SET row0=? WHERE path=?", (int(new_row[row0]) if n else 0, path))
    state.replace_files(pairs, **meta)
    sink.rows = live
    return dead


class NpyDirSink(Sink):
    """One ``.npy`` (or ``.npz`` for keypoints) per input, mirroring the input tree."""

    format = "npy-dir"
    stacked = False

    def __init__(self, output, key_columns=("path",), overwrite=False):
        super().__init__(output.rstrip("/" + os.sep) or output, key_columns, overwrite)
        self.shape: tuple | None = None

    @property
    def state_path(self):
        return os.path.join(self.output, ".featx-state")

    def exists(self):
        return os.path.isdir(self.output) and any(not e.name.startswith(".") for e in os.scandir(self.output))

    def prepare(self):
        if os.path.exists(self.output) and not os.path.isdir(self.output):
            raise OutputError(f"{self.output} exists and is not a folder", "choose another -o")
        os.makedirs(self.output, exist_ok=True)
        if self.overwrite:
            for p in (self.state_path, self.sidecar_path):
                if os.path.isfile(p):
                    os.unlink(p)
            return False
        if self.exists() and not os.path.exists(self.state_path):
            raise OutputError(f"{self.output}/ already exists, is not empty and was not written by featx",
                              "pass --overwrite to write into it, or choose another -o")
        return os.path.exists(self.state_path)

    def encoder(self):
        return NpyDirEncoder(self.output)

    def open(self, state):
        self.rows = state.get("rows", 0) if state is not None else 0

    def append(self, key, data, shape):
        self.rows += 1
        if self.shape is None:
            self.shape = tuple(shape)
        elif self.shape != tuple(shape):
            self.shape = ()  # mixed shapes

    def info(self):
        return {"path": self.output, "format": "npy-dir", "files": self.rows,
                "shape": list(self.shape) if self.shape else None}


def make_sink(output: str, fmt: str | None, *, key_columns: Sequence[str] = ("path",),
              overwrite: bool = False, columns: Sequence[str] | None = None, kind: str = "vector",
              labels: Sequence[str] | None = None, label_columns: Sequence[int] = ()) -> Sink:
    fmt = infer_format(output, fmt)
    if kind == "regions":
        if fmt != "csv":
            raise OutputError(f"regions are written as CSV, not {fmt}", "use -o NAME.csv or -o -")
        return RegionsCsvSink(output, key_columns, overwrite)
    if output == "-" and fmt != "csv":
        raise OutputError(f"-o - writes CSV to stdout, not {fmt}", "drop --format or write to a file")
    if fmt == "csv":
        return CsvSink(output, key_columns, overwrite, columns, labels, label_columns)
    if fmt == "npy":
        if not output.lower().endswith(".npy"):
            raise OutputError(f"a stacked npy output must end with .npy, got {output!r}")
        return NpySink(output, key_columns, overwrite)
    return NpyDirSink(output, key_columns, overwrite)
