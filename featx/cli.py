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
from .names import printable, quote_name

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

    def __init__(self, name: str = "RxC", what: str = "a pair; write ROWSxCOLS, e.g. 4x4 (one number: a square)",
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


SIZE = PairType("WxH", "a size; write WIDTHxHEIGHT, e.g. 640x480 (one number: a square)", positive=True)
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
        opt = click.Option([f"{decl}/--no-{decl[2:]}", info.name], **kw)
        opt.featx_param = info
        return opt
    if info.choices:
        kw["type"] = click.Choice([str(c) for c in info.choices])
    elif info.type is tuple:
        kw["type"] = SIZE if info.pair_form == "WIDTHxHEIGHT" else PAIR
        if isinstance(info.default, tuple):
            kw["default"] = "x".join(str(v) for v in info.default)
    else:
        kw["type"] = {int: click.INT, float: FLOAT, str: click.STRING}[info.type]
    if info.metavar:
        kw["metavar"] = info.metavar
    opt = click.Option([decl, info.name], **kw)
    opt.featx_param = info  # the declaration it comes from (config files, show-only parameters)
    return opt


def _load_config(ctx: click.Context, param: click.Parameter, value: str | None):
    """Eager ``--config``: read TOML into click's default map (same validation as flags).

    Each value is turned back into the text a flag would carry (``3.5`` -> ``"3.5"``,
    ``[4, 4]`` -> ``"4x4"``) and parsed by the option's own type here, so a file and
    the command line accept and refuse exactly the same values, and a bad one is a
    usage error naming the file and the key.
    """
    if not value:
        return value
    from .recipe import read_toml

    try:
        data = read_toml(value)
    except UsageError as exc:
        raise click.BadParameter(exc.message, ctx, param) from None
    cmd = ctx.command
    name = cmd.name
    for key, v in data.items():
        if isinstance(v, dict) and key != name:
            raise click.BadParameter(_table_error(value, key, name, ctx), ctx, param)
    table = {k: v for k, v in data.items() if not isinstance(v, dict)}
    if isinstance(data.get(name), dict):
        table.update(data[name])
    keys = _config_keys(cmd)
    show_only = getattr(cmd, "featx_show_only", {})  # `featx show`'s parameters: valid, unused here
    defaults = {}
    for key, v in table.items():
        opt = keys.get(key) or show_only.get(key.replace("-", "_"))
        if opt is None:
            raise click.BadParameter(f"{value}: unknown key {key!r}" + _closest(key, keys), ctx, param)
        try:
            text = _config_text(opt, v)
            converted = opt.type_cast_value(ctx, text)  # the option's own parsing and range checks
            info = getattr(opt, "featx_param", None)
            if info is not None and converted is not None:
                from .extractor import coerce_value

                try:
                    coerce_value(info, converted)  # the declared range, checked now to name the file
                except FeatxError as exc:
                    raise click.BadParameter(exc.message + (f" ({exc.hint})" if exc.hint else "")) from None
        except click.BadParameter as exc:
            raise click.BadParameter(f"{value}: {key} = {_toml_repr(v)}: {exc.message}", ctx, param) from None
        if opt.name not in show_only:
            defaults[opt.name] = text
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


def _config_keys(cmd: click.Command) -> dict[str, click.Option]:
    """Config-file keys of ``cmd``: each option's own long name (``hash`` for ``--hash``,
    ``files-from`` for ``--files-from``), also with ``_`` for ``-``; an option with only a
    short flag (``-k``) by its name."""
    keys: dict[str, click.Option] = {}
    for p in cmd.params:
        if not isinstance(p, click.Option) or p.name in ("config", "help"):
            continue
        longs = [o[2:] for o in p.opts if o.startswith("--")] or [p.name]
        for n in longs:
            keys[n] = p
            keys[n.replace("-", "_")] = p
    return keys


def _closest(word: str, valid, kind: str = "") -> str:
    """``; did you mean bins?`` when one of ``valid`` is close to ``word``, else the list."""
    import difflib

    names = sorted({v.replace("_", "-") for v in valid})
    match = difflib.get_close_matches(word.replace("_", "-"), names, n=1, cutoff=0.6)
    if match:
        return f"; did you mean {match[0]}?"
    return f" (valid {kind or 'keys'}: {', '.join(names)})"


def _table_error(path: str, table: str, name: str, ctx: click.Context) -> str:
    """A table the command does not read: another extractor's, or a misspelt one."""
    import difflib

    from . import registry

    reads = f"{ctx.command_path} reads [{name}] and the keys above the first table"
    if table in registry.names() or table == "detect":
        return f"{path}: table [{table}] holds settings for {table}, not {name} ({reads})"
    if difflib.get_close_matches(table, [name], n=1, cutoff=0.6):
        return f"{path}: unknown table [{table}]; did you mean [{name}]?"
    return f"{path}: unknown table [{table}] ({reads})"


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
                     help="Resize every image to WIDTHxHEIGHT first, so every vector has one length "
                          "(one number is a square: 256 = 256x256)."),
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
    featx extract gradients+cnn photos/ -o f/  several features, one decode
    featx run features.toml                    a recipe of several outputs
    featx show hog photo.jpg -o hog.png        a picture of what it computes

    Exit codes: 0 all good; 1 some inputs failed (the rest written);
    2 usage or configuration error; 74 the output could not be written
    (disk full); 75 another run holds the output; 130 interrupted;
    141 the reader of stdout went away.
    """
    ctx.ensure_object(dict)["traceback"] = traceback


@cli.command("list")
def list_cmd() -> None:
    """List the installed extractors (name, summary, providing package).

    \b
    Examples:
      featx list
      featx info hog            one extractor in detail
    """
    from . import registry

    infos = registry.discover()
    width = max([len(i.name) for i in infos] + [4])
    for i in infos:
        if i.ok:
            click.echo(f"{i.name:<{width}}  {i.cls.summary}  [{i.package}]")
        else:
            click.echo(f"{i.name:<{width}}  BROKEN: {i.error}  [{i.package}: {i.target}]")


def _build_info(cls) -> click.Command:
    def callback(size, resize, resize_mode, as_config, **kwargs):
        ctx = click.get_current_context()
        given = _split_params(cls, kwargs)
        try:
            from .extractor import build_params

            ext = cls(build_params(cls, given))
            if as_config:
                click.echo(_info_config(cls, ext, resize, resize_mode), nl=False)
            else:
                click.echo(_info_text(cls, ext, size, resize, ctx))
        except FeatxError as exc:
            _fail(exc, ctx)

    cmd = click.Command(
        cls.name, callback=callback, context_settings=CONTEXT, short_help=cls.summary,
        help=f"Describe {cls.name}: what it computes, its parameters and its output size. "
             f"{cls.name}'s parameters are options here as in `featx extract {cls.name}`, so the "
             "output size and the config file are those of these settings.",
        epilog=f"\b\nExamples:\n  featx info {cls.name}\n  featx info {cls.name} --size 640x480\n"
               f"  featx info {cls.name} --as-config --resize 256x256 > {cls.name}.toml")
    cmd.params = _with_extractor_options(cls, [
        click.Option(["--size"], type=SIZE, default=None, metavar="WxH",
                     help="Give the output size for an input image of WIDTHxHEIGHT."),
        *_resize_options(),
        click.Option(["--as-config"], is_flag=True,
                     help="Print these settings as a config file for `--config` instead (with --resize "
                          "when given, and always for an extractor whose vector length depends on "
                          "the image size)."),
    ])
    return cmd


def _value_text(v: Any) -> str:
    """A parameter value as a user writes it: ``4x4``, ``on``/``off``, ``not set``."""
    if v is None:
        return "not set"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (tuple, list)):
        return "x".join(str(x) for x in v)
    return str(v)


def _info_text(cls, ext, size, resize, ctx) -> str:
    import shutil
    import textwrap

    from .doctext import plain
    from .extractor import param_infos

    infos = param_infos(cls.Params)
    width = min(100, max(60, shutil.get_terminal_size((100, 24)).columns))
    lines = [f"{cls.name}: {cls.summary}"]
    doc = plain(cls.__doc__, [p.name for p in infos], [c for p in infos for c in (p.choices or ())])
    if doc:
        lines.append("")
        lines += [("  " + line) if line else "" for line in doc.splitlines()]
    lines.append("")
    lines.append(f"Parameters (options of `featx extract {cls.name}`; keys of a --config file):")
    kinds = {int: "integer", float: "number", str: "text", bool: "on/off"}
    rows = []
    for p in infos:
        kind = p.pair_form if p.type is tuple else ("choice" if p.choices else kinds[p.type])
        value = getattr(ext.params, p.name)
        shown = _value_text(value)
        if value != p.default:
            shown += f" (default {_value_text(p.default)})"
        rng = "" if p.choices and len(", ".join(map(str, p.choices))) > 40 else p.describe_range()
        help_text = p.help + (" (used by `featx show` only)" if p.show_only and "featx show" not in p.help
                              else "")
        if p.choices and not rng:
            help_text += " One of " + ", ".join(map(str, p.choices)) + "."
        rows.append((p.option, kind, shown, rng, help_text))
    w_opt = max(len(r[0]) for r in rows) if rows else 0
    w_kind = max(len(r[1]) for r in rows) if rows else 0
    w_val = max(len(r[2]) for r in rows) if rows else 0
    for opt, kind, shown, rng, help_text in rows:
        lines.append(f"  {opt:<{w_opt}}  {kind:<{w_kind}}  {shown:<{w_val}}  {rng}".rstrip())
        lines += textwrap.wrap(help_text, width - 6, initial_indent="      ", subsequent_indent="      ")
    if not rows:
        lines.append("  (none)")
    lines.append("")
    lines.append("Output:")
    for line in _describe_output(cls, ext, size, resize):
        lines += textwrap.wrap(line, width - 2, initial_indent="  ", subsequent_indent="    ")
    return "\n".join(lines)


def _describe_output(cls, ext, size, resize) -> list[str]:
    """What one image gives, in words (``N keypoints x 128``, not ``(None, 128)``)."""
    work = resize or size  # the size the extractor sees
    w, h = work or (640, 480)
    at = f"for {size[0]}x{size[1]} images resized to {w}x{h}" if size and resize and size != resize \
        else f"for {w}x{h} images"
    spec = ext.output_spec(h, w)
    if spec.kind == "vector":
        fixed = ext.output_spec(240, 320).shape == ext.output_spec(480, 640).shape
        if fixed:
            return [f"a vector of {spec.length} float32 values per image, whatever its size"]
        out = [f"a vector of {spec.length} float32 values {at}; its length depends on the image size"]
        if not work:
            out.append(f"(`featx info {cls.name} --size WxH` gives it for another size; resize the images "
                       "to one size, --resize WxH, to stack them in one .npy or .csv)")
        return out
    if spec.kind == "keypoints":
        d = spec.shape[1]
        return [f"N keypoints x {d} per image (N depends on the image): each keypoint has x, y, size, "
                f"angle, response and octave, and a descriptor of {d} values",
                "(write them to a folder, -o DIR/, or encode them into one vector per image: --encode)"]
    if spec.kind == "dense":
        dims = " x ".join(str(int(v)) for v in spec.shape)
        what = "rows x columns x channels" if len(spec.shape) == 3 else "rows x columns"
        return [f"a map of {dims} float32 values ({what}) per image {at}",
                "(write maps to a folder: -o DIR/)"]
    if spec.kind == "regions":
        return ["boxes x, y, w, h in the image's pixels, one CSV row per region"]
    return [f"{spec.kind} of {' x '.join(map(str, spec.shape))}"]


#: The size written into `featx info --as-config` for an extractor whose vector length
#: depends on the image size, when no --resize is given: images must be brought to one
#: size to be stacked, and the README's examples use this one.
DEFAULT_CONFIG_RESIZE = (256, 256)


def _info_config(cls, ext, resize, resize_mode) -> str:
    """A config file for ``featx extract NAME --config FILE`` with these settings,
    which runs as written on a folder of photos of several sizes."""
    from .extractor import params_to_toml

    text = (f"# featx {cls.name}: featx extract {cls.name} INPUTS... -o OUTPUT --config FILE\n"
            "# Keys are the options' names; options given on the command line win.\n")
    text += params_to_toml(ext.params, table=cls.name)
    fixed = True
    try:
        spec = ext.output_spec(480, 640)
        fixed = spec.kind != "vector" or ext.output_spec(240, 320).shape == spec.shape
    except FeatxError:
        fixed = False
    if resize is None and not fixed:
        resize = DEFAULT_CONFIG_RESIZE
        text += (f"# {cls.name}'s vector length depends on the image size: every image is resized to "
                 "this WIDTHxHEIGHT first, so that all vectors have one length.\n")
    else:
        text += "# Resize every image to WIDTHxHEIGHT first (optional).\n"
    if resize is None:
        text += '# resize = "256x256"\n'
    else:
        text += f'resize = "{resize[0]}x{resize[1]}"\n'
    text += ("# How --resize fits: stretch each axis, or scale the shorter side and cut the centre.\n"
             f'resize-mode = "{resize_mode}"\n')
    return text


@cli.group("models", invoke_without_command=True, context_settings=CONTEXT)
@click.pass_context
def models_cmd(ctx: click.Context) -> None:
    """CNN models: list the known and cached ones (default), or fetch one.

    \b
    Examples:
      featx models                                 known and cached models
      featx models fetch efficientnet-lite0        bundled: nothing to download
      featx extract cnn photos/ -o emb.npy --model efficientnet-lite0
    """
    if ctx.invoked_subcommand is not None:
        return
    from .extractors.cnn import models

    for m in models.list_models():
        if m["available"] and models.bundled_path(m["name"]) is not None:
            state = "bundled (installed with featx)"
        else:
            state = "available" if m["available"] else "not cached (featx models fetch " + m["name"] + ")"
        click.echo(f"{m['name']:<22} {state}")
        if m.get("description"):
            click.echo(f"  {m['description']}")
        if m.get("path"):
            click.echo(f"  {m['path']}")
        click.echo(f"  sha256 {m['sha256']}" + (f"  licence {m['license']}" if m.get("license") else ""))


@models_cmd.command("fetch", context_settings=CONTEXT)
@click.argument("name")
@click.option("--url", default=None, help="Where to download from (required for a model featx does not know).")
@click.option("--sha256", default=None, help="Expected SHA-256 of the file (required with --url for a new name).")
@click.pass_context
def models_fetch(ctx: click.Context, name: str, url: str | None, sha256: str | None) -> None:
    """Download a model into the cache; refused (nothing cached) unless its SHA-256 matches.
    A model featx knows needs only its NAME; another needs --url and --sha256, and is then
    used as `--model NAME`.  The bundled model is never downloaded.
    """
    from .extractors.cnn import models

    bundled = models.bundled_path(name)
    if bundled is not None and url is None:
        _say(f"{name} is bundled: its weights are installed with featx ({bundled}); nothing to download")
        return
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

    \b
    Examples:
      featx extract hog photos/ -o hog-1.npy --resize 256x256 --shard 1/2
      featx extract hog photos/ -o hog-2.npy --resize 256x256 --shard 2/2
      featx merge hog.npy hog-1.npy hog-2.npy
    """
    from .output.merge import merge

    try:
        info = merge(output, parts, overwrite=overwrite)
    except FeatxError as exc:
        _fail(exc, ctx)
    _say(f"merged {len(parts)} shards -> {output} {tuple(info.get('shape') or ())}")


