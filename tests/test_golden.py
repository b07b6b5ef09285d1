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
    x.flat[x.size // 2] += 2 * entry.tolerance("*") + 1e-6
    np.save(npy, x)
    diff = golden.compare(entry, produced, stored)
    assert any("tolerance" in p for p in diff.problems), diff.problems
