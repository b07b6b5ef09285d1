"""Appending to a stacked output's data file, and checking what was appended.

* :class:`Writer` appends byte strings in order on a thread of its own, and has
  the kernel start writing them back early (:func:`start_writeback`), so that a
  commit's ``fsync`` finds most of them on disk already;
* :func:`parts_match` checks, before a commit, that the bytes appended since the
  last one are still exactly what was written: CRC-32 part by part, on two
  threads when there are several parts.

Used by the stacked sinks of :mod:`.sinkbase` (``csv`` and ``npy``).
"""
from __future__ import annotations

import os
import sys
import zlib
from typing import Any


def _crc_of(fd: int, start: int, end: int) -> int:
    """CRC-32 of the bytes ``[start, end)`` of ``fd`` (read in pieces)."""
    crc, pos = 0, start
    while pos < end:
        piece = os.pread(fd, min(end - pos, 1 << 22), pos)
        if not piece:
            break
        crc = zlib.crc32(piece, crc)
        pos += len(piece)
    return crc if pos == end else -1


def parts_match(fd: int, start: int, parts: list[tuple[int, int]]) -> bool:
    """Do the bytes of ``fd`` from ``start`` on have, part after part, the lengths and
    CRC-32s in ``parts`` (``(length, crc)``, one after the other)?  Every part is read
    and checked; with several, two threads check halves of them at once (reading and
    ``zlib.crc32`` let go of the GIL), so the check of a big commit takes half as long
    on two free cores (the end of a run)."""
    spans, pos = [], start
    for n, crc in parts:
        spans.append((pos, pos + n, crc))
        pos += n

    def ok(some) -> bool:
        return all(_crc_of(fd, a, b) == crc for a, b, crc in some)
    if len(spans) < 2:
        return ok(spans)
    import threading

    half = len(spans) // 2
    other: list = []   # the thread's answer, or the exception it met

    def first_half() -> None:
        try:
            other.append(ok(spans[:half]))
        except BaseException as exc:   # raised by the caller: a read error is no "mismatch"
            other.append(exc)
    t = threading.Thread(target=first_half, name="featx-verify", daemon=True)
    t.start()
    try:
        mine = ok(spans[half:])
    finally:
        t.join()
    if isinstance(other[0], BaseException):
        raise other[0]
    return mine and other[0] is True


#: ``sync_file_range(2)``'s "start writing these pages back, do not wait"
_SYNC_FILE_RANGE_WRITE = 2
_sync_range: Any = None   # libc's sync_file_range (False: not there), looked up once


def start_writeback(fd: int, start: int, end: int) -> None:
    """Have the kernel start writing ``[start, end)`` of ``fd`` to disk now, without
    waiting (Linux ``sync_file_range(SYNC_FILE_RANGE_WRITE)``; elsewhere nothing).

    Only a head start for the commit's ``fsync``, which still makes the data durable
    (this call promises nothing, and a failure here is left for that ``fsync`` to
    report): a commit then waits for what the disk has not yet written, not for every
    byte appended since the last one (58 MB of HOG rows: 0.12 s, all at the end of a
    short run)."""
    global _sync_range
    if end <= start:
        return
    if _sync_range is None:
        _sync_range = False
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                fn = ctypes.CDLL(None, use_errno=True).sync_file_range
                fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
                fn.restype = ctypes.c_int
                _sync_range = fn
            except (OSError, AttributeError):
                pass
    if _sync_range:
        try:   # (-1 and errno where the filesystem has no such call: nothing to do)
            _sync_range(fd, start, end - start, _SYNC_FILE_RANGE_WRITE)
        except Exception:   # noqa: BLE001 -- a hint only, never an error of the commit it speeds up
            pass


class Writer:
    """A thread that appends byte strings to a file in order (bounded queue).

    Every ``WRITEBACK`` bytes it has the kernel start writing the full pages appended
    so far to disk (:func:`start_writeback`), so that a commit's ``fsync`` finds most
    of them written already."""

    #: bytes appended between two :func:`start_writeback` calls
    WRITEBACK = 1 << 21

    def __init__(self, fh, depth: int = 16):
        import queue
        import threading

        self.fh = fh
        self.q: queue.Queue = queue.Queue(maxsize=depth)
        self.error: BaseException | None = None
        self._synced = self._pending = 0   # written back from (a page boundary); bytes since
        self.thread = threading.Thread(target=self._run, name="featx-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            data = self.q.get()
            try:
                if data is None:
                    return
                if self.error is None:
                    self.fh.write(data)
                    self._pending += len(data)
                    if self._pending >= self.WRITEBACK:
                        self._writeback()
            except BaseException as exc:  # reported to the main thread at the next drain
                self.error = exc
            finally:
                self.q.task_done()

    def _writeback(self) -> None:
        """Start the writeback of the whole pages written since the last call (a page
        still being filled is left for later: writing it twice would cost twice)."""
        self._pending = 0
        try:
            fd = self.fh.fileno()
            end = os.lseek(fd, 0, os.SEEK_CUR) & ~4095   # what the kernel holds (not the buffer's)
            if end > self._synced:
                start_writeback(fd, self._synced, end)
                self._synced = end
        except (OSError, ValueError):   # a hint only: the commit's fsync reports real errors
            pass

    def put(self, data) -> None:
        if self.error is not None:
            self.drain()
        self.q.put(data)

    def drain(self) -> None:
        self.q.join()
        if self.error is not None:
            err, self.error = self.error, None
            raise err

    def close(self) -> None:
        self.q.put(None)
        self.thread.join()
