"""What every output format shares: the :class:`Encoder` / :class:`Sink` halves,
the stacked-file machinery of ``csv`` and ``npy`` (append in place, commit,
cut back to the last commit, compact), and the small text helpers.

A sink is split in two halves so that big feature arrays are copied as
little as possible:

* an :class:`Encoder` (small, picklable) turns one result into the bytes the
  output holds — a CSV line, raw float32 row bytes — or, for ``npy-dir``,
  writes the per-input file itself.  It runs where the features were
  computed (a worker process);
* the :class:`Sink` (main process only) appends those bytes in input order
  and commits them progressively through the run's :class:`~featx.output.state.State`.

Crash safety: data is appended in place and made durable, then the state
records the committed lengths in one transaction; the ``.npy`` header's row
count is updated only after that.  On the next run anything beyond the
committed lengths is cut off.  A stacked ``.npy`` therefore always loads as
exactly its committed rows, and ``NAME.index.csv`` always lists those rows.
When inputs changed or were removed, the stacked outputs are compacted
(rewritten under a temporary name, then renamed) so rows and index agree.
The formats themselves are in :mod:`.csvsink`, :mod:`.npysink` and
:mod:`.npydir`; :func:`featx.output.sinks.make_sink` picks one.  The writer
thread and the check of what was appended since a commit are in :mod:`.append`.
"""
from __future__ import annotations

import csv
import io
import os
import zlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

import numpy as np

from ..errors import OutputError
from ..names import escape_name
from .append import Writer, parts_match, start_writeback
from .atomic import OutputWriteError, disk_error, is_disk_error, tmp_name, write_atomic, write_file
from .npyformat import NPY_HEADER_LEN, record_tail, write_whole

FORMATS = ("csv", "npy", "npy-dir", "parquet")



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
    if low.rstrip("/" + os.sep).endswith(".parquet"):
        return "parquet"
    if output.endswith(("/", os.sep)) or os.path.isdir(output):
        return "npy-dir"
    raise OutputError(f"cannot tell the output format from {output!r}",
                      "end the name with .csv, .npy or .parquet, end a folder with /, or pass --format")


def canonical_output(output: str) -> str:
    """One name per output whatever its spelling (``feats/``, ``feats/.``, a link to it,
    from any folder), so its lock, state and sidecar are the same files: the output's
    folder with links resolved, and its own name (a folder output: resolved too)."""
    if output in ("-", "<memory>"):
        return output
    trimmed = output.rstrip("/" + os.sep) or output
    if output.endswith(("/", os.sep)) or os.path.isdir(trimmed):
        return os.path.realpath(trimmed)
    head, tail = os.path.split(trimmed)
    return os.path.join(os.path.realpath(head or os.curdir), tail)


def not_regular(path: str) -> None:
    """Refuse (even with ``--overwrite``) an output path that exists and is not a regular
    file: a device node, a FIFO or a socket is never replaced by an output, nor written to."""
    import stat

    try:
        mode = os.stat(path).st_mode
    except OSError:
        return
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = ("a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")
        raise OutputError(f"{path} is {kind}, not a file featx can write an output to",
                          "choose another -o (featx writes regular files and folders only)")


def key_text(key: dict[str, Any], columns: Sequence[str]) -> list[str]:
    out = []
    for c in columns:
        v = key.get(c)
        if v is None:
            out.append("")
        elif isinstance(v, float):
            out.append("%.6f" % v)
        elif isinstance(v, str):  # a name: valid UTF-8 with featx's escape (featx.names)
            out.append(escape_name(v))
        else:
            out.append(str(v))
    return out


