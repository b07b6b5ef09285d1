"""The pipeline: ordering, parallel execution, failures, state, commit.

Data flow for one run::

    main process                            worker process (or in-process, -j 1)
    ------------                            ------------------------------------
    enumerate Inputs, skip up-to-date ──chunks──▶ decode → resize → extract → encode
                                                  (encoded rows spooled to a file per chunk)
    append in input order  ◀──small records (keys, shapes, errors)──
    commit every few seconds (data durable, then the state transaction)

Workers are built once (the extractor is constructed in the worker's
initializer), get paths rather than pixels, and hand back only small records:
the encoded output goes through a spool file per chunk, so the main process
stays cheap and memory stays flat however long an input is.  Results are
identical and in the same order whatever ``jobs`` is.
"""
from __future__ import annotations

import itertools
import os
import shutil
import sys
import tempfile
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from . import imageops, memory, registry, sources
from .atomic import OutputWriteError, disk_error, is_disk_error, sweep_tmp
from .errors import FeatxError, InputError, OutputError, UsageError
from .extractor import Extractor, Keypoints, build_params, params_to_dict
from .memory import MemoryBudget
from .sinks import Encoder, Sink
from .state import Entry, State, check_config, identify, same


class NoInputs(UsageError):
    """The inputs named hold nothing to process (and no output exists yet)."""

DEFAULT_MAX_PIXELS = 178_956_970  # about 13,400 x 13,400: decompression-bomb guard


@dataclass(frozen=True)
class Job:
    """Everything a worker needs, frozen and picklable."""

    target: str                       # "module:Class" of the extractor
    params: dict[str, Any]
    resize: tuple[int, int] | None = None   # (width, height)
    resize_mode: str = "stretch"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    encoder: Encoder | None = None
    max_memory: int | None = None     # bytes one input may cost a worker (None: no limit)
    source_options: dict[str, Any] = field(default_factory=dict)
    exact_decode: bool = False        # decode in full even when the extractor needs fewer pixels


@dataclass(frozen=True)
class RunOptions:
    """How to run (none of these change the numbers)."""

    jobs: int = 1
    resize: tuple[int, int] | None = None
    resize_mode: str = "stretch"
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    max_memory: int | None = None     # bytes per worker for one input; None: half the RAM / jobs; 0: no limit
    chunk: int = 4                    # inputs per worker task
    use_hash: bool = False            # up-to-date by content hash, not just size + mtime
    prune: bool = False               # drop outputs of inputs that no longer exist
    wait_lock: float | None = 0.0     # 0: fail if locked; None: wait forever; else seconds
    timeout: float | None = None      # per input, seconds
    shard: tuple[int, int] | None = None   # (i, n), 1-based i
    commit_every: float = 2.0         # seconds between commits
    executor: str = "local"           # "local" (processes on this machine) or "ray"
    ray_address: str | None = None    # "auto", "ray://host:10001", ... (None: start a local Ray)
    source_options: dict[str, Any] = field(default_factory=dict)
    exact_decode: bool = False        # no reduced JPEG decoding (changes the numbers: see decode_mode)


@dataclass
class Record:
    """One item's outcome: key, output shape and byte count, or an error."""

    key: dict[str, Any]
    shape: tuple | None = None
    nbytes: int = 0
    error: str | None = None


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class Summary:
    """The outcome of a run (also recorded in the sidecar)."""

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


# ---------------------------------------------------------------------------
# worker side


