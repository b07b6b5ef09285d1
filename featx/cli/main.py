"""The ``featx`` group and the entry points: :func:`main` (SIGTERM as Ctrl-C, a
:class:`~featx.errors.FeatxError` as a one-line error and an exit code, ``--traceback``
for the whole story) and :func:`console`, the ``featx`` command itself (``main``, then
out without the interpreter's teardown where only featx's own code ran); the commands,
one module each."""
from __future__ import annotations

import os
import signal
import sys
from typing import NoReturn

import click

from .. import __version__
from ..errors import ExitCode, FeatxError
from .options import CONTEXT
from .report import _fail, _pipe_closed, _say


class _Commands(click.Group):
    """The commands, each imported from its module when it is named (or listed, as by
    ``featx --help``): ``featx extract`` does not build fifteen other commands first."""

    #: name -> (module of featx.cli, attribute)
    lazy = {"list": ("list", "list_cmd"), "info": ("info", "info_cmd"), "extract": ("extract", "extract_cmd"),
            "run": ("extract", "run_cmd"), "show": ("show", "show_cmd"), "detect": ("detect", "detect_cmd"),
            "codebook": ("codebook", "codebook_cmd"), "merge": ("merge", "merge_cmd"),
            "inspect": ("inspect", "inspect_cmd"), "convert": ("convert", "convert_cmd"),
            "models": ("models", "models_cmd"), "similar": ("similar", "similar_cmd"),
            "duplicates": ("duplicates", "duplicates_cmd"), "report": ("htmlreport", "report_cmd"),
            "pool": ("pool", "pool_cmd"), "segments": ("segments", "segments_cmd")}

    def list_commands(self, ctx):
        return sorted(set(self.commands) | set(self.lazy))

    def get_command(self, ctx, name):
        if name not in self.commands:
            import importlib

            # an unknown name loads them all: click's "did you mean" looks among the loaded
            for n in [name] if name in self.lazy else [n for n in self.lazy if n not in self.commands]:
                module, attr = self.lazy[n]
                self.add_command(getattr(importlib.import_module(f"{__package__}.{module}"), attr), n)
        return super().get_command(ctx, name)


@click.group(cls=_Commands, context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="featx")
@click.option("--traceback", is_flag=True, help="Show the full Python traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """Turn images and image folders into feature vectors (.npy / .csv).

    \b
    featx list                                 extractors available
    featx info hog --size 640x480              parameters and output size
    featx extract hog photos/ -o hog.npy       one row per image
    featx extract gradients+cnn photos/ -o f/  several features, one decode
    featx run features.toml                    a recipe of several outputs
    featx show hog photo.jpg -o hog.png        a picture of what it computes
    featx inspect hog.npy                      what an output holds
    featx convert hog.npy hog.csv              an output in another format
    featx pool clip.npy -o clip-mean.npy       one row per video (segment, track...)
    featx similar cnn.npy --k 5                nearest rows of every row
    featx duplicates cnn.npy --keep largest    near duplicates: what to remove
    featx report hog.npy                       one HTML page to look at it
    featx segments clip.mp4 -o shots.csv       segments at shot boundaries

    Exit codes: 0 all good; 1 some inputs failed (the rest written);
    2 usage or configuration error; 74 the output could not be written
    (disk full); 75 another run holds the output; 130 interrupted;
    141 the reader of stdout went away.
    """
    ctx.ensure_object(dict)["traceback"] = traceback


def _quiet_native_libraries() -> None:
    """Before numpy/OpenCV load: one BLAS thread per process (featx parallelises with
    processes; threaded BLAS in several of them made encodings 5-20x slower), and no
    FFmpeg decoder chatter on stderr for damaged videos (featx reports them itself)."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")  # featx reports bad inputs itself, one line each


def main(argv: list[str] | None = None) -> None:
    """Console entry point: SIGTERM behaves like Ctrl-C (commit what is done, exit 130)."""
    import logging

    _quiet_native_libraries()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("featx: %(message)s"))
    log = logging.getLogger("featx")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if any(a in ("-q", "--quiet") for a in (argv or sys.argv[1:])) else logging.INFO)

    me = os.getpid()

    # A worker forked from this process runs these handlers until it sets its own (the start of
    # its initializer): a pool stopped while its workers start (-j N starts them before the
    # outputs are opened: a refused lock, a full disk, Ctrl-C) must not make them print a
    # KeyboardInterrupt traceback.  There SIGTERM ends the process as by default, and SIGINT
    # is ignored (the main process decides about interrupts), as a worker does once started.
    def on_term(signum, frame):
        if os.getpid() != me:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGTERM)
            return
        raise KeyboardInterrupt

    def on_int(signum, frame):
        if os.getpid() == me:
            raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:   # (not where the caller chose)
            signal.signal(signal.SIGINT, on_int)
    except ValueError:  # not the main thread (embedded use)
        pass
    try:
        # obj "fork": this process runs nothing threaded before the pool starts, so its
        # worker pools may fork it (see featx.engine.process.start_method)
        rc = cli.main(args=argv, prog_name="featx", standalone_mode=False, obj={"fork": True})
    except click.exceptions.Exit as exc:
        rc = exc.exit_code
    except click.ClickException as exc:
        exc.show()
        rc = exc.exit_code
    except (KeyboardInterrupt, click.Abort):  # outside a run (e.g. while reading stdin)
        _say("interrupted")
        rc = int(ExitCode.INTERRUPTED)
    except BrokenPipeError:
        rc = _pipe_closed()
    except FeatxError as exc:   # one no command turned into its message (featx list: a damaged plugin)
        _fail(exc)
    sys.exit(rc if isinstance(rc, int) else 0)


def console() -> NoReturn:
    """The ``featx`` command (and ``python -m featx``): :func:`main`, then out.

    What :func:`main` does is over when it returns: every output is committed (written,
    checked and fsynced, or left as it was) and closed, the worker processes are gone.
    What the interpreter does after that — join the threads that are not daemons, run
    the ``atexit`` functions (``logging``'s flush, ``multiprocessing``'s clean-up, a
    ``weakref.finalize``), flush stdout and stderr — is done here in the same order;
    what it would do next, collect and free every object of every module one by one,
    changes nothing outside this process and cost 50-100 ms of a 0.3-0.8-s command
    (ONNX Runtime's and numpy's modules, the extractors' tables), so it is skipped
    (``os._exit``).  Not when code that is not featx's ran in this process (an
    extractor plugin: an object of its may write something when it is freed), not under
    a tracer or profiler (``python -m cProfile -m featx`` writes its numbers after the
    command returns; a debugger, coverage), and not when flushing stdout or stderr fails:
    then the interpreter exits as it always does.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:  # pragma: no cover - main always exits
        code = 0
    from ..registry import foreign_code_ran

    if not isinstance(code, int) or foreign_code_ran() or sys.gettrace() is not None \
            or sys.getprofile() is not None:
        sys.exit(code)
    import atexit
    import threading

    for t in threading.enumerate():
        if t is not threading.current_thread() and not t.daemon:
            t.join()
    atexit._run_exitfuncs()
    try:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except (OSError, ValueError):
        sys.exit(code)   # the interpreter's own flush and message, as before
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    console()
