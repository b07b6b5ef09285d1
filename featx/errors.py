"""Error types and exit codes.

Library code raises :class:`FeatxError` (or a subclass) with a one-line
message and an optional hint; the CLI turns it into ``featx: error: ...`` on
stderr and the matching exit code.  Library code never imports click.
"""
from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """Process exit codes, documented in the README (and docs/production.md)."""

    OK = 0            #: everything was processed and written
    ITEMS_FAILED = 1  #: some inputs failed; everything else was written
    USAGE = 2         #: usage or configuration error; nothing was processed
    OUTPUT_FAILED = 74  #: the output could not be written (disk full, I/O error); what was committed is kept
    LOCKED = 75       #: another run is writing the same output (EX_TEMPFAIL: try later)
    INTERRUPTED = 130 #: SIGINT/SIGTERM; what was done is committed, marked incomplete
    PIPE_CLOSED = 141 #: the reader of stdout went away (``| head``); as a shell reports SIGPIPE


class LoudNote(str):
    """A note that ``--quiet`` still prints: something happened that a cron job's owner
    must hear of (a dead run's orphans stopped, an output damaged and rebuilt).  Plain
    ``str`` notes (resumed, waiting, inputs gone) are silenced by ``--quiet``."""


class FeatxError(Exception):
    """An error with a message for the user and an optional hint."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(FeatxError):
    """Bad command line, configuration or parameter value."""


class ParamError(UsageError):
    """An invalid or unknown extractor parameter."""


class PluginError(UsageError):
    """An unknown extractor, or one whose plugin failed to import."""


class OutputError(UsageError):
    """The output cannot be written as asked (exists, incompatible format...)."""


class WorkerStartError(FeatxError):
    """The worker processes could not start: an extractor that builds in this process
    failed to build in them (its constructor raised, or its process died before its
    first input).  The run's error, never an input's: the run stops (exit 2), and no
    input is recorded as failed because of it."""


class InputError(FeatxError):
    """One input could not be read or decoded.  Per-item: the run goes on."""

    exit_code = ExitCode.ITEMS_FAILED


def opencv_message(exc: BaseException) -> str:
    """The sentence of an OpenCV error without OpenCV's build path, line, code and
    function: ``OpenCV(4.x) /io/.../dis_flow.cpp:1471: error: (-201:Incorrect size of
    input array) The input image must ... in function 'calc'`` gives ``The input image
    must ...``.  Anything else is returned as its first line."""
    import re

    text = str(exc).strip()
    m = re.search(r"error: \((-?\d+):([^)]*)\)\s*(.*?)(?:\s+in function '[^']*')?\s*$", text, re.S)
    if not m:
        return text.splitlines()[0] if text else type(exc).__name__
    detail = " ".join(m.group(3).split())
    return detail or m.group(2).strip()