class _Worker:
    """Decode, resize, extract and encode inputs with one extractor instance."""

    def __init__(self, job: Job, extractor: Extractor | None = None):
        self.job = job
        if extractor is None:
            cls = registry.load_target(job.target)
            extractor = cls(build_params(cls, job.params))
        self.extractor: Extractor = extractor
        self.memory = None if not job.max_memory else \
            MemoryBudget.for_extractor(job.max_memory, extractor, job.resize)
        self.min_size = None if job.exact_decode else extractor.decode_size(job.resize, job.resize_mode)

    def prepare(self, image: np.ndarray) -> np.ndarray:
        job = self.job
        if job.resize is not None and not self.extractor.handles_resize:
            image = imageops.resize(image, job.resize[0], job.resize[1], job.resize_mode)
        return image

    def compute(self, image: np.ndarray) -> Any:
        if self.extractor.handles_resize:  # results in the decoded image's pixels (detectors' boxes)
            return self.extractor.extract_resized(image, self.job.resize, self.job.resize_mode)
        return self.extractor.extract(self.prepare(image))

    def emit(self, item: sources.Item, value: Any, write: Callable[[bytes], None]) -> Record | None:
        """Encode one result (None: a temporal extractor's "no row")."""
        if value is None:
            return None
        if not isinstance(value, Keypoints):
            value = np.ascontiguousarray(value, dtype=np.float32)
        data = self.job.encoder.encode(item.key, item.mirror, value)
        if data:
            write(data)
        if isinstance(value, Keypoints):
            shape = (len(value), value.descriptors.shape[1] if value.descriptors.ndim == 2 else 0)
        else:
            shape = tuple(value.shape)
        return Record(item.key, shape=shape, nbytes=len(data))

    @staticmethod
    def _bad_item(item: sources.Item) -> Record | None:
        if item.error is not None:
            return Record(item.key, error=item.error)
        if item.image.size == 0:
            return Record(item.key, error="empty region (the box lies outside the image)")
        return None

    def run_one(self, inp: sources.Input, write: Callable[[bytes], None]) -> list[Record]:
        recs: list[Record] = []
        if self.extractor.temporal:
            self.extractor.reset()
        try:
            for item in sources.load(inp, self.job.max_pixels, self.memory, self.min_size, **self.job.source_options):
                bad = self._bad_item(item)
                if bad is not None:
                    recs.append(bad)
                    continue
                try:
                    value = self.compute(item.image)
                except FeatxError as exc:
                    recs.append(Record(item.key, error=exc.message))
                    continue
                except Exception as exc:  # isolate the item, keep going
                    recs.append(Record(item.key, error=f"{type(exc).__name__}: {exc}"))
                    continue
                try:
                    rec = self.emit(item, value, write)
                except OutputWriteError:
                    raise
                except FeatxError as exc:  # e.g. a link inside an npy-dir output: this input only
                    rec = Record(item.key, error=exc.message)
                if rec is not None:
                    recs.append(rec)
        except OutputWriteError:
            raise
        except InputError as exc:
            recs.append(Record({"path": inp.path}, error=str(exc)))
        except Exception as exc:
            recs.append(Record({"path": inp.path}, error=f"{type(exc).__name__}: {exc}"))
        return recs

    def run(self, inputs: list[sources.Input], write: Callable[[bytes], None]) -> list[list[Record]]:
        bs = self.extractor.batch_size
        if bs <= 1 or self.extractor.temporal or self.extractor.handles_resize:
            return [self.run_one(inp, write) for inp in inputs]
        return self._run_batched(inputs, write, bs)

    def _run_batched(self, inputs, write, bs: int) -> list[list[Record]]:
        """Items of all ``inputs`` in batches of ``bs``; decoding and preprocessing of
        the next batch overlap inference when the extractor offers ``extract_stream``."""
        out: list[list[Record]] = [[] for _ in inputs]
        queued: list[list[tuple[int, sources.Item]]] = []

        def batches():
            pending: list[tuple[int, sources.Item]] = []
            for i, inp in enumerate(inputs):
                try:
                    for item in sources.load(inp, self.job.max_pixels, self.memory, self.min_size, **self.job.source_options):
                        bad = self._bad_item(item)
                        if bad is not None:
                            out[i].append(bad)
                            continue
                        item.image = self.extractor.preprocess(self.prepare(item.image))
                        pending.append((i, item))
                        if len(pending) >= bs:
                            queued.append(pending)
                            yield [it.image for _, it in pending]
                            pending = []
                except OutputWriteError:
                    raise
                except InputError as exc:
                    out[i].append(Record({"path": inp.path}, error=str(exc)))
                except Exception as exc:
                    out[i].append(Record({"path": inp.path}, error=f"{type(exc).__name__}: {exc}"))
            if pending:
                queued.append(pending)
                yield [it.image for _, it in pending]

        stream = getattr(self.extractor, "extract_stream", None)
        results = stream(batches()) if stream is not None else (self.extractor.extract_batch(b) for b in batches())
        try:
            for values in results:
                batch = queued.pop(0)
                for (i, item), value in zip(batch, values):
                    rec = self.emit(item, value, write)
                    if rec is not None:
                        out[i].append(rec)
        except OutputWriteError:
            raise
        except Exception as exc:  # a batch failed: redo its items one by one to find the culprit
            for batch in queued:
                for i, item in batch:
                    try:
                        rec = self.emit(item, self.extractor.extract_batch([item.image])[0], write)
                    except OutputWriteError:
                        raise
                    except Exception as e:
                        rec = Record(item.key, error=(e.message if isinstance(e, FeatxError)
                                                      else f"{type(e).__name__}: {e}") or str(exc))
                    if rec is not None:
                        out[i].append(rec)
        return out


