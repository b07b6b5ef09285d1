"""An extractor that builds in featx's own process but not in its worker processes (it
needs a file, an environment variable or a device only the main process has, or its
native library fails to start in a fresh process) is the run's error, not every input's:
the run stops at once with one message naming the extractor and the worker's reason
(exit 2), no input is recorded as failed, no process is left behind.  A worker that dies
on one input is still that input's failure alone.

The test extractors find out where they are built with ``multiprocessing.parent_process()``
(None only in featx's own process) and are not fork-safe, so that ``-j N`` starts fresh
workers that build them again (as cnn's workers do).  Plugins are found by a fresh
interpreter only: every run here is a subprocess.
"""
from __future__ import annotations

import json
import os
import sys
import uuid
from pathlib import Path

import pytest

from helpers import SAMPLES, fake_plugin, featx_subprocess

PLUGIN = '''
import multiprocessing, os
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec, param

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)

def in_worker():
    return multiprocessing.parent_process() is not None

class Sturdy(Extractor):
    """Mean brightness; kills its process on images 34 pixels wide.  Builds anywhere."""
    name = "sturdy"
    summary = "A test extractor"
    Params = P
    fork_safe = False   # -j N workers start fresh and build it themselves
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        if image.shape[1] == 34:
            os.kill(os.getpid(), 9)
        return np.array([image.mean() * self.params.scale], np.float32)

class Forkable(Sturdy):
    """Sturdy, and fork-safe: -j N forks its workers (while nothing else runs in the main process)."""
    name = "forkable"
    fork_safe = True

class Licensed(Sturdy):
    """Needs a licence file only featx's own process can read."""
    name = "licensed"
    def __init__(self, params):
        if in_worker():
            raise RuntimeError("no licence file in this process")
        super().__init__(params)

class Fragile(Sturdy):
    """Its native library ends the process when it starts anywhere but in featx's own process."""
    name = "fragile"
    def __init__(self, params):
        if in_worker():
            os._exit(3)
        super().__init__(params)

class Broken(Sturdy):
    """Builds nowhere."""
    name = "broken"
    def __init__(self, params):
        raise RuntimeError("the model file is damaged")
'''

