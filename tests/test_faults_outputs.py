"""The output side under real faults (issue 11): kills at random moments, a full disk,
outputs deleted, truncated or replaced between runs and during a run, links planted
inside an npy-dir output, file names that are not UTF-8 or hold a carriage return,
a state file of garbage, a killed merge.  Real photos from samples/ throughout."""
from __future__ import annotations

import csv
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx, plugin_env, photo_crops, featx_subprocess

FAST = ["--resize", "64x48", "-q"]


def photos(root: Path, n: int) -> Path:
    return photo_crops(root, n, (160, 120))


def index_rows(path: Path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        return list(csv.reader(fh))[1:]


def npy_rows(path: Path) -> int:
    return np.load(path, mmap_mode="r").shape[0]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# ---------------------------------------------------------------------------
# 3. the index never runs ahead of the data; 4. a killed run's sidecar is never "complete"


@pytest.mark.slow
def test_random_kills_never_leave_the_index_ahead_and_resume_is_identical(tmp_path):
    """kill -9 of the whole -j 2 run at seeded random moments (half of them from the start, not
    only after a commit; half after the run's first commit, so that some land mid-run on a
    machine so busy that start-up takes longer than the first kind's window):
    after every kill the .npy and its index agree row for row, the sidecar does not say
    complete, and the same command then finishes byte-identical to an uninterrupted run."""
    src = photos(tmp_path / "in", 120)
    env = plugin_env(tmp_path)
    args = ["-q", "-j", "2", "--commit-every", "0.3"]
    ref = tmp_path / "ref.npy"
    assert featx_subprocess("extract", "slow", src, "-o", ref, *args, env=dict(env, SLOW_MS="1")).returncode == 0
    out = tmp_path / "run" / "h.npy"
    out.parent.mkdir()
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(out), *args]
    rng = random.Random(11)
    states = []

    def committed() -> int:
        try:
            return np.load(out, mmap_mode="r").shape[0]
        except (OSError, ValueError):  # not there yet, or caught mid-commit
            return 0

    for n in range(8):
        p = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL, env={**os.environ, **env})
        if n % 2 == 0:   # any moment from the start: start-up, the first chunks, a commit
            time.sleep(rng.uniform(0.2, 1.6))
        else:            # a moment after this run's first commit, however slow the machine is today
            before, deadline = committed(), time.monotonic() + 60
            while p.poll() is None and committed() <= before and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if p.poll() is not None:
            break
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        if out.exists():  # an output appears only at its first commit, whole
            idx = index_rows(out.parent / "h.index.csv")
            m = np.load(out)
            assert len(idx) == m.shape[0], (len(idx), m.shape)
            assert [int(r[0]) for r in idx] == list(range(m.shape[0]))
            assert np.array_equal(m, np.load(ref)[: m.shape[0]])
            side = json.loads((out.parent / "h.npy.featx.json").read_text())
            if side["status"] == "complete":  # the kill came after the run had written its last commit
                assert side["complete"] is True and m.shape[0] == 120, (side["status"], m.shape)
                break
            assert side["status"] == "running" and side["complete"] is False
            states.append(m.shape[0])
        else:
            assert not (out.parent / "h.index.csv").exists()
            states.append(0)
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, **env, "SLOW_MS": "1"})   # (no value changes)
    assert r.returncode == 0, r.stderr
    assert np.array_equal(np.load(out), np.load(ref))
    assert (out.parent / "h.index.csv").read_bytes() == (tmp_path / "ref.index.csv").read_bytes()
    assert json.loads((out.parent / "h.npy.featx.json").read_text())["status"] == "complete"
    assert any(0 < k < 120 for k in states), states  # some kills landed mid-run, after commits