_WORKER: _Worker | None = None


def _init_worker(job: Job, main: tuple[int, int | None] | None = None) -> None:
    """A pool worker's start.  ``main``: the featx main process (``lifeline.identity()``,
    passed explicitly: with a forkserver start the parent is the fork server)."""
    import signal

    from . import lifeline, lock

    lifeline.die_with(main)  # never outlive the run, however its main process ends
    lock.drop_inherited()    # never hold the output's lock (a fork shares the flock)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides about interrupts
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    setup_worker_process()
    global _WORKER
    _WORKER = _Worker(job)


def setup_worker_process() -> None:
    """One worker among several sharing the cores: tuned allocator, one OpenCV
    thread, one FFmpeg decoding thread."""
    tune_allocator()
    sources.DECODE_THREADS = 1
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


def _run_chunk(inputs: list[sources.Input], spool: str) -> list[list[Record]]:
    with open(spool, "wb") as fh:
        return _WORKER.run(inputs, fh.write)


# ---------------------------------------------------------------------------
# allocator


def tune_allocator() -> None:
    """Keep glibc from returning big temporary buffers to the OS after every image.

    With default settings each decoded image's buffers are unmapped and faulted
    in again for the next one, which doubled decode and gradient times in our
    measurements.  Raising the mmap and trim thresholds keeps them in the heap.
    """
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 * 1024 * 1024))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(256 * 1024 * 1024))
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
        libc.mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
        libc.mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))
    except (OSError, AttributeError, ValueError):
        pass


#: Set by the CLI: its process has run nothing threaded (OpenCV, ONNX Runtime,
#: FFmpeg) when the pool starts, so forking it is safe.  Library callers (a
#: notebook that already used OpenCV) get forkserver/spawn.
FORK_OK = False


def _start_method(fork: bool = True) -> str:
    """``fork`` where it is safe, else ``forkserver``/``spawn``.

    Forking is what makes ``-j 2`` pay off on small batches: the workers start
    with featx, numpy, OpenCV and the extractor already imported (a
    forkserver or spawn start costs ~0.3-1 s of imports per run).  It is safe
    from the CLI because its main process runs no other threads when the pool
    starts (the progress bar's monitor thread is disabled) and never runs
    OpenCV or an inference engine itself (extractors build those lazily, in
    the workers).  ``FEATX_START_METHOD`` overrides the choice.
    """
    import multiprocessing as mp
    import threading

    methods = mp.get_all_start_methods()
    forced = os.environ.get("FEATX_START_METHOD")
    if forced in methods:
        return forced
    if fork and FORK_OK and "fork" in methods and sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


# ---------------------------------------------------------------------------
# executors: yield (inputs, per-input records, spool path or bytes) in input order


def _chunks(it: Iterable[sources.Input], size: int) -> Iterator[list[sources.Input]]:
    buf: list[sources.Input] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


class _InProcess:
    """``-j 1``: everything in this process (with the caller's extractor), written straight through."""

    def __init__(self, job: Job, extractor: Extractor):
        self.worker = _Worker(job, extractor)

    def results(self, inputs):
        for chunk in _chunks(inputs, max(1, self.worker.extractor.batch_size)):
            parts: list = []
            recs = self.worker.run(chunk, parts.append)
            yield chunk, recs, parts[0] if len(parts) == 1 else b"".join(parts)

    def close(self, cancel: bool = False) -> None:
        pass


