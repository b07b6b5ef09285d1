"""Holding Ctrl-C and SIGTERM while the output is between two writes."""
from __future__ import annotations

class DeferSignals:
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
