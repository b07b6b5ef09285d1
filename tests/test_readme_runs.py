"""The README and the pages of docs/ run as written.

Every shell command of the code blocks of README.md and of every page of ``docs/`` is run,
page after page in the order of ``PAGES`` (the README first), each page in its own order, in
one scratch folder that holds a copy of ``samples/`` and the few files the README assumes the reader
has (see ``make_scratch``: ``photos/`` = ``cp -r samples photos`` as the README says, a
cascade file, a short video with a face for ``talk.mp4``).  Exit codes are checked, and so
is every file a command or its comment promises (``-o FILE``, ``> FILE``,
``--summary-json FILE``, file names in the comment, a column list such as
``# path,x,y,w,h``).  The Python snippets run afterwards in the same folder, each in a
fresh interpreter, saved as a script and run as ``python script.py`` as a reader would
(not through ``python -c``, which hides what a script's re-import by worker processes does);
TOML config blocks are run as ``--config`` files; the README's table of
CSV column names (docs/outputs.md) is checked against what each extractor writes.

A command that an earlier page already ran, word for word, is not run again (the README's
dozen commands are also in docs/usage.md); within one page a repeated command runs again,
as the reader would run it (the incremental re-run of a command).

A command that is one plain ``featx ...`` invocation runs through ``featx.cli.main`` (the
console script's entry point) in this process, which saves a Python start-up per command,
and so does one that only makes a folder first (``mkdir -p DIR && featx ...``) or sends
stdout to a file (``featx ... > FILE``); one with other shell syntax (pipes, ``&&``
between other commands, globs, variables) runs in bash with ``featx`` on PATH.

Nothing is left out silently: a command that cannot run here is in ``SKIP`` with its
reason, a Python or TOML block that is not run is in ``NOT_RUN`` with its reason, every
path that is rewritten is in ``SUBSTITUTIONS``, and the tests below fail when any of these
lists no longer matches the README.
"""
from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx_inprocess

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: The pages whose examples run, in the order they run: a page may use what an earlier one
#: made (faces.csv, the codebooks, hog.toml).  Every docs/*.md page is listed (tested).
PAGES: list[Path] = [README] + [ROOT / "docs" / name for name in (
    "index.md", "usage.md", "inputs.md", "outputs.md", "pooling.md", "similar.md", "report.md", "recipes.md", "extractors.md", "production.md",
    "python.md", "plugins.md", "performance.md", "development.md")]

#: Fenced blocks in these languages hold shell commands.  Any other block that holds a
#: line starting with ``featx `` is a test failure (see test_no_featx_commands_hidden).
SHELL_LANGS = {"sh", "bash", "shell", "console"}

#: The README's stand-ins for the reader's own files, rewritten before a command runs.
#: ``photos/`` and ``talk.mp4`` need no rewriting: the scratch folder has them (see
#: make_scratch), as the README says next to its first example.  (pattern, replacement, why)
SUBSTITUTIONS: list[tuple[str, str, str]] = [
    (r"/data/photos\b", "photos", "the cron and shard examples' photo folder: the scratch photos/"),
    (r"/data/", "data/", "the cron example's output folder: scratch data/"),
    (r"/var/log/featx\.json", "data/featx-summary.json", "the cron example's --summary-json file"),
    (r"(?<![\w/.-])train/", "samples/", "codebook training images: the samples"),
    (r"(?<![\w/.-])new/", "samples/", "`featx run features.toml new/`: more images, here the samples"),
]

#: Commands with shell variables, run once per set of values given (the README says which).
REPEAT: dict[str, list[dict[str, str]]] = {
    # "8 array jobs, each over a stable slice of the inputs"
    "featx extract hog /data/photos -o part-$I.npy --shard $I/8 --resize 256x256":
        [{"I": str(i)} for i in range(1, 9)],
}

