"""The pipeline: ordering, parallel execution, failures, progress, commit.

Data flow for one run::

    main process                         worker process (or in-process, -j 1)
    ------------                         ------------------------------------
    enumerate Inputs  ──chunks──▶  decode → resize → extract → encode
                                   (results spooled to a file per chunk)
    append in input order  ◀──metadata (keys, shapes, errors)──
    commit atomically, write the sidecar

Workers are built once (the extractor is constructed in the worker's
initializer), get paths rather than pixels, and hand back only small
metadata: the encoded output bytes go through a spool file per chunk, which
keeps the main process cheap and memory flat however long an input is.
Results are identical and in the same order whatever ``jobs`` is.
"""
from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import imageops, registry, sources
from .errors import FeatxError, InputError, OutputError
from .extractor import Extractor, Keypoints, build_params, params_to_dict
from .sinks import Encoder, Sink

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


@dataclass
class Record:
    """What comes back for one item: key, output shape and byte count, or an error."""

    key: dict[str, Any]
    shape: tuple | None = None
    nbytes: int = 0
    error: str | None = None
    kind: str = "vector"


@dataclass
class Failure:
    path: str
    reason: str


@dataclass
class Summary:
    """The outcome of a run (also recorded in the sidecar)."""

    processed: int = 0
    failed: list[Failure] = field(default_factory=list)
    skipped_non_images: int = 0
    interrupted: bool = False
    seconds: float = 0.0
    output: dict[str, Any] = field(default_factory=dict)
    first_key: dict[str, Any] | None = None

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        return "complete" if not self.failed else "complete-with-failures"


# ---------------------------------------------------------------------------
# worker side


class _Worker:
    """Decode, resize, extract and encode inputs with one extractor instance."""

    def __init__(self, job: Job):
        cls = registry.load_target(job.target)
        self.job = job
        self.extractor: Extractor = cls(build_params(cls, job.params))

    def items(self, inp: sources.Input) -> Iterator[sources.Item]:
        return sources.load(inp, self.job.max_pixels)

    def compute(self, image: np.ndarray) -> Any:
        job = self.job
        if job.resize is not None:
            image = imageops.resize(image, job.resize[0], job.resize[1], job.resize_mode)
        value = self.extractor.extract(image)
        if isinstance(value, Keypoints):
            return value
        return np.ascontiguousarray(value, dtype=np.float32)

    def run(self, inputs: list[sources.Input], sink_write: Callable[[bytes], None]) -> list[Record]:
        out: list[Record] = []
        for inp in inputs:
            if self.extractor.temporal:
                self.extractor.reset()
            try:
                for item in self.items(inp):
                    try:
                        value = self.compute(item.image)
                    except FeatxError as exc:
                        out.append(Record(item.key, error=exc.message))
                        continue
                    except Exception as exc:  # isolate the item, keep going
                        out.append(Record(item.key, error=f"{type(exc).__name__}: {exc}"))
                        continue
                    if value is None:   # a temporal extractor's "no row" (e.g. first frame dropped)
                        continue
                    data = self.job.encoder.encode(item.key, inp.mirror, value)
                    if data:
                        sink_write(data)
                    if isinstance(value, Keypoints):
                        rec = Record(item.key, shape=(len(value), value.descriptors.shape[1] if
                                                      value.descriptors.ndim == 2 else 0),
                                     nbytes=len(data), kind="keypoints")
                    else:
                        rec = Record(item.key, shape=tuple(value.shape), nbytes=len(data),
                                     kind="vector" if value.ndim == 1 else "dense")
                    out.append(rec)
            except InputError as exc:
                out.append(Record({"path": inp.path}, error=str(exc)))
            except Exception as exc:
                out.append(Record({"path": inp.path}, error=f"{type(exc).__name__}: {exc}"))
        return out


_WORKER: _Worker | None = None


def _init_worker(job: Job) -> None:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides about interrupts
    tune_allocator()
    global _WORKER
    _WORKER = _Worker(job)


def _run_chunk(inputs: list[sources.Input], spool: str) -> list[Record]:
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


# ---------------------------------------------------------------------------
# executors: yield (inputs, records, spool-or-bytes) in input order


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
    """``-j 1``: everything in this process, written straight through."""

    def __init__(self, job: Job):
        self.worker = _Worker(job)

    def results(self, inputs: Iterable[sources.Input]) -> Iterator[tuple[list[Record], bytes]]:
        for inp in inputs:
            parts: list[bytes] = []
            recs = self.worker.run([inp], parts.append)
            yield recs, b"".join(parts)

    def close(self, cancel: bool = False) -> None:
        pass


