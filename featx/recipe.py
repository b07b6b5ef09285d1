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

import difflib
import math
import os
from typing import Any

from .errors import FeatxError, UsageError
from .plan import OutputPlan, Plan, extractor_class

#: Run options a recipe may set: key -> (Plan field, kind).
RUN_KEYS: dict[str, tuple[str, str]] = {
    "inputs": ("inputs", "paths"), "files-from": ("files_from", "paths"), "null": ("null", "bool"),
    "regions": ("regions", "path"), "video": ("video", "bool"), "frames": ("frames", "bool"),
    "every": ("every", "int1"), "fps": ("fps", "float>0"), "start": ("start", "float>=0"),
    "end": ("end", "float>=0"), "max-frames": ("max_frames", "int1"), "frame-rate": ("frame_rate", "float>0"),
    "jobs": ("jobs", "int0"), "max-pixels": ("max_pixels", "int0"), "max-memory": ("max_memory", "memory"),
    "hash": ("hash", "bool"), "prune": ("prune", "bool"), "wait": ("wait", "bool"),
    "timeout": ("timeout", "float>0"), "shard": ("shard", "shard"), "commit-every": ("commit_every", "float>=0"),
    "executor": ("executor", "executor"), "ray-address": ("ray_address", "str"),
    "exact-decode": ("exact_decode", "bool"),
}
#: Keys of an ``[[output]]`` table besides the extractor's parameters.
OUTPUT_KEYS = ("extractor", "path", "format", "resize", "resize-mode", "sidecar")


def _closest(key: str, valid) -> str:
    near = difflib.get_close_matches(key, list(valid), n=1)
    return f"did you mean {near[0]!r}?" if near else "valid: " + ", ".join(sorted(valid))


def _value(where: str, key: str, kind: str, v: Any, base: str) -> Any:
    """A recipe value checked and converted as the command line's option would be."""
    from .extractor import parse_pair
    from .memory import parse_size

    def bad(what: str) -> UsageError:
        return UsageError(f"{where}: {key} = {v!r}: expected {what}")

    if kind == "bool":
        if not isinstance(v, bool):
            raise bad("true or false")
        return v
    if kind in ("int0", "int1"):
        if isinstance(v, bool) or not isinstance(v, int) or v < int(kind[-1]):
            raise bad(f"an integer of at least {kind[-1]}")
        return v
    if kind.startswith("float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise bad("a finite number")
        if (kind == "float>0" and v <= 0) or (kind == "float>=0" and v < 0):
            raise bad("a number above 0" if kind == "float>0" else "a number of at least 0")
        return float(v)
    if kind in ("str", "path"):
        if not isinstance(v, str) or (kind == "path" and not v):
            raise bad("a string" if kind == "str" else "a path")
        return v if kind == "str" or v == "-" else os.path.join(base, os.path.expanduser(v))
    if kind == "paths":
        items = v if isinstance(v, list) else [v]
        if not all(isinstance(x, str) and x for x in items):
            raise bad("a path or a list of paths")
        return tuple(x if x == "-" else os.path.join(base, os.path.expanduser(x)) for x in items)
    if kind == "memory":
        try:
            return parse_size(v)
        except (ValueError, TypeError):
            raise bad("a memory size such as \"4G\", \"512M\" or 0") from None
    if kind == "shard":
        try:
            i, n = (int(x) for x in str(v).split("/"))
        except ValueError:
            raise bad('a shard "I/N", e.g. "2/8"') from None
        if not 1 <= i <= n:
            raise bad('a shard "I/N" with 1 <= I <= N')
        return i, n
    if kind == "executor":
        if v not in ("local", "ray"):
            raise bad('"local" or "ray"')
        return v
    if kind == "size":
        try:
            if isinstance(v, list):
                if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                    raise ValueError(v)
                w, h = v
            else:
                w, h = parse_pair(str(v))
        except (ValueError, TypeError):
            raise bad('a size "WIDTHxHEIGHT", e.g. "256x256"') from None
        if min(w, h) < 1:
            raise bad("a size of at least 1x1")
        return w, h
    raise AssertionError(kind)  # pragma: no cover


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
        if key in ("extractor",):
            continue
        if key == "path":
            kw["path"] = _value(where, key, "path", v, base)
        elif key == "sidecar":
            kw["sidecar"] = _value(where, key, "path", v, base)
        elif key == "format":
            if v not in ("csv", "npy", "npy-dir"):
                raise UsageError(f"{where}: format = {v!r}: expected csv, npy or npy-dir")
            kw["format"] = v
        elif key == "resize":
            kw["resize"] = _value(where, key, "size", v, base)
        elif key == "resize-mode":
            if v not in ("stretch", "crop"):
                raise UsageError(f"{where}: resize-mode = {v!r}: expected stretch or crop")
            kw["resize_mode"] = v
        elif key in params_valid:
            params[params_valid[key]] = v
        else:
            raise UsageError(f"{where}: unknown key {key!r} in the {name!r} output",
                             _closest(key, list(OUTPUT_KEYS) + list(params_valid)))
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
            field_name, kind = RUN_KEYS[key]
            fields[field_name] = _value(where, key, kind, v, base)
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
    for key, (field_name, kind) in RUN_KEYS.items():
        v = getattr(plan, field_name)
        if v == getattr(defaults, field_name) or v is None:
            continue
        if field_name == "shard":
            v = f"{v[0]}/{v[1]}"
        elif kind == "paths":
            v = [_absolute(p) for p in v]
        elif kind == "path":
            v = _absolute(v)
        top[key] = list(v) if isinstance(v, tuple) else v
    outs = []
    for o in plan.outputs:
        cls = extractor_class(o.extractor)
        t: dict[str, Any] = {"extractor": o.extractor, "path": _absolute(o.path)}
        if o.sidecar:
            t["sidecar"] = _absolute(o.sidecar)
        if o.format:
            t["format"] = o.format
        if o.resize:
            t["resize"] = f"{o.resize[0]}x{o.resize[1]}"
            t["resize-mode"] = o.resize_mode
        for k, v in params_to_dict(build_params(cls, o.params)).items():
            if v is not None:
                t[k.replace("_", "-")] = "x".join(map(str, v)) if isinstance(v, list) else v
        outs.append(t)
    text = tomli_w.dumps({**top, "output": outs})
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        bad = next(p for p in list(plan.inputs) + list(plan.files_from) + [plan.regions or ""]
                   + [x for o in plan.outputs for x in (o.path or "", o.sidecar or "")] if not _utf8(p))
        raise UsageError(f"{os.fsencode(bad)!r} is not UTF-8 text, which a TOML recipe cannot hold",
                         "rename it, or name it on the command line (featx run RECIPE INPUTS)") from None
    return text


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