#: Commands that are not run, and why.  Keyed by the command as written (continuation
#: lines joined, comment removed).
SKIP: dict[str, str] = {
    "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/featx extract hog samples/ -o hog.npy --resize 256x256":
        "installs featx from the package index (network, minutes); its featx command is run below as "
        "`featx extract hog samples/ -o hog.npy --resize 256x256`",
    "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/python -m pytest -q":
        "installs packages and runs the whole test suite, this test included",
    "python3 -m venv .venv && .venv/bin/pip install -e '.[test]'":
        "installs packages (network); this test runs in such an environment",
    ".venv/bin/python -m pytest -q":
        "the whole test suite, this test included",
    '.venv/bin/python -m pytest -q -m "not slow"':
        "the quick test suite, this test included",
    ".venv/bin/python -m pytest -q -m fast":
        "the library-level tests (a suite of its own)",
    ".venv/bin/python benchmarks/bench_pipeline.py":
        "a benchmark: minutes of work on 500 generated photos",
    "pip install 'featx[ray]'":
        "installs packages from the package index (network)",
    "featx extract hog /shared/photos -o /shared/features/hog.npy --resize 256x256 --executor ray --ray-address auto":
        "needs a running Ray cluster (`--ray-address auto` joins one; none runs here); "
        "tests/test_ray.py runs --executor ray on a private Ray",
}

#: Expected exit codes other than 0 (none today: every example is meant to succeed).
EXIT_CODES: dict[str, int] = {}

#: Python and TOML blocks that are not run here, by their first line, and why.
NOT_RUN: dict[str, str] = {
    "from dataclasses import dataclass":
        "the plugin skeleton: tests/test_readme.py installs it as a plugin through an entry point and runs it",
    "# your package's pyproject.toml":
        "a plugin's pyproject.toml: tests/test_readme.py registers the same entry point",
}

#: Names a Python snippet uses as the reader's own data, given to it before it runs.
PY_PRELUDE = {
    "images": "images = [img, img[:, ::-1].copy()]  # your own RGB arrays",
}
PY_SUBSTITUTIONS: list[tuple[str, str, str]] = [
    (r'"photo\.jpg"', '"samples/coffee.jpg"', "the reader's photo: a sample photo"),
]

#: Commands that take several seconds each: test_slow_commands_run runs them after the
#: others, in page order, in the same folder.  Nothing the other commands run depends on them.
#: (Every test that runs the pages' examples is marked slow: together they take a minute or
#: more; the checks of the lists and the parser below are quick.)  (command: why it is slow)
_CODEBOOK = "k-means (and EM for the GMM) over every SIFT descriptor of the samples"
_ENCODE = "SIFT and an encoding with the codebook the slow codebook command above learns"
_SHARD = "one of nine runs in a row (eight shards and their merge)"
SLOW: dict[str, str] = {
    "featx codebook sift train/ -k 256 -o sift-k256.codebook.npz": _CODEBOOK,
    "featx codebook sift train/ -k 64 --gmm -o sift-gmm64.codebook.npz": _CODEBOOK,
    "featx extract sift photos/ -o bovw.npy --encode bovw --codebook sift-k256.codebook.npz": _ENCODE,
    "featx extract sift photos/ -o vlad.npy --encode vlad --codebook sift-k256.codebook.npz": _ENCODE,
    "featx extract sift photos/ -o fv.npy --encode fisher --codebook sift-gmm64.codebook.npz": _ENCODE,
    "featx extract hog /data/photos -o part-$I.npy --shard $I/8 --resize 256x256": _SHARD,
    "featx merge hog-all.npy part-*.npy": _SHARD,
}


@dataclass
class Block:
    lang: str
    line: int  # line number of the first line inside the fence
    text: str
    page: Path = README


@dataclass
class Command:
    line: int
    cmd: str        # as written, comment removed
    comment: str    # the trailing comment, without '#'
    lang: str = "sh"
    page: Path = README

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


@dataclass
class Result:
    command: Command
    run: str
    code: int
    stderr: str
    seconds: float
    problems: list[str] = field(default_factory=list)


