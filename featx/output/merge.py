"""Merge the outputs of ``--shard i/n`` runs into one output, verified.

The shards must come from the same extractor, parameters and options, cover
``1..n`` exactly once (no gap, no shard twice), be complete (not interrupted)
and share no input.  Rows are ordered by input path (component by component,
which is the order of a folder walk), so merging the shards of a folder gives
exactly the output of one unsharded run over it.  The merged output gets its
own state, so later runs can continue it incrementally without sharding.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import provenance
from . import sinks
from .atomic import sweep_tmp, tmp_name, write_file
from .npyformat import NPY_HEADER_LEN, header_rows, record_tail, write_whole
from ..errors import OutputError, UsageError
from .lock import OutputLock
from .state import Entry, Identity, State


def _sort_key(path: str) -> tuple:
    return tuple(os.path.normpath(path).split(os.sep))


def _load_sidecar(sink: sinks.Sink) -> dict:
    try:
        with open(sink.sidecar_path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        raise OutputError(f"{sink.output}: no readable sidecar {sink.sidecar_path}",
                          "merge outputs written by featx extract --shard I/N") from None


def merge(output: str, parts: Sequence[str], *, overwrite: bool = False) -> dict[str, Any]:
    """Merge shard outputs ``parts`` into ``output``; returns the merged output's info.
    Holds the output's lock; temporary files a killed merge left are removed first."""
    if not parts:
        raise UsageError("nothing to merge", "name the shard outputs")
    fmt = sinks.infer_format(output, None)
    if fmt not in ("npy", "csv", "parquet"):
        raise UsageError("merge writes a stacked .npy or .csv output, or a .parquet folder")
    dst = sinks.make_sink(output, fmt)
    folder = os.path.dirname(dst.output)
    if not os.path.isdir(folder):  # (its lock file could not be made: a traceback)
        raise UsageError(f"output folder {folder} does not exist", "create it first")
    dst.preflight()   # a device, FIFO or socket (or a link to one) is never replaced, even with --overwrite
    lock = OutputLock(dst.lock_path)
    lock.acquire(0.0)
    try:
        sweep_tmp(os.path.dirname(os.path.abspath(output)),
                  names=[os.path.basename(p) for p in dst.paths() + [dst.sidecar_path]])
        return _merge(output, fmt, parts, overwrite)
    finally:
        lock.release()


#: The libraries whose versions can change the numbers of an output: shards made with
#: others are not one output.
_NUMBERS_FROM = ("featx", "numpy", "opencv-python-headless", "opencv-python")


def _check_versions(srcs: Sequence[sinks.Sink], docs: Sequence[dict]) -> None:
    """Refuse shards whose sidecars record other versions of featx, numpy or OpenCV than
    the first shard's (a sidecar that records none, from an older featx, is not compared)."""
    first = docs[0].get("versions") if isinstance(docs[0].get("versions"), dict) else None
    for s, d in zip(srcs[1:], docs[1:]):
        v = d.get("versions")
        if first is None or not isinstance(v, dict):
            continue
        diffs = [f"{n} {first.get(n, 'none')} -> {v.get(n, 'none')}" for n in _NUMBERS_FROM
                 if (n in first or n in v) and first.get(n) != v.get(n)]
        if diffs:
            raise OutputError(f"{s.output} was made with other library versions than {srcs[0].output} "
                              f"({'; '.join(diffs)})",
                              "run every shard with one install of featx, numpy and OpenCV, then merge")


def _check_whole(s: sinks.Sink, st: State, doc: dict) -> None:
    """A shard is merged only if its run finished and its files are what its state says."""
    if doc.get("status") not in ("complete", "complete-with-failures") or not doc.get("complete", False):
        raise OutputError(f"{s.output} is incomplete (its run is {doc.get('status', 'unknown')})",
                          "run that shard's command again to finish it, then merge")
    why = s.damage(st)
    rows = st.get("rows", 0)
    if why is None and s.format == "npy":
        with open(s.output, "rb") as fh:
            shown = header_rows(fh.read(NPY_HEADER_LEN))
        with open(s.index_path, "rb") as fh:
            lines = sum(1 for _ in sinks.csv_records(fh)) - 1
        if shown != rows or lines != rows:
            why = f"{s.output} shows {shown} rows and its index {lines}, its last commit {rows}"
    shape = list((doc.get("output") or {}).get("shape") or [])
    empty = rows == 0 and st.get("width") is None and len(shape) == 2 and shape[0] == 0   # (0, D): no row yet
    if why is None and not empty and [rows, st.get("width") or 0] != shape:
        why = f"{s.output} holds {rows} rows, its sidecar says {(doc.get('output') or {}).get('shape')}"
    if why:
        raise OutputError(f"{why}: not a finished shard", "run that shard's command again, then merge")


