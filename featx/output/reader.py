"""Reading any featx output back, row by row, whatever its format.

:func:`open_output` picks the reader of an output (``csv``, ``npy`` with its
``NAME.index.csv``, ``npy-dir``, and ``parquet`` from :mod:`.parquet` when that
is installed); every reader has the same small interface (:class:`OutputReader`):
the key columns, the kind of rows, the vector length, the sidecar, the number of
committed rows and :meth:`~OutputReader.batches` of them in output order.

Readers stream: a stacked ``.npy`` is memory-mapped, a CSV (and an index) read
record by record (a quoted name may hold a newline), an ``npy-dir`` file by file,
so memory stays flat in the number of rows.  Where the output's state is beside it,
only the rows of its last commit are read (a killed run may have appended more).

Reading never writes: no lock, no state is created, nothing is repaired.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from ..errors import OutputError
from ..names import unescape_name
from . import layout
from .keys import KEY_COLUMNS, key_type, parse_key
from .sinkbase import csv_records


READ_FORMATS = ("csv", "npy", "npy-dir", "parquet")


def sidecar_path(output: str) -> str:
    """``OUTPUT.featx.json`` (``feats/`` -> ``feats.featx.json``)."""
    return (output.rstrip("/" + os.sep) or output) + ".featx.json"


def state_path(output: str, fmt: str) -> str:
    """Where the state of ``output`` (of format ``fmt``) is kept."""
    out = output.rstrip("/" + os.sep) or output
    if fmt == "npy-dir":
        return os.path.join(out, ".featx-state")
    d, b = os.path.split(out)
    return os.path.join(d, f".{b}.featx-state")


def load_sidecar(output: str) -> dict | None:
    """The sidecar record of ``output`` (None when there is none or it is not JSON)."""
    try:
        with open(sidecar_path(output), "rb") as fh:
            doc = json.loads(fh.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def read_state(path: str):
    """The :class:`~featx.output.state.State` at ``path`` if a featx state file is there
    (never creates one); None when there is none.  A file that is not a featx state raises
    :class:`~featx.errors.OutputError`."""
    from .state import State

    try:
        if os.path.islink(path) or not os.path.isfile(path) or os.path.getsize(path) == 0:
            return None
    except OSError:
        return None
    return State(path)


def guess_format(path: str, sidecar: dict | None = None) -> str:
    """The format of the output ``path``: what its sidecar records, else its name or contents."""
    rec = ((sidecar or {}).get("output") or {}).get("format") if isinstance(sidecar, dict) else None
    if rec in READ_FORMATS:
        return rec
    trimmed = path.rstrip("/" + os.sep) or path
    low = trimmed.lower()
    if low.endswith(".parquet"):
        return "parquet"
    if os.path.isdir(trimmed):
        return "npy-dir"
    if low.endswith(".npy"):
        return "npy"
    if low.endswith(".csv"):
        return "csv"
    try:
        with open(trimmed, "rb") as fh:
            head = fh.read(6)
    except OSError:
        head = b""
    if head == b"\x93NUMPY":
        return "npy"
    if head[:4] == b"PAR1":
        return "parquet"
    if head:
        return "csv"
    raise OutputError(f"cannot tell the format of {path}",
                      "featx reads .npy (with NAME.index.csv), .csv, npy-dir folders and .parquet outputs")


def open_output(path: str) -> "OutputReader":
    """The reader of the output ``path`` (any format); :class:`~featx.errors.OutputError`
    when it is missing or cannot be read."""
    trimmed = path.rstrip("/" + os.sep) or path
    if not os.path.exists(trimmed):
        raise OutputError(f"{path} does not exist")
    sidecar = load_sidecar(path)
    fmt = guess_format(path, sidecar)
    cls = {"csv": CsvReader, "npy": NpyReader, "npy-dir": NpyDirReader, "parquet": ParquetOutput}[fmt]
    return cls(path, sidecar)


def _fields(record: bytes) -> list[str]:
    """The fields of one CSV record (bytes, its line end included); names that are not
    UTF-8 were written with featx's escape, anything else undecodable is kept as surrogates."""
    text = record.decode("utf-8", "surrogateescape")
    return next(csv.reader(io.StringIO(text, newline="")), [])


