"""The command line's layout (issue 20, item 6): a featx/cli/ package, one module per
command, none over 800 lines, and a library that never imports it."""
from __future__ import annotations

import re
from pathlib import Path

FEATX = Path(__file__).resolve().parent.parent / "featx"


def test_nothing_in_the_library_imports_the_cli():
    pattern = re.compile(r"^\s*(from\s+(featx\.cli|\.+cli)\b|import\s+featx\.cli\b)", re.M)
    users = [p.relative_to(FEATX).as_posix() for p in FEATX.rglob("*.py")
             if "cli" not in p.relative_to(FEATX).parts and pattern.search(p.read_text())]
    assert users == ["__main__.py"], users  # `python -m featx` is the command line


def test_one_module_per_command_none_over_800_lines():
    cli = FEATX / "cli"
    for name in ("main", "options", "extract", "info", "show", "detect", "codebook", "merge", "models", "list"):
        assert (cli / f"{name}.py").is_file(), name
    long = {p.name: n for p in cli.glob("*.py") if (n := len(p.read_text().splitlines())) > 800}
    assert not long, long


def test_console_script_and_python_m_share_one_entry_point():
    import featx.cli
    from featx.cli.main import console, main

    assert featx.cli.main is main and featx.cli.console is console
    text = (FEATX.parent / "pyproject.toml").read_text()
    assert 'featx = "featx.cli:console"' in text
    assert "console()" in (FEATX / "__main__.py").read_text()