class _ProcessPool:
    """``-j N``: N worker processes; a bounded window of chunks in flight.

    A worker that dies (a decoder crash, the OOM killer) or an input that runs
    past ``timeout`` breaks the pool: it is restarted and what was in flight
    is redone one input at a time, so only the guilty input fails.
    """

    def __init__(self, job: Job, jobs: int, chunk: int, spool_dir: str, timeout: float | None,
                 fork: bool = True):
        self.job, self.jobs, self.chunk, self.spool_dir, self.timeout = job, jobs, chunk, spool_dir, timeout
        self.fork = fork
        self.pool = self._make()
        self._seq = 0

    def _make(self):
        from concurrent.futures import ProcessPoolExecutor

        import multiprocessing as mp

        sys.stdout.flush()  # a forked worker must not inherit (and later flush) buffered output
        # chosen at each (re)start: a restart after a crash may come while the
        # commit thread runs, and then the pool must not fork
        ctx = mp.get_context(_start_method(self.fork))
        from . import lifeline

        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx,
                                   initializer=_init_worker, initargs=(self.job, lifeline.identity()))

    def _spool(self) -> str:
        self._seq += 1
        return os.path.join(self.spool_dir, f"chunk-{self._seq}.bin")

    def _restart(self) -> None:
        self.close(cancel=True)
        self.pool = self._make()

    def results(self, inputs):
        from concurrent.futures import TimeoutError as FutTimeout
        from concurrent.futures.process import BrokenProcessPool

        window: deque = deque()
        chunks = _chunks(inputs, self.chunk)
        limit = self.jobs * 3
        exhausted = False
        while True:
            while not exhausted and len(window) < limit:
                try:
                    c = next(chunks)
                except StopIteration:
                    exhausted = True
                    break
                spool = self._spool()
                window.append((c, spool, self.pool.submit(_run_chunk, c, spool)))
            if not window:
                return
            c, spool, fut = window[0]
            try:
                recs = fut.result(timeout=None if self.timeout is None else self.timeout * len(c))
            except (BrokenProcessPool, FutTimeout):
                pending = [w[0] for w in window]
                window.clear()
                self._restart()
                for chunk_inputs in pending:
                    for inp in chunk_inputs:
                        yield self._isolated(inp)
                continue
            window.popleft()
            yield c, recs, spool

    def _isolated(self, inp: sources.Input):
        from concurrent.futures import TimeoutError as FutTimeout
        from concurrent.futures.process import BrokenProcessPool

        spool = self._spool()
        try:
            return [inp], self.pool.submit(_run_chunk, [inp], spool).result(timeout=self.timeout), spool
        except BrokenProcessPool:
            why = "the worker process crashed on this input"
        except FutTimeout:
            why = f"timed out after {self.timeout:g} s"
        self._restart()
        return [inp], [[Record({"path": inp.path}, error=why)]], b""

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list((getattr(self.pool, "_processes", None) or {}).values())
            for p in procs:
                p.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.pool.shutdown(wait=True)


