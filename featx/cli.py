"""The ``featx`` command line: a thin click shell over the library.

Every extractor parameter option is generated from the extractor's one
``Params`` declaration; config files feed click's defaults, so values from a
file go through exactly the same parsing and validation as flags.
"""
from __future__ import annotations

import os
import signal
import sys
import traceback
from typing import Any

import click

from . import __version__
from .errors import ExitCode, FeatxError, UsageError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}



# ---------------------------------------------------------------------------
# error reporting


def _say(msg: str) -> None:
    click.echo(f"featx: {msg}", err=True)


def _fail(exc: FeatxError, ctx: click.Context | None = None) -> None:
    _say(f"error: {exc.message}")
    if exc.hint:
        click.echo(f"  hint: {exc.hint}", err=True)
    if _show_traceback(ctx):
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


# ---------------------------------------------------------------------------
# parameter types


class PairType(click.ParamType):
    """``AxB`` pairs of integers: extractor parameters such as grids (``ROWSxCOLS``)
    and, with ``positive``, image sizes (``WIDTHxHEIGHT``).  A TOML list ``[4, 4]``
    is accepted too."""

    def __init__(self, name: str = "RxC", what: str = "a pair; write ROWSxCOLS, e.g. 4x4",
                 positive: bool = False):
        self.name, self.what, self.positive = name, what, positive

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        from .extractor import parse_pair

        try:
            pair = (int(value[0]), int(value[1])) if isinstance(value, list) and len(value) == 2 \
                else parse_pair(value)
        except (ValueError, TypeError):
            self.fail(f"{value!r} is not {self.what}", param, ctx)
        if self.positive and min(pair) < 1:
            self.fail(f"{value!r}: both numbers must be at least 1", param, ctx)
        return pair


class ShardType(click.ParamType):
    """``I/N`` with 1 <= I <= N."""

    name = "I/N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        try:
            i, n = (int(x) for x in str(value).split("/"))
        except ValueError:
            self.fail(f"{value!r} is not a shard; write I/N, e.g. 2/8", param, ctx)
        if not 1 <= i <= n:
            self.fail(f"{value!r}: need 1 <= I <= N", param, ctx)
        return i, n


class FiniteFloat(click.FloatRange):
    """A float option that must be a finite number: ``nan`` passes every range check
    and ``inf`` means nothing for featx's options (leave the option out for "no limit")."""

    name = "float"

    def _describe_range(self) -> str:
        return "" if self.min is None and self.max is None else super()._describe_range()

    def convert(self, value, param, ctx):
        import math

        rv = super().convert(value, param, ctx)
        if rv is not None and not math.isfinite(rv):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return rv


class MemoryType(click.ParamType):
    """A memory size: ``4G``, ``512M``, ``1.5GiB`` or bytes; ``0`` for no limit."""

    name = "SIZE"

    def convert(self, value, param, ctx):
        from .memory import parse_size

        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a memory size; write e.g. 4G, 512M or 0 (no limit)", param, ctx)


SIZE = PairType("WxH", "a size; write WIDTHxHEIGHT, e.g. 640x480", positive=True)
PAIR = PairType()
SHARD = ShardType()
MEMORY = MemoryType()
FLOAT = FiniteFloat()
#: Input paths are not checked by click: a missing or unreadable one fails alone, as a bad input.
INPUT_PATH = click.Path(allow_dash=True, readable=False)


