"""Run options are declared once (issue 20, item 5): featx/runopts.py's table makes the CLI
options, the recipe keys and their parsing, the fields and checks of Plan, and the
sidecar's options.  These tests fail when any of them drifts from the table, when a range
is enforced differently by a flag, a recipe key and a Python value, and when a new row of
the table is not enough to add a run option."""
from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import click
import pytest

from featx import runopts
from featx.errors import UsageError
from featx.runopts import RUN, RUN_OPTIONS
from helpers import SAMPLES, featx_inprocess

FEATX = Path(__file__).resolve().parent.parent / "featx"


def _extract_command(name: str = "gradients") -> click.Command:
    from featx import registry
    from featx.cli.extract import _build_extract

    return _build_extract(registry.get(name))


def _run_params(cmd: click.Command) -> set[str]:
    """A command's parameters that are not its extractor's and not --config/--help."""
    return {p.name for p in cmd.params if getattr(p, "featx_param", None) is None} - {"config", "help"}


def test_every_cli_run_option_is_a_row_of_the_table_and_back():
    from featx.cli.extract import run_cmd

    assert _run_params(_extract_command()) == {o.name for o in RUN_OPTIONS}
    assert _run_params(_extract_command("sift")) == {o.name for o in RUN_OPTIONS}
    # featx run overrides a recipe's whole-run options (and reports as the CLI does)
    assert _run_params(run_cmd) - {"recipe", "print_recipe"} == {o.name for o in RUN_OPTIONS if o.in_run}
    # flags and help as declared, in a declared section
    cmd = _extract_command()
    by_name = {p.name: p for p in cmd.params}
    for o in RUN_OPTIONS:
        p = by_name[o.name]
        if o.flags:
            assert tuple(p.opts + p.secondary_opts) == o.flags and p.help == o.help
            assert o.section in runopts.SECTIONS and p.featx_section == o.section
        assert not (o.scope == "output" and o.in_run), o.name


def test_every_recipe_key_is_a_row_of_the_table_and_back():
    from featx.recipe import OUTPUT_KEYS, RUN_KEYS

    assert set(RUN_KEYS) == {o.recipe for o in RUN_OPTIONS if o.scope == "run" and o.recipe}
    assert set(OUTPUT_KEYS) == {o.recipe for o in RUN_OPTIONS if o.scope == "output"}
    assert all(o.recipe is None for o in RUN_OPTIONS if o.scope == "cli")
    assert all(RUN_KEYS[k].recipe == k for k in RUN_KEYS) and all(OUTPUT_KEYS[k].recipe == k for k in OUTPUT_KEYS)


def test_plan_fields_are_the_rows_of_the_table():
    from featx.plan import OutputPlan, Plan

    assert [f.name for f in dataclasses.fields(Plan)] == ["outputs"] + [o.attr for o in RUN]
    assert [f.name for f in dataclasses.fields(OutputPlan)] == \
        ["extractor", "path", "params"] + [o.attr for o in runopts.PER_OUTPUT if o.attr != "path"]
    plan = Plan(outputs=())
    assert all(getattr(plan, o.attr) == o.default for o in RUN)


def test_the_sidecar_records_the_options_the_table_marks(tmp_path):
    out = tmp_path / "g.npy"
    r = featx_inprocess("extract", "gradients", SAMPLES / "chelsea.png", "-o", out, "-j", "1", "-q",
                        "--resize", "64x48", "--shard", "1/1")
    assert r.returncode == 0, r.stderr.decode()
    options = json.loads((tmp_path / "g.npy.featx.json").read_text())["options"]
    assert list(options) == [o.name for o in RUN_OPTIONS if o.sidecar] + ["sampling", "decode"]
    assert options["resize"] == [64, 48] and options["shard"] == [1, 1] and options["jobs"] == 1


# ---------------------------------------------------------------------------
# one range, enforced alike by a flag, a recipe key and a Python value


def _by_flag(o: runopts.RunOption, text: str) -> bool:
    from featx.cli.options import run_option

    try:
        run_option(o).type_cast_value(click.Context(click.Command("x")), [text] if o.kind == "paths" else text)
        return True
    except click.BadParameter:
        return False


def _by_recipe(o: runopts.RunOption, value, tmp_path) -> bool:
    from featx.recipe import plan_from_dict

    out = {"extractor": "gradients", "path": "g.npy"}
    data = {"inputs": ["x"], "output": [out]}
    if o.scope == "output":
        out[o.recipe] = value
    else:
        data[o.recipe] = value
    try:
        plan_from_dict(data, "r.toml", str(tmp_path))
        return True
    except UsageError:
        return False


def _by_python(o: runopts.RunOption, value) -> bool:
    import featx

    try:
        if o.scope == "output":
            featx.run(outputs=[{"extractor": "gradients", "path": "/nonexistent/g.npy", o.attr: value}],
                      inputs=["/nonexistent/x.png"])
        else:
            featx.run(outputs=[{"extractor": "gradients", "path": "/nonexistent/g.npy"}],
                      inputs=["/nonexistent/x.png"], **{o.attr: value})
    except UsageError as exc:
        return not exc.message.startswith(f"{o.attr} = ") and f": {o.attr} = " not in exc.message
    return True


