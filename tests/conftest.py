"""Shared fixtures (the real photographs in samples/, session-wide expensive inputs), the
``fast`` subset and the check that keeps the ``slow`` mark honest.

**The fast subset** (``pytest -m fast``): the library-level tests -- extractors, sources,
sinks, encodings, video -- of the files in :data:`FAST_FILES`, less those marked slow.  The
mark is given here, by file, so a new test in those files joins the subset by itself.

**The slow mark rule**: a test with a phase (setup, call or teardown) that takes more than
3 s carries ``@pytest.mark.slow``; ``pytest -m 'not slow'`` is the quick loop.  Checked on
every run, for the tests not marked slow:

* **CPU time fails the test.**  A setup or call that used more than :data:`SLOW_CPU_S`
  seconds of CPU -- this process plus its children (``getrusage`` ``RUSAGE_SELF`` +
  ``RUSAGE_CHILDREN``, and the workers forked by the in-process runs' forkserver, read from
  its ``/proc`` entry) -- fails with a message saying so.  CPU time is the measure because
  it hardly moves with the machine's load: a test waiting for a core is not charged for the
  wait, so a test that passes the check on a quiet machine passes it on a busy one (give a
  test near the line the mark rather than a margin of luck: the check allows 3 s, a test
  should stay under about 2).  A setup includes the module or session fixtures it is the
  first to need (as it does when the test is run alone).  A teardown is only listed, not
  failed: a child is charged when it is reaped, so the teardown of a module fixture that
  ran processes for the whole module (a local Ray) carries their whole life.
* **Wall-clock time only warns.**  Unmarked phases over 3 s of wall-clock time (waiting on
  a child, sleeping, a busy machine) are listed at the end of the terminal summary; on a
  quiet machine such a test should be marked (or made cheaper).

``--slow-check=warn`` turns the failure into a warning (e.g. under coverage or a debugger,
which multiply CPU time); ``--slow-check=off`` skips the check.
"""
from __future__ import annotations

import os
import resource
import time
from pathlib import Path

# as featx.cli.main sets them before numpy and OpenCV load: CLI tests run in this process
# (helpers.featx), and its library calls must behave as a featx process's would
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
os.environ.setdefault("OPENCV_LOG_LEVEL", "OFF")

import numpy as np  # noqa: E402
import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
COLOUR = ["astronaut.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]
GRAY = ["camera.png"]


def load_sample(name: str) -> np.ndarray:
    """A sample photo as featx's extractors see it: uint8, RGB or grayscale."""
    import cv2

    img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_UNCHANGED)
    assert img is not None, name
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample():
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_sample(name)
        return cache[name].copy()

    return get


@pytest.fixture(scope="module")
def private_model_cache(tmp_path_factory):
    """A private FEATX_CACHE_DIR for a whole test module (the cnn modules ask for it with
    ``pytestmark = pytest.mark.usefixtures("private_model_cache")``): what they build or
    damage in the model cache stays theirs."""
    d = tmp_path_factory.mktemp("featx-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FEATX_CACHE_DIR", str(d))
        yield d


@pytest.fixture(scope="session")
def camera_photo(tmp_path_factory):
    """``camera_photo(sample, size=(4000, 3000), seed=0, orientation=1)``: the path of a
    camera-like JPEG (:func:`helpers.camera_jpeg`: a 12-MP one takes a second or two to
    make), made once per session and shared by every test that asks for the same one.
    Read it, never change it: put it in a test's own folder with :func:`helpers.place`,
    and copy it where a test rewrites it."""
    from helpers import camera_jpeg

    folder = tmp_path_factory.mktemp("camera")
    made: dict[tuple, Path] = {}

    def get(sample: str, size: tuple[int, int] = (4000, 3000), seed: int = 0, orientation: int = 1) -> Path:
        key = (sample, tuple(size), seed, orientation)
        if key not in made:
            made[key] = camera_jpeg(folder / f"{len(made):02d}-{Path(sample).stem}.jpg", sample, tuple(size),
                                    seed=seed, orientation=orientation)
        return made[key]

    return get