def readme_blocks(text: str | None = None, page: Path = README) -> list[Block]:
    """The fenced blocks of ``text``, or of every page of PAGES in order."""
    if text is None:
        return [b for p in PAGES for b in readme_blocks(p.read_text(), p)]
    blocks, lang, start, body = [], None, 0, []
    for n, line in enumerate(text.splitlines(), 1):
        m = re.match(r"^\s*```(.*)$", line)
        if m and lang is None:
            lang, start, body = m.group(1).strip().lower(), n + 1, []
        elif m:
            blocks.append(Block(lang, start, "\n".join(body) + "\n", page))
            lang = None
        elif lang is not None:
            body.append(line)
    assert lang is None, f"{page.name} has an unclosed code fence"
    return blocks


def _split_comment(line: str) -> tuple[str, str]:
    """``cmd  # comment`` -> (cmd, comment); a ``#`` inside quotes is not a comment."""
    quote = None
    for i, ch in enumerate(line):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
    return line.rstrip(), ""


def shell_commands(blocks: list[Block] | None = None) -> list[Command]:
    out = []
    for b in blocks if blocks is not None else readme_blocks():
        if b.lang not in SHELL_LANGS:
            continue
        pending, first = "", 0
        for k, raw in enumerate(b.text.splitlines()):
            line = raw.strip()
            if not pending and (not line or line.startswith("#")):
                continue
            if not pending:
                first = b.line + k
            line = re.sub(r"^\$\s+", "", line)  # a `$ ` prompt
            if line.endswith("\\"):
                pending += line[:-1].strip() + " "
                continue
            cmd, comment = _split_comment(pending + line)
            pending = ""
            out.append(Command(first, " ".join(cmd.split()), comment, b.lang, b.page))
    return out


def substitute(cmd: str, subs=None) -> str:
    for pat, rep, _ in SUBSTITUTIONS if subs is None else subs:
        cmd = re.sub(pat, rep, cmd)
    return cmd


# ---- what a command promises ---------------------------------------------------------------

_FILE_IN_COMMENT = re.compile(r"(?<![\w{/.-])([\w][\w./-]*\.(?:npy|npz|csv|json|png|toml))\b")


def promised_files(run: str, comment: str) -> list[str]:
    """Files the command writes by its options (-o, --summary-json, --sidecar, > FILE) or
    that its comment names."""
    words = run.split()
    files = []
    for i, w in enumerate(words[:-1]):
        if w in ("-o", "--output", "--summary-json", "--sidecar") and words[i + 1] != "-":
            files.append(words[i + 1])
        if w == ">":
            files.append(words[i + 1])
    for m in _FILE_IN_COMMENT.finditer(substitute(comment)):
        files.append(m.group(1))
    return files


def promised_columns(comment: str) -> list[str] | None:
    """A comment that starts with a column list (``path,x,y,w,h``, ``path,f0..f{D-1}``)."""
    m = re.match(r"^(path(?:,[\w{}.…-]+)+)", comment)
    return m.group(1).split(",") if m else None


def check_columns(header: list[str], names: list[str]) -> str | None:
    for i, name in enumerate(names):
        rng = re.match(r"^([A-Za-z_]+)(\d+)(?:\.\.|…)", name)
        if rng:  # f0..f{D-1}: the rest of the header is exactly that range
            prefix, start = rng.group(1), int(rng.group(2))
            rest = header[i:]
            want = [f"{prefix}{k}" for k in range(start, start + len(rest))]
            if not rest or rest != want:
                return f"columns from {i} are {rest[:4]}..., not {name}"
            return None
        if i >= len(header) or header[i] != name:
            return f"header {header[:len(names) + 2]} does not start with {names}"
    if len(header) != len(names):
        return f"header {header} is not {names}"
    return None


# ---- the scratch folder -------------------------------------------------------------------

def _talk_video(path: Path) -> None:
    """A short video of a face (the README's talk.mp4): a slow pan over astronaut.png."""
    import cv2

    img = cv2.imread(str(SAMPLES / "astronaut.png"))
    w, h = 448, 448
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (w, h))
    assert out.isOpened()
    for k in range(20):
        out.write(np.ascontiguousarray(img[k:k + h, 2 * k:2 * k + w]))
    out.release()