def _candidates(o: runopts.RunOption) -> list:
    if o.kind in ("int", "float"):
        lo = o.low if o.low is not None else 0
        vals = [lo - 1, lo, lo + 1, 3]
        if o.kind == "float":
            vals += [lo + 0.5, lo - 1e-9, math.nan, math.inf]
        if o.high is not None:
            vals += [o.high, o.high * 1.5]
        return [int(v) if o.kind == "int" and float(v).is_integer() else v for v in vals]
    return {"shard": ["2/8", "1/1", "0/2", "3/2", "2", "a/b"],
            "memory": ["4G", "512M", "0", "1.5GiB", "-1", "4X", "lots"],
            "size": ["256x256", "256", "64x48", "0x5", "5x0", "axb"],
            "choice": list(o.choices) + ["nope"]}.get(o.kind, [])


CHECKED = [o for o in RUN_OPTIONS if o.scope != "cli" and _candidates(o)]


@pytest.mark.parametrize("opt", CHECKED, ids=[o.name for o in CHECKED])
def test_a_range_declared_once_is_enforced_alike_by_flag_recipe_and_python(opt, tmp_path):
    for v in _candidates(opt):
        text = repr(v) if isinstance(v, float) and math.isfinite(v) else str(v)
        flag, recipe, python = _by_flag(opt, text), _by_recipe(opt, v, tmp_path), _by_python(opt, v)
        assert flag == recipe == python, (opt.name, v, {"flag": flag, "recipe": recipe, "python": python})
        try:
            runopts.convert(opt, v)
            declared = True
        except runopts.Invalid:
            declared = False
        assert declared == flag, (opt.name, v)


def test_timeout_has_one_maximum_everywhere(tmp_path):
    """It had a maximum on the command line only."""
    o = runopts.BY_NAME["timeout"]
    assert not _by_flag(o, "2e9") and not _by_recipe(o, 2e9, tmp_path) and not _by_python(o, 2e9)
    assert _by_flag(o, "1e9") and _by_recipe(o, 1e9, tmp_path) and _by_python(o, 1e9)


def test_extract_files_refuses_what_the_command_line_refuses():
    import featx

    with pytest.raises(UsageError, match="jobs = -1"):
        featx.extract_files(str(SAMPLES / "chelsea.png"), "gradients", jobs=-1)
    with pytest.raises(UsageError, match="resize"):
        featx.extract_files(str(SAMPLES / "chelsea.png"), "gradients", resize=(0, 5))


# ---------------------------------------------------------------------------
# one "did you mean"


def test_one_did_you_mean_in_one_format(tmp_path):
    from featx import registry
    from featx.recipe import plan_from_dict

    with pytest.raises(UsageError) as e:
        plan_from_dict({"jobz": 2, "output": []}, "r.toml", str(tmp_path))
    assert e.value.hint == "did you mean jobs?"
    with pytest.raises(UsageError) as e:
        registry.get("hogg")
    assert e.value.message.endswith("; did you mean hog?")
    # the only place that looks for a close match
    users = [p for p in FEATX.rglob("*.py") if "get_close_matches" in p.read_text()]
    assert users == [FEATX / "runopts.py"], users


# ---------------------------------------------------------------------------
# a new run option is one row


DUMMY_ROW = ('    RunOption("dummy_opt", ("--dummy-opt",), "int", "A run option added for a test.", _R, low=1, high=3,\n'
             '              metavar="N", recipe="dummy-opt", sidecar=True),\n')

PROBE = r'''
import importlib.util, json, sys
from pathlib import Path

import featx  # light: the package only
path = Path(featx.__file__).parent / "runopts.py"
src = path.read_text()
anchor = "\n)\n\nBY_NAME"
assert src.count(anchor) == 1
src = src.replace(anchor, "\n" + sys.argv[1].rstrip("\n") + anchor)
spec = importlib.util.spec_from_loader("featx.runopts", loader=None, origin=str(path))
mod = importlib.util.module_from_spec(spec)
sys.modules["featx.runopts"] = mod
exec(compile(src, str(path), "exec"), mod.__dict__)
featx.runopts = mod

from click.testing import CliRunner
from featx.cli import cli
from featx.errors import UsageError
from featx.plan import OutputPlan, Plan
from featx.recipe import plan_from_dict, to_toml

out = {}
help_text = CliRunner().invoke(cli, ["extract", "gradients", "--help"]).output
out["help"] = "--dummy-opt N" in help_text and "A run option added for a test." in help_text
out["run_help"] = "--dummy-opt" in CliRunner().invoke(cli, ["run", "--help"]).output
out["flag_range"] = CliRunner().invoke(cli, ["extract", "gradients", "x.png", "-o", "g.npy",
                                             "--dummy-opt", "5"]).exit_code == 2
plan = plan_from_dict({"dummy-opt": 2, "output": [{"extractor": "gradients", "path": "g.npy"}]}, "r.toml", "/")
out["recipe"] = plan.dummy_opt == 2 and "dummy-opt = 2" in to_toml(plan)
try:
    plan_from_dict({"dummy-opt": 9, "output": [{"extractor": "gradients", "path": "g.npy"}]}, "r.toml", "/")
    out["recipe_range"] = False
except UsageError:
    out["recipe_range"] = True
try:
    Plan(outputs=(), dummy_opt=0)
    out["python_range"] = False
except UsageError:
    out["python_range"] = True
out["sidecar"] = featx.runopts.sidecar_options(Plan(outputs=(), dummy_opt=3),
                                               OutputPlan("gradients", "g.npy"))["dummy_opt"] == 3
print(json.dumps(out))
'''


def test_a_new_run_option_is_one_row_of_the_table():
    """Add one row to runopts.py's source (nothing else) and the option is a flag with its
    help and range, a `featx run` override, a recipe key, a Plan field with its check, and
    an option the sidecar records."""
    r = subprocess.run([sys.executable, "-c", PROBE, DUMMY_ROW], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got == {k: True for k in got} and len(got) == 7, got
