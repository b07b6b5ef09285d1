"""The run: ordering, failures, state, commit.

Data flow for one run (one or several outputs)::

    main process                            worker process (or in-process, -j 1)
    ------------                            ------------------------------------
    enumerate Inputs, skip those   ──chunks──▶ decode once → per output: resize → extract → encode
                                                  (encoded rows spooled to a file per chunk)
    every output up to date;
    append in input order  ◀──small records (keys, shapes, errors)──
    commit every few seconds (data durable, then the state transaction)

Results are identical and in the same order whatever ``jobs`` is.  The
worker is in :mod:`.worker`, the executors in :mod:`.executors`, commits in
:mod:`.commit`.
"""
from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from .. import memory, registry
from ..inputs import Canonical, Input
from ..errors import UsageError, WorkerStartError
from ..extractor import Extractor, params_to_dict
from ..output import layout
from ..output.atomic import OutputWriteError
from ..output.output import Failure, Output, Summary
from ..output.sinks import Sink
from ..output.state import identify, identify_sequence
from .executors import InProcess, ProcessPool
from .process import tune_allocator
from .signals import DeferSignals
from .worker import DEFAULT_MAX_PIXELS, Job, Task  # noqa: F401  (DEFAULT_MAX_PIXELS: plan reads it here)

class NoInputs(UsageError):
    """The inputs named hold nothing to process (and no output exists yet)."""


#: Inputs per worker task while much work is left (at least; an extractor's own batch may
#: ask for more); the last tasks of a run are smaller (see
#: :func:`featx.engine.executors.guided_chunks`).
CHUNK = 4


@dataclass
class Target:
    """One output of a run, as the engine sees it: an extractor, the size it works at, a sink."""

    extractor: Extractor
    sink: Sink
    resize: tuple[int, int] | None = None   # (width, height)
    resize_mode: str = "stretch"
    describe: bool = False                  # local descriptors (codebook learning), not the extractor's output
    pool: Any = None                        # a featx.pooling.PoolSpec: rows pooled per input (None: rows as they are)
    source_keys: tuple[str, ...] = ("path",)   # the key columns of the rows extracted (what pooling reads)


def in_shard(path: str, shard: tuple[int, int] | None) -> bool:
    """Stable hash partition of inputs: the same path is always in the same shard,
    however the folder grows."""
    if shard is None:
        return True
    i, n = shard
    return zlib.crc32(os.path.normpath(path).encode("utf-8", "surrogateescape")) % n == i - 1


def numbers_free(extractor: Extractor) -> tuple[str, ...]:
    """Parameters that do not change an output's numbers: how the work runs (threads) and
    what only ``featx show`` draws.  A continued output need not match them."""
    from ..extractor import param_infos

    return tuple(extractor.runtime_params) + tuple(
        i.name for i in param_infos(type(extractor.params)) if i.show_only and i.name not in extractor.runtime_params)


def decode_size(target: Target, plan) -> tuple[int, int] | None:
    """The fewest pixels ``target`` needs from a JPEG decoder (None: every pixel: with
    ``--exact-decode``, or when its extractor works on every pixel)."""
    if plan.exact_decode:
        return None
    return target.extractor.decode_size(target.resize, target.resize_mode)


def decode_mode(target: Target, plan) -> str:
    """``"reduced"`` when JPEGs may be decoded at a reduced size for this output, else
    ``"exact"``; a continued output must have been made the same way."""
    return "exact" if decode_size(target, plan) is None else "reduced"


def run_config(target: Target, plan) -> dict[str, Any]:
    """What determines the numbers in an output; a continued output must match it."""
    extractor, sink = target.extractor, target.sink
    free = numbers_free(extractor)
    values = {k: v for k, v in params_to_dict(extractor.params).items() if k not in free}
    return {"extractor": {"name": extractor.name, **values},
            "options": {"resize": list(target.resize) if target.resize else None,
                        "resize_mode": target.resize_mode if target.resize else None,
                        "format": sink.format, "keys": list(sink.key_columns),
                        "shard": list(plan.shard) if plan.shard else None,
                        **{k: v for k, v in sorted(plan.sampling.items())},
                        **({"decode": "reduced"} if decode_mode(target, plan) == "reduced" else {}),
                        # rows of pictures taken as damaged must not pass for a strict output's
                        **({"lenient_decode": True} if plan.lenient_decode else {}),
                        # pooled rows are other numbers (only an output that pools records it)
                        **({"pool": target.pool.record()} if target.pool is not None else {})}}