def _merge(output: str, fmt: str, parts: Sequence[str], overwrite: bool) -> dict[str, Any]:
    srcs = [sinks.make_sink(p, None) for p in parts]
    mine = sinks.make_sink(output, fmt)
    writes = {p for p in mine.paths() + [mine.state_path, mine.sidecar_path] if p}
    for s in srcs:   # --overwrite would delete the shard, then read it (a traceback, the shard lost)
        if writes & {p for p in s.paths() + [s.state_path, s.sidecar_path] if p}:
            raise UsageError(f"the merged output {output} would replace the shard {s.output}",
                             "merge into a new output; nothing was written")
    for s in srcs:
        if s.format != fmt:
            raise UsageError(f"{s.output} is {s.format}, the merged output is {fmt}", "merge like with like")
        if not os.path.exists(s.output):
            raise OutputError(f"{s.output} does not exist")
    docs = [_load_sidecar(s) for s in srcs]
    for s in srcs:
        if not os.path.isfile(s.state_path):
            raise OutputError(f"{s.output} has no featx state", "merge outputs written by featx extract --shard I/N")
    states = [State(s.state_path) for s in srcs]
    try:
        configs = [st.get("config") for st in states]
        if any(c is None for c in configs):
            bad = srcs[configs.index(None)].output
            raise OutputError(f"{bad} has no featx state", "merge outputs written by featx extract --shard I/N")
        shards = [tuple(c["options"].get("shard") or ()) for c in configs]
        seen: dict[tuple, str] = {}
        for s, sh in zip(srcs, shards):
            if len(sh) != 2:
                raise OutputError(f"{s.output} was not written with --shard I/N")
            if sh in seen:
                raise OutputError(f"shard {sh[0]}/{sh[1]} is given twice ({seen[sh]} and {s.output})")
            seen[sh] = s.output
        n = shards[0][1]
        if any(sh[1] != n for sh in shards):
            raise OutputError("the shards split the inputs differently (" +
                              ", ".join(f"{s.output}: */{sh[1]}" for s, sh in zip(srcs, shards)) + ")")
        missing = [f"shard {i}/{n}" for i in range(1, n + 1) if (i, n) not in seen]
        if missing:
            raise OutputError(f"missing {', '.join(missing)}", "run the missing shards, then merge all of them")
        strip = [{k: v for k, v in c.items() if k != "options"} | {"options": {k: v for k, v in c["options"].items()
                                                                                 if k != "shard"}} for c in configs]
        for s, c in zip(srcs[1:], strip[1:]):
            if c != strip[0]:
                raise OutputError(f"{s.output} was made with other settings than {srcs[0].output}",
                                  "merge only shards of one command")
        _check_versions(srcs, docs)
        for s, st, d in zip(srcs, states, docs):
            _check_whole(s, st, d)
        # rows of every input, with their source; overlaps are refused
        owners: dict[str, str] = {}
        items: list[tuple[tuple, str, int, int, int, Identity, str | None, str]] = []
        for k, (s, st) in enumerate(zip(srcs, states)):
            for path, size, mtime, h, row0, nrows, out, status in st.items():
                if status == "failed":
                    continue
                if path in owners:
                    raise OutputError(f"{path} is in two shards ({owners[path]} and {s.output})",
                                      "the shards overlap: they were not made from the same inputs")
                owners[path] = s.output
                items.append((_sort_key(path), path, k, row0, nrows, Identity.from_stored(size, mtime, h), out, status))
        items.sort(key=lambda t: t[0])
        dst = sinks.make_sink(output, fmt, key_columns=srcs[0].key_columns, overwrite=overwrite)
        if dst.prepare():
            raise OutputError(f"{output} already exists", "pass --overwrite to replace it")
        config = dict(configs[0])
        config["options"] = dict(config["options"], shard=None)
        widths = {st.get("width") for st in states} - {None}
        if len(widths) > 1:
            raise OutputError(f"the shards have rows of different lengths ({sorted(widths)})")
        width = widths.pop() if widths else None
        if fmt == "parquet":
            info = _write_parquet(dst, srcs, states, items, width)
        else:
            info = _write(dst, srcs, items, width)
        st = State(dst.state_path)
        try:
            entries, row = [], 0
            for _, path, _, _, nrows, ident, out, status in items:
                entries.append(Entry(path, ident, row, nrows, out, status))
                row += nrows
            # the whole output is written under temporary names first; the state records it and
            # the renames in one transaction, then they are done: a kill leaves no part of an output
            st.record(entries, renames=info["renames"], config=config, **info["lengths"])
            st.recover_renames()
        finally:
            st.close()
        doc = {"featx_sidecar": 1, "status": "complete", "complete": True, "command": ["featx", "merge", output,
                                                                                          *parts],
               "extractor": docs[0].get("extractor"), "options": dict(docs[0].get("options", {}), shard=None),
               "output": info["output"], "merged_from": list(parts),
               "inputs": {"processed": len(items), "failed": sum(d.get("inputs", {}).get("failed", 0)
                                                                 for d in docs)},
               "failures": [f for d in docs for f in d.get("failures", [])],
               "versions": provenance.library_versions(), "timing": {"finished": provenance.now()}}
        provenance.write(dst.sidecar_path, doc)
        return info["output"]
    finally:
        for st in states:
            st.close()


