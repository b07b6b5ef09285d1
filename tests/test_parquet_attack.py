"""The Parquet output under faults: kill -9 at random moments with -j 2 (then the same
command gives the dataset of an uninterrupted run), part files deleted, truncated or
replaced between runs, links and stray files planted in the folder, a kill -9 between
a commit's state transaction and its renames."""
from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("pyarrow")
import pyarrow.dataset as pads  # noqa: E402

from helpers import SAMPLES, featx, photo_crops, plugin_env, featx_subprocess  # noqa: E402

G = ["extract", "gradients", "-q", "-j", "1"]


def ok(r):
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def rows(out: Path):
    """What a reader of the folder sees: keys and vectors, in part order."""
    t = pads.dataset(str(out), format="parquet").to_table()
    width = t.schema.field("vector").type.list_size
    return t.column("path").to_pylist(), t.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, width)


def same(a, b) -> bool:
    return a[0] == b[0] and a[1].tobytes() == b[1].tobytes()


def three(root: Path) -> Path:
    root.mkdir(parents=True)
    for n in ("astronaut.png", "camera.png", "coffee.jpg"):
        shutil.copy(SAMPLES / n, root / n)
    return root


@pytest.mark.slow   # a dozen featx processes killed at random moments
def test_random_kills_with_two_workers_then_rerun_is_identical(tmp_path):
    src = photo_crops(tmp_path / "in", 120, (160, 120))
    env = plugin_env(tmp_path)
    args = ["-q", "-j", "2", "--commit-every", "0.3"]
    ref = tmp_path / "ref.parquet"
    assert featx_subprocess("extract", "slow", src, "-o", ref, *args, env=env).returncode == 0
    want = rows(ref)
    out = tmp_path / "run" / "h.parquet"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(out), *args]
    rng = random.Random(22)
    seen = []
    for _ in range(8):
        p = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL, env={**os.environ, **env})
        time.sleep(rng.uniform(0.2, 1.6))
        if p.poll() is not None:
            break
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        if out.exists() and any(out.glob("*.parquet")):
            got = rows(out)   # what was committed: a prefix of the whole, never a row twice
            n = len(got[0])
            assert got[0] == want[0][:n] and got[1].tobytes() == want[1][:n].tobytes()
            seen.append(n)
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr
    assert same(rows(out), want)
    assert json.loads((out.parent / "h.parquet.featx.json").read_text())["status"] == "complete"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
    assert any(0 < k < 120 for k in seen), seen


KILL_AT = r"""
import os, signal, sys
import featx.output.state as s
import featx.output.parquet as pq
WHEN = os.environ["KILL_WHEN"]
record, rename = s.State.record, pq.ParquetSink._rename
def at(self, *a, **k):
    if k.get("renames") and WHEN == "before":
        os.kill(os.getpid(), signal.SIGKILL)
    record(self, *a, **k)
def ren(renames):
    if WHEN == "after" and renames:
        os.kill(os.getpid(), signal.SIGKILL)   # recorded, not yet renamed
    rename(renames)
s.State.record, pq.ParquetSink._rename = at, staticmethod(ren)
from featx.cli import main
sys.argv[0] = "featx"
main()
"""


@pytest.mark.slow
@pytest.mark.parametrize("when", ["before", "after"])
def test_kill9_around_the_commit_of_a_changed_input(tmp_path, when):
    """A changed photo's new row replaces its old one in its part by a rename recorded in the
    state: killed just before or just after that transaction, the next run ends with the
    dataset of an uninterrupted run, and no reader ever saw the photo twice."""
    p = three(tmp_path / "p")
    out, ref = tmp_path / "g.parquet", tmp_path / "ref.parquet"
    for o in (out, ref):
        ok(featx(*G, p, "-o", o))
    shutil.copyfile(SAMPLES / "chelsea.png", p / "camera.png")
    (tmp_path / "killat.py").write_text(KILL_AT)
    killed = subprocess.run([sys.executable, str(tmp_path / "killat.py"), *G, str(p), "-o", str(out)],
                            capture_output=True, cwd=tmp_path, timeout=120, env={**os.environ, "KILL_WHEN": when})
    assert killed.returncode == -9
    paths = rows(out)[0]
    assert len(paths) == len(set(paths)) == 3
    for o in (out, ref):
        ok(featx(*G, p, "-o", o))
    assert same(rows(out), rows(ref))
    assert not [q for q in out.iterdir() if q.name.startswith(".")]


