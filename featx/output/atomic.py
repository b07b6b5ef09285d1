"""Atomic writes, and writes that never leave an output folder.

Every file featx writes whole (sidecars, pictures, codebooks, merged outputs,
``npy-dir`` files, compacted outputs) goes through :func:`write_atomic`: the
bytes go to a hidden temporary name in the same folder, are made durable,
and are renamed over the target, so a reader sees the old file or the new
one, never a part.

Inside an ``npy-dir`` output folder, paths are walked one component at a
time from the folder itself with ``O_NOFOLLOW``: a symbolic link planted
inside the output (``out/photos -> /elsewhere``) is refused, never written
through (:class:`LinkInOutput`).  The output folder itself may be a link:
that is the user's choice of where the output lives.
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from typing import IO

from ..errors import ExitCode, FeatxError

TMP_MARK = ".featx-tmp-"


class OutputWriteError(FeatxError):
    """The output could not be written (disk full, I/O error, removed while written).
    Not the fault of one input: the run stops, keeping what was committed."""

    exit_code = ExitCode.OUTPUT_FAILED


class LinkInOutput(FeatxError):
    """A path inside an output folder is a symbolic link: refused for that input."""

    exit_code = ExitCode.ITEMS_FAILED


#: errno values that mean "the output cannot be written", whatever the input
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG})


def is_disk_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def disk_error(what: str, exc: OSError) -> OutputWriteError:
    """An :class:`OutputWriteError` for an ``OSError`` met while writing ``what``."""
    return OutputWriteError(f"cannot write {what}: {exc.strerror or exc}",
                            "what was committed is kept; free space (or fix the disk) and run the same "
                            "command again to finish")


def tmp_name(name: str) -> str:
    """A hidden temporary name beside ``name`` (same folder, so rename is atomic).
    It carries the pid, so a leftover of a dead process can be told apart."""
    d, b = os.path.split(name)
    return os.path.join(d, f".{b}{TMP_MARK}{os.getpid()}")


def _write_fd(fd: int, data: bytes | str | Callable[[IO[bytes]], None], durable: bool) -> None:
    with os.fdopen(fd, "wb", closefd=False) as fh:
        if callable(data):
            data(fh)
        else:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        fh.flush()
        if durable:
            os.fsync(fh.fileno())


def write_file(path: str, data: bytes | str | Callable[[IO[bytes]], None]) -> int:
    """Write ``path`` (itself a temporary name, renamed later by the caller) whole and
    durably, never through a link; returns its size.  Removed again on any error."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o644)
    try:
        try:
            _write_fd(fd, data, True)
            return os.fstat(fd).st_size
        finally:
            os.close(fd)
    except BaseException:
        try:
            os.unlink(path)
        except OSError:
            pass
        raise


