"""Periodic commits with the fsync on a background thread."""
from __future__ import annotations

import os

from .sinkbase import Sink
from .state import Entry, State

class Committer:
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