def run(targets: list[Target], inputs: Iterable[Input], plan, *,
        on_failure: Callable[[Failure, list[int]], None] | None = None,
        on_note: Callable[[str], None] | None = None, progress: Any = None,
        on_start: Callable[[list[Summary]], None] | None = None, fork: bool = False,
        chunk: int = CHUNK) -> list[Summary]:
    """Extract features from ``inputs`` into every target's sink; one :class:`Summary` per target.

    Each input is decoded once and handed to every output that needs it.
    Incremental: an output written before (with the same extractor, parameters
    and options) is continued — inputs already in it and unchanged are skipped,
    changed ones are redone, and a run killed half-way is resumed; an input is
    decoded only if some output needs it.  ``plan``: how to run, a
    :class:`featx.plan.Plan` as :func:`featx.plan.build` resolves it (``jobs``,
    ``max_pixels`` and ``max_memory`` given, 0 meaning no limit; ``exact_decode``
    also for ``regions``); the engine reads its run options and nothing else.
    ``chunk``: inputs per worker task while much work is left.  What was done is committed every
    ``plan.commit_every`` seconds, at the end, and on ``KeyboardInterrupt``
    (the summaries are then marked interrupted).  An input is known by its
    canonical path (:class:`~featx.inputs.Canonical`), however it was
    spelled.  ``on_start`` is called once every output is locked and checked,
    before any work (the CLI writes "running" sidecars there), and again with the
    interrupted summaries if the reader of stdout or stderr goes away (``| head``):
    the run then commits what was done and raises :class:`BrokenPipeError`;
    ``on_failure(failure, outputs)`` once per failed input with the outputs it
    failed for; ``progress``: a :class:`featx.progress.Feed`.  An output that cannot be written (a full disk) stops the run
    with that output's ``summary.error`` set (the others are interrupted),
    keeping what was committed.

    ``fork``: the caller's process may be forked to start a worker pool (see
    :func:`~featx.engine.process.start_method`).

    Raises :class:`NoInputs` when ``inputs`` is empty and no output exists
    yet: nothing is created; :class:`~featx.errors.WorkerStartError` when the
    workers cannot start (an extractor that builds here does not build in them):
    no input is failed for it, what was committed before is kept, and the
    summaries (and sidecars, through ``on_start``) say ``failed``.
    """
    note = on_note or (lambda msg: None)
    _standard_fds()
    outs = [Output(t.sink, run_config(t, plan), index=k, name=t.sink.output if len(targets) > 1 else "",
                   ignore=numbers_free(t.extractor)) for k, t in enumerate(targets)]
    for t in targets:
        t.sink.check_kind(t.extractor.output_kind(), t.extractor.name)
    t0 = time.perf_counter()
    tune_allocator()
    inputs = iter(inputs)
    # a regions run (--regions): its boxes file lists every input.  An empty one is a day with
    # nothing detected (zero rows, not an error), and an image it no longer lists is gone from
    # the output (--prune removes its rows) even though the file is still there
    # (a segments file, --segments, lists its videos the same way)
    regions = bool(plan.regions) or bool(getattr(plan, "segments", None))
    if regions:
        for o in outs:
            o.unlisted_gone = lambda p: in_shard(p, plan.shard)
    try:
        first = next(inputs)
    except StopIteration:
        first = None
        if not regions and not any(o.has_state() for o in outs):
            raise NoInputs("no inputs to process") from None
    inputs = itertools.chain([first] if first is not None else [], inputs)
    layout.check_apart([t.sink for t in targets])
    for o in outs:
        o.check_folder()
        o.sink.preflight()  # every output, before any is opened: --overwrite removes files there
    opened: list[Output] = []
    early: list[ProcessPool] = []   # the pool started early, kept here before it starts (a Ctrl-C
    pool = None                     # between its start and the return of _prestart must stop it too)
    try:
        _prestart(targets, outs, plan, first is not None, progress, fork, chunk, early)
        pool = early[0] if early else None
        # locks in one order (of their paths), so that runs sharing outputs cannot deadlock with --wait
        for o in sorted(outs, key=lambda o: o.sink.lock_path or ""):
            opened.append(o)
            o.open(None if plan.wait else 0.0, note)  # --wait: for as long as it takes
        if on_start is not None:
            for o in outs:
                o.summary.running = True
            on_start([o.summary for o in outs])
            for o in outs:
                o.summary.running = False
    except BaseException as exc:
        for p in early:
            p.close(cancel=True)
        for o in opened:
            o.close()
        # a full disk before any work: a message and exit 74, not a traceback
        err = next((e for e in (o.write_error(exc) for o in opened) if e is not None), None) \
            if isinstance(exc, Exception) else None
        if err is None:
            raise
        raise err from None
    try:
        _run_locked(targets, outs, inputs, plan, on_failure, note, progress, fork, chunk, pool)
    except WorkerStartError as exc:
        # the workers could not start (an extractor that does not build in them): the run's
        # error, raised; the sidecars, which say "running", say "failed" now
        seconds = time.perf_counter() - t0
        for o in outs:
            o.summary.error = o.summary.error or exc
            o.summary.seconds = seconds
        if on_start is not None:
            try:
                on_start([o.summary for o in outs])
            except Exception:  # noqa: BLE001 - the error that stopped the run is the one to tell
                pass
        raise
    except BrokenPipeError:
        # the reader of stdout (or stderr) went away: the outputs are interrupted, what was
        # done is committed; their sidecars say so now (the caller gets no summaries)
        seconds = time.perf_counter() - t0
        for o in outs:
            o.summary.seconds = seconds
        if on_start is not None:
            on_start([o.summary for o in outs])
        raise
    finally:
        for o in outs:
            o.close()
    seconds = time.perf_counter() - t0
    for o in outs:
        o.summary.seconds = seconds
    return [o.summary for o in outs]


