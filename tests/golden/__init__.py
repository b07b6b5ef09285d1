"""Golden outputs: stored results of fixed featx commands on samples/, and their comparison.

``manifest.toml`` lists each entry: the exact ``featx`` command that made it
(``{out}`` is the folder its output goes to), the tolerance it is compared
with, and why that tolerance.  ``data/NAME/`` holds what the command wrote —
every file except the provenance sidecar (``*.featx.json``, which records
times and versions) and hidden state files.

Commands run in this process, through :func:`featx.cli.main` — the console
entry point itself — from the repository root, so the paths recorded in the
outputs are the relative ``samples/...`` ones.

Regenerate (all, or the named entries) and compare::

    python -m tests.golden regen [NAME ...]   # rewrite data/ (a change of numbers on purpose)
    python -m tests.golden check [NAME ...]   # what tests/test_golden.py does
    python -m tests.golden diff  [NAME ...]   # the largest differences, to choose tolerances
"""
from __future__ import annotations

import csv
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
MANIFEST = HERE / "manifest.toml"
DATA = HERE / "data"

if str(HERE.parent) not in sys.path:  # run as `python -m tests.golden`: tests/ holds helpers.py
    sys.path.insert(0, str(HERE.parent))
from helpers import featx_inprocess  # noqa: E402


@dataclass
class Entry:
    """One golden output."""

    name: str
    command: str
    #: largest allowed absolute difference: one number, or a table by array
    #: name (npz key, CSV column, or "*" for the rest); 0 = exact
    atol: float | dict = 0.0
    why: str = ""
    #: keys of JSON metadata (npz string arrays) not compared, e.g. the featx version
    ignore: list[str] = field(default_factory=list)

    def argv(self, out: Path) -> list[str]:
        words = shlex.split(self.command)
        if not words or words[0] != "featx":
            raise ValueError(f"{self.name}: the command must start with 'featx'")
        return [w.replace("{out}", str(out)) for w in words[1:]]

    def tolerance(self, key: str) -> float:
        """The tolerance of ``key``: an array or CSV column name, or ``ARRAY:json.path``
        for a number in JSON metadata (looked up as itself, then its array, then "*")."""
        if isinstance(self.atol, dict):
            for k in (key, key.split(":")[0], "*"):
                if k in self.atol:
                    return float(self.atol[k])
            return 0.0
        return float(self.atol)


def load_manifest(path: Path = MANIFEST) -> list[Entry]:
    with open(path, "rb") as f:
        doc = tomllib.load(f)
    entries = [Entry(**e) for e in doc["golden"]]
    names = [e.name for e in entries]
    if len(set(names)) != len(names):
        raise ValueError("duplicate golden entry names")
    return entries


def produce(entry: Entry, workdir: Path) -> Path:
    """Run ``entry``'s command with ``{out}`` = ``workdir/NAME``; returns that folder.

    The model cache is ``workdir/_featx-cache`` (empty at first), never the user's: a
    built CNN cached by an older featx must not stand in for what this code builds.
    """
    out = workdir / entry.name
    out.mkdir(parents=True)
    res = featx_inprocess(*entry.argv(out), cwd=ROOT, env={"FEATX_CACHE_DIR": str(workdir / "_featx-cache")})
    if res.returncode != 0:
        raise RuntimeError(f"golden {entry.name}: exit {res.returncode}\n"
                           f"{res.stderr.decode(errors='replace')[-3000:]}")
    _relocate(out)
    return out


def _relocate(out: Path) -> None:
    """Make what an entry wrote independent of where the checkout lies: featx writes
    canonical (absolute) input paths, and mirrors inputs outside an npy-dir output's
    parent under ``_abs/<absolute path>``; both become relative to the checkout."""
    root = os.path.realpath(ROOT)
    for csv_file in out.rglob("*.csv"):
        text = csv_file.read_text(encoding="utf-8", errors="surrogateescape")
        csv_file.write_text(text.replace(root + os.sep, ""), encoding="utf-8", errors="surrogateescape")
    for abs_dir in [p for p in out.rglob("_abs") if p.is_dir()]:
        inside = abs_dir / root.lstrip(os.sep)
        if inside.is_dir():
            for child in inside.iterdir():
                shutil.move(str(child), str(abs_dir.parent / child.name))
            shutil.rmtree(abs_dir)


def output_files(folder: Path) -> list[str]:
    """The files an entry keeps: relative paths, sorted; no sidecars, no hidden files."""
    found = []
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder)
        if p.is_dir() or any(part.startswith(".") for part in rel.parts) or p.name.endswith(".featx.json"):
            continue
        found.append(rel.as_posix())
    return found


def regen(entries: list[Entry]) -> None:
    """Run each entry and store what it wrote under data/NAME/ (entries run in manifest
    order, so an entry may use an earlier one's stored output as its input)."""
    with tempfile.TemporaryDirectory(prefix="featx-golden-") as tmp:
        for e in entries:
            out = produce(e, Path(tmp))
            dest = DATA / e.name
            if dest.exists():
                shutil.rmtree(dest)
            for rel in output_files(out):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(out / rel, dest / rel)
            size = sum((dest / r).stat().st_size for r in output_files(dest))
            print(f"{e.name}: {len(output_files(dest))} files, {size / 1024:.0f} KiB", file=sys.stderr)


# ---------------------------------------------------------------------------
# comparison


