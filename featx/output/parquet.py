"""The ``parquet`` output: a folder ``NAME.parquet/`` of part files that DuckDB
(``read_parquet('NAME.parquet/*.parquet')``), Polars, pandas, Spark and
``pyarrow.dataset`` read as one table.  The columns are in :mod:`.parquetio`.

A Parquet file cannot be appended to, so every commit writes one new part:

* the rows buffered since the last commit (never more) are written to a hidden
  temporary name inside the folder (``.part-000007.parquet.featx-tmp-PID``: no reader's
  ``*.parquet`` matches it), made durable, then the state records the part (name, size,
  :func:`~.sinkbase.file_check`, and which rows it holds) together with its rename, in one
  transaction; the rename follows.  A crash before the transaction leaves a temporary file
  that the next run removes; after it, the next run finishes the rename.  Every non-hidden
  ``*.parquet`` in the folder that the state does not record (a leftover of an interrupted
  compaction, a file put there) is removed when the output is next opened.
* A changed input's old rows are never visible together with its new rows: the commit that
  brings the new rows rewrites each part holding old rows of its inputs as that part without
  them *plus* the new rows, and renames it over the old part — one atomic rename per part, and
  an input's rows always live in one part.  An input that now fails has its rows removed the
  same way.  ``--prune`` and the end-of-run compaction rewrite (or remove) the parts that hold
  rows of inputs that are gone.
* Small parts are merged: once :data:`PILE` consecutive parts of one generation are each under
  :data:`SMALL_BYTES`, they are rewritten as one part of the next generation (after a commit,
  and at the end of a run), so a row is rewritten about log16(rows) times.
  The merged part takes the name of the first, so the order of rows is kept; the others are
  removed just before the rename, so a reader listing the folder in that instant may miss
  those rows, never see them twice.

Row ids: every appended row gets the next id (``next_row`` in the state); an input's entry
records its first id and count, and each part its ids as ``[first, count]`` ranges in file
order.  ``rows`` in the state is the number of live rows.
"""
from __future__ import annotations

import json
import os
from typing import Any

from ..errors import OutputError
from ..extractor import Keypoints
from .atomic import OutputWriteError, TMP_MARK, disk_error, is_disk_error, tmp_name
from .parquetio import (ParquetReader, encode_keypoints, keypoint_table, part_name, pyarrow, read_part,
                        rows_of, vector_table, write_durable, write_part)
from .sinkbase import Encoder, RawEncoder, Sink, file_check

__all__ = ["ParquetSink", "ParquetReader", "KeypointEncoder", "SMALL_BYTES", "PILE"]

#: a part under this size is "small"; :data:`PILE` small parts in a row are merged into one
SMALL_BYTES = 8 << 20
PILE = 16


class KeypointEncoder(Encoder):
    """Keypoints (or a vector) as float32 bytes: points ``(N, 6)`` then descriptors ``(N, L)``."""

    def encode(self, key, mirror, value):
        if isinstance(value, Keypoints):
            return encode_keypoints(value.points, value.descriptors)
        return RawEncoder().encode(key, mirror, value)


