"""Faults: kill -9 of a run's main process must take its workers with it, and a lock
held by orphans of a dead run must be taken over (issue 11, item 1).

Every run started here carries a marker in its environment (``FEATX_TEST_RUN``),
which its workers, a fork server and the resource tracker inherit; "no process of
the run survives" means no live process with that marker in ``/proc/PID/environ``.
"""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from helpers import SAMPLES, plugin_env, photo_crops

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

N = 240                      # images in the big folder: ~2.5 s of work for the slow extractor at -j 2
ARGS = ["-q", "-j", "2", "--commit-every", "0.2"]


def make_folder(root: Path, n: int) -> Path:
    return photo_crops(root, n, (160, 120))


def outputs(out: Path) -> dict[str, bytes]:
    """What a reader sees: the .npy and its index (not the sidecar's timings)."""
    return {p.name: p.read_bytes() for p in (out, out.with_name(out.stem + ".index.csv"))}


@pytest.fixture(scope="module")
def plug(tmp_path_factory):
    """A folder for the module's files, and an environment with the slow test plugin."""
    base = tmp_path_factory.mktemp("faults")
    env = {**os.environ, **plugin_env(base)}
    env.pop("FEATX_CACHE_DIR", None)
    return {"base": base, "env": env}


@pytest.fixture(scope="module")
def world(plug):
    """The plugin, a folder of N real images and its uninterrupted -j 2 output."""
    base, env = plug["base"], plug["env"]
    src = make_folder(base / "in", N)
    ref = base / "ref" / "s.npy"
    ref.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(ref), *ARGS],
                       env=dict(env, SLOW_MS="1"), capture_output=True)   # (the pause changes no value)
    assert r.returncode == 0, r.stderr
    return {**plug, "src": src, "expected": outputs(ref)}


def marked(mark: str) -> list[int]:
    """Live (not zombie) processes with ``FEATX_TEST_RUN=mark`` in their environment."""
    needle = f"FEATX_TEST_RUN={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as fh:
                if needle not in fh.read().split(b"\0"):
                    continue
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read()
        except OSError:
            continue
        if stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X"):
            found.append(int(name))
    return found


def wait_gone(mark: str, within: float = 2.0) -> float:
    """Seconds until no process of run ``mark`` is left; fails (after killing them) past ``within``."""
    t0 = time.monotonic()
    while True:
        left = marked(mark)
        took = time.monotonic() - t0
        if not left:
            return took
        if took > within:
            cmds = []
            for pid in left:
                try:
                    cmds.append((pid, Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]))
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            pytest.fail(f"processes of the killed run still alive {within} s after: {cmds}")
        time.sleep(0.02)


