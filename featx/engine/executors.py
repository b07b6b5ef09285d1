"""Executors: where the workers run.

Every executor has the same two methods: ``results(inputs)`` yields
``(inputs, records, payloads)`` chunk by chunk **in input order** —
``records[k][i]`` are output ``k``'s records of input ``i``, ``payloads[k]``
output ``k``'s encoded rows (the path of a spool file, or the bytes) — and
``close(cancel=False)`` stops it.  :class:`InProcess` runs
``-j 1`` in this process, :class:`ProcessPool` runs ``-j N`` local processes,
and :class:`featx.engine.ray.RayExecutor` runs Ray actors.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Protocol

from ..inputs import Input
from ..errors import WorkerStartError
from ..extractor import Extractor
from .process import start_method
from . import worker as _w
from .worker import Job, Record, Worker, init_worker, run_chunk


class Executor(Protocol):
    def results(self, inputs: Iterable[Input]) -> Iterator[tuple[list, list, str | bytes]]: ...

    def close(self, cancel: bool = False) -> None: ...

# ---------------------------------------------------------------------------
# executors: yield (inputs, records per output and input, payload per output) in input order


#: How many chunks a worker should still get when the work left is split (guided
#: scheduling): with fewer inputs left than ``TAIL * workers`` chunks of the largest size,
#: chunks shrink, down to single inputs at the end, so that no worker waits while another
#: works through a long chunk.
TAIL = 2


def chunk_size(left: int | None, workers: int, most: int, tail: int = TAIL) -> int:
    """The size of the next chunk with ``left`` inputs still to hand out (None: more than
    anyone counted, that is at least ``most * tail * workers``) over ``workers`` workers:
    ``most`` while much is left, then ``ceil(left / (tail * workers))``, at least 1.

    Each chunk is at most ``1 / (tail * workers)`` of what is left, so the last chunks
    are single inputs and the workers finish within about one input of each other,
    whatever was handed out before (40 inputs over 2 workers, ``most`` 16: 10, 8, 6, 4,
    3, 3, 2, 1, 1, 1, 1 instead of 16, 16, 8)."""
    if left is None:
        return max(1, most)
    return max(1, min(most, -(-left // (tail * max(1, workers)))))


def guided_chunks(it: Iterable[Input], most: int, workers: int, tail: int = TAIL) -> Iterator[list[Input]]:
    """``it`` cut into chunks of :func:`chunk_size`, in order.  Reads at most
    ``most * tail * workers`` inputs ahead (what it takes to know whether the work left
    is still larger than that), so an endless or slow stream of inputs is cut as it comes."""
    src = iter(it)
    ahead: deque = deque()
    enough = max(1, most) * tail * max(1, workers)
    ended = False
    while True:
        while not ended and len(ahead) < enough:
            try:
                ahead.append(next(src))
            except StopIteration:
                ended = True
        if not ahead:
            return
        n = chunk_size(len(ahead) if ended else None, workers, most, tail)
        yield [ahead.popleft() for _ in range(n)]


def _chunks(it: Iterable[Input], size: int) -> Iterator[list[Input]]:
    buf: list[Input] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def worker_preload(job: Job) -> list[str]:
    """The modules a worker of ``job`` imports: numpy, OpenCV, featx's worker, each
    extractor's module and the modules it names in ``worker_modules`` (cnn:
    onnxruntime).  Only importable ones (the fork server skips none silently)."""
    import importlib.util

    names = ["numpy", "cv2", "featx.engine.worker"]
    for t in job.tasks:
        module = t.target.partition(":")[0]
        names.append(module)
        try:
            from .. import registry

            names.extend(getattr(registry.load_target(t.target), "worker_modules", ()))
        except Exception:   # the worker will say what is wrong
            pass
    out = []
    for n in dict.fromkeys(names):
        try:
            if importlib.util.find_spec(n) is not None:
                out.append(n)
        except (ImportError, ValueError):
            pass
    return out


def failed(job: Job, inp: Input, why: str):
    """What an executor yields for an input that killed or outlived its worker: one failed
    record for each output that asked for it."""
    recs = [[[Record({"path": inp.path}, error=why)] if inp.wants is None or k in inp.wants else []]
            for k in range(len(job.tasks))]
    return [inp], recs, [b""] * len(job.tasks)


class InProcess:
    """``-j 1``: everything in this process (with the caller's extractors), written straight through."""

    def __init__(self, job: Job, extractors: list[Extractor], tick=None):
        self.worker = Worker(job, extractors)
        if tick is not None:
            self.worker.tick = tick

    def results(self, inputs):
        for chunk in _chunks(inputs, max([1] + [e.batch_size for e in self.worker.extractors])):
            recs, payloads = self.worker.run_to_bytes(chunk)
            yield chunk, recs, payloads

    def close(self, cancel: bool = False) -> None:
        pass


def _ready() -> None:
    """A worker's first task when the pool is started early (:meth:`ProcessPool.launch`)."""


class _Hung(Exception):
    """An input in flight ran past ``--timeout``."""


class ProcessPool:
    """``-j N``: N worker processes; a bounded window of chunks in flight.

    Chunks are cut by :func:`guided_chunks`: ``chunk`` inputs (the engine passes
    ``CHUNK`` or the largest batch an extractor asks for) while much work is left, smaller
    and smaller ones at the end, so the workers finish together; a worker batches what its
    chunk holds.
    Free workers take the next chunk in order from a shared queue.

    A worker that dies (a decoder crash, the OOM killer) or an input that runs
    past ``timeout`` breaks the pool: it is restarted and what was in flight
    is redone one input at a time, so only the guilty input fails.  A worker
    that cannot start — its extractor, built in this process, raises as it is
    built in the worker, or the worker dies before it took any input — is no
    input's fault: the run stops with a :class:`~featx.errors.WorkerStartError`
    that says why (each worker notes how far its start went in a shared table,
    :func:`featx.engine.worker.startup_table`).  The
    timeout is the input's own: each worker notes in shared memory when it
    started its current input (see :func:`featx.engine.worker.run_chunk`), so a
    hang is seen ``timeout`` after that input started, whatever the chunk's
    length or the workers' start-up time.
    """

    def __init__(self, job: Job, jobs: int, chunk: int, spool_dir: str, timeout: float | None,
                 fork: bool = False, counter=None, on_wait=None, extractors: list[Extractor] | None = None):
        import multiprocessing as mp

        self.job, self.jobs, self.chunk, self.spool_dir, self.timeout = job, jobs, chunk, spool_dir, timeout
        self.fork = fork
        self.extractors = extractors   # the job's, built here: forked workers start with them
        self.counter, self.on_wait = counter, on_wait   # items loaded (shared), looked at while waiting
        self.limit = jobs * 3    # chunks in flight
        # per slot (one per chunk in flight, +1 for an isolated input): when its current input
        # started (0: not started)
        self.beats = mp.Array("d", self.limit + 1, lock=False) if timeout is not None else None
        # per slot: 1 while its chunk is handed out and not finished (set here, cleared by the
        # worker); fewer than the cores means a core idles, and a worker's video then decodes
        # on a thread of its own (Worker.ahead).  Plain stores, one writer at a time per slot.
        self.busy = mp.Array("b", self.limit + 1, lock=False)
        self.pool = self._make()
        self._seq = 0

    def _make(self):
        from concurrent.futures import ProcessPoolExecutor

        import multiprocessing as mp

        if sys.stdout is not None:  # (None: featx was started with stdout closed, `>&-`)
            sys.stdout.flush()  # a forked worker must not inherit (and later flush) buffered output
        # chosen at each (re)start: a restart after a crash may come while the
        # commit thread runs, and then the pool must not fork
        method = start_method(self.fork)
        ctx = mp.get_context(method)
        # forked workers are copies of this process: they start with the extractors built
        # here (cnn read and checked its model again in every worker, 50 ms)
        inherited = self.extractors if method == "fork" else None
        self.startup = _w.startup_table(self.jobs, ctx)   # this pool's own: a restart starts afresh
        if method == "forkserver":
            # the fork server imports these once; every worker forked from it starts with
            # them (a spawned interpreter re-imports numpy, OpenCV, an inference engine:
            # 0.2-0.9 s per worker)
            ctx.set_forkserver_preload(worker_preload(self.job))
        from ..host import default_jobs, identity

        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=init_worker,
                                   initargs=(self.job, identity(), self.counter, self.beats,
                                             (self.busy, min(self.jobs, default_jobs())), inherited,
                                             self.startup))

    def launch(self) -> None:
        """Start the worker processes now (they import and build their extractors while
        the caller does other things), not at the first chunk."""
        for _ in range(self.jobs):   # (forked workers all start at the first; the others one each)
            self.pool.submit(_ready)

    def _spool(self) -> str:
        self._seq += 1
        return os.path.join(self.spool_dir, f"chunk-{self._seq}.bin")

    def _restart(self, broken: bool = False) -> None:
        """A new pool in place of this one.  ``broken``: a worker died; if it died before
        any worker took an input, its start failed: raise :class:`WorkerStartError`."""
        procs = dict(getattr(self.pool, "_processes", None) or {})   # (before the pool forgets them)
        self.close(cancel=True)
        if broken:
            err = self._start_failure(procs)
            if err is not None:
                raise err
        self.busy[:] = bytes(len(self.busy))   # what was in flight is redone (or failed) one at a time
        self.pool = self._make()

    def _start_failure(self, procs: dict) -> WorkerStartError | None:
        """After a worker died and the pool is closed: the run's error when no worker of
        the pool had taken an input and one died in its start (``procs``: the pool's
        processes by pid, their exit codes known now), else None (the death is an input's:
        what was in flight is redone one input at a time)."""
        import signal

        rows = _w.startup_rows(self.startup)
        if any(phase == _w.WORKING for phase, _, _ in rows):
            return None
        codes = {pid: p.exitcode for pid, p in procs.items()}
        # a worker the pool stopped as it broke ended by SIGTERM: not the one that died
        stopped = -int(signal.SIGTERM)
        dead = [(phase, task, codes.get(pid)) for phase, task, pid in rows
                if phase in (0, _w.STARTING, _w.BUILDING) and codes.get(pid) != stopped]
        known = {pid for _, _, pid in rows}
        dead += [(0, 0, code) for pid, code in codes.items()
                 if pid not in known and code is not None and code != stopped]   # died before its start
        if not dead:
            return None   # (a worker killed while it waited, between inputs: as before)
        # the one that died while building an extractor first, one whose exit is known first
        phase, task, code = min(dead, key=lambda d: (d[0] != _w.BUILDING, d[2] is None))
        if code is None:
            how = "ended"
        elif code < 0:
            try:
                how = f"was killed by {signal.Signals(-code).name}"
            except ValueError:
                how = f"was killed by signal {-code}"
        else:
            how = f"exited with code {code}"
        if phase == _w.BUILDING:
            name = _w.task_name(self.job, task)
            return WorkerStartError(f"the workers could not build extractor '{name}': a worker process {how} "
                                    "while building it", _w.build_hint(name))
        return WorkerStartError(f"the worker processes could not start: a worker process {how} before it took "
                                "any input", "-j 1 without --timeout runs without worker processes")

    def _submit(self, inputs: list[Input], slot: int):
        spool = self._spool()
        self.busy[slot] = 1
        if self.beats is not None:
            self.beats[slot] = 0.0   # not started
        return spool, self.pool.submit(run_chunk, inputs, spool, slot)

    def results(self, inputs):
        from concurrent.futures.process import BrokenProcessPool

        window: deque = deque()   # (inputs, spool, future, slot), in input order
        chunks = guided_chunks(inputs, self.chunk, self.jobs)
        exhausted = False
        while True:
            unsent = []   # a chunk taken whose submission found the pool broken
            try:
                while not exhausted and len(window) < self.limit:
                    try:
                        c = next(chunks)
                    except StopIteration:
                        exhausted = True
                        break
                    slot = min(set(range(self.limit)) - {w[3] for w in window})
                    unsent = [c]
                    window.append((c, *self._submit(c, slot), slot))
                    unsent = []
                if not window:
                    return
                c, spool, fut, _ = window[0]
                recs, spools = self._wait(fut, window)
            except (BrokenProcessPool, _Hung) as exc:
                # every input in flight is redone alone, the one that hung too: in a batched
                # extractor the input that was starting is not always the one that hangs
                # (unless the workers could not even start: then the run stops)
                pending = [w[0] for w in window] + unsent
                window.clear()
                self._restart(broken=isinstance(exc, BrokenProcessPool))
                for chunk_inputs in pending:
                    for inp in chunk_inputs:
                        yield self._isolated(inp)
                continue
            window.popleft()
            yield c, recs, spools

    def _hung(self, window) -> bool:
        """Has an input in flight run past the timeout?"""
        import time

        now = time.monotonic()
        return any(self.beats[slot] and not fut.done() and now - self.beats[slot] > self.timeout
                   for _, _, fut, slot in window)

    def _wait(self, fut, window):
        """``fut.result()``, looking in on ``on_wait`` (the progress bar) and, with a
        timeout, on the inputs running in ``window`` meanwhile (:class:`_Hung`)."""
        from concurrent.futures import TimeoutError as FutTimeout

        if self.on_wait is None and self.timeout is None:
            return fut.result()
        while True:
            try:
                return fut.result(timeout=0.25 if self.timeout is None else min(0.25, self.timeout / 4))
            except FutTimeout:
                if self.timeout is not None:
                    if self._hung(window):
                        raise _Hung() from None
                if self.on_wait is not None:
                    self.on_wait()

    def _isolated(self, inp: Input):
        from concurrent.futures.process import BrokenProcessPool

        slot = self.limit   # the spare slot: nothing else is in flight
        try:
            spool, fut = self._submit([inp], slot)
            recs, spools = self._wait(fut, [([inp], spool, fut, slot)])
            return [inp], recs, spools
        except BrokenProcessPool:
            why = "the worker process crashed on this input"
            broken = True
        except _Hung:
            why = f"timed out after {self.timeout:g} s"
            broken = False
        self._restart(broken)   # (raises if the input was never started: the workers could not start)
        return failed(self.job, inp, why)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list((getattr(self.pool, "_processes", None) or {}).values())
            for p in procs:
                p.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.pool.shutdown(wait=True)
