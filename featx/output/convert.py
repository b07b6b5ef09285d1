"""Convert an output to another format without recomputing (``featx convert``).

The rows are read back by :func:`~featx.output.reader.open_output` and written
through the destination's sink (:func:`~featx.output.sinks.make_sink`), so the
result is a real featx output: its state holds the source's settings (the format
changed) and, for every input, the identity (size, modification time, hash) the
source recorded, so the same ``featx extract`` into the converted output
continues it incrementally instead of redoing everything.

Crash-safe, as ``featx merge`` is: the new output is written whole, as a featx
output of its own, in a hidden work folder beside the destination
(``.NAME.featx-tmp-PID``), committed every :data:`COMMIT_BYTES` or
:data:`COMMIT_ROWS` so that what a sink keeps until its commit stays bounded; then it
is moved into place.  An ``npy-dir`` folder (its state inside) moves in one rename.
File outputs (``.npy`` + index, ``.csv``, a ``.parquet`` folder with its state beside
it) record the renames of their files in their state, the state is renamed over the
destination's — the commit point — and the files are renamed; a kill after the
commit point is finished by the next ``featx extract`` or ``featx convert`` on the destination (its state's
pending renames), a kill before it leaves only the work folder, which the next one
removes.  With ``--overwrite`` the old output stays until the new one replaces it
(a folder's featx files go first: a folder cannot be renamed over another).

Only the rows the source's last commit vouches for are read; a source whose
files no longer agree with its state is refused.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import sys
from typing import Any

import numpy as np

from .. import provenance
from ..errors import FeatxError, OutputError, UsageError
from . import layout, sinks
from .atomic import TMP_MARK, sweep_tmp, tmp_name
from .lock import OutputLock
from .reader import OutputReader, load_sidecar, open_output
from .state import Entry, State


def convert(src: str, dst: str, fmt: str | None = None, *, overwrite: bool = False,
            argv: list[str] | None = None) -> dict[str, Any]:
    """Write the output ``src`` again as ``dst`` (format ``fmt``, else from ``dst``'s name);
    returns the new output's info (``path``, ``format``, ``shape``/``files``, ``rows``).

    Raises :class:`~featx.errors.UsageError` (a subclass of FeatxError; exit 2 on the
    command line) for what cannot be done: ``dst`` is ``src``, exists (without
    ``overwrite``), or its format cannot hold the rows (keypoints into a stacked matrix)."""
    reader = open_output(src)
    try:
        return _convert(reader, src, dst, fmt, overwrite, argv)
    finally:
        reader.close()



def output_folder(sink: sinks.Sink) -> str:
    """The folder an output goes into (a usage error when it does not exist), after the
    sink's own checks (:meth:`~featx.output.sinkbase.Sink.preflight`)."""
    folder = os.path.dirname(os.path.abspath(sink.output.rstrip("/" + os.sep)))
    if not os.path.isdir(folder):
        raise UsageError(f"output folder {folder} does not exist", "create it first")
    sink.preflight()
    return folder


@contextlib.contextmanager
def locked(src_sink, dst_sink: sinks.Sink):
    """Hold the lock of the output written and, where it has one, of the output read: a run
    continuing the source meanwhile would move its rows under the reader (a source on a
    read-only disk has no run to fear: it is read without its lock)."""
    src_lock = None
    if src_sink is not None and src_sink.lock_path:
        try:
            src_lock = OutputLock(src_sink.lock_path)
            src_lock.acquire(0.0)
        except OSError:
            src_lock = None
    lock = OutputLock(dst_sink.lock_path)
    try:
        lock.acquire(0.0)
    except BaseException:
        if src_lock is not None:
            src_lock.release()
        raise
    try:
        yield
    finally:
        lock.release()
        if src_lock is not None:
            src_lock.release()


@contextlib.contextmanager
def staged(dst_sink: sinks.Sink, fmt: str, config: dict, width: int | None, kind_of: tuple | None = None,
           **sink_options):
    """The whole output written as a featx output of its own, with periodic commits (memory
    stays flat), in a hidden folder beside the destination ``dst_sink``: yields ``(sink,
    state)``, the state's config set to ``config``, for the caller to fill and then
    :func:`move_into_place`; the folder goes whatever happens.  ``kind_of``: ``(kind,
    extractor)`` the sink must be able to hold (checked before any file is made)."""
    work = tmp_name(dst_sink.output.rstrip("/" + os.sep))
    os.mkdir(work)
    try:
        name = os.path.join(work, os.path.basename(dst_sink.output.rstrip("/" + os.sep)))
        tmp = sinks.make_sink(name + ("/" if fmt == "npy-dir" else ""), fmt, **sink_options)
        if kind_of is not None:
            tmp.check_kind(*kind_of)
        if hasattr(type(tmp), "expected_width") and width:
            tmp.expected_width = width
        tmp.prepare()
        state = State(tmp.state_path)
        try:
            state.set_meta(config=config)
            yield tmp, state
        finally:
            state.close()
            tmp.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)

