"""The worker: decode, resize, extract and encode inputs.

A worker is built once per process (or once in-process for ``-j 1``) from a
frozen, picklable :class:`Job`; it gets inputs (paths), not pixels, writes
the encoded rows through a ``write`` callable (a spool file per chunk) and
hands back only small :class:`Record` s.

An output that pools during extraction (its task's ``pool``: ``--pool-over``) feeds
each row to a :class:`~featx.pooling.Pooler` of its input instead of encoding it
(every row of an input passes through one worker, in order), and encodes the pooled
rows as their units and windows close or the input ends: its records are the pooled
rows (and the rows that failed), never a row per frame.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import imageops, registry
from ..inputs import Input
from ..items import Item, load
from ..errors import FeatxError, InputError, WorkerStartError
from ..extractor import Extractor, Keypoints
from ..memory import MemoryBudget
from ..output.atomic import OutputWriteError
from ..output import layout
from ..output.sinks import Encoder
from .process import setup_worker_process

DEFAULT_MAX_PIXELS = 178_956_970  # about 13,400 x 13,400: decompression-bomb guard


@dataclass(frozen=True)
class Task:
    """What a worker computes for one output of the run, frozen and picklable."""

    target: str                       # "module:Class" of the extractor
    params: dict[str, Any]
    resize: tuple[int, int] | None = None   # (width, height)
    resize_mode: str = "stretch"
    encoder: Encoder | None = None
    mirror_base: str | None = None    # an npy-dir output's folder for mirror paths (None: not npy-dir)
    min_size: tuple[int, int] | None = None  # fewest pixels it needs from a JPEG decoder (None: all)
    describe: bool = False            # compute the local descriptors codebooks are learnt from, not extract
    pool: Any = None                  # a featx.pooling.PoolSpec: each input's rows pooled (None: written as they are)
    source_keys: tuple[str, ...] = ("path",)   # the key columns of the rows extracted (what pooling reads)


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, frozen and picklable: the outputs' tasks and how to read."""

    tasks: tuple[Task, ...]
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_memory: int | None = None     # bytes one input may cost a worker (None: no limit)
    source_options: dict[str, Any] = field(default_factory=dict)
    ref_base: str | None = None       # the folder the inputs' mirror paths were made against
    decode_threads: int | None = 1    # FFmpeg threads per video (1: the workers share the cores; None: OpenCV's default)
    lenient_decode: bool = False      # accept pictures whose decoder reported damaged data


@dataclass
class Record:
    """One item's outcome: key, output shape and byte count, or an error."""

    key: dict[str, Any]
    shape: tuple | None = None
    nbytes: int = 0
    error: str | None = None


# ---------------------------------------------------------------------------
# worker side


def build_extractors(job: Job, building: Callable[[int], None] | None = None) -> list[Extractor]:
    """The extractors of ``job``'s tasks, built from their frozen parameters;
    ``building(k)`` is called as the build of task ``k``'s starts."""
    out = []
    for k, t in enumerate(job.tasks):
        if building is not None:
            building(k)
        out.append(registry.load_target(t.target).create(**t.params))
    return out