class ExtractorGroup(click.Group):
    """``featx extract NAME`` / ``featx show NAME``: one subcommand per extractor,
    built on demand so that only the extractor asked for is imported.

    Parameters declared ``show_only`` (they change only the picture ``featx show``
    draws) are options only where ``show_params`` is true; elsewhere a config file
    may still hold them (one ``[haar]`` table serves ``show`` and ``extract``)."""

    def __init__(self, *args, build, show_params: bool = False, **kwargs):
        kwargs.setdefault("subcommand_metavar", "NAME [ARGS]...")
        super().__init__(*args, **kwargs)
        self._build = build
        self._show_params = show_params

    def list_commands(self, ctx):
        from . import registry

        return registry.names()

    def usable(self, cls) -> str | None:
        """Why extractor ``cls`` cannot serve this command (None: it can)."""
        return None

    def get_command(self, ctx, name):
        from . import registry

        if "+" in name and self._build is _build_extract:
            return _build_multi(name)
        try:
            cls = registry.get(name)
            why = self.usable(cls)
            if why:
                raise UsageError(why, "choose one of: " + ", ".join(self.list_commands(ctx)))
            cmd = self._build(cls)
        except FeatxError as exc:
            if ctx.resilient_parsing:
                return None
            _fail(exc, ctx)
        if not self._show_params:
            hidden = [p for p in cmd.params if getattr(p, "featx_param", None) is not None
                      and p.featx_param.show_only]
            cmd.params = [p for p in cmd.params if p not in hidden]
            cmd.featx_show_only = {p.name: p for p in hidden}  # a config file may hold them
        return cmd

    commands_title = "Extractors (featx list describes them)"

    def format_commands(self, ctx, formatter):
        rows = [(n, "") for n in self.list_commands(ctx)]
        if rows:
            with formatter.section(self.commands_title):
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


