"""How the ``featx`` command ends (:func:`featx.cli.main.console`).

When only featx's own code ran, the command leaves with ``os._exit`` once it has done
what the interpreter does before its teardown (join the threads that are not daemons,
run the ``atexit`` functions, flush stdout and stderr): the teardown itself, freeing
every object of every module, cost 50-100 ms of a short command.  These tests run the
real entry point in a fresh interpreter and check that nothing a user or a library can
see is lost: the exit code, every byte on stdout, a thread, an ``atexit`` function; and
that a plugin's code keeps the interpreter's whole exit.
"""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SAMPLES, fake_plugin

#: console() with three things to watch, in a fresh interpreter: a thread that is not a
#: daemon (it starts its last 0.2 s when the command's work is over), an atexit function, and a module-level
#: object that writes when the teardown frees it; each appends a line to MARK.
SCRIPT = """
import atexit, sys, threading, time
MARK = sys.argv[1]
def mark(what, open=open, MARK=MARK):
    with open(MARK, "a") as f:
        f.write(what + "\\n")
class Freed:
    def __del__(self, mark=mark):
        mark("teardown")
KEEP = Freed()
done = threading.Event()
threading.Thread(target=lambda: (done.wait(60), time.sleep(0.2), mark("thread"))).start()
atexit.register(mark, "atexit")
sys.argv = ["featx"] + sys.argv[2:]
import featx.cli
cli_main = sys.modules["featx.cli.main"]
run = cli_main.main
def main():  # the thread is still busy when the command's work is over
    try:
        run()
    finally:
        done.set()
cli_main.main = main
cli_main.console()
"""


def _run(tmp_path: Path, *args: str, env: dict | None = None) -> tuple[subprocess.Popen, list[str]]:
    mark = tmp_path / "mark.txt"
    mark.unlink(missing_ok=True)
    e = dict(os.environ, **(env or {}))
    with subprocess.Popen([sys.executable, "-c", SCRIPT, str(mark), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, env=e, cwd=tmp_path) as p:
        p.out, p.err = p.communicate(timeout=120)
    return p, mark.read_text().splitlines() if mark.exists() else []


def test_the_command_skips_only_the_teardown(tmp_path):
    """Every row on stdout, exit 0; the thread joined and then the atexit function run, in
    the interpreter's order; the teardown (the object's __del__) skipped."""
    p, marks = _run(tmp_path, "extract", "hog", str(SAMPLES), "-o", "-", "-f", "csv", "--resize", "64x64")
    assert p.returncode == 0, p.err
    rows = list(csv.reader(io.StringIO(p.out.decode())))
    names = sorted(n for n in os.listdir(SAMPLES) if n.endswith((".png", ".jpg")))
    assert len(rows) == 1 + len(names) and all(len(r) == len(rows[0]) for r in rows)
    assert sorted(Path(r[0]).name for r in rows[1:]) == names
    assert marks == ["thread", "atexit"]


@pytest.mark.parametrize("args, code", [
    (["extract", "nosuch", "x.jpg"], 2),                          # a usage error
    (["extract", "hog", "in", "-o", "out.npy"], 1),               # an input that failed
])
def test_exit_codes_are_kept(tmp_path, args, code):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "bad.jpg").write_bytes(b"not a JPEG")
    (tmp_path / "in" / "coffee.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes())
    p, marks = _run(tmp_path, *args)
    assert p.returncode == code, p.err
    assert marks == ["thread", "atexit"]


def test_a_full_stdout_keeps_the_interpreters_exit(tmp_path):
    """stdout on a full disk: featx's own message and exit code 74, as before."""
    with open("/dev/full", "wb") as full:
        mark = tmp_path / "mark.txt"
        p = subprocess.run([sys.executable, "-c", SCRIPT, str(mark), "extract", "hog", str(SAMPLES / "coffee.jpg"),
                            "-o", "-", "-f", "csv", "--resize", "64x64"], stdout=full, stderr=subprocess.PIPE,
                           timeout=120, cwd=tmp_path)
    assert p.returncode == 74, p.stderr
    assert b"No space left on device" in p.stderr
    assert mark.read_text().splitlines()[:2] == ["thread", "atexit"]


PLUGIN = """
from dataclasses import dataclass
import os
import numpy as np
from featx.extractor import Extractor, OutputSpec

@dataclass(frozen=True)
class P:
    pass

class Leaky(Extractor):
    name = "leaky"
    Params = P
    summary = "A test extractor whose module writes when it is freed"
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        return np.array([image.mean()], np.float32)

class _Buffered:
    def __init__(self, path):
        self.path = path
    def __del__(self, open=open, getpid=os.getpid):
        with open(self.path, "a") as f:
            f.write(f"plugin freed {getpid()}\\n")

FREED = _Buffered(os.environ["PLUGIN_MARK"])
"""


def test_a_plugin_keeps_the_interpreters_whole_exit(tmp_path):
    """An extractor from outside featx ran: its objects may write when they are freed, so
    the interpreter exits as it always does."""
    env = fake_plugin(tmp_path / "plug", "leaky", {"leaky": "leaky_ext:Leaky"}, {"leaky_ext.py": PLUGIN})
    env["PLUGIN_MARK"] = str(tmp_path / "plugin.txt")
    p, marks = _run(tmp_path, "extract", "leaky", str(SAMPLES / "coffee.jpg"), "-o", "out.npy", env=env)
    assert p.returncode == 0, p.err
    # (its worker processes, started afresh for a plugin, end as they always did)
    assert f"plugin freed {p.pid}" in (tmp_path / "plugin.txt").read_text().splitlines()
    assert marks[:2] == ["thread", "atexit"] and "teardown" in marks


def test_a_profiler_gets_the_end_of_the_command(tmp_path):
    """``python -m cProfile -o F -m featx ...`` writes F after the command returns: under a
    profiler (or a tracer: a debugger, coverage) the interpreter exits as it always does."""
    prof = tmp_path / "run.prof"
    p = subprocess.run([sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "featx", "extract", "hog",
                        str(SAMPLES / "coffee.jpg"), "-o", str(tmp_path / "h.npy"), "--resize", "64x64", "-q"],
                       capture_output=True, timeout=120)
    assert p.returncode == 0, p.stderr
    import pstats

    assert pstats.Stats(str(prof)).total_calls > 0