def csv_line(fields: list[str]) -> str:
    """One CSV line ending in ``\\n``.  A field holding ``\\r`` or ``\\n`` is quoted
    (the csv module quotes only the characters of its line terminator, so it
    is given ``\\r\\n`` and the line ends are put back)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(fields)
    return buf.getvalue()[:-2] + "\n"


def to_bytes(text: str) -> bytes:
    """UTF-8, with the raw bytes of file names that are not UTF-8 put back
    (``os.fsdecode`` turned them into surrogates): a name round-trips exactly."""
    return text.encode("utf-8", "surrogateescape")


CHECK_BYTES = 4096


def file_check(path: str, start: int, end: int) -> dict[str, int]:
    """What a commit remembers of a file to know it again: its inode and the CRC-32 of
    the first and last few KB of ``[start, end)``.  A file replaced or rewritten since
    (a spreadsheet's save, ``unix2dos``, ``np.save``) no longer matches."""
    import zlib

    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        head = os.pread(fd, max(0, min(CHECK_BYTES, end - start)), start)
        t0 = max(start, end - CHECK_BYTES)
        tail = os.pread(fd, end - t0, t0)
        return {"ino": os.fstat(fd).st_ino, "head": zlib.crc32(head), "tail": zlib.crc32(tail)}
    finally:
        os.close(fd)


def csv_records(fh) -> Iterator[bytes]:
    """The records of a CSV file opened in binary mode, each with its line end.  A
    quoted field may hold newlines (a file name with ``\\n``): a record ends at a
    line end only when its quotes are balanced (quotes inside a field are doubled)."""
    part: list[bytes] = []
    quotes = 0
    for line in fh:
        part.append(line)
        quotes += line.count(b'"')
        if quotes % 2 == 0:
            yield b"".join(part) if len(part) > 1 else line
            part, quotes = [], 0
    if part:
        yield b"".join(part)


def pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """``os.pwrite`` until all of ``data`` is written (a nearly full disk takes part of it)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(28, os.strerror(28))
        view, offset = view[n:], offset + n


def _fsync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())



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


# ---------------------------------------------------------------------------
# sinks (main process)


class Sink:
    """Base sink.  Lifecycle: ``prepare`` → (``damage``) → ``open`` → (``append``* ``commit``)* → ``close``."""

    format: str = ""
    stacked = True  # one matrix: every value must have the same length

    def __init__(self, output: str, key_columns: Sequence[str] = ("path",), overwrite: bool = False):
        self.output = canonical_output(output)
        self.key_columns = tuple(key_columns)
        self.overwrite = overwrite
        self.rows = 0                 # rows appended (committed + pending)
        self.width: int | None = None
        self.created = False          # this run created the output
        self.broken: BaseException | None = None  # a write failed: nothing past the last commit may be recorded
        self._recorded = False        # a commit of this run is in the state

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
        """``OUTPUT.featx.json``: the whole output name, so ``hog.npy`` and ``hog.csv``
        side by side each keep their own record."""
        return None if self.output == "-" else (self.output.rstrip("/" + os.sep) or self.output) + ".featx.json"

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

    @property
    def mirror_base(self) -> str:
        """The folder that ``npy-dir`` mirror paths are relative to (see
        :func:`featx.output.layout.mirror_path`): the output's own parent folder."""
        return os.path.dirname(os.path.realpath(self.output.rstrip("/" + os.sep) or self.output))

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

    def preflight(self) -> None:
        """Refuse, before any output of the run is opened (an ``--overwrite`` removes files),
        an output that cannot be written where it is named."""
        if self.output != "-" and os.path.isdir(self.output):
            raise OutputError(f"{self.output} is a folder", "choose another -o (a folder/ is an npy-dir output)")
        if self.output != "-":
            for p in self.paths():
                not_regular(p)

    def prepare(self) -> bool:
        """Under the lock: True if there is an earlier output to continue."""
        if self.output == "-":
            return False
        have_state = self.has_state()
        if self.overwrite:
            self.remove_all()
            return False
        if self.exists() and not have_state:
            there = [p for p in self.paths() if os.path.exists(p)]
            what = there[0] if len(there) == 1 else self.output   # (only its index may be left)
            raise OutputError(f"{what} already exists and was not written by featx's incremental mode",
                              "pass --overwrite to replace it, or choose another -o")
        return have_state

    def has_state(self) -> bool:
        """Is there a state file that could vouch for the output?  An empty one (0 bytes: no
        commit, no settings) is no better than none: it must not let featx replace an output
        with no settings check."""
        try:
            return os.path.getsize(self.state_path) > 0
        except (OSError, TypeError):
            return False

    def damage(self, state) -> str | None:
        """Why the committed output on disk cannot be continued (deleted, truncated,
        replaced since its last commit), or None if it is whole."""
        return None

    def discard(self) -> None:
        """Remove the output's files (not its state) to rebuild it."""
        for p in self.paths():
            if os.path.isfile(p):
                os.unlink(p)

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
        first = (first_key or {}).get("path")
        return (f"gives {shape[0]} values per row, the output has {self.width}"
                + (f" (from {first})" if first else ""))

    def present(self, out: str | None, nrows: int, names: list[str] | None = None, deep: bool = False) -> bool:
        """Is a committed input's output still there?  (``npy-dir``: its files.)"""
        return True

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
        self.record_commit(state, entries, meta, after, lambda: [os.fsync(fd) for fd in fds])

    def record_commit(self, state, entries: list, meta: dict[str, Any], after, durable) -> None:
        """The second half of a commit: ``durable()`` (the fsync, or waiting for it), the
        state transaction, then ``after``.  If any step fails, nothing past the last
        commit may be recorded any more: the sink is marked broken."""
        try:
            durable()
            if state is not None:
                state.record(entries, **meta)
                self._recorded = True
            if after is not None:
                after()
        except Exception as exc:
            self.fail_commit(exc)
            raise

    def fail_commit(self, exc: Exception) -> None:
        """A commit failed with ``exc``: nothing past the last commit may be recorded any
        more (the sink is broken); a full disk is raised as the output's write error."""
        if self.broken is None:
            self.broken = disk_error(self.output, exc) if is_disk_error(exc) else exc
        if self.broken is not exc and isinstance(self.broken, OutputWriteError):
            raise self.broken from None

    def _lengths(self) -> dict[str, Any]:
        return {"rows": self.rows, "width": self.width}

    def compact(self, state) -> int:
        """Drop rows no committed input owns (changed or removed inputs); returns how many."""
        return 0

    def forget_outputs(self, outs: list[str]) -> None:
        """Remove the files of inputs that left the output (``npy-dir``)."""

    def abandon(self) -> bool:
        """Remove a new output's files that never reached a commit; True if there were any."""
        return False

    def close(self) -> None:
        pass

    def info(self) -> dict[str, Any]:
        return {"path": self.output, "format": self.format, "shape": [self.rows, self.width or 0]}


class _StackedSink(Sink):
    """Shared machinery of ``npy`` and ``csv``: one data file, appended in place.

    A new output is written under a hidden temporary name and appears under its
    own name at its first commit (the rename is recorded in the state first, so
    a crash between the two is rolled forward).  Before any commit there is
    nothing a reader could mistake for an output.
    """

    def _data_header(self) -> bytes:  # pragma: no cover
        raise NotImplementedError

    def _first_files(self) -> list[tuple[str, str]]:
        """(temporary, final) names of the files a new output is written under."""
        return [(tmp_name(self.output), self.output)]

    def open(self, state) -> None:
        self._renames: list[tuple[str, str]] = []
        self._fh = self._open_data(state)
        self._writer: Writer | None = None
        # what the last commit left (or the output as opened): its end and its check; the bytes
        # appended since are checked by their CRC, so that a commit never takes its check from a
        # file changed under the run (truncated, rewritten in place)
        old = (state.get("checks") or {}).get("data") if state is not None and not self.created else None
        self._known = (self.data_len, old)
        self._crc = 0
        self._crc_len = 0
        self._crc_parts: list[tuple[int, int]] = []

    def _write(self, data) -> None:
        """Append to the data file through a writer thread, so that copying big rows
        into the page cache overlaps the next extraction (it releases the GIL)."""
        if self._writer is None:
            self._writer = Writer(self._fh)
        if self._writer.error is not None:
            self._drain()
        self._crc = zlib.crc32(data, self._crc)
        self._crc_len += len(data)
        if self._crc_len >= self.CRC_PART:
            self._crc_parts.append((self._crc_len, self._crc))
            self._crc, self._crc_len = 0, 0
        self._writer.put(data)

    #: the bytes appended since the last commit are checked in parts of about this size
    #: (each part's own CRC-32), so that the check can use two cores
    CRC_PART = 1 << 23

    def _take_crcs(self) -> list[tuple[int, int]]:
        """``(length, crc)`` of each part appended since the last commit, in order; a new
        list begins."""
        parts = self._crc_parts + [(self._crc_len, self._crc)]
        self._crc_parts, self._crc, self._crc_len = [], 0, 0
        return parts

    def _drain(self) -> None:
        if self.broken is not None:
            raise self.broken
        if getattr(self, "_writer", None) is not None:
            try:
                self._writer.drain()
            except OSError as exc:
                self.broken = disk_error(self.output, exc) if is_disk_error(exc) else exc
                raise self.broken from None

    def _committed_len(self, state, key: str) -> int | None:
        return state.get(key) if state is not None else None

    #: where the rows of the data file start (the ``.npy`` header is rewritten at every commit)
    data_start = 0

    def checks(self, files: dict[str, str | None], meta: dict[str, Any]) -> dict[str, Any]:
        """:func:`file_check` of the data file (and index) as a commit with ``meta`` leaves them."""
        out = {"data": file_check(files["data"], self.data_start, meta["data_len"])}
        if files.get("index"):
            start = meta["index_len"] - len(meta.get("index_tail", "").encode("latin-1"))
            out["index"] = file_check(files["index"], 0, start)
        return out

    def _changed(self, role: str, path: str, start: int, end: int, state) -> bool:
        old = (state.get("checks") or {}).get(role)
        return old is not None and file_check(path, start, end) != old

    def damage(self, state):
        committed = self._committed_len(state, "data_len")
        if committed is None:
            return None
        try:
            size = os.stat(self.output).st_size
        except FileNotFoundError:
            return f"{self.output} is missing (deleted since its last run?)"
        if size < committed:
            return f"{self.output} is shorter ({size} bytes) than its last commit ({committed} bytes)"
        if self._changed("data", self.output, self.data_start, committed, state):
            return f"{self.output} was replaced or changed since its last commit (by another program?)"
        return None

    def _open_data(self, state) -> IO[bytes]:
        committed = self._committed_len(state, "data_len")
        if committed is None:
            self.created = True
            tmp, final = self._first_files()[0]
            write_atomic(tmp, self._data_header())
            self._renames = list(self._first_files())
            fh = open(tmp, "r+b")
            fh.seek(0, os.SEEK_END)
            self.data_len = fh.tell()
            self.rows, self.width = 0, None
            return fh
        fh = open(self.output, "r+b")
        fh.truncate(committed)          # drop what a crashed run appended past its last commit
        fh.seek(committed)
        self.data_len = committed
        self.rows = state.get("rows", 0)
        self.width = state.get("width")
        return fh

    def _check_still_there(self) -> None:
        """The data file must still be the one we write: an output deleted or replaced
        during the run stops it (the next run rebuilds it), never a silent loss."""
        name = self._data_name()
        try:
            same = os.stat(name).st_ino == os.fstat(self._fh.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            raise OutputWriteError(f"{self.output} was deleted or replaced while featx was writing it",
                                   "run the same command again to rebuild it")

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
        try:
            self._fh.flush()
        except OSError as exc:
            self.broken = disk_error(self.output, exc) if is_disk_error(exc) else exc
            raise self.broken from None
        self._check_still_there()
        meta = self._lengths()
        if self._renames:
            meta["renames"] = list(self._renames)
        name = self._data_name()
        end, old = self._known
        # the disk may write what is left while the check reads it (the fsync comes after)
        start_writeback(self._fh.fileno(), end, self.data_len)
        self._verify(name, self._fh.fileno(), self.data_start, end, old, self.data_len, crcs=self._take_crcs())
        meta["checks"] = {"data": file_check(name, self.data_start, meta["data_len"])}
        self._known = (self.data_len, meta["checks"]["data"])
        return [self._fh.fileno()], meta, self._after_commit(meta)

    def _verify(self, name: str, fd: int, start: int, end: int, old: dict | None, size: int,
                crcs: list[tuple[int, int]] | None = None, expect: bytes | None = None) -> None:
        """Before a commit: the file ``name`` (open as ``fd``) is still exactly what featx left
        in it.  Its size is ``size``; ``[start, end)`` is what the last commit checked (``old``:
        its :func:`file_check`); ``[end, size)`` was written since, in parts with the lengths
        and CRC-32s ``crcs`` (or the bytes ``expect``).  An output truncated or rewritten under the run stops it (exit 74):
        a commit must never vouch for rows that are no longer what was written."""
        why = None
        now = os.fstat(fd).st_size
        if now != size:
            why = f"is {now} bytes long, featx wrote {size}"
        elif old is not None and file_check(name, start, end) != old:
            why = "changed in its committed part"
        elif expect is not None and os.pread(fd, size - end, end) != expect:
            why = "changed in what featx wrote since its last commit"
        elif crcs is not None and not parts_match(fd, end, crcs):
            why = "changed in what featx wrote since its last commit"
        if why is None:
            return
        self.broken = OutputWriteError(f"{name} was truncated or rewritten while featx was writing it ({why})",
                                       "another program changed the output during the run; what was committed "
                                       "before is not trusted: run the same command again to rebuild it")
        raise self.broken

    def _data_name(self) -> str:
        return self._renames[0][0] if getattr(self, "_renames", None) else self.output

    def _after_commit(self, meta):
        renames = meta.get("renames")
        if not renames:
            return None

        def after():
            for src, dst in renames:
                os.replace(src, dst)
            self._renames = []
        return after

    def abandon(self) -> bool:
        """Remove a new output's files that never reached a commit; True if there were any.
        (Once the state has recorded the first commit, its renames are the next run's to finish.)"""
        if self._recorded:
            return False
        renames = getattr(self, "_renames", None) or ()
        for tmp, _ in renames:
            if os.path.isfile(tmp):
                os.unlink(tmp)
        return bool(renames)

    def discard(self):
        super().discard()
        for tmp, _ in self._first_files():
            if os.path.isfile(tmp):
                os.unlink(tmp)

    def remove_all(self):
        super().remove_all()
        for tmp, _ in self._first_files():
            if os.path.isfile(tmp):
                os.unlink(tmp)

    def close(self):
        if getattr(self, "_writer", None) is not None:
            self._writer.close()
            self._writer = None
        fh = getattr(self, "_fh", None)
        if fh is not None and not fh.closed:
            try:
                fh.close()
            except OSError:  # a full disk: what it could not flush is past the last commit anyway
                pass


def _tail(state) -> bytes:
    return (state.get("index_tail") or "").encode("latin-1")


def _live_ranges(state) -> list[tuple[int, int]]:
    rng = []
    for _, row0, n in state.live_rows(rowids=True):
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
    sink._drain()
    _fsync(sink._fh)

    def kept(path: str, skip: int):
        with open(path, "rb") as src:
            records = csv_records(src)
            head = b"".join(next(records) for _ in range(skip))
            yield head
            for r, rec in enumerate(records):
                if r < sink.rows and keep[r]:
                    yield rec

    def chunks():
        row_bytes = 4 * (sink.width or 0)
        with open(also_data, "rb") as src:
            for a, b in ranges:
                src.seek(NPY_HEADER_LEN + a * row_bytes)
                remaining = (b - a) * row_bytes
                while remaining:
                    chunk = src.read(min(remaining, 1 << 24))
                    if not chunk:
                        raise OutputError(f"{also_data} is shorter than its committed rows")
                    yield chunk
                    remaining -= len(chunk)

    # the files are written whole under temporary names first (removed again if that fails);
    # the new row numbers and the renames are then recorded in one transaction, and done
    tmp_text = tmp_name(text_path)
    tmp_data = tmp_name(also_data) if also_data is not None else None
    try:
        meta: dict[str, Any] = {"rows": live}
        if also_data is not None:  # npy: the matrix and its index, by the format's one writer
            lines = kept(text_path, header_lines)
            head = next(lines)
            meta["data_len"], meta["index_len"] = write_whole(
                tmp_data, tmp_text, live, sink.width or 0, head, chunks(), (record_tail(rec) for rec in lines))
            meta["index_tail"] = ""
            pairs = [(tmp_data, also_data), (tmp_text, text_path)]
        else:  # csv: its lines
            meta["data_len"] = write_file(tmp_text, lambda dst: dst.writelines(kept(text_path, header_lines)))
            pairs = [(tmp_text, text_path)]
        sink.close()
        meta["checks"] = sink.checks({"data": tmp_data or tmp_text, "index": tmp_text if tmp_data else None},
                                     meta)
        state.record([], renames=pairs,
                     renumber={rowid: int(new_row[row0]) if n else 0
                               for rowid, row0, n in state.live_rows(rowids=True)}, **meta)
    except BaseException:
        for tmp in (tmp_text, tmp_data):
            if tmp and os.path.isfile(tmp):
                os.unlink(tmp)
        raise
    state.recover_renames()
    sink.rows = live
    return dead