# ---------------------------------------------------------------------------
# the run


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def build_extractor(name_or_cls: str | type, params: dict[str, Any] | None = None) -> Extractor:
    """An extractor by registered name (or class) with validated parameters."""
    cls = registry.get(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    return cls(build_params(cls, params or {}))


def in_shard(path: str, shard: tuple[int, int] | None) -> bool:
    """Stable hash partition of inputs: the same path is always in the same shard,
    however the folder grows."""
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(os.path.normpath(path).encode("utf-8", "surrogateescape")) % n == i - 1


def run_config(extractor: Extractor, sink: Sink, opts: RunOptions) -> dict[str, Any]:
    """What determines the numbers in an output; a continued output must match it."""
    values = {k: v for k, v in params_to_dict(extractor.params).items() if k not in extractor.runtime_params}
    return {"extractor": {"name": extractor.name, **values},
            "options": {"resize": list(opts.resize) if opts.resize else None,
                        "resize_mode": opts.resize_mode if opts.resize else None,
                        "format": sink.format, "keys": list(sink.key_columns),
                        "shard": list(opts.shard) if opts.shard else None,
                        **{k: v for k, v in sorted(opts.source_options.items())},
                        **({"decode": "reduced"} if decode_mode(extractor, opts) == "reduced" else {})}}


def decode_mode(extractor: Extractor, opts: RunOptions) -> str:
    """``"reduced"`` when JPEGs may be decoded at a reduced size for this run (the
    extractor declares a :meth:`~featx.extractor.Extractor.decode_size`), else
    ``"exact"``; a continued output must have been made the same way."""
    if opts.exact_decode or extractor.decode_size(opts.resize, opts.resize_mode) is None:
        return "exact"
    return "reduced"


def run(extractor: Extractor, inputs: Iterable[sources.Input], sink: Sink, opts: RunOptions | None = None, *,
        on_failure: Callable[[Failure], None] | None = None, on_note: Callable[[str], None] | None = None,
        progress: Any = None, on_start: Callable[[Summary], None] | None = None) -> Summary:
    """Extract features from ``inputs`` into ``sink``; returns a :class:`Summary`.

    Incremental: an output written before (with the same extractor, parameters
    and options) is continued — inputs already in it and unchanged are skipped,
    changed ones are redone, and a run killed half-way is resumed.  What was
    done is committed every ``opts.commit_every`` seconds, at the end, and on
    ``KeyboardInterrupt`` (the summary is then marked interrupted).  An input
    is known by its canonical path (:class:`~featx.sources.Canonical`), however
    it was spelled.  ``on_start`` is called once the output is locked and
    checked, before any work (the CLI writes a "running" sidecar there).
    An output that cannot be written (a full disk) ends the run with
    ``summary.error`` set, keeping what was committed.

    Raises :class:`NoInputs` when ``inputs`` is empty and no output exists
    yet: nothing is created.
    """
    from .lock import OutputLock

    opts = opts or RunOptions()
    note = on_note or (lambda msg: None)
    kind = extractor.output_kind()
    sink.check_kind(kind, extractor.name)
    config = run_config(extractor, sink, opts)
    summary = Summary()
    t0 = time.perf_counter()
    tune_allocator()
    inputs = iter(inputs)
    try:
        first = next(inputs)
    except StopIteration:
        first = None
        if not (sink.persistent and os.path.exists(sink.state_path or "")):
            raise NoInputs("no inputs to process") from None
    inputs = itertools.chain([first] if first is not None else [], inputs)

    lock = state = None
    if sink.persistent:
        parent = os.path.dirname(os.path.abspath(sink.output.rstrip("/" + os.sep)))
        if not os.path.isdir(parent):
            raise OutputError(f"output folder {parent} does not exist", "create it first")
        lock = OutputLock(sink.lock_path)
        lock.acquire(opts.wait_lock, on_wait=lambda h: note(
            f"waiting for the run holding this output (pid {h.get('pid', '?')}, since {h.get('started', '?')})"),
            on_note=note)
    try:
        if lock is not None:
            if lock.previous and lock.previous.get("pid"):
                note(f"the previous run on this output (pid {lock.previous['pid']}, "
                     f"started {lock.previous.get('started', '?')}) did not finish; resuming it")
                summary.resumed = True
            existing = sink.prepare()
            state = State(sink.state_path)
            state.recover_renames()
            _remove_leftovers(sink, deep=summary.resumed)
            why = sink.damage(state) if existing else None
            if why:
                note(f"{why}: rebuilding it from scratch")
                summary.rebuilt = why
                state.reset()
                sink.discard()
            if existing:
                check_config(state, config, sink.output)
            if state.get("config") != config:
                state.set_meta(config=config)
        if on_start is not None:
            summary.running = True
            on_start(summary)
            summary.running = False
    except BaseException as exc:
        if state is not None:
            state.close()
        if lock is not None:
            lock.release()
        # a full disk before any work: a message and exit 74, not a traceback
        err = _output_error(exc, sink) if isinstance(exc, Exception) else None
        if err is None:
            raise
        raise err from None
    try:
        return _run_locked(extractor, inputs, sink, opts, job_for(extractor, sink, opts), state, summary, t0,
                           on_failure, note, progress)
    finally:
        if state is not None:
            state.close()
        if lock is not None:
            lock.release()


def job_for(extractor: Extractor, sink: Sink, opts: RunOptions) -> Job:
    return Job(target=registry.target_of(type(extractor)), params=params_to_dict(extractor.params),
               resize=opts.resize, resize_mode=opts.resize_mode, max_pixels=opts.max_pixels,
               encoder=sink.encoder(), source_options=dict(opts.source_options),
               max_memory=memory.resolve(opts.max_memory, opts.jobs), exact_decode=opts.exact_decode)


def _todo(inputs, sink: Sink, opts: RunOptions, state: State | None, summary: Summary, progress):
    """The inputs to process: under their canonical names, this shard's, minus those
    already in the output, unchanged, and whose output is still there.  Looked up in
    batches, so a re-run over a large unchanged folder is quick."""
    canonical = sources.Canonical()
    base = sink.mirror_base if sink.format == "npy-dir" else None
    check_present = sink.format == "npy-dir"
    batch: list[sources.Input] = []

    def named(inp: sources.Input) -> sources.Input:
        if inp.canonical and base is None and not inp.paths:
            return inp  # found by a walk from a resolved root: canonical as it is, no copy
        path = canonical(inp.path)
        if path == inp.path and base is None and not inp.paths:
            return inp
        paths = tuple(canonical(p) for p in inp.paths) if inp.paths else None
        mirrors = tuple(sources.mirror_path(p, base) for p in paths) if paths and base is not None else None
        return replace(inp, path=path, paths=paths, mirrors=mirrors,
                       mirror=sources.mirror_path(path, base) if base is not None else "")

    def decide() -> Iterator[sources.Input]:
        known = state.lookup_many([inp.path for inp in batch])
        for inp in batch:
            ident = identify(inp.path, opts.use_hash)
            if ident is not None and inp.boxes is not None:
                ident = ident._replace(boxes="%08x" % zlib.crc32(repr(inp.boxes).encode()))
            k = known.get(inp.path)
            if k is not None and same(k.ident, ident, opts.use_hash) and k.status != "failed" and (
                    not check_present or sink.present(k.out, k.nrows, sources.expected_mirrors(inp))):
                summary.up_to_date += 1
                if progress is not None:
                    progress.update(1)
                continue
            if k is not None and check_present and k.nrows and (inp.kind in ("video", "frames")
                                                                 or inp.boxes is not None):
                # a changed video, frame folder or set of boxes may give fewer or other files
                # than last time: its old ones go first (an image's one file is replaced anyway)
                sink.forget_outputs([k.out])
            yield replace(inp, ident=ident, committed=k is not None and k.nrows > 0)
        batch.clear()

    seen: set[str] = set()
    for inp in inputs:
        inp = named(inp)
        if not in_shard(inp.path, opts.shard):
            continue
        if state is None:
            # a stream has no state to fold repeats into: the same file twice (p, ./p) is one row.
            # (A stateful output folds them in its state; the set costs ~100 bytes an input.)
            if inp.boxes is None:
                if inp.path in seen:
                    continue
                seen.add(inp.path)
            yield inp
            continue
        batch.append(inp)
        if len(batch) >= 256:
            yield from decide()
    if batch:
        yield from decide()


def _run_locked(extractor, inputs, sink, opts, job, state, summary, t0, on_failure, note, progress) -> Summary:
    spool_dir = None
    use_pool = opts.jobs > 1 or opts.timeout is not None
    if opts.executor == "ray" or use_pool:
        base = os.path.dirname(os.path.abspath(sink.output)) if sink.persistent else None
        spool_dir = tempfile.mkdtemp(prefix=_spool_prefix(sink), dir=base)
    if opts.executor == "ray":
        from .ray_executor import RayExecutor

        executor: Any = RayExecutor(job, opts, spool_dir)
    elif use_pool:
        executor = _ProcessPool(job, opts.jobs, max(opts.chunk, extractor.batch_size), spool_dir, opts.timeout,
                                fork=extractor.fork_safe)
    else:
        executor = _InProcess(job, extractor)
    pending: list[Entry] = []
    committer = _Committer(sink, state)
    last_commit = time.monotonic()

    ok = False
    try:
        sink.open(state)
        try:
            for chunk_inputs, per_input, payload in executor.results(_todo(inputs, sink, opts, state, summary,
                                                                           progress)):
                with _DeferSignals():
                    _append(chunk_inputs, per_input, payload, sink, summary, pending, on_failure, progress)
                    committer.poll()
                    if time.monotonic() - last_commit >= opts.commit_every and committer.start(pending):
                        pending = []
                        last_commit = time.monotonic()
        except KeyboardInterrupt:
            summary.interrupted = True
            executor.close(cancel=True)
        except OutputWriteError as exc:
            summary.error = exc
            executor.close(cancel=True)
        else:
            try:
                executor.close()
            except KeyboardInterrupt:  # Ctrl-C while the workers wind down: what was done still counts
                summary.interrupted = True
                executor.close(cancel=True)
        with _DeferSignals(raise_after=False) as held:
            try:
                committer.drain()
                # else everything appended is committed already: no fsync to pay; and after a failed
                # write nothing past the last commit may be recorded
                if (pending or sink.created) and sink.broken is None:
                    sink.commit(state, pending)
                pending = []
                if state is not None and not summary.interrupted and summary.error is None:
                    _finish(state, sink, opts, summary, note)
            except OutputWriteError as exc:
                summary.error = summary.error or exc
        if held.got is not None:
            summary.interrupted = True
        ok = True
    except Exception as exc:
        summary.error = _output_error(exc, sink)
        if summary.error is None:
            raise
        ok = True
    finally:
        committer.close()
        if not ok:
            executor.close(cancel=True)
        sink.close()
        if sink.abandon():  # a new output that never reached a commit leaves nothing behind
            summary.output = {"path": sink.output, "format": sink.format, "shape": None}
        if sink.format == "npy-dir" and (summary.interrupted or summary.error or not ok):
            sweep_tmp(sink.output, recursive=True)  # files of workers stopped mid-write
        if spool_dir:
            shutil.rmtree(spool_dir, ignore_errors=True)
    sink.close()
    summary.output = summary.output or sink.info()
    summary.seconds = time.perf_counter() - t0
    return summary


def _output_error(exc: BaseException, sink: Sink) -> OutputWriteError | None:
    """The :class:`OutputWriteError` that ``exc`` means (a full disk, an I/O error
    writing the output or its state), or None if it is something else."""
    import sqlite3

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
                                "what was committed is kept; free space and run the same command again to finish")
    return None


