"""Pooling rows of vectors over a unit of time or space: one vector per video, per
picture (its boxes), per time segment, per track, or per sliding window inside them.

Used by ``featx pool`` (an existing output, :mod:`featx.output.pool`) and by pooling
during extraction (``--pool``); both feed a :class:`Pooler` the same rows in the same
order, so both write the same numbers.

Semantics (the project's ``POOL.md``, written out here once):

* **Units** (:attr:`PoolSpec.over`): ``video`` (one row per path: a video, frame folder
  or sequence), ``image`` (the boxes of one picture: per path, or per ``(path, frame)``
  for boxes of video frames), ``segment`` (per ``(path, segment)``, the label kept),
  ``track`` (per ``(path, track)``).
* **Windows** (``window``, ``stride``; not with ``image``): in seconds, window ``k``
  covers the times ``[k*stride, k*stride + window)`` of the video's clock, for every
  ``k >= 0`` whose window holds a row; in rows, window ``k`` covers the unit's rows
  ``[k*stride, k*stride + window)`` for every ``k`` with ``k*stride < n``.
* **Statistics**, concatenated in the order of :data:`STATS` whatever order they are
  asked in, accumulated in float64 row by row in output order, written float32:
  ``mean`` = sequential sum / n (equal to ``x64.sum(axis=0) / n``), ``std`` =
  population standard deviation (ddof 0) by Welford's update, ``min``/``max``
  exact, ``diff`` = mean of ``|x[t] - x[t-1]|`` over consecutive rows (0 for one row).
* **Pyramid**: the parts :data:`PARTS` (whole, halves, quarters); part ``j`` of ``k``
  holds the rows ``[floor(j*n/k), floor((j+1)*n/k))``.  A unit of fewer than 4 rows
  cannot be split: it fails (:class:`Pooled` with an ``error``), the others are written.
  A pyramid needs ``n`` before it splits, so an open unit's rows wait in a temporary
  file (not in memory) until the unit closes.
* **Keys** of a pooled row: the unit's keys, ``window`` if any, then ``start``, ``end``
  (times of the first and last rows pooled, None without times) and ``frames`` (rows
  pooled); ``--over image`` gives ``path[, frame, time], regions`` (boxes pooled).
  In the canonical order of :data:`featx.output.keys.KEY_COLUMNS`.
* **Column names**: ``{stat}.{col}``, or ``{part}.{stat}.{col}`` with a pyramid.

Memory: O(open units x D), never the rows (except a pyramid's temporary files).
"""
from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from .errors import UsageError
from .inputs import TIME_EPS
from .output.keys import KEY_COLUMNS

#: The units rows can be pooled over.
UNITS = ("video", "image", "segment", "track")

#: The statistics, in the order their values are concatenated.
STATS = ("mean", "std", "min", "max", "diff")

#: The parts of a temporal pyramid: (name, j, k) = rows [floor(j*n/k), floor((j+1)*n/k)).
PARTS = (("all", 0, 1), ("h1", 0, 2), ("h2", 1, 2), ("q1", 0, 4), ("q2", 1, 4), ("q3", 2, 4), ("q4", 3, 4))

#: The fewest rows a pyramid can split (one per quarter).
PYRAMID_MIN_ROWS = 4

#: The key columns of a unit (besides ``path``), and what the source must have for it.
_UNIT_KEYS = {"video": (), "image": ("frame", "time"), "segment": ("segment", "label"), "track": ("track",)}

_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([sf]?)\s*$")


class Pooled(NamedTuple):
    """One pooled row: its ``key`` (the pooled key columns), its ``vector`` (float32,
    None when it failed) and ``error`` (why it could not be pooled, else None)."""

    key: dict
    vector: np.ndarray | None
    error: str | None


