"""Arrow side of the ``parquet`` output: the columns, tables from buffered rows, part files
written and read, and :class:`ParquetReader`.  pyarrow is imported only when a parquet
output is used (``pip install 'featx[parquet]'``); featx starts without it.

Columns (see docs/outputs.md):

* the key columns first, named as featx's key columns: ``path`` a string holding featx's
  escaped name (:func:`featx.names.escape_name`, as in the CSV and index files), ``time``
  float64, every other key (``frame``, ``x``, ``y``, ``w``, ``h``) int64;
* vector outputs: ``vector``, a ``fixed_size_list<float32>[D]``;
* keypoint outputs (``sift`` without an encoding): one row per image with ``keypoints``, a
  ``list<struct<x, y, size, angle, response, octave: float32>>``, and ``descriptors``, a
  ``list<list<float32>>`` (one descriptor per keypoint, in the same order).

The schema's key-value metadata ``featx`` holds the run's provenance record as JSON.
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..errors import OutputError, UsageError
from . import keys as keycols

KEYPOINT_FIELDS = ("x", "y", "size", "angle", "response", "octave")
META_KEY = b"featx"


def pyarrow():
    """``(pyarrow, pyarrow.parquet)``, or a usage error (exit 2) saying what to install."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise UsageError("the parquet format needs pyarrow, which is not installed",
                         hint="pip install 'featx[parquet]'") from exc
    return pa, pq


def part_name(n: int) -> str:
    return f"part-{n:06d}.parquet"


def key_type(pa, column: str):
    t = keycols.key_type(column)
    return pa.int64() if t == "int" else pa.float64() if t == "float" else pa.string()


def schema(key_columns: Sequence[str], kind: str, width: int | None, meta: bytes | None):
    pa, _ = pyarrow()
    fields = [pa.field(c, key_type(pa, c)) for c in key_columns]
    if kind == "keypoints":
        point = pa.struct([pa.field(f, pa.float32()) for f in KEYPOINT_FIELDS])
        fields += [pa.field("keypoints", pa.list_(point)), pa.field("descriptors", pa.list_(pa.list_(pa.float32())))]
    else:
        fields.append(pa.field("vector", pa.list_(pa.float32(), int(width or 0))))
    return pa.schema(fields, metadata={META_KEY: meta} if meta else None)


def key_arrays(pa, rows: list[dict[str, Any]], key_columns: Sequence[str]) -> list:
    from ..names import escape_name

    out = []
    for c in key_columns:
        vals = [k.get(c) for k in rows]
        if keycols.key_type(c) == "name":
            vals = [None if v is None else escape_name(v) for v in vals]
        out.append(pa.array(vals, type=key_type(pa, c)))
    return out


def vector_table(keys, data: bytes, width: int, key_columns, meta: bytes | None):
    """A table of ``len(keys)`` rows from the float32 bytes of their vectors (one copy)."""
    pa, _ = pyarrow()
    flat = pa.array(np.frombuffer(data, dtype="<f4"), type=pa.float32())
    vec = pa.FixedSizeListArray.from_arrays(flat, int(width))
    sch = schema(key_columns, "vector", width, meta)
    return pa.Table.from_arrays(key_arrays(pa, keys, key_columns) + [vec], schema=sch)


def encode_keypoints(points: np.ndarray, descriptors: np.ndarray) -> bytes:
    """The bytes a keypoint row travels as: float32 points ``(N, 6)`` then descriptors ``(N, L)``."""
    p = np.ascontiguousarray(points, dtype="<f4").reshape(-1)
    d = np.ascontiguousarray(descriptors, dtype="<f4").reshape(-1)
    return p.tobytes() + d.tobytes()


def keypoint_table(keys, rows: list[tuple[bytes, tuple]], key_columns, meta: bytes | None):
    """A table of keypoint rows: ``rows`` holds each row's bytes and shape ``(N, L)``."""
    pa, _ = pyarrow()
    nf = len(KEYPOINT_FIELDS)
    pts, descs, offs, inner = [], [], [0], [0]
    for data, shape in rows:
        n, length = int(shape[0]), int(shape[1]) if len(shape) > 1 else 0
        flat = np.frombuffer(data, dtype="<f4")
        pts.append(flat[:n * nf].reshape(n, nf))
        d = flat[n * nf:]
        descs.append(d)
        offs.append(offs[-1] + n)
        per = length if n else 0
        if n and d.size != n * per:
            per = d.size // n
        base = inner[-1]
        inner.extend(base + per * (i + 1) for i in range(n))
    allp = np.concatenate(pts) if pts else np.zeros((0, nf), np.float32)
    struct = pa.StructArray.from_arrays([pa.array(allp[:, i], type=pa.float32()) for i in range(nf)],
                                        names=list(KEYPOINT_FIELDS))
    kp = pa.ListArray.from_arrays(pa.array(offs, type=pa.int32()), struct)
    values = pa.array(np.concatenate(descs) if descs else np.zeros(0, np.float32), type=pa.float32())
    per_point = pa.ListArray.from_arrays(pa.array(inner, type=pa.int32()), values)
    de = pa.ListArray.from_arrays(pa.array(offs, type=pa.int32()), per_point)
    sch = schema(key_columns, "keypoints", None, meta)
    return pa.Table.from_arrays(key_arrays(pa, keys, key_columns) + [kp, de], schema=sch)


