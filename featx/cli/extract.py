"""``featx extract NAME``, ``featx extract a+b+c`` (several extractors in one pass) and
``featx run RECIPE``: each builds a :class:`~featx.plan.Plan` and runs it with a progress
bar and a summary line."""
from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import ExitCode, FeatxError, LoudNote
from ..names import printable, quote_name
from .options import CONTEXT, ExtractorGroup, SectionedCommand, _Described, _extract_options, _split_params, \
    _with_extractor_options
from .report import _fail, _pipe_closed, _say


def _extract_examples(cls) -> list[str]:
    """Two or three commands that run as written for extractor ``cls``."""
    name = cls.name
    try:
        kind = _Described.of(cls).output_kind()
    except Exception:  # noqa: BLE001 - a plugin that cannot be built yet: vector examples
        kind = "vector"
    if cls.temporal:
        return [f"featx extract {name} clip.mp4 -o {name}.npy                 # a row per frame",
                f"featx extract {name} frames/ --frames -o {name}.npy         # folders of frames, in order",
                f"featx extract {name} videos/ --video --fps 5 -o {name}.csv  # every video found, 5 frames/s"]
    if kind == "regions":
        return [f"featx extract {name} photos/ -o {name}.csv                  # a row per region found",
                f"featx extract {name} clip.mp4 -o {name}.csv --fps 1         # regions of a frame a second"]
    if kind in ("keypoints", "dense"):
        return [f"featx extract {name} photos/ -o {name}/                     # one file per image (npy-dir)",
                f"featx extract {name} photos/ -o {name}-640/ --resize 640x480 -j 2",
                f"featx extract {name}+hog photos/ -o feats/ --resize 256x256  # several extractors, one pass"]
    if not getattr(cls, "shared_resize", True):  # fits images to its own input: no --resize
        return [f"featx extract {name} photos/ -o {name}.npy -j 2             # a row per image",
                f"featx extract {name} clip.mp4 -o {name}.csv --fps 1            # a row per second of video",
                f"find photos -name '*.jpg' | featx extract {name} - -o - > {name}.csv"]
    return [f"featx extract {name} photos/ -o {name}.npy --resize 256x256    # a row per image",
            f"featx extract {name} clip.mp4 -o {name}.csv --fps 1            # a row per second of video",
            f"find photos -name '*.jpg' | featx extract {name} - -o - --resize 256x256 > {name}.csv"]


