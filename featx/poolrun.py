"""``featx pool``: an output's rows pooled into another output (one row per video,
picture, segment, track or window), without recomputing the features.

The source is read by :func:`~featx.output.reader.open_output` (any format), its rows
fed, input by input, to a :class:`~featx.pooling.Pooler`, and the pooled rows written
through the destination's sink, as ``featx convert`` writes: the whole new output in a
hidden work folder beside the destination, then moved into place, so a killed run
leaves the old output as it was (see :mod:`featx.output.convert`).

Incremental: the destination's state records, for every input of the source, the
identity the source recorded and how many rows it had; a second run with the same
settings pools again only the inputs whose source rows changed (new, re-extracted,
grown), copies the others' pooled rows from the existing output, and drops the inputs
gone from the source.  Other settings than the existing output's are refused.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time as _time
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import provenance
from .errors import OutputError, UsageError
from .names import escape_name, utf8_text
from .output import layout, sinks
from .output.convert import (check_absent, check_files, check_source, locked, move_into_place, output_folder,
                              staged, sweep, value_columns)
from .output.keys import KEY_COLUMNS
from .output.reader import OutputReader, load_sidecar, open_output
from .output.state import Entry, State, same
from .inputs import SegmentIndex
from .pooling import PoolSpec, Pooler, unit_text

#: Commit the pooled rows every this many rows (at an input's end).
COMMIT_ROWS = 100_000


def pool(src: str, dst: str, fmt: str | None = None, *, over: str | None = None, stats: Any = "mean",
         window: Any = None, stride: Any = None, pyramid: bool = False, segments: str | None = None,
         overwrite: bool = False, argv: list[str] | None = None) -> dict[str, Any]:
    """Pool the rows of the output ``src`` into the output ``dst`` (format ``fmt``, else
    from ``dst``'s name).  ``over``: ``video`` (default; ``segment`` with ``segments``),
    ``image``, ``segment`` or ``track``; ``stats``: ``"mean,max"`` or a list; ``window``,
    ``stride``: seconds (``2``, ``"2.5s"``) or rows (``"30f"``); ``pyramid``: whole,
    halves and quarters; ``segments``: a CSV ``path,start,end[,label]`` (seconds) whose
    segments the rows are pooled over (``start <= time < end``).

    Returns the new output's info: ``path``, ``format``, ``shape``/``files``, ``rows``,
    ``processed``, ``up_to_date``, ``dropped`` and ``failures`` (``[{"path", "reason"}]``:
    units that could not be pooled; the rest is written).  Raises
    :class:`~featx.errors.UsageError` for what cannot be done (nothing is written)."""
    spec = PoolSpec.parse(over or ("segment" if segments else "video"), stats, window, stride, pyramid)
    if segments is not None and spec.over != "segment":
        raise UsageError(f"--segments pools the rows of each segment: not with --over {spec.over}",
                         "drop --over (or use --over segment)")
    if dst == "-":
        raise UsageError("featx pool writes an output file or folder, not stdout", "name the new output with -o")
    reader = open_output(src)
    try:
        return _pool(reader, src, dst, fmt, spec, segments, overwrite, argv)
    finally:
        reader.close()


# -- segments ------------------------------------------------------------------

def read_segments(path: str) -> dict[str, list[tuple[int, float, float, str | None]]]:
    """The segments of a CSV ``path,start,end[,label]`` (seconds), read and checked by the one
    reader of segments files (:func:`featx.inputs.segment_table`: what ``featx extract
    --segments`` reads, paths relative to the file's folder): per canonical path,
    ``(index, start, end, label)`` with ``index`` the segment's place among that path's
    segments in the file (0-based)."""
    from .inputs import segment_table

    return {p: [(i, start, end, label) for i, (start, end, label) in enumerate(segs)]
            for p, segs in segment_table(path).items()}


def _norm(path: str) -> str:
    return os.path.normpath(os.path.abspath(path))


def _segments_digest(segs) -> str | None:
    if not segs:
        return None
    return hashlib.sha256(repr(segs).encode("utf-8", "surrogateescape")).hexdigest()[:16]


# -- the run ---------------------------------------------------------------------

def _pool(reader: OutputReader, src: str, dst: str, fmt: str | None, spec: PoolSpec, segments: str | None,
          overwrite: bool, argv: list[str] | None) -> dict[str, Any]:
    started = _time.time()
    if reader.state is None or reader.config is None:
        why = f" ({reader.state_error})" if getattr(reader, "state_error", None) else ""
        raise OutputError(f"{src} has no featx state beside it{why}: featx cannot tell which inputs its rows "
                          "belong to", "pool outputs written by featx extract, convert or merge, with their "
                          f"hidden state file (`featx inspect {src}` shows what is known of it)")
    if reader.kind != "vector" or not reader.width:
        raise UsageError(f"{src} holds {reader.kind} rows, not vectors of one length: featx pool pools vectors",
                         "pool an output of a vector extractor (hog, gradients, cnn...)")
    src_keys = tuple(reader.key_columns)
    seg_table = None
    if segments is not None:
        if "time" not in src_keys:
            raise UsageError(f"--segments assigns rows to segments by their time: the rows of {src} have no time "
                             f"(keys: {', '.join(src_keys)})", "pool an output of videos (featx extract ... "
                             "--video)")
        seg_table = read_segments(segments)
        src_keys = src_keys_of(reader, seg_table)
    key_cols = spec.key_columns(src_keys)
    needs_time = segments is not None or (spec.window is not None and spec.window_unit == "s")
    if needs_time and reader.format == "npy-dir" and "time" in reader.key_columns:
        what = "--segments" if segments is not None else "--window in seconds"
        raise UsageError(f"{what} needs the rows' times, which the npy-dir output {src} does not record",
                         "pool a .npy, .csv or .parquet output of the same run (featx convert makes one), or "
                         "give the window in rows (--window 30f)")
    fmt = sinks.infer_format(dst, fmt)
    width = int(reader.width)
    columns = spec.columns(value_columns(reader), width)
    src_sink = sinks.make_sink(src, reader.format, key_columns=reader.key_columns) \
        if reader.format in sinks.FORMATS else None
    dst_sink = sinks.make_sink(dst, fmt, key_columns=key_cols, columns=columns)
    if os.path.realpath(dst_sink.output) == os.path.realpath(reader.output) or (
            src_sink is not None and _files_of(dst_sink) & _files_of(src_sink)):
        raise UsageError(f"the output {dst} would write over the output it pools ({src})",
                         "pool into another name; nothing was written")
    folder = output_folder(dst_sink)
    config = _config(reader, spec, fmt, key_cols, segments is not None)
    with locked(src_sink, dst_sink):
        check_source(reader, src_sink, src)
        sweep(folder, dst_sink)
        old = None if overwrite else _existing(dst_sink, dst, config)
        try:
            info = _run(reader, spec, seg_table, key_cols, width, columns, config, dst_sink, fmt, old, overwrite, dst)
        finally:
            if old is not None:
                old.close()
        info["seconds"] = round(_time.time() - started, 3)
        doc = _sidecar(reader, src, dst_sink, spec, segments, info, argv, started)
        provenance.write(dst_sink.sidecar_path, doc)
        return info


def _files_of(sink: sinks.Sink) -> set[str]:
    out = {p for p in sink.paths() + [sink.state_path, sink.sidecar_path] if p}
    out.add(sink.output.rstrip("/" + os.sep))
    return {os.path.realpath(p) if os.path.exists(p) else os.path.abspath(p) for p in out}


def _config(reader: OutputReader, spec: PoolSpec, fmt: str, key_cols, segments: bool) -> dict:
    """What the pooled output's state records of how it was made (compared on the next run)."""
    src_config = dict(reader.config or {})
    src_opts = dict(src_config.get("options") or {})
    src_opts.pop("format", None)
    rec = dict(spec.record(), segments=segments)
    return {"extractor": src_config.get("extractor"),
            "options": {"format": fmt, "keys": list(key_cols)},
            "pool": rec,
            "source": {"path": os.path.abspath(reader.output), "options": src_opts}}


def _existing(sink: sinks.Sink, dst: str, config: dict) -> OutputReader | None:
    """The pooled output already at ``dst`` when this run continues it (same settings);
    None when there is none.  Another output there, or other settings: refused."""
    committed = False
    if sink.has_state():
        st = State(sink.state_path)
        try:
            committed = st.get("rows") is not None or st.live_count() > 0
            old = st.get("config")
        finally:
            st.close()
    if not committed:
        if sink.exists():
            sink.prepare()   # "... already exists and was not written by featx"
            raise OutputError(f"{dst} already exists", "pass --overwrite to replace it")
        return None
    if not isinstance(old, dict) or "pool" not in old:
        raise OutputError(f"{dst} already exists and is not an output of featx pool",
                          "pass --overwrite to replace it, or choose another -o")
    diffs = []
    for k in ("over", "stats", "window", "stride", "pyramid", "segments"):
        a, b = (old.get("pool") or {}).get(k), config["pool"].get(k)
        if a != b:
            show = {True: "on", False: "off", None: "not set"}
            a_t = ",".join(a) if isinstance(a, list) else show.get(a, a) if not isinstance(a, (int, float)) or \
                isinstance(a, bool) else a
            b_t = ",".join(b) if isinstance(b, list) else show.get(b, b) if not isinstance(b, (int, float)) or \
                isinstance(b, bool) else b
            diffs.append(f"--{k}: {a_t} -> {b_t}")
    if (old.get("source") or {}).get("path") != config["source"]["path"]:
        diffs.append(f"source: {(old.get('source') or {}).get('path')} -> {config['source']['path']}")
    elif old.get("extractor") != config["extractor"] or \
            (old.get("source") or {}).get("options") != config["source"]["options"]:
        diffs.append("source: its extractor or settings changed")
    if old.get("options", {}).get("format") != config["options"]["format"]:
        diffs.append(f"format: {old.get('options', {}).get('format')} -> {config['options']['format']}")
    if diffs:
        raise UsageError(f"{dst} was pooled with other settings ({'; '.join(diffs)})",
                         "pass --overwrite to pool afresh, or choose another -o")
    reader = open_output(sink.output)
    why, _ = check_files(reader, sink)
    if why is not None:   # damaged: everything is pooled again
        reader.close()
        return None
    return reader


class _Rows:
    """The rows of a reader one at a time, in order, with their row numbers."""

    def __init__(self, reader: OutputReader):
        self.it = self._gen(reader)
        self.row = -1
        self.cur: tuple | None = None

    @staticmethod
    def _gen(reader) -> Iterator[tuple[dict, np.ndarray]]:
        for keys, values in reader.batches():
            for i, k in enumerate(keys):
                yield k, values[i]

    def take(self, start: int, n: int) -> Iterator[tuple[dict, np.ndarray]]:
        """The rows ``[start, start + n)`` (rows before ``start`` are skipped)."""
        while self.row < start - 1:
            if next(self.it, None) is None:
                return
            self.row += 1
        for _ in range(n):
            nxt = next(self.it, None)
            if nxt is None:
                return
            self.row += 1
            yield nxt


def _old_rows(old: OutputReader, keep: set[str]) -> dict[str, list[tuple[dict, np.ndarray]]]:
    """The pooled rows of the inputs ``keep`` in the existing output (small: pooled)."""
    out: dict[str, list] = {}
    rows = _Rows(old)
    for path, _, row0, nrows, _, _ in sorted(old.entries(), key=lambda e: e[2]):
        if nrows and path in keep:
            out[path] = [(k, np.array(v, dtype=np.float32)) for k, v in rows.take(row0, nrows)]
    return out


def _assign(key: dict, segs, sweep=None) -> list[dict]:
    """The keys of a row in each of its path's segments holding its time (``start <= time <
    end``, with featx's time tolerance); ``sweep``: a :class:`~featx.inputs.SegmentIndex` of
    ``segs`` (rows come in time order: not every segment is looked at for every row)."""
    t = key.get("time")
    if t is None or segs is None:
        return []
    sweep = sweep or SegmentIndex([(start, end, label) for _, start, end, label in segs])
    return [dict(key, segment=segs[j][0], label=segs[j][3]) for j in sweep.holding(t)]


def _run(reader: OutputReader, spec: PoolSpec, seg_table, key_cols, width: int, columns, config: dict,
         dst_sink: sinks.Sink, fmt: str, old: OutputReader | None, overwrite: bool, dst: str) -> dict[str, Any]:
    entries = list(reader.entries())
    src_paths = {e[0] for e in entries}
    seg_digest = {p: _segments_digest((seg_table or {}).get(_norm(p))) for p in src_paths} \
        if seg_table is not None else {}
    # which inputs are up to date in the existing output
    fresh: set[str] = set()
    dropped = 0
    if old is not None:
        st = old.state
        known = {p: (ident, status) for p, ident, _, _, _, status in OutputReader.entries(old)}
        recorded = st.get("pool_inputs") or {}
        for path, ident, _, nrows, _, status in entries:
            k = known.get(path)
            r = recorded.get(escape_name(path))
            if k is None or r is None or k[1] != "ok" or status != "ok":
                continue
            if same(k[0], ident, False) and k[0].hash == ident.hash and r.get("rows") == nrows and \
                    r.get("segments") == seg_digest.get(path):
                fresh.add(path)
        dropped = sum(1 for p in known if p not in src_paths)
    kept = _old_rows(old, fresh) if old is not None else {}
    npy_dir = fmt == "npy-dir"
    base = dst_sink.mirror_base
    failures: list[dict] = []
    totals = {"processed": 0, "up_to_date": 0, "rows": 0, "inputs": 0, "failed": 0}
    with staged(dst_sink, fmt, config, spec.width(width), key_columns=key_cols, columns=columns) as (tmp, state):
        tmp.open(state)
        enc = tmp.encoder()
        pending: list[Entry] = []
        inputs_meta: dict[str, dict] = {}
        since = 0
        src_rows = _Rows(reader)
        for path, ident, row0, nrows, _, status in sorted(entries, key=lambda e: (e[2], e[3] > 0)):
            if status == "failed" and nrows == 0:
                continue     # failed in the source: nothing to pool
            out = layout.mirror_path(path, base) if npy_dir else ""
            first = tmp.rows
            bad: list[str] = []
            if path in fresh:
                totals["up_to_date"] += 1
                for key, vec in kept.get(path, ()):
                    mirror = layout.pooled_mirror(out, key) if npy_dir else ""
                    tmp.append(key, enc.encode(key, mirror, vec), vec.shape)
                bad = []
            else:
                totals["processed"] += 1
                pooler = Pooler(spec, src_keys_of(reader, seg_table), width)
                segs = (seg_table or {}).get(_norm(path)) if seg_table is not None else None
                sweep = SegmentIndex([(a, b, lab) for _, a, b, lab in segs]) if segs else None
                seen: set[int] = set()
                try:
                    def write(pooled):
                        for p in pooled:
                            if p.error is not None:
                                bad.append(unit_text(p.key) + p.error)
                                continue
                            mirror = layout.pooled_mirror(out, p.key) if npy_dir else ""
                            tmp.append(p.key, enc.encode(p.key, mirror, p.vector), p.vector.shape)
                    for key, vec in src_rows.take(row0, nrows):
                        key = dict(key, path=path)
                        if seg_table is None:
                            write(pooler.feed(key, vec))
                            continue
                        for k in _assign(key, segs, sweep):
                            seen.add(k["segment"])
                            write(pooler.feed(k, vec))
                    write(pooler.finish())
                finally:
                    pooler.close()
                for i, start, end, _ in segs or ():
                    if i not in seen:
                        bad.append(f"segment {i} ({start:g}-{end:g} s): no rows of the source in it")
            n = tmp.rows - first
            st = "ok" if not bad else ("partial" if n else "failed")
            if bad:
                totals["failed"] += 1
                failures.extend({"path": path, "reason": b} for b in bad)
            pending.append(Entry(path, ident, first, n, out if n else None, st))
            inputs_meta[escape_name(path)] = {"rows": nrows, "segments": seg_digest.get(path)}
            totals["rows"] += n
            totals["inputs"] += 1
            since += n
            if since >= COMMIT_ROWS:
                tmp.commit(state, pending)
                pending.clear()
                since = 0
        state.set_meta(pool_inputs=inputs_meta)
        tmp.commit(state, pending)
        info = tmp.info()
        state.recover_renames()
        if old is not None or overwrite:
            check_absent(dst_sink, dst, True)   # a folder's old featx files go now
        move_into_place(tmp, dst_sink, state)
    info = dict(info, path=dst_sink.output, rows=totals["rows"], inputs=totals["inputs"],
                processed=totals["processed"], up_to_date=totals["up_to_date"], dropped=dropped,
                failed=totals["failed"], failures=failures)
    if dst_sink.format == "npy":
        info["index"] = dst_sink.index_path
    return info


def src_keys_of(reader: OutputReader, seg_table) -> tuple[str, ...]:
    keys = tuple(reader.key_columns)
    if seg_table is None:
        return keys
    return tuple(c for c in KEY_COLUMNS if c in set(keys) | {"segment", "label"}) + \
        tuple(c for c in keys if c not in KEY_COLUMNS)


def _sidecar(reader: OutputReader, src: str, sink: sinks.Sink, spec: PoolSpec, segments: str | None, info: dict,
             argv: list[str] | None, started: float) -> dict:
    """The pooled output's record: the settings, the source output (path, format, its
    sidecar's extractor record), what this run did and its failures."""
    orig = reader.sidecar if reader.sidecar is not None else load_sidecar(src)
    orig = orig if isinstance(orig, dict) else {}
    command = [utf8_text(str(a)) for a in (argv if argv is not None else sys.argv)]
    failures = [{"path": escape_name(f["path"]), "reason": utf8_text(f["reason"])} for f in info["failures"]]
    output = {k: v for k, v in info.items() if k in ("path", "format", "shape", "files", "index")}
    return {
        "featx_sidecar": 1,
        "status": "complete" if not failures else "complete-with-failures",
        "complete": True,
        "command": command,
        "extractor": orig.get("extractor") or {"name": ((reader.config or {}).get("extractor") or {}).get("name")},
        "pool": dict(spec.record(), segments=os.path.abspath(segments) if segments else None),
        "source": {"path": os.path.abspath(reader.output), "format": reader.format,
                   "rows": len(reader), "extractor": orig.get("extractor"), "options": orig.get("options"),
                   "versions": orig.get("versions")},
        "options": {"output": sink.output, "format": sink.format},
        "output": output,
        "inputs": {k: info.get(k) for k in ("processed", "up_to_date", "dropped", "failed", "rows")},
        "failures": failures,
        "timing": {"started": _iso(started), "finished": provenance.now(),
                   "seconds": info.get("seconds")},
        "versions": provenance.library_versions(),
    }


def _iso(t: float) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).replace(microsecond=0).isoformat()