class OutputReader:
    """What every reader gives (see the module docstring)."""

    format = ""
    kind = "vector"
    width: int | None = None
    key_columns: tuple[str, ...] = ("path",)

    def __init__(self, path: str, sidecar: dict | None = None):
        self.path = path
        self.output = path.rstrip("/" + os.sep) or path
        self.sidecar = sidecar
        self.state = None
        try:
            self.state = read_state(self.state_path)
        except OutputError as exc:
            self.state_error = exc.message
        else:
            self.state_error = None
        self.config = self.state.get("config") if self.state is not None else None
        keys = ((self.config or {}).get("options") or {}).get("keys")
        if isinstance(keys, list) and keys:
            self.key_columns = tuple(keys)

    @property
    def state_path(self) -> str:
        return state_path(self.output, self.format)

    @property
    def sidecar_path(self) -> str:
        return sidecar_path(self.output)

    def files(self) -> list[str]:
        """The files that hold the rows."""
        return [self.output]

    def __len__(self) -> int:  # pragma: no cover
        raise NotImplementedError

    def batches(self, rows: int = 4096) -> Iterator[tuple[list[dict], Any]]:  # pragma: no cover
        raise NotImplementedError

    def entries(self) -> Iterator[tuple]:
        """The inputs the state records, in row order: ``(path, Identity, row0, nrows, out,
        status)`` with row numbers as :meth:`batches` counts them; nothing without a state."""
        from .state import Identity

        if self.state is None:
            return
        rows = sorted(self.state.items(), key=lambda t: (t[4], t[5] == 0))
        for path, size, mtime, h, row0, nrows, out, status in rows:
            ident = None if status == "failed" and size is None else Identity.from_stored(size, mtime, h)
            yield path, ident, row0, nrows, out, status

    def close(self) -> None:
        if self.state is not None:
            self.state.close()
            self.state = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


class _Stacked(OutputReader):
    def _committed_rows(self, shown: int) -> int:
        if self.state is not None and self.state.get("data_len") is not None:
            return min(shown, int(self.state.get("rows", 0) or 0))
        return shown


class NpyReader(_Stacked):
    """A stacked float32 ``.npy`` and its ``NAME.index.csv``, memory-mapped."""

    format = "npy"

    def __init__(self, path, sidecar=None):
        super().__init__(path, sidecar)
        self.broken: str | None = None     # the header reads, the rows do not (a truncated file)
        try:
            self.matrix = np.load(self.output, mmap_mode="r", allow_pickle=False)
            self.dtype, self.shape = self.matrix.dtype, tuple(self.matrix.shape)
        except (OSError, ValueError) as exc:
            self.matrix = None
            self.dtype, self.shape = self._header(path)
            self.broken = f"{path} cannot be read as its header says ({exc})"
        ndim = len(self.shape)
        if ndim == 2:
            self.width = int(self.shape[1])
        elif ndim == 1:
            self.width = None
        else:
            self.kind = "dense"
        base = self.output[:-4] if self.output.lower().endswith(".npy") else self.output
        self.index_path = base + ".index.csv"
        self.index_header: list[str] | None = None
        if os.path.isfile(self.index_path):
            with open(self.index_path, "rb") as fh:
                head = next(csv_records(fh), b"")
            self.index_header = _fields(head) if head else None
            if self.index_header and self.index_header[0] == "row" and self.config is None:
                self.key_columns = tuple(self.index_header[1:])
        self._rows = self._committed_rows(self.shape[0] if self.shape else 0)

    def _header(self, path: str):
        """dtype and shape from the ``.npy`` header alone."""
        from numpy.lib import format as npformat

        try:
            with open(self.output, "rb") as fh:
                version = npformat.read_magic(fh)
                read = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
                shape, _, dtype = read(fh)
        except (OSError, ValueError) as exc:
            raise OutputError(f"{path} is not a readable .npy file ({exc})") from None
        return dtype, tuple(shape)

    def files(self):
        return [self.output] + ([self.index_path] if os.path.isfile(self.index_path) else [])

    def __len__(self):
        return self._rows

    def batches(self, rows=4096):
        if self.broken is not None:
            raise OutputError(self.broken, "featx extract with the same settings rebuilds it")
        if self.matrix.ndim != 2:
            raise OutputError(f"{self.path} holds an array of shape {self.shape}, not rows of vectors")
        if self.index_header is None:
            raise OutputError(f"{self.path} has no index {self.index_path}: its rows have no names")
        cols = self.index_header[1:]
        with open(self.index_path, "rb") as fh:
            records = csv_records(fh)
            next(records, None)
            keys: list[dict] = []
            start = 0
            for rec in records:
                if start + len(keys) >= self._rows:
                    break
                f = _fields(rec)
                keys.append({c: parse_key(c, v) for c, v in zip(cols, f[1:])})
                if len(keys) == rows:
                    yield keys, np.array(self.matrix[start:start + rows], dtype=np.float32)
                    start += rows
                    keys = []
            if start + len(keys) < self._rows:
                raise OutputError(f"{self.index_path} names {start + len(keys)} rows, {self.path} has {self._rows}")
            if keys:
                yield keys, np.array(self.matrix[start:start + len(keys)], dtype=np.float32)


