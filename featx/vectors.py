"""The vectors of an output, with their keys, for what is done with them afterwards
(``featx similar``, ``featx duplicates``).

:func:`load` reads any featx output through :func:`featx.output.reader.open_output`
(csv, npy with its index, npy-dir, parquet) or a plain ``(N, D)`` ``.npy`` matrix with
no index beside it (its rows are then named by their number, key column ``row``).
:func:`extract_like` extracts other files exactly as the output was made: the
extractor, its parameters and the options that decide the numbers are read from the
output's sidecar and run through featx's own plan (:func:`featx.api.extract_files`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import FeatxError, UsageError
from .output.reader import OutputReader, open_output


@dataclass
class Vectors:
    """The rows of one output."""

    path: str
    matrix: np.ndarray                 # (N, D) float32 (memory-mapped for a stacked .npy)
    keys: list[dict] | None            # one per row; None for a plain matrix (rows by number)
    key_columns: tuple[str, ...]       # ("row",) for a plain matrix
    extractor: str | None = None
    sidecar: dict | None = None
    format: str = "npy"
    #: where featx keeps files beside this output (its hidden index): the output's own name
    base: str = ""
    reader: Any = field(default=None, repr=False)

    def __len__(self) -> int:
        return self.matrix.shape[0]

    def key(self, i: int) -> dict:
        return self.keys[i] if self.keys is not None else {"row": i}


def _plain_npy(path: str) -> np.ndarray:
    try:
        m = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FeatxError(f"cannot read {path}: {exc}") from None
    if m.ndim != 2:
        raise FeatxError(f"{path} holds an array of shape {m.shape}, not (rows, values)",
                         "featx similar reads a 2-D matrix, one vector per row")
    return m


def load(path: str) -> Vectors:
    """The vectors and keys of the output (or plain matrix) ``path``."""
    reader: OutputReader = open_output(path)
    ext = (reader.sidecar or {}).get("extractor") if isinstance(reader.sidecar, dict) else None
    name = ext.get("name") if isinstance(ext, dict) else None
    base = reader.output
    if reader.format == "npy" and not os.path.exists(getattr(reader, "index_path", "")):
        m = _plain_npy(reader.output)
        n = len(reader) if reader.state is not None else m.shape[0]
        return Vectors(path, np.asarray(m[:n], dtype=np.float32) if m.dtype != np.float32 else m[:n],
                       None, ("row",), name, reader.sidecar, "npy", base, reader)
    if reader.kind != "vector":
        raise FeatxError(f"{path} holds {reader.kind}, not one vector per row",
                         "compare fixed-length vectors (for sift: --encode bovw, vlad or fisher)")
    if reader.format == "npy" and getattr(reader, "matrix", None) is not None and not getattr(reader, "broken", None):
        keys: list[dict] = []
        for k, _ in _key_batches(reader):
            keys.extend(k)
        m = reader.matrix[:len(keys)]
        matrix = m if m.dtype == np.float32 else np.asarray(m, dtype=np.float32)
    else:
        keys, parts = [], []
        for k, v in reader.batches():
            keys.extend(k)
            parts.append(np.asarray(v, dtype=np.float32).reshape(len(k), -1))
        if parts and len({p.shape[1] for p in parts}) > 1:
            raise FeatxError(f"{path} holds rows of different lengths", "compare outputs made with --resize WxH")
        matrix = np.concatenate(parts) if parts else np.zeros((0, reader.width or 0), np.float32)
    cols = tuple(c for c in reader.key_columns if any(k.get(c) is not None for k in keys)) or ("path",)
    return Vectors(path, matrix, keys, cols, name, reader.sidecar, reader.format, base, reader)


def _key_batches(reader):
    """The keys of a stacked .npy's index (the values are memory-mapped, not read here)."""
    for keys, vals in reader.batches(rows=65536):
        yield keys, None


def extract_like(vec: Vectors, files: list[str]) -> tuple[np.ndarray, list[dict]]:
    """``files`` extracted with ``vec``'s recorded extractor, parameters and options
    (resize, decode, video sampling), through featx's plan: the numbers are those a run
    adding these files to the output would write.  Failures raise, naming the file."""
    side = vec.sidecar if isinstance(vec.sidecar, dict) else None
    ext = (side or {}).get("extractor")
    if not isinstance(ext, dict) or not ext.get("name"):
        raise UsageError(f"{vec.path} has no sidecar recording how it was made, so --query files "
                         "cannot be extracted the same way",
                         f"extract them yourself into an output and pass that, or keep {vec.path}.featx.json")
    opts = side.get("options") or {}
    if opts.get("regions"):
        raise UsageError(f"{vec.path} holds regions (--regions): a --query file has no regions list",
                         "extract the query regions into an output of their own")
    run: dict[str, Any] = {}
    for k in ("video", "frames", "lenient_decode", "max_pixels"):
        if opts.get(k) is not None:
            run[k] = opts[k]
    run["exact_decode"] = opts.get("decode", "exact") == "exact"
    for k, v in (opts.get("sampling") or {}).items():
        run[k] = v
    resize = opts.get("resize")
    from .api import extract_files

    values, keys, failed = extract_files(list(files), ext["name"], jobs=1,
                                         resize=tuple(resize) if resize else None,
                                         resize_mode=opts.get("resize_mode") or "stretch",
                                         **dict(ext.get("params") or {}), **run)
    if failed:
        path, reason = failed[0]
        raise FeatxError(f"--query {path}: {reason}")
    if isinstance(values, list):
        raise FeatxError("the --query files do not give one vector each", "pass --resize-made outputs")
    values = np.asarray(values, dtype=np.float32)
    if len(vec) and values.shape[1] != vec.matrix.shape[1]:
        raise FeatxError(f"the --query files give {values.shape[1]} values per row, {vec.path} has "
                         f"{vec.matrix.shape[1]}", "outputs made without --resize differ in length per image size")
    return values, keys