def make_scratch(root: Path) -> dict:
    """The reader's folder: samples/, photos/, the files the README assumes; returns the
    environment the commands run in."""
    import cv2

    shutil.copytree(SAMPLES, root / "samples")
    shutil.copytree(SAMPLES, root / "photos")  # as the README says: `cp -r samples photos`
    (root / "data").mkdir()  # /data/ exists where the reader keeps /data/photos
    shutil.copyfile(Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml", root / "my_cascade.xml")
    _talk_video(root / "talk.mp4")
    for name, text in readme_files().items():  # files the README shows whole (# features.toml)
        (root / name).write_text(text)
    bindir = root / ".bin"
    bindir.mkdir()
    shim = bindir / "featx"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m featx "$@"\n')
    shim.chmod(0o755)
    env = dict(os.environ)
    env.pop("FEATX_CACHE_DIR", None)
    env.update(PATH=f"{bindir}{os.pathsep}{env['PATH']}", FEATX_CACHE_DIR=str(root / ".cache"),
               HOME=str(root / ".home"))
    return env


def readme_files() -> dict[str, str]:
    """Blocks that show a whole file, named by their first line (``# features.toml``)."""
    out = {}
    for b in readme_blocks():
        m = re.match(r"^#\s*([\w.-]+\.(?:toml|csv|txt))\s*$", b.text.splitlines()[0]) if b.text.strip() else None
        if m and b.lang not in SHELL_LANGS:
            out[m.group(1)] = b.text
    return out


def _plain_featx(run: str) -> list[str] | None:
    """The arguments of a command that is one featx invocation with no shell syntax (pipes,
    redirections, variables, globs), else None."""
    if not run.startswith("featx ") or re.search(r"[|&;<>$`*?\[\](){}'\"\\]", run):
        return None
    return run.split()[1:]


_SIMPLE = re.compile(r"(?:mkdir -p ([\w./-]+) && )?(featx [^>]+?)(?: > ([\w./-]+))?")


def _inprocess(run: str) -> tuple[list[str], str | None, str | None] | None:
    """``[mkdir -p DIR && ]featx ARGS [> FILE]`` with plain ARGS: (ARGS, DIR, FILE), which
    run here as bash would run them (the folder made first, stdout written to FILE); any
    other shell syntax: None."""
    m = _SIMPLE.fullmatch(run)
    args = _plain_featx(m.group(2)) if m else None
    return None if args is None else (args, m.group(1), m.group(3))


def run_command(c: Command, root: Path, env: dict) -> list[Result]:
    """Run one README command.  A plain featx invocation runs through featx.cli.main (the
    console script's entry point) in this process, which saves a Python start-up per
    command; anything with shell syntax runs in bash, featx being a script on PATH."""
    results = []
    for variables in REPEAT.get(c.cmd, [{}]):
        run = substitute(c.cmd)
        for k, v in variables.items():
            run = run.replace(f"${k}", v)
        t0 = time.perf_counter()
        simple = _inprocess(run)
        if simple is not None:
            args, folder, stdout_file = simple
            if folder:
                (root / folder).mkdir(parents=True, exist_ok=True)
            p = featx_inprocess(*args, cwd=root, env={k: v for k, v in env.items() if os.environ.get(k) != v})
            if stdout_file:
                (root / stdout_file).write_bytes(p.stdout)
        else:
            p = subprocess.run(["bash", "-o", "pipefail", "-c", run], cwd=root, env=env,
                               capture_output=True, timeout=300)
        r = Result(c, run, p.returncode, p.stderr.decode(errors="replace"), time.perf_counter() - t0)
        want = EXIT_CODES.get(c.cmd, 0)
        if p.returncode != want:
            r.problems.append(f"exit {p.returncode}, expected {want}")
        for f in promised_files(run, c.comment):
            q = root / f
            if not q.exists():
                r.problems.append(f"promised {f} does not exist")
            elif q.is_file() and q.stat().st_size == 0 and f.endswith((".toml", ".npy", ".png")):
                r.problems.append(f"promised {f} is empty")
        cols = promised_columns(c.comment)
        if cols:
            outs = [f for f in promised_files(run, "") if f.endswith(".csv")]
            if not outs:
                r.problems.append(f"the comment promises columns {c.comment!r} but the output is not a CSV file")
            for f in outs:
                if (root / f).is_file():
                    with open(root / f, newline="") as fh:
                        header = next(csv.reader(fh), [])
                    why = check_columns(header, cols)
                    if why:
                        r.problems.append(f"{f}: {why}")
        results.append(r)
    return results


@pytest.fixture(scope="module")
def readme_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader")
    env = make_scratch(root)
    results = []
    for c in commands_to_run():
        if c.cmd not in SLOW:
            results.extend(run_command(c, root, env))
    return root, env, results


def commands_to_run() -> list[Command]:
    """The commands of every page, less SKIP, and less the first mention on a page of a
    command an earlier page already has (a repeat within one page runs again)."""
    pages_of: dict[str, set[Path]] = {}
    out = []
    for c in shell_commands():
        pages = pages_of.setdefault(c.cmd, set())
        first_here, seen_before = c.page not in pages, bool(pages - {c.page})
        pages.add(c.page)
        if c.cmd in SKIP or (first_here and seen_before):
            continue
        out.append(c)
    return out


def _report(results: list[Result]) -> str:
    return "\n\n".join(f"{r.command.where}: {r.run}  ({r.seconds:.1f} s)\n  " + "\n  ".join(r.problems)
                       + "\n  stderr: " + r.stderr[-1500:].replace("\n", "\n    ") for r in results)


# ---- the tests -----------------------------------------------------------------------------

@pytest.mark.slow
def test_every_shell_command_runs(readme_run):
    _, _, results = readme_run
    assert results, "no command was run"
    bad = [r for r in results if r.problems]
    assert not bad, f"{len(bad)} README command(s) do not run as written:\n\n" + _report(bad)


@pytest.mark.slow
def test_slow_commands_run(readme_run):
    root, env, _ = readme_run
    results = []
    for c in commands_to_run():
        if c.cmd in SLOW:
            results.extend(run_command(c, root, env))
    assert len(results) >= len(SLOW)
    bad = [r for r in results if r.problems]
    assert not bad, f"{len(bad)} README command(s) do not run as written:\n\n" + _report(bad)


def python_blocks() -> list[Block]:
    return [b for b in readme_blocks() if b.lang in ("python", "py", "python3")]


def _first_line(b: Block) -> str:
    return next(l.strip() for l in b.text.splitlines() if l.strip())


@pytest.mark.slow
def test_python_snippets_run(readme_run):
    root, env, _ = readme_run
    ran = 0
    for b in python_blocks():
        if _first_line(b) in NOT_RUN:
            continue
        code = b.text
        for pat, rep, _ in PY_SUBSTITUTIONS:
            code = re.sub(pat, rep, code)
        prelude = [line for name, line in PY_PRELUDE.items() if re.search(rf"\b{name}\b", code)]
        if prelude:  # after the snippet's own imports and first statements that define what they use
            lines = code.splitlines()
            at = next(i for i, l in enumerate(lines) if any(re.search(rf"\b{n}\b", l) for n in PY_PRELUDE))
            code = "\n".join(lines[:at] + prelude + lines[at:]) + "\n"
        script = root / f"example-{b.page.stem}-{b.line}.py"
        script.write_text(code)
        p = subprocess.run([sys.executable, script.name], cwd=root, env=env, capture_output=True, timeout=300)
        assert p.returncode == 0, (f"{b.page.relative_to(ROOT)}:{b.line}: the Python example fails as a script:\n{textwrap.indent(code, '    ')}\n"
                                   + p.stderr.decode(errors="replace")[-3000:])
        ran += 1
    assert ran >= 1


@pytest.mark.slow
def test_toml_config_blocks_are_valid(readme_run):
    """A ``[NAME]`` TOML block is a config file for ``featx extract NAME``: it runs."""
    root, env, _ = readme_run
    checked = 0
    for b in readme_blocks():
        if b.lang != "toml" or _first_line(b) in NOT_RUN or re.match(r"^#\s*[\w.-]+\.toml\s*$", _first_line(b)):
            continue
        m = re.match(r"^\[([\w-]+)\]$", _first_line(b))
        assert m, f"{b.page.relative_to(ROOT)}:{b.line}: a TOML block this test does not know how to check (add it to NOT_RUN?)"
        cfg = root / f"readme-block-{b.page.stem}-{b.line}.toml"
        cfg.write_text(b.text)
        p = subprocess.run([sys.executable, "-m", "featx", "extract", m.group(1), "samples/", "-o", "-", "-q",
                            "--config", cfg.name], cwd=root, env=env, capture_output=True, timeout=120)
        assert p.returncode == 0, (b.line, p.stderr.decode(errors="replace"))
        checked += 1
    assert checked >= 1


# ---- the lists above stay true ---------------------------------------------------------------

def test_every_docs_page_runs():
    """Every page of docs/ is in PAGES, so its examples run; PAGES names no missing page."""
    pages = sorted(p.name for p in (ROOT / "docs").glob("*.md"))
    listed = sorted(p.name for p in PAGES if p != README)
    assert pages == listed, f"docs/ has {pages}, PAGES lists {listed}"


def test_no_featx_commands_hidden():
    """Every block that holds featx command lines is one this test runs as shell."""
    for b in readme_blocks():
        if b.lang in SHELL_LANGS:
            continue
        hidden = [l for l in b.text.splitlines() if re.match(r"^\s*(\$\s+)?featx\s", l)]
        assert not hidden, f"{b.page.relative_to(ROOT)}:{b.line}: ```{b.lang} block holds shell commands {hidden}: mark it ```sh"


def test_skip_and_repeat_lists_match_the_readme():
    cmds = {c.cmd for c in shell_commands()}
    stale = [k for k in [*SKIP, *SLOW, *REPEAT, *EXIT_CODES] if k not in cmds]
    assert not set(SKIP) & set(SLOW), "a command is either skipped or run (slow)"
    assert not stale, f"no longer in the README (update the lists in this test): {stale}"
    unrun = [c.cmd for c in shell_commands() if "$" in c.cmd.replace("$PWD", "") and c.cmd not in REPEAT | SKIP]
    assert not unrun, f"commands with shell variables the test does not set: {unrun}"
    firsts = {_first_line(b) for b in readme_blocks() if b.lang not in SHELL_LANGS}
    assert not [k for k in NOT_RUN if k not in firsts], "NOT_RUN names a block that is gone"


def test_substitutions_are_used():
    text = " ".join(c.cmd for c in shell_commands())
    unused = [pat for pat, _, _ in SUBSTITUTIONS if not re.search(pat, text)]
    assert not unused, f"substitutions that match no README command: {unused}"
    code = " ".join(b.text for b in python_blocks())
    assert all(re.search(p, code) for p, _, _ in PY_SUBSTITUTIONS)
    assert all(re.search(rf"\b{n}\b", code) for n in PY_PRELUDE)


def test_parser_reads_commands_comments_and_columns():
    """The parser itself: continuation lines, comments, quoted '#', column promises."""
    text = textwrap.dedent("""\
        ```sh
        # a comment line
        featx extract hog a/ -o x.npy   # (N, D) + x.index.csv
        featx a \\
              --b c
        echo '#not a comment' | featx d - -o - > g.csv  # path,f0..f{D-1}
        ```
        ```python
        featx = 1
        ```
        """)
    cmds = shell_commands(readme_blocks(text))
    assert [c.cmd for c in cmds] == ["featx extract hog a/ -o x.npy", "featx a --b c",
                                     "echo '#not a comment' | featx d - -o - > g.csv"]
    assert [c.line for c in cmds] == [3, 4, 6]
    assert promised_files(cmds[0].cmd, cmds[0].comment) == ["x.npy", "x.index.csv"]
    assert promised_files(cmds[2].cmd, cmds[2].comment) == ["g.csv"]
    assert promised_columns(cmds[2].comment) == ["path", "f0..f{D-1}"]
    assert check_columns(["path", "f0", "f1"], ["path", "f0..f{D-1}"]) is None
    assert check_columns(["path", "cell0_0_bin0"], ["path", "f0..f{D-1}"])
    assert check_columns(["path", "x", "y", "w", "h"], ["path", "x", "y", "w", "h"]) is None
    assert check_columns(["path", "frame", "time", "x"], ["path", "x"])
    assert _plain_featx("featx extract hog a/ -o x.npy") == ["extract", "hog", "a/", "-o", "x.npy"]
    assert _plain_featx("featx merge all.npy part-*.npy") is None
    assert _plain_featx("mkdir -p f && featx run f.toml") is None
    assert _inprocess("mkdir -p f && featx run f.toml") == (["run", "f.toml"], "f", None)
    assert _inprocess("featx info hog --as-config > hog.toml") == (["info", "hog", "--as-config"], None, "hog.toml")
    assert _inprocess("find . | featx run f.toml -") is None
    assert _inprocess("featx merge all.npy part-*.npy") is None
    assert substitute("featx extract hog /data/photos -o /data/hog.npy") == "featx extract hog photos -o data/hog.npy"


# ---- the table of CSV columns is what featx writes -------------------------------------------

#: One run per mode the table names: (extractor, arguments, the key columns it has).
COLUMN_RUNS = [
    ("gradients", ["samples/chelsea.png"], ["path"]),
    ("hog", ["samples/chelsea.png"], ["path"]),
    ("haar", ["samples/chelsea.png"], ["path"]),
    ("haar", ["samples/chelsea.png", "--mode", "window"], ["path"]),
    ("gabor", ["samples/chelsea.png", "--response", "all"], ["path"]),
    ("flow", ["samples/clip.mp4", "--max-frames", "2", "--mbh"], ["path", "frame", "time"]),
    ("sift", ["samples/chelsea.png", "--dense"], ["path"]),
    ("sift", ["samples/chelsea.png", "--encode", "vlad", "--codebook", "k8.npz"], ["path"]),
    ("cnn", ["samples/chelsea.png"], ["path"]),
    ("cnn", ["samples/chelsea.png", "--top-k", "3"], ["path"]),
    ("detect", ["samples/astronaut.png"], ["path"]),
]


def column_table() -> dict[str, list[str]]:
    """docs/outputs.md's "value columns in CSV" table: extractor -> the patterns in its row."""
    text = (ROOT / "docs" / "outputs.md").read_text()
    start = text.index("| extractor | value columns in CSV |")
    rows = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        name, cell = [c.strip() for c in line.strip("|").split("|", 1)]
        rows[name.strip("`")] = [t for t in re.findall(r"`([^`]+)`", cell) if t not in ("...", "…")]
    return rows


def _pattern(token: str) -> re.Pattern:
    return re.compile("".join(r"[\w-]+?" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}]*\})", token)))


@pytest.mark.slow
def test_csv_column_table_matches_featx(tmp_path):
    table = column_table()
    r = featx_inprocess("list")
    builtins = [l.split()[0] for l in r.stdout.decode().splitlines() if "[featx]" in l]
    assert builtins and sorted(builtins) == sorted(table), (builtins, sorted(table))
    assert {name for name, _, _ in COLUMN_RUNS} == set(table)
    shutil.copytree(SAMPLES, tmp_path / "samples")
    r = featx_inprocess("codebook", "sift", "samples/chelsea.png", "-k", "8", "-o", "k8.npz", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    for name, args, keys in COLUMN_RUNS:
        r = featx_inprocess("extract", name, *args, "-o", "-", "-q", "-j", "1", cwd=tmp_path)
        assert r.returncode == 0, (name, args, r.stderr.decode())
        header = next(csv.reader(r.stdout.decode().splitlines()))
        assert header[:len(keys)] == keys, (name, args, header[:5])
        patterns = [_pattern(t) for t in table[name]]
        undocumented = [c for c in header[len(keys):] if not any(p.fullmatch(c) for p in patterns)]
        assert not undocumented, f"{name} {args}: columns the table in docs/outputs.md does not name: {undocumented[:5]}"
