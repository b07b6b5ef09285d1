"""What the README and docs/ say holds: the plugin example (docs/plugins.md) registers through
an entry point and runs; the README stays short and points at every page of docs/; its table of
exit codes is the one of docs/production.md and names every code featx has."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest

from helpers import SAMPLES, fake_plugin, featx

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"


@pytest.mark.slow  # three fresh interpreters: the plugin is found through entry points
def test_plugin_example_registers_and_runs(tmp_path):
    text = (DOCS / "plugins.md").read_text()
    section = text[text.index("# Writing an extractor plugin"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    env = fake_plugin(tmp_path, "lbp", {"lbp": "mypkg.lbp:LBP"}, {"mypkg/__init__.py": "", "mypkg/lbp.py": code})
    r = featx("list", env=env)
    assert any(l.startswith("lbp ") and "[lbp]" in l for l in r.stdout.decode().splitlines())
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "2", "-q", env=env)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode())))
    counts = [float(v) for v in rows[1][1:]]
    assert len(counts) == 10 and sum(counts) == 512 * 512  # every pixel has one uniform-LBP code
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "0", env=env)
    assert r.returncode == 2 and b"--radius" in r.stderr


def _exit_table(text: str) -> str:
    start = text.index("## Exit codes")
    body = text[start:].split("\n## ", 1)[0]
    return "\n".join(l for l in body.splitlines() if l.startswith("|"))


def test_readme_is_short_and_points_at_every_docs_page():
    text = README.read_text()
    assert len(text.splitlines()) <= 150, "the README is a page a newcomer reads to the end"
    for page in sorted(DOCS.glob("*.md")):
        if page.name != "index.md":
            assert f"(docs/{page.name})" in text, f"the README does not point at docs/{page.name}"
    # the two set-up commands: the second is the one CI runs (.ci/run), -q aside
    assert "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/featx extract hog samples/" in text
    assert "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest -q" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "python3 -m venv .venv && .venv/bin/pip install -q '.[test]' && .venv/bin/python -m pytest -q" in ci


def test_exit_code_tables_agree_and_are_complete():
    from featx.errors import ExitCode

    table = _exit_table(README.read_text())
    assert table == _exit_table((DOCS / "production.md").read_text())
    codes = {int(m) for m in re.findall(r"^\| (\d+) \|", table, re.M)}
    assert codes == {int(c) for c in ExitCode}


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to '-'."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_between_pages_resolve():
    pages = [README, *sorted(DOCS.glob("*.md"))]
    anchors = {p.resolve(): {_anchor(h) for h in re.findall(r"^#+ (.*)$", p.read_text(), re.M)} for p in pages}
    bad = []
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"^[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page.resolve()
            if not dest.exists():
                bad.append(f"{page.name}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors.get(dest, set()):
                bad.append(f"{page.name}: {target} (no such heading)")
    assert not bad, bad


def test_run_options_table_in_the_docs_is_the_declared_one():
    """docs/recipes.md's run-option table is featx.runopts.markdown_table(): an option added,
    removed or changed in the table of runopts.py changes the page too (regenerate it)."""
    from featx.runopts import markdown_table

    page = (Path(__file__).resolve().parent.parent / "docs" / "recipes.md").read_text(encoding="utf-8")
    assert markdown_table() in page, "docs/recipes.md's run-option table differs from featx.runopts.markdown_table()"
