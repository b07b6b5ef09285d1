"""One output of a run: its sink, lock, state and commit protocol in one object.

The engine speaks to an :class:`Output` alone::

    out.open(wait, note)          # lock, continue or rebuild the earlier output, check its settings
    out.known(paths)              # what the state says of these inputs
    out.current(inp, ident, k)    # is this input's output there and up to date?
    out.append(inputs, records, payload)   # rows of a chunk, in input order
    out.tick(every)               # a background commit every few seconds
    out.finish(prune, note)       # the last commit, vanished inputs, compaction
    out.close()                   # unlock (always)

A run with several outputs (a recipe) has one :class:`Output` per output,
each with its own state, lock, sidecar and :class:`Summary`.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import FeatxError, LoudNote
from ..inputs import Input, vanished
from ..names import quote_name
from . import layout
from .atomic import OutputWriteError, disk_error, is_disk_error, sweep_tmp
from .commit import Committer
from .sinks import Sink
from .state import Entry, State, check_config, same


@dataclass
class Failure:
    path: str
    reason: str


#: How many distinct reasons (and rows of each) the failure reason of one input lists.
ROW_ERRORS_LISTED = 20
ROWS_NAMED = 5


def row_errors(path: str, errors: list) -> str:
    """The failure reason of an input from the records of its rows that failed: the one
    reason as it is, or each distinct reason once (up to :data:`ROW_ERRORS_LISTED`) with
    the frames it hit (a box's reason names the box itself): a frame folder with a size
    change and then a junk frame reports both, five bad boxes of one image all five."""
    if len(errors) == 1:
        return errors[0].error
    groups: dict[str, list[str]] = {}
    for rec in errors:
        key = rec.key
        label = ""
        if "frame" in key and "x" not in key:
            fp = key.get("path")
            label = os.path.basename(fp) if fp and fp != path else f"frame {key['frame']}"
        groups.setdefault(rec.error, []).append(label)
    parts = []
    for why, labels in list(groups.items())[:ROW_ERRORS_LISTED]:
        named = [x for x in labels if x]
        if named:
            more = len(named) - ROWS_NAMED
            why = ", ".join(named[:ROWS_NAMED]) + (f" and {more} more" if more > 0 else "") + f": {why}"
        parts.append(why)
    more = len(groups) - len(parts)
    return (f"{len(errors)} rows failed: " + "; ".join(parts)
            + (f"; and {more} other reasons" if more > 0 else ""))


@dataclass
class Summary:
    """The outcome of a run for one output (also recorded in its sidecar)."""

    processed: int = 0                # inputs extracted and written this run
    rows: int = 0                     # rows written this run (frames, regions...)
    up_to_date: int = 0               # inputs skipped: already in the output, unchanged
    failed: list[Failure] = field(default_factory=list)
    partial: list[Failure] = field(default_factory=list)   # inputs with some rows written, then an error
    disappeared: list[str] = field(default_factory=list)   # in the output, no longer on disk
    removed: int = 0                  # of those, removed from the output (--prune)
    compacted_rows: int = 0
    skipped_non_images: int = 0
    skipped_videos: int = 0
    skipped_special: int = 0          # FIFOs, sockets, devices met in walked folders
    skipped_folder_links: int = 0     # links to folders in walked folders (not followed)
    interrupted: bool = False
    running: bool = False             # the run has started and not finished (the sidecar written first)
    error: FeatxError | None = None   # what stopped the run (disk full...), keeping what was committed
    resumed: bool = False
    rebuilt: str | None = None        # why the output was rebuilt from scratch (deleted, truncated...)
    seconds: float = 0.0
    output: dict[str, Any] = field(default_factory=dict)
    first_key: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        if self.running:
            return "running"
        if self.error is not None:
            return "failed"
        if self.interrupted:
            return "interrupted"
        return "complete" if not (self.failed or self.partial) else "complete-with-failures"

    def counts(self) -> dict[str, Any]:
        return {"processed": self.processed, "rows": self.rows, "up_to_date": self.up_to_date,
                "failed": len(self.failed), "partial": len(self.partial),
                "disappeared": len(self.disappeared), "removed": self.removed,
                "skipped_non_images": self.skipped_non_images, "skipped_videos": self.skipped_videos,
                "skipped_special": self.skipped_special, "skipped_folder_links": self.skipped_folder_links,
                "seconds": round(self.seconds, 3)}


class Output:
    """A sink with its lock, state and commits; see the module docstring.

    ``index`` is the output's place in the run (records of a chunk come as one
    list per output); ``config`` what determines its numbers (a continued output
    must match it); ``ref_base`` the folder the inputs' ``npy-dir`` mirror paths
    were computed against (this output's own base, if it is an ``npy-dir``, may
    differ: they are then rebased for it).
    """

    def __init__(self, sink: Sink, config: dict[str, Any], index: int = 0, name: str = "",
                 ignore: tuple[str, ...] = ()):
        self.sink, self.config, self.index, self.name = sink, config, index, name
        self.ignore = ignore   # parameters an older featx may have recorded that do not change numbers
        self.summary = Summary()
        self.lock = None
        self.state: State | None = None
        self.pending: list[Entry] = []
        self.committer = None
        self.last_commit = time.monotonic()
        self.ref_base: str | None = None
        self._committed: set[str] = set()   # in-flight inputs with rows from an earlier run
        self._recorded = [0, 0]             # inputs and rows of this run recorded in the state
        # inputs come from a list that names every one (a regions file): an earlier input this
        # run did not meet is gone if this says so (it is in the run's shard), existing or not
        self.unlisted_gone: Callable[[str], bool] | None = None

    # -- opening ------------------------------------------------------------
    @property
    def persistent(self) -> bool:
        return self.sink.persistent

    @property
    def base(self) -> str | None:
        """The folder this output's ``npy-dir`` mirror paths are relative to (None: not an npy-dir)."""
        return self.sink.mirror_base if self.sink.format == "npy-dir" else None

    def has_state(self) -> bool:
        return self.persistent and os.path.exists(self.sink.state_path or "")

    def check_folder(self) -> None:
        from ..errors import OutputError

        if not self.persistent:
            return
        parent = os.path.dirname(os.path.abspath(self.sink.output.rstrip("/" + os.sep)))
        if not os.path.isdir(parent):
            raise OutputError(f"output folder {parent} does not exist", "create it first")

    def open(self, wait_lock: float | None, note: Callable[[str], None]) -> None:
        """Lock the output, then continue it (resume, repair) or rebuild it, and check that
        it was made with the same settings.  A stream has nothing to open."""
        from .lock import OutputLock

        if not self.persistent:
            return
        self.check_folder()
        sink, summary = self.sink, self.summary
        self.lock = OutputLock(sink.lock_path)
        self.lock.acquire(wait_lock, on_wait=lambda h: note(
            f"waiting for the run holding {sink.output} (pid {h.get('pid', '?')}, since {h.get('started', '?')})"),
            on_note=note)
        if self.lock.previous and self.lock.previous.get("pid"):
            note(f"the previous run on {self._said()} (pid {self.lock.previous['pid']}, "
                 f"started {self.lock.previous.get('started', '?')}) did not finish; resuming it")
            summary.resumed = True
        existing = sink.prepare()
        self.state = State(sink.state_path)
        self.state.recover_renames()
        self._remove_leftovers(deep=summary.resumed)
        if existing and self.state.get("config") is None and sink.exists():
            # a state that never recorded settings (made by hand, or by another program)
            # cannot vouch for the output beside it: refused like a missing one
            from ..errors import OutputError

            raise OutputError(f"{sink.output} already exists and its state file {sink.state_path} records "
                              "no settings", "pass --overwrite to replace it, or choose another -o")
        why = sink.damage(self.state) if existing else None
        if why:
            note(LoudNote(f"{why}: rebuilding it from scratch"))
            summary.rebuilt = why
            self.state.reset()
            sink.discard()
        if existing and not why:  # (rebuilt from scratch: nothing made with the old settings is left)
            try:
                check_config(self.state, self.config, sink.output, ignore=self.ignore)
            except FeatxError as exc:
                if not self.name:
                    raise
                raise type(exc)(exc.message, "--overwrite would start every output of the run afresh; to redo "
                                             "this one alone, delete its files (or give it another path)") from None
        if self.state.get("config") != self.config:
            self.state.set_meta(config=self.config)

    def _said(self) -> str:
        return "this output" if not self.name else self.sink.output

    def spool_prefix(self) -> str:
        name = os.path.basename(self.sink.output.rstrip("/" + os.sep)) if self.persistent else "stream"
        return f".{name}.featx-spool-"

    def _remove_leftovers(self, deep: bool = False) -> None:
        """Spool folders and temporary files a killed run left (we hold the lock now);
        with ``deep`` (the last run did not finish), also the temporary files of dead
        workers inside an ``npy-dir`` output."""
        sink = self.sink
        out = sink.output.rstrip("/" + os.sep)
        folder = os.path.dirname(os.path.abspath(out))
        names = sink.paths() + [sink.sidecar_path]
        prefixes = (self.spool_prefix(),) + tuple(f".{os.path.basename(p)}.featx-tmp-" for p in names if p)
        for name in os.listdir(folder):
            if name.startswith(prefixes):
                path = os.path.join(folder, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
        if deep and sink.format == "npy-dir" and os.path.isdir(out):
            sweep_tmp(out, recursive=True)

    # -- deciding -----------------------------------------------------------
    def known(self, paths: list[str]) -> dict:
        return self.state.lookup_many(paths) if self.state is not None else {}

    def view(self, inp: Input) -> Input:
        """``inp`` with its mirror paths under this output (they were made for ``ref_base``)."""
        base = self.base
        if base is None or base == self.ref_base or not inp.mirror:
            return inp
        old = self.ref_base
        return replace(inp, mirror=layout.rebase_mirror(inp.mirror, old, base),
                       mirrors=tuple(layout.rebase_mirror(m, old, base) for m in inp.mirrors)
                       if inp.mirrors else inp.mirrors)

    def current(self, inp: Input, ident, k, use_hash: bool) -> bool:
        """Is ``inp`` (state entry ``k``) in this output, unchanged and still there?  If it is
        not, get ready to redo it (a changed video's old frame files go first)."""
        sink = self.sink
        npy_dir = sink.format == "npy-dir"
        pooled = bool(self.config.get("options", {}).get("pool"))   # rows pooled during extraction
        if k is not None and same(k.ident, ident, use_hash) and k.status != "failed" and (
                not npy_dir or (sink.present(k.out, k.nrows, deep=True) if pooled else
                                sink.present(k.out, k.nrows, layout.expected_mirrors(self.view(inp))))):
            self.summary.up_to_date += 1
            return True
        if k is not None and npy_dir and k.nrows and (inp.kind in ("video", "frames") or inp.boxes is not None
                                                      or pooled):
            # a changed video, frame folder or set of boxes may give fewer or other files
            # than last time: its old ones go first (an image's one file is replaced anyway)
            sink.forget_outputs([k.out])
        if k is not None and k.nrows > 0:
            self._committed.add(inp.path)
        return False

    # -- appending ----------------------------------------------------------
    def append(self, chunk_inputs, per_input, payload, failures: list) -> None:
        """The rows of one chunk (``per_input``: this output's records of each input; an
        input this output did not ask for has none) from ``payload`` (a spool file's
        path, or the bytes).  Failed inputs are added to ``failures`` as (index, Failure)."""
        sink, summary, pending = self.sink, self.summary, self.pending
        fh = open(payload, "rb") if isinstance(payload, str) else None
        try:
            offset = 0
            for inp, records in zip(chunk_inputs, per_input):
                if inp.wants is not None and self.index not in inp.wants:
                    continue
                row0 = sink.rows
                errors = []
                for rec in records:
                    if rec.error is not None:
                        errors.append(rec)
                        continue
                    data = fh.read(rec.nbytes) if fh is not None else payload[offset:offset + rec.nbytes]
                    offset += rec.nbytes
                    why = sink.check_width(rec.key, rec.shape, summary.first_key)
                    if why is not None:  # this input does not fit the output; the others still do
                        errors.append(type(rec)(rec.key, error=f"{why}: pass --resize WxH so every image "
                                                               "gives the same length, or use --format npy-dir"))
                        continue
                    if summary.first_key is None:
                        summary.first_key = dict(rec.key)
                    sink.append(rec.key, data, rec.shape)
                nrows = sink.rows - row0
                summary.rows += nrows
                mirror = self.view(inp).mirror
                committed = inp.path in self._committed
                self._committed.discard(inp.path)
                f = None
                if errors and nrows == 0:
                    f = Failure(inp.path, row_errors(inp.path, errors))
                    summary.failed.append(f)
                    if committed:  # a changed input that now fails: its old rows must not stay as if current
                        pending.append(Entry(inp.path, None, 0, 0, None, "failed"))
                        sink.forget_outputs([mirror])
                else:
                    status = "ok"
                    if errors:
                        status = "partial"
                        f = Failure(inp.path, "partial: " + row_errors(inp.path, errors))
                        summary.partial.append(f)
                    summary.processed += 1
                    pending.append(Entry(inp.path, inp.ident, row0, nrows, mirror, status))
                if f is not None:
                    failures.append((self.index, f))
        finally:
            if fh is not None:
                fh.close()
                os.unlink(payload)

    # -- committing ---------------------------------------------------------
    def start(self) -> None:
        self.sink.open(self.state)
        self.committer = Committer(self.sink, self.state)
        self.committer.on_recorded = self._count_recorded
        self.last_commit = time.monotonic()

    def tick(self, every: float) -> None:
        """Record a finished background commit; start the next one when ``every`` seconds passed."""
        self.committer.poll()
        if time.monotonic() - self.last_commit >= every and self.committer.start(self.pending):
            self.pending = []
            self.last_commit = time.monotonic()

    def finish(self, prune: bool, note: Callable[[str], None]) -> None:
        """The last commit; then, for a run that went to its end, vanished inputs,
        ``prune`` and compaction.  A failed write ends in ``summary.error``."""
        summary, sink, state = self.summary, self.sink, self.state
        try:
            self.committer.drain()
            # else everything appended is committed already: no fsync to pay; and after a failed
            # write nothing past the last commit may be recorded
            if (self.pending or sink.created) and sink.broken is None:
                sink.commit(state, self.pending)
                self._count_recorded(self.pending)
            self.pending = []
            if state is not None and not summary.interrupted and summary.error is None:
                self._finish_state(prune, note)
        except OutputWriteError as exc:
            summary.error = summary.error or exc

    def _count_recorded(self, entries: list[Entry]) -> None:
        done = [e for e in entries if e.status != "failed"]
        self._recorded[0] += len(done)
        self._recorded[1] += sum(e.nrows for e in done)

    def _finish_state(self, prune: bool, note: Callable[[str], None]) -> None:
        """End of a complete run: find vanished inputs, prune if asked, compact."""
        state, sink, summary = self.state, self.sink, self.summary
        listed = self.unlisted_gone
        gone = [(p, out) for p, out in state.unseen() if (listed(p) if listed is not None else vanished(p))]
        summary.disappeared = [p for p, _ in gone]
        if gone and prune:
            sink.forget_outputs([out for _, out in gone])
            state.forget([p for p, _ in gone])
            summary.removed = len(gone)
        elif gone:
            where = f" of {sink.output}" if self.name else ""
            what = "are no longer listed" if listed is not None else "no longer exist"
            note(f"{len(gone)} input(s) in the output{where} {what} (e.g. {quote_name(gone[0][0])}); "
                 "--prune removes them from the output")
        summary.partial.extend(Failure(p, "partial: some rows written, then an error")
                               for p in state.partial() if p not in {f.path for f in summary.partial})
        summary.compacted_rows = sink.compact(state)

    def write_error(self, exc: BaseException) -> OutputWriteError | None:
        """The :class:`OutputWriteError` that ``exc`` means (a full disk, an I/O error
        writing the output or its state), or None if it is something else."""
        import sqlite3

        sink = self.sink
        if is_disk_error(exc):
            return disk_error(sink.output, exc)
        folder = sink.output if sink.format == "npy-dir" else os.path.dirname(sink.output)
        if sink.persistent and isinstance(exc, (OSError, sqlite3.Error)) and not os.path.isdir(folder):
            return OutputWriteError(f"the output folder {folder} was removed during the run",
                                    "run the same command again to rebuild the output")
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
            return OutputWriteError(f"cannot write {sink.state_path}: {exc} (removed or made read-only "
                                    "during the run?)", "run the same command again to finish")
        if isinstance(exc, sqlite3.OperationalError) and ("full" in str(exc) or "I/O" in str(exc)):
            return OutputWriteError(f"cannot write {sink.state_path}: {exc}",
                                    "what was committed is kept; free space and run the same command again "
                                    "to finish")
        return None

    def wind_down(self, stopped: bool) -> None:
        """After the run (whatever happened): stop the commit thread, close the sink, remove
        a new output that never reached a commit, and the files of workers stopped mid-write."""
        sink, summary = self.sink, self.summary
        if self.committer is not None:
            self.committer.close()
        if summary.error is not None and self.state is not None:
            # a failed write (a full disk): what was appended after the last commit is not in the
            # output; the summary and the sidecar count only what was committed
            summary.processed, summary.rows = self._recorded
        sink.close()
        if sink.abandon():  # a new output that never reached a commit leaves nothing behind
            summary.output = {"path": sink.output, "format": sink.format, "shape": None}
        if sink.format == "npy-dir" and (summary.interrupted or summary.error or stopped):
            sweep_tmp(sink.output, recursive=True)
        sink.close()
        summary.output = summary.output or sink.info()

    def close(self) -> None:
        """Release the state and the lock (always, whatever happened)."""
        if self.state is not None:
            self.state.close()
            self.state = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
