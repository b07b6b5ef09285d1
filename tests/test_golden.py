"""Golden outputs: each fixed featx command of tests/golden/manifest.toml, run again, gives
the stored numbers within the entry's stated tolerance.

The commands run in this process through featx.cli.main (the console entry point), from
the repository root.  Regenerate after a change of numbers on purpose with
``python -m tests.golden regen [NAME ...]`` and say why in the commit.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

import golden

ENTRIES = golden.load_manifest()


@pytest.fixture(scope="module")
def workdir():
    # tmpfs when there is one: each run fsyncs its commits, which costs more than
    # the computation on a busy disk
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="featx-golden-", dir=base) as tmp:
        yield Path(tmp)


def test_manifest_is_complete():
    """Every built-in extractor has entries, each with a stated reason for its tolerance,
    and every stored output belongs to an entry."""
    from featx import registry

    builtins = {"gradients", "hog", "sift", "haar", "gabor", "flow", "cnn"}
    assert builtins <= set(registry.names())
    covered = {e.argv(Path("x"))[1] for e in ENTRIES if e.argv(Path("x"))[0] in ("extract", "codebook")}
    assert builtins <= covered
    assert any(e.argv(Path("x"))[0] == "detect" for e in ENTRIES)
    for e in ENTRIES:
        assert e.why.strip(), f"{e.name}: say why the tolerance is what it is"
        assert golden.output_files(golden.DATA / e.name), f"{e.name}: nothing stored; run regen"
    assert sorted(p.name for p in golden.DATA.iterdir()) == sorted(e.name for e in ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_golden(entry, workdir):
    diff = golden.compare(entry, golden.produce(entry, workdir))
    assert not diff.problems, "\n".join(diff.problems) + (
        "\nIf the change is on purpose: python -m tests.golden regen " + entry.name
        + " and say why in the commit.")


def test_comparison_catches_a_moved_number(workdir):
    """The comparison itself can fail: one stored value nudged past the tolerance is caught."""
    import shutil

    import numpy as np

    entry = next(e for e in ENTRIES if e.name == "hog-max")
    produced = golden.produce(entry, workdir / "moved")
    stored = workdir / "stored"
    shutil.copytree(golden.DATA / entry.name, stored)
    npy = next(stored.glob("*.npy"))
    x = np.load(npy)
    row = x.shape[0] // 2
    x[row, x.shape[1] // 2] += 2 * (entry.tolerance("*") + entry.relative("*") * np.abs(x[row]).max()) + 1e-6
    np.save(npy, x)
    diff = golden.compare(entry, produced, stored)
    assert any("tolerance" in p for p in diff.problems), diff.problems


# ---------------------------------------------------------------------------
# the tolerances still catch real bugs

from golden import mutants  # noqa: E402


@pytest.fixture(scope="module")
def mutant_workdir():
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    with tempfile.TemporaryDirectory(prefix="featx-golden-mutants-", dir=base) as tmp:
        yield Path(tmp)


def test_every_entry_has_a_planted_bug():
    assert sorted(mutants.FOR_ENTRY) == sorted(e.name for e in ENTRIES)
    assert set(mutants.FOR_ENTRY.values()) | {m for _, m, _ in mutants.BLIND} <= set(mutants.MUTANTS)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_golden_fails_under_a_realistic_bug(entry, mutant_workdir):
    """The entry's tolerance is not so wide that a realistic bug in the code it runs
    (hog clip, gabor sigma, cnn mean, SIFT blur, flow scale...: tests/golden/mutants.py)
    passes: with the bug planted, the comparison fails."""
    with mutants.mutated(mutants.FOR_ENTRY[entry.name]):
        diff = golden.compare(entry, golden.produce(entry, mutant_workdir))
    assert diff.problems, f"{entry.name}: {mutants.FOR_ENTRY[entry.name]} not caught; worst {diff.used}"


def test_planted_bug_is_removed_again(mutant_workdir):
    """After a mutant the code is the original again (the goldens pass)."""
    entry = next(e for e in ENTRIES if e.name == "hog-gray")
    with mutants.mutated("hog-clip"):
        pass
    diff = golden.compare(entry, golden.produce(entry, mutant_workdir / "after"))
    assert not diff.problems, diff.problems


@pytest.mark.slow
def test_goldens_hold_with_fewer_instruction_sets():
    """Another CPU, as far as this one can play it: numpy without its AVX2/AVX-512 loops,
    OpenBLAS with its SSE kernels, OpenCV without SIMD, ONNX Runtime without its graph
    optimisations (it has no instruction-set switch): every entry within its tolerance."""
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "tests.golden", "reduced"], cwd=golden.ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "cv2.useOptimized() = False" in r.stdout


# ---------------------------------------------------------------------------
# the comparison rules themselves, on the stored data


def _stored_copy(name: str, dest: Path) -> Path:
    import shutil

    shutil.copytree(golden.DATA / name, dest)
    return dest


def _entry(name: str):
    return next(e for e in ENTRIES if e.name == name)


def _edit_keypoints(folder: Path, edit) -> None:
    import numpy as np

    f = next(folder.rglob("*.npz"))
    with np.load(f) as z:
        arrays = {k: z[k].copy() for k in z.files}
    edit(arrays)
    np.savez(f, **arrays)


def test_keypoints_within_round_off_pass(tmp_path):
    """Positions moved by a float32 step, a descriptor entry rounded the other way: same."""
    entry = _entry("sift-keypoints")
    got = _stored_copy(entry.name, tmp_path / "got")

    def edit(a):
        a["keypoints"][:, 0] += 3.05e-5          # one float32 step at 256 px (the AVX-512 case)
        a["keypoints"][5, 1] -= 0.004
        a["descriptors"][3, 17] += 1
    _edit_keypoints(got, edit)
    diff = golden.compare(entry, got)
    assert not diff.problems, diff.problems


def test_keypoints_marginal_one_may_go_real_change_may_not(tmp_path):
    """The weakest keypoint (at the --max-keypoints cut) may be replaced by a near-tie; a
    strong keypoint missing, or one moved by 0.02 px, fails."""
    import numpy as np

    entry = _entry("sift-keypoints")
    marginal = _stored_copy(entry.name, tmp_path / "marginal")

    def swap_weakest(a):
        k = a["keypoints"]
        i = int(np.argmin(k[:, 4]))
        k[i, :2] += 7.0                      # another point, response within 1e-3 of the cut
        k[i, 4] *= 1 + 5e-4
    _edit_keypoints(marginal, swap_weakest)
    assert not golden.compare(entry, marginal).problems

    strong = _stored_copy(entry.name, tmp_path / "strong")

    def swap_strongest(a):
        k = a["keypoints"]
        k[int(np.argmax(k[:, 4])), :2] += 7.0
    _edit_keypoints(strong, swap_strongest)
    assert any("no partner" in p for p in golden.compare(entry, strong).problems)

    moved = _stored_copy(entry.name, tmp_path / "moved")

    def move(a):
        a["keypoints"][10, 0] += 0.02
    _edit_keypoints(moved, move)
    assert golden.compare(entry, moved).problems

    descr = _stored_copy(entry.name, tmp_path / "descr")

    def descriptor(a):
        a["descriptors"][3, 17] += 2
    _edit_keypoints(descr, descriptor)
    assert golden.compare(entry, descr).problems


def _edit_topk(folder: Path, edit) -> None:
    import csv

    f = next(folder.glob("*.csv"))
    with open(f, newline="") as fh:
        rows = list(csv.reader(fh))
    edit(rows)
    with open(f, "w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows(rows)


def test_topk_swaps_only_near_ties(tmp_path):
    """Two classes may change places only when their stored probabilities are within the
    probability tolerance of each other."""
    entry = _entry("cnn-top-k")

    def set_row(row, **fields):
        def edit(rows):
            for k, v in fields.items():
                rows[row][rows[0].index(k)] = v
        return edit

    def read_row(folder, row):
        import csv

        with open(next(folder.glob("*.csv")), newline="") as fh:
            rows = list(csv.reader(fh))
        return dict(zip(rows[0], rows[row]))

    # chelsea: tiger cat 0.416, Egyptian cat 0.332, far apart: a swap fails
    far = _stored_copy(entry.name, tmp_path / "far")
    r = read_row(far, 2)
    _edit_topk(far, set_row(2, top1_class=r["top2_class"], top2_class=r["top1_class"]))
    assert any("top1_class" in p for p in golden.compare(entry, far).problems)
    # coffee: ranks 4 and 5 made a near-tie in the stored data, swapped in the new output
    stored = _stored_copy(entry.name, tmp_path / "stored")
    _edit_topk(stored, set_row(3, top4_prob="0.004", top5_prob="0.0039999"))
    near = _stored_copy(entry.name, tmp_path / "near")
    r = read_row(near, 3)
    _edit_topk(near, set_row(3, top4_class=r["top5_class"], top5_class=r["top4_class"],
                             top4_prob="0.004", top5_prob="0.0039999"))
    assert not golden.compare(entry, near, stored).problems
    # ... but not when the tie is not near
    assert golden.compare(entry, near).problems