class CsvReader(_Stacked):
    """A featx CSV: the key columns, then the values; read record by record."""

    format = "csv"

    def __init__(self, path, sidecar=None):
        super().__init__(path, sidecar)
        with open(self.output, "rb") as fh:
            head = next(csv_records(fh), b"")
        self.header = _fields(head) if head else []
        if self.config is None:
            n = 0
            while n < len(self.header) and self.header[n] in KEY_COLUMNS:
                n += 1
            ext = (self.sidecar or {}).get("extractor")
            if isinstance(ext, dict) and ext.get("name") == "detect":
                n = max(1, n - 4)   # x, y, w, h of detect's boxes are its values
            self.key_columns = tuple(self.header[:n]) or ("path",)
        self.columns = tuple(self.header[len(self.key_columns):])
        self.width = len(self.columns) if self.header else None
        self._shown: int | None = None

    def shown_rows(self) -> int:
        """The rows the file holds (a killed run may have left some past its last commit)."""
        if self._shown is None:
            n = 0
            with open(self.output, "rb") as fh:
                for n, _ in enumerate(csv_records(fh)):
                    pass
            self._shown = max(0, n)
        return self._shown

    def __len__(self):
        return self._committed_rows(self.shown_rows())

    def batches(self, rows=4096):
        total = len(self)
        nk = len(self.key_columns)
        with open(self.output, "rb") as fh:
            records = csv_records(fh)
            next(records, None)
            keys: list[dict] = []
            vals: list[list[str]] = []
            done = 0
            for rec in records:
                if done >= total:
                    break
                f = _fields(rec)
                keys.append({c: parse_key(c, v) for c, v in zip(self.key_columns, f[:nk])})
                vals.append(f[nk:])
                done += 1
                if len(keys) == rows:
                    yield keys, self._values(vals, done)
                    keys, vals = [], []
            if keys:
                yield keys, self._values(vals, done)

    def _values(self, vals: list[list[str]], done: int) -> np.ndarray:
        try:
            return np.array(vals, dtype=np.float32).reshape(len(vals), self.width or 0)
        except ValueError:
            raise OutputError(f"{self.path}: a row near row {done} holds values that are not numbers "
                              "(class names of cnn --top-k?) or has another number of values than its header",
                              "convert the .npy output of the same run instead") from None


_FRAME = re.compile(r"^frame(\d+)$")
_POOLED = re.compile(r"^(frame|segment|track|window)(\d+)$")

#: Key columns only pooled rows have: an npy-dir output with them names its files
#: by :func:`~featx.output.layout.pooled_mirror`.
_POOLED_KEYS = ("frames", "regions")
_REGION = re.compile(r"\.region-(\d+)-(\d+)-(\d+)-(\d+)$")
_TRACK = re.compile(r"\.track-(-?\d+)$")


