"""One writer per output: an advisory lock held for the whole run.

The lock is ``fcntl.flock`` on a hidden file beside the output, so the kernel
releases it when the holder dies (even by SIGKILL): a lock left by a killed
run is stale by construction and the next run takes it over.  The file holds
who has it (pid, start time, pid namespace, host, command) for the message the
second run prints, and to tell a live holder from a dead one.

An flock belongs to the open file description, which a forked child shares:
a child that outlived its run would keep the lock of a dead run for ever.
So the descriptor is never passed on: it is opened close-on-exec, and every
child forked while it is held closes its copy at once (``os.register_at_fork``;
the pool's worker initializer does it again).  Closing a copy never releases
the holder's lock; ``flock(LOCK_UN)`` would, so a child never calls it.

A lock still held although the run recorded as its holder is dead (on this
host and in this pid namespace, by pid *and* start time, so a reused pid is not
taken for the holder) is held by orphans of that run (forked workers of a featx
before this safeguard).  Such a lock is **taken over**: under a second,
short-lived guard lock (``LOCKFILE-guard``), the next run checks that the lock
file is still the one it found, kills the orphans (the processes whose open
file owns the flock on that file: they can only be children of the dead
holder; only those whose command line shows Python or featx), then puts a
fresh lock file in its place (locked first, then renamed over the old one), so
the takeover never depends on the kill.  A run that finds the file replaced
under it starts again with the new one: of two runs racing to take over, one
wins and the other finds the winner alive.
"""
from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from collections.abc import Callable

from .. import host
from ..errors import ExitCode, FeatxError, LoudNote


class LockedError(FeatxError):
    """Another run holds the output's lock."""

    exit_code = ExitCode.LOCKED


#: Lock descriptors held by this process: a forked child closes them.
_HELD: set[int] = set()


def drop_inherited() -> None:
    """In a forked child: close the lock descriptors the parent holds (without
    unlocking: the lock stays the parent's)."""
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=drop_inherited)


def _read_holder(fd: int) -> dict:
    """The holder record in the open lock file ``fd`` (trailing bytes are ignored: a
    holder writes its record over the old one, then cuts the file)."""
    try:
        text = os.pread(fd, 65536, 0).decode("utf-8", "replace").strip()
        if not text:
            return {}
        rec, _ = json.JSONDecoder().raw_decode(text)
        return rec if isinstance(rec, dict) else {}
    except (OSError, ValueError):
        return {}


def _mtime(fd: int) -> float | None:
    try:
        return os.fstat(fd).st_mtime
    except OSError:
        return None


