"""What the commands share: click option types, the options several commands take, the
``--config`` loader, the groups that build one subcommand per extractor, and help
sections.

Every extractor parameter option is generated from the extractor's one ``Params``
declaration; config files feed click's defaults, so values from a file go through
exactly the same parsing and validation as flags.
"""
from __future__ import annotations

from typing import Any

import click

from ..errors import FeatxError, UsageError
from .report import _fail

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# ---------------------------------------------------------------------------
# parameter types



class PairType(click.ParamType):
    """``AxB`` pairs of integers: extractor parameters such as grids (``ROWSxCOLS``)
    and, with ``positive``, image sizes (``WIDTHxHEIGHT``, read by
    :func:`featx.runopts.parse_size_pair` as a recipe's and a Python caller's are).  A
    TOML list ``[4, 4]`` is accepted too."""

    def __init__(self, name: str = "RxC", what: str = "a pair; write ROWSxCOLS, e.g. 4x4 (one number: a square)",
                 positive: bool = False):
        self.name, self.what, self.positive = name, what, positive

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        from ..extractor import parse_pair
        from ..runopts import Invalid, parse_size_pair

        if isinstance(value, str) and "X" in value:  # the documented spelling is a lowercase x
            self.fail(f"{value!r} is not {self.what}: write {value.replace('X', 'x')} (a lowercase x)", param, ctx)
        if self.positive:
            try:
                return parse_size_pair(value)
            except Invalid:
                self.fail(f"{value!r} is not {self.what}", param, ctx)
        try:
            return (int(value[0]), int(value[1])) if isinstance(value, list) and len(value) == 2 \
                else parse_pair(value)
        except (ValueError, TypeError):
            self.fail(f"{value!r} is not {self.what}", param, ctx)


class ShardType(click.ParamType):
    """``I/N`` with 1 <= I <= N (read by :func:`featx.runopts.parse_shard`)."""

    name = "I/N"

    def convert(self, value, param, ctx):
        if value is None or isinstance(value, tuple):
            return value
        from ..runopts import Invalid, parse_shard

        try:
            return parse_shard(str(value))
        except Invalid as exc:
            self.fail(f"{value!r}: expected {exc}", param, ctx)


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
        from ..memory import parse_size

        if value is None or (isinstance(value, int) and not isinstance(value, bool)):
            return value
        try:
            return parse_size(value)
        except ValueError:
            self.fail(f"{value!r} is not a memory size; write e.g. 4G, 512M or 0 (no limit)", param, ctx)


class DeclaredType(click.ParamType):
    """A run option's value as :func:`featx.runopts.convert` reads it (a window ``2.5s`` or
    ``30f``, statistics ``mean,max``): one reader for the flag, the recipe key and Python."""

    def __init__(self, opt):
        self.opt = opt
        self.name = opt.metavar or opt.kind.upper()

    def convert(self, value, param, ctx):
        from ..runopts import Invalid, convert

        if value is None:
            return value
        try:
            return convert(self.opt, value)
        except Invalid as exc:
            self.fail(f"{value!r}: expected {exc}", param, ctx)


SIZE = PairType("WxH", "a size; write WIDTHxHEIGHT of at least 1x1, e.g. 640x480 (one number: a square)",
                positive=True)
PAIR = PairType()
SHARD = ShardType()
MEMORY = MemoryType()
FLOAT = FiniteFloat()
#: Input paths are not checked by click: a missing or unreadable one fails alone, as a bad input.
INPUT_PATH = click.Path(allow_dash=True, readable=False)


def _param_option(info) -> click.Option:
    """One click option from one declared extractor parameter."""
    from ..extractor import ParamInfo  # noqa: F401  (type only)

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
    from ..recipe import read_toml

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
                from ..extractor import coerce_value

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
    from ..runopts import closest

    near = closest(word, valid)
    if near:
        return f"; {near}"
    return f" (valid {kind or 'keys'}: {', '.join(sorted({v.replace('_', '-') for v in valid}))})"


def _table_error(path: str, table: str, name: str, ctx: click.Context) -> str:
    """A table the command does not read: another extractor's, or a misspelt one."""
    from .. import registry
    from ..runopts import closest

    reads = f"{ctx.command_path} reads [{name}] and the keys above the first table"
    if table in registry.names():
        return f"{path}: table [{table}] holds settings for {table}, not {name} ({reads})"
    near = closest(f"[{table}]", [f"[{name}]"])
    if near:
        return f"{path}: unknown table [{table}]; {near}"
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
            if isinstance(opt.type, DeclaredType) and opt.type.opt.kind == "stats" and x \
                    and all(isinstance(e, str) for e in x):
                return ",".join(x)  # pool-stats = ["mean", "max"], as in a recipe
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


def run_option(opt) -> click.Parameter:
    """The click option (or, for INPUTS, argument) of one run option of
    :data:`featx.runopts.RUN_OPTIONS`: its flags, help, default, and a type that enforces
    the range the table declares (as a recipe and ``Plan`` do)."""
    if not opt.flags:
        return click.Argument([opt.name], nargs=-1, type=INPUT_PATH)
    kw: dict[str, Any] = {"help": opt.help, "metavar": opt.metavar, "show_default": opt.show_default,
                          "required": opt.required}
    if opt.kind == "flag":
        kw["is_flag"] = True
    else:
        if not opt.required:  # (a default, even None, counts as given in click >= 8.3: -o would not be required)
            kw["default"] = opt.default if opt.default != () else None
        kw["multiple"] = opt.kind == "paths"
        kw["type"] = {
            "int": lambda: click.IntRange(min=opt.low, max=opt.high, min_open=opt.low_open),
            "float": lambda: FiniteFloat(min=opt.low, max=opt.high, min_open=opt.low_open),
            "choice": lambda: click.Choice(list(opt.choices)),
            "str": lambda: None,
            "path": lambda: click.Path(dir_okay=False) if opt.file else None,
            "paths": lambda: click.Path(dir_okay=False, allow_dash=True),
            "size": lambda: SIZE, "shard": lambda: SHARD, "memory": lambda: MEMORY,
            "length": lambda: DeclaredType(opt), "stats": lambda: DeclaredType(opt)}[opt.kind]()
    p = click.Option([*opt.flags, opt.name], **kw)
    p.featx_section = opt.section
    return p