def _files_of(sink: sinks.Sink) -> set[str]:
    out = {p for p in sink.paths() + [sink.state_path, sink.sidecar_path] if p}
    out.add(sink.output.rstrip("/" + os.sep))
    return {os.path.realpath(p) if os.path.exists(p) else os.path.abspath(p) for p in out}


def _convert(reader: OutputReader, src: str, dst: str, fmt: str | None, overwrite: bool,
             argv: list[str] | None) -> dict[str, Any]:
    if reader.state is None or reader.config is None:
        why = f" ({reader.state_error})" if getattr(reader, "state_error", None) else ""
        raise OutputError(f"{src} has no featx state beside it{why}: featx cannot tell which inputs its rows "
                          "belong to", "convert outputs written by featx extract or featx merge, with their "
                          f"hidden state file (`featx inspect {src}` shows what is known of it)")
    if dst == "-":
        raise UsageError("featx convert writes an output file or folder, not stdout",
                         "name the new output (-o is not needed: featx convert SRC DST)")
    fmt = sinks.infer_format(dst, fmt)
    extractor = ((reader.config or {}).get("extractor") or {}).get("name") or "the extractor"
    src_sink = sinks.make_sink(src, reader.format, key_columns=reader.key_columns) \
        if reader.format in sinks.FORMATS else None
    columns = value_columns(reader)
    dst_sink = sinks.make_sink(dst, fmt, key_columns=reader.key_columns, overwrite=overwrite, columns=columns,
                               kind=reader.kind)
    if os.path.realpath(dst_sink.output) == os.path.realpath(reader.output) or (
            src_sink is not None and _files_of(dst_sink) & _files_of(src_sink)):
        raise UsageError(f"the new output {dst} would write over the output it is converted from ({src})",
                         "convert into another name; nothing was written")
    dst_sink.check_kind(reader.kind, extractor)
    if dst_sink.stacked and reader.format == "npy-dir" and ("time" in reader.key_columns
                                                             or "frame" in reader.key_columns):
        raise OutputError(f"the npy-dir output {src} does not record the times of its video frames, which a "
                          f"{fmt} output lists", "convert from a .npy or .csv output of the same run, or run "
                          f"featx extract into {dst}")
    if hasattr(type(dst_sink), "expected_width") and reader.width:
        dst_sink.expected_width = reader.width
    folder = output_folder(dst_sink)
    with locked(src_sink, dst_sink):
        check_source(reader, src_sink, src)
        sweep(folder, dst_sink)
        check_absent(dst_sink, dst, overwrite)
        config = dict(reader.config)
        config["options"] = dict(config.get("options") or {}, format=dst_sink.format)
        with staged(dst_sink, fmt, config, reader.width, (reader.kind, extractor), key_columns=reader.key_columns,
                    columns=columns, kind=reader.kind) as (tmp, state):
            info = _write(reader, tmp, state, dst_sink.mirror_base)
            state.recover_renames()   # (the first commit's own renames, done: forgotten)
            move_into_place(tmp, dst_sink, state)
        info = dict(info, path=dst_sink.output)
        if dst_sink.format == "npy":
            info["index"] = dst_sink.index_path
        doc = _sidecar(reader, src, dst_sink, info, argv)
        provenance.write(dst_sink.sidecar_path, doc)
        return info


def sweep(folder: str, sink: sinks.Sink) -> None:
    """Under the destination's lock: what a killed convert left beside it (its hidden work
    folder, temporary files of the destination's names, renames its state lists)."""
    if sink.format != "npy-dir" and sink.has_state():
        st = State(sink.state_path)   # a convert killed between its state's rename and its files'
        try:
            st.recover_renames()
        finally:
            st.close()
    name = os.path.basename(sink.output.rstrip("/" + os.sep))
    prefix = f".{name}{TMP_MARK}"
    for n in os.listdir(folder):
        p = os.path.join(folder, n)
        if n.startswith(prefix) and os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
    sweep_tmp(folder, names=[os.path.basename(p) for p in sink.paths() + [sink.sidecar_path, sink.state_path]])


