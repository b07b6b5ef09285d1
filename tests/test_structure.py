"""The package's shape, checked from its source: featx's import graph (every import,
at module level and inside functions) has no cycle; the output side imports nothing
from the engine; only the CLI imports the CLI; no module is over 800 lines.

Read with ``ast`` (nothing is imported), so a cycle hidden inside a function is
seen as well as one at the top of a module.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "featx"
MAX_LINES = 800


def modules(root: Path = ROOT) -> dict[str, Path]:
    """``featx.a.b`` -> its file, for every module and package under ``root``."""
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _under_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The featx modules ``name`` (at ``path``) imports, anywhere in its source (imports
    only read by a type checker left out).  ``from P import x`` counts as an import of
    ``P.x`` when that is a module, else of ``P``.  A module's own enclosing packages are
    left out (``from . import __version__``): Python imports them before the module
    anyway, so naming them adds no dependency."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or _under_type_checking(node, parents):
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in known else mod for a in node.names]
        for t in targets:
            while t and t not in known:  # "featx.output.sinks.X" -> the module that holds it
                t = t.rpartition(".")[0]
            if t and t != name and not name.startswith(t + "."):
                found.add(t)
    return found


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(g: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(g.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def _path_in(comp: list[str], g: dict[str, set[str]]) -> str:
    """One cycle through a component, for the message: ``a -> b -> a``."""
    start, members = comp[0], set(comp)
    prev = {start: None}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(g[v] & members):
            if w == start:
                chain = [v]
                while prev[chain[-1]] is not None:
                    chain.append(prev[chain[-1]])
                return " -> ".join(reversed(chain)) + " -> " + start
            if w not in prev:
                prev[w] = v
                queue.append(w)
    return ", ".join(comp)


@pytest.fixture(scope="module")
def g():
    return graph()


def test_the_graph_is_read(g):
    """The reader sees imports of every kind (a test that cannot fail is a defect)."""
    assert "featx.decode" in g["featx.inputs"]                      # from .decode import ...
    assert "featx.output.layout" in g["featx.items"]               # from .output import layout
    assert "featx.host" in g["featx.output.lock"]                  # from .. import host
    assert "featx.extractor" in g["featx.codebook"] or "featx.encoding" in g["featx.codebook"]


def test_no_import_cycle(g):
    found = cycles(g)
    assert not found, "import cycles:\n" + "\n".join(_path_in(c, g) for c in found)


def test_a_planted_cycle_is_found(tmp_path):
    """The check itself: two modules that import each other inside functions."""
    pkg = tmp_path / "featx"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n")
    (pkg / "sub" / "b.py").write_text("def g():\n    from .. import a\n")
    (pkg / "c.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import a\n")
    g = graph(pkg)
    assert g["featx.a"] == {"featx.sub.b"} and g["featx.sub.b"] == {"featx.a"} and g["featx.c"] == set()
    assert cycles(g) == [["featx.a", "featx.sub.b"]]


def test_output_imports_nothing_from_the_engine(g):
    bad = {m: sorted(t for t in ts if t == "featx.engine" or t.startswith("featx.engine."))
           for m, ts in g.items() if m == "featx.output" or m.startswith("featx.output.")}
    assert not {m: t for m, t in bad.items() if t}


def test_only_the_cli_imports_the_cli(g):
    def is_cli(m):
        return m == "featx.cli" or m.startswith("featx.cli.")

    # featx/__main__.py (``python -m featx``) is the CLI's entry point, not a user of it
    bad = {m: sorted(filter(is_cli, ts)) for m, ts in g.items() if not is_cli(m) and m != "featx.__main__"}
    assert not {m: t for m, t in bad.items() if t}


def test_no_module_over_800_lines():
    long = {str(p.relative_to(ROOT.parent)): n for p in sorted(ROOT.rglob("*.py"))
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"