def _write(dst: sinks.Sink, srcs, items, width) -> dict[str, Any]:
    if dst.format == "npy":
        mats = [np.load(s.output, mmap_mode="r") for s in srcs]
        idx = []
        for s in srcs:
            with open(s.index_path, "rb") as fh:
                idx.append(list(sinks.csv_records(fh)))
        total = sum(t[4] for t in items)

        def chunks():
            for _, _, k, row0, nrows, _, _, _ in items:
                yield np.ascontiguousarray(mats[k][row0:row0 + nrows]).tobytes()

        def tails():
            for _, _, k, row0, nrows, _, _, _ in items:
                for r in range(row0, row0 + nrows):
                    yield record_tail(idx[k][1 + r])

        data_len, index_len = write_whole(tmp_name(dst.output), tmp_name(dst.index_path), total, width or 0,
                                          idx[0][0], chunks(), tails())
        lengths = {"rows": total, "width": width, "index_len": index_len, "data_len": data_len}
        return {"renames": [(tmp_name(dst.output), dst.output), (tmp_name(dst.index_path), dst.index_path)],
                "lengths": lengths, "output": {"path": dst.output, "index": dst.index_path, "format": "npy",
                                               "shape": [total, width or 0]}}
    lines = []
    header = None
    for s in srcs:
        with open(s.output, "rb") as fh:
            records = sinks.csv_records(fh)
            h = next(records, b"")
            if header is None:
                header = h
            elif h != header:
                raise OutputError(f"{s.output} has another CSV header than {srcs[0].output}")
            lines.append(list(records))
    total = sum(t[4] for t in items)

    def data(fh):
        fh.write(header or b"")
        for _, _, k, row0, nrows, _, _, _ in items:
            fh.writelines(lines[k][row0:row0 + nrows])

    lengths = {"rows": total, "width": width, "data_len": write_file(tmp_name(dst.output), data)}
    return {"renames": [(tmp_name(dst.output), dst.output)],"lengths": lengths, "output": {"path": dst.output, "format": "csv", "shape": [total, width or 0]}}


#: merged outputs are written in parts of about this size
MERGE_PART_BYTES = 64 << 20


def _write_parquet(dst, srcs, states, items, width) -> dict[str, Any]:
    """Write the rows of ``items`` (sorted (sort key, path, source, first id, rows, ...)) from the
    shard outputs ``srcs`` (their ``states``) into ``dst``'s folder as new parts under hidden
    names; returns the renames and lengths for the merged output's state."""
    from .atomic import TMP_MARK
    from .parquet import _concat
    from .parquetio import part_name, pyarrow, write_durable

    pa, _ = pyarrow()
    where: list[dict[int, tuple[dict, int]]] = []   # per source: first id -> (part, position)
    for st in states:
        loc = {}
        for part in st.get("parts") or []:
            pos = 0
            for id0, n in part["ranges"]:
                loc[id0] = (part, pos)
                pos += n
        where.append(loc)
    if not os.path.isdir(dst.output):
        os.mkdir(dst.output)
    for n in os.listdir(dst.output):   # a killed merge's temporary parts (we hold the lock)
        if n.startswith(".part-") and TMP_MARK in n:
            os.unlink(dst._path(n))
    cache: dict[int, tuple[str, Any]] = {}
    pieces, ranges, nbytes, row = [], [], 0, 0
    renames, parts, like = [], [], None

    def flush():
        nonlocal pieces, ranges, nbytes
        if not pieces:
            return
        t = _concat(pa, pieces, like)
        name = part_name(len(parts) + 1)
        path = dst._path(name)
        tmp = tmp_name(path)
        write_durable(tmp, t)
        parts.append(dst._part_entry(name, tmp, ranges, t.num_rows))
        renames.append((tmp, path))
        pieces, ranges, nbytes = [], [], 0

    try:
        for _, path, k, row0, nrows, *_ in items:
            if nrows:
                part, pos = where[k][row0]
                if k not in cache or cache[k][0] != part["name"]:
                    cache[k] = (part["name"], srcs[k]._read_checked(part))
                t = cache[k][1]
                like = like if like is not None else t
                pieces.append(t.slice(pos, nrows))
                ranges.append([row, nrows])
                nbytes += t.nbytes * nrows // max(1, t.num_rows)
            row += nrows
            if nbytes >= MERGE_PART_BYTES:
                flush()
        flush()
    except BaseException:
        for tmp, _ in renames:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise
    lengths = {"rows": row, "next_row": row, "width": width, "next_part": len(parts) + 1, "parts": parts}
    return {"renames": renames, "lengths": lengths,
            "output": {"path": dst.output, "format": "parquet", "parts": len(parts), "shape": [row, width or 0]}}