def test_a_killed_runs_shard_is_refused_by_merge(tmp_path):
    src = photos(tmp_path / "in", 40)
    env = plugin_env(tmp_path)
    parts = []
    for i in (1, 2):
        p = tmp_path / f"p{i}.npy"
        assert featx_subprocess("extract", "slow", src, "-o", p, "-q", "--shard", f"{i}/2", env=env).returncode == 0
        parts.append(p)
    # shard 2 is continued by a run that is killed after its first commit
    (src / "img100.png").write_bytes((src / "img000.png").read_bytes())
    (src / "img101.png").write_bytes((src / "img001.png").read_bytes())
    for k in range(102, 160):
        shutil.copy(src / f"img{k % 40:03d}.png", src / f"img{k}.png")
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(parts[1]), "-q", "--shard", "2/2",
           "--commit-every", "0.1"]
    before = npy_rows(parts[1])
    p = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while p.poll() is None and npy_rows(parts[1]) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert npy_rows(parts[1]) > before
    r = featx("merge", tmp_path / "m.npy", *parts)
    assert r.returncode == 2 and b"running" in r.stderr, r.stderr
    assert not (tmp_path / "m.npy").exists()


# ---------------------------------------------------------------------------
# 5. outputs deleted, truncated or replaced are never trusted


@pytest.mark.parametrize("fmt", ["npy", "csv", "npy-dir"])
def test_deleted_or_truncated_outputs_are_rebuilt(tmp_path, fmt):
    src = photos(tmp_path / "in", 5)
    out = tmp_path / {"npy": "g.npy", "csv": "g.csv", "npy-dir": "g"}[fmt]
    ref = tmp_path / {"npy": "ref.npy", "csv": "ref.csv", "npy-dir": "ref"}[fmt]
    fmt_args = ["--format", fmt]
    assert featx("extract", "gradients", src, "-o", ref, "-q", *fmt_args).returncode == 0
    assert featx("extract", "gradients", src, "-o", out, "-q", *fmt_args).returncode == 0

    def same_as_ref():
        if fmt == "npy":
            return np.array_equal(np.load(out), np.load(ref)) and len(index_rows(tmp_path / "g.index.csv")) == 5
        if fmt == "csv":
            return out.read_bytes() == ref.read_bytes()
        return sorted(p.name for p in (out / "in").iterdir()) == sorted(p.name for p in (ref / "in").iterdir())

    # deleted between runs
    victim = out / "in" / "img002.png.npy" if fmt == "npy-dir" else out
    victim.unlink()
    r = featx("extract", "gradients", src, "-o", out, *fmt_args)
    assert r.returncode == 0, r.stderr
    assert same_as_ref()
    if fmt == "npy-dir":
        assert b"1 processed" in r.stderr  # only the missing file is made again
        os.truncate(victim, 0)
        r = featx("extract", "gradients", src, "-o", out, *fmt_args)
        assert b"1 processed" in r.stderr and same_as_ref() and victim.stat().st_size > 0
        return
    assert b"missing" in r.stderr and b"rebuilding" in r.stderr
    # truncated between runs: never "up to date" with rows silently zero
    os.truncate(out, out.stat().st_size - 700)
    r = featx("extract", "gradients", src, "-o", out)
    assert r.returncode == 0 and b"shorter" in r.stderr and b"5 processed" in r.stderr, r.stderr
    assert same_as_ref()
    if fmt == "npy":  # the index deleted alone
        (tmp_path / "g.index.csv").unlink()
        r = featx("extract", "gradients", src, "-o", out)
        assert r.returncode == 0 and b"index.csv is missing" in r.stderr
        assert same_as_ref()
        # a header replaced by another program's
        np.save(out, np.zeros((5, 128), np.float64))
        r = featx("extract", "gradients", src, "-o", out)
        assert r.returncode == 0 and b"replaced or changed" in r.stderr and same_as_ref()