class Worker:
    """Decode each input once and hand it to every output that needs it: resize,
    extract and encode per output.

    ``run`` returns the records as ``out[k][i]``: output ``k``'s records of input
    ``i`` (none when output ``k`` did not ask for input ``i``), and writes output
    ``k``'s encoded rows through ``writers[k]`` in input order.
    """

    def __init__(self, job: Job, extractors: list[Extractor] | None = None):
        self.job = job
        if extractors is None:
            extractors = build_extractors(job)
        self.extractors: list[Extractor] = list(extractors)
        self.memory = None if not job.max_memory else MemoryBudget.for_extractors(
            job.max_memory, [(e, t.resize) for e, t in zip(self.extractors, job.tasks)])
        # outputs fed in batches (an inference engine); the first one with a stream overlaps
        # the decoding of the next batch with the inference of this one
        self.batched = [k for k, e in enumerate(self.extractors)
                        if e.batch_size > 1 and not e.temporal and not e.handles_resize and not job.tasks[k].describe]
        self.lead = next((k for k in self.batched if self.extractors[k].streams_batches), None)
        self._inputs: list[Input] = []
        self._pooling: dict[int, tuple[int, Any]] = {}
        self.tick: Callable[[], None] = _nothing   # called once per item loaded (progress)
        # asked between a video's frames: may it decode on a thread of its own, a few frames
        # ahead (a core would idle otherwise)?  See featx.video.iter_video.
        self.ahead: bool | Callable[[], bool] = False
        self.starting: Callable[[int], None] = _starting   # called with i as input i of a chunk starts

    @property
    def extractor(self) -> Extractor:
        """The extractor of a one-output run."""
        return self.extractors[0]

    def prepare(self, k: int, image: np.ndarray) -> np.ndarray:
        task = self.job.tasks[k]
        if task.resize is not None and not self.extractors[k].handles_resize:
            image = imageops.resize(image, task.resize[0], task.resize[1], task.resize_mode)
        return image

    def compute(self, k: int, image: np.ndarray) -> Any:
        ext, task = self.extractors[k], self.job.tasks[k]
        if task.describe:
            from ..codebook import local_descriptors

            return local_descriptors(ext, self.prepare(k, image))
        if ext.handles_resize:  # results in the decoded image's pixels (detectors' boxes)
            return ext.extract_resized(image, task.resize, task.resize_mode)
        return ext.extract(self.prepare(k, image))

    def _prepared(self, k: int, item: Item) -> Item:
        """``item`` brought to output ``k``'s working input at once (resized, then its
        :meth:`~featx.extractor.Extractor.preprocess`: a network's input tensor), so that
        what waits for a batch is small, not the photo."""
        return Item(item.key, self.extractors[k].preprocess(self.prepare(k, item.image)), item.mirror)

    def mirror(self, k: int, item: Item) -> str:
        base = self.job.tasks[k].mirror_base
        if base is None or base == self.job.ref_base or not item.mirror:
            return item.mirror
        return layout.rebase_mirror(item.mirror, self.job.ref_base, base)

    def emit(self, k: int, item: Item, value: Any, write: Callable[[bytes], None]) -> Record | None:
        """Encode one result of output ``k`` (None: a temporal extractor's "no row")."""
        if value is None:
            return None
        if not isinstance(value, Keypoints):
            value = np.ascontiguousarray(value, dtype=np.float32)
        data = self.job.tasks[k].encoder.encode(item.key, self.mirror(k, item), value)
        if data:
            write(data)
        if isinstance(value, Keypoints):
            shape = (len(value), value.descriptors.shape[1] if value.descriptors.ndim == 2 else 0)
        else:
            shape = tuple(value.shape)
        return Record(item.key, shape=shape, nbytes=len(data))

    def _one(self, k: int, i: int, item: Item, write, out) -> None:
        """Output ``k``'s row of one item (input ``i``); its failure is this item's and output's alone."""
        try:
            value = self.compute(k, item.image)
        except FeatxError as exc:
            out[k][i].append(Record(item.key, error=exc.message))
            return
        except Exception as exc:  # isolate the item, keep going
            out[k][i].append(Record(item.key, error=f"{type(exc).__name__}: {exc}"))
            return
        self._put(k, i, item, value, write, out)

    def _put(self, k: int, i: int, item: Item, value: Any, write, out) -> None:
        """One computed result of output ``k`` for input ``i``: encoded and written, or, for an
        output that pools, fed to the input's :class:`~featx.pooling.Pooler` (whose rows are
        written as their units close)."""
        if self.job.tasks[k].pool is not None:
            self._feed(k, i, item, value, write, out)
            return
        try:
            rec = self.emit(k, item, value, write)
        except OutputWriteError:
            raise
        except FeatxError as exc:  # e.g. a link inside an npy-dir output: this input only
            rec = Record(item.key, error=exc.message)
        if rec is not None:
            out[k][i].append(rec)

    # -- pooling during extraction ------------------------------------------
    def _feed(self, k: int, i: int, item: Item, value: Any, write, out) -> None:
        """Pool one row of output ``k``: every row of an input goes to one Pooler (an input's
        rows all pass through this worker, in order), made at its first row with that row's
        length; the input's pooled rows are written when it ends (or as windows close)."""
        from ..pooling import Pooler   # (not at start-up: only runs that pool need it)
        from ..runopts import pool_words

        if value is None:   # a temporal extractor's "no row"
            return
        open_ = self._pooling.get(k)
        if open_ is not None and open_[0] != i:
            self._close_pool(k, write, out)
            open_ = None
        if isinstance(value, Keypoints):
            out[k][i].append(Record(item.key, error="keypoints cannot be pooled"))
            return
        vec = np.ascontiguousarray(value, dtype=np.float32)
        if vec.ndim != 1:
            out[k][i].append(Record(item.key, error=f"value of shape {vec.shape} is not a vector"))
            return
        task = self.job.tasks[k]
        if open_ is None:
            open_ = self._pooling[k] = (i, Pooler(task.pool, task.source_keys, vec.shape[0]))
        pooler = open_[1]
        if vec.shape[0] != pooler.width:
            out[k][i].append(Record(item.key, error=f"a row of {vec.shape[0]} values, not {pooler.width} as the "
                                                    "input's first: pass --resize WxH so every frame gives the "
                                                    "same length"))
            return
        key = dict(item.key)
        key["path"] = self._inputs[i].path   # a frame folder's frames are pooled as the folder
        try:
            pooled = pooler.feed(key, vec)
        except FeatxError as exc:   # (rows with no time for a window in seconds)
            out[k][i].append(Record(item.key, error=pool_words(exc).message))
            return
        self._write_pooled(k, i, pooled, write, out)

    def _close_pool(self, k: int, write, out) -> None:
        """The end of output ``k``'s open input: its units still open, pooled and written."""
        i, pooler = self._pooling.pop(k)
        try:
            pooled = pooler.finish()
        finally:
            pooler.close()
        self._write_pooled(k, i, pooled, write, out)

    def _write_pooled(self, k: int, i: int, pooled: list, write, out) -> None:
        if not pooled:
            return
        from ..pooling import unit_text

        task = self.job.tasks[k]
        inp = self._inputs[i]
        base = task.mirror_base
        mirror = inp.mirror
        if base is not None and base != self.job.ref_base and mirror:
            mirror = layout.rebase_mirror(mirror, self.job.ref_base, base)
        for p in pooled:
            if p.error is not None:   # (named as featx pool names it: "window 6: 2 rows: ...")
                out[k][i].append(Record(p.key, error=unit_text(p.key) + p.error))
                continue
            try:
                data = task.encoder.encode(p.key, layout.pooled_mirror(mirror, p.key) if base is not None else "",
                                           p.vector)
            except OutputWriteError:
                raise
            except FeatxError as exc:
                out[k][i].append(Record(p.key, error=exc.message))
                continue
            if data:
                write(data)
            out[k][i].append(Record(p.key, shape=tuple(p.vector.shape), nbytes=len(data)))

    def _end_pools(self, writers, out) -> None:
        """Every input still open at the end of a chunk (its last one) pooled and written."""
        for k in sorted(self._pooling):
            self._close_pool(k, writers[k], out)

    def _drop_pools(self) -> None:
        for _, pooler in self._pooling.values():
            pooler.close()
        self._pooling.clear()

    @staticmethod
    def _bad_item(item: Item) -> Record | None:
        if item.error is not None:
            return Record(item.key, error=item.error)
        if item.image.size == 0:
            return Record(item.key, error="empty region (the box lies outside the image)")
        return None

    @staticmethod
    def _failed_input(inp: Input, exc: Exception) -> Record:
        if isinstance(exc, InputError):
            return Record({"path": inp.path}, error=str(exc))
        return Record({"path": inp.path}, error=f"{type(exc).__name__}: {exc}")

    def run(self, inputs: list[Input], writers: list[Callable[[bytes], None]]) -> list[list[list[Record]]]:
        self._inputs = inputs
        self._pooling: dict[int, tuple[int, Any]] = {}   # output -> (input, its Pooler), while pooling
        try:
            out = self._run(inputs, writers)
            self._end_pools(writers, out)
            return out
        finally:
            self._drop_pools()
            self._inputs = []

    def _run(self, inputs: list[Input], writers: list[Callable[[bytes], None]]) -> list[list[list[Record]]]:
        n = len(self.extractors)
        out: list[list[list[Record]]] = [[[] for _ in inputs] for _ in range(n)]
        queues: dict[int, list[tuple[int, Item]]] = {k: [] for k in self.batched if k != self.lead}
        lead = self.lead
        lead_bs = self.extractors[lead].batch_size if lead is not None else 0
        queued: list[list[tuple[int, Item]]] = []   # the lead output's batches, in order

        def groups(inp: Input, wants) -> list[tuple[tuple[int, int] | None, list[int]]]:
            """The outputs of ``inp`` by the decode they need: an image (or frame folder) is
            decoded once for each distinct size its outputs need from the JPEG decoder, so
            each output gets exactly the pixels a run of its own would (videos and boxes:
            one full decode for all)."""
            sizes = {self.job.tasks[k].min_size for k in wants}
            if len(sizes) == 1 or inp.boxes is not None or inp.kind == "video":
                return [(sizes.pop() if len(sizes) == 1 else None, list(wants))]
            by: dict = {}
            for k in wants:
                by.setdefault(self.job.tasks[k].min_size, []).append(k)
            return list(by.items())

        def decoded():
            """Decode every input once (per needed size); run the unbatched outputs on each
            item, queue it for the batched ones (as their network inputs); yield the lead
            output's batches."""
            pending: list[tuple[int, Item]] = []
            for i, inp in enumerate(inputs):
                self.starting(i)
                wants = range(n) if inp.wants is None else inp.wants
                for k in wants:  # each input is a sequence of its own (flow, a tracker)
                    self.extractors[k].reset()
                for g, (min_size, ks) in enumerate(groups(inp, wants)):
                    loaded = 0
                    try:
                        for item in load(inp, self.job.max_pixels, self.memory, min_size, threads=self.job.decode_threads,
                                         ahead=self.ahead, lenient_decode=self.job.lenient_decode, **self.job.source_options):
                            if g == 0:
                                self.tick()
                            loaded += 1
                            bad = self._bad_item(item)
                            if bad is not None:
                                for k in ks:
                                    out[k][i].append(bad)
                                continue
                            for k in ks:
                                if k == lead:
                                    pending.append((i, self._prepared(k, item)))
                                    if len(pending) >= lead_bs:
                                        queued.append(pending)
                                        yield [it.image for _, it in pending]
                                        pending = []
                                elif k in queues:
                                    queues[k].append((i, self._prepared(k, item)))
                                    if len(queues[k]) >= self.extractors[k].batch_size:
                                        self._flush(k, queues[k], out, writers[k])
                                else:
                                    self._one(k, i, item, writers[k], out)
                    except OutputWriteError:
                        raise
                    except Exception as exc:  # the whole input fails (for a video: after its good frames)
                        rec = self._failed_input(inp, exc)
                        for k in ks:
                            out[k][i].append(rec)
                        if not loaded and g == 0:
                            self.tick()  # it is done with, too
            for k, q in queues.items():
                self._flush(k, q, out, writers[k])
            if pending:
                queued.append(pending)
                yield [it.image for _, it in pending]

        if lead is None:
            for _ in decoded():  # pragma: no cover - nothing is yielded without a lead output
                pass
            return out
        ext = self.extractors[lead]
        gen = decoded()
        try:
            for values in ext.extract_stream(gen):
                batch = queued.pop(0)
                for (i, item), value in zip(batch, values):
                    self._put(lead, i, item, value, writers[lead], out)
        except OutputWriteError:
            raise
        except Exception as exc:  # a batch failed: redo its items one by one to find the culprit,
            for batch in queued:  # then go on with the inputs not decoded yet, one by one too
                self._one_by_one(lead, batch, out, writers[lead], exc)
            queued.clear()
            for _ in gen:
                self._one_by_one(lead, queued.pop(0), out, writers[lead], exc)
        return out

    def _flush(self, k: int, queue: list[tuple[int, Item]], out, write) -> None:
        """Run output ``k``'s queued batch (synchronously)."""
        if not queue:
            return
        try:
            values = self.extractors[k].extract_batch([it.image for _, it in queue])
        except Exception as exc:
            self._one_by_one(k, queue, out, write, exc)
        else:
            for (i, item), value in zip(queue, values):
                self._put(k, i, item, value, write, out)
        queue.clear()

    def _one_by_one(self, k: int, batch, out, write, exc: Exception) -> None:
        for i, item in batch:
            try:
                value = self.extractors[k].extract_batch([item.image])[0]
            except Exception as e:
                out[k][i].append(Record(item.key, error=(e.message if isinstance(e, FeatxError)
                                                         else f"{type(e).__name__}: {e}") or str(exc)))
                continue
            self._put(k, i, item, value, write, out)

    def run_to_spool(self, inputs: list[Input], spool: str) -> tuple[list, list[str]]:
        """Run ``inputs``, output ``k``'s rows going to the file ``spool.k``."""
        from ..output.atomic import disk_error, is_disk_error

        where = f"the workers' spool in {os.path.dirname(spool)}"

        def guarded(write):
            def w(data: bytes) -> None:
                try:
                    write(data)
                except OSError as exc:  # a full disk is the run's error, never this input's
                    if is_disk_error(exc):
                        raise disk_error(where, exc) from None
                    raise
            return w

        paths = [f"{spool}.{k}" for k in range(len(self.extractors))]
        handles = [open(p, "wb") for p in paths]
        try:
            recs = self.run(inputs, [guarded(h.write) for h in handles])
            for h in handles:
                guarded(lambda _: h.flush())(b"")
            return recs, paths
        finally:
            for h in handles:
                try:
                    h.close()
                except OSError:
                    pass  # (a flush that failed is raised above)

    def run_to_bytes(self, inputs: list[Input]) -> tuple[list, list[bytes]]:
        parts: list[list[bytes]] = [[] for _ in self.extractors]
        recs = self.run(inputs, [p.append for p in parts])
        return recs, [p[0] if len(p) == 1 else b"".join(p) for p in parts]