class _Committer:
    """Periodic commits with the fsync off the main thread.

    ``start`` (main thread) flushes the sink's buffers and hands the fsync of
    its files to a background thread; ``poll`` records the commit in the state
    (and moves the ``.npy`` header) once the data is durable.  Appending goes
    on meanwhile, so writing big outputs overlaps the extraction instead of
    stalling it.  State is only ever touched from the main thread.
    """

    def __init__(self, sink: Sink, state: State | None):
        self.sink, self.state = sink, state
        self._thread = None
        self._inflight = None

    def start(self, entries: list[Entry]) -> bool:
        """Begin a commit of ``entries``; False if one is still in flight (try later)."""
        if self.state is None:
            self.sink.commit(None, [])
            return True
        if self._inflight is not None:
            if not self._inflight[0].done():
                return False
            self._finish()
        from concurrent.futures import ThreadPoolExecutor

        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="featx-commit")
        fds, meta, after = self.sink.prepare_commit()
        fut = self._thread.submit(lambda: [os.fsync(fd) for fd in fds])
        self._inflight = (fut, list(entries), meta, after)
        return True

    def poll(self) -> None:
        if self._inflight is not None and self._inflight[0].done():
            self._finish()

    def _finish(self) -> None:
        fut, entries, meta, after = self._inflight
        self._inflight = None
        self.sink.record_commit(self.state, entries, meta, after, fut.result)

    def drain(self) -> None:
        if self._inflight is not None:
            self._inflight[0].result()
            self._finish()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.shutdown(wait=True)
            self._thread = None