class ParquetSink(Sink):
    format = "parquet"

    def __init__(self, output, key_columns=("path",), overwrite=False):
        pyarrow()   # a clear usage error before any work when pyarrow is missing
        super().__init__(output.rstrip("/" + os.sep) or output, key_columns, overwrite)
        self.kind = "vector"
        self.parts: list[dict[str, Any]] = []
        self.live = 0
        self.next_part = 1
        self._buf: list[bytes] = []
        self._shapes: list[tuple] = []
        self._keys: list[dict] = []
        self._first_id = 0
        self._meta: bytes | None = None
        self._made_folder = False

    expected_width: int | None = None

    # -- names and checks ---------------------------------------------------
    def _path(self, name: str) -> str:
        return os.path.join(self.output, name)

    def check_kind(self, kind, extractor):
        if kind == "dense":
            raise OutputError(f"{extractor} returns dense maps, which cannot go into a parquet table",
                              "use --format npy-dir (one .npy per image)")
        if kind == "keypoints":
            self.kind, self.stacked = "keypoints", False
            return
        super().check_kind(kind, extractor)

    def exists(self):
        if not os.path.lexists(self.output):
            return False
        if not os.path.isdir(self.output):
            return True
        return any(not n.startswith(".") for n in os.listdir(self.output))

    def preflight(self):
        if os.path.lexists(self.output) and not os.path.isdir(self.output):
            raise OutputError(f"{self.output} exists and is not a folder",
                              "a parquet output is a folder of part files; choose another -o")

    def prepare(self):
        self.preflight()
        if self.overwrite:
            self.remove_all()
            return False
        have_state = self.has_state()
        if self.exists() and not have_state:
            raise OutputError(f"{self.output} already exists and was not written by featx's incremental mode",
                              "pass --overwrite to replace it, or choose another -o")
        return have_state

    def _ours(self, name: str) -> bool:
        """A name featx writes in the folder: a part, or a temporary one."""
        return name.endswith(".parquet") and not name.startswith(".") or \
            (name.startswith(".part-") and TMP_MARK in name)

    def _unlink(self, name: str) -> None:
        """Remove a file (or a link, never what it points to) of the folder; a folder is left."""
        import stat

        try:
            if not stat.S_ISDIR(os.lstat(self._path(name)).st_mode):
                os.unlink(self._path(name))
        except FileNotFoundError:
            pass

    def discard(self):
        if os.path.isdir(self.output):
            for n in os.listdir(self.output):
                if self._ours(n):
                    self._unlink(n)

    def remove_all(self):
        self.discard()
        for p in (self.state_path, self.sidecar_path):
            if p and os.path.isfile(p):
                os.unlink(p)

    def damage(self, state):
        for part in state.get("parts") or []:
            p = self._path(part["name"])
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                return f"{p} is missing (deleted since its last run?)"
            import stat

            if not stat.S_ISREG(st.st_mode):
                return f"{p} was replaced by something that is not a file (a link?) since its last run"
            if st.st_size != part["bytes"]:
                return f"{p} is {st.st_size} bytes, its last commit wrote {part['bytes']} (changed since?)"
            if file_check(p, 0, part["bytes"]) != part["check"]:
                return f"{p} was replaced or changed since its last commit (by another program?)"
        return None

    def encoder(self):
        return KeypointEncoder() if self.kind == "keypoints" else RawEncoder()

    # -- opening --------------------------------------------------------------
    def open(self, state):
        if not os.path.isdir(self.output):
            os.mkdir(self.output)
            self._made_folder = True
        self.parts = list(state.get("parts") or []) if state is not None else []
        self.created = not self.parts and (state is None or state.get("next_row") is None)
        self.rows = state.get("next_row", 0) if state is not None else 0
        self.live = state.get("rows", 0) if state is not None else 0
        self.width = state.get("width") if state is not None else None
        self.next_part = state.get("next_part", 1) if state is not None else 1
        self._first_id = self.rows
        # what a reader must not see: temporary files of dead runs, parts no commit recorded
        recorded = {p["name"] for p in self.parts}
        for n in os.listdir(self.output):
            if self._ours(n) and n not in recorded:
                self._unlink(n)
        self._meta = self._provenance(state)

    def _provenance(self, state) -> bytes:
        """What every part of this run carries in its ``featx`` metadata: the run's record
        as the sidecar holds it when the run starts (the counts come with the sidecar)."""
        doc = None
        try:
            with open(self.sidecar_path, encoding="utf-8") as fh:
                doc = json.load(fh)
        except (OSError, ValueError, TypeError):
            pass
        if not isinstance(doc, dict):
            doc = {"featx_sidecar": 1, "config": state.get("config") if state is not None else None}
        for k in ("status", "complete", "inputs", "failures", "partial", "disappeared"):
            doc.pop(k, None)
        if isinstance(doc.get("timing"), dict):
            doc["timing"] = {"started": doc["timing"].get("started")}
        doc["output"] = {"path": os.path.basename(self.output), "format": "parquet"}
        return json.dumps(doc, sort_keys=False).encode("utf-8")

    # -- appending ------------------------------------------------------------
    def check_width(self, key, shape, first_key):
        if self.kind == "keypoints":
            return None
        return super().check_width(key, shape, first_key)

    def append(self, key, data, shape):
        if self.kind != "keypoints" and self.width is None:
            self.width = int(shape[0])
        self._keys.append(dict(key))
        self._buf.append(data)
        if self.kind == "keypoints":
            self._shapes.append(tuple(shape))
        self.rows += 1

    def _table(self, keys, chunks, shapes):
        if self.kind == "keypoints":
            return keypoint_table(keys, list(zip(chunks, shapes)), self.key_columns, self._meta)
        return vector_table(keys, b"".join(chunks), self.width or self.expected_width or 0, self.key_columns,
                            self._meta)

    def _lengths(self):
        return {"rows": self.live, "next_row": self.rows, "width": self.width, "next_part": self.next_part,
                "parts": self.parts}

    def _tmp(self, path: str) -> str:
        """A temporary name never used before in this run: a rename the state recorded and
        featx did is then harmless to find again (the state's list is cleared when the output
        is next opened, after finishing any rename a crash left undone)."""
        self._tmp_seq = getattr(self, "_tmp_seq", 0) + 1
        return f"{tmp_name(path)}-{self._tmp_seq}"

    @staticmethod
    def _rename(renames) -> None:
        for src, dst in renames:
            os.replace(src, dst)

    def _new_name(self) -> str:
        name = part_name(self.next_part)
        self.next_part += 1
        return name

    def prepare_commit(self):
        if self.broken is not None:
            raise self.broken
        if not self._keys:
            return [], {"new": None}, None
        keys, chunks, shapes = self._keys, self._buf, self._shapes
        first, n = self._first_id, len(keys)
        self._keys, self._buf, self._shapes, self._first_id = [], [], [], self.rows
        table = self._table(keys, chunks, shapes)
        name = self._new_name()
        tmp = self._tmp(self._path(name))
        try:
            fd = write_part(tmp, table)
        except OSError as exc:
            self.broken = disk_error(self.output, exc) if is_disk_error(exc) else exc
            raise self.broken from None
        new = {"name": name, "tmp": tmp, "first": first, "ranges": [[first, n]], "rows": n, "fd": fd,
               "table": table}
        return [fd], {"new": new}, None

    def record_commit(self, state, entries, meta, after, durable):
        """The fsync of the new part, then (main thread) the parts holding older rows of this
        commit's inputs rewritten, the state transaction, and the renames."""
        new = meta.get("new")
        try:
            try:
                durable()
            finally:
                if new is not None and "fd" in new:
                    os.close(new.pop("fd"))
            if state is None:   # (no state: nothing to supersede or record)
                if new is not None:
                    self.parts.append(self._part_entry(new["name"], new["tmp"], new["ranges"], new["rows"]))
                    self.live += new["rows"]
                    self._rename([(new["tmp"], self._path(new["name"]))])
                return
            if new is not None:   # the part's rows, input by input (an input's rows are kept together)
                ranges = sorted([e.row0, e.nrows] for e in entries if e.nrows)
                if sum(n for _, n in ranges) == new["rows"] and ranges and ranges[0][0] == new["first"]:
                    new["ranges"] = ranges
            renames, parts = self._supersede(state, entries, new)
            added = sum(e.nrows for e in entries)
            self.live += added - self._superseded_rows
            old_names = {p["name"] for p in self.parts}
            self.parts = parts
            state.record(entries, renames=renames, **self._lengths())
            self._recorded = True
            self._rename(renames)
            gone = old_names - {p["name"] for p in parts}
            for name in gone:
                self._unlink(name)
            self._merge_small(state)
            if new is not None:
                new.pop("table", None)   # (the commit's rows are no longer needed)
        except Exception as exc:
            self.fail_commit(exc)
            raise

    def _part_entry(self, name: str, path: str, ranges, rows: int) -> dict[str, Any]:
        size = os.stat(path).st_size
        return {"name": name, "ranges": ranges, "rows": rows, "bytes": size, "check": file_check(path, 0, size)}

    def _read_checked(self, part: dict) -> Any:
        """A committed part's table, after checking it is still what featx wrote."""
        p = self._path(part["name"])
        try:
            same = os.lstat(p).st_size == part["bytes"] and file_check(p, 0, part["bytes"]) == part["check"]
        except OSError:
            same = False
        if not same:
            self.broken = OutputWriteError(f"{p} was deleted or changed while featx was writing the output",
                                           "run the same command again to rebuild it")
            raise self.broken
        return read_part(p)

    def _supersede(self, state, entries, new) -> tuple[list, list]:
        """Renames and the new list of parts for a commit of ``entries`` (``new``: its part).
        Parts holding rows of inputs in ``entries`` from an earlier commit get the new rows of
        those inputs in place of the old ones (one rename each)."""
        self._superseded_rows = 0
        old = state.rows_of([e.path for e in entries]) if entries else {}
        old = {p: r for p, r in old.items() if r[1] > 0}
        parts = [dict(p) for p in self.parts]
        renames: list[tuple[str, str]] = []
        if old:
            by_first = {r[0]: p for p, r in old.items()}   # first old id -> input
            new_rows = {e.path: (e.row0, e.nrows) for e in entries}
            table = new["table"] if new is not None else None
            moved: set[int] = set()
            for i, part in enumerate(parts):
                hit = [id0 for id0, _ in part["ranges"] if id0 in by_first]
                if not hit:
                    continue
                pa, _ = pyarrow()
                t = self._read_checked(part)
                drop = set(hit)
                keep = rows_of(part["ranges"], lambda id0: id0 not in drop)
                ranges = [r for r in part["ranges"] if r[0] not in drop]
                pieces = [t.take(pa.array(keep))]
                for id0 in hit:
                    self._superseded_rows += old[by_first[id0]][1]
                    r0, n = new_rows[by_first[id0]]
                    if n and table is not None:
                        pos = r0 - new["first"]
                        pieces.append(table.slice(pos, n))
                        ranges.append([r0, n])
                        moved.add(r0)
                merged = _concat(pa, pieces, table if table is not None else t)
                path = self._path(part["name"])
                tmp = self._tmp(path)
                write_durable(tmp, merged)
                parts[i] = dict(self._part_entry(part["name"], tmp, ranges, merged.num_rows),
                                level=part.get("level", 0))
                renames.append((tmp, path))
            if new is not None and moved:   # the new part keeps the rows that did not move
                pa, _ = pyarrow()
                rest = [(e.row0, e.nrows) for e in entries if e.nrows and e.row0 not in moved]
                os.unlink(new["tmp"])
                if rest:
                    base = new["first"]
                    pieces = [table.slice(r0 - base, n) for r0, n in rest]
                    t = _concat(pa, pieces, table)
                    write_durable(new["tmp"], t)
                    new = dict(new, ranges=[[r0, n] for r0, n in rest], rows=t.num_rows)
                else:
                    new = None
        if new is not None:
            final = self._path(new["name"])
            parts.append(self._part_entry(new["name"], new["tmp"], new["ranges"], new["rows"]))
            renames.append((new["tmp"], final))
        return renames, parts

    # -- compaction -----------------------------------------------------------
    def compact(self, state):
        """End of a complete run: rewrite the parts holding rows no committed input owns
        (changed inputs whose new rows did not come, pruned inputs), then merge small parts."""
        live = {row0 for _, row0, n in state.live_rows() if n}
        dead = 0
        parts, renames, gone = [], [], []
        for part in self.parts:
            bad = [r for r in part["ranges"] if r[0] not in live]
            if not bad:
                parts.append(part)
                continue
            dead += sum(n for _, n in bad)
            ranges = [r for r in part["ranges"] if r[0] in live]
            if not ranges:
                gone.append(part["name"])
                continue
            pa, _ = pyarrow()
            t = self._read_checked(part)
            t = t.take(pa.array(rows_of(part["ranges"], lambda id0: id0 in live)))
            path = self._path(part["name"])
            tmp = self._tmp(path)
            write_durable(tmp, t)
            parts.append(dict(self._part_entry(part["name"], tmp, ranges, t.num_rows), level=part.get("level", 0)))
            renames.append((tmp, path))
        if dead:
            self.parts = parts
            self.live = sum(p["rows"] for p in parts)
            state.record([], renames=renames, **self._lengths())
            for name in gone:
                self._unlink(name)
            self._rename(renames)
        self._merge_small(state)
        return dead

    def _merge_small(self, state) -> None:
        """Merge each run of :data:`PILE` consecutive parts of one generation (``level``: how
        many merges made it) that are each under :data:`SMALL_BYTES` into one part of the next
        generation.  Parts of a generation are about :data:`PILE` times bigger than the one
        before, so a row is rewritten about log16(rows) times, never at every merge."""
        groups, run = [], []
        for i, part in enumerate(self.parts):
            small = part["bytes"] < SMALL_BYTES
            if run and (not small or part.get("level", 0) != self.parts[run[0]].get("level", 0)):
                run = []
            if small:
                run.append(i)
                if len(run) == PILE:
                    groups.append(run)
                    run = []
        if not groups:
            return
        pa, _ = pyarrow()
        parts = list(self.parts)
        renames, gone = [], []
        for g in groups:
            tables = [self._read_checked(parts[i]) for i in g]
            t = _concat(pa, tables, tables[0])
            first = parts[g[0]]
            path = self._path(first["name"])
            tmp = self._tmp(path)
            write_durable(tmp, t)
            ranges = [r for i in g for r in parts[i]["ranges"]]
            parts[g[0]] = self._part_entry(first["name"], tmp, ranges, t.num_rows)
            parts[g[0]]["level"] = first.get("level", 0) + 1
            gone += [parts[i]["name"] for i in g[1:]]
            renames.append((tmp, path))
        drop = set(gone)
        self.parts = [p for p in parts if p["name"] not in drop]
        state.record([], renames=renames, **self._lengths())
        for name in gone:   # first the merged parts go, then the merged one appears: never twice
            self._unlink(name)
        self._rename(renames)

    # -- closing --------------------------------------------------------------
    def abandon(self):
        if self._recorded:
            return False
        had = False
        if os.path.isdir(self.output):
            for n in os.listdir(self.output):
                if n.startswith(".part-") and TMP_MARK in n:
                    os.unlink(self._path(n))
                    had = True
            if self._made_folder and not os.listdir(self.output):
                os.rmdir(self.output)
                had = True
        return had

    def info(self):
        width = self.width or self.expected_width or 0
        return {"path": self.output, "format": "parquet", "parts": len(self.parts),
                "shape": [self.live, width]}


def _concat(pa, tables, like):
    """Tables of one schema (the run's metadata) as one."""
    tables = [t.replace_schema_metadata(like.schema.metadata) for t in tables]
    return pa.concat_tables(tables).combine_chunks()