# ---------------------------------------------------------------------------
# the fast subset and the slow-mark check

#: files of library-level tests: ``pytest -m fast`` runs their tests that are not slow
FAST_FILES = frozenset({
    "test_gradients.py", "test_hog.py", "test_haar.py", "test_gabor.py", "test_sift.py", "test_flow.py",
    "test_cnn.py", "test_cnn_models.py", "test_cnn_pth.py", "test_onnxproto.py", "test_contract.py",
    "test_regions.py", "test_sources.py", "test_sinks.py", "test_encoding.py", "test_video.py",
    "test_imageops.py", "test_frame_identity.py", "test_parquet.py",
})

#: the CPU seconds a phase of an unmarked test may use (see the module's docstring)
SLOW_CPU_S = 3.0
#: the wall-clock seconds over which an unmarked phase is listed in the terminal summary
SLOW_WALL_S = 3.0

_PHASES = pytest.StashKey[dict]()
_over_wall: dict[tuple[str, str], tuple[float, float]] = {}


def pytest_addoption(parser):
    parser.addoption("--slow-check", choices=("fail", "warn", "off"), default="fail",
                     help="tests not marked slow that use over 3 s of CPU in a phase: fail them (default), "
                          "only list them, or do not check")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.path.name in FAST_FILES and item.get_closest_marker("slow") is None:
            item.add_marker(pytest.mark.fast)


def _forkserver_children_cpu() -> float:
    """CPU seconds of the workers that the forkserver of in-process ``-j N`` runs forked and
    reaped (they are its children, not ours, so ``RUSAGE_CHILDREN`` does not see them)."""
    try:
        from multiprocessing import forkserver

        pid = forkserver._forkserver._forkserver_pid
        if not pid:
            return 0.0
        with open(f"/proc/{pid}/stat", "rb") as fh:
            fields = fh.read().rsplit(b")", 1)[1].split()
        return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")   # cutime, cstime
    except (AttributeError, ImportError, OSError, IndexError, ValueError):
        return 0.0


def _cpu_seconds() -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime + _forkserver_children_cpu()


def _measured(item, when):
    wall, cpu = time.perf_counter(), _cpu_seconds()
    try:
        yield
    finally:
        item.stash.setdefault(_PHASES, {})[when] = (time.perf_counter() - wall, _cpu_seconds() - cpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item):
    yield from _measured(item, "setup")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    yield from _measured(item, "call")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item):
    yield from _measured(item, "teardown")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    mode = item.config.getoption("--slow-check")
    if mode == "off" or item.get_closest_marker("slow") is not None:
        return
    wall, cpu = item.stash.get(_PHASES, {}).get(call.when, (0.0, 0.0))
    if cpu > SLOW_CPU_S and mode == "fail" and rep.passed and call.when != "teardown":
        rep.outcome = "failed"
        rep.longrepr = (f"{item.nodeid}: its {call.when} used {cpu:.1f} s of CPU ({wall:.1f} s wall-clock), over "
                        f"the {SLOW_CPU_S:g} s a test not marked slow may take: mark it @pytest.mark.slow or make "
                        "it cheaper (see tests/conftest.py)")
    elif cpu > SLOW_CPU_S or wall > SLOW_WALL_S:
        _over_wall[item.nodeid, call.when] = (wall, cpu)


def pytest_terminal_summary(terminalreporter):
    if not _over_wall:
        return
    tr = terminalreporter
    tr.section("tests not marked slow that took over 3 s (wall-clock or CPU)")
    tr.write_line("CPU over 3 s fails a test (unless --slow-check=warn); wall-clock over 3 s with less CPU is "
                  "waiting -- on a child, a sleep or a busy machine: mark it slow if it waits on a quiet one")
    for (nodeid, when), (wall, cpu) in sorted(_over_wall.items(), key=lambda r: -r[1][0]):
        tr.write_line(f"{wall:6.1f} s wall {cpu:6.1f} s CPU  {when:8s} {nodeid}")