def parse_length(text: Any, what: str = "--window") -> tuple[float | int, str]:
    """``"2"``, ``"2.5s"`` (seconds) or ``"30f"`` (rows) -> ``(value, "s" | "f")``;
    :class:`~featx.errors.UsageError` for anything else, zero or negative."""
    if isinstance(text, bool):
        raise UsageError(f"{what} {text!r}: expected seconds (2, 2.5s) or rows (30f)")
    if isinstance(text, (int, float)):
        text = repr(text)
    m = _LENGTH.match(str(text))
    if not m:
        raise UsageError(f"{what} {text}: expected seconds (2, 2.5s) or rows (30f)",
                         "for example --window 2s --stride 1s, or --window 30f --stride 15f")
    num, unit = m.group(1), m.group(2) or "s"
    if unit == "f":
        try:
            value: float | int = int(num)
        except ValueError:
            raise UsageError(f"{what} {text}: a number of rows is a whole number (30f)") from None
    else:
        value = float(num)
        if not math.isfinite(value):
            raise UsageError(f"{what} {text}: expected a finite number of seconds")
    if value <= 0:
        raise UsageError(f"{what} {text}: must be more than 0")
    return value, unit


def length_text(value: float | int | None, unit: str) -> str | None:
    """The text of a window or stride as :func:`parse_length` reads it (``2.5s``, ``30f``)."""
    if value is None:
        return None
    if unit == "f":
        return f"{int(value)}f"
    v = float(value)
    return (f"{int(v)}s" if v.is_integer() else f"{v!r}s")