def _param_option(info) -> click.Option:
    """One click option from one declared extractor parameter."""
    from .extractor import ParamInfo  # noqa: F401  (type only)

    decl = info.option
    extra = info.describe_range()
    help_text = info.help + (f" [{extra}]" if extra and not info.choices else "")
    kw: dict[str, Any] = {"default": info.default, "show_default": True, "help": help_text}
    if info.type is bool:
        return click.Option([f"{decl}/--no-{decl[2:]}", info.name], **kw)
    if info.choices:
        kw["type"] = click.Choice([str(c) for c in info.choices])
    elif info.type is tuple:
        kw["type"] = PAIR
        if isinstance(info.default, tuple):
            kw["default"] = "x".join(str(v) for v in info.default)
    else:
        kw["type"] = {int: click.INT, float: FLOAT, str: click.STRING}[info.type]
    if info.metavar:
        kw["metavar"] = info.metavar
    return click.Option([decl, info.name], **kw)


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None):
    """Eager ``--config``: read TOML into click's default map (same validation as flags).

    Each value is turned back into the text a flag would carry (``3.5`` -> ``"3.5"``,
    ``[4, 4]`` -> ``"4x4"``) and parsed by the option's own type here, so a file and
    the command line accept and refuse exactly the same values, and a bad one is a
    usage error naming the file and the key.
    """
    if not value:
        return value
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(value, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise click.BadParameter(f"cannot read {value}: {exc.strerror or exc}", ctx, param)
    except tomllib.TOMLDecodeError as exc:
        raise click.BadParameter(f"{value} is not valid TOML: {exc}", ctx, param)
    except UnicodeDecodeError:
        raise click.BadParameter(f"{value} is not valid TOML: not UTF-8 text", ctx, param)
    name = ctx.command.name
    table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if isinstance(data.get(name), dict):
        table.update(data[name])
    valid = {p.name: p for p in ctx.command.params
             if isinstance(p, click.Option) and p.name not in ("config", "help")}
    defaults = {}
    for key, v in table.items():
        pname = key.replace("-", "_")
        if pname not in valid:
            names = ", ".join(sorted(k.replace("_", "-") for k in valid))
            raise click.BadParameter(f"{value}: unknown key {key!r} (valid keys: {names})", ctx, param)
        opt = valid[pname]
        try:
            text = _config_text(opt, v)
            opt.type_cast_value(ctx, text)  # the option's own parsing and range checks
        except click.BadParameter as exc:
            raise click.BadParameter(f"{value}: {key} = {_toml_repr(v)}: {exc.message}", ctx, param) from None
        defaults[pname] = text
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _toml_repr(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return "{...}"
    return repr(v) if not isinstance(v, str) else f'"{v}"'


def _config_text(opt: click.Option, v: Any):
    """A TOML value as the command-line text of option ``opt`` (a bool for a flag, a list
    of texts for a repeatable option); raises ``click.BadParameter`` for a value no flag
    could carry."""
    import datetime
    import math

    def one(x: Any) -> str:
        if isinstance(x, dict):
            raise click.BadParameter("expected a value, got a table")
        if isinstance(x, (list, tuple)):
            if isinstance(opt.type, PairType) and len(x) == 2 and all(type(e) is int for e in x):
                return f"{x[0]}x{x[1]}"  # grid = [4, 4]
            raise click.BadParameter("expected a single value, got a list"
                                     + (" (a pair is [A, B] of two integers)" if isinstance(opt.type, PairType)
                                        else ""))
        if isinstance(x, bool):
            raise click.BadParameter("expected " + _expected(opt) + ", got a boolean")
        if isinstance(x, (datetime.date, datetime.time)):
            raise click.BadParameter("expected " + _expected(opt) + ", got a date or time")
        if isinstance(x, float):
            return repr(x) if math.isfinite(x) else str(x)  # "nan", "inf": refused by the type
        return str(x)

    if opt.is_flag and not opt.multiple:
        if not isinstance(v, bool):
            raise click.BadParameter("expected true or false")
        return v
    if opt.multiple:
        items = v if isinstance(v, list) else [v]
        return [one(x) for x in items]
    return one(v)


def _expected(opt: click.Option) -> str:
    t = opt.type
    if isinstance(t, click.types.IntParamType):
        return "an integer"
    if isinstance(t, click.types.FloatParamType):
        return "a number"
    if isinstance(t, click.Choice):
        return "one of " + ", ".join(map(str, t.choices))
    return "a value"


# ---------------------------------------------------------------------------
# shared options (declared once, used by several commands)


def _resize_options() -> list[click.Option]:
    return [
        click.Option(["--resize"], type=SIZE, default=None, metavar="WxH",
                     help="Resize every image to WIDTHxHEIGHT first, so every vector has one length."),
        click.Option(["--resize-mode"], type=click.Choice(["stretch", "crop"]), default="stretch",
                     show_default=True,
                     help="How --resize fits: stretch each axis, or scale the shorter side and cut the centre."),
    ]


def _config_option() -> click.Option:
    return click.Option(["--config"], type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                        callback=_load_config,
                        help="TOML file of option values (same names as the options; flags override it).")


# ---------------------------------------------------------------------------
# commands


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="featx")
@click.option("--traceback", is_flag=True, help="Show the full Python traceback on errors.")
@click.pass_context
def cli(ctx: click.Context, traceback: bool) -> None:
    """Turn images and image folders into feature vectors (.npy / .csv).

    \b
    featx list                                 extractors available
    featx info hog --size 640x480              parameters and output size
    featx extract hog photos/ -o hog.npy       one row per image
    featx show hog photo.jpg -o hog.png        a picture of what it computes

    Exit codes: 0 all good; 1 some inputs failed (the rest written);
    2 usage or configuration error; 74 the output could not be written
    (disk full); 75 another run holds the output; 130 interrupted;
    141 the reader of stdout went away.
    """
    ctx.ensure_object(dict)["traceback"] = traceback


@cli.command("list")
def list_cmd() -> None:
    """List the installed extractors (name, summary, providing package)."""
    from . import registry

    infos = registry.discover()
    width = max([len(i.name) for i in infos] + [4])
    for i in infos:
        if i.ok:
            click.echo(f"{i.name:<{width}}  {i.cls.summary}  [{i.package}]")
        else:
            click.echo(f"{i.name:<{width}}  BROKEN: {i.error}  [{i.package}: {i.target}]")


@cli.command("info")
@click.argument("name")
@click.option("--size", type=SIZE, default=None, metavar="WxH",
              help="Also give the output size for an input of WIDTHxHEIGHT.")
@click.option("--as-config", is_flag=True,
              help="Print the default parameters as a TOML file for --config instead.")
@click.pass_context
def info_cmd(ctx: click.Context, name: str, size: tuple[int, int] | None, as_config: bool) -> None:
    """Describe one extractor: parameters (type, default, range) and output size."""
    from . import registry
    from .extractor import param_infos, params_to_toml

    try:
        cls = registry.get(name)
        ext = cls()
    except FeatxError as exc:
        _fail(exc, ctx)
    if as_config:
        click.echo(params_to_toml(ext.params), nl=False)
        return
    doc = (cls.__doc__ or "").strip()
    click.echo(f"{cls.name}: {cls.summary}")
    if doc:
        click.echo("")
        for line in doc.splitlines():
            click.echo(f"  {line.strip()}" if line.strip() else "")
    click.echo("\nParameters:")
    for p in param_infos(cls.Params):
        kind = "RxC" if p.type is tuple else ("flag" if p.type is bool else p.type.__name__)
        default = "x".join(map(str, p.default)) if isinstance(p.default, tuple) else p.default
        rng = p.describe_range()
        click.echo(f"  {p.option:<22} {kind:<6} default {default!s:<10} {rng}")
        click.echo(f"  {'':<22} {p.help}")
    click.echo("\nOutput:")
    try:
        spec = ext.output_spec(480, 640)
        if spec.kind == "vector":
            other = ext.output_spec(240, 320)
            if other.shape == spec.shape:
                click.echo(f"  vector of {spec.length} float32 values, whatever the image size")
            else:
                click.echo("  vector of float32 values; its length depends on the image size (use --size WxH)")
        elif spec.kind == "keypoints":
            click.echo(f"  keypoints: (N, 6) x, y, size, angle, response, octave + descriptors (N, {spec.shape[1]})")
        else:
            click.echo(f"  dense float32 map per image, shape {spec.shape} for 640x480")
        if size is not None:
            s = ext.output_spec(size[1], size[0])
            click.echo(f"  for {size[0]}x{size[1]}: {s.kind} of shape {tuple(s.shape)}"
                       + (f" ({s.length} values)" if s.kind == "vector" else ""))
    except FeatxError as exc:
        _fail(exc, ctx)


@cli.group("models", invoke_without_command=True, context_settings=CONTEXT)
@click.pass_context
def models_cmd(ctx: click.Context) -> None:
    """CNN models: list the known and cached ones (default), or fetch one."""
    if ctx.invoked_subcommand is not None:
        return
    from .extractors.cnn import models

    for m in models.list_models():
        state = "available" if m["available"] else "not cached (featx models fetch " + m["name"] + ")"
        click.echo(f"{m['name']:<22} {state}")
        if m.get("description"):
            click.echo(f"  {m['description']}")
        if m.get("path"):
            click.echo(f"  {m['path']}")
        click.echo(f"  sha256 {m['sha256']}" + (f"  licence {m['license']}" if m.get("license") else ""))


@models_cmd.command("fetch")
@click.argument("name")
@click.option("--url", default=None, help="Where to download from (required for a model featx does not know).")
@click.option("--sha256", default=None, help="Expected SHA-256 of the file (required with --url for a new name).")
@click.pass_context
def models_fetch(ctx: click.Context, name: str, url: str | None, sha256: str | None) -> None:
    """Download a model into the cache; refused (nothing cached) unless its SHA-256 matches."""
    from .extractors.cnn import models

    try:
        path = models.fetch(name, url, sha256)
    except FeatxError as exc:
        _fail(exc, ctx)
    _say(f"{name}: {path}")


@cli.command("merge")
@click.argument("output")
@click.argument("parts", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.pass_context
def merge_cmd(ctx: click.Context, output: str, parts: tuple[str, ...], overwrite: bool) -> None:
    """Merge the outputs of `featx extract ... --shard I/N` runs into OUTPUT.

    Verified: the shards must come from one command, cover 1..N exactly once,
    be complete and share no input.  Rows are ordered by input path.
    """
    from .merge import merge

    try:
        info = merge(output, parts, overwrite=overwrite)
    except FeatxError as exc:
        _fail(exc, ctx)
    _say(f"merged {len(parts)} shards -> {output} {tuple(info.get('shape') or ())}")


class ExtractorGroup(click.Group):
    """``featx extract NAME`` / ``featx show NAME``: one subcommand per extractor,
    built on demand so that only the extractor asked for is imported."""

    def __init__(self, *args, build, **kwargs):
        super().__init__(*args, **kwargs)
        self._build = build

    def list_commands(self, ctx):
        from . import registry

        return registry.names()

    def get_command(self, ctx, name):
        from . import registry

        try:
            cls = registry.get(name)
        except FeatxError as exc:
            if ctx.resilient_parsing:
                return None
            _fail(exc, ctx)
        try:
            return self._build(cls)
        except FeatxError as exc:
            _fail(exc, ctx)

    def format_commands(self, ctx, formatter):
        from . import registry

        rows = [(n, "") for n in registry.names()]
        if rows:
            with formatter.section("Extractors (featx list describes them)"):
                formatter.write_dl(rows)


def _with_extractor_options(cls, common: list[click.Parameter]) -> list[click.Parameter]:
    """The command's own parameters, then one option per declared extractor parameter.
    A parameter whose name or flag is taken by a featx option is a plugin error."""
    from .extractor import param_infos

    taken = {p.name for p in common} | {o for p in common for o in getattr(p, "opts", ())} | {"help"}
    opts = []
    for info in param_infos(cls.Params):
        if info.name in taken or info.option in taken:
            raise UsageError(f"extractor {cls.name!r} declares parameter {info.name!r}, "
                             "which clashes with a featx option", "rename the parameter in the plugin")
        opts.append(_param_option(info))
    return list(common) + opts


def _split_params(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
    from .extractor import param_infos

    names = {i.name for i in param_infos(cls.Params)}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names}


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

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"{cls.summary}\n\nINPUTS are image files, folders (walked recursively, "
                             "sorted) or - for paths on stdin.",
                        short_help=cls.summary)
    common = [
        click.Argument(["inputs"], nargs=-1, type=INPUT_PATH),
        click.Option(["-o", "--output"], required=True, metavar="PATH",
                     help="Output: NAME.npy, NAME.csv, a folder/ (npy-dir) or - for CSV on stdout."),
        click.Option(["-f", "--format"], type=click.Choice(["csv", "npy", "npy-dir"]), default=None,
                     help="Output format (default: from the output name)."),
        click.Option(["--overwrite"], is_flag=True, help="Replace an existing output."),
        click.Option(["-j", "--jobs"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="Worker processes (0 = one per core)."),
        *_resize_options(),
        click.Option(["--max-pixels"], type=click.IntRange(min=0), default=None,
                     help="Refuse images with more pixels than this (default 178956970; 0 = no limit)."),
        click.Option(["--exact-decode"], is_flag=True,
                     help="Decode every JPEG in full, even when the extractor needs fewer pixels "
                          "(--resize, the network's input): the numbers of a full decode, slower."),
        click.Option(["--max-memory"], type=MEMORY, default=None, metavar="SIZE",
                     help="Memory one input may cost a worker (4G, 512M; 0 = no limit): an image that "
                          "would need more (decoded, resized, extracted) is refused before decoding. "
                          "Default: half the machine's memory divided by the jobs, at least 1G."),
        click.Option(["--files-from", "files_from"], multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False, allow_dash=True),
                     help="Read input paths from FILE, one per line (repeatable; - for stdin)."),
        click.Option(["-0", "--null"], is_flag=True,
                     help="Paths on stdin / in list files are NUL-separated (find -print0)."),
        click.Option(["--video"], is_flag=True,
                     help="Also take the video files found in folders (one row per frame; adds frame and "
                          "time columns). Videos named on the command line are always taken."),
        click.Option(["--frames"], is_flag=True,
                     help="Folders are frame sequences: each folder holding images is one sequence, "
                          "in natural order (frame2 before frame10)."),
        click.Option(["--every"], type=click.IntRange(min=1), default=None, metavar="N",
                     help="Video/frames: keep every N-th frame."),
        click.Option(["--fps"], type=FiniteFloat(min=0, min_open=True), default=None, metavar="RATE",
                     help="Video/frames: keep at most RATE frames per second, chosen by timestamp."),
        click.Option(["--start"], type=FiniteFloat(min=0), default=None, metavar="SECONDS",
                     help="Video/frames: first time to keep."),
        click.Option(["--end"], type=FiniteFloat(min=0), default=None, metavar="SECONDS",
                     help="Video/frames: keep frames before this time."),
        click.Option(["--max-frames"], type=click.IntRange(min=1), default=None, metavar="N",
                     help="Video/frames: stop after N kept frames per input."),
        click.Option(["--frame-rate"], type=FiniteFloat(min=0, min_open=True), default=None, metavar="RATE",
                     help="Frame folders: their frame rate (gives the time column; allows --fps/--start/--end)."),
        click.Option(["--regions"], default=None, metavar="CSV", type=click.Path(dir_okay=False),
                     help="Extract from each box of a regions file (path,x,y,w,h, e.g. from featx detect) "
                          "instead of whole images: one row per region."),
        click.Option(["--sidecar"], default=None, metavar="PATH",
                     help="Where to write the provenance record (default: OUTPUT.featx.json)."),
        click.Option(["--hash", "use_hash"], is_flag=True,
                     help="Decide what is up to date by content hash, not size and modification time."),
        click.Option(["--prune"], is_flag=True,
                     help="Remove from the output the inputs that no longer exist."),
        click.Option(["--wait"], is_flag=True,
                     help="If another run is writing the same output, wait for it instead of exiting (75)."),
        click.Option(["--timeout"], type=FiniteFloat(min=0, min_open=True, max=1e9), default=None, metavar="SECONDS",
                     help="Give up on an input after this long (it is recorded as failed; runs in a worker)."),
        click.Option(["--shard"], type=SHARD, default=None, metavar="I/N",
                     help="Process only shard I of N (a stable partition of the inputs by path)."),
        click.Option(["--executor"], type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Run workers as local processes, or as tasks on a Ray cluster (pip install 'featx[ray]')."),
        click.Option(["--ray-address"], default=None, metavar="ADDRESS",
                     help="Ray cluster to join (auto, HOST:6379, or ray://HOST:10001); default: $RAY_ADDRESS "
                          "if set, else a local Ray."),
        click.Option(["--commit-every"], type=FiniteFloat(min=0), default=2.0, show_default=True,
                     metavar="SECONDS",
                     help="Commit what is done this often: a killed run loses at most this much work."),
        click.Option(["--summary-json"], default=None, metavar="FILE",
                     help="Also write the end-of-run summary as JSON to FILE (- for stderr)."),
        click.Option(["-q", "--quiet"], is_flag=True, help="No progress bar and no summary line."),
        _config_option(),
    ]
    cmd.params = _with_extractor_options(cls, common)
    return cmd


def _do_extract(ctx, cls, params, *, inputs, output, format, overwrite, jobs, resize, resize_mode,
                max_pixels, max_memory, files_from, null, sidecar, quiet, use_hash, prune, wait, timeout, shard,
                summary_json, commit_every, executor, ray_address, regions, video, frames, every, fps, start,
                end, max_frames, frame_rate, exact_decode):
    from . import memory, pipeline, provenance, sinks, sources
    from .extractor import build_params, params_to_dict

    if regions and (inputs or files_from):
        raise UsageError("--regions names the inputs itself", "drop the INPUTS arguments, or drop --regions")
    if not inputs and not files_from and not regions:
        raise UsageError("no inputs given", "name image files or folders, or - to read paths from stdin")
    if sum(1 for a in inputs if a == "-") + sum(1 for a in files_from if a == "-") > 1:
        raise UsageError("stdin (-) can be read only once")
    sources.check_named(inputs)
    if not jobs:  # with Ray: one worker per CPU of the cluster, which RayExecutor finds out
        jobs = 0 if executor == "ray" else pipeline.default_jobs()
    if jobs == 1 and executor == "local":
        pipeline.setup_worker_process()  # -j N means N cores: no OpenCV threads behind -j 1's back
    if params.get("threads") == 0 and jobs > 1:  # engines with their own threads: no oversubscription
        params["threads"] = max(1, pipeline.default_jobs() // jobs)
    if executor == "ray" and params.get("threads") == 0:
        params["threads"] = 1  # one Ray worker per CPU
    extractor = cls(build_params(cls, params))
    spec = None
    try:
        spec = extractor.output_spec(*(resize[::-1] if resize else (480, 640)))
    except FeatxError as exc:
        if resize:  # every image would fail the same way: say it once, before any work
            raise UsageError(f"--resize {resize[0]}x{resize[1]}: {exc.message}", exc.hint) from None
    sampling = {k: v for k, v in (("every", every), ("fps", fps), ("start", start), ("end", end),
                                  ("max_frames", max_frames), ("frame_rate", frame_rate)) if v is not None}
    if sampling:
        sources.sampling_of(sampling)  # invalid combinations are usage errors, before any work
        if (fps is not None or start is not None or end is not None) and frames and frame_rate is None:
            raise UsageError("sampling frame folders by time (--fps, --start, --end) needs --frame-rate")
    temporal = extractor.temporal
    video_mode = bool(video or frames or sampling or temporal
                      or any(sources.is_video_name(a) for a in inputs if a != "-"))
    if regions and video_mode:
        if temporal:
            raise UsageError(f"{cls.name} needs consecutive frames; it cannot run on --regions boxes")
        raise UsageError("--regions names its images and video frames itself",
                         "drop --video, --frames and the sampling options (--every, --fps, ...)")
    keys = sources.region_keys(regions) if regions else (sources.VIDEO_KEYS if video_mode else ("path",))
    sink = sinks.make_sink(output, format, overwrite=overwrite, columns=spec.columns if spec else None,
                           kind=extractor.output_kind(), key_columns=keys,
                           labels=spec.labels if spec else None, label_columns=spec.label_columns if spec else ())
    if max_pixels is None:
        max_pixels = pipeline.DEFAULT_MAX_PIXELS
    max_memory = memory.resolve(max_memory, jobs)  # bytes per worker, None: no limit
    memory.check_resize(resize, extractor, max_memory, max_pixels)
    opts = pipeline.RunOptions(jobs=jobs, resize=resize, resize_mode=resize_mode, max_pixels=max_pixels or None,
                               max_memory=max_memory or 0,
                               use_hash=use_hash, prune=prune, wait_lock=None if wait else 0.0,
                               timeout=timeout, shard=shard, commit_every=commit_every,
                               executor=executor, ray_address=ray_address, source_options=sampling,
                               exact_decode=exact_decode or bool(regions))  # boxes: every pixel
    stats = sources.Enumeration()
    if regions:
        stream = sources.read_regions(regions)
    else:
        stream = sources.enumerate_inputs(inputs, files_from=files_from, null=null, stats=stats,
                                          videos=video_mode, frames=frames or temporal, sequence=temporal)
    started = provenance.now()
    options = {"output": output, "format": sink.format, "jobs": jobs,
               "resize": list(resize) if resize else None, "resize_mode": resize_mode,
               "max_pixels": max_pixels or None, "max_memory": max_memory, "hash": use_hash, "prune": prune,
               "timeout": timeout,
               "shard": list(shard) if shard else None, "executor": executor, "regions": regions,
               "video": video_mode, "frames": frames, "sampling": sampling,
               "decode": pipeline.decode_mode(extractor, opts)}
    side = sidecar or sink.sidecar_path

    def write_sidecar(summary):
        details = getattr(extractor, "provenance", None)
        doc = provenance.record(extractor=cls.name, params=params_to_dict(extractor.params), options=options,
                                summary=summary, started=started,
                                extra={"extractor_details": details} if isinstance(details, dict) else None)
        if side:
            provenance.write(side, doc)

    def on_failure(f):
        if bar is not None:
            bar.clear()
        _say(f"error: {f.path}: {f.reason}")

    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: worker processes can be forked safely
        bar = tqdm(unit="input", file=sys.stderr, desc=cls.name, dynamic_ncols=True, leave=False)
    try:
        summary = pipeline.run(extractor, stream, sink, opts, on_failure=on_failure,
                               on_note=lambda m: _say(m), progress=bar, on_start=write_sidecar)
    except pipeline.NoInputs:
        raise UsageError(_nothing_found(inputs, files_from, regions, stats, video_mode),
                         "name image files or folders that hold images; nothing was written") from None
    finally:
        if bar is not None:
            bar.close()
    summary.skipped_non_images = stats.skipped_non_images
    summary.skipped_videos = stats.skipped_videos
    summary.skipped_special = stats.skipped_special
    summary.skipped_folder_links = stats.skipped_folder_links
    try:
        write_sidecar(summary)
    except OSError as exc:
        _say(f"error: cannot write the sidecar {side}: {exc.strerror or exc}")
        if summary.error is None:
            summary.error = FeatxError(f"cannot write {side}")
    if summary_json:
        import json

        text = json.dumps({"status": summary.status, **summary.counts(), "output": summary.output})
        if summary_json == "-":
            click.echo(text, err=True)
        else:
            sinks.write_atomic(summary_json, text + "\n")
    if not quiet:
        _say(summary_line(summary, output))
    if summary.error is not None:
        _fail(summary.error, ctx)
    if summary.interrupted:
        _say("interrupted: what was done is written; run the same command again to finish")
        sys.exit(int(ExitCode.INTERRUPTED))
    if summary.failed or summary.partial:
        n = len(summary.failed) + len(summary.partial)
        _say(f"{n} input(s) failed in whole or in part; they are listed in {side or 'the messages above'}")
        sys.exit(int(ExitCode.ITEMS_FAILED))


def _nothing_found(inputs, files_from, regions, stats, video_mode) -> str:
    """``no images in photos/ (3 videos skipped: --video takes them)``"""
    where = regions or ", ".join([a for a in inputs if a != "-"] + (["stdin"] if "-" in inputs else [])
                                 + list(files_from)) or "the inputs"
    what = "videos or images" if video_mode else "images"
    skipped = []
    if stats.skipped_videos:
        n = stats.skipped_videos
        skipped.append(f"{n} video{'s' if n != 1 else ''} skipped: --video takes them")
    if stats.skipped_non_images:
        n = stats.skipped_non_images
        skipped.append(f"{n} non-image file{'s' if n != 1 else ''} skipped")
    return f"no {what} in {where}" + (f" ({'; '.join(skipped)})" if skipped else "")


def summary_line(summary, output: str) -> str:
    """``12 processed, 340 up to date, 1 failed, ... in 3.2 s -> hog.npy (352, 366444)``"""
    parts = [f"{summary.processed} processed"]
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


def _show_frames(cls, images: tuple[str, ...], frame: int, resize, resize_mode) -> list:
    """The pixels ``featx show`` renders: one image, two (a temporal pair), or two
    consecutive frames of a video."""
    from . import imageops, sources

    def load_one(path: str):
        try:
            return sources.decode_image(path)
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}") from None

    if len(images) > 2:
        raise UsageError("show takes one image (or two for a temporal extractor such as flow)")
    if len(images) == 1 and sources.is_video_name(images[0]):
        from .video import Sampling, iter_video

        want = 2 if cls.temporal else 1
        try:
            pics = [f.image for f in iter_video(images[0], sampling=Sampling(start=None, max_frames=frame + want))]
        except FeatxError as exc:
            raise UsageError(f"{images[0]}: {exc.message}") from None
        pics = pics[frame:frame + want]
        if len(pics) < want:
            raise UsageError(f"{images[0]} has no frame {frame + want - 1}", "choose an earlier --frame")
    else:
        pics = [load_one(p) for p in images]
    if resize:
        pics = [imageops.resize(p, resize[0], resize[1], resize_mode) for p in pics]
    return pics


def _build_show(cls) -> click.Command:
    def callback(images, output, resize, resize_mode, frame, arrows, **kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        try:
            from . import imageops
            from .extractor import build_params
            from .sinks import write_atomic

            extractor = cls(build_params(cls, params))
            pics = _show_frames(cls, images, frame, resize, resize_mode)
            try:
                if len(pics) == 2:
                    if not hasattr(extractor, "render_pair"):
                        raise UsageError(f"{cls.name} renders one image; give one")
                    pic = extractor.render_pair(pics[0], pics[1], arrows=arrows)
                elif cls.temporal:
                    raise UsageError(f"{cls.name} needs two frames: give two images, or a video (--frame N "
                                     "shows the motion from frame N to N+1)")
                else:
                    pic = extractor.render(pics[0])
            except NotImplementedError as exc:
                raise UsageError(str(exc)) from None
            import cv2

            pic = imageops.to_rgb_uint8(pic)
            ok, buf = cv2.imencode(os.path.splitext(output)[1] or ".png", cv2.cvtColor(pic, cv2.COLOR_RGB2BGR))
            if not ok:
                raise UsageError(f"cannot encode a picture as {output}", "use a .png or .jpg name")
            write_atomic(output, buf.tobytes())
            _say(f"wrote {output} ({pic.shape[1]}x{pic.shape[0]})")
        except FeatxError as exc:
            _fail(exc, ctx)

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"Render what {cls.name} computes for IMAGE as a PNG (for a temporal extractor: "
                             "two images, or a video and --frame).", short_help=cls.summary)
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["images"], nargs=-1, required=True, type=click.Path(dir_okay=False)),
        click.Option(["-o", "--output"], required=True, metavar="PNG", help="Picture to write (.png or .jpg)."),
        *_resize_options(),
        click.Option(["--frame"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="For a video: the frame to show (temporal extractors: from it to the next)."),
        click.Option(["--arrows"], is_flag=True, help="Temporal extractors: draw motion arrows too."),
        _config_option(),
    ])
    return cmd