def test_output_deleted_during_the_run_stops_it_and_the_next_run_rebuilds(tmp_path):
    src = photos(tmp_path / "in", 60)
    env = plugin_env(tmp_path)
    out = tmp_path / "h.npy"
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(out), "-q", "--commit-every", "0.1"]
    p = subprocess.Popen(cmd, stderr=subprocess.PIPE, env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    out.unlink()
    _, err = p.communicate(timeout=120)
    assert p.returncode == 74, err
    assert b"deleted or replaced while featx was writing it" in err and b"Traceback" not in err
    assert json.loads((tmp_path / "h.npy.featx.json").read_text())["status"] == "failed"
    r = subprocess.run(cmd, capture_output=True, env={**os.environ, **env})
    assert r.returncode == 0 and npy_rows(out) == 60, r.stderr


# ---------------------------------------------------------------------------
# 2. nothing is ever written through a link inside an npy-dir output


def test_a_link_planted_in_an_npy_dir_output_is_never_written_through(tmp_path):
    (tmp_path / "photos").mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "photos" / "p.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", tmp_path / "photos" / "new.jpg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = featx("extract", "gradients", "-", "-o", "out/", stdin=b"photos/p.jpg\n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    shutil.rmtree(tmp_path / "out" / "photos")
    os.symlink(elsewhere, tmp_path / "out" / "photos")
    r = featx("extract", "gradients", "-", "-o", "out/", stdin=b"photos/p.jpg\nphotos/new.jpg\n", cwd=tmp_path)
    assert list(elsewhere.iterdir()) == []  # nothing outside the output folder
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "symbolic link" in err and "p.jpg" in err and "new.jpg" in err
    assert (tmp_path / "out" / "photos").is_symlink()
    # a link in place of one file is replaced by the file, its target untouched
    os.unlink(tmp_path / "out" / "photos")
    target = elsewhere / "victim.npy"
    target.write_bytes(b"keep")
    r = featx("extract", "gradients", "-", "-o", "out/", stdin=b"photos/p.jpg\n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    os.unlink(tmp_path / "out" / "photos" / "p.jpg.npy")
    os.symlink(target, tmp_path / "out" / "photos" / "p.jpg.npy")
    r = featx("extract", "gradients", "-", "-o", "out/", stdin=b"photos/p.jpg\n", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert target.read_bytes() == b"keep"
    assert not (tmp_path / "out" / "photos" / "p.jpg.npy").is_symlink()
    assert np.load(tmp_path / "out" / "photos" / "p.jpg.npy").shape == (128,)


# ---------------------------------------------------------------------------
# 6. 7. names that are not UTF-8, or hold \r or \n


def test_awkward_file_names_round_trip_through_index_csv_and_state(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    names = [b"plain.jpg", b"bad\xff\xfename.jpg", b"cr\rname.jpg", b"nl\nname.jpg", b'quote",comma.jpg']
    for i, n in enumerate(names):
        shutil.copy(SAMPLES / ("coffee.jpg" if i % 2 else "rocket.jpg"), os.path.join(os.fsencode(src), n))
    for out in (tmp_path / "g.npy", tmp_path / "g.csv"):
        r = featx("extract", "gradients", src, "-o", out)
        assert r.returncode == 0, r.stderr
        r = featx("extract", "gradients", src, "-o", out)  # and the state finds them again
        assert r.returncode == 0 and b"0 processed, 5 up to date" in r.stderr, r.stderr
    rows = index_rows(tmp_path / "g.index.csv")
    assert len(rows) == 5 == np.load(tmp_path / "g.npy").shape[0]
    # names are written with featx's escape of bytes that are not UTF-8 (issue 21 item 16)
    from featx.names import unescape_name

    assert all(("\\xff\\xfe" in r[1]) == ("bad" in r[1]) for r in rows)
    got = sorted(os.fsencode(unescape_name(r[1])) for r in rows)
    assert got == sorted(os.path.join(os.fsencode(src), n) for n in names)
    assert all(os.path.exists(os.fsencode(unescape_name(r[1]))) for r in rows)  # each path opens its file
    with open(tmp_path / "g.csv", newline="", encoding="utf-8", errors="surrogateescape") as fh:
        table = list(csv.reader(fh))
    assert len(table) == 6 and all(len(r) == 129 for r in table)
    assert sorted(os.fsencode(unescape_name(r[0])) for r in table[1:]) == got
    # npy-dir: the mirrored files keep the names
    r = featx("extract", "gradients", src, "-o", str(tmp_path) + "/d/")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "d").rglob("*.npy"))) == 5


# ---------------------------------------------------------------------------
# 8. a changed input that now fails loses its old row


@pytest.mark.parametrize("out_name", ["g.npy", "g.csv", "g/"])
def test_a_changed_input_that_now_fails_keeps_no_stale_row(tmp_path, out_name):
    src = photos(tmp_path / "in", 4)
    out = str(tmp_path / out_name) + ("/" if out_name.endswith("/") else "")
    assert featx("extract", "gradients", src, "-o", out, "-q").returncode == 0
    good = (src / "img001.png").read_bytes()
    (src / "img001.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    r = featx("extract", "gradients", src, "-o", out, "-q")
    assert r.returncode == 1 and b"img001.png" in r.stderr
    if out_name == "g.npy":
        paths = [Path(r[1]).name for r in index_rows(tmp_path / "g.index.csv")]
        assert paths == ["img000.png", "img002.png", "img003.png"] and npy_rows(Path(out)) == 3
    elif out_name == "g.csv":
        paths = [Path(r[0]).name for r in index_rows(Path(out))]
        assert paths == ["img000.png", "img002.png", "img003.png"]
    else:
        assert sorted(p.name for p in (tmp_path / "g" / "in").iterdir()) == ["img000.png.npy", "img002.png.npy",
                                                                 "img003.png.npy"]
    # it is tried again next time, and comes back once it is fixed
    r = featx("extract", "gradients", src, "-o", out, "-q")
    assert r.returncode == 1
    (src / "img001.png").write_bytes(good)
    r = featx("extract", "gradients", src, "-o", out)
    assert r.returncode == 0 and b"1 processed, 3 up to date" in r.stderr, r.stderr


# ---------------------------------------------------------------------------
# 13. a full disk, a garbage state file: a message, not a traceback


def _limit_file_size(nbytes: int):
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes past the limit fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


@pytest.mark.parametrize("out_name", ["h.npy", "h.csv", "h/"])
def test_injected_full_disk_stops_cleanly_and_resumes(tmp_path, out_name):
    """An output that cannot grow (RLIMIT_FSIZE: writes fail as on a full disk) stops the run
    with one message and exit 74; what was committed stays consistent; the same command
    finishes the job once there is room."""
    src = photos(tmp_path / "in", 30)
    out = str(tmp_path) + "/" + out_name
    size = "128x128" if out_name == "h/" else "96x96"  # npy-dir: each file (63 KB) is past the limit
    cmd = [sys.executable, "-m", "featx", "extract", "hog", str(src), "-o", out, "--resize", size,
           "--commit-every", "0", "-j", "1"]
    r = subprocess.run(cmd, capture_output=True, preexec_fn=_limit_file_size(150_000 if out_name != "h/" else 40_000))
    err = r.stderr.decode()
    assert r.returncode == 74, err
    assert "Traceback" not in err and "cannot write" in err and "run the same command again" in err
    if out_name == "h.npy":
        idx = index_rows(tmp_path / "h.index.csv")
        assert len(idx) == npy_rows(Path(out)) and 0 < len(idx) < 30
    assert [p for p in tmp_path.rglob("*") if "featx-tmp" in p.name] == []
    r = subprocess.run(cmd, capture_output=True)
    assert r.returncode == 0, r.stderr
    ref = str(tmp_path) + "/ref" + out_name[1:]
    assert featx("extract", "hog", src, "-o", ref, "--resize", size, "-q").returncode == 0
    if out_name == "h.npy":
        assert np.array_equal(np.load(out), np.load(ref))
    elif out_name == "h.csv":
        assert Path(out).read_bytes() == Path(ref).read_bytes()
    else:
        assert len(list(Path(out).rglob("*.npy"))) == 30


@pytest.mark.slow
def test_real_full_disk_on_a_small_tmpfs(tmp_path):
    """The same on a real full file system (a 2 MB tmpfs), where the test may mount one."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); the RLIMIT_FSIZE test covers the same path")
    try:
        src = photos(tmp_path / "in", 40)
        for out_name in ("h.npy", "h/"):
            out = str(mnt) + "/" + out_name
            r = featx("extract", "hog", src, "-o", out, "--resize", "128x128", "--commit-every", "0")
            err = r.stderr.decode()
            assert r.returncode == 74 and "Traceback" not in err, err
            assert "No space left on device" in err or "disk is full" in err
            assert [p for p in mnt.rglob("*") if "featx-tmp" in p.name] == []
            if out_name == "h.npy":
                assert len(index_rows(mnt / "h.index.csv")) == npy_rows(Path(out)) > 0
            for p in list(mnt.iterdir()):
                shutil.rmtree(p) if p.is_dir() else p.unlink()
    finally:
        subprocess.run(["umount", str(mnt)])


def test_a_garbage_state_file_is_named_with_the_way_out(tmp_path):
    out = tmp_path / "g.npy"
    assert featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out, "-q").returncode == 0
    state = tmp_path / ".g.npy.featx-state"
    state.write_bytes(os.urandom(4096))
    r = featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err
    assert str(state) in err and "not a featx state file" in err and "--overwrite" in err
    r = featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out, "--overwrite", "-q")
    assert r.returncode == 0 and npy_rows(out) == 1


# ---------------------------------------------------------------------------
# 14. a killed merge leaves no temporary file behind for good


KILL_IN_WRITE = r"""
import os, signal, sys
import featx.output.atomic as a

def wrap(real):
    def killed(path, data, **kw):  # kill -9 in the middle of writing a whole file, before its rename
        def half(fh):
            data(fh) if callable(data) else fh.write(data.encode() if isinstance(data, str) else data)
            fh.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        name = os.path.basename(str(path))
        if os.environ["KILL_NAME"] in name and not name.endswith(".json"):
            return real(path, half, **kw)
        return real(path, data, **kw)
    return killed

for mod in ("featx.output.atomic", "featx.output.merge", "featx.encoding"):
    __import__(mod)
    m = sys.modules[mod]
    for fn in ("write_atomic", "write_file"):
        if hasattr(m, fn):
            setattr(m, fn, wrap(getattr(a, fn)))
from featx.cli import main
sys.argv[0] = "featx"
main()
"""


@pytest.mark.parametrize("what", ["merge", "codebook"])
def test_kill9_of_merge_or_codebook_mid_write_then_the_same_command_works(tmp_path, what):
    """kill -9 of `featx merge` / `featx codebook` while its output is being written: no output
    appears (never a part of one), and the same command afterwards removes the dead run's
    temporary file and writes the whole output."""
    src = photos(tmp_path / "in", 12)
    if what == "merge":
        parts = []
        for i in (1, 2):
            p = tmp_path / f"p{i}.npy"
            assert featx("extract", "gradients", src, "-o", p, "-q", "--shard", f"{i}/2").returncode == 0
            parts.append(str(p))
        args, out, name = ["merge", str(tmp_path / "m.npy"), *parts], tmp_path / "m.npy", "m.npy"
    else:
        args = ["codebook", "sift", str(src), "-k", "8", "-o", str(tmp_path / "cb.npz"), "--max-keypoints", "50"]
        out, name = tmp_path / "cb.npz", "cb.npz"
    (tmp_path / "kill.py").write_text(KILL_IN_WRITE)
    r = subprocess.run([sys.executable, str(tmp_path / "kill.py"), *args], capture_output=True,
                       env={**os.environ, "KILL_NAME": name}, timeout=300)
    assert r.returncode == -9, r.stderr
    assert not out.exists()
    left = [p for p in tmp_path.iterdir() if "featx-tmp" in p.name]
    assert left, "the kill should have left the dead run's temporary file"
    r = featx(*args)
    assert r.returncode == 0, r.stderr
    assert [p for p in tmp_path.iterdir() if "featx-tmp" in p.name] == []
    if what == "merge":
        assert npy_rows(out) == 12
    else:
        with np.load(out) as z:
            assert z["centers"].shape == (8, 128)


def test_a_killed_merge_leaves_nothing_the_next_merge_does_not_clean(tmp_path):
    src = photos(tmp_path / "in", 12)
    parts = []
    for i in (1, 2):
        p = tmp_path / f"p{i}.npy"
        assert featx("extract", "gradients", src, "-o", p, "-q", "--shard", f"{i}/2").returncode == 0
        parts.append(p)
    # what a merge killed mid-write leaves: a temporary file of a process that is gone
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".m.npy.featx-tmp-{dead.pid}"
    stale.write_bytes(b"\0" * 100_000)
    r = featx("merge", tmp_path / "m.npy", *parts)
    assert r.returncode == 0, r.stderr
    assert not stale.exists()
    assert npy_rows(tmp_path / "m.npy") == 12
