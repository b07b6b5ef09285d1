"""Processes of one run live and die together.

A featx run is one main process and, with ``-j N``, N worker processes.  If
the main process is killed (``kill -9``, the OOM killer, a cron timeout), its
workers must not live on: they would sit blocked on a pipe for ever, and a
forked worker used to keep the output's lock (see :mod:`featx.output.lock`).

* :func:`featx.host.identity` names a process so that a reused pid is not
  mistaken for it: its pid and its start time (clock ticks since boot, from
  ``/proc/PID/stat``); :func:`featx.host.alive` tells whether such a process
  still runs (this host only).
* :func:`die_with` (called first thing in each worker) ties the worker to the
  main process: ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` when the worker's parent
  is the main process (fork, spawn), checked right after against the pid the
  main process passed (it may have died in between); and, where the parent is
  another process (a forkserver start: the parent is the fork server) or
  ``prctl`` is not there, a daemon thread that waits for the main process to
  end (``pidfd_open``: woken by the kernel; else polling every 0.5 s) and
  then kills the worker.

``PR_SET_PDEATHSIG`` fires when the parent *thread* ends: featx starts its pool
from the thread that runs the job and closes the pool before that thread
returns, so this is the run's lifetime.  (Ray actors, whose parent is the
raylet, use the watchdog only.)
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from ..host import alive

_LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _watch(main: tuple[int, int | None]) -> None:
    """Block until the main process ends, then kill this process."""
    pid, started = main
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)  # Linux >= 5.3, Python >= 3.9
    except (AttributeError, OSError):
        pidfd = None
    # checked after pidfd_open: if the pid was reused before, the start time differs
    if not alive(pid, started):
        _kill_self()
    if pidfd is not None:
        import select

        try:
            select.select([pidfd], [], [])  # readable once the process has exited
        except (OSError, ValueError):
            pass
        else:
            _kill_self()
    import time

    while alive(pid, started):
        time.sleep(POLL_SECONDS)
    _kill_self()


def _set_pdeathsig() -> bool:
    if not _LINUX:
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with(main: tuple[int, int | None] | None, pdeathsig: bool = True) -> None:
    """Make this (worker) process end when the main process ``main`` (``identity()``
    taken there and passed explicitly) ends, however it ends.

    ``pdeathsig=False`` where the parent is not featx's (a Ray raylet): the signal
    follows the parent *thread*, and a thread of someone else's process may end
    any time; only the watchdog is used then."""
    if main is None:
        return
    armed = pdeathsig and _set_pdeathsig()
    # PR_SET_PDEATHSIG follows the parent, which is the main process only for fork and
    # spawn starts; and the parent may have died before it was set (then we were
    # re-parented and getppid() is no longer the main process)
    if armed and os.getppid() == main[0]:
        return
    if not alive(*main):
        _kill_self()
    threading.Thread(target=_watch, args=(main,), name="featx-lifeline", daemon=True).start()