def _build_detect() -> click.Command:
    from .regions import RegionDetector, available_cascades

    cmd = _build_extract(RegionDetector)
    cmd.name = "detect"
    cmd.help = ("Find regions (faces, eyes, any Haar cascade) and write one CSV row per region: "
                "path,x,y,w,h (path,frame,time,x,y,w,h for videos and frame folders), in the pixels of "
                "the image as decoded, also with --resize (which only sets the size the cascade works at)."
                "\n\nINPUTS are image files, folders, videos or - for paths on stdin. "
                "Bundled cascades: " + ", ".join(sorted(available_cascades())) + ".")
    # detect looks at whole images: boxes found inside --regions crops would be in the crops' pixels
    cmd.params = [p for p in cmd.params if p.name != "regions"]
    extract_callback = cmd.callback
    cmd.callback = lambda **kwargs: extract_callback(regions=None, **kwargs)
    cmd.short_help = "Find regions with a Viola-Jones Haar cascade (path,x,y,w,h per region)."
    return cmd


class _LazyDetect(click.Command):
    """Builds the detect command on first use, so start-up stays light."""

    def __init__(self):
        super().__init__("detect", short_help="Find regions with a Viola-Jones Haar cascade (path,x,y,w,h rows).")

    def _real(self):
        if not hasattr(self, "_cmd"):
            self._cmd = _build_detect()
        return self._cmd

    def main(self, *a, **k):  # pragma: no cover - not used as a root command
        return self._real().main(*a, **k)

    def make_context(self, info_name, args, parent=None, **extra):
        return self._real().make_context(info_name, args, parent=parent, **extra)

    def invoke(self, ctx):
        return self._real().invoke(ctx)

    def get_help(self, ctx):
        return self._real().get_help(ctx)


