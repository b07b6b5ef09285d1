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
from ..extractor import Extractor
from .process import start_method
from .worker import Job, Record, Worker, init_worker, run_chunk


class Executor(Protocol):
    def results(self, inputs: Iterable[Input]) -> Iterator[tuple[list, list, str | bytes]]: ...

    def close(self, cancel: bool = False) -> None: ...

# ---------------------------------------------------------------------------
# executors: yield (inputs, records per output and input, payload per output) in input order


def _chunks(it: Iterable[Input], size: int) -> Iterator[list[Input]]:
    buf: list[Input] = []
    for x in it:
        buf.append(x)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


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


class ProcessPool:
    """``-j N``: N worker processes; a bounded window of chunks in flight.

    A worker that dies (a decoder crash, the OOM killer) or an input that runs
    past ``timeout`` breaks the pool: it is restarted and what was in flight
    is redone one input at a time, so only the guilty input fails.
    """

    def __init__(self, job: Job, jobs: int, chunk: int, spool_dir: str, timeout: float | None,
                 fork: bool = False, counter=None, on_wait=None):
        self.job, self.jobs, self.chunk, self.spool_dir, self.timeout = job, jobs, chunk, spool_dir, timeout
        self.fork = fork
        self.counter, self.on_wait = counter, on_wait   # items loaded (shared), looked at while waiting
        self.pool = self._make()
        self._seq = 0

    def _make(self):
        from concurrent.futures import ProcessPoolExecutor

        import multiprocessing as mp

        sys.stdout.flush()  # a forked worker must not inherit (and later flush) buffered output
        # chosen at each (re)start: a restart after a crash may come while the
        # commit thread runs, and then the pool must not fork
        ctx = mp.get_context(start_method(self.fork))
        from ..host import identity

        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=ctx, initializer=init_worker,
                                   initargs=(self.job, identity(), self.counter))

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
                window.append((c, spool, self.pool.submit(run_chunk, c, spool)))
            if not window:
                return
            c, spool, fut = window[0]
            try:
                recs, spools = self._wait(fut, None if self.timeout is None else self.timeout * len(c))
            except (BrokenProcessPool, FutTimeout):
                pending = [w[0] for w in window]
                window.clear()
                self._restart()
                for chunk_inputs in pending:
                    for inp in chunk_inputs:
                        yield self._isolated(inp)
                continue
            window.popleft()
            yield c, recs, spools

    def _wait(self, fut, timeout: float | None):
        """``fut.result(timeout)``, looking in on ``on_wait`` (the progress bar) meanwhile."""
        import time
        from concurrent.futures import TimeoutError as FutTimeout

        if self.on_wait is None:
            return fut.result(timeout=timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            step = 0.25 if deadline is None else max(0.0, min(0.25, deadline - time.monotonic()))
            try:
                return fut.result(timeout=step)
            except FutTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise
                self.on_wait()

    def _isolated(self, inp: Input):
        from concurrent.futures import TimeoutError as FutTimeout
        from concurrent.futures.process import BrokenProcessPool

        spool = self._spool()
        try:
            recs, spools = self._wait(self.pool.submit(run_chunk, [inp], spool), self.timeout)
            return [inp], recs, spools
        except BrokenProcessPool:
            why = "the worker process crashed on this input"
        except FutTimeout:
            why = f"timed out after {self.timeout:g} s"
        self._restart()
        return failed(self.job, inp, why)

    def close(self, cancel: bool = False) -> None:
        if cancel:
            procs = list((getattr(self.pool, "_processes", None) or {}).values())
            for p in procs:
                p.terminate()
            self.pool.shutdown(wait=True, cancel_futures=True)
        else:
            self.pool.shutdown(wait=True)