NAMES = ("sturdy", "forkable", "licensed", "fragile", "broken")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The plugin and a folder of 4 small real images (one 34 pixels wide)."""
    import cv2

    base = tmp_path_factory.mktemp("build")
    env = {**os.environ, **fake_plugin(base / "plug", "buildtest", {n: f"build_ext:{n.capitalize()}" for n in NAMES},
                                       {"build_ext.py": PLUGIN})}
    env.pop("FEATX_CACHE_DIR", None)
    env.pop("FEATX_START_METHOD", None)
    src = base / "in"
    src.mkdir()
    img = cv2.imread(str(SAMPLES / "coffee.jpg"))
    for name, w in (("a", 40), ("b", 41), ("c", 42), ("d", 43)):
        cv2.imwrite(str(src / f"{name}.png"), img[:30, :w])
    crash = base / "crash"
    crash.mkdir()
    for name, w in (("a", 40), ("b-crash", 34), ("c", 42), ("d", 43)):
        cv2.imwrite(str(crash / f"{name}.png"), img[:30, :w])
    return {"base": base, "env": env, "src": src, "crash": crash}


def run(world, *args, **env):
    """``featx ARGS`` in a fresh interpreter that sees the plugin; fails if any process of
    the run (its workers, their fork server) is still alive a moment after it ended."""
    from test_faults_workers import wait_gone

    mark = uuid.uuid4().hex
    r = featx_subprocess(*args, env={**world["env"], "FEATX_TEST_RUN": mark, **env}, timeout=60)
    wait_gone(mark, within=2.0)
    return r


def lines(r) -> list[str]:
    return [line for line in r.stderr.decode().splitlines() if line.strip()]


def assert_stopped(r, out: Path, error: str) -> None:
    """The run said ``error`` and nothing else (with a hint), exit 2, and wrote no row."""
    err = lines(r)
    assert r.returncode == 2, err
    assert err[0] == f"featx: error: {error}", err
    assert len(err) == 2 and err[1].startswith("  hint: "), err
    assert not out.exists()


pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


@pytest.mark.parametrize("jobs", [["-j", "2"], ["-j", "1", "--timeout", "30"]], ids=["j2", "j1-timeout"])
def test_an_extractor_that_raises_as_a_worker_builds_it_stops_the_run(world, tmp_path, jobs):
    out = tmp_path / "l.csv"
    r = run(world, "extract", "licensed", world["src"], "-o", out, *jobs)
    assert_stopped(r, out, "the workers could not build extractor 'licensed': RuntimeError: no licence file "
                           "in this process")
    assert "builds in featx's own process but not in a fresh worker process" in lines(r)[1]
    assert "Traceback" not in r.stderr.decode() and "crashed" not in r.stderr.decode()


@pytest.mark.parametrize("jobs", [["-j", "2"], ["-j", "1", "--timeout", "30"]], ids=["j2", "j1-timeout"])
def test_an_extractor_that_ends_its_worker_as_it_is_built_stops_the_run(world, tmp_path, jobs):
    out = tmp_path / "f.csv"
    r = run(world, "extract", "fragile", world["src"], "-o", out, *jobs)
    assert_stopped(r, out, "the workers could not build extractor 'fragile': a worker process exited with "
                           "code 3 while building it")


def test_spawned_workers_that_cannot_build_stop_the_run_too(world, tmp_path):
    out = tmp_path / "l.csv"
    r = run(world, "extract", "licensed", world["src"], "-o", out, "-j", "2", FEATX_START_METHOD="spawn")
    assert_stopped(r, out, "the workers could not build extractor 'licensed': RuntimeError: no licence file "
                           "in this process")


def test_traceback_shows_where_the_worker_failed(world, tmp_path):
    r = run(world, "--traceback", "extract", "licensed", world["src"], "-o", tmp_path / "l.csv", "-j", "2")
    err = r.stderr.decode()
    assert r.returncode == 2, err
    assert "build_ext.py" in err and "no licence file in this process" in err, err


def test_a_continued_output_is_left_as_it_was_and_its_sidecar_says_failed(world, tmp_path):
    """Made by -j 1 (built in featx's own process: it runs), continued by -j 2 with a new
    image: the run stops, the output keeps its bytes, and the sidecar says "failed" (not
    "running", which means killed)."""
    import shutil

    src = tmp_path / "in"
    shutil.copytree(world["src"], src)
    (src / "d.png").unlink()
    out = tmp_path / "l.csv"
    r = run(world, "extract", "licensed", src, "-o", out, "-j", "1", "-q")
    assert r.returncode == 0, r.stderr
    before = out.read_bytes()
    assert len(before.splitlines()) == 1 + 3
    shutil.copyfile(world["src"] / "d.png", src / "d.png")
    r = run(world, "extract", "licensed", src, "-o", out, "-j", "2")
    assert r.returncode == 2, r.stderr
    assert lines(r)[0].startswith("featx: error: the workers could not build extractor 'licensed'"), lines(r)
    assert out.read_bytes() == before
    side = json.loads(Path(str(out) + ".featx.json").read_text())
    assert side["status"] == "failed" and side["failures"] == [] and side["inputs"]["processed"] == 0


def test_at_j1_the_extractor_is_built_in_featx_own_process_and_runs(world, tmp_path):
    out = tmp_path / "f.csv"
    r = run(world, "extract", "fragile", world["src"], "-o", out, "-j", "1", "-q")
    assert r.returncode == 0, r.stderr
    assert len(out.read_text().splitlines()) == 1 + 4


def test_an_extractor_that_builds_nowhere_is_one_clear_error_at_j1(world, tmp_path):
    out = tmp_path / "b.csv"
    r = run(world, "extract", "broken", world["src"], "-o", out, "-j", "1")
    err = lines(r)
    assert r.returncode == 2, err
    assert err[0] == "featx: error: cannot build extractor 'broken': RuntimeError: the model file is damaged", err
    assert "Traceback" not in r.stderr.decode()
    assert not out.exists()


@pytest.mark.parametrize("cmd", [["info", "broken"], ["show", "broken", "IMG", "-o", "OUT"]], ids=["info", "show"])
def test_info_and_show_of_an_extractor_that_builds_nowhere_say_so_in_one_line(world, tmp_path, cmd):
    """(Its --help needs no extractor built, and shows.)"""
    assert run(world, "extract", "broken", "--help").returncode == 0
    out = tmp_path / "b.png"
    args = [str(world["src"] / sorted(os.listdir(world["src"]))[0]) if a == "IMG" else out if a == "OUT" else a
            for a in cmd]
    r = run(world, *args)
    err = lines(r)
    assert r.returncode == 2, err
    assert err[0] == "featx: error: cannot build extractor 'broken': RuntimeError: the model file is damaged", err
    assert "Traceback" not in r.stderr.decode()
    assert not out.exists()


def test_a_worker_that_dies_on_one_input_fails_that_input_alone(world, tmp_path):
    out = tmp_path / "s.csv"
    r = run(world, "extract", "sturdy", world["crash"], "-o", out, "-j", "2")
    err = r.stderr.decode()
    assert r.returncode == 1, err
    assert "b-crash.png: the worker process crashed on this input" in err
    assert "could not build" not in err
    rows = out.read_text().splitlines()[1:]
    assert [Path(line.split(",")[0]).stem for line in rows] == ["a", "c", "d"]


@pytest.mark.parametrize("name", ["sturdy", "forkable"])
def test_a_worker_that_dies_on_one_input_under_a_progress_bar(world, tmp_path, monkeypatch, name):
    """The same with stderr on a terminal (a progress bar, whose counter the workers share):
    workers started from the fork server (an extractor that is not fork-safe; or the pool
    that replaces the broken one, as the commit thread runs by then: no fork) were handed a
    counter made for forked workers only, and the run stopped with a traceback."""
    from test_progress import run_in_pty

    monkeypatch.setenv("PYTHONPATH", world["env"]["PYTHONPATH"])
    monkeypatch.delenv("FEATX_START_METHOD", raising=False)
    out = tmp_path / "s.csv"
    code, text = run_in_pty(["extract", name, world["crash"], "-o", out, "-j", "2"], tmp_path)
    assert code == 1, text[-2000:]
    assert "b-crash.png: the worker process crashed on this input" in text and "Traceback" not in text
    rows = out.read_text().splitlines()[1:]
    assert [Path(line.split(",")[0]).stem for line in rows] == ["a", "c", "d"]


# ---------------------------------------------------------------------------
# the attribution itself, in this process: a pool's start-up table and its processes' exits


class _Exited:
    def __init__(self, code):
        self.exitcode = code


def _attribution(rows, exits):
    """ProcessPool._start_failure over a start-up table holding ``rows`` (phase, task, pid)
    and processes that ended with ``exits`` (pid -> exit code)."""
    import multiprocessing as mp

    from featx import registry
    from featx.api import open_extractor
    from featx.engine import worker as w
    from featx.engine.executors import ProcessPool
    from featx.extractor import params_to_dict

    ex = open_extractor("hog")
    job = w.Job(tasks=(w.Task(target=registry.target_of(type(ex)), params=params_to_dict(ex.params)),))
    pool = object.__new__(ProcessPool)
    pool.job, pool.startup = job, w.startup_table(2, mp.get_context("spawn"))
    raw = pool.startup.get_obj()
    raw[0] = len(rows)
    for i, row in enumerate(rows):
        raw[1 + 3 * i:4 + 3 * i] = list(row)
    return pool._start_failure({pid: _Exited(code) for pid, code in exits.items()})


def test_a_death_is_the_start_only_when_no_worker_had_taken_an_input():
    from featx.engine import worker as w

    B, W, R, S = w.BUILDING, w.WORKING, w.READY, w.STARTING
    # one died building the extractor (its own exit), the other was stopped by the pool
    err = _attribution([(B, 0, 11), (B, 0, 12)], {11: 3, 12: -15})
    assert err.message == "the workers could not build extractor 'hog': a worker process exited with code 3 " \
                          "while building it"
    err = _attribution([(B, 0, 11)], {11: -11})
    assert err.message.endswith("a worker process was killed by SIGSEGV while building it")
    # a worker had taken an input: the death is an input's, whoever else was starting
    assert _attribution([(W, 0, 11), (B, 0, 12)], {11: -9, 12: -15}) is None
    assert _attribution([(W, 0, 11), (B, 0, 12)], {11: -15, 12: 3}) is None
    # the only one starting was stopped by the pool; the dead one was idle (killed from outside)
    assert _attribution([(R, 0, 11), (B, 0, 12)], {11: -9, 12: -15}) is None
    # one that died before its start was noted (its interpreter failed to start featx's worker)
    err = _attribution([(S, 0, 12)], {11: 1, 12: -15})
    assert err.message == "the worker processes could not start: a worker process exited with code 1 before " \
                          "it took any input"
    # exits unknown (a Python that forgets its pool's processes): the phases decide
    assert _attribution([(B, 0, 11)], {}).message.endswith("a worker process ended while building it")