def write_atomic(path: str, data: bytes | str | Callable[[IO[bytes]], None], *, dir_fd: int | None = None,
                 durable: bool = True) -> int:
    """Write ``path`` completely under a temporary name, then rename it over ``path``.

    ``data`` is bytes, text (UTF-8) or a function that writes into a binary file.
    With ``dir_fd``, ``path`` is a bare name inside that folder (no link is
    followed: an existing link at ``path`` is replaced, not written through).
    Returns the number of bytes written.  On any error the temporary file is
    removed and the target is left as it was.
    """
    tmp = tmp_name(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
    try:
        try:
            _write_fd(fd, data, durable)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        os.replace(tmp, path, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        try:
            os.unlink(tmp, dir_fd=dir_fd)
        except OSError:
            pass
        raise
    return size


# ---------------------------------------------------------------------------
# link-safe paths inside an output folder


def open_dir(root: str, rel: str, create: bool = True) -> int:
    """A descriptor of folder ``root/rel``, reached one component at a time
    without following links (``rel`` is relative and has no ``..``).
    Missing folders are made when ``create``.  Raises :class:`LinkInOutput`
    if a component is a link or not a folder."""
    flags = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(root, flags)
    done = []
    try:
        for part in [p for p in rel.split(os.sep) if p and p != os.curdir]:
            if part == os.pardir:
                raise LinkInOutput(f"{os.path.join(root, rel)}: '..' in an output path")
            try:
                nfd = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass
                nfd = os.open(part, flags | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    where = os.path.join(root, *done, part)
                    what = "a symbolic link" if os.path.islink(where) else "not a folder"
                    raise LinkInOutput(f"cannot write its output: {where} is {what}",
                                       "featx never writes through links inside its output folder; "
                                       "remove it, or choose another -o") from None
                raise
            os.close(fd)
            fd = nfd
            done.append(part)
    except BaseException:
        os.close(fd)
        raise
    return fd


def write_under(root: str, rel: str, data: bytes | str | Callable[[IO[bytes]], None],
                durable: bool = False) -> int:
    """:func:`write_atomic` of ``root/rel``, never following a link below ``root``."""
    folder, name = os.path.split(rel)
    fd = open_dir(root, folder)
    try:
        return write_atomic(name, data, dir_fd=fd, durable=durable)
    finally:
        os.close(fd)


def remove_under(root: str, rel: str) -> None:
    """Remove the file, link or folder tree ``root/rel`` without following any link below ``root``."""
    folder, name = os.path.split(rel)
    try:
        fd = open_dir(root, folder, create=False)
    except (FileNotFoundError, LinkInOutput):
        return
    try:
        _remove_entry(fd, name)
    finally:
        os.close(fd)


def _remove_entry(dir_fd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except FileNotFoundError:
        return
    except (IsADirectoryError, PermissionError):
        pass
    try:
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError:
        return
    try:
        for entry in os.listdir(sub):
            _remove_entry(sub, entry)
    finally:
        os.close(sub)
    try:
        os.rmdir(name, dir_fd=dir_fd)
    except OSError:
        pass


def file_size_under(root: str, rel: str) -> int | None:
    """Size of the regular file ``root/rel`` (None if missing, a link, or behind a link)."""
    folder, name = os.path.split(rel)
    try:
        fd = open_dir(root, folder, create=False)
    except (OSError, LinkInOutput):
        return None
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(fd)
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def is_stale_tmp(name: str) -> bool:
    """A temporary file left by a process that is gone."""
    i = name.rfind(TMP_MARK)
    if i < 0:
        return False
    tail = name[i + len(TMP_MARK):]
    from ..host import alive

    return tail.isdigit() and not alive(int(tail), None)  # featx's own names end in the writer's pid


def sweep_tmp(folder: str, recursive: bool = False, names: list[str] | None = None) -> int:
    """Remove temporary files of dead processes in ``folder`` (and below, without
    following links, when ``recursive``) — only those of files called ``names``
    when given; returns how many."""
    own = tuple(f".{n}{TMP_MARK}" for n in names) if names is not None else None
    removed = 0
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError:
        return 0
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                if recursive and not e.is_symlink():
                    removed += sweep_tmp(e.path, True, names)
            elif TMP_MARK in e.name and (own is None or e.name.startswith(own)) and is_stale_tmp(e.name):
                os.unlink(e.path)
                removed += 1
        except OSError:
            pass
    return removed


def same_file(path: str, others) -> str | None:
    """The first of ``others`` that is the file ``path`` (device and inode, links followed),
    or None — also when ``path`` does not exist.  For side files that must never be written
    over a file the command reads or an output's own files."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    for other in others:
        try:
            so = os.stat(other)
        except (OSError, TypeError, ValueError):
            continue
        if (so.st_dev, so.st_ino) == (st.st_dev, st.st_ino):
            return other
    return None


def check_replaceable(path: str, what: str, *, overwrite: bool, ours: Callable[[str], bool],
                      own: str = "name a file of its own") -> None:
    """May featx write the side file ``path`` (a sidecar, a summary, a picture)?  Yes where
    nothing is, where featx wrote what is there (``ours(path)``), or with ``overwrite``; never
    over anything that is not a regular file.  Otherwise a usage error naming ``what``."""
    import stat

    from ..errors import UsageError

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise UsageError(f"cannot write the {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"the {what} {path} is not a regular file; featx will not replace it",
                         f"{own}; nothing was written")
    if not overwrite and not ours(path):
        raise UsageError(f"the {what} {path} exists and featx did not write it",
                         f"{own}, or pass --overwrite to replace it; nothing was written")