@pytest.mark.parametrize("damage", ["delete", "truncate", "replace", "link"])
def test_a_part_damaged_between_runs_is_rebuilt(tmp_path, damage):
    p = three(tmp_path / "p")
    out = tmp_path / "g.parquet"
    ok(featx(*G, p, "-o", out))
    want = rows(out)
    part = next(out.glob("part-*.parquet"))
    elsewhere = tmp_path / "elsewhere.parquet"
    shutil.copy(part, elsewhere)
    if damage == "delete":
        part.unlink()
    elif damage == "truncate":
        os.truncate(part, part.stat().st_size // 2)
    elif damage == "replace":   # same size, other bytes: another program's file
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
    else:
        part.unlink()
        os.symlink(elsewhere, part)
    before = elsewhere.read_bytes()
    r = featx("extract", "gradients", "-j", "1", p, "-o", out)
    assert r.returncode == 0 and b"rebuilding it from scratch" in r.stderr, r.stderr
    assert same(rows(out), want)
    assert elsewhere.read_bytes() == before and not part.is_symlink()


def test_stray_and_planted_files_in_the_folder(tmp_path):
    """A *.parquet no commit recorded (a planted link, another file) would be read by every
    reader as rows: the next run removes it (a link itself, never its target), and a dead
    run's temporary part; other names are left alone."""
    p = three(tmp_path / "p")
    out = tmp_path / "g.parquet"
    ok(featx(*G, p, "-o", out))
    want = rows(out)
    target = tmp_path / "precious.parquet"
    shutil.copy(next(out.glob("part-*.parquet")), target)
    os.symlink(target, out / "part-000099.parquet")
    shutil.copy(target, out / "extra.parquet")
    (out / "notes.txt").write_text("mine")
    (out / ".part-000005.parquet.featx-tmp-1").write_bytes(b"half a part")
    ok(featx(*G, p, "-o", out))
    assert sorted(q.name for q in out.iterdir()) == ["notes.txt", "part-000001.parquet"]
    (out / "notes.txt").unlink()   # (pyarrow.dataset reads every file of the folder)
    assert same(rows(out), want)
    assert target.exists() and target.stat().st_size > 0


def test_changed_part_during_a_replacement_stops_the_run(tmp_path, monkeypatch):
    """The part a changed input's row lives in is checked before it is rewritten: changed
    under the run, it stops the run (exit 74), and the next run rebuilds the output."""
    from featx.output import parquet

    p = three(tmp_path / "p")
    out = tmp_path / "g.parquet"
    ok(featx(*G, p, "-o", out))
    want = rows(out)
    shutil.copyfile(SAMPLES / "chelsea.png", p / "camera.png")
    real = parquet.ParquetSink._supersede

    def tamper(self, *a, **k):
        part = next(out.glob("part-*.parquet"))
        data = bytearray(part.read_bytes())
        data[len(data) // 2] ^= 0xFF
        part.write_bytes(bytes(data))
        return real(self, *a, **k)
    monkeypatch.setattr(parquet.ParquetSink, "_supersede", tamper)
    r = featx(*G, p, "-o", out)
    assert r.returncode == 74, r.stderr
    monkeypatch.undo()
    r = featx("extract", "gradients", "-j", "1", p, "-o", out)
    assert r.returncode == 0 and b"rebuilding" in r.stderr
    ok(featx(*G, p, "-o", tmp_path / "ref.parquet"))
    assert same(rows(out), rows(tmp_path / "ref.parquet")) and not same(rows(out), want)


def test_lock_refuses_a_second_run_on_the_same_output(tmp_path):
    from featx.output.lock import OutputLock

    p = three(tmp_path / "p")
    out = tmp_path / "g.parquet"
    lock = OutputLock(str(tmp_path / ".g.parquet.featx-lock"))
    lock.acquire(0.0)
    try:
        r = featx(*G, p, "-o", out)
    finally:
        lock.release()
    assert r.returncode != 0 and b"g.parquet" in r.stderr
    assert not out.exists()
    ok(featx(*G, p, "-o", out))
    assert len(rows(out)[0]) == 3
    np.testing.assert_equal(len(os.listdir(out)), 1)
