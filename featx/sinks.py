"""Outputs: ``csv``, ``npy`` (stacked matrix + index) and ``npy-dir``.

A sink is split in two halves so that big feature arrays are copied as
little as possible:

* an :class:`Encoder` (small, picklable) turns one result into the bytes the
  output holds — a CSV line, raw float32 row bytes — or, for ``npy-dir``,
  writes the per-input file itself.  It runs where the features were
  computed (a worker process);
* the :class:`Sink` (main process only) appends those bytes in input order,
  keeps the index, and commits atomically: everything is written under a
  temporary name and renamed into place at the end, so a killed run never
  leaves a truncated file that looks complete.
"""
from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from collections.abc import Sequence
from typing import IO, Any

import numpy as np

from .extractor import Keypoints
from .errors import OutputError

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


def _key_text(key: dict[str, Any], columns: Sequence[str]) -> list[str]:
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


def _csv_line(fields: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(fields)
    return buf.getvalue()


# ---------------------------------------------------------------------------
# encoders (run in workers)


class Encoder:
    """Turn one result into output bytes.  Must be picklable."""

    def encode(self, key: dict[str, Any], mirror: str, value: Any) -> bytes:  # pragma: no cover
        raise NotImplementedError


class RawEncoder(Encoder):
    """float32 row bytes for the stacked ``.npy``."""

    def encode(self, key, mirror, value):
        return np.ascontiguousarray(value, dtype="<f4").tobytes()


class CsvEncoder(Encoder):
    """One CSV line: key columns, then the values."""

    def __init__(self, key_columns: Sequence[str]):
        self.key_columns = tuple(key_columns)

    def encode(self, key, mirror, value):
        head = _csv_line(_key_text(key, self.key_columns)).rstrip("\n")
        vals = format_floats(value)
        return (head + ("," + vals if vals else "") + "\n").encode("utf-8")


class NpyDirEncoder(Encoder):
    """Writes ``<root>/<mirror>.npy`` (``.npz`` for keypoints) atomically."""

    def __init__(self, root: str):
        self.root = root

    def target(self, mirror: str, value: Any, key: dict[str, Any] | None = None) -> str:
        suffix = ".npz" if isinstance(value, Keypoints) else ".npy"
        rel = mirror
        if key is not None and key.get("frame") is not None:
            rel = os.path.join(mirror, "frame%06d" % int(key["frame"]))
        return os.path.join(self.root, rel + suffix)

    def encode(self, key, mirror, value):
        path = self.target(mirror, value, key)
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
    """Base sink.  Lifecycle: ``open`` → ``append``* → ``commit`` | ``abort``."""

    format: str = ""
    stacked = True  # one matrix: every value must have the same length

    def __init__(self, output: str, key_columns: Sequence[str] = ("path",), overwrite: bool = False):
        self.output = output
        self.key_columns = tuple(key_columns)
        self.overwrite = overwrite
        self.rows = 0
        self.width: int | None = None

    # what would be written, for the overwrite check and the sidecar
    def paths(self) -> list[str]:
        return [self.output]

    @property
    def sidecar_path(self) -> str | None:
        return None if self.output == "-" else self.output.rstrip("/" + os.sep) + ".featx.json"

    def check_output(self) -> None:
        if self.overwrite:
            return
        for p in self.paths() + ([self.sidecar_path] if self.sidecar_path else []):
            if p != "-" and os.path.exists(p):
                raise OutputError(f"{p} already exists", "pass --overwrite to replace it, or choose another -o")

    def check_kind(self, kind: str, extractor: str) -> None:
        """Refuse, before any work, outputs this format cannot hold."""
        if self.stacked and kind == "keypoints":
            raise OutputError(f"{extractor} returns a variable number of keypoints per image, "
                              f"which cannot go into one {self.format} matrix",
                              "use --format npy-dir (one .npz per image), or an option that makes "
                              "a fixed-length vector (e.g. an encoding)")
        if self.stacked and kind == "dense":
            raise OutputError(f"{extractor} returns dense maps, which cannot go into one {self.format} matrix",
                              "use --format npy-dir (one .npy per image)")

    def encoder(self) -> Encoder:  # pragma: no cover
        raise NotImplementedError

    def open(self) -> None:
        pass

    def append(self, key: dict[str, Any], data: bytes, shape: tuple) -> None:  # pragma: no cover
        raise NotImplementedError

    def commit(self) -> dict[str, Any]:  # pragma: no cover
        raise NotImplementedError

    def abort(self) -> None:
        pass

    def check_width(self, key: dict[str, Any], shape: tuple, first_key: dict | None) -> str | None:
        """None if a value of ``shape`` fits; otherwise why not (with a hint)."""
        if not self.stacked:
            return None
        if len(shape) != 1:
            return f"value of shape {shape} is not a vector"
        if self.width is None:
            return None
        if shape[0] != self.width:
            first = (first_key or {}).get("path", "the first input")
            return (f"gives {shape[0]} values but the output has {self.width} per row "
                    f"(from {first}); sizes differ")
        return None


class CsvSink(Sink):
    format = "csv"

    def __init__(self, output, key_columns=("path",), overwrite=False, columns: Sequence[str] | None = None):
        super().__init__(output, key_columns, overwrite)
        self.columns = tuple(columns) if columns else None
        self._fh: IO[bytes] | None = None
        self._tmp: str | None = None
        self._header_written = False

    def encoder(self):
        return CsvEncoder(self.key_columns)

    def open(self):
        if self.output == "-":
            self._fh = sys.stdout.buffer
        else:
            self._tmp = tmp_name(self.output)
            self._fh = open(self._tmp, "wb")

    def _header(self, width: int | None):
        names = list(self.columns) if self.columns and width == len(self.columns) else \
            [f"f{i}" for i in range(width or 0)]
        self._fh.write(_csv_line(list(self.key_columns) + names).encode("utf-8"))
        self._header_written = True

    def append(self, key, data, shape):
        if not self._header_written:
            self.width = int(shape[0])
            self._header(self.width)
        self._fh.write(data)
        self.rows += 1

    def commit(self):
        if not self._header_written:
            self._header(self.width)
        if self.output == "-":
            self._fh.flush()
        else:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
            os.replace(self._tmp, self.output)
            self._tmp = None
        return {"path": self.output, "format": "csv", "shape": [self.rows, self.width or 0]}

    def abort(self):
        if self._tmp:
            if self._fh:
                self._fh.close()
            try:
                os.unlink(self._tmp)
            except FileNotFoundError:
                pass
            self._tmp = None


_NPY_HEADER_LEN = 128


def npy_header(rows: int, cols: int) -> bytes:
    """A version 1.0 ``.npy`` header of fixed length for a C-order float32 matrix."""
    text = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, %d), }" % (rows, cols)
    pad = _NPY_HEADER_LEN - 10 - len(text) - 1
    return b"\x93NUMPY\x01\x00" + (_NPY_HEADER_LEN - 10).to_bytes(2, "little") + \
        (text + " " * pad + "\n").encode("latin1")


