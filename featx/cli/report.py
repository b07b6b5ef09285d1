"""How the CLI reports: ``featx: ...`` lines on stderr, a :class:`FeatxError` turned into
``featx: error: ...`` (and its hint) with its exit code, ``--traceback``, and exit 141
when the reader of stdout went away."""
from __future__ import annotations

import os
import sys

import click

from ..errors import ExitCode, FeatxError


def _say(msg: str) -> None:
    click.echo(f"featx: {msg}", err=True)


def _fail(exc: FeatxError, ctx: click.Context | None = None) -> None:
    _say(f"error: {exc.message}")
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)
    if _show_traceback(ctx):
        import traceback   # (only for --traceback: not at every start-up)

        traceback.print_exc()
    sys.exit(int(exc.exit_code))


def _pipe_closed() -> int:
    """``featx ... -o - | head``: the reader went away.  Not a failed input: exit 141,
    as a shell reports a command ended by SIGPIPE, with no traceback."""
    try:  # no "Exception ignored" at exit when Python flushes stdout into the closed pipe
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return int(ExitCode.PIPE_CLOSED)


def _show_traceback(ctx: click.Context | None) -> bool:
    root = ctx.find_root() if ctx is not None else click.get_current_context(silent=True)
    return bool(root and root.find_root().obj and root.find_root().obj.get("traceback"))