def _build_codebook(cls) -> click.Command:
    def callback(inputs, output, k, sample, seed, gmm, resize, resize_mode, files_from, null, overwrite, quiet,
                 **kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        try:
            _do_codebook(cls, params, inputs=inputs, output=output, k=k, sample=sample, seed=seed, gmm=gmm,
                         resize=resize, resize_mode=resize_mode, files_from=files_from, null=null,
                         overwrite=overwrite, quiet=quiet)
        except FeatxError as exc:
            _fail(exc, ctx)

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"Learn a codebook of {cls.name} descriptors (k-means visual words, and a "
                             "diagonal GMM with --gmm) from a seeded random sample of the descriptors of "
                             "INPUTS, for --encode bovw|vlad|fisher.",
                        short_help=f"Learn visual words from {cls.name} descriptors")
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["inputs"], nargs=-1, type=INPUT_PATH),
        click.Option(["-o", "--output"], required=True, metavar="NPZ", help="Codebook file to write (.npz)."),
        click.Option(["-k"], type=click.IntRange(min=1), required=True, help="Number of visual words."),
        click.Option(["--sample"], type=click.IntRange(min=1), default=100_000, show_default=True,
                     help="Descriptors kept in the seeded random sample (bounds memory: sample x 512 bytes)."),
        click.Option(["--seed"], type=int, default=0, show_default=True, help="Seed of sampling and k-means++."),
        click.Option(["--gmm"], is_flag=True, help="Also fit a diagonal-covariance GMM (for --encode fisher)."),
        *_resize_options(),
        click.Option(["--files-from", "files_from"], multiple=True, metavar="FILE",
                     type=click.Path(dir_okay=False, allow_dash=True), help="Read input paths from FILE."),
        click.Option(["-0", "--null"], is_flag=True, help="Paths on stdin / in list files are NUL-separated."),
        click.Option(["--overwrite"], is_flag=True, help="Replace an existing codebook."),
        click.Option(["-q", "--quiet"], is_flag=True, help="No progress bar and no summary line."),
        _config_option(),
    ])
    return cmd