def _same_file(fd: int, path: str) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def holder_is_dead(holder: dict, written: float | None = None) -> bool:
    """True only when the recorded holder is surely gone: recorded on this host (and
    pid namespace, when recorded), and no process with its pid and start time runs.
    A record without a start time (an earlier featx's) is judged by its pid, and by
    ``written`` (when the record was written): a process that started later is not it."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if holder.get("host") != socket.gethostname():
        return False
    ns = holder.get("pidns")
    if ns is not None and ns != host.pid_namespace():
        return False
    started = holder.get("start_ticks")
    if isinstance(started, int):
        return not host.alive(pid, started)
    if not host.alive(pid, None):
        return True
    since = host.started_at(pid)
    return written is not None and since is not None and since > written + 60  # the pid was reused


def orphans_holding(path_stat: os.stat_result) -> list[int]:
    """Processes of this host whose open file owns an flock on the file ``path_stat``
    (from ``/proc/PID/fdinfo``, which lists a lock only for the file that owns it)."""
    me = os.getpid()
    found = []
    try:
        pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return []
    for pid in pids:
        if pid == me:
            continue
        fd_dir = f"/proc/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                st = os.stat(f"{fd_dir}/{fd}")
                if (st.st_dev, st.st_ino) != (path_stat.st_dev, path_stat.st_ino):
                    continue
                with open(f"/proc/{pid}/fdinfo/{fd}") as fh:
                    info = fh.read()
            except OSError:
                continue
            if any(line.startswith("lock:") and "FLOCK" in line for line in info.splitlines()):
                found.append(pid)
                break
    return found


def _is_python_or_featx(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().split(b"\0")
    except OSError:
        return False
    return bool(argv) and ("python" in os.path.basename(argv[0].decode("utf-8", "replace"))
                           or any(b"featx" in a for a in argv))


class OutputLock:
    def __init__(self, path: str):
        self.path = path
        self.guard_path = path + "-guard"
        self.fd: int | None = None
        self.previous: dict | None = None  # holder info left by an earlier (dead) run
        self.taken_over: dict | None = None  # the dead holder whose orphans' lock was taken over
        self.killed: list[int] = []         # its orphans that were killed

    def _holder(self) -> dict:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            return _read_holder(fd)
        finally:
            os.close(fd)

    def acquire(self, wait: float | None = 0.0, on_wait: Callable[[dict], None] | None = None,
                on_note: Callable[[str], None] | None = None) -> None:
        """Take the lock.  ``wait``: 0 = fail at once, None = wait forever, else seconds.

        A lock held only by orphans of a dead run is taken over (``on_note`` says so)."""
        import fcntl

        deadline = None if wait is None else time.monotonic() + wait
        told = False
        while True:
            try:  # never through a link planted in its place (its target would get the holder record)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise
                raise FeatxError(f"{self.path} is a symbolic link", "featx never writes its lock through a "
                                 "link; remove it") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                try:
                    got = self._take_over(fd, holder, on_note) if holder_is_dead(holder, _mtime(fd)) else False
                except BaseException:
                    os.close(fd)
                    raise
                if got is not False:
                    os.close(fd)
                    if got is not None:
                        fd = got
                        break
                    continue  # the file was replaced or freed meanwhile: look again
                os.close(fd)
                if deadline is not None and time.monotonic() >= deadline:
                    who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                           f"running since {holder.get('started', '?')}")
                    d, b = os.path.split(self.path)   # .NAME.featx-lock: say which output
                    name = os.path.join(d, b[1:-len(".featx-lock")]) \
                        if b.startswith(".") and b.endswith(".featx-lock") else self.path
                    raise LockedError(f"{name}: another featx run is writing this output ({who})",
                                      "wait for it, or pass --wait to queue behind it") from None
                if on_wait and not told:
                    on_wait(holder)
                    told = True
                time.sleep(0.2)
                continue
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, self.path):
                self.previous = _read_holder(fd) or None
                self._write_record(fd)
                break
            os.close(fd)  # we locked a file that a takeover has just replaced: try the new one
        _HELD.add(fd)
        self.fd = fd

    @staticmethod
    def _write_record(fd: int) -> None:
        pid, ticks = host.identity()
        data = (json.dumps({"pid": pid, "start_ticks": ticks, "pidns": host.pid_namespace(),
                            "host": socket.gethostname(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                            "command": sys.argv}) + "\n").encode()
        os.pwrite(fd, data, 0)  # over the old record, then cut: a reader always finds one whole record
        os.ftruncate(fd, len(data))

    def _take_over(self, fd: int, holder: dict, on_note) -> int | None | bool:
        """``fd`` is the lock file, locked by someone although its recorded holder is dead.
        Returns a descriptor of a fresh lock file, locked and in place; None when the
        file was replaced (or released) meanwhile (the caller looks again); False when
        the holder turns out to be alive after all."""
        import fcntl

        guard = os.open(self.guard_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(guard, fcntl.LOCK_EX)  # held for milliseconds by whoever has it
            if not _same_file(fd, self.path):
                return None  # another run took over first
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_UN)  # the orphans are gone: take the file the usual way
                return None
            holder = _read_holder(fd)
            if not holder_is_dead(holder, _mtime(fd)):
                return False
            old = os.fstat(fd)
            sharing = orphans_holding(old)
            if holder.get("pid") in sharing:
                return False  # the recorded pid owns the lock: it is the holder, alive
            killed = []
            import signal

            for pid in sharing:
                if _is_python_or_featx(pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    except OSError:
                        pass
            tmp = f"{self.path}.{os.getpid()}.new"
            new = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(new, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a file nobody else knows yet
                self._write_record(new)
                os.rename(tmp, self.path)
            except BaseException:
                os.close(new)
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            self.previous = holder
            self.taken_over = holder
            self.killed = killed
            if on_note:
                done = (f"; stopped them (pid {', '.join(map(str, killed))})" if killed else "")
                on_note(LoudNote(f"the run holding this output (pid {holder.get('pid')}) is dead; its orphaned "
                        f"workers still held the lock{done}; taking over"))
            return new
        finally:
            os.close(guard)

    def release(self) -> None:
        if self.fd is not None:
            os.ftruncate(self.fd, 0)  # a clean exit leaves no holder behind
            _HELD.discard(self.fd)
            os.close(self.fd)  # closing drops the flock
            self.fd = None