def _resize_options() -> list[click.Option]:
    from ..runopts import BY_NAME

    return [run_option(BY_NAME["resize"]), run_option(BY_NAME["resize_mode"])]


def _config_option() -> click.Option:
    return click.Option(["--config"], type=click.Path(dir_okay=False), is_eager=True, expose_value=False,
                        callback=_load_config,
                        help="TOML file of option values (same names as the options; flags override it).")



class ExtractorGroup(click.Group):
    """``featx extract NAME`` / ``featx show NAME``: one subcommand per extractor,
    built on demand so that only the extractor asked for is imported.

    Parameters declared ``show_only`` (they change only the picture ``featx show``
    draws) are options only where ``show_params`` is true; elsewhere a config file
    may still hold them (one ``[haar]`` table serves ``show`` and ``extract``)."""

    def __init__(self, *args, build, build_multi=None, show_params: bool = False, **kwargs):
        kwargs.setdefault("subcommand_metavar", "NAME [ARGS]...")
        super().__init__(*args, **kwargs)
        self._build, self._build_multi = build, build_multi
        self._show_params = show_params

    def list_commands(self, ctx):
        from .. import registry

        return registry.names()

    def usable(self, cls) -> str | None:
        """Why extractor ``cls`` cannot serve this command (None: it can)."""
        return None

    def get_command(self, ctx, name):
        from .. import registry

        if "+" in name and self._build_multi is not None:
            return self._build_multi(name)
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


def _with_extractor_options(cls, common: list[click.Parameter], skip=frozenset()) -> list[click.Parameter]:
    """The command's own parameters, then one option per declared extractor parameter
    (but those named in ``skip``: parameters the command does not take).
    A parameter whose name or flag is taken by a featx option is a plugin error."""
    from ..extractor import param_infos

    taken = {p.name for p in common} | {o for p in common for o in getattr(p, "opts", ())} | {"help"}
    opts = []
    for info in param_infos(cls.Params):
        if info.name in skip:
            continue
        if info.name in taken or info.option in taken:
            raise UsageError(f"extractor {cls.name!r} declares parameter {info.name!r}, "
                             "which clashes with a featx option", "rename the parameter in the plugin")
        opts.append(_param_option(info))
    return list(common) + opts


class _Described:
    """An extractor as its help and ``featx info`` see it, where the class can say its output
    without being built (``static_output_spec``: cnn's built-in model is not loaded to
    print a help text); else the extractor itself."""

    def __init__(self, cls, params):
        self.cls, self.params, self.name = cls, params, cls.name

    def output_spec(self, height: int, width: int):
        return self.cls.static_output_spec(self.params, height, width)

    def output_kind(self):
        return self.output_spec(480, 640).kind

    @staticmethod
    def of(cls, params=None):
        from ..extractor import build_params, construct

        params = build_params(cls, {}) if params is None else params
        spec_of = getattr(cls, "static_output_spec", None)
        if spec_of is not None and spec_of(params, 480, 640) is not None:
            return _Described(cls, params)
        return construct(cls, params)


def _split_params(cls, kwargs: dict[str, Any]) -> dict[str, Any]:
    from ..extractor import param_infos

    names = {i.name for i in param_infos(cls.Params)}
    return {k: kwargs.pop(k) for k in list(kwargs) if k in names}



def _extract_options(recipe: bool = False) -> list[click.Parameter]:
    """The options of ``featx extract``, one per run option of :mod:`featx.runopts` (and,
    with ``recipe``, those ``featx run`` takes to override a recipe's: no output, format,
    resize, regions or sidecar, which are per output there)."""
    from ..runopts import RUN_OPTIONS

    opts = [run_option(o) for o in RUN_OPTIONS if o.in_run or not recipe]
    if not recipe:
        opts.append(_config_option())
    return opts


#: Help sections of the options that are not run options.
_EXTRA_SECTIONS = {"print_recipe": "Output", "config": "Inputs"}


class SectionedCommand(click.Command):
    """A command whose help lists the extractor's own options first, under their own
    heading, then the run options in the sections :mod:`featx.runopts` gives them."""

    def __init__(self, *args, params_title: str | None = None, examples: list[str] = (), **kwargs):
        super().__init__(*args, **kwargs)
        self.params_title, self.examples = params_title, list(examples)

    def format_options(self, ctx, formatter):
        from ..runopts import SECTIONS

        groups: dict[str, list] = {}
        for p in self.get_params(ctx):
            rec = p.get_help_record(ctx) if isinstance(p, click.Option) else None
            if rec is None:
                continue
            if getattr(p, "featx_param", None) is not None:
                title = self.params_title or "Extractor options"
            else:
                title = getattr(p, "featx_section", None) or _EXTRA_SECTIONS.get(p.name, "Other options")
            groups.setdefault(title, []).append(rec)
        order = [self.params_title or "Extractor options", *SECTIONS, "Other options"]
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