class NpyDirReader(OutputReader):
    """A folder of one ``.npy`` (``.npz`` for keypoints) per item, read file by file.
    The state says which input each file belongs to; without one, the files found."""

    format = "npy-dir"

    def __init__(self, path, sidecar=None):
        super().__init__(path, sidecar)
        if not os.path.isdir(self.output):
            raise OutputError(f"{path} is not a folder")
        self._plan: list[tuple[str | None, list[tuple[str, dict]]]] | None = None
        first = next((f for _, fs in self._items() for f, _ in fs), None)
        self.width = None
        if first is not None:
            if first.endswith(".npz"):
                self.kind = "keypoints"
            else:
                arr = np.load(first, mmap_mode="r", allow_pickle=False)
                if arr.ndim == 1:
                    self.width = int(arr.shape[0])
                else:
                    self.kind = "dense"
                    self.item_shape = tuple(arr.shape)

    def files(self):
        return [f for _, fs in self._items() for f, _ in fs]

    def _items(self) -> list[tuple[str | None, list[tuple[str, dict]]]]:
        """Per input (state order): its files and the keys their names give."""
        if self._plan is not None:
            return self._plan
        plan = []
        if self.state is not None and self.state.get("config") is not None:
            for path, _, _, nrows, out, status in OutputReader.entries(self):
                plan.append((path, self._files_of(path, out) if out else []))
        else:
            base = os.path.dirname(os.path.abspath(self.output))
            for dirpath, dirnames, filenames in os.walk(self.output):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                for name in sorted(filenames):
                    if name.startswith(".") or not name.endswith(layout.SUFFIXES):
                        continue
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, self.output)[:-4]
                    plan.append((None, [(full, {"path": os.path.join(base, rel)})]))
        self._plan = plan
        return plan

    def _files_of(self, path: str, out: str) -> list[tuple[str, dict]]:
        found = []
        own = os.path.join(self.output, out)
        for suffix in layout.SUFFIXES:
            if os.path.isfile(own + suffix) and not os.path.islink(own + suffix):
                found.append((own + suffix, {"path": path}))
        if os.path.isdir(own) and not os.path.islink(own):
            for dirpath, dirnames, filenames in os.walk(own):
                dirnames.sort()
                for name in sorted(filenames):
                    if name.startswith(".") or not name.endswith(layout.SUFFIXES):
                        continue
                    full = os.path.join(dirpath, name)
                    found.append((full, self._key_of(path, os.path.relpath(full, own)[:-4])))
        if "x" in self.key_columns:
            folder, stem = os.path.split(own)
            try:
                names = sorted(n for n in os.listdir(folder) if n.startswith(stem + layout.REGION_INFIX)
                               and n.endswith(layout.SUFFIXES))
            except OSError:
                names = []
            for n in names:
                found.append((os.path.join(folder, n), self._key_of(path, n[len(stem):-4])))
        found.sort(key=lambda t: tuple(t[1].get(k) if t[1].get(k) is not None else -1
                                       for k in ("frame", "segment", "track", "window", "x", "y", "w", "h")))
        return found

    def _key_of(self, path: str, rel: str) -> dict:
        """The key of the file ``rel`` (no suffix) of the input ``path``: a video's
        ``frame000012``, a region's ``.region-X-Y-W-H`` (``.region-X-Y-W-H.track-N`` in
        a track), a frame folder's frame file, each under ``segment0003-LABEL/`` in an
        output of segments (``--segments``)."""
        key: dict[str, Any] = {"path": path}
        if any(c in self.key_columns for c in _POOLED_KEYS):
            return self._pooled_key_of(key, rel)
        t = _TRACK.search(rel) if "track" in self.key_columns else None
        if t:
            key["track"] = int(t.group(1))
            rel = rel[:t.start()]
        m = _REGION.search(rel)
        if m:
            key.update(zip(("x", "y", "w", "h"), map(int, m.groups())))
            rel = rel[:m.start()]
        if "segment" in self.key_columns and rel:
            head, _, rest = rel.partition(os.sep)
            seg = layout.parse_segment(head)
            if seg is not None:
                key["segment"], key["label"] = seg
                rel = rest
        head = rel.split(os.sep)[0] if rel else ""
        fm = _FRAME.match(head)
        if fm:
            key["frame"] = int(fm.group(1))
            key["time"] = None
        elif head:  # a frame folder's frame file
            key["path"] = os.path.join(path, head)
            key["frame"] = None
            key["time"] = None
        return key

    def _pooled_key_of(self, key: dict, rel: str) -> dict:
        """A pooled row's key from its file's name (``segment0002/window000003``): the
        levels the name holds; the times, the label and the counts are not in names."""
        for part in rel.split(os.sep):
            m = _POOLED.match(part)
            if m:
                key[m.group(1)] = int(m.group(2))
        if "time" in self.key_columns and "frame" in key:
            key["time"] = None
        return key

    def __len__(self):
        return sum(len(fs) for _, fs in self._items())

    def entries(self):
        """As :meth:`OutputReader.entries`, with the rows numbered as the files found."""
        if self.state is None:
            return
        row = 0
        found = dict((p, len(fs)) for p, fs in self._items())
        for path, ident, _, nrows, out, status in super().entries():
            n = found.get(path, 0)
            yield path, ident, row, n, out, status
            row += n

    def batches(self, rows=4096):
        keys: list[dict] = []
        vals: list = []
        for _, fs in self._items():
            for f, key in fs:
                keys.append({c: key.get(c) for c in self.key_columns} if self.state is not None else key)
                vals.append(self._load(f))
                if len(keys) == rows:
                    yield keys, self._stack(vals)
                    keys, vals = [], []
        if keys:
            yield keys, self._stack(vals)

    def _load(self, f: str):
        if f.endswith(".npz"):
            with np.load(f, allow_pickle=False) as z:
                return {k: np.asarray(z[k]) for k in z.files}
        return np.load(f, allow_pickle=False)

    def _stack(self, vals: list):
        if self.kind != "vector":
            return [v if isinstance(v, dict) else {"values": v} for v in vals]
        for v in vals:
            if v.ndim != 1 or v.shape[0] != self.width:
                raise OutputError(f"{self.path} holds rows of different lengths ({self.width} and {v.shape})",
                                  "only an npy-dir output of one vector length can be read as rows")
        return np.asarray(vals, dtype=np.float32).reshape(len(vals), self.width or 0)