def _do_codebook(cls, params, *, inputs, output, k, sample, seed, gmm, resize, resize_mode, files_from, null,
                 overwrite, quiet):
    from . import imageops, sources
    from .encoding import learn_codebook, local_descriptors, save_codebook, supports_codebook
    from .extractor import build_params

    if not inputs and not files_from:
        raise UsageError("no inputs given", "name image files or folders, or - to read paths from stdin")
    if os.path.exists(output) and not overwrite:
        raise UsageError(f"{output} already exists", "pass --overwrite to replace it")
    if not supports_codebook(cls):
        raise UsageError(f"{cls.name} has no local descriptors to learn a codebook from",
                         "codebooks are for extractors with keypoint descriptors, such as sift")
    if params.get("encode") not in (None, "none"):
        raise UsageError("a codebook is learnt from raw descriptors: drop --encode")
    extractor = cls(build_params(cls, params))
    stats = sources.Enumeration()
    failed = 0
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="img", file=sys.stderr, desc=f"{cls.name} codebook", leave=False)

    def stream():
        nonlocal failed
        for inp in sources.enumerate_inputs(inputs, files_from=files_from, null=null, stats=stats):
            try:
                for item in sources.load(inp):
                    img = item.image
                    if resize:
                        img = imageops.resize(img, resize[0], resize[1], resize_mode)
                    yield local_descriptors(extractor, img)
            except FeatxError as exc:
                failed += 1
                _say(f"error: {inp.path}: {exc.message}")
            if bar is not None:
                bar.update(1)

    try:
        cb = learn_codebook(stream(), k, sample=sample, seed=seed, gmm=gmm, extractor=extractor,
                            metadata={"resize": list(resize) if resize else None, "resize_mode": resize_mode})
    finally:
        if bar is not None:
            bar.close()
    save_codebook(cb, output)
    if not quiet:
        _say(f"codebook of {k} words{' + GMM' if gmm else ''} -> {output}"
             + (f" ({failed} inputs failed)" if failed else ""))
    if failed:
        sys.exit(int(ExitCode.ITEMS_FAILED))


