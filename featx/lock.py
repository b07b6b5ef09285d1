"""One writer per output: an advisory lock held for the whole run.

The lock is ``fcntl.flock`` on a hidden file beside the output, so the kernel
releases it when the holder dies (even by SIGKILL): a lock left by a killed
run is stale by construction and the next run takes it over.  The file holds
who has it (pid, host, start time, command) for the message the second run
prints.
"""
from __future__ import annotations

import json
import os
import socket
import sys
import time

from .errors import ExitCode, FeatxError


class LockedError(FeatxError):
    """Another run holds the output's lock."""

    exit_code = ExitCode.LOCKED


class OutputLock:
    def __init__(self, path: str):
        self.path = path
        self.fd: int | None = None
        self.previous: dict | None = None  # holder info left by an earlier (dead) run

    def _holder(self) -> dict:
        try:
            with open(self.path) as fh:
                return json.loads(fh.read() or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self, wait: float | None = 0.0, on_wait=None) -> None:
        """Take the lock.  ``wait``: 0 = fail at once, None = wait forever, else seconds."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = None if wait is None else time.monotonic() + wait
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder()
                if deadline is not None and time.monotonic() >= deadline:
                    os.close(fd)
                    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                           f"running since {holder.get('started', '?')}")
                    raise LockedError(f"another featx run is writing this output ({who})",
                                      "wait for it, or pass --wait to queue behind it") from None
                if on_wait and not told:
                    on_wait(holder)
                    told = True
                time.sleep(0.2)
        self.previous = self._holder() or None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # a clean exit leaves no holder behind
            os.close(self.fd)  # closing drops the flock
            self.fd = None