def check_absent(sink: sinks.Sink, dst: str, overwrite: bool) -> None:
    """The destination must not exist (a state with no commit, left by a run killed before its
    first commit, does not count); with ``overwrite``, an existing featx output is replaced:
    a file output when the new one moves into place, a folder's featx files now."""
    committed = False
    if sink.has_state():
        st = State(sink.state_path)
        try:
            committed = st.get("rows") is not None or st.live_count() > 0
        finally:
            st.close()
    if not (sink.exists() or committed):
        return
    if not overwrite:
        if not committed:
            sink.prepare()    # "... already exists and was not written by featx": its own words
        raise OutputError(f"{dst} already exists", "pass --overwrite to replace it")
    if sink.format in ("npy-dir", "parquet"):   # a folder: featx's files in it go now
        sink.overwrite = True
        sink.prepare()
        sink.overwrite = False
        for dirpath, _, _ in sorted(os.walk(sink.output), key=lambda t: -len(t[0])):
            try:   # the folders left empty, the output's own too; files featx did not write stay
                os.rmdir(dirpath)
            except OSError:
                pass


def move_into_place(tmp: sinks.Sink, dst: sinks.Sink, state: State) -> None:
    """The finished output ``tmp`` (in the work folder) becomes ``dst``.  A folder output
    with its state inside (npy-dir) moves in one rename.  Otherwise the renames of its files
    are recorded in its state, the state is renamed over ``dst``'s (the commit point: a kill
    after it is finished by the next ``featx extract`` or ``convert`` on ``dst``), then the renames are done."""
    if dst.format == "npy-dir":
        state.close()
        if not os.path.exists(dst.output):
            os.replace(tmp.output, dst.output)
        else:   # --overwrite kept files featx did not write: the new files join them, the state last
            for dirpath, dirnames, filenames in os.walk(tmp.output):
                rel = os.path.relpath(dirpath, tmp.output)
                os.makedirs(os.path.normpath(os.path.join(dst.output, rel)), exist_ok=True)
                for n in filenames:
                    if rel == os.curdir and n.startswith(".featx-state"):
                        continue
                    os.replace(os.path.join(dirpath, n), os.path.normpath(os.path.join(dst.output, rel, n)))
            os.replace(tmp.state_path, dst.state_path)
        _fsync_dir(os.path.dirname(dst.output))
        return
    if dst.format == "parquet":
        pairs = [(tmp.output, dst.output)]
    else:
        pairs = [(p, os.path.join(os.path.dirname(dst.output), os.path.basename(p))) for p in tmp.paths()]
    state.record([], renames=[(a, b) for a, b in pairs if os.path.exists(a)])
    state.close()
    tmp.close()
    os.replace(tmp.state_path, dst.state_path)
    try:
        _fsync_dir(os.path.dirname(dst.state_path))
    finally:   # past the commit point: the renames are done whatever happens (a kill: the next run)
        final = State(dst.state_path)
        try:
            final.recover_renames()
        finally:
            final.close()


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder or os.curdir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_source(reader: OutputReader, src_sink, src: str) -> None:
    """The source's files must be what its state says (the checks the sinks make before
    continuing an output), and no rename of a cut-short run may be pending."""
    # (a finished commit leaves its renames listed until the next run opens the output: only
    # one whose temporary file is still there is pending)
    pending = [s for s, _ in reader.state.db.execute("SELECT src, dst FROM pending_renames")
               if os.path.exists(os.fsdecode(s) if isinstance(s, bytes) else s)]
    hint = "run the command that made it again (it repairs or rebuilds the output), then convert"
    if pending:
        raise OutputError(f"{src} was being rewritten when its last run stopped (renames pending)", hint)
    why, _ = check_files(reader, src_sink)
    if why:
        raise OutputError(f"{src} does not agree with its state: {why}", hint)


class _CopiedState:
    """The state as a copy of the output sees it: its file checks with the inodes of the
    files here, so that the sinks' own checks (:meth:`~featx.output.sinks.Sink.damage`)
    compare the contents and not where the bytes live."""

    def __init__(self, state, inodes: dict[str, int]):
        self.state, self.inodes = state, inodes

    def get(self, key, default=None):
        v = self.state.get(key, default)
        if key == "checks" and isinstance(v, dict):
            v = {role: (dict(c, ino=self.inodes[role]) if isinstance(c, dict) and role in self.inodes else c)
                 for role, c in v.items()}
        return v