@dataclass
class Difference:
    """The largest differences found in one entry."""

    worst: dict[str, float] = field(default_factory=dict)   # array/column -> max |a - b|
    problems: list[str] = field(default_factory=list)        # structural mismatches and excesses

    def note(self, key: str, value: float) -> None:
        self.worst[key] = max(self.worst.get(key, 0.0), value)


def _maxdiff(a: np.ndarray, b: np.ndarray) -> float:
    if a.size == 0:
        return 0.0
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    if same.all():
        return 0.0
    return float(np.max(np.where(same, 0.0, np.abs(a64 - b64))))


def _compare_arrays(where: str, key: str, got: np.ndarray, ref: np.ndarray, entry: Entry,
                    diff: Difference) -> None:
    if got.shape != ref.shape or got.dtype != ref.dtype:
        diff.problems.append(f"{where}: {got.dtype}{got.shape} != stored {ref.dtype}{ref.shape}")
        return
    if ref.dtype.kind in "US":
        if ref.ndim == 0:
            try:
                _compare_json(where, key, json.loads(str(got[()])), json.loads(str(ref[()])), entry, diff)
                return
            except ValueError:
                pass
        if not np.array_equal(got, ref):
            diff.problems.append(f"{where}: strings differ")
        return
    diff.note(key, _maxdiff(got, ref))


def _compare_json(where, key, got, ref, entry: Entry, diff: Difference, path: str = "") -> None:
    if path and path.lstrip(".") in entry.ignore:
        return
    if isinstance(ref, dict) and isinstance(got, dict):
        for k in sorted(set(ref) | set(got)):
            sub = f"{path}.{k}" if path else k
            if sub in entry.ignore:
                continue
            if k not in ref or k not in got:
                diff.problems.append(f"{where}: key {sub!r} only in {'stored' if k in ref else 'new'}")
                continue
            _compare_json(where, key, got[k], ref[k], entry, diff, sub)
    elif isinstance(ref, list) and isinstance(got, list) and len(ref) == len(got):
        for i, (g, r) in enumerate(zip(got, ref)):
            _compare_json(where, key, g, r, entry, diff, f"{path}[{i}]")
    elif isinstance(ref, (int, float)) and isinstance(got, (int, float)) and not isinstance(ref, bool):
        diff.note(f"{key}:{path}", abs(float(got) - float(ref)) if got != ref else 0.0)
    elif got != ref:
        diff.problems.append(f"{where}: {path}: {got!r} != stored {ref!r}")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


#: CSV columns that identify a row (inputs, frames, times): always compared exactly
KEY_COLUMNS = {"row", "path", "frame", "time"}


def _compare_csv(where: str, got_path: Path, ref_path: Path, entry: Entry, diff: Difference) -> None:
    with open(got_path, newline="") as f:
        got = list(csv.reader(f))
    with open(ref_path, newline="") as f:
        ref = list(csv.reader(f))
    if len(got) != len(ref) or (ref and got[0] != ref[0]):
        diff.problems.append(f"{where}: {len(got)} lines (header {got[:1]}) != stored {len(ref)} "
                             f"(header {ref[:1]})")
        return
    header = ref[0] if ref else []
    for i, (g, r) in enumerate(zip(got[1:], ref[1:]), start=2):
        if len(g) != len(r):
            diff.problems.append(f"{where}: line {i} has {len(g)} fields, stored {len(r)}")
            continue
        for col, gv, rv in zip(header, g, r):
            if gv == rv:
                diff.note(col, 0.0)
                continue
            gn, rn = _number(gv), _number(rv)
            if gn is None or rn is None or col in KEY_COLUMNS or where.endswith(".index.csv"):
                diff.problems.append(f"{where}: line {i}, {col}: {gv!r} != stored {rv!r}")
            else:
                diff.note(col, abs(gn - rn))


def compare(entry: Entry, produced: Path, stored: Path | None = None) -> Difference:
    """Compare what ``entry`` produced in ``produced`` with ``data/NAME/``."""
    stored = stored or DATA / entry.name
    diff = Difference()
    got_files, ref_files = output_files(produced), output_files(stored) if stored.exists() else []
    if got_files != ref_files:
        diff.problems.append(f"files {got_files} != stored {ref_files}")
    for rel in sorted(set(got_files) & set(ref_files)):
        g, r = produced / rel, stored / rel
        where = f"{entry.name}/{rel}"
        if rel.endswith(".npy"):
            _compare_arrays(where, "*", np.load(g, allow_pickle=False), np.load(r, allow_pickle=False),
                            entry, diff)
        elif rel.endswith(".npz"):
            with np.load(g, allow_pickle=False) as zg, np.load(r, allow_pickle=False) as zr:
                if sorted(zg.files) != sorted(zr.files):
                    diff.problems.append(f"{where}: arrays {sorted(zg.files)} != stored {sorted(zr.files)}")
                for k in sorted(set(zg.files) & set(zr.files)):
                    _compare_arrays(f"{where}[{k}]", k, zg[k], zr[k], entry, diff)
        elif rel.endswith(".csv"):
            _compare_csv(where, g, r, entry, diff)
        elif g.read_bytes() != r.read_bytes():
            diff.problems.append(f"{where}: bytes differ")
    for key, worst in sorted(diff.worst.items()):
        tol = entry.tolerance(key)
        if worst > tol:
            diff.problems.append(f"{entry.name}: {key}: max |difference| {worst:.3g} > tolerance {tol:g}")
    return diff