@dataclass(frozen=True)
class PoolSpec:
    """What to pool over and how (see the module docstring)."""

    over: str = "video"
    stats: tuple[str, ...] = ("mean",)
    window: float | int | None = None
    window_unit: str = "s"
    stride: float | int | None = None
    pyramid: bool = False

    @classmethod
    def parse(cls, over: str = "video", stats: str | Sequence[str] | None = "mean", window: Any = None,
              stride: Any = None, pyramid: bool = False) -> "PoolSpec":
        """The spec from what a user writes (``--over``, ``--stats mean,max``, ``--window 2s``,
        ``--stride 1s``, ``--pyramid``); :class:`~featx.errors.UsageError` for what cannot be."""
        over = str(over or "video").strip().lower()
        if over not in UNITS:
            raise UsageError(f"--over {over}: expected one of {', '.join(UNITS)}")
        if stats is None or (isinstance(stats, str) and not stats.strip()):
            asked: list[str] = ["mean"]
        elif isinstance(stats, str):
            asked = [s.strip().lower() for s in stats.split(",")]
        else:
            asked = [str(s).strip().lower() for s in stats]
        valid = ", ".join(STATS)
        for s in asked:
            if s not in STATS:
                raise UsageError(f"--stats: unknown statistic {s!r}", f"the statistics are {valid}")
        dup = sorted({s for s in asked if asked.count(s) > 1})
        if dup:
            raise UsageError(f"--stats: {', '.join(dup)} asked twice", f"name each of {valid} at most once")
        canon = tuple(s for s in STATS if s in asked)
        wv, wu, sv = None, "s", None
        if window is not None and window != "":
            wv, wu = parse_length(window, "--window")
        if stride is not None and stride != "":
            if wv is None:
                raise UsageError("--stride needs --window", "for example --window 2s --stride 1s")
            sv, su = parse_length(stride, "--stride")
            if su != wu:
                raise UsageError(f"--window {window} and --stride {stride}: both in seconds or both in rows",
                                 "for example --window 2s --stride 1s, or --window 30f --stride 15f")
        if over == "image":
            if wv is not None:
                raise UsageError("--window slides over time: not with --over image (the boxes of one picture)",
                                 "use --over video, segment or track")
            if "diff" in canon:
                raise UsageError("--stats diff needs rows in time order: not with --over image "
                                 "(the boxes of one picture have no order)", "leave diff out")
            if pyramid:
                raise UsageError("--pyramid splits rows in time order: not with --over image "
                                 "(the boxes of one picture have no order)", "leave --pyramid out")
        return cls(over=over, stats=canon, window=wv, window_unit=wu, stride=sv, pyramid=bool(pyramid))

    @property
    def step(self) -> float | int | None:
        """The stride in effect (the window's length when none was given)."""
        return self.stride if self.stride is not None else self.window

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(p[0] for p in PARTS) if self.pyramid else ("",)

    def width(self, d: int) -> int:
        """The length of a pooled vector of rows of length ``d``."""
        return len(self.parts) * len(self.stats) * int(d)

    def columns(self, names: Sequence[str] | None, d: int) -> list[str]:
        """The names of the pooled values: ``{stat}.{col}`` or ``{part}.{stat}.{col}``."""
        cols = list(names) if names is not None and len(names) == d else [f"f{i}" for i in range(d)]
        out = []
        for part in self.parts:
            for s in self.stats:
                pre = f"{part}.{s}." if part else f"{s}."
                out.extend(pre + c for c in cols)
        return out

    def unit_keys(self, source_keys: Sequence[str]) -> tuple[str, ...]:
        """The key columns that name a unit (``path`` first), those of the source it has."""
        extra = _UNIT_KEYS[self.over]
        if self.over == "image":
            extra = tuple(k for k in extra if k in source_keys)
        return ("path",) + extra

    def key_columns(self, source_keys: Sequence[str]) -> tuple[str, ...]:
        """The key columns of the pooled rows of a source whose keys are ``source_keys``;
        :class:`~featx.errors.UsageError` when the unit cannot apply to those rows."""
        src = tuple(source_keys)
        have = ", ".join(src) or "none"
        if self.over == "image" and "x" not in src:
            raise UsageError(f"--over image pools the boxes of a picture: these rows have no boxes (keys: {have})",
                             "pool a --regions or detect output, or use --over video")
        if self.over == "segment" and "segment" not in src:
            raise UsageError(f"--over segment: these rows have no segment (keys: {have})",
                             "give the segments with --segments FILE (path,start,end[,label]), or extract "
                             "with --segments")
        if self.over == "track" and "track" not in src:
            raise UsageError(f"--over track: these rows have no track (keys: {have})",
                             "extract with --regions from a featx detect --track file")
        if self.window is not None and self.window_unit == "s" and "time" not in src:
            raise UsageError(f"--window {length_text(self.window, 's')}: these rows have no time (keys: {have})",
                             "give the window in rows, e.g. --window 30f")
        cols = set(self.unit_keys(src))
        if self.over == "image":
            cols.add("regions")
        else:
            cols.update(("start", "end", "frames"))
            if self.window is not None:
                cols.add("window")
        return tuple(c for c in KEY_COLUMNS if c in cols)

    def record(self) -> dict:
        """What a sidecar records of the settings (two specs pool alike when equal)."""
        return {"over": self.over, "stats": list(self.stats),
                "window": length_text(self.window, self.window_unit),
                "stride": length_text(self.step, self.window_unit), "pyramid": self.pyramid}

    @classmethod
    def from_record(cls, rec: dict) -> "PoolSpec":
        """The spec a :meth:`record` describes."""
        return cls.parse(rec.get("over"), rec.get("stats"), rec.get("window"), rec.get("stride"),
                         bool(rec.get("pyramid")))