def check_files(reader: OutputReader, sink=None) -> tuple[str | None, bool]:
    """Do the output's files hold what its state's last commit recorded?  ``(why not, copied)``:
    ``why`` None when they agree; ``copied`` when they are a copy of the files featx wrote
    (other inodes, the same committed bytes: an output moved to another machine), which
    the sinks' :meth:`~featx.output.sinks.Sink.damage` alone reports as replaced."""
    if reader.state is None:
        return None, False
    if sink is None and reader.format in sinks.FORMATS:
        sink = sinks.make_sink(reader.output + ("/" if reader.format == "npy-dir" else ""), reader.format,
                               key_columns=reader.key_columns)
    why = sink.damage(reader.state) if sink is not None else None
    copied = False
    if why is not None and "replaced or changed" in why:
        checks = reader.state.get("checks") or {}
        inodes = {}
        for role, path in (("data", reader.output), ("index", getattr(reader, "index_path", None))):
            if path and isinstance(checks.get(role), dict) and os.path.exists(path):
                inodes[role] = os.stat(path).st_ino
        if any(inodes[k] != checks[k].get("ino") for k in inodes) and \
                sink.damage(_CopiedState(reader.state, inodes)) is None:
            why, copied = None, True
    if why is None:
        why = getattr(reader, "broken", None) or agreement(reader)
    return why, copied


def agreement(reader: OutputReader) -> str | None:
    """Beyond the sinks' own checks: the rows the files show against what the state records
    (None when they agree).  Stacked: the ``.npy`` header and its index against the committed
    row count; ``npy-dir``: every input's files there."""
    st = reader.state
    if st is None:
        return None
    if reader.format == "npy":
        from .npyformat import header_rows, NPY_HEADER_LEN

        rows = int(st.get("rows", 0) or 0)
        with open(reader.output, "rb") as fh:
            shown = header_rows(fh.read(NPY_HEADER_LEN))
        lines = -1
        if os.path.isfile(reader.index_path):
            with open(reader.index_path, "rb") as fh:
                lines = sum(1 for _ in sinks.csv_records(fh)) - 1
        if shown != rows or lines != rows:
            return f"{reader.output} shows {shown} rows and its index {max(lines, 0)}, its last commit {rows}"
        return None
    if reader.format == "csv":
        rows = int(st.get("rows", 0) or 0)
        if reader.shown_rows() < rows:
            return f"{reader.output} holds {reader.shown_rows()} rows, its last commit {rows}"
        return None
    if reader.format == "npy-dir":
        found = {p: len(fs) for p, fs in reader._items()}
        missing = [(p, n) for p, _, _, n, _, status in OutputReader.entries(reader)
                   if status != "failed" and n and found.get(p, 0) < n]
        if missing:
            from ..names import quote_name

            p, n = missing[0]
            more = f" and {len(missing) - 1} more inputs" if len(missing) > 1 else ""
            return (f"the files of {quote_name(p)} are missing ({found.get(p, 0)} of {n} there){more}")
    return None


def value_columns(reader: OutputReader) -> list[str] | None:
    """The names of the value columns: a CSV's header, else what the extractor calls them
    for the output's settings (``None`` where the extractor does not name them)."""
    cols = getattr(reader, "columns", None)
    if cols:
        return list(cols)
    pool = pool_record(reader.config, reader.sidecar)
    if pool is None:
        return extractor_columns(reader.config, reader.sidecar, reader.width)
    # pooled rows (featx.pooling): {stat}.{col} of the extractor's D values, as a CSV written
    # directly names them
    from ..errors import UsageError
    from ..pooling import PoolSpec

    try:
        spec = PoolSpec.from_record(pool)
    except UsageError:
        return None
    per = len(spec.parts) * len(spec.stats)
    if not reader.width or reader.width % per:
        return None
    d = reader.width // per
    return spec.columns(extractor_columns(reader.config, reader.sidecar, d), d)


def pool_record(config: dict | None, sidecar: dict | None) -> dict | None:
    """How an output's rows were pooled during extraction (``--pool-over``: a
    ``PoolSpec.record()`` in its state's config options, or its sidecar's ``pool``), or None
    for rows that were not pooled so (a ``featx pool`` output, whose sidecar names its
    ``source``, is named by :func:`extractor_columns`)."""
    opts = (config or {}).get("options")
    if isinstance(opts, dict) and isinstance(opts.get("pool"), dict):
        return opts["pool"]
    if config is None and isinstance(sidecar, dict) and isinstance(sidecar.get("pool"), dict) \
            and "source" not in sidecar:
        return sidecar["pool"]
    return None


