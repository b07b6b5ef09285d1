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
import fnmatch
import json
import math
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
    """One golden output and the rules it is compared by (see ``manifest.toml``'s head)."""

    name: str
    command: str
    #: largest allowed absolute difference: one number, or a table by array name (npz
    #: key, CSV column, ``ARRAY:json.path``; shell-style patterns allowed, ``"*"`` for
    #: the rest); 0 = exact
    atol: float | dict = 0.0
    #: allowed difference relative to the largest magnitude of the stored values it
    #: belongs with (a row of a stacked ``.npy``; a whole array otherwise), added to atol
    rtol: float | dict = 0.0
    why: str = ""
    #: keys of JSON metadata (npz string arrays) not compared, e.g. the featx version
    ignore: list[str] = field(default_factory=list)
    #: detected keypoints (npz files holding ``keypoints`` and ``descriptors``) are
    #: compared as matched sets within these bounds (see :class:`KeypointRule`)
    keypoints: dict | None = None
    #: a top-k CSV (``topN_class``/``topN_prob`` columns): classes exact, but two ranks
    #: may swap when their stored probabilities are within the ``*_prob`` tolerance
    topk: bool = False

    def argv(self, out: Path) -> list[str]:
        words = shlex.split(self.command)
        if not words or words[0] != "featx":
            raise ValueError(f"{self.name}: the command must start with 'featx'")
        return [w.replace("{out}", str(out)) for w in words[1:]]

    @staticmethod
    def _lookup(table: float | dict, key: str) -> float:
        if not isinstance(table, dict):
            return float(table)
        names = (key, key.split(":")[0])
        for k in names:
            if k in table:
                return float(table[k])
        for k in names:
            for pat, v in table.items():
                if pat != "*" and fnmatch.fnmatchcase(k, pat):
                    return float(v)
        return float(table.get("*", 0.0))

    def tolerance(self, key: str) -> float:
        """The absolute tolerance of ``key``: an array or CSV column name, or
        ``ARRAY:json.path`` for a number in JSON metadata (looked up as itself, then its
        array, then a matching pattern, then "*")."""
        return self._lookup(self.atol, key)

    def relative(self, key: str) -> float:
        """The relative tolerance of ``key`` (looked up as :meth:`tolerance` does)."""
        return self._lookup(self.rtol, key)