def _extract_options(recipe: bool = False) -> list[click.Parameter]:
    """The options of ``featx extract`` (and, with ``recipe``, those ``featx run`` takes to
    override a recipe's: no output, format, resize or sidecar, which are per output there)."""
    opts = [
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
    if recipe:
        per_output = {"output", "format", "resize", "resize_mode", "sidecar", "config", "regions"}
        opts = [o for o in opts if o.name not in per_output]
    return opts


#: Headings of the run options in `featx extract NAME --help` (after NAME's own options).
_SECTIONS = (
    ("Output", ("output", "format", "overwrite", "sidecar", "summary_json", "quiet", "print_recipe")),
    ("Inputs", ("files_from", "null", "regions", "resize", "resize_mode", "exact_decode", "max_pixels",
                "max_memory", "config")),
    ("Videos and frame sequences", ("video", "frames", "every", "fps", "start", "end", "max_frames",
                                    "frame_rate")),
    ("Running", ("jobs", "timeout", "executor", "ray_address")),
    ("Production runs (cron, resume, shards)", ("use_hash", "prune", "wait", "shard", "commit_every")),
)


class SectionedCommand(click.Command):
    """A command whose help lists the extractor's own options first, under their own
    heading, then the run options in groups (see :data:`_SECTIONS`)."""

    def __init__(self, *args, params_title: str | None = None, examples: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.params_title, self.examples = params_title, list(examples)

    def format_options(self, ctx, formatter):
        where = {name: title for title, names in _SECTIONS for name in names}
        groups: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx) if isinstance(p, click.Option) else None
            if rec is None:
                continue
            if getattr(p, "featx_param", None) is not None:
                title = self.params_title or "Extractor options"
            else:
                title = where.get(p.name, "Other options")
            groups.setdefault(title, []).append(rec)
        order = [self.params_title or "Extractor options"] + [t for t, _ in _SECTIONS] + ["Other options"]
        for title in order:
            if groups.get(title):
                with formatter.section(title):
                    formatter.write_dl(groups[title])

    def format_epilog(self, ctx, formatter):
        if self.examples:
            with formatter.section("Examples"):
                for line in self.examples:  # as written: a command is not wrapped
                    formatter.write(" " * formatter.current_indent + line + "\n")
        super().format_epilog(ctx, formatter)


def _extract_examples(cls) -> list[str]:
    """Two or three commands that run as written for extractor ``cls``."""
    name = cls.name
    try:
        kind = cls().output_kind()
    except Exception:  # noqa: BLE001 - a plugin that cannot be built yet: vector examples
        kind = "vector"
    if cls.temporal:
        return [f"featx extract {name} clip.mp4 -o {name}.npy                 # a row per frame",
                f"featx extract {name} frames/ --frames -o {name}.npy         # folders of frames, in order",
                f"featx extract {name} videos/ --video --fps 5 -o {name}.csv  # every video found, 5 frames/s"]
    if kind in ("keypoints", "dense"):
        return [f"featx extract {name} photos/ -o {name}/                     # one file per image (npy-dir)",
                f"featx extract {name} photos/ -o {name}-640/ --resize 640x480 -j 2",
                f"featx extract {name}+hog photos/ -o feats/ --resize 256x256  # several extractors, one pass"]
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


#: click's names of the run options -> the Plan's fields
_RUN_FIELDS = {"inputs": "inputs", "files_from": "files_from", "null": "null", "regions": "regions",
               "video": "video", "frames": "frames", "every": "every", "fps": "fps", "start": "start",
               "end": "end", "max_frames": "max_frames", "frame_rate": "frame_rate", "jobs": "jobs",
               "max_pixels": "max_pixels", "max_memory": "max_memory", "use_hash": "hash", "prune": "prune",
               "wait": "wait", "timeout": "timeout", "shard": "shard", "commit_every": "commit_every",
               "executor": "executor", "ray_address": "ray_address", "overwrite": "overwrite",
               "exact_decode": "exact_decode"}


def _run_fields(kwargs: dict[str, Any], only_given: click.Context | None = None) -> dict[str, Any]:
    """The Plan fields of the run options in ``kwargs`` (with ``only_given``: just those set
    on the command line, which override a recipe's)."""
    out = {}
    for name, fld in _RUN_FIELDS.items():
        if name not in kwargs:
            continue
        if only_given is not None:
            src = only_given.get_parameter_source(name)
            if src not in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
                continue
            if name == "inputs" and not kwargs[name]:
                continue
        out[fld] = kwargs[name]
    return out


def _do_extract(ctx, cls, params, *, output, format, resize, resize_mode, sidecar, quiet, summary_json,
                **run):
    from .plan import OutputPlan, Plan

    out = OutputPlan(cls.name, output, params=params, format=format, resize=resize, resize_mode=resize_mode,
                     sidecar=sidecar)
    plan = Plan(outputs=(out,), **_run_fields(run))
    _execute(ctx, plan, quiet=quiet, summary_json=summary_json, desc=cls.name)


def _build_multi(names: str) -> click.Command:
    """``featx extract hog+gradients+cnn INPUTS -o feats/``: one pass, one output per extractor."""
    from .recipe import short_form

    def callback(output, format, resize, resize_mode, quiet, summary_json, print_recipe, **run):
        ctx = click.get_current_context()
        try:
            from .plan import Plan

            outs = [o.__class__(o.extractor, o.path, format=format, resize=resize, resize_mode=resize_mode)
                    for o in short_form(names, output)]
            if format:  # NAME.csv, NAME.npy, NAME/
                outs = [o.__class__(o.extractor, os.path.splitext(o.path.rstrip("/"))[0]
                                    + ("/" if format == "npy-dir" else "." + format),
                                    format=format, resize=resize, resize_mode=resize_mode) for o in outs]
            plan = Plan(outputs=tuple(outs), **_run_fields(run))
            if print_recipe:
                from .recipe import to_toml

                click.echo(to_toml(plan), nl=False)
                return
            from .plan import build, with_shard

            build(plan)  # usage errors before the folder is made
            os.makedirs(with_shard(output, plan.shard), exist_ok=True)
            _execute(ctx, plan, quiet=quiet, summary_json=summary_json, desc=names)
        except FeatxError as exc:
            _fail(exc, ctx)
        except BrokenPipeError:
            sys.exit(_pipe_closed())

    cmd = SectionedCommand(names, callback=callback, context_settings=CONTEXT,
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
            o = click.Option(["-o", "--output"], required=True, metavar="FOLDER/",
                             help="Folder for the outputs (NAME.npy, or NAME/ for keypoints and maps).")
        opts.append(o)
    opts.append(click.Option(["--print-recipe"], is_flag=True,
                             help="Print this job as a recipe (TOML for `featx run`) instead of running it."))
    cmd.params = opts
    return cmd


def _build_run() -> click.Command:
    def callback(recipe, quiet, summary_json, print_recipe, **run):
        ctx = click.get_current_context()
        try:
            from .recipe import load_recipe, override, to_toml

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


def _execute(ctx, plan, *, quiet: bool, summary_json: str | None, desc: str) -> None:
    """Run a plan with a progress bar and messages on stderr; exit with its code."""
    from .plan import execute

    many = len(plan.outputs) > 1
    bars: list = []

    def say(msg: str) -> None:
        if bars:  # a line of its own above the bar, which is drawn again below it
            bars[0].write(f"featx: {msg}", file=sys.stderr)
        else:
            _say(msg)

    def on_failure(f, outs):
        which = ""
        if many and len(outs) < len(plan.outputs):
            which = " [" + ", ".join(plan.outputs[k].path or plan.outputs[k].extractor for k in outs) + "]"
        say(f"error: {quote_name(f.path)}: {printable(f.reason)}{which}")  # no name forges a line

    def make_bar(total, unit):
        bars.append(_progress_bar(desc, total, unit))
        return bars[0]

    show = not quiet and sys.stderr.isatty()
    try:
        root = ctx.find_root().obj or {}
        result = execute(plan, on_failure=on_failure, on_note=say, progress=make_bar if show else None,
                         fork=bool(root.get("fork")))
    finally:
        for bar in bars:
            bar.close()
    if summary_json:
        import json

        docs = [{"status": r.summary.status, **r.summary.counts(), "output": r.summary.output}
                for r in result.outputs]
        text = json.dumps(docs[0] if not many else {"outputs": docs})
        if summary_json == "-":
            click.echo(text, err=True)
        else:
            from .output.atomic import write_atomic

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


def _show_frames(cls, images: tuple[str, ...], frame: int, resize, resize_mode):
    """What ``featx show`` renders: ``(pictures, sheet)``.

    A temporal extractor gets ``[previous, next]``: two images, or frames ``frame``
    and ``frame + 1`` of a video or a frame folder.  Others get ``[image]`` for one
    image (or a video's frame ``frame``), or, for a folder or several images,
    ``sheet`` is true and ``pictures`` yields ``(name, image)`` one at a time (at
    most ``most``; ``image`` is an :class:`InputError` for one that cannot be
    decoded), for a contact sheet.
    """
    from collections.abc import Iterator

    from . import imageops
    from .decode import decode_image
    from .inputs import check_named, enumerate_inputs, is_video_name
    from .errors import InputError

    def fit(p):
        return imageops.resize(p, resize[0], resize[1], resize_mode) if resize else p

    def load_one(path: str):
        try:
            return decode_image(path)
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}") from None

    def video_frames(path: str, want: int) -> list:
        from .video import Sampling, iter_video

        try:
            pics = [f.image for f in iter_video(path, sampling=Sampling(start=None, max_frames=frame + want))]
        except FeatxError as exc:
            raise UsageError(f"{path}: {exc.message}") from None
        n = len(pics)
        pics = pics[frame:frame + want]
        if len(pics) < want:
            raise UsageError(_past_the_end(path, n, frame, want), f"choose --frame 0 to {max(n - want, 0)}")
        return pics

    one_file = len(images) == 1 and not os.path.isdir(images[0])
    if cls.temporal:
        if len(images) > 2:
            raise UsageError(f"{cls.name} shows the motion between two frames: give two images, "
                             "a video or a frame folder (--frame N picks the pair)")
        if len(images) == 1 and os.path.isdir(images[0]):
            from .video import list_frames

            try:
                every = [str(p) for p in list_frames(images[0])]
            except FeatxError as exc:
                raise UsageError(f"{images[0]}: {exc.message}", exc.hint) from None
            paths = every[frame:frame + 2]
            if len(paths) < 2:
                raise UsageError(_past_the_end(images[0], len(every), frame, 2),
                                 f"choose --frame 0 to {max(len(every) - 2, 0)}")
            return [fit(load_one(p)) for p in paths], False
        if len(images) == 1 and is_video_name(images[0]):
            return [fit(p) for p in video_frames(images[0], 2)], False
        return [fit(load_one(p)) for p in images], False
    if one_file:
        if is_video_name(images[0]):
            return [fit(video_frames(images[0], 1)[0])], False
        return [fit(load_one(images[0]))], False

    check_named(images)

    def named() -> Iterator[tuple[str, Any]]:
        for arg in images:
            root = os.path.realpath(arg) if os.path.isdir(arg) else None
            for inp in enumerate_inputs([arg]):
                name = arg if root is None else os.path.join(arg, os.path.relpath(inp.path, root))
                if inp.kind == "video":
                    yield f"{name} frame {frame}", lambda p=inp.path: video_frames(p, 1)[0]
                elif inp.error is not None:
                    yield name, InputError(inp.error)
                else:
                    yield name, lambda p=inp.path: decode_image(p)

    def sheet(most: int = 48) -> Iterator[tuple[str, Any]]:
        count = 0
        for name, get in named():
            if count == most:
                _say(f"a contact sheet shows at most {most} images: the rest are left out")
                return
            count += 1
            if isinstance(get, InputError):
                yield name, get
                continue
            try:
                yield name, fit(get())
            except FeatxError as exc:
                yield name, InputError(exc.message)
        if count == 0:
            raise UsageError(f"no images in {', '.join(images)}", "featx show takes image files and folders")

    return sheet(), True


def _past_the_end(path: str, n: int, frame: int, want: int) -> str:
    """``clip.mp4 has 62 frames (0 to 61); --frame 500 is past its end`` (with ``want`` 2:
    the motion from frame N needs frame N+1 too)."""
    what = f"{path} has {n} frame{'s' if n != 1 else ''}" + (f" (0 to {n - 1})" if n > 1 else "")
    if frame < n:
        return f"{what}; the motion from --frame {frame} needs frame {frame + 1} too"
    return f"{what}; --frame {frame} is past its end"


def _build_show(cls) -> click.Command:
    def callback(images, output, resize, resize_mode, frame, arrows, **kwargs):
        ctx = click.get_current_context()
        params = _split_params(cls, kwargs)
        failed = 0
        try:
            from . import imageops
            from .errors import InputError
            from .extractor import build_params
            from .output.atomic import write_atomic

            extractor = cls(build_params(cls, params))
            pics, sheet = _show_frames(cls, images, frame, resize, resize_mode)
            try:
                if sheet:
                    from .picture import SHEET_TILE, contact_sheet, fit

                    tiles, names = [], []
                    for name, img in pics:
                        try:
                            if isinstance(img, InputError):
                                raise img
                            tiles.append(fit(imageops.to_rgb_uint8(extractor.render(img)), SHEET_TILE))
                            names.append(name)
                        except InputError as exc:  # one image: the others are still shown
                            failed += 1
                            _say(f"error: {quote_name(name)}: {printable(exc.message)}")
                    if not tiles:
                        raise InputError("no image could be shown")
                    pic = contact_sheet(tiles, names).pixels
                elif len(pics) == 2:
                    if not hasattr(extractor, "render_pair"):
                        raise UsageError(f"{cls.name} renders one image; give one")
                    pic = extractor.render_pair(pics[0], pics[1], arrows=arrows)
                elif cls.temporal:
                    raise UsageError(f"{cls.name} needs two frames: give two images, a frame folder, or a "
                                     "video (--frame N shows the motion from frame N to N+1)")
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
            what = f"a contact sheet of {len(tiles)} image{'s' if len(tiles) != 1 else ''}" if sheet else ""
            _say(f"wrote {output} ({pic.shape[1]}x{pic.shape[0]}{', ' + what if what else ''})"
                 + (f"; {failed} could not be shown" if failed else ""))
        except FeatxError as exc:
            _fail(exc, ctx)
        if failed:
            sys.exit(int(ExitCode.ITEMS_FAILED))

    cmd = click.Command(cls.name, callback=callback, context_settings=CONTEXT,
                        help=f"Render what {cls.name} computes for IMAGE as a PNG, with its key. "
                             + ("Give two images, a video or a frame folder (--frame N: the motion from "
                                "frame N to N+1)." if cls.temporal else
                                "A folder or several images give a contact sheet: one labelled tile each."),
                        short_help=cls.summary)
    cmd.params = _with_extractor_options(cls, [
        click.Argument(["images"], nargs=-1, required=True, type=click.Path()),
        click.Option(["-o", "--output"], required=True, metavar="PNG", help="Picture to write (.png or .jpg)."),
        *_resize_options(),
        click.Option(["--frame"], type=click.IntRange(min=0), default=0, show_default=True,
                     help="For a video or frame folder: the frame to show (temporal extractors: from it "
                          "to the next)."),
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
    cmd.params_title = "detect options"
    cmd.examples = ["featx detect photos/ -o faces.csv",
                    "featx detect photos/ --cascade eye -o eyes.csv",
                    "featx extract cnn --regions faces.csv -o faces.npy      # one embedding per face"]
    # detect looks at whole images (boxes found inside --regions crops would be in the crops'
    # pixels) and writes CSV only: the options for other inputs and formats are not offered
    dropped = {p.name: p.default for p in cmd.params if p.name in ("regions", "format")}
    cmd.params = [p for p in cmd.params if p.name not in dropped]
    for p in cmd.params:
        if p.name == "output":
            p.help = "CSV file to write (NAME.csv), or - for CSV on stdout."
            p.metavar = "CSV"
        elif p.name == "resize":
            p.help = ("Resize every image to WIDTHxHEIGHT before detecting; boxes stay in the pixels of "
                      "the image as decoded.")
    extract_callback = cmd.callback
    cmd.callback = lambda **kwargs: extract_callback(**dropped, **kwargs)
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
                        short_help=f"Learn visual words from {cls.name} descriptors",
                        epilog=f"\b\nExamples:\n  featx codebook {cls.name} train/ -k 256 -o {cls.name}-k256.codebook.npz\n"
                               f"  featx codebook {cls.name} train/ -k 64 --gmm -o {cls.name}-gmm64.codebook.npz")
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
    from . import imageops
    from .inputs import Enumeration, enumerate_inputs
    from .items import load
    from .codebook import learn_codebook, local_descriptors, supports_codebook
    from .encoding import save_codebook

    if not inputs and not files_from:
        raise UsageError("no inputs given", "name image files or folders, or - to read paths from stdin")
    if os.path.exists(output) and not overwrite:
        raise UsageError(f"{output} already exists", "pass --overwrite to replace it")
    if not supports_codebook(cls):
        raise UsageError(f"{cls.name} has no local descriptors to learn a codebook from",
                         "codebooks are for extractors with keypoint descriptors, such as sift")
    if params.get("encode") not in (None, "none"):
        raise UsageError("a codebook is learnt from raw descriptors: drop --encode")
    extractor = cls.create(**params)
    stats = Enumeration()
    failed = 0
    bar = None
    if not quiet and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="img", file=sys.stderr, desc=f"{cls.name} codebook", leave=False)

    def stream():
        nonlocal failed
        for inp in enumerate_inputs(inputs, files_from=files_from, null=null, stats=stats):
            try:
                for item in load(inp):
                    img = item.image
                    if resize:
                        img = imageops.resize(img, resize[0], resize[1], resize_mode)
                    yield local_descriptors(extractor, img)
            except FeatxError as exc:
                failed += 1
                _say(f"error: {quote_name(inp.path)}: {printable(exc.message)}")
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
    """``featx codebook NAME``: only extractors with local descriptors (keypoints) can."""

    def list_commands(self, ctx):
        from . import registry
        from .codebook import supports_codebook

        out = []
        for n in registry.names():
            try:
                if supports_codebook(registry.get(n)):
                    out.append(n)
            except FeatxError:
                pass
        return out

    def usable(self, cls) -> str | None:
        from .codebook import supports_codebook

        if not supports_codebook(cls):
            return f"{cls.name} has no local descriptors to learn a codebook from"
        return None

    commands_title = "Extractors with local descriptors"


cli.add_command(_LazyDetect())
cli.add_command(_build_run())
cli.add_command(ExtractorGroup(
    "info", build=_build_info, show_params=True, context_settings=CONTEXT,
    short_help="Describe an extractor: parameters, output size, config file.",
    help="Describe one extractor: what it computes, its parameters (type, default, range) and "
         "the size of its output; NAME's parameters are options here too.\n\n"
         "\b\nExamples:\n"
         "  featx info hog                                  what hog computes, its parameters\n"
         "  featx info hog --cell-size 16 --size 640x480    vector length for these settings\n"
         "  featx info hog --as-config > hog.toml           a config file to edit, for --config"))
cli.add_command(_CodebookGroup(
    "codebook", build=_build_codebook, context_settings=CONTEXT,
    short_help="Learn visual words for --encode bovw|vlad|fisher.",
    help="Learn a codebook of visual words from local descriptors, for --encode bovw|vlad|fisher.\n\n"
         "\b\nExamples:\n"
         "  featx codebook sift train/ -k 256 -o sift-k256.codebook.npz\n"
         "  featx codebook sift train/ -k 64 --gmm -o sift-gmm64.codebook.npz\n"
         "  featx extract sift photos/ -o vlad.npy --encode vlad --codebook sift-k256.codebook.npz"))
cli.add_command(ExtractorGroup(
    "extract", build=_build_extract, context_settings=CONTEXT,
    short_help="Extract features: one extractor, or several in one pass (a+b+c).",
    help="Extract features: featx extract NAME INPUTS... -o OUTPUT [options]. `featx extract NAME --help` "
         "lists NAME's options; NAME+NAME+... writes one output per extractor in one pass.\n\n"
         "\b\nExamples:\n"
         "  featx extract hog samples/ -o hog.npy --resize 256x256\n"
         "  featx extract hog+gradients+cnn samples/ -o feats/ --resize 256x256\n"
         "  featx extract gradients samples/clip.mp4 -o clip.csv --fps 5"))
cli.add_command(ExtractorGroup(
    "show", build=_build_show, show_params=True, context_settings=CONTEXT,
    short_help="Render a picture of what an extractor computes for one image.",
    help="Render a picture of what an extractor computes for one image (two images, or a video "
         "frame, for flow). `featx show NAME --help` lists NAME's options.\n\n"
         "\b\nExamples:\n"
         "  featx show hog samples/astronaut.png -o hog.png\n"
         "  featx show flow samples/clip.mp4 --frame 10 -o flow.png\n"
         "  featx show cnn samples/chelsea.png -o cam.png"))


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

    def on_term(signum, frame):
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, on_term)
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
    sys.exit(rc if isinstance(rc, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
