"""Production runs: incremental re-runs, crash-safe resume, locks, timeouts, shards."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx, plugin_env, photo_crops, featx_subprocess

SMALL = ["--resize", "64x48", "-q"]


def make_folder(root: Path, n: int) -> Path:
    return photo_crops(root, n, (240, 200))


def outputs(base: Path) -> dict[str, bytes]:
    """The bytes a reader sees (data and index), not the sidecar's timings."""
    return {p.name: p.read_bytes() for p in sorted(base.parent.glob(base.stem + "*"))
            if not p.name.endswith(".featx.json")}


def test_rerun_skips_unchanged_and_handles_new_changed_removed(tmp_path):
    src = make_folder(tmp_path / "in", 6)
    out = tmp_path / "h.npy"
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--summary-json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    first = outputs(out)
    assert json.loads((tmp_path / "s.json").read_text())["processed"] == 6
    # unchanged: nothing recomputed, nothing rewritten
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--summary-json", tmp_path / "s.json")
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["processed"], s["up_to_date"]) == (0, 6)
    assert outputs(out) == first
    # new, changed and removed inputs
    shutil.copy(src / "img000.png", src / "img100.png")
    import cv2

    changed = cv2.imread(str(src / "img002.png"))[::-1]
    cv2.imwrite(str(src / "img002.png"), changed)
    os.utime(src / "img002.png", ns=(time.time_ns(), time.time_ns() + 5_000_000_000))
    (src / "img004.png").unlink()
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--summary-json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["processed"], s["up_to_date"], s["disappeared"], s["removed"]) == (2, 4, 1, 0)
    m = np.load(out)
    idx = [l.split(",")[1] for l in (tmp_path / "h.index.csv").read_text().splitlines()[1:]]
    assert len(idx) == m.shape[0] == 7  # img004 kept until --prune; img002's old row compacted away
    assert [Path(p).name for p in idx] == ["img000.png", "img001.png", "img003.png", "img004.png", "img005.png",
                                           "img002.png", "img100.png"]
    fresh = featx("extract", "hog", src / "img002.png", "-o", tmp_path / "c.npy", *SMALL)
    assert fresh.returncode == 0
    assert np.array_equal(m[5], np.load(tmp_path / "c.npy")[0])  # the changed file's new numbers
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--prune", "--summary-json", tmp_path / "s.json")
    s = json.loads((tmp_path / "s.json").read_text())
    assert (s["processed"], s["removed"]) == (0, 1)
    idx = [Path(l.split(",")[1]).name for l in (tmp_path / "h.index.csv").read_text().splitlines()[1:]]
    assert "img004.png" not in idx and np.load(out).shape[0] == len(idx) == 6
    side = json.loads((tmp_path / "h.npy.featx.json").read_text())
    assert side["inputs"]["removed"] == 1


def test_changed_parameters_are_refused(tmp_path):
    src = make_folder(tmp_path / "in", 2)
    out = tmp_path / "h.csv"
    assert featx("extract", "hog", src, "-o", out, *SMALL).returncode == 0
    before = out.read_bytes()
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--bins", "5")
    assert r.returncode == 2 and b"bins: 9 -> 5" in r.stderr and b"--overwrite" in r.stderr
    assert out.read_bytes() == before
    r = featx("extract", "hog", src, "-o", out, "--resize", "32x32", "-q")
    assert r.returncode == 2 and b"resize" in r.stderr
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--bins", "5", "--overwrite")
    assert r.returncode == 0 and out.read_bytes() != before


def test_content_hash_mode(tmp_path):
    src = make_folder(tmp_path / "in", 3)
    out = tmp_path / "h.npy"
    assert featx("extract", "hog", src, "-o", out, *SMALL, "--hash").returncode == 0
    os.utime(src / "img001.png", ns=(1, 1))  # touched, same content
    r = featx("extract", "hog", src, "-o", out, *SMALL, "--hash", "--summary-json", "-")
    assert json.loads(r.stderr.decode().strip().splitlines()[-1])["up_to_date"] == 3
    # without --hash, the new modification time makes img001 look changed
    r = featx("extract", "hog", src, "-o", out, "--resize", "64x48", "--summary-json", "-")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stderr.decode().strip().splitlines()[-2])
    assert (s["processed"], s["up_to_date"]) == (1, 2)