class _Acc:
    """The running statistics of one stretch of rows, in float64, one row at a time."""

    __slots__ = ("stats", "n", "sum", "wmean", "m2", "min", "max", "prev", "dsum")

    def __init__(self, stats: tuple[str, ...]):
        self.stats = stats
        self.n = 0
        self.sum = self.wmean = self.m2 = self.min = self.max = self.prev = self.dsum = None

    def add(self, x: np.ndarray) -> None:
        """One row (float64)."""
        self.n += 1
        if self.n == 1:
            self.sum = x.copy()
            if "std" in self.stats:
                self.wmean = x.copy()
                self.m2 = np.zeros_like(x)
            if "min" in self.stats:
                self.min = x.copy()
            if "max" in self.stats:
                self.max = x.copy()
            if "diff" in self.stats:
                self.dsum = np.zeros_like(x)
                self.prev = x
            return
        self.sum += x
        if self.wmean is not None:
            delta = x - self.wmean
            self.wmean += delta / self.n
            self.m2 += delta * (x - self.wmean)
        if self.min is not None:
            np.minimum(self.min, x, out=self.min)
        if self.max is not None:
            np.maximum(self.max, x, out=self.max)
        if self.dsum is not None:
            self.dsum += np.abs(x - self.prev)
            self.prev = x

    def values(self) -> list[np.ndarray]:
        """The statistics, in :data:`STATS` order, float32."""
        out = []
        for s in self.stats:
            if s == "mean":
                v = self.sum / self.n
            elif s == "std":
                v = np.sqrt(self.m2 / self.n)
            elif s == "min":
                v = self.min
            elif s == "max":
                v = self.max
            else:
                v = self.dsum / (self.n - 1) if self.n > 1 else np.zeros_like(self.sum)
            out.append(np.asarray(v, dtype=np.float32))
        return out