def _build_extract(cls) -> click.Command:
    def callback(**kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        try:
            _do_extract(ctx, cls, params, **kwargs)
        except FeatxError as exc:
            _fail(exc, ctx)
        except BrokenPipeError:  # click would turn it into exit 1, "some inputs failed"
            sys.exit(_pipe_closed())

    cmd = SectionedCommand(cls.name, callback=callback, context_settings=CONTEXT,
                           help=f"{cls.summary}\n\nINPUTS are image files, folders (walked recursively, "
                                "sorted), videos, or - for paths on stdin. Run again, it does only what is "
                                "new or changed.",
                           short_help=cls.summary, params_title=f"{cls.name} options (featx info {cls.name} "
                                                                 "describes them)",
                           examples=_extract_examples(cls))
    common = _extract_options()
    cmd.params = _with_extractor_options(cls, common)
    return cmd


def _split_run(kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A command's run options, by :mod:`featx.runopts`: ``(OutputPlan fields, Plan fields,
    the command line's own)``."""
    from ..runopts import RUN_OPTIONS

    parts: dict[str, dict[str, Any]] = {"output": {}, "run": {}, "cli": {}}
    for o in RUN_OPTIONS:
        if o.name in kwargs:
            parts[o.scope][o.attr] = kwargs.pop(o.name)
    return parts["output"], parts["run"], parts["cli"]


def _run_fields(kwargs: dict[str, Any], only_given: click.Context | None = None) -> dict[str, Any]:
    """The Plan fields of the run options in ``kwargs`` (with ``only_given``: just those set
    on the command line, which override a recipe's)."""
    from ..runopts import RUN

    out = {}
    for o in RUN:
        if o.name not in kwargs:
            continue
        if only_given is not None:
            src = only_given.get_parameter_source(o.name)
            if src not in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
                continue
            if o.kind == "paths" and not kwargs[o.name]:  # no INPUTS given: the recipe's
                continue
        out[o.attr] = kwargs[o.name]
    return out


def _do_extract(ctx, cls, params, **kwargs):
    from ..plan import OutputPlan, Plan

    per_output, run, own = _split_run(kwargs)
    plan = Plan(outputs=(OutputPlan(cls.name, params=params, **per_output),), **run)
    _execute(ctx, plan, desc=cls.name, **own)


def _build_multi(names: str) -> click.Command:
    """``featx extract hog+gradients+cnn INPUTS -o feats/``: one pass, one output per extractor."""
    from ..recipe import short_form

    def callback(print_recipe, **kwargs):
        ctx = click.get_current_context()
        try:
            import dataclasses

            from ..plan import Plan

            per_output, run, own = _split_run(kwargs)
            output = per_output.pop("path")  # the folder; the other per-output options apply to each
            outs = []
            for o in short_form(names, output):
                mine = dict(per_output)
                if mine.get("resize") and o.extractor in declined:
                    mine.pop("resize")
                    mine.pop("resize_mode", None)
                    if not own.get("quiet") and not print_recipe:
                        _say(f"{o.extractor}: --resize is not applied (it fits each image to its network's "
                             f"input itself); {o.path} is what `featx extract {o.extractor}` writes")
                outs.append(dataclasses.replace(o, **mine))
            fmt = per_output.get("format")
            if fmt:  # NAME.csv, NAME.npy, NAME/
                outs = [dataclasses.replace(o, path=os.path.splitext(o.path.rstrip("/"))[0]
                                            + ("/" if fmt == "npy-dir" else "." + fmt)) for o in outs]
            plan = Plan(outputs=tuple(outs), **run)
            if print_recipe:
                from ..recipe import to_toml

                click.echo(to_toml(plan), nl=False)
                return
            from ..plan import build, with_shard

            build(plan)  # usage errors before the folder is made
            os.makedirs(with_shard(output, plan.shard), exist_ok=True)
            _execute(ctx, plan, desc=names, **own)
        except FeatxError as exc:
            _fail(exc, ctx)
        except BrokenPipeError:
            sys.exit(_pipe_closed())

    from .. import registry

    declined = []
    for n in names.split("+"):
        try:
            if not getattr(registry.get(n), "shared_resize", True):
                declined.append(n)
        except FeatxError:  # an unknown name: the callback says so
            pass
    cmd = _MultiCommand(names, callback=callback, context_settings=CONTEXT, extractors=tuple(names.split("+")),
                           examples=[f"featx extract {names} photos/ -o feats/ --resize 256x256 -j 2",
                                     f"featx extract {names} photos/ -o feats/ --print-recipe > job.toml"],
                        help=f"Extract {', '.join(names.split('+'))} in one pass: each input is decoded once "
                             "and each extractor writes its own output, with its default parameters, into the "
                             "folder -o (NAME.npy; NAME/ for keypoints and maps). Each output is exactly what "
                             "`featx extract NAME` would write. For other parameters, per-output sizes or "
                             "formats, write a recipe: --print-recipe prints this job as one for `featx run`.",
                        short_help="several extractors in one pass")
    opts = []
    for o in _extract_options():
        if o.name == "sidecar":  # each output keeps its own
            continue
        if o.name == "output":
            o.metavar = "FOLDER/"
            o.help = "Folder for the outputs (NAME.npy, or NAME/ for keypoints and maps)."
        if o.name == "resize" and declined:
            o.help += (f" Applies to every output but {', '.join(declined)}, which fit{'s' if len(declined) == 1 else ''} "
                       "each image to the network's input itself.")
        opts.append(o)
    opts.append(click.Option(["--print-recipe"], is_flag=True,
                             help="Print this job as a recipe (TOML for `featx run`) instead of running it."))
    cmd.params = opts
    return cmd


def _build_run() -> click.Command:
    def callback(recipe, quiet, summary_json, print_recipe, **run):
        ctx = click.get_current_context()
        try:
            from ..recipe import load_recipe, override, to_toml

            plan = override(load_recipe(recipe), **_run_fields(run, only_given=ctx))
            if print_recipe:
                click.echo(to_toml(plan), nl=False)
                return
            _execute(ctx, plan, quiet=quiet, summary_json=summary_json, desc=os.path.basename(recipe))
        except FeatxError as exc:
            _fail(exc, ctx)
        except BrokenPipeError:
            sys.exit(_pipe_closed())

    cmd = SectionedCommand("run", callback=callback, context_settings=CONTEXT,
                        help="Run a recipe: a TOML file with inputs, run options and one [[output]] table per "
                             "output (extractor, path, its parameters, resize, format). Each input is decoded "
                             "once for all outputs; each output keeps its own state, lock and sidecar, and is "
                             "exactly what a separate `featx extract` would write.\n\n"
                             "INPUTS given here (or - for paths on stdin) replace the recipe's inputs; options "
                             "given here replace the recipe's values.\n\n\b\nExamples:\n"
                             "  featx run features.toml\n"
                             "  featx run features.toml new-photos/ -j 2\n"
                             "  find . -name '*.jpg' | featx run features.toml -",
                        short_help="Run a recipe of several outputs in one pass.")
    cmd.params = [click.Argument(["recipe"], type=click.Path(dir_okay=False)), *_extract_options(recipe=True),
                  click.Option(["--print-recipe"], is_flag=True,
                               help="Print the recipe as featx reads it (with every default) instead of running.")]
    return cmd


def _progress_bar(desc: str, total: int | None, unit: str):
    """A tqdm bar on stderr: ``hog:  42%|████      | 21/50 [00:10<00:14, 2.10 images/s, 1 failed]``,
    or without a total ``hog: 197 images [00:23, 17.45 images/s]``.  Its width is the
    terminal's, 80 columns where the terminal reports none (some ptys say 0)."""
    from tqdm import tqdm

    tqdm.monitor_interval = 0  # no monitor thread: worker processes can be forked safely
    try:
        cols, rows = os.get_terminal_size(sys.stderr.fileno())
    except (OSError, ValueError):
        cols = rows = 0
    # a pty that reports 0 x 0 (some CI runners, `script`): tqdm would hide the bar as below the
    # screen's last row, so a sane size is given instead
    return tqdm(total=total, unit=" " + unit, file=sys.stderr, desc=desc, ncols=cols if cols >= 40 else 80,
                nrows=rows if rows > 0 else 24, leave=False, mininterval=0.2)


class _MultiCommand(SectionedCommand):
    """``featx extract a+b``: an option of one of the extractors is answered as such (this
    form runs each with its defaults), not with a run option that looks like it."""

    def __init__(self, *args, extractors: tuple[str, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.extractors = extractors

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            owners = self._owners(exc.option_name)
            if not owners:
                raise
            names = "+".join(self.extractors)
            raise click.UsageError(
                f"{exc.option_name} is an option of {', '.join(owners)}; featx extract {names} runs each "
                f"extractor with its default parameters. For other parameters, write a recipe: add "
                f"--print-recipe to print this job as one, set {exc.option_name.lstrip('-')} in its "
                f"[[output]], and run it with featx run", ctx) from None

    def _owners(self, option: str) -> list[str]:
        from .. import registry
        from ..extractor import param_infos

        owners = []
        for n in self.extractors:
            try:
                cls = registry.get(n)
            except FeatxError:
                continue
            flag = option.split("=", 1)[0]
            if any(flag in (i.option, "--no-" + i.option.lstrip("-")) or flag == "--" + i.name.replace("_", "-")
                   for i in param_infos(cls.Params)):
                owners.append(n)
        return owners


class _Shown:
    """A run's progress bar (when stderr is a terminal and not ``quiet``) and its messages,
    each a line of its own above the bar, which is drawn again below it."""

    def __init__(self, desc: str, bar: bool):
        self.desc, self.bars = desc, []
        self.progress = self._make_bar if bar and sys.stderr.isatty() else None

    def _make_bar(self, total, unit):
        self.bars.append(_progress_bar(self.desc, total, unit))
        return self.bars[0]

    def say(self, msg: str) -> None:
        if self.bars:
            self.bars[0].write(f"featx: {msg}", file=sys.stderr)
        else:
            _say(msg)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for bar in self.bars:
            bar.close()


def _may_fork(ctx: click.Context) -> bool:
    """Whether worker pools may fork this process: :func:`featx.cli.main` says so (it has run
    nothing threaded; see :func:`featx.engine.process.start_method`)."""
    return bool((ctx.find_root().obj or {}).get("fork"))


def _notes(say, quiet: bool):
    """What the run's notes go to: all of them, or with ``-q`` only the loud ones (a dead
    run's orphans stopped, an output damaged and rebuilt), which a cron job's owner must hear."""
    if not quiet:
        return say
    return lambda msg: say(msg) if isinstance(msg, LoudNote) else None


def _execute(ctx, plan, *, quiet: bool, summary_json: str | None, desc: str) -> None:
    """Run a plan with a progress bar and messages on stderr; exit with its code."""
    from ..plan import execute

    many = len(plan.outputs) > 1
    show = _Shown(desc, not quiet)

    def on_failure(f, outs):
        which = ""
        if many and len(outs) < len(plan.outputs):
            which = " [" + ", ".join(plan.outputs[k].path or plan.outputs[k].extractor for k in outs) + "]"
        show.say(f"error: {quote_name(f.path)}: {printable(f.reason)}{which}")  # no name forges a line

    with show:
        result = execute(plan, on_failure=on_failure, on_note=_notes(show.say, quiet), progress=show.progress, fork=_may_fork(ctx),
                         summary_json=summary_json)
    if summary_json:
        import json

        docs = [{"status": r.summary.status, **r.summary.counts(), "output": r.summary.output}
                for r in result.outputs]
        text = json.dumps(docs[0] if not many else {"outputs": docs})
        if summary_json == "-":
            click.echo(text, err=True)
        else:
            from ..output.atomic import write_atomic

            write_atomic(summary_json, text + "\n")
    if not quiet:
        for r in result.outputs:
            _say(summary_line(r.summary, r.plan.path, r.plan.extractor if many else None))
    errors = [r.summary.error for r in result.outputs if r.summary.error is not None]
    if errors:
        _fail(errors[0], ctx)
    code = result.exit_code
    if code == int(ExitCode.INTERRUPTED):
        _say("interrupted: what was done is written; run the same command again to finish")
    elif code == int(ExitCode.ITEMS_FAILED):
        n = max(len(r.summary.failed) + len(r.summary.partial) for r in result.outputs)
        where = ", ".join(r.sidecar for r in result.outputs
                          if r.sidecar and (r.summary.failed or r.summary.partial)) or "the messages above"
        _say(f"{n} input(s) failed in whole or in part; they are listed in {where}")
    if code:
        sys.exit(code)


def summary_line(summary, output: str, name: str | None = None) -> str:
    """``12 processed, 340 up to date, 1 failed, ... in 3.2 s -> hog.npy (352, 366444)``"""
    parts = [(f"{name}: " if name else "") + f"{summary.processed} processed"]
    if summary.up_to_date:
        parts.append(f"{summary.up_to_date} up to date")
    if summary.failed:
        parts.append(f"{len(summary.failed)} failed")
    if summary.partial:
        parts.append(f"{len(summary.partial)} partial")
    if summary.disappeared:
        parts.append(f"{len(summary.disappeared)} disappeared" + (f" ({summary.removed} removed)"
                                                                 if summary.removed else ""))
    if summary.error is not None:
        parts.append("stopped early")
    if summary.skipped_non_images:
        n = summary.skipped_non_images
        parts.append(f"{n} non-image file{'s' if n != 1 else ''} skipped")
    if summary.skipped_videos:
        n = summary.skipped_videos
        parts.append(f"{n} video{'s' if n != 1 else ''} skipped (--video takes them)")
    n = getattr(summary, "skipped_special", 0)
    if n:
        parts.append(f"{n} special file{'s' if n != 1 else ''} skipped (FIFOs, sockets, devices)")
    n = getattr(summary, "skipped_folder_links", 0)
    if n:
        parts.append(f"{n} link{'s' if n != 1 else ''} to {'folders' if n != 1 else 'a folder'} not followed")
    shape = summary.output.get("shape")
    dest = "stdout" if output == "-" else output
    return (", ".join(parts) + f" in {summary.seconds:.1f} s -> {dest}" + (f" {tuple(shape)}" if shape else ""))


def __getattr__(name: str):
    """``run_cmd`` (``featx run``), built when it is first asked for: ``featx extract``
    need not build it."""
    if name == "run_cmd":
        cmd = globals()["run_cmd"] = _build_run()
        return cmd
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

extract_cmd = ExtractorGroup(
    "extract", build=_build_extract, build_multi=_build_multi, context_settings=CONTEXT,
    short_help="Extract features: one extractor, or several in one pass (a+b+c).",
    help="Extract features: featx extract NAME INPUTS... -o OUTPUT [options]. `featx extract NAME --help` "
         "lists NAME's options; NAME+NAME+... writes one output per extractor in one pass.\n\n"
         "\b\nExamples:\n"
         "  featx extract hog samples/ -o hog.npy --resize 256x256\n"
         "  featx extract hog+gradients+cnn samples/ -o feats/ --resize 256x256\n"
         "  featx extract gradients samples/clip.mp4 -o clip.csv --fps 5")