@pytest.fixture
def marks():
    """Markers for the runs of one test; whatever still carries one at the end is killed."""
    made: list[str] = []

    def new() -> str:
        made.append(uuid.uuid4().hex)
        return made[-1]

    yield new
    for m in made:
        for pid in marked(m):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def start(world, out: Path, mark: str, *extra, env=None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(world["src"]), "-o", str(out), *ARGS, *extra]
    return subprocess.Popen(cmd, env={**world["env"], "FEATX_TEST_RUN": mark, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def finish(world, out: Path, mark: str, *extra, env=None, timeout=60) -> subprocess.CompletedProcess:
    p = start(world, out, mark, *extra, env=env)
    try:
        _, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        pytest.fail(f"featx {' '.join(extra)} did not end within {timeout} s (waiting on a dead run's lock?)")
    return subprocess.CompletedProcess(p.args, p.returncode, b"", err)


def progress_size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def kill_when_busy(p: subprocess.Popen, progress: Path) -> None:
    """SIGKILL the main process (only it) once its workers are extracting."""
    before = progress_size(progress)
    deadline = time.monotonic() + 30
    while progress_size(progress) < before + 4 and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert p.poll() is None, (p.returncode, p.stderr.read())
    os.kill(p.pid, signal.SIGKILL)
    p.wait()


@pytest.mark.slow
def test_kill9_of_the_main_process_takes_the_workers_and_the_rerun_starts_at_once(world, marks, tmp_path):
    """kill -9 of the parent only (not its process group), at seeded random moments and
    once while the workers are known to be busy: within 2 s no process of the run is left,
    the same command starts at once (never exit 75) and ends byte-identical."""
    out = tmp_path / "s.npy"
    progress = tmp_path / "progress"
    env = {"SLOW_PROGRESS": str(progress)}
    rng = random.Random(11)
    kills, gone_after = 0, []
    for delay in [None] + [rng.uniform(0.3, 2.0) for _ in range(4)]:
        mark = marks()
        p = start(world, out, mark, env=env)
        if delay is None:
            kill_when_busy(p, progress)
        else:
            time.sleep(delay)
            if p.poll() is not None:  # it got to the end first; it must not have been refused
                assert p.returncode == 0, p.stderr.read()
                break
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        p.stderr.close()
        kills += 1
        gone_after.append(wait_gone(mark))
    assert kills >= 3
    r = finish(world, out, marks(), env=dict(env, SLOW_MS="1"))
    assert r.returncode == 0, r.stderr
    assert b"another featx run" not in r.stderr
    assert outputs(out) == world["expected"]
    print("seconds until the killed runs' processes were gone:", [round(t, 3) for t in gone_after])


@pytest.mark.slow
def test_forkserver_workers_die_with_the_main_process(world, marks, tmp_path):
    """With a fork server the workers' parent is not featx's main process (it is the
    server): they must go all the same, and the server and resource tracker with them."""
    out = tmp_path / "s.npy"
    progress = tmp_path / "progress"
    env = {"SLOW_PROGRESS": str(progress), "FEATX_START_METHOD": "forkserver"}
    mark = marks()
    p = start(world, out, mark, env=env)
    kill_when_busy(p, progress)
    p.stderr.close()
    wait_gone(mark)
    r = finish(world, out, marks(), env=env)
    assert r.returncode == 0, r.stderr
    assert outputs(out) == world["expected"]


# ---------------------------------------------------------------------------
# a lock held by orphans of a dead run (what featx before this fix left behind)

ORPHAN_MAKER = textwrap.dedent('''
    import fcntl, json, os, socket, sys, time
    path, style = sys.argv[1], sys.argv[2]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    rec = {"pid": os.getpid(), "host": socket.gethostname(), "started": "before", "command": ["featx", "old"]}
    if style == "new":
        stat = open("/proc/self/stat", "rb").read()
        rec["start_ticks"] = int(stat[stat.rindex(b")") + 2:].split()[19])
        rec["pidns"] = os.stat("/proc/self/ns/pid").st_ino
    if style == "elsewhere":
        rec["host"] = "another-host"
    if style == "reused":   # an old record whose pid now belongs to another (live) process
        rec["pid"] = os.getppid()
    os.write(fd, json.dumps(rec).encode())
    if style == "reused":
        os.utime(path, (time.time() - 3600,) * 2)  # written an hour ago: before that process started
    if os.fork() == 0:      # a worker forked by the holder: it shares the locked open file
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)  # (not the test's pipes)
        r, w = os.pipe()
        os.read(r, 1)       # ... and sits blocked on a pipe, for ever
        os._exit(0)
    print(rec["pid"], flush=True)
    os.kill(os.getpid(), 9)  # the holder dies; its worker, re-parented, keeps the lock
''')


def make_orphan(lock_path: Path, mark: str, style: str = "new") -> tuple[int, int]:
    """(dead holder pid, orphan pid) after leaving ``lock_path`` flock-ed by an orphan."""
    p = subprocess.run([sys.executable, "-c", ORPHAN_MAKER, str(lock_path), style], capture_output=True,
                       env={**os.environ, "FEATX_TEST_RUN": mark}, timeout=30)
    holder = int(p.stdout)
    deadline = time.monotonic() + 5
    while not marked(mark) and time.monotonic() < deadline:
        time.sleep(0.01)
    (orphan,) = marked(mark)
    assert orphan != holder
    return holder, orphan


def lock_is_free(path: Path) -> bool:
    import fcntl

    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def small(plug):
    """A small folder of 12 real images, for the lock tests."""
    return make_folder(plug["base"] / "small", 12)


@pytest.mark.parametrize("style, wait", [("new", False), ("old", True), ("reused", False)])
def test_lock_held_by_orphans_of_a_dead_run_is_taken_over(plug, small, marks, tmp_path, style, wait):
    """An orphan of a dead run holds the flock: the next run takes it over, says so, stops
    the orphan, and finishes.  The record has the holder's start time (new), or not, as
    featx wrote it before (old; with --wait, which must not wait for the dead), or not
    and its pid is now another live process, started after the record was written (reused)."""
    out = tmp_path / "s.npy"
    lock = tmp_path / ".s.npy.featx-lock"
    mark = marks()
    holder, orphan = make_orphan(lock, mark, style)
    assert not lock_is_free(lock)
    extra = ["--wait"] if wait else []
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "slow", str(small), "-o", str(out), *ARGS, *extra],
                       env=plug["env"], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    err = r.stderr.decode()
    assert f"the run holding this output (pid {holder}) is dead" in err and "taking over" in err, err
    assert f"pid {orphan}" in err  # named as stopped
    wait_gone(mark, within=0.5)  # the orphan was stopped
    assert lock_is_free(lock)
    import numpy as np

    assert np.load(out).shape == (12, 64)


def test_a_live_or_foreign_holder_is_never_taken_over(plug, small, marks, tmp_path):
    """A holder recorded on another host cannot be judged: exit 75, the orphan untouched.
    (A live holder on this host: test_incremental's lock test.)"""
    out = tmp_path / "s.npy"
    lock = tmp_path / ".s.npy.featx-lock"
    mark = marks()
    holder, orphan = make_orphan(lock, mark, "elsewhere")
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "slow", str(small), "-o", str(out), *ARGS],
                       env=plug["env"], capture_output=True, timeout=60)
    assert r.returncode == 75, r.stderr
    assert f"another featx run is writing this output (pid {holder} on another-host".encode() in r.stderr
    assert marked(mark) == [orphan]