class NpySink(Sink):
    """Stacked float32 ``(N, D)`` matrix, plus ``<name>.index.csv`` (row, key columns)."""

    format = "npy"

    @property
    def index_path(self) -> str:
        base = self.output[:-4] if self.output.lower().endswith(".npy") else self.output
        return base + ".index.csv"

    @property
    def sidecar_path(self) -> str:
        base = self.output[:-4] if self.output.lower().endswith(".npy") else self.output
        return base + ".featx.json"

    def paths(self):
        return [self.output, self.index_path]

    def encoder(self):
        return RawEncoder()

    def open(self):
        self._tmp = tmp_name(self.output)
        self._itmp = tmp_name(self.index_path)
        self._fh = open(self._tmp, "wb")
        self._fh.write(npy_header(0, 0))
        self._ifh = open(self._itmp, "w", newline="")
        self._index = csv.writer(self._ifh, lineterminator="\n")
        self._index.writerow(["row", *self.key_columns])

    def append(self, key, data, shape):
        if self.width is None:
            self.width = int(shape[0])
        self._fh.write(data)
        self._index.writerow([self.rows, *_key_text(key, self.key_columns)])
        self.rows += 1

    def commit(self):
        self._fh.seek(0)
        self._fh.write(npy_header(self.rows, self.width or 0))
        for fh in (self._fh, self._ifh):
            fh.flush()
            os.fsync(fh.fileno())
            fh.close()
        os.replace(self._tmp, self.output)
        os.replace(self._itmp, self.index_path)
        self._tmp = self._itmp = None
        return {"path": self.output, "index": self.index_path, "format": "npy",
                "shape": [self.rows, self.width or 0], "dtype": "float32"}

    def abort(self):
        for name in ("_tmp", "_itmp"):
            p = getattr(self, name, None)
            if p:
                try:
                    os.unlink(p)
                except FileNotFoundError:
                    pass
                setattr(self, name, None)
        for fh in (getattr(self, "_fh", None), getattr(self, "_ifh", None)):
            if fh and not fh.closed:
                fh.close()


class NpyDirSink(Sink):
    """One ``.npy`` (or ``.npz`` for keypoints) per input, mirroring the input tree."""

    format = "npy-dir"
    stacked = False

    def __init__(self, output, key_columns=("path",), overwrite=False):
        super().__init__(output.rstrip("/" + os.sep) or output, key_columns, overwrite)
        self.shape: tuple | None = None

    def check_output(self):
        if self.overwrite:
            return
        if os.path.isdir(self.output) and any(os.scandir(self.output)):
            raise OutputError(f"{self.output}/ already exists and is not empty",
                              "pass --overwrite to write into it, or choose another -o")
        if os.path.exists(self.output) and not os.path.isdir(self.output):
            raise OutputError(f"{self.output} exists and is not a folder", "choose another -o")
        if self.sidecar_path and os.path.exists(self.sidecar_path):
            raise OutputError(f"{self.sidecar_path} already exists", "pass --overwrite to replace it")

    def encoder(self):
        return NpyDirEncoder(self.output)

    def open(self):
        os.makedirs(self.output, exist_ok=True)

    def append(self, key, data, shape):
        self.rows += 1
        if self.shape is None:
            self.shape = tuple(shape)
        elif self.shape != tuple(shape):
            self.shape = ()  # mixed shapes

    def commit(self):
        return {"path": self.output, "format": "npy-dir", "files": self.rows,
                "shape": list(self.shape) if self.shape else None}


def make_sink(output: str, fmt: str | None, *, key_columns: Sequence[str] = ("path",),
              overwrite: bool = False, columns: Sequence[str] | None = None) -> Sink:
    fmt = infer_format(output, fmt)
    if output == "-" and fmt != "csv":
        raise OutputError(f"-o - writes CSV to stdout, not {fmt}", "drop --format or write to a file")
    if fmt == "csv":
        return CsvSink(output, key_columns, overwrite, columns)
    if fmt == "npy":
        if not output.lower().endswith(".npy"):
            raise OutputError(f"a stacked npy output must end with .npy, got {output!r}")
        return NpySink(output, key_columns, overwrite)
    return NpyDirSink(output, key_columns, overwrite)


def remove_tree_tmp(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
