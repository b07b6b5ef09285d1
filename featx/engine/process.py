"""The worker processes' set-up: allocator tuning, threads, start method."""
from __future__ import annotations

import os
import sys


def setup_worker_process() -> None:
    """One worker among several sharing the cores: tuned allocator, one OpenCV
    thread.  (Its FFmpeg decoding threads come with the job: see
    :attr:`featx.engine.worker.Job.decode_threads`.)"""
    tune_allocator()
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass

# ---------------------------------------------------------------------------
# allocator


def tune_allocator() -> None:
    """Keep glibc from returning big temporary buffers to the OS after every image.

    With default settings each decoded image's buffers are unmapped and faulted
    in again for the next one, which doubled decode and gradient times in our
    measurements.  Raising the mmap and trim thresholds keeps them in the heap.

    One heap (arena) for all the process's threads: with the trim threshold raised,
    every thread that allocates (the decode-ahead and writer threads, ONNX Runtime's
    and the commit check's) would otherwise keep a heap of its own with up to that much
    freed memory in it: 25-35 MB more at the peak of a ``-j 1`` ``hog+cnn`` run on
    12-MP photos (273 against 308 MB on 400 photos), for no speed we could measure —
    the big buffers (ONNX Runtime's tensors, the decoded images) are allocated once and
    reused, so threads seldom wait on the one heap's lock.
    """
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(32 * 1024 * 1024))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(256 * 1024 * 1024))
    os.environ.setdefault("MALLOC_ARENA_MAX", "1")
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8
        libc.mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
        libc.mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))
        libc.mallopt(M_ARENA_MAX, int(os.environ["MALLOC_ARENA_MAX"]))
    except (OSError, AttributeError, ValueError):
        pass


def start_method(fork: bool = False) -> str:
    """``fork`` where it is safe, else ``forkserver``/``spawn``.

    ``fork``: the caller says that forking its process is safe: the CLI does
    (its process has run nothing threaded, OpenCV, ONNX Runtime or FFmpeg, when
    the pool starts) and passes it down through :func:`featx.plan.execute`;
    library callers (a notebook that already used OpenCV) get
    forkserver/spawn.

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
    if fork and "fork" in methods and sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"
