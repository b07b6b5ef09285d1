"""Processes of one run live and die together.

A featx run is one main process and, with ``-j N``, N worker processes.  If
the main process is killed (``kill -9``, the OOM killer, a cron timeout), its
workers must not live on: they would sit blocked on a pipe for ever, and a
forked worker used to keep the output's lock (see :mod:`featx.lock`).

* :func:`identity` names a process so that a reused pid is not mistaken for
  it: its pid and its start time (clock ticks since boot, from
  ``/proc/PID/stat``).
* :func:`alive` tells whether such a process still runs (this host only).
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

_LINUX = sys.platform.startswith("linux")
PR_SET_PDEATHSIG = 1
POLL_SECONDS = 0.5


def _stat_fields(pid: int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after ``pid (comm)`` (``[0]`` the state, ``[19]``
    the start time in clock ticks since boot); None when the process is gone or the file
    cannot be read, ``[]`` when it cannot be parsed."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses
    try:
        return stat[stat.rindex(b")") + 2:].split()
    except ValueError:
        return []


def start_ticks(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None (gone, or not Linux)."""
    fields = _stat_fields(pid)
    try:
        return int(fields[19]) if fields else None
    except (ValueError, IndexError):
        return None


def started_at(pid: int) -> float | None:
    """When process ``pid`` started, in seconds since the epoch (to within 1 s), or None."""
    ticks = start_ticks(pid)
    if ticks is None:
        return None
    try:
        with open("/proc/stat", "rb") as fh:
            btime = next(int(line.split()[1]) for line in fh if line.startswith(b"btime "))
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def pid_namespace() -> int | None:
    """This process's pid namespace (pids mean something only inside one)."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def identity(pid: int | None = None) -> tuple[int, int | None]:
    """``(pid, start ticks)`` of a process (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return pid, start_ticks(pid)


def alive(pid: int, started: int | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs.

    Without a start time (not Linux, or an old record) the pid alone decides.
    A zombie counts as dead: it holds nothing any more.
    """
    if pid <= 0:
        return False
    if _LINUX and os.path.isdir("/proc/self"):
        fields = _stat_fields(pid)
        if fields is None:
            return False
        try:
            if fields[0] in (b"Z", b"X"):
                return False
            return started is None or int(fields[19]) == started
        except (ValueError, IndexError):
            return True  # unreadable: assume it runs
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
