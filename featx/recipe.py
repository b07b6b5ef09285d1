"""Recipes: a job of several outputs in one TOML file (``featx run recipe.toml``).

::

    inputs = ["photos/"]          # files, folders, videos; relative to this file's folder
    jobs = 2                      # run options: the command line's names (max-memory, fps, ...)

    [[output]]
    extractor = "hog"
    path = "feats/hog.npy"        # relative to this file's folder
    resize = "256x256"            # per output: resize, resize-mode, format, sidecar
    cell-size = 16                # and the extractor's own parameters

    [[output]]
    extractor = "cnn"
    path = "feats/emb.npy"

Each input is decoded once for every output.  Unknown keys are errors that
name the file, the key and the closest valid one.  The short form
``featx extract hog+gradients+cnn INPUTS -o feats/`` builds the same
:class:`~featx.plan.Plan` with each extractor's defaults (:func:`short_form`).
"""
from __future__ import annotations

import os
from typing import Any

from . import runopts
from .errors import FeatxError, UsageError
from .plan import OutputPlan, Plan, extractor_class

#: Run options a recipe may set (key -> option), and the keys of an ``[[output]]`` table
#: besides the extractor's parameters: both from :data:`featx.runopts.RUN_OPTIONS`.
RUN_KEYS: dict[str, runopts.RunOption] = {o.recipe: o for o in runopts.RUN if o.recipe}
OUTPUT_KEYS: dict[str, runopts.RunOption] = {o.recipe: o for o in runopts.PER_OUTPUT if o.recipe}


def _closest(key: str, valid) -> str:
    return runopts.closest(key, valid) or "valid: " + ", ".join(sorted(valid))


def _value(where: str, key: str, opt: runopts.RunOption, v: Any, base: str) -> Any:
    """A recipe value checked and converted as the command line's option is."""
    try:
        return runopts.convert(opt, v, base)
    except runopts.Invalid as exc:
        raise UsageError(f"{where}: {key} = {v!r}: expected {exc}") from None


def _output(where: str, table: Any, base: str) -> OutputPlan:
    from .extractor import param_infos

    if not isinstance(table, dict):
        raise UsageError(f"{where}: each [[output]] must be a table")
    if "extractor" not in table:
        raise UsageError(f"{where}: an [[output]] has no extractor", 'add extractor = "NAME" (featx list names them)')
    if "path" not in table:
        raise UsageError(f"{where}: the {table['extractor']!r} output has no path",
                         'add path = "feats/NAME.npy" (a .npy, a .csv, or a folder/)')
    name = table["extractor"]
    if not isinstance(name, str):
        raise UsageError(f"{where}: extractor = {name!r}: expected an extractor's name", "featx list names them")
    try:
        cls = extractor_class(name)
    except FeatxError as exc:
        raise UsageError(f"{where}: {exc.message}", exc.hint) from None
    params_valid = {i.option[2:]: i.name for i in param_infos(cls.Params)}
    params, kw = {}, {}
    for key, v in table.items():
        if key == "extractor":
            continue
        if key in OUTPUT_KEYS:
            kw[OUTPUT_KEYS[key].attr] = _value(where, key, OUTPUT_KEYS[key], v, base)
        elif key in params_valid:
            params[params_valid[key]] = v
        else:
            raise UsageError(f"{where}: unknown key {key!r} in the {name!r} output",
                             _closest(key, ["extractor", *OUTPUT_KEYS, *params_valid]))
    return OutputPlan(name, params=params, **kw)


def plan_from_dict(data: dict[str, Any], where: str, base: str) -> Plan:
    """A :class:`Plan` from a recipe's TOML data; relative paths are taken from ``base``."""
    fields: dict[str, Any] = {}
    outputs = []
    for key, v in data.items():
        if key == "output":
            if not isinstance(v, list):
                raise UsageError(f"{where}: 'output' must be an array of tables", "write [[output]] (two brackets)")
            outputs = [_output(where, t, base) for t in v]
        elif key in RUN_KEYS:
            fields[RUN_KEYS[key].attr] = _value(where, key, RUN_KEYS[key], v, base)
        else:
            raise UsageError(f"{where}: unknown key {key!r}", _closest(key, list(RUN_KEYS) + ["output"]))
    if not outputs:
        raise UsageError(f"{where}: the recipe has no [[output]] tables", "add one [[output]] per output")
    return Plan(outputs=tuple(outputs), **fields)


def read_toml(path: str, what: str = "") -> dict[str, Any]:
    """A TOML file's data; :class:`UsageError` naming the file when it cannot be read or is
    not TOML (recipes and ``--config`` files)."""
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise UsageError(f"cannot read {what}{path}: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not valid TOML: not UTF-8 text") from None