def extractor_columns(config: dict | None, sidecar: dict | None, width: int | None) -> list[str] | None:
    """The extractor's names of the ``width`` values of a row, from the state's ``config``
    (or the sidecar's record); None if they cannot be had (unknown extractor, a length
    that depends on the image size, a plugin not installed here)."""
    if not width:
        return None
    pool = (config or {}).get("pool")
    if isinstance(pool, dict):   # a featx pool output: the pooled names of the source's columns
        from ..pooling import PoolSpec

        try:
            spec = PoolSpec.from_record(pool)
        except FeatxError:
            return None
        per = spec.width(1)
        if width % per:
            return None
        src = {"extractor": config.get("extractor"), "options": (config.get("source") or {}).get("options") or {}}
        cols = extractor_columns(src, None, width // per)
        return spec.columns(cols, width // per) if cols else None
    ext = (config or {}).get("extractor") if isinstance((config or {}).get("extractor"), dict) else None
    params = None
    if ext:
        name, params = ext.get("name"), {k: v for k, v in ext.items() if k != "name"}
        resize = ((config or {}).get("options") or {}).get("resize")
    else:
        rec = (sidecar or {}).get("extractor")
        if not isinstance(rec, dict):
            return None
        name, params = rec.get("name"), rec.get("params") or {}
        resize = ((sidecar or {}).get("options") or {}).get("resize")
    if not name:
        return None
    try:
        from ..extractor import param_infos
        from .. import registry

        from ..extractor import build_params

        cls = registry.get(name)
        known = {p.name for p in param_infos(cls.Params)}
        values = build_params(cls, {k: (tuple(v) if isinstance(v, list) else v) for k, v in params.items()
                                    if k in known})
        sizes = [tuple(resize[::-1])] if resize else [(480, 640), (240, 320)]
        # named from the parameters when the class can (cnn's built-in model: no network
        # built to name the columns of a file); else from an extractor, built on the CPU
        # (a column's name does not depend on the device a run used)
        static = getattr(cls, "static_output_spec", None)
        e = None
        for h, w in sizes:
            spec = static(values, h, w) if static is not None else None
            if spec is None:
                if e is None:
                    if "device" in known and getattr(values, "device", "cpu") != "cpu":
                        import dataclasses

                        values = dataclasses.replace(values, device="cpu")
                    e = cls(values)
                spec = e.output_spec(h, w)
            if spec.kind == "vector" and spec.length == width and spec.columns and len(spec.columns) == width:
                return list(spec.columns)
    except (FeatxError, ImportError, TypeError, ValueError, AttributeError):
        return None
    return None


def _item_mirror(key: dict, inp_mirror: str, inp_path: str, base: str) -> str:
    """The mirror (under an npy-dir output) of the item ``key`` of the input ``inp_path``."""
    if "frames" in key or "regions" in key:   # a pooled row (featx.pooling)
        return layout.pooled_mirror(inp_mirror, key)
    mirror = inp_mirror
    frame = key.get("frame")
    if key.get("segment") is not None:  # a frame of a segment (--segments): under the segment's folder
        inp_mirror = layout.segment_mirror(inp_mirror, int(key["segment"]), key.get("label"))
    if frame is not None:
        p = key.get("path")
        if p == inp_path or p is None:
            mirror = layout.frame_mirror(inp_mirror, int(frame))
        elif os.path.dirname(p) == inp_path:      # a frame folder's frame file
            mirror = layout.frame_file(inp_mirror, p)
        else:                                      # an image sequence's frame
            mirror = layout.mirror_path(p, base)
    if key.get("x") is not None:
        mirror = layout.region_mirror(mirror, *(int(key[c]) for c in ("x", "y", "w", "h")))
    return mirror


def _value(v, kind: str):
    if kind == "keypoints":
        from ..extractor import Keypoints

        return Keypoints(points=np.asarray(v.get("keypoints"), np.float32),
                         descriptors=np.asarray(v.get("descriptors"), np.float32))
    if kind == "dense":
        return np.asarray(v.get("values") if isinstance(v, dict) else v, np.float32)
    return v


#: Commit the converted rows every this many bytes of values, or rows, whichever comes first:
#: what a sink keeps until its commit (a .npy's index lines, a parquet part) stays bounded.
COMMIT_BYTES = 64 << 20
COMMIT_ROWS = 100_000


def _write(reader: OutputReader, sink: sinks.Sink, state: State, base: str) -> dict[str, Any]:
    """Every row the source's state owns, in its order, through ``sink``, committed every
    :data:`COMMIT_BYTES` / :data:`COMMIT_ROWS` at an input's end (an input's rows are never
    split between commits).  ``base``: the folder npy-dir mirrors are relative to (the
    destination's parent, not the work folder's)."""
    owners = list(reader.entries())
    ranges = sorted((e for e in owners if e[3] > 0), key=lambda e: e[2])
    npy_dir = sink.format == "npy-dir"
    # inputs with no row (failed, a video with no frame) go with the first commit
    pending: list[Entry] = [Entry(path, ident if status != "failed" else None, 0, 0,
                                  layout.mirror_path(path, base) if npy_dir and status != "failed" else None,
                                  status) for path, ident, _, nrows, _, status in owners if nrows == 0]
    empty = sum(1 for e in pending if e.status != "failed")
    del owners
    sink.open(state)
    enc = sink.encoder()
    k = 0            # the entry that owns the current row (ranges[k])
    row = 0          # the source's row number
    cur: list | None = None   # [path, ident, new row0, rows written, out, status]
    since = [0, 0]   # bytes and rows since the last commit
    totals = [0, 0]  # inputs and rows written

    def close_entry():
        if cur is None:
            return
        pending.append(Entry(cur[0], cur[1], cur[2], cur[3], cur[4], cur[5]))
        totals[0] += 1
        totals[1] += cur[3]
        if since[0] >= COMMIT_BYTES or since[1] >= COMMIT_ROWS:
            sink.commit(state, pending)
            pending.clear()
            since[0] = since[1] = 0

    for keys, values in reader.batches():
        for i, key in enumerate(keys):
            while k < len(ranges) and ranges[k][2] + ranges[k][3] <= row:
                k += 1
            if k < len(ranges) and ranges[k][2] <= row:
                path, ident, _, _, _, status = ranges[k]
                if cur is None or cur[0] != path:
                    close_entry()
                    out = layout.mirror_path(path, base) if npy_dir else ""
                    cur = [path, ident, sink.rows, 0, out, status]
                v = _value(values[i], reader.kind)
                mirror = _item_mirror(key, cur[4], path, base) if npy_dir else ""
                data = enc.encode(key, mirror, v)
                shape = tuple(np.shape(v)) if reader.kind != "keypoints" else (len(v), )
                sink.append(key, data, shape)
                cur[3] += 1
                since[0] += len(data) or _nbytes(v)
                since[1] += 1
            row += 1
    close_entry()
    sink.commit(state, pending)
    info = sink.info()
    info["rows"] = totals[1]
    info["inputs"] = totals[0] + empty
    return info


def _nbytes(v) -> int:
    if isinstance(v, np.ndarray):
        return v.nbytes
    return sum(np.asarray(x).nbytes for x in (getattr(v, "points", None), getattr(v, "descriptors", None))
               if x is not None)


def _sidecar(reader: OutputReader, src: str, sink: sinks.Sink, info: dict, argv: list[str] | None) -> dict:
    """The new output's record: the source's extraction record (extractor, parameters,
    options, inputs, failures, versions that made the numbers) with the new output, and
    ``converted_from``: where from, when, with which featx, and the source's own record."""
    from ..names import utf8_text

    orig = reader.sidecar if reader.sidecar is not None else load_sidecar(src)
    doc: dict[str, Any] = dict(orig) if isinstance(orig, dict) else {
        "featx_sidecar": 1, "status": "complete", "complete": True,
        "extractor": {"name": ((reader.config or {}).get("extractor") or {}).get("name")}}
    doc["output"] = {k: v for k, v in info.items() if k in ("path", "format", "shape", "files", "index")}
    if sink.format == "npy":
        doc["output"]["index"] = sink.index_path
    if isinstance(doc.get("options"), dict):
        doc["options"] = dict(doc["options"], format=sink.format, output=sink.output)
    command = [utf8_text(str(a)) for a in (argv if argv is not None else sys.argv)]
    doc["converted_from"] = {"path": os.path.abspath(reader.output), "format": reader.format,
                             "rows": info.get("rows"), "finished": provenance.now(), "command": command,
                             "versions": provenance.library_versions(),
                             "record": orig if isinstance(orig, dict) else None}
    return doc