def _standard_fds() -> None:
    """A standard stream started closed (``featx ... >&-``) gets ``/dev/null``: else the
    next file opened (an output, its state) takes its number, and whatever writes to that
    stream would write into it."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            new = os.open(os.devnull, os.O_RDWR)
            if new != fd:
                os.dup2(new, fd)
                os.close(new)


def job_for(targets: list[Target], plan, ref_base: str | None = None) -> Job:
    tasks = tuple(Task(target=registry.target_of(type(t.extractor)), params=params_to_dict(t.extractor.params),
                       resize=t.resize, resize_mode=t.resize_mode, encoder=t.sink.encoder(),
                       mirror_base=t.sink.mirror_base if t.sink.format == "npy-dir" else None,
                       min_size=decode_size(t, plan), describe=t.describe, pool=t.pool,
                       source_keys=tuple(t.source_keys))
                  for t in targets)
    return Job(tasks=tasks, max_pixels=plan.max_pixels or None, source_options=plan.sampling,
               max_memory=memory.resolve(plan.max_memory, plan.jobs), ref_base=ref_base,
               lenient_decode=plan.lenient_decode)


def _todo(inputs, outs: list[Output], plan, progress) -> Iterator[Input]:
    """The inputs to process: under their canonical names, this shard's, each with the
    outputs that need it (not there yet, changed, or its output gone).  Inputs every
    output has, unchanged, are skipped.  Looked up in batches, so a re-run over a large
    unchanged folder is quick."""
    canonical = Canonical()
    base = outs[0].ref_base
    stateful = [o for o in outs if o.state is not None]
    streams = len(stateful) < len(outs)
    everyone = tuple(range(len(outs)))
    batch: list[Input] = []

    def named(inp: Input) -> Input:
        if inp.canonical and base is None and not inp.paths:
            return inp  # found by a walk from a resolved root: canonical as it is, no copy
        path = canonical(inp.path)
        if path == inp.path and base is None and not inp.paths:
            return inp
        paths = tuple(canonical(p) for p in inp.paths) if inp.paths else None
        mirrors = tuple(layout.mirror_path(p, base) for p in paths) if paths and base is not None else None
        return replace(inp, path=path, paths=paths, mirrors=mirrors,
                       mirror=layout.mirror_path(path, base) if base is not None else "")

    def decide() -> Iterator[Input]:
        known = [o.known([inp.path for inp in batch]) for o in stateful]
        for inp in batch:
            ident = (identify_sequence(inp.paths, plan.hash) if inp.paths
                     else identify(inp.path, plan.hash))
            if ident is not None and inp.boxes is not None:
                ident = ident._replace(boxes="%08x" % zlib.crc32(repr(inp.boxes).encode()))
            elif ident is not None and inp.segments is not None:  # new segments of an unchanged video: redone
                ident = ident._replace(boxes="s%08x" % zlib.crc32(repr(inp.segments).encode()))
            wants = tuple(o.index for o, kn in zip(stateful, known)
                          if not o.current(inp, ident, kn.get(inp.path), plan.hash))
            if streams:
                wants = tuple(sorted(wants + tuple(o.index for o in outs if o.state is None)))
            if not wants:
                if progress is not None:
                    progress.skip(inp)
                continue
            yield replace(inp, ident=ident, wants=None if wants == everyone else wants)
        batch.clear()

    seen: set[str] = set()
    for inp in inputs:
        inp = named(inp)
        if not in_shard(inp.path, plan.shard):
            continue
        if inp.boxes is None:
            # one file is one input: the same file named twice in a run (p, ./p, q/../p) is
            # extracted and counted once, for every output (the set costs ~100 bytes an input)
            if inp.path in seen:
                if progress is not None:
                    progress.skip(inp)   # counted in the bar's total
                continue
            seen.add(inp.path)
        batch.append(inp)
        if len(batch) >= 256 or (not stateful):
            yield from decide()
    if batch:
        yield from decide()


def _uses_pool(plan) -> bool:
    return plan.executor != "ray" and (plan.jobs > 1 or plan.timeout is not None)


def _job(targets: list[Target], outs: list[Output], plan) -> Job:
    """The workers' job; the inputs' mirror paths are made against the first output's
    base that has one (each output's own base is a property of its sink)."""
    ref = next((o.base for o in outs if o.base is not None), None)
    return job_for(targets, plan, ref)


def _pool(targets: list[Target], plan, job: Job, feed=None, fork: bool = False, chunk: int = CHUNK,
          spool_dir: str | None = None) -> ProcessPool:
    chunk = max([chunk] + [t.extractor.batch_size for t in targets])
    counter = on_wait = None
    if feed is not None:  # workers count the items they load; the bar looks while waiting
        import multiprocessing as mp

        # (its lock made by the spawn context: forked workers inherit it, and it may also be
        # handed to workers started by the fork server -- an extractor that is not fork-safe, or
        # the pool that replaces a broken one while the commit thread runs -- which a lock of
        # the fork context refuses: a RuntimeError that ended the run)
        counter = feed.counter = mp.get_context("spawn").Value("q", 0)
        on_wait = feed.poll
    return ProcessPool(job, plan.jobs, chunk, spool_dir, plan.timeout,
                       fork=fork and all(t.extractor.fork_safe for t in targets), counter=counter,
                       on_wait=on_wait, extractors=[t.extractor for t in targets])


def _prestart(targets: list[Target], outs: list[Output], plan, have_inputs: bool, feed=None,
              fork: bool = False, chunk: int = CHUNK, into: list | None = None) -> ProcessPool | None:
    """The worker pool, started before the outputs are opened, when every output is made
    afresh (none has a state to continue, or ``--overwrite``) so that every input will be
    worked on: the workers then import OpenCV and build their extractors (0.1 s and more
    each) while this process locks and opens the outputs, instead of after.  None (the
    pool starts at the first chunk, as it always did) for a continued output (a re-run
    may have nothing to do), ``--wait`` (the lock may take long), no inputs, or no pool."""
    if not have_inputs or plan.wait or not _uses_pool(plan):
        return None
    if any(o.has_state() and not o.sink.overwrite for o in outs):
        return None
    pool = _pool(targets, plan, _job(targets, outs, plan), feed, fork, chunk)
    if into is not None:   # (the caller stops it if anything, even an interrupt, comes between)
        into.append(pool)
    try:
        pool.launch()
    except BaseException:
        if into is None:
            pool.close(cancel=True)
        raise
    return pool


def _executor(targets: list[Target], outs: list[Output], plan, job: Job, feed=None,
              fork: bool = False, chunk: int = CHUNK, pool: ProcessPool | None = None):
    spool_dir = None
    use_pool = _uses_pool(plan)
    if plan.executor == "ray" or use_pool:
        sink = outs[0].sink
        base = os.path.dirname(os.path.abspath(sink.output)) if sink.persistent else None
        # (made once the outputs are open: opening one removes the spool folders a killed run left)
        spool_dir = tempfile.mkdtemp(prefix=outs[0].spool_prefix(), dir=base)
    if plan.executor == "ray":
        from .ray import RayExecutor

        return RayExecutor(job, plan, spool_dir, chunk=chunk), spool_dir
    if use_pool:
        if pool is not None:   # started early (see _prestart)
            pool.spool_dir = spool_dir
            return pool, spool_dir
        return _pool(targets, plan, job, feed, fork, chunk, spool_dir), spool_dir
    return InProcess(job, [t.extractor for t in targets], tick=None if feed is None else _ticker(feed)), spool_dir


def _ticker(feed):
    """``-j 1``: an item loaded moves the bar at once (the worker is this process)."""
    def tick():
        feed.counter.add()
        feed.poll()
    return tick


def _report(failures: list, on_failure, progress) -> None:
    """One call per failed input, with every output it failed for."""
    if not failures:
        return
    by: dict[tuple[str, str], list[int]] = {}
    for k, f in failures:
        by.setdefault((f.path, f.reason), []).append(k)
    for (path, reason), ks in by.items():
        if progress is not None:
            progress.failure()
        if on_failure:
            on_failure(Failure(path, reason), ks)


def _run_locked(targets, outs: list[Output], inputs, plan, on_failure, note, progress,
                fork: bool = False, chunk: int = CHUNK, pool: ProcessPool | None = None) -> None:
    ref = next((o.base for o in outs if o.base is not None), None)
    for o in outs:
        o.ref_base = ref
    try:
        executor, spool_dir = _executor(targets, outs, plan, pool.job if pool is not None else _job(targets, outs, plan),
                                        progress, fork, chunk, pool)
    except BaseException:
        if pool is not None:
            pool.close(cancel=True)
        raise
    ok = False
    closed: BrokenPipeError | None = None   # the reader of stdout or stderr went away

    def told(msg: str) -> None:  # a note nobody reads any more is no reason to stop finishing
        try:
            note(msg)
        except BrokenPipeError:
            pass
    try:
        for o in outs:
            o.start()
        try:
            for chunk_inputs, records, payloads in executor.results(_todo(inputs, outs, plan, progress)):
                with DeferSignals():
                    failures: list = []
                    for o in outs:
                        o.append(chunk_inputs, records[o.index], payloads[o.index], failures)
                    _report(failures, on_failure, progress)
                    if progress is not None:
                        progress.done(chunk_inputs, records)
                    for o in outs:
                        o.tick(plan.commit_every)
        except KeyboardInterrupt:
            for o in outs:
                o.summary.interrupted = True
            executor.close(cancel=True)
        except OutputWriteError as exc:
            _stopped_by(outs, exc)
            executor.close(cancel=True)
        except BrokenPipeError as exc:  # the reader of stdout (or stderr) went away: as Ctrl-C
            closed = exc
            for o in outs:
                o.summary.interrupted = True
            executor.close(cancel=True)
        else:
            try:
                executor.close()
            except KeyboardInterrupt:  # Ctrl-C while the workers wind down: what was done still counts
                for o in outs:
                    o.summary.interrupted = True
                executor.close(cancel=True)
        with DeferSignals(raise_after=False) as held:
            for o in outs:
                try:
                    o.finish(plan.prune, told)
                except BrokenPipeError as exc:  # the last lines to stdout: the reader has gone
                    closed = closed or exc
                    o.summary.interrupted = True
        if held.got is not None:
            for o in outs:
                o.summary.interrupted = True
        ok = True
    except Exception as exc:
        if isinstance(exc, WorkerStartError):   # no input's fault: the run stops, keeping what was committed
            for o in outs:
                o.summary.error = o.summary.error or exc
            raise
        err = next(((o, e) for o, e in ((o, o.write_error(exc)) for o in outs) if e is not None), None)
        if err is None:
            raise
        # an error from the workers (a spool file in a removed folder) ends the loop above
        # without closing the pool; left to the interpreter's exit hook, the pool's manager
        # thread closes its wake-up pipe while that hook writes to it (EBADF traceback)
        executor.close(cancel=True)
        _stopped_by(outs, err[1], err[0])
        ok = True
    finally:
        if not ok:
            executor.close(cancel=True)
        for o in outs:
            o.wind_down(stopped=not ok)
        if spool_dir:
            shutil.rmtree(spool_dir, ignore_errors=True)
    if closed is not None:
        raise closed


def _stopped_by(outs: list[Output], exc: OutputWriteError, culprit: Output | None = None) -> None:
    """An output could not be written: it fails with ``exc``; the others stop too (what
    they committed is kept, and the next run finishes them)."""
    if culprit is None:
        culprit = _culprit(outs, exc)
    for o in outs:
        if o is culprit:
            o.summary.error = o.summary.error or exc
        elif o.summary.error is None:
            o.summary.interrupted = True


def _culprit(outs: list[Output], exc: OutputWriteError) -> Output:
    """The output ``exc`` is about: the one whose sink it broke, else the one whose file
    it names (the longest match, ending where a path ends: ``g2/x.npy`` is not ``g``'s)."""
    found = next((o for o in outs if o.sink.broken is exc), None)
    if found is not None:
        return found
    text, best, size = exc.message, outs[0], -1
    for o in outs:
        if not o.sink.persistent:
            continue
        for p in o.sink.paths() + [o.sink.state_path, o.sink.sidecar_path]:
            i = text.find(p) if p else -1
            while i >= 0:
                end = i + len(p)
                if len(p) > size and (end == len(text) or text[end] in "/: " + os.sep):
                    best, size = o, len(p)
                i = text.find(p, i + 1)
    return best