def committed_rows(out: Path, fmt: str) -> int:
    if not out.exists():
        return 0
    if fmt == "npy":
        return np.load(out, mmap_mode="r").shape[0]
    return max(0, out.read_bytes().count(b"\n") - 1)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_sigkill_at_any_moment_then_resume_is_identical(tmp_path, fmt):
    """Kill real runs (main process and workers) at several points; the re-run's
    output is byte-identical to an uninterrupted run.  The `slow` test extractor
    (20 ms per image) keeps each run going for seconds, so the kills land mid-run even
    where a busy disk delays each commit's fsync by a second or more."""
    n = 300
    src = make_folder(tmp_path / "in", n)
    env = plugin_env(tmp_path)
    ref = tmp_path / "ref" / f"h.{fmt}"
    ref.parent.mkdir()
    args = ["-q", "-j", "2", "--commit-every", "0.1"]
    assert featx_subprocess("extract", "slow", src, "-o", ref, *args, env=dict(env, SLOW_MS="1")).returncode == 0
    expected = outputs(ref)
    out = tmp_path / "run" / f"h.{fmt}"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(out), *args]
    kills, seen_rows = 0, []
    for extra in (0.0, 0.07, 0.15, 0.03, 0.11, 0.19):
        before = committed_rows(out, fmt)
        p = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL, env={**os.environ, **env})
        deadline = time.monotonic() + 60
        while p.poll() is None and committed_rows(out, fmt) <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(extra)  # land the kill at different points: mid-chunk, mid-write, mid-commit
        if p.poll() is not None:
            break
        os.killpg(p.pid, signal.SIGKILL)  # the main process and its workers
        p.wait()
        kills += 1
        if fmt == "npy":
            # after a kill the output is always a loadable prefix of the final result
            m = np.load(out)
            seen_rows.append(m.shape[0])
            assert m.shape[0] == 0 or np.array_equal(m, np.load(ref)[: m.shape[0]])
    assert kills >= 3
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, **env, "SLOW_MS": "1"})
    assert r.returncode == 0, r.stderr
    assert outputs(out) == expected
    leftovers = [p.name for p in out.parent.iterdir() if "tmp" in p.name or "spool" in p.name]
    assert leftovers == []
    if fmt == "npy":
        assert any(0 < k < n for k in seen_rows), seen_rows  # kills landed mid-run, after commits


@pytest.mark.slow
def test_lock_refuses_or_waits_and_stale_lock_is_taken_over(tmp_path):
    from featx.output.lock import OutputLock

    src = make_folder(tmp_path / "in", 2)
    out = tmp_path / "h.npy"
    lock = OutputLock(str(tmp_path / ".h.npy.featx-lock"))
    lock.acquire()
    r = featx("extract", "hog", src, "-o", out, *SMALL)
    assert r.returncode == 75 and f"pid {os.getpid()}".encode() in r.stderr
    assert not out.exists()
    threading.Timer(1.5, lock.release).start()
    t = time.monotonic()
    r = featx("extract", "hog", src, "-o", out, "--resize", "64x48", "--wait")
    assert r.returncode == 0 and time.monotonic() - t > 1.0 and b"waiting" in r.stderr
    # a lock file left by a killed run (nobody holds the flock) is taken over
    (tmp_path / ".h.npy.featx-lock").write_text(json.dumps({"pid": 999999, "started": "yesterday"}))
    r = featx("extract", "hog", src, "-o", out, "--resize", "64x48")
    assert r.returncode == 0 and b"did not finish" in r.stderr and b"999999" in r.stderr