def _nothing() -> None:
    pass


def _starting(i: int) -> None:
    pass


_WORKER: Worker | None = None
#: why this worker could not start (its extractors did not build): raised by every chunk it gets
_START_ERROR: WorkerStartError | None = None

# A pool's start-up table (:func:`startup_table`), shared with its workers: where each worker
# is in its start, so that the main process, when a worker dies, can tell a worker that died
# before it took any input (its extractor does not build in a worker: the run's error) from
# one that died on an input (that input's failure).
#: the phases of a worker's start, as it writes them into its row of the table
STARTING, BUILDING, READY, WORKING, FAILED = 1, 2, 3, 4, 5
_ROW = 3                     # per worker: phase, the task whose extractor it builds, pid
_MY_ROW: tuple | None = None  # (table, offset) of this worker's row


def startup_table(workers: int, ctx):
    """A start-up table for a pool of ``workers`` processes started by the multiprocessing
    context ``ctx`` (its lock must be of theirs): a shared array of ints, the next free row
    first, then one row per worker (phase, task being built, pid)."""
    return ctx.Array("i", 1 + _ROW * (workers + 1))


def startup_rows(table) -> list[tuple[int, int, int]]:
    """(phase, task, pid) of every worker that has started (a snapshot, read without the
    table's lock: a worker killed while it held it would hold it for ever)."""
    raw = table.get_obj()[:]
    n = min(raw[0], (len(raw) - 1) // _ROW)
    return [tuple(raw[1 + _ROW * w:1 + _ROW * (w + 1)]) for w in range(n)]


def _enter(table) -> None:
    """Take a row of the start-up table and say this worker is starting."""
    global _MY_ROW
    _MY_ROW = None
    if table is None:
        return
    raw = table.get_obj()
    with table.get_lock():   # (only to take a row: the row is then this worker's alone)
        w = raw[0]
        if 1 + _ROW * (w + 1) > len(raw):
            return   # (more workers than rows: never, a pool restarts rather than replace one)
        raw[0] = w + 1
    off = 1 + _ROW * w
    raw[off + 2] = os.getpid()
    raw[off] = STARTING
    _MY_ROW = (raw, off)


def _phase(phase: int, task: int = 0) -> None:
    if _MY_ROW is not None:
        raw, off = _MY_ROW
        raw[off + 1] = task
        raw[off] = phase


def _first_line(exc: BaseException) -> str:
    """``Type: message`` of an exception (its message's first line; a FeatxError's message)."""
    if isinstance(exc, FeatxError):
        text = exc.message
    else:
        text = str(exc).strip()
        text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return (text.splitlines() or [type(exc).__name__])[0]


def task_name(job: Job, k: int) -> str:
    """The name of task ``k``'s extractor (its target where its class cannot be loaded)."""
    try:
        return getattr(registry.load_target(job.tasks[k].target), "name", None) or job.tasks[k].target
    except Exception:   # noqa: BLE001 - only a name for a message
        return job.tasks[k].target


def build_hint(name: str) -> str:
    """What to try when extractor ``name`` built in featx's own process but not in a worker."""
    return (f"{name} builds in featx's own process but not in a fresh worker process, so it may need "
            "something only that process has (a file, an environment variable, a device, a library set "
            "up there); -j 1 without --timeout runs it in featx's own process")


def start_error(job: Job, task: int | None, exc: BaseException) -> WorkerStartError:
    """The run's error for a worker whose start raised ``exc`` (while building task
    ``task``'s extractor, or None: before or after the builds)."""
    if task is None:
        return WorkerStartError(f"the worker processes could not start: {_first_line(exc)}",
                                "-j 1 without --timeout runs without worker processes")
    name = task_name(job, task)
    hint = exc.hint if isinstance(exc, FeatxError) and exc.hint else build_hint(name)
    return WorkerStartError(f"the workers could not build extractor '{name}': {_first_line(exc)}", hint)


def init_worker(job: Job, main: tuple[int, int | None] | None = None, counter=None, beats=None,
                inflight=None, extractors: list[Extractor] | None = None, startup=None) -> None:
    """A pool worker's start.  ``main``: the featx main process (``lifeline.identity()``,
    passed explicitly: with a forkserver start the parent is the fork server); ``counter``:
    a shared ``multiprocessing.Value`` counting the items loaded (the progress bar);
    ``beats``: a shared array of doubles, one per chunk slot (see :func:`run_chunk`);
    ``inflight``: ``(busy, cores)``, a shared array of bytes, one per chunk slot, 1 while
    the slot's chunk is handed out and not finished (the worker clears it as it ends the
    chunk), and the cores the pool may use: while fewer chunks than cores are in flight a
    core idles, and a video decodes on a thread of its own, a few frames ahead of its
    extraction.
    ``extractors``: the job's, already built (a forked worker's copies of its parent's),
    else built here from ``job``.  ``startup``: the pool's start-up table
    (:func:`startup_table`), where this worker notes how far its start went.

    A start that raises (an extractor that does not build here) leaves the worker without
    a :class:`Worker`: every chunk it is given raises the :class:`WorkerStartError` that says
    why, the run's error (not a failed input)."""
    global _WORKER, _START_ERROR, _WORKING
    _WORKER, _START_ERROR, _WORKING = None, None, False
    _enter(startup)
    task = None
    try:
        import signal

        from ..output import lock
        from . import lifeline

        lifeline.die_with(main)  # never outlive the run, however its main process ends
        lock.drop_inherited()    # never hold the output's lock (a fork shares the flock)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides about interrupts
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        setup_worker_process()
        if extractors is None:
            def building(k: int) -> None:
                nonlocal task
                task = k
                _phase(BUILDING, k)
            extractors = build_extractors(job, building)
            task = None
        worker = Worker(job, extractors)
    except BaseException as exc:   # (SystemExit too: a constructor that calls sys.exit)
        err = start_error(job, task, exc)
        err.__cause__ = exc   # (its traceback goes with it: `featx --traceback` shows it)
        _START_ERROR = err
        _phase(FAILED, task or 0)
        return
    _WORKER = worker
    if counter is not None:
        def tick():
            with counter.get_lock():
                counter.value += 1
        _WORKER.tick = tick
    global _BEATS, _BUSY
    _BEATS = beats
    if inflight is not None:
        _BUSY = busy = inflight[0]
        # (an output that streams its batches, cnn, already decodes on a thread of its own
        # while its network runs: a third thread would only take turns with them)
        _WORKER.ahead = _ahead(busy, inflight[1], _WORKER.memory) if _WORKER.lead is None else False
    _phase(READY)


_BEATS = None
_BUSY = None
_WORKING = False


def _ahead(busy, cores: int, memory: MemoryBudget | None) -> Callable:
    """A worker's answer to :func:`featx.video.iter_video`'s ``ahead``: decode its video on
    a thread of its own when fewer chunks than ``cores`` are in flight (a core idles) and
    the frames that thread holds (``AHEAD + 1``) fit the memory budget of an input beside
    what the frame costs anyway."""
    from ..videoahead import AHEAD

    fits: dict[tuple, bool] = {}

    def ahead(last) -> bool:
        if sum(busy) >= cores or last is None:
            return False
        if memory is None:
            return True
        img = last.image
        key = (img.shape, img.itemsize)
        if key not in fits:
            c = img.shape[2] if img.ndim == 3 else 1
            fits[key] = memory.cost(img.shape[1], img.shape[0], c, img.itemsize) + (AHEAD + 1) * img.nbytes \
                <= memory.limit
        return fits[key]
    return ahead


def run_chunk(inputs: list[Input], spool: str, slot: int | None = None) -> tuple[list, list[str]]:
    """Run one chunk in a pool worker.  With a ``slot``, the worker writes into the shared
    ``beats[slot]`` when each input starts (``CLOCK_MONOTONIC``, one clock for every
    process), so the main process times out an input, not the chunk, whose length has
    nothing to do with ``--timeout`` (a batched extractor's batch counts against the input
    that completed it), and clears ``busy[slot]`` as the chunk ends (see :func:`init_worker`).
    A worker whose start failed raises why (:class:`WorkerStartError`)."""
    if _START_ERROR is not None:
        raise _START_ERROR.with_traceback(None)
    global _WORKING
    if not _WORKING:   # from now on, a death of this worker is an input's
        _WORKING = True
        _phase(WORKING)
    if slot is not None and _BEATS is not None:
        beats = _BEATS

        def starting(i: int) -> None:
            beats[slot] = time.monotonic()
        _WORKER.starting = starting
    else:
        _WORKER.starting = _starting
    try:
        return _run_chunk(inputs, spool)
    finally:
        if _BUSY is not None and slot is not None:
            _BUSY[slot] = 0


def _run_chunk(inputs: list[Input], spool: str) -> tuple[list, list[str]]:
    trace = os.environ.get("FEATX_TRACE_CHUNKS")
    if not trace:
        return _WORKER.run_to_spool(inputs, spool)
    # how the work was split (benchmarks, tests): one line per chunk, "pid inputs cpu_s
    # start end" (process CPU seconds of the chunk; CLOCK_MONOTONIC, one clock for every
    # process), appended in one write
    t0, c0 = time.monotonic(), time.process_time()
    try:
        return _WORKER.run_to_spool(inputs, spool)
    finally:
        line = f"{os.getpid()} {len(inputs)} {time.process_time() - c0:.6f} {t0:.6f} {time.monotonic():.6f}\n"
        with open(trace, "a") as fh:
            fh.write(line)