def _spool_prefix(sink: Sink) -> str:
    name = os.path.basename(sink.output.rstrip("/" + os.sep)) if sink.persistent else "stream"
    return f".{name}.featx-spool-"


def _remove_leftovers(sink: Sink, deep: bool = False) -> None:
    """Spool folders and temporary files a killed run left (we hold the lock now);
    with ``deep`` (the last run did not finish), also the temporary files of dead
    workers inside an ``npy-dir`` output."""
    out = sink.output.rstrip("/" + os.sep)
    folder = os.path.dirname(os.path.abspath(out))
    names = sink.paths() + [sink.sidecar_path]
    prefixes = (_spool_prefix(sink),) + tuple(f".{os.path.basename(p)}.featx-tmp-" for p in names if p)
    for name in os.listdir(folder):
        if name.startswith(prefixes):
            path = os.path.join(folder, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
    if deep and sink.format == "npy-dir" and os.path.isdir(out):
        sweep_tmp(out, recursive=True)


def _finish(state: State, sink: Sink, opts: RunOptions, summary: Summary, note) -> None:
    """End of a complete run: find vanished inputs, prune if asked, compact."""
    gone = [(p, out) for p, out in state.unseen() if sources.vanished(p)]
    summary.disappeared = [p for p, _ in gone]
    if gone and opts.prune:
        sink.forget_outputs([out for _, out in gone])
        state.forget([p for p, _ in gone])
        summary.removed = len(gone)
    elif gone:
        note(f"{len(gone)} input(s) in the output no longer exist (e.g. {gone[0][0]}); "
             "--prune removes them from the output")
    summary.partial.extend(Failure(p, "partial: some rows written, then an error")
                           for p in state.partial() if p not in {f.path for f in summary.partial})
    summary.compacted_rows = sink.compact(state)


class _DeferSignals:
    """Hold SIGINT/SIGTERM while a chunk is appended, then act on them.

    Appending a row writes the index and the data; an interrupt between the
    two would leave them disagreeing.  Inside this block a signal is only
    noted, and KeyboardInterrupt is raised when the block ends.  (Only in the
    main thread, where Python delivers signals.)
    """

    def __init__(self, raise_after: bool = True):
        self.raise_after = raise_after

    def __enter__(self):
        import signal
        import threading

        self.got = None
        self.saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.saved[sig] = signal.signal(sig, self._note)
        return self

    def _note(self, signum, frame):
        self.got = signum

    def __exit__(self, et, ev, tb):
        import signal

        for sig, handler in self.saved.items():
            signal.signal(sig, handler)
        if self.got is not None and et is None and self.raise_after:
            raise KeyboardInterrupt
        return False


def _append(chunk_inputs, per_input, payload, sink: Sink, summary: Summary, pending: list[Entry],
            on_failure, progress) -> None:
    fh = open(payload, "rb") if isinstance(payload, str) else None
    try:
        offset = 0
        for inp, records in zip(chunk_inputs, per_input):
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
                    errors.append(Record(rec.key, error=f"{why}: pass --resize WxH so every image gives "
                                                        "the same length, or use --format npy-dir"))
                    continue
                if summary.first_key is None:
                    summary.first_key = dict(rec.key)
                sink.append(rec.key, data, rec.shape)
            nrows = sink.rows - row0
            summary.rows += nrows
            if errors and nrows == 0:
                f = Failure(inp.path, errors[0].error)
                summary.failed.append(f)
                if inp.committed:  # a changed input that now fails: its old rows must not stay as if current
                    pending.append(Entry(inp.path, None, 0, 0, None, "failed"))
                    sink.forget_outputs([inp.mirror])
            else:
                status = "ok"
                if errors:
                    status = "partial"
                    f = Failure(inp.path, "partial: " + errors[0].error)
                    summary.partial.append(f)
                else:
                    f = None
                summary.processed += 1
                pending.append(Entry(inp.path, inp.ident, row0, nrows, inp.mirror, status))
            if f is not None and on_failure:
                on_failure(f)
            if progress is not None:
                progress.update(1)
    finally:
        if fh is not None:
            fh.close()
            os.unlink(payload)