class ParquetOutput(OutputReader):
    """A Parquet dataset folder (``NAME.parquet/``): its rows through
    :class:`featx.output.parquet.ParquetReader` (looked up when needed: pyarrow is an
    optional extra), its state and sidecar as for every output."""

    format = "parquet"

    def __init__(self, path, sidecar=None):
        try:
            from .parquet import ParquetReader  # type: ignore[import-not-found]
        except ImportError as exc:
            raise OutputError(f"{path} is a Parquet output, which needs pyarrow ({exc})",
                              "pip install 'featx[parquet]'") from None
        self.inner = ParquetReader(path)
        super().__init__(path, sidecar if sidecar is not None else getattr(self.inner, "sidecar", None))
        self.kind = getattr(self.inner, "kind", "vector")
        self.width = getattr(self.inner, "width", None)
        if self.config is None:
            self.key_columns = tuple(getattr(self.inner, "key_columns", ("path",)))

    def files(self):
        if os.path.isdir(self.output):
            return sorted(os.path.join(self.output, n) for n in os.listdir(self.output)
                          if n.endswith(".parquet") and not n.startswith("."))
        return [self.output]

    def __len__(self):
        return len(self.inner)

    def batches(self, rows=4096):
        """As the parquet reader gives them, names turned back from featx's escape (the
        ``path`` column holds them as every text file of featx does)."""
        for keys, values in self.inner.batches(rows):
            names = [c for c in self.key_columns if key_type(c) == "name"]
            for k in keys:
                for c in names:
                    if isinstance(k.get(c), str):
                        k[c] = unescape_name(k[c])
            yield keys, values

    def close(self):
        super().close()
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