def _live_descendants(pid: int) -> list[int]:
    """Processes below ``pid`` (children, theirs, ...) that are not zombies."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            kids = [int(c) for t in os.listdir(f"/proc/{p}/task")
                    for c in open(f"/proc/{p}/task/{t}/children").read().split()]
        except OSError:
            continue
        for k in kids:
            try:
                state = open(f"/proc/{k}/stat").read().rsplit(")", 1)[1].split()[0]
            except OSError:
                continue
            if state != "Z":
                out.append(k)
                todo.append(k)
    return out


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_refused_run_leaves_no_workers_started_for_it(tmp_path):
    """A ``-j 2`` run onto a new output starts its workers before it locks the output: when
    the lock is refused, they are stopped with it (none is left in the caller's process)."""
    from featx.output.lock import OutputLock

    src = make_folder(tmp_path / "in", 4)
    out = tmp_path / "h.npy"
    before = set(_live_descendants(os.getpid()))   # (a fork server of earlier tests stays)
    lock = OutputLock(str(tmp_path / ".h.npy.featx-lock"))
    lock.acquire()
    try:
        r = featx("extract", "hog", src, "-o", out, "-j", "2", *SMALL)
    finally:
        lock.release()
    assert r.returncode == 75 and not out.exists(), r.stderr
    # stopped, not left to wind down on their own once the pool is garbage: none is alive now
    # (the fork server and resource tracker a first -j 2 in this process starts stay:
    # multiprocessing keeps them for the process's life)
    def helper(p: int) -> bool:   # this process's own child, running one of those two (or gone)
        try:
            with open(f"/proc/{p}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{p}/cmdline") as fh:
                cmd = fh.read()
        except OSError:
            return True
        return ppid == os.getpid() and any(w in cmd for w in ("multiprocessing.forkserver",
                                                              "multiprocessing.resource_tracker"))
    left = [p for p in _live_descendants(os.getpid()) if p not in before and not helper(p)]
    assert left == []
    r = featx("extract", "hog", src, "-o", out, "-j", "2", *SMALL)
    assert r.returncode == 0 and np.load(out).shape[0] == 4


@pytest.mark.slow
def test_hanging_and_crashing_inputs_fail_alone(tmp_path):
    import cv2

    env = plugin_env(tmp_path)
    src = tmp_path / "in"
    src.mkdir()
    img = cv2.imread(str(SAMPLES / "coffee.jpg"))
    for name, w in (("a", 40), ("b-hang", 33), ("c", 41), ("d-crash", 34), ("e", 42)):
        cv2.imwrite(str(src / f"{name}.png"), img[:30, :w])
    t = time.monotonic()
    r = featx_subprocess("extract", "trouble", src, "-o", tmp_path / "t.csv", "--timeout", "3", "-j", "2", env=env)
    assert time.monotonic() - t < 60
    assert r.returncode == 1, r.stderr
    err = r.stderr.decode()
    assert "b-hang.png: timed out after 3 s" in err and "d-crash.png: the worker process crashed" in err
    rows = (tmp_path / "t.csv").read_text().splitlines()[1:]
    assert [Path(l.split(",")[0]).stem for l in rows] == ["a", "c", "e"]


_BATCHED_HANG = '''
from dataclasses import dataclass
from featx.extractor import param
from trouble_ext import Trouble

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)
    batch_size: int = param(12, "Images per batch.", min=1)

class TroubleBatch(Trouble):
    """Trouble, run in batches of 12 (so featx hands its workers 12 inputs at a time)."""
    name = "trouble-batch"
    Params = P
'''


@pytest.mark.slow
def test_timeout_is_per_input_not_per_chunk(tmp_path):
    """``--timeout 1`` gives up on an input 1 s after it started, however many inputs its
    worker was handed: with 12 per chunk, timing out the chunk (12 s) and then redoing
    the hung input alone (1 s more) took at least 13 s."""
    import cv2

    from helpers import fake_plugin

    env = plugin_env(tmp_path)
    env = fake_plugin(tmp_path / "plug2", "trouble-batch", {"trouble-batch": "batched_ext:TroubleBatch"},
                      {"batched_ext.py": _BATCHED_HANG})
    env["PYTHONPATH"] += os.pathsep + str(tmp_path / "plug")
    src = tmp_path / "in"
    src.mkdir()
    img = cv2.imread(str(SAMPLES / "coffee.jpg"))
    for i in range(12):
        cv2.imwrite(str(src / f"{i:02d}.png"), img[:30, :33 if i == 0 else 40 + i])
    t = time.monotonic()
    r = featx_subprocess("extract", "trouble-batch", src, "-o", tmp_path / "t.csv", "--timeout", "1", env=env)
    took = time.monotonic() - t
    assert r.returncode == 1, r.stderr
    assert "00.png: timed out after 1 s" in r.stderr.decode()
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 1 + 11
    assert took < 10, took


@pytest.mark.slow
def test_shards_merge_into_the_single_run_output(tmp_path):
    src = make_folder(tmp_path / "in", 24)
    ref = tmp_path / "all.npy"
    assert featx("extract", "hog", src, "-o", ref, *SMALL).returncode == 0
    parts = []
    for i in (1, 2, 3):
        p = tmp_path / f"part{i}.npy"
        assert featx("extract", "hog", src, "-o", p, *SMALL, "--shard", f"{i}/3").returncode == 0
        parts.append(p)
    counts = [np.load(p).shape[0] for p in parts]
    assert sum(counts) == 24  # a stable hash partition: every input in exactly one shard (one may be empty)
    r = featx("merge", tmp_path / "merged.npy", *parts)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(tmp_path / "merged.npy"), np.load(ref))
    assert (tmp_path / "merged.index.csv").read_bytes() == (tmp_path / "all.index.csv").read_bytes()
    # gaps and overlaps are refused
    r = featx("merge", tmp_path / "m2.npy", parts[0], parts[1])
    assert r.returncode == 2 and b"shard 3/3" in r.stderr
    r = featx("merge", tmp_path / "m3.npy", parts[0], parts[1], parts[2], parts[2])
    assert r.returncode == 2 and b"twice" in r.stderr