class _CodebookGroup(ExtractorGroup):
    def list_commands(self, ctx):
        from . import registry
        from .encoding import supports_codebook

        out = []
        for n in registry.names():
            try:
                if supports_codebook(registry.get(n)):
                    out.append(n)
            except FeatxError:
                pass
        return out


cli.add_command(_LazyDetect())
cli.add_command(_CodebookGroup("codebook", build=_build_codebook, context_settings=CONTEXT,
                               help="Learn visual words for --encode: featx codebook sift INPUTS... -k 256 -o cb.npz"))
cli.add_command(ExtractorGroup("extract", build=_build_extract, context_settings=CONTEXT,
                               help="Extract features: featx extract NAME INPUTS... -o OUTPUT [options]. "
                                    "`featx extract NAME --help` lists NAME's options."))
cli.add_command(ExtractorGroup("show", build=_build_show, context_settings=CONTEXT,
                               help="Render a picture of what an extractor computes for one image."))


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

    from . import pipeline

    _quiet_native_libraries()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("featx: %(message)s"))
    log = logging.getLogger("featx")
    log.addHandler(handler)
    log.setLevel(logging.WARNING if any(a in ("-q", "--quiet") for a in (argv or sys.argv[1:])) else logging.INFO)
    pipeline.FORK_OK = True  # this process runs nothing threaded before the pool starts

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread (embedded use)
        pass
    try:
        rc = cli.main(args=argv, prog_name="featx", standalone_mode=False)
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
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
