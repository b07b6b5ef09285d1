"""What the operating system says about this machine and its processes.

Neutral ground for the engine and the output side alike (neither imports the
other for these): how many CPUs this process may use, and a process's
identity and liveness read from ``/proc/PID/stat`` (a pid with its start time,
so that a reused pid is not mistaken for the process that had it).
"""
from __future__ import annotations

import os
import sys

_LINUX = sys.platform.startswith("linux")


def default_jobs() -> int:
    """The CPUs this process may run on (its affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


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