def write_part(path: str, table) -> int:
    """Write ``table`` as the Parquet file ``path`` (a new hidden name, never through a link);
    returns the open descriptor (the caller makes it durable and closes it)."""
    _, pq = pyarrow()
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    try:
        with os.fdopen(fd, "wb", closefd=False) as fh:
            keys = [n for n in table.column_names if n not in ("vector", "keypoints", "descriptors")]
            # float vectors do not compress and their statistics are of no use: only the keys get them
            pq.write_table(table, fh, compression="snappy", use_dictionary=keys, write_statistics=keys,
                           row_group_size=max(1, min(table.num_rows, 1 << 20)))
    except BaseException:
        os.close(fd)
        try:
            os.unlink(path)
        except OSError:
            pass
        raise
    return fd


def write_durable(path: str, table) -> None:
    """:func:`write_part`, made durable (fsync) and closed: a part that is renamed later."""
    fd = write_part(path, table)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_part(path: str):
    """The table of one part file (read through its descriptor, never a link)."""
    _, pq = pyarrow()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as fh:
        return pq.read_table(fh)


def rows_of(ranges: list[list[int]], wanted) -> np.ndarray:
    """Positions in a part file (whose rows are the id ``ranges`` in order) of the ranges
    whose first id ``wanted(id0)`` accepts."""
    pos, take = 0, []
    for id0, n in ranges:
        if wanted(id0):
            take.append(np.arange(pos, pos + n))
        pos += n
    return np.concatenate(take) if take else np.zeros(0, np.int64)


def committed_parts(folder: str) -> list[str]:
    """The files a reader of the folder sees: every non-hidden ``*.parquet``, in name order."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return sorted(n for n in names if n.endswith(".parquet") and not n.startswith("."))


class ParquetReader:
    """Read a featx Parquet output folder (the interface of :mod:`featx.output.reader`)."""

    format = "parquet"

    def __init__(self, path: str):
        pa, pq = pyarrow()
        self.path = path
        self.folder = path.rstrip("/" + os.sep) or path
        if not os.path.isdir(self.folder):
            raise OutputError(f"{path} is not a featx parquet output (no such folder)")
        self._files = [os.path.join(self.folder, n) for n in committed_parts(self.folder)]
        self._rows = 0
        sch = None
        for f in self._files:
            md = pq.ParquetFile(f).metadata
            self._rows += md.num_rows
            if sch is None:
                sch = pq.read_schema(f)
        self.schema = sch
        self.sidecar = self._sidecar()
        names = sch.names if sch is not None else []
        if "keypoints" in names:
            self.kind, self.width = "keypoints", None
            data_at = names.index("keypoints")
        elif "vector" in names:
            self.kind = "vector"
            self.width = sch.field("vector").type.list_size
            data_at = names.index("vector")
        else:
            self.kind, self.width, data_at = "vector", None, len(names)
            shape = ((self.sidecar or {}).get("output") or {}).get("shape")
            if isinstance(shape, list) and len(shape) == 2:
                self.width = shape[1] or None
        self.key_columns = tuple(names[:data_at]) if names else tuple(
            (self.sidecar or {}).get("options", {}).get("keys") or ("path",))

    def _sidecar(self) -> dict | None:
        try:
            with open(self.folder + ".featx.json", encoding="utf-8") as fh:
                return json.load(fh)
        except (OSError, ValueError):
            pass
        meta = (self.schema.metadata or {}).get(META_KEY) if self.schema is not None else None
        try:
            return json.loads(meta) if meta else None
        except ValueError:
            return None

    def __len__(self) -> int:
        return self._rows

    def batches(self, rows: int = 4096) -> Iterator[tuple[list[dict], Any]]:
        """Committed rows in output order (part files by name): ``(keys, values)``; values a
        float32 ``(n, width)`` array for vectors, else one dict of arrays per row."""
        _, pq = pyarrow()
        for f in self._files:
            pf = pq.ParquetFile(f)
            for batch in pf.iter_batches(batch_size=rows):
                cols = {n: batch.column(i) for i, n in enumerate(batch.schema.names)}
                keys_py = {c: cols[c].to_pylist() for c in self.key_columns}
                keys = [{c: keys_py[c][i] for c in self.key_columns} for i in range(batch.num_rows)]
                if self.kind == "keypoints":
                    yield keys, keypoint_values(cols["keypoints"], cols["descriptors"])
                else:
                    yield keys, vector_values(cols["vector"], self.width or 0)


def vector_values(col, width: int) -> np.ndarray:
    """A ``fixed_size_list<float32>`` column as a float32 ``(n, width)`` array."""
    n = len(col)
    if n == 0:
        return np.zeros((0, width), np.float32)
    flat = col.flatten().to_numpy(zero_copy_only=False)
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(n, width)


def keypoint_values(kp_col, de_col) -> list[dict[str, np.ndarray]]:
    out = []
    for kps, des in zip(kp_col.to_pylist(), de_col.to_pylist()):
        pts = np.array([[p[f] for f in KEYPOINT_FIELDS] for p in kps], dtype=np.float32).reshape(-1, 6)
        d = np.array(des, dtype=np.float32)
        out.append({"keypoints": pts, "descriptors": d.reshape(len(kps), -1) if len(kps) else d.reshape(0, 0)})
    return out