class _Group:
    """One stretch being pooled (a unit, or a window of it): its statistics, or, with a
    pyramid, its rows in a temporary file; the times of its first and last rows."""

    __slots__ = ("spec", "width", "acc", "file", "n", "start", "end", "window")

    def __init__(self, spec: PoolSpec, width: int, window: int | None):
        self.spec, self.width, self.window = spec, width, window
        self.acc = None if spec.pyramid else _Acc(spec.stats)
        self.file = tempfile.TemporaryFile(prefix="featx-pool-") if spec.pyramid else None
        self.n = 0
        self.start = self.end = None

    def add(self, x64: np.ndarray, x32: np.ndarray, time: float | None) -> None:
        time = None if time is None else float(time)
        if self.n == 0:
            self.start = time
        self.end = time
        self.n += 1
        if self.file is not None:
            self.file.write(x32.tobytes())
        else:
            self.acc.add(x64)

    def result(self) -> tuple[np.ndarray | None, str | None]:
        if self.file is None:
            return np.concatenate(self.acc.values()), None
        try:
            n = self.n
            if n < PYRAMID_MIN_ROWS:
                return None, (f"{n} row{'s' if n != 1 else ''}: a pyramid splits at least "
                              f"{PYRAMID_MIN_ROWS} rows into quarters")
            # read back in blocks (never mapped whole: a mapping's pages count as the
            # process's memory), each row fed to its three parts (all, a half, a quarter)
            accs = [(j * n // k, (j + 1) * n // k, _Acc(self.spec.stats)) for _, j, k in PARTS]
            self.file.flush()
            self.file.seek(0)
            block = max(1, (4 << 20) // (4 * self.width))
            i = 0
            while i < n:
                m = min(block, n - i)
                buf = self.file.read(m * 4 * self.width)
                if len(buf) != m * 4 * self.width:
                    raise OSError(f"the temporary file of a pyramid's rows ended early ({i + len(buf) // (4 * self.width)} of {n} rows)")
                rows = np.frombuffer(buf, dtype=np.float32).reshape(m, self.width)
                for r in range(m):
                    x = rows[r].astype(np.float64)
                    for lo, hi, acc in accs:
                        if lo <= i + r < hi:
                            acc.add(x)
                i += m
            parts = []
            for _, _, acc in accs:
                parts.extend(acc.values())
            return np.concatenate(parts), None
        finally:
            self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class _Unit:
    """An open unit: its key, its groups (the whole unit, or its open windows)."""

    __slots__ = ("key", "order", "groups", "rows", "next_window", "failed", "last_time")

    def __init__(self, key: dict, order: int):
        self.key, self.order = key, order
        self.groups: dict[int | None, _Group] = {}
        self.rows = 0              # rows fed (windows in rows)
        self.next_window = 0       # windows below this one are closed
        self.failed: str | None = None
        self.last_time: float | None = None


def _sort_value(v: Any) -> tuple:
    return (0, v) if isinstance(v, (int, float)) and not isinstance(v, bool) else (1, str(v)) \
        if v is not None else (2, "")


class Pooler:
    """Streaming pooling of one source's rows, in output order.

    ``feed`` each row (its key as the source gives it, ``path`` being the input's path;
    its vector of length ``width``) and it returns the pooled rows that closed;
    ``finish`` returns the rest.  Pooled rows come out grouped by path, then by unit
    (segment, track or frame order), then by window.
    """

    def __init__(self, spec: PoolSpec, source_keys: Sequence[str], width: int):
        self.spec = spec
        self.source_keys = tuple(source_keys)
        self.width = int(width)
        self.key_columns = spec.key_columns(self.source_keys)
        self.unit_columns = spec.unit_keys(self.source_keys)
        self.units: dict[tuple, _Unit] = {}
        self.path: Any = object()
        self.done: list[tuple[tuple, int, int, Pooled]] = []   # closed, waiting for their path's end
        self.count = 0

    # -- feeding -------------------------------------------------------------
    def feed(self, key: dict, vector: np.ndarray) -> list[Pooled]:
        """Pool one row; returns the pooled rows this row closed."""
        out: list[Pooled] = []
        path = key.get("path")
        if path != self.path:
            out.extend(self._close_all())
            self.path = path
        ukey = tuple(key.get(c) for c in self.unit_columns)
        unit = self.units.get(ukey)
        if unit is None:
            if self.spec.over == "image" and self.units:   # one picture's boxes are contiguous
                out.extend(self._close_all(keep_path=True))
            unit = _Unit({c: key.get(c) for c in self.unit_columns}, self.count)
            self.count += 1
            self.units[ukey] = unit
        x32 = np.asarray(vector, dtype=np.float32).reshape(-1)
        if x32.shape[0] != self.width:
            raise ValueError(f"a row of {x32.shape[0]} values, not {self.width}")
        time = key.get("time")
        if time is not None:   # as every output records it (CSV and the npy index: "%.6f"), so that
            time = round(float(time), 6)   # a Parquet source, which keeps the float, windows alike
        if unit.failed is not None:
            return out
        x64 = x32.astype(np.float64)
        spec = self.spec
        if spec.window is None:
            g = unit.groups.get(None)
            if g is None:
                g = unit.groups[None] = _Group(spec, self.width, None)
            g.add(x64, x32, time)
        elif spec.window_unit == "f":
            i = unit.rows
            step, w = int(spec.step), int(spec.window)
            if i % step == 0:
                unit.groups[i // step] = _Group(spec, self.width, i // step)
            for k in sorted(unit.groups):
                unit.groups[k].add(x64, x32, time)
            for k in sorted(unit.groups):
                if unit.groups[k].n >= w:
                    out.extend(self._emit(unit, unit.groups.pop(k)))
        else:
            if time is None or not isinstance(time, (int, float)) or not math.isfinite(time):
                raise UsageError(f"--window {length_text(spec.window, 's')}: a row of {path} has no time",
                                 "give the window in rows, e.g. --window 30f (an npy-dir output does not "
                                 "record the times of video frames: pool its .npy or .csv output)")
            if unit.last_time is not None and time < unit.last_time:
                unit.failed = f"its rows are not in time order ({time} after {unit.last_time})"
                self._drop(unit)
                return out
            unit.last_time = time
            step, w = float(spec.step), float(spec.window)
            # the windows that ended at or before this row's time can get no more rows
            for k in sorted(unit.groups):
                if k * step + w <= time + TIME_EPS:
                    out.extend(self._emit(unit, unit.groups.pop(k)))
            for k in self._windows_of(time, step, w):
                if k < unit.next_window:
                    continue
                g = unit.groups.get(k)
                if g is None:
                    g = unit.groups[k] = _Group(spec, self.width, k)
                g.add(x64, x32, time)
        unit.rows += 1
        return out

    @staticmethod
    def _windows_of(t: float, step: float, w: float) -> range:
        """The windows k >= 0 with k*step <= t < k*step + w, a time within 1e-6 s below a
        bound counting as on it (as for segments, ``--start`` and ``--end``: 7 x 0.2 is
        1.4000000000000001, and the frame at 1.4 s is in window 7)."""
        t = t + TIME_EPS
        if t < 0:
            return range(0)
        hi = int(math.floor(t / step))
        while (hi + 1) * step <= t:
            hi += 1
        while hi >= 0 and hi * step > t:
            hi -= 1
        lo = max(0, int(math.floor((t - w) / step)))
        while lo <= hi and not (t < lo * step + w):
            lo += 1
        while lo > 0 and t < (lo - 1) * step + w:
            lo -= 1
        return range(lo, hi + 1)

    def finish(self) -> list[Pooled]:
        """Every unit and window still open, pooled."""
        out = self._close_all()
        self.path = object()
        return out

    def close(self) -> None:
        """Drop what is open (its temporary files) without pooling it."""
        for unit in self.units.values():
            self._drop(unit)
        self.units.clear()
        self.done.clear()

    # -- closing -------------------------------------------------------------
    def _drop(self, unit: _Unit) -> None:
        for g in unit.groups.values():
            g.close()
        unit.groups.clear()

    def _pooled_key(self, unit: _Unit, g: _Group) -> dict:
        key = dict(unit.key)
        if self.spec.over == "image":
            key["regions"] = g.n
        else:
            if g.window is not None:
                key["window"] = g.window
            key.update(start=g.start, end=g.end, frames=g.n)
        return {c: key.get(c) for c in self.key_columns}

    def _emit(self, unit: _Unit, g: _Group) -> list[Pooled]:
        """A closed group's pooled row: out now (one unit per path open: video, image), or
        kept until its path ends (segments, tracks: sorted by unit there)."""
        vec, err = g.result()
        unit.next_window = max(unit.next_window, (g.window or 0) + 1)
        p = Pooled(self._pooled_key(unit, g), vec, err)
        if self.spec.over in ("video", "image"):
            return [p]
        self.done.append((self._unit_order(unit), -1 if g.window is None else g.window, len(self.done), p))
        return []

    def _unit_order(self, unit: _Unit) -> tuple:
        return tuple(_sort_value(unit.key.get(c)) for c in self.unit_columns[1:]) + (unit.order,)

    def _close_all(self, keep_path: bool = False) -> list[Pooled]:
        out: list[Pooled] = []
        for unit in sorted(self.units.values(), key=self._unit_order):
            if unit.failed is not None:
                key = self._pooled_key(unit, _Group(PoolSpec(stats=self.spec.stats), self.width, None))
                self.done.append((self._unit_order(unit), -2, len(self.done), Pooled(key, None, unit.failed)))
                continue
            for k in sorted(unit.groups, key=lambda k: -1 if k is None else k):
                out.extend(self._emit(unit, unit.groups[k]))
            unit.groups.clear()
        self.units.clear()
        if not keep_path or self.done:
            self.done.sort(key=lambda t: t[:3])
            out.extend(p for *_, p in self.done)
            self.done.clear()
        return out


def unit_text(key: dict) -> str:
    """``segment 2, window 6: `` for a pooled row's key (nothing for a whole video's): how
    `featx pool` and pooling during extraction name a unit that could not be pooled."""
    parts = [f"{c} {key[c]}" for c in ("segment", "track", "frame", "window") if key.get(c) is not None]
    return (", ".join(parts) + ": ") if parts else ""