RACER = textwrap.dedent('''
    import sys, time
    from featx.output import lock as L
    path, at = sys.argv[1], float(sys.argv[2])
    find = getattr(L, "orphans_holding", None)
    def slow_find(st):           # widen the window between "the holder is dead" and the rename
        time.sleep(0.2)
        return find(st)
    if find is not None:
        L.orphans_holding = slow_find
    while time.time() < at:
        pass
    lk = L.OutputLock(path)
    try:
        lk.acquire(0.0)
    except L.LockedError:
        print("locked", flush=True)
        sys.exit(0)
    print("won", lk.taken_over is not None, flush=True)
    time.sleep(0.6)              # hold it while the others look
    lk.release()
''')


@pytest.mark.slow
def test_racers_for_an_orphaned_lock_never_both_win(plug, marks, tmp_path):
    """Four processes try to take over the same orphaned lock at the same instant, in
    three rounds: each time exactly one gets it (by taking over), the others are told it
    is locked."""
    for rnd in range(3):
        lock = tmp_path / f".r{rnd}.npy.featx-lock"
        make_orphan(lock, marks())
        at = time.time() + 0.6
        procs = [subprocess.Popen([sys.executable, "-c", RACER, str(lock), str(at)], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, env=plug["env"]) for _ in range(4)]
        res = [p.communicate(timeout=60) for p in procs]
        says = sorted(o.decode().strip() for o, _ in res)
        assert all(p.returncode == 0 for p in procs), [e for _, e in res]
        assert says == ["locked"] * 3 + ["won True"], says


@pytest.mark.slow
def test_two_cli_runs_racing_for_an_orphaned_lock(world, marks, tmp_path):
    """The same with the real command: one run takes over and finishes, the other exits 75
    naming the winner (not the dead run)."""
    out = tmp_path / "s.npy"
    lock = tmp_path / ".s.npy.featx-lock"
    make_orphan(lock, marks())
    a, b = start(world, out, marks()), start(world, out, marks())
    (ea, eb) = (a.communicate(timeout=60)[1], b.communicate(timeout=60)[1])
    rcs = sorted([a.returncode, b.returncode])
    assert rcs == [0, 75], (ea, eb)
    won, lost = (ea, eb) if a.returncode == 0 else (eb, ea)
    winner = a.pid if a.returncode == 0 else b.pid
    assert b"taking over" in won and b"taking over" not in lost
    assert f"pid {winner} on {socket.gethostname()}".encode() in lost, lost
    assert outputs(out) == world["expected"]


def test_forked_worker_never_holds_the_lock(plug, tmp_path):
    """The lock descriptor is close-on-exec and a forked child closes it: only the
    holder's own process has the lock file open."""
    script = textwrap.dedent('''
        import os, sys
        from featx.output.lock import OutputLock
        lk = OutputLock(sys.argv[1]); lk.acquire()
        st = os.fstat(lk.fd)
        def opens_it(pid):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    s = os.stat(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if (s.st_dev, s.st_ino) == (st.st_dev, st.st_ino):
                    return True
            return False
        r, w = os.pipe()
        r2, w2 = os.pipe()
        child = os.fork()
        if child == 0:  # (os.fork returns here once the at-fork hooks have run)
            os.write(w2, b"r"); os.read(r, 1); os._exit(0)
        os.read(r2, 1)
        print(opens_it(os.getpid()), opens_it(child), os.get_inheritable(lk.fd))
        os.write(w, b"x"); os.waitpid(child, 0)
    ''')
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / ".x.featx-lock")], capture_output=True,
                       env=plug["env"])
    assert r.stdout.split() == [b"True", b"False", b"False"], r.stderr