@dataclass(frozen=True)
class KeypointRule:
    """When two sets of detected keypoints (rows ``x, y, size, angle, response, octave``,
    with their descriptors) are the same.

    Each stored keypoint, strongest first, is matched to the nearest unmatched new one of
    the same octave within ``position`` pixels whose size, angle and response agree within
    their bounds; the descriptors of a matched pair differ by at most ``descriptor`` per
    entry.  A keypoint left without a partner (on either side) is allowed only when it is
    *marginal* — its response within ``margin`` (relative) of the weakest response kept in
    that file (the ``--max-keypoints`` cut, where a near-tie may go either way), or of
    ``threshold`` (the contrast threshold as OpenCV applies it) — and only
    ``max_unmatched`` of them per file.
    """

    position: float = 0.01    # pixels
    size: float = 1e-4        # relative
    angle: float = 0.1        # degrees, modulo 360
    response: float = 1e-4    # relative
    descriptor: float = 1.0
    margin: float = 1e-3      # relative
    threshold: float = 0.0
    max_unmatched: int = 2


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
    #: array/column -> the largest fraction of its tolerance a difference used (> 1: fails)
    used: dict[str, float] = field(default_factory=dict)
    #: array/column -> the tolerance where that largest fraction was found
    allowed: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)        # structural mismatches and excesses

    def note(self, key: str, value: float, allowed: float = 0.0) -> None:
        """One difference ``value`` where ``allowed`` was allowed (or the largest of many)."""
        self.worst[key] = max(self.worst.get(key, 0.0), value)
        ratio = 0.0 if value == 0 else (value / allowed if allowed > 0 else math.inf)
        if key not in self.used or ratio > self.used[key]:
            self.used[key] = ratio
            self.allowed[key] = allowed

    def note_array(self, key: str, d: np.ndarray, allowed: np.ndarray | float) -> None:
        """Element-wise differences ``d`` against element-wise tolerances ``allowed``."""
        if d.size == 0:
            self.note(key, 0.0, float(np.max(allowed)) if np.size(allowed) else 0.0)
            return
        allowed = np.broadcast_to(np.asarray(allowed, np.float64), d.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(d == 0, 0.0, np.where(allowed > 0, d / np.where(allowed > 0, allowed, 1), np.inf))
        i = int(np.argmax(ratio))
        self.worst[key] = max(self.worst.get(key, 0.0), float(d.max()))
        r = float(ratio.flat[i])
        if key not in self.used or r > self.used[key]:
            self.used[key] = r
            self.allowed[key] = float(allowed.flat[i])


def _absdiff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``|a - b|`` in float64, 0 where both are equal (NaN equals NaN, inf equals inf)."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    same = (a64 == b64) | (np.isnan(a64) & np.isnan(b64))
    with np.errstate(invalid="ignore"):
        d = np.abs(a64 - b64)
    d[same] = 0.0
    d[np.isnan(d)] = np.inf
    return d


def _scale(ref: np.ndarray, rows: bool) -> np.ndarray | float:
    """The magnitude a relative tolerance refers to: the largest finite |value| of each
    row (``rows``: a stacked output, one row per image or frame), else of the array."""
    r = np.abs(ref.astype(np.float64))
    r[~np.isfinite(r)] = 0.0
    if r.size == 0:
        return 0.0
    if rows and r.ndim == 2:
        return r.max(axis=1, keepdims=True)
    return float(r.max())


def _compare_arrays(where: str, key: str, got: np.ndarray, ref: np.ndarray, entry: Entry,
                    diff: Difference, rows: bool = False) -> None:
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
    rtol = entry.relative(key)
    allowed = entry.tolerance(key) + (rtol * _scale(ref, rows) if rtol else 0.0)
    diff.note_array(key, _absdiff(got, ref), allowed)


def _compare_keypoints(where: str, got: dict, ref: dict, rule: KeypointRule, diff: Difference) -> None:
    """Detected keypoints as matched sets (see :class:`KeypointRule`)."""
    gk, rk = got["keypoints"].astype(np.float64), ref["keypoints"].astype(np.float64)
    gd, rd = got["descriptors"].astype(np.float64), ref["descriptors"].astype(np.float64)
    if gk.ndim != 2 or rk.ndim != 2 or gk.shape[1:] != rk.shape[1:] or gd.shape[1:] != rd.shape[1:]:
        diff.problems.append(f"{where}: keypoints {gk.shape}/{gd.shape} != stored {rk.shape}/{rd.shape}")
        return
    taken = np.zeros(len(gk), bool)
    matched_ref = np.zeros(len(rk), bool)
    for i in np.argsort(-rk[:, 4], kind="stable"):   # strongest first
        x, y, size, angle, resp, octave = rk[i]
        dist = np.hypot(gk[:, 0] - x, gk[:, 1] - y)
        dang = np.abs((gk[:, 3] - angle + 180.0) % 360.0 - 180.0)
        ok = (~taken & (gk[:, 5] == octave) & (dist <= rule.position)
              & (np.abs(gk[:, 2] - size) <= rule.size * abs(size))
              & (dang <= rule.angle) & (np.abs(gk[:, 4] - resp) <= rule.response * abs(resp)))
        if not ok.any():
            continue
        j = int(np.flatnonzero(ok)[np.argmin(dist[ok])])
        taken[j] = matched_ref[i] = True
        diff.note("keypoints:position", float(dist[j]), rule.position)
        diff.note("keypoints:size", abs(gk[j, 2] - size), rule.size * abs(size))
        diff.note("keypoints:angle", float(dang[j]), rule.angle)
        diff.note("keypoints:response", abs(gk[j, 4] - resp), rule.response * abs(resp))
        diff.note_array("descriptors", np.abs(gd[j] - rd[i]), rule.descriptor)

    def marginal(resp: float, cut: float) -> bool:
        near = abs(resp - cut) <= rule.margin * max(abs(cut), abs(resp))
        return near or (rule.threshold > 0 and abs(resp - rule.threshold) <= rule.margin * rule.threshold)

    cut = min(rk[:, 4].min() if len(rk) else math.inf, gk[:, 4].min() if len(gk) else math.inf)
    loose = [("stored", rk[i]) for i in np.flatnonzero(~matched_ref)] + \
            [("new", gk[j]) for j in np.flatnonzero(~taken)]
    diff.note("keypoints:unmatched", float(len(loose)), float(rule.max_unmatched))
    for side, k in loose:
        if not marginal(float(k[4]), float(cut)) or len(loose) > rule.max_unmatched:
            diff.problems.append(
                f"{where}: {side} keypoint at ({k[0]:.3f}, {k[1]:.3f}) octave {int(k[5])} size {k[2]:.3f} "
                f"angle {k[3]:.2f} response {k[4]:.4g} has no partner within the bounds, and it is "
                f"not a marginal one (weakest kept response {cut:.4g}; {len(loose)} unmatched)")


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
        k = f"{key}:{path}"
        allowed = entry.tolerance(k) + entry.relative(k) * abs(float(ref))
        diff.note(k, abs(float(got) - float(ref)) if got != ref else 0.0, allowed)
    elif got != ref:
        diff.problems.append(f"{where}: {path}: {got!r} != stored {ref!r}")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


#: CSV columns that identify a row (inputs, frames, times): always compared exactly
KEY_COLUMNS = {"row", "path", "frame", "time"}


def _topk_row(where: str, line: int, header: list[str], g: list[str], r: list[str], entry: Entry,
              diff: Difference) -> set[str]:
    """The ``topN_class``/``topN_prob`` fields of one top-k row: probabilities by rank
    within the ``*_prob`` tolerance; classes exact, except that ranks whose stored
    probabilities lie within that tolerance of each other may come in either order (and
    the last rank may be another class when its probability is within it of the stored
    one: the next class, unseen, may be that close).  Returns the columns it handled."""
    ranks = sorted({int(c[3:-6]) for c in header if c.startswith("top") and c.endswith("_class")
                    and c[3:-6].isdigit() and f"top{c[3:-6]}_prob" in header})
    if not ranks:
        return set()
    col = {c: i for i, c in enumerate(header)}
    gc = [g[col[f"top{k}_class"]] for k in ranks]
    rc = [r[col[f"top{k}_class"]] for k in ranks]
    gp = [_number(g[col[f"top{k}_prob"]]) for k in ranks]
    rp = [_number(r[col[f"top{k}_prob"]]) for k in ranks]
    if any(v is None for v in gp + rp):
        diff.problems.append(f"{where}: line {line}: a top-k probability is not a number")
        return set()
    for n, k in enumerate(ranks):
        key = f"top{k}_prob"
        tol = entry.tolerance(key) + entry.relative(key) * abs(rp[n])
        diff.note(key, abs(gp[n] - rp[n]), tol)
        if gc[n] == rc[n]:
            continue
        # the class found at this rank must be a stored class of a rank whose stored
        # probability is within the tolerance of this rank's (a near-tie: either order)
        near = [m for m in range(len(ranks)) if rc[m] == gc[n] and abs(rp[m] - rp[n]) <= tol]
        if not near and not (n == len(ranks) - 1 and abs(gp[n] - rp[n]) <= tol):
            diff.problems.append(f"{where}: line {line}, top{k}_class: {gc[n]!r} != stored {rc[n]!r} "
                                 f"(stored probability {rp[n]:.6g}, no near-tie within {tol:.3g})")
    if len(set(gc)) != len(gc):
        diff.problems.append(f"{where}: line {line}: a class twice in the top-k: {gc}")
    return {f"top{k}_class" for k in ranks} | {f"top{k}_prob" for k in ranks}


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
        done = _topk_row(where, i, header, g, r, entry, diff) if entry.topk else set()
        for col, gv, rv in zip(header, g, r):
            if col in done:
                continue
            if gv == rv:
                diff.note(col, 0.0)
                continue
            gn, rn = _number(gv), _number(rv)
            if gn is None or rn is None or col in KEY_COLUMNS or where.endswith(".index.csv"):
                diff.problems.append(f"{where}: line {i}, {col}: {gv!r} != stored {rv!r}")
            else:
                diff.note(col, abs(gn - rn), entry.tolerance(col) + entry.relative(col) * abs(rn))


def compare(entry: Entry, produced: Path, stored: Path | None = None) -> Difference:
    """Compare what ``entry`` produced in ``produced`` with ``data/NAME/``."""
    stored = stored or DATA / entry.name
    diff = Difference()
    got_files, ref_files = output_files(produced), output_files(stored) if stored.exists() else []
    if got_files != ref_files:
        diff.problems.append(f"files {got_files} != stored {ref_files}")
    rule = KeypointRule(**entry.keypoints) if entry.keypoints is not None else None
    for rel in sorted(set(got_files) & set(ref_files)):
        g, r = produced / rel, stored / rel
        where = f"{entry.name}/{rel}"
        if rel.endswith(".npy"):
            stacked = (produced / rel).with_name(Path(rel).stem + ".index.csv").exists()
            _compare_arrays(where, "*", np.load(g, allow_pickle=False), np.load(r, allow_pickle=False),
                            entry, diff, rows=stacked)
        elif rel.endswith(".npz"):
            with np.load(g, allow_pickle=False) as zg, np.load(r, allow_pickle=False) as zr:
                if sorted(zg.files) != sorted(zr.files):
                    diff.problems.append(f"{where}: arrays {sorted(zg.files)} != stored {sorted(zr.files)}")
                common = set(zg.files) & set(zr.files)
                if rule is not None and {"keypoints", "descriptors"} <= common:
                    _compare_keypoints(where, {k: zg[k] for k in ("keypoints", "descriptors")},
                                       {k: zr[k] for k in ("keypoints", "descriptors")}, rule, diff)
                    common -= {"keypoints", "descriptors"}
                for k in sorted(common):
                    _compare_arrays(f"{where}[{k}]", k, zg[k], zr[k], entry, diff)
        elif rel.endswith(".csv"):
            _compare_csv(where, g, r, entry, diff)
        elif g.read_bytes() != r.read_bytes():
            diff.problems.append(f"{where}: bytes differ")
    for key, used in sorted(diff.used.items()):
        if used > 1:
            diff.problems.append(f"{entry.name}: {key}: max |difference| {diff.worst[key]:.3g} > "
                                 f"tolerance {diff.allowed[key]:.3g} there")
    return diff