class _ProcessPool:
    """``-j N``: N worker processes; bounded window of chunks in flight."""

    def __init__(self, job: Job, jobs: int, chunk: int, spool_dir: str):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        self.job, self.jobs, self.chunk, self.spool_dir = job, jobs, chunk, spool_dir
        method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
        self._ctx = mp.get_context(method)
        self._make = lambda: ProcessPoolExecutor(max_workers=jobs, mp_context=self._ctx,
                                                 initializer=_init_worker, initargs=(job,))
        self.pool = self._make()
        self._seq = 0

    def _spool(self) -> str:
        self._seq += 1
        return os.path.join(self.spool_dir, f"chunk-{self._seq}.bin")

    def results(self, inputs):
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
            c, spool, fut = window.popleft()
            try:
                recs = fut.result()
            except BrokenProcessPool:
                # A worker died (a decoder crash, the OOM killer...).  Restart the
                # pool and redo what was in flight one input at a time, so that
                # only the input that kills a worker is reported as failed.
                pending = [c] + [w[0] for w in window]
                window.clear()
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool = self._make()
                for chunk_inputs in pending:
                    for inp in chunk_inputs:
                        yield self._isolated(inp)
                continue
            yield recs, spool

    def _isolated(self, inp: sources.Input):
        from concurrent.futures.process import BrokenProcessPool

        spool = self._spool()
        try:
            return self.pool.submit(_run_chunk, [inp], spool).result(), spool
        except BrokenProcessPool:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.pool = self._make()
            return [Record({"path": inp.path}, error="the worker process crashed on this input")], b""

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list(getattr(self.pool, "_processes", {}).values())
            self.pool.shutdown(wait=False, cancel_futures=True)
            for p in procs:
                p.terminate()
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
    cls = registry.get(name_or_cls) if isinstance(name_or_cls, str) else name_or_cls
    return cls(build_params(cls, params or {}))


def run(extractor: Extractor, inputs: Iterable[sources.Input], sink: Sink, *,
        jobs: int = 1, resize: tuple[int, int] | None = None, resize_mode: str = "stretch",
        max_pixels: int | None = DEFAULT_MAX_PIXELS, chunk: int = 4,
        on_failure: Callable[[Failure], None] | None = None,
        progress: Any = None) -> Summary:
    """Extract features from ``inputs`` into ``sink``; returns a :class:`Summary`.

    The sink is committed even when some inputs fail, and on
    ``KeyboardInterrupt`` (what was done is committed and the summary is
    marked interrupted).  Any other error aborts the sink: no output appears.
    """
    kind = extractor.output_kind()
    sink.check_kind(kind, extractor.name)
    sink.check_output()
    job = Job(target=registry.target_of(type(extractor)), params=params_to_dict(extractor.params),
              resize=resize, resize_mode=resize_mode, max_pixels=max_pixels, encoder=sink.encoder())
    summary = Summary()
    t0 = time.perf_counter()
    tune_allocator()
    spool_dir = None
    if jobs > 1:
        base = os.path.dirname(os.path.abspath(sink.output)) if sink.output != "-" else None
        if base and not os.path.isdir(base):
            raise OutputError(f"output folder {base} does not exist", "create it first")
        spool_dir = tempfile.mkdtemp(prefix=".featx-spool-", dir=base)
        executor: Any = _ProcessPool(job, jobs, chunk, spool_dir)
    else:
        executor = _InProcess(job)
    sink.open()
    committed = False
    try:
        try:
            for records, payload in executor.results(inputs):
                _consume(records, payload, sink, summary, on_failure, progress)
        except KeyboardInterrupt:
            summary.interrupted = True
            executor.close(cancel=True)
        else:
            executor.close()
        summary.output = sink.commit()
        committed = True
    finally:
        if not committed:
            executor.close(cancel=True)
            sink.abort()
        if spool_dir:
            shutil.rmtree(spool_dir, ignore_errors=True)
    summary.seconds = time.perf_counter() - t0
    return summary


def _consume(records: list[Record], payload: bytes | str, sink: Sink, summary: Summary,
             on_failure, progress) -> None:
    fh = open(payload, "rb") if isinstance(payload, str) else None
    try:
        offset = 0
        for rec in records:
            if rec.error is not None:
                f = Failure(str(rec.key.get("path")), rec.error)
                summary.failed.append(f)
                if on_failure:
                    on_failure(f)
                if progress is not None:
                    progress.update(1)
                continue
            data = fh.read(rec.nbytes) if fh is not None else payload[offset:offset + rec.nbytes]
            offset += rec.nbytes
            why = sink.check_width(rec.key, rec.shape, summary.first_key)
            if why is not None:
                raise OutputError(f"{rec.key.get('path')}: {why}",
                                  "pass --resize WxH so every image gives the same length, "
                                  "or use --format npy-dir")
            if summary.first_key is None:
                summary.first_key = dict(rec.key)
            sink.append(rec.key, data, rec.shape)
            summary.processed += 1
            if progress is not None:
                progress.update(1)
    finally:
        if fh is not None:
            fh.close()
            os.unlink(payload)