def load_recipe(path: str) -> Plan:
    """Read a recipe file into a :class:`Plan` (usage errors name the file and the key)."""
    data = read_toml(path, "the recipe ")
    base = os.path.dirname(os.path.abspath(path))
    return plan_from_dict(data, path, base)


def override(plan: Plan, **fields: Any) -> Plan:
    """``plan`` (a recipe's) with run options given elsewhere (the command line, a Python
    caller): inputs given there — paths or ``files_from`` lists — replace all of its inputs."""
    if "inputs" in fields or "files_from" in fields:
        fields = {"inputs": (), "files_from": (), **fields}
    return plan.replace(**fields) if fields else plan


def to_toml(plan: Plan) -> str:
    """A recipe file for ``plan`` (what ``--print-recipe`` shows): run options at the top,
    one ``[[output]]`` table per output with every parameter of its extractor."""
    import tomli_w

    from .extractor import build_params, params_to_dict

    top: dict[str, Any] = {}
    defaults = Plan(outputs=())
    for key, o in RUN_KEYS.items():
        v = getattr(plan, o.attr)
        if v == getattr(defaults, o.attr) or v is None:
            continue
        top[key] = _toml_value(o, v)
    outs = []
    for out in plan.outputs:
        cls = extractor_class(out.extractor)
        t: dict[str, Any] = {"extractor": out.extractor}
        for key, o in OUTPUT_KEYS.items():
            v = getattr(out, o.attr)
            if o.pooling and out.pool_over is None:   # an output that does not pool: no pooling keys
                continue
            if v is not None and not (o.name == "resize_mode" and out.resize is None):  # a mode needs a size
                t[key] = _toml_value(o, v)
        for k, v in params_to_dict(build_params(cls, out.params)).items():
            if v is not None:
                t[k.replace("_", "-")] = "x".join(map(str, v)) if isinstance(v, list) else v
        outs.append(t)
    text = tomli_w.dumps({**top, "output": outs})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        bad = next(p for p in list(plan.inputs) + list(plan.files_from) + [plan.regions or "", plan.segments or ""]
                   + [x for o in plan.outputs for x in (o.path or "", o.sidecar or "")] if not _utf8(p))
        raise UsageError(f"{os.fsencode(bad)!r} is not UTF-8 text, which a TOML recipe cannot hold",
                         "rename it, or name it on the command line (featx run RECIPE INPUTS)") from None
    return text


def _toml_value(o: runopts.RunOption, v: Any) -> Any:
    """A run option's value as a recipe writes it: as its flag is spelled, paths absolute."""
    if o.kind == "shard":
        return f"{v[0]}/{v[1]}"
    if o.kind == "size":
        return f"{v[0]}x{v[1]}"
    if o.kind == "paths":
        return [_absolute(p) for p in v]
    if o.kind == "path":
        return _absolute(v)
    return list(v) if isinstance(v, tuple) else v


def _absolute(path: str) -> str:
    """A path of a printed recipe: absolute, since a recipe's relative paths are read from
    its own folder, wherever it is saved (a folder output keeps its trailing /)."""
    if path in (None, "-"):
        return path
    ap = os.path.abspath(path)
    return ap + "/" if path.endswith(("/", os.sep)) and not ap.endswith("/") else ap


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def short_form(names: str, output: str) -> list[OutputPlan]:
    """``hog+gradients+cnn`` with ``-o feats/``: one output per extractor, with its defaults,
    named after it in the folder ``output`` — ``feats/hog.npy``, or ``feats/sift/`` (npy-dir)
    for extractors whose rows are keypoints or maps."""
    from . import registry

    parts = names.split("+")
    if any(not p for p in parts):
        raise UsageError(f"{names!r}: write extractor names joined by +, e.g. hog+gradients+cnn")
    if len(set(parts)) != len(parts):
        raise UsageError(f"{names!r} names an extractor twice",
                         "to run one extractor with two settings, write a recipe (featx run)")
    if output == "-" or not (output.endswith(("/", os.sep)) or os.path.isdir(output)):
        raise UsageError(f"{names} writes one output per extractor: -o must be a folder (end it with /)",
                         f"e.g. -o feats/ writes feats/{parts[0]}.npy, ...")
    outs = []
    for p in parts:
        cls = registry.get(p)
        kind = cls().output_kind()
        path = os.path.join(output, p + ("/" if kind in ("keypoints", "dense") else ".npy"))
        outs.append(OutputPlan(p, path))
    return outs
