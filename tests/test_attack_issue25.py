"""Attacks on issue 25's new code: featx.dists (entry points and versions read without
importlib.metadata), the pool started before the outputs are opened, the commit's read-back
check in CRC parts on two threads (output/append.py), and video decoded ahead on a thread.

Each test here is an attack that once broke featx (or a cheap one not yet covered): the
rule for featx.dists is that whatever it answers equals importlib.metadata's answer."""
from __future__ import annotations

import errno
import os
import signal
import sys
import threading
import zlib

import pytest

from featx import dists, registry
from featx.output import append

from helpers import SAMPLES, fake_plugin, featx_subprocess


# ---------------------------------------------------------------------------
# featx.dists


NESTED = ("from featx.extractors.hog import HOG\n\n\nclass Outer:\n    class Inner(HOG):\n"
          "        name = 'nested'\n        summary = 'a class inside a class'\n")


@pytest.mark.parametrize("value", ["nested_ext:Outer..Inner", "nested_ext:.Outer.Inner", "nested_ext:Outer.Inner."])
def test_an_entry_point_with_empty_attribute_parts_loads_as_importlib_loads_it(tmp_path, monkeypatch, value):
    """importlib.metadata's ``EntryPoint.load`` skips empty parts of the attribute path
    (``mod:A..B`` is ``mod.A.B``); featx.dists' entry point must load the same object."""
    from importlib import metadata

    fake_plugin(tmp_path, "nestedplug", {"nested": value}, {"nested_ext.py": NESTED})
    monkeypatch.syspath_prepend(str(tmp_path))
    ours = next(e for e in dists.entry_points("featx.extractors") if e.name == "nested")
    theirs = next(e for e in metadata.entry_points(group="featx.extractors") if e.name == "nested")
    assert ours.load() is theirs.load()
    assert registry.get("nested").summary == "a class inside a class"


@pytest.mark.parametrize("text, why", [(b"[console_scripts]\ncaf\xe9 = cafe:main\n", "not UTF-8"),
                                      (b"[console_scripts]\ncafe cafe:main\n", "line 2 has no '='")])
def test_a_damaged_entry_points_file_is_a_clear_error(tmp_path, text, why):
    """An installed distribution whose entry_points.txt is not UTF-8 or has a line without
    ``=`` (importlib.metadata raises UnicodeDecodeError or ValueError for every look-up): a
    usage error naming the file, exit 2, not a traceback."""
    info = tmp_path / "latin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: latin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(text)
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for args in (["extract", "hog", "coffee.jpg", "-o", str(tmp_path / "h.npy"), "--resize", "32x32", "-q"],
                 ["list"]):
        r = featx_subprocess(*args, cwd=SAMPLES, env=env)
        err = r.stderr.decode()
        assert r.returncode == 2 and "Traceback" not in err, err
        assert str(info / "entry_points.txt") in err and why in err, err
    assert not (tmp_path / "h.npy").exists()


# ---------------------------------------------------------------------------
# output/append.py: the read-back check in CRC parts on two threads


def _parts_file(tmp_path, n=4, size=1 << 16):
    data = os.urandom(n * size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, [(size, zlib.crc32(data[i:i + size])) for i in range(0, n * size, size)]


@pytest.mark.parametrize("bad_part", [0, 3])   # read by the helper thread / by the caller
def test_a_read_error_in_either_half_of_the_check_is_raised_not_taken_for_a_change(tmp_path, monkeypatch, bad_part):
    """An I/O error while reading back what was written is that error (a disk error, exit
    74), whichever of the two threads met it: not "changed by another program", and no
    thread's traceback on stderr."""
    path, parts = _parts_file(tmp_path)
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    real = os.pread

    def pread(fd, n, off):
        if off // (1 << 16) == bad_part:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, n, off)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert append.parts_match(fd, 0, parts)
        monkeypatch.setattr(os, "pread", pread)
        with pytest.raises(OSError) as info:
            append.parts_match(fd, 0, parts)
        assert info.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert seen == []
    assert not [t for t in threading.enumerate() if t.name == "featx-verify"]


_EP = "[featx.extractors]\n{n} = mod_{n}:X\n"
_MD = "Metadata-Version: 2.1\nName: {n}\nVersion: {v}\n"
#: odd site-packages: each answer of featx.dists must be importlib.metadata's (or Unknown)
ODD = {
    "no METADATA": {"a/noname-1.0.dist-info/entry_points.txt": _EP.format(n="noname")},
    "egg-info file": {"a/legacy-0.3.egg-info": _MD.format(n="legacy", v="0.3")},
    "two spellings, one folder": {"a/Foo_Bar-1.0.dist-info/METADATA": _MD.format(n="Foo_Bar", v="1.0"),
                                  "a/Foo_Bar-1.0.dist-info/entry_points.txt": _EP.format(n="fb1"),
                                  "a/foo.bar-2.0.dist-info/METADATA": _MD.format(n="foo.bar", v="2.0"),
                                  "a/foo.bar-2.0.dist-info/entry_points.txt": _EP.format(n="fb2")},
    "one name in two folders": {"a/dup-1.0.dist-info/METADATA": _MD.format(n="dup", v="1.0"),
                                "a/dup-1.0.dist-info/entry_points.txt": _EP.format(n="d1"),
                                "b/dup-2.0.dist-info/METADATA": _MD.format(n="dup", v="2.0"),
                                "b/dup-2.0.dist-info/entry_points.txt": _EP.format(n="d2")},
    "bare .dist-info": {"a/.dist-info/METADATA": _MD.format(n="bare", v="1")},
    "upper-case suffix": {"a/UP-1.0.DIST-INFO/METADATA": _MD.format(n="UP", v="1.0"),
                          "a/UP-1.0.DIST-INFO/entry_points.txt": _EP.format(n="up")},
    "CRLF and CR": {"a/crlf-1.0.dist-info/METADATA": _MD.format(n="crlf", v="1.0").replace("\n", "\r\n"),
                    "a/crlf-1.0.dist-info/entry_points.txt": _EP.format(n="crlf").replace("\n", "\r\n"),
                    "a/cr-1.0.dist-info/METADATA": _MD.format(n="cr", v="1.0").replace("\n", "\r"),
                    "a/cr-1.0.dist-info/entry_points.txt": _EP.format(n="cr").replace("\n", "\r")},
    "BOM": {"a/bom-1.0.dist-info/METADATA": "\ufeff" + _MD.format(n="bom", v="1.0"),
            "a/bom-1.0.dist-info/entry_points.txt": "\ufeff" + _EP.format(n="bom")},
    "odd headers": {"a/lv-1.0.dist-info/METADATA": "Name: lv\nversion:1.0 \n",
                    "a/ev-1.0.dist-info/METADATA": "Name: ev\nVersion:\n",
                    "a/nv-1.0.dist-info/METADATA": "Name: nv\n",
                    "a/tv-1.0.dist-info/METADATA": "Name: tv\nVersion: 1\nVersion: 2\n",
                    "a/vb-1.0.dist-info/METADATA": "Name: vb\n\nVersion: 9\n",
                    "a/tab-1.0.dist-info/METADATA": "Name: tab\nVersion:\t1.0\t\n",
                    "a/uf-1.0.dist-info/METADATA": "From nobody\nName: uf\nVersion: 1\n",
                    "a/cf-1.0.dist-info/METADATA": ":x\nName: cf\nVersion: 1\n",
                    "a/cn-1.0.dist-info/METADATA": " x\nName: cn\nVersion: 1\n"},
    "odd line breaks in entry points": {"a/ff-1.0.dist-info/entry_points.txt": "[featx.extractors]\nff = m:X\x0cgg = m:Y\n",
                                        "a/nel-1.0.dist-info/entry_points.txt": "[featx.extractors]\nnl = m:X\x85hh = m:Y\n"},
    "odd sections": {"a/ss-1.0.dist-info/entry_points.txt": "[ featx.extractors ]\nss = m:X\n[featx.extractors]\n"
                                                            "ss2 = m : X [extra]\na = b = m:X\n[other]\no=1\n"
                                                            "[featx.extractors]\nss3 = m:Y\n"},
    "empty METADATA, METADATA a folder": {"a/em-1.0.dist-info/METADATA": "",
                                          "a/em-1.0.dist-info/PKG-INFO": "Name: em\nVersion: 7\n",
                                          "a/md-1.0.dist-info/METADATA/x": "",
                                          "a/md-1.0.dist-info/PKG-INFO": "Name: md\nVersion: 8\n"},
    "egg-info folder, no dash": {"a/eg.egg-info/PKG-INFO": "Name: eg\nVersion: 0.1\n",
                                 "a/eg.egg-info/entry_points.txt": _EP.format(n="eg"),
                                 "a/foo.baz.dist-info/METADATA": "Name: foo.baz\nVersion: 3\n",
                                 "a/foo.baz.dist-info/entry_points.txt": _EP.format(n="fz")},
    "x.y and x_y": {"a/x.y-1.dist-info/entry_points.txt": _EP.format(n="xy1"),
                    "a/x_y-2.dist-info/entry_points.txt": _EP.format(n="xy2")},
    "a .dist-info file": {"a/df-1.0.dist-info": _MD.format(n="df", v="1.0")},
}
_NAMES = ["noname", "legacy", "foo-bar", "Foo_Bar", "dup", "bare", "up", "crlf", "cr", "bom", "lv", "ev", "nv", "tv",
          "vb", "tab", "em", "md", "eg", "foo.baz", "FOO-baz", "uf", "cf", "cn", "x.y", "df", "", "numpy"]


def _answer(f):
    try:
        return ("ok", f())
    except Exception as exc:   # noqa: an error is an answer to compare too
        return ("error", type(exc).__name__)


@pytest.mark.parametrize("case", list(ODD))
def test_odd_site_packages_agree_with_importlib_metadata(tmp_path, monkeypatch, case):
    import warnings
    from importlib import metadata

    for rel, text in ODD[case].items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(text.encode())
    folders = [str(tmp_path / d) for d in ("a", "b") if (tmp_path / d).is_dir()]
    for order in (folders, folders[::-1]):
        with monkeypatch.context() as m:
            for f in reversed(order):
                m.syspath_prepend(f)
            for group in ("featx.extractors", "other"):
                try:
                    ours = ("ok", [(e.name, e.value) for e in dists.entry_points(group)])
                except dists.Unknown:
                    continue
                assert ours == _answer(lambda: [(e.name, e.value) for e in metadata.entry_points(group=group)])
            for name in _NAMES:
                try:
                    ours = ("ok", dists.version(name))
                except dists.Unknown:
                    continue

                def theirs():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")   # (3.11: a missing Version header warns)
                        try:
                            return metadata.version(name)
                        except metadata.PackageNotFoundError:
                            return None
                assert ours == _answer(theirs), (case, name)


# ---------------------------------------------------------------------------
# the pool started before the outputs are opened (engine/loop.py _prestart)

#: featx's CLI, with its pool workers held where they have not yet set their own signal
#: handlers (at the start of init_worker: a fork carries the main process's), and the main
#: process held after the early pool start until every worker is there: a run stopped at
#: that moment, deterministically
HELD = """
import glob, os, signal, sys, time
MAIN = os.getpid()
from featx.engine import loop
from featx.output import lock
real_drop, real_prestart, real_open = lock.drop_inherited, loop._prestart, loop.Output.open

def drop_inherited():   # a worker's start, its lifeline set, its signal handlers not yet
    if os.getpid() != MAIN:
        open(os.environ["READY"] + str(os.getpid()), "w").close()
        while True:
            time.sleep(0.05)
    return real_drop()

def ready():
    while len(glob.glob(os.environ["READY"] + "*")) < 2:
        time.sleep(0.01)

def prestart(*args, **kwargs):
    pool = real_prestart(*args, **kwargs)
    if pool is not None:
        ready()
        if os.environ["THEN"] == "interrupt as the pool start returns":   # Ctrl-C: the whole process group
            os.killpg(0, signal.SIGINT)
        while os.environ["THEN"] == "kill -9":   # (the test kills this process)
            time.sleep(0.05)
    return pool

def open_output(self, *args, **kwargs):
    if os.environ["THEN"] == "interrupt at output open":
        os.killpg(0, signal.SIGINT)
    return real_open(self, *args, **kwargs)

lock.drop_inherited = drop_inherited
loop._prestart = prestart
loop.Output.open = open_output
from featx.cli.main import main
sys.argv = ["featx"] + sys.argv[1:]
main()
"""


def _marked(mark: str) -> list[int]:
    from test_faults_workers import marked

    return marked(mark)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("then", ["lock refused", "interrupt at output open", "interrupt as the pool start returns",
                                  "kill -9"])
def test_a_run_stopped_while_its_early_workers_start_says_only_why(tmp_path, then):
    """-j 2 onto a new output starts its workers before the output is locked: when the lock
    is refused (exit 75) or Ctrl-C reaches the process group (exit 130) while the workers
    are still starting, the run says only that -- a worker stopped before it set its own
    signals printed a KeyboardInterrupt traceback (the main process's SIGTERM handler,
    carried over by the fork) -- and no process of the run is left; kill -9 of the main
    process then takes the starting workers with it."""
    import subprocess
    import time
    import uuid

    from featx.output.lock import OutputLock

    mark = uuid.uuid4().hex
    out = tmp_path / "h.npy"
    lock = OutputLock(str(tmp_path / ".h.npy.featx-lock"))
    if then == "lock refused":
        lock.acquire()
    env = {**os.environ, "FEATX_TEST_RUN": mark, "READY": str(tmp_path / "ready-"), "THEN": then}
    env.pop("FEATX_CACHE_DIR", None)
    cmd = [sys.executable, "-c", HELD, "extract", "hog", "coffee.jpg", "rocket.jpg", "-o", str(out), "-j", "2",
           "--resize", "32x32", "-q"]
    try:
        if then == "kill -9":
            p = subprocess.Popen(cmd, cwd=SAMPLES, env=env, stderr=subprocess.PIPE, start_new_session=True)
            while len(list(tmp_path.glob("ready-*"))) < 2 and p.poll() is None:
                time.sleep(0.01)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
            p.stderr.close()
            from test_faults_workers import wait_gone

            wait_gone(mark)   # (fails past 2 s)
        else:
            # a shell that starts the suite in the background (CI, nohup, `&` without job control)
            # ignores SIGINT, its children inherit that, and Python then rightly leaves Ctrl-C
            # ignored: the run here must start as from a terminal, where Ctrl-C interrupts
            p = subprocess.run(cmd, cwd=SAMPLES, env=env, capture_output=True, timeout=30, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    finally:
        if then == "lock refused":
            lock.release()
        left = _marked(mark)
        for pid in left:
            os.kill(pid, signal.SIGKILL)
    assert len(list(tmp_path.glob("ready-*"))) == 2 and left == []
    if then == "kill -9":
        return
    err = p.stderr.decode()
    assert p.returncode == (75 if then == "lock refused" else 130), err
    assert err.strip() and all(line.startswith(("featx:", "  hint:")) for line in err.splitlines() if line), err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert left == []


# ---------------------------------------------------------------------------
# output/append.py: early writeback (sync_file_range)


@pytest.mark.parametrize("err", [errno.ENOSYS, errno.EINVAL, errno.EIO])
def test_writeback_that_fails_is_only_a_lost_hint(tmp_path, monkeypatch, err):
    """start_writeback is a head start for the commit's fsync and promises nothing: where
    sync_file_range fails (a filesystem or kernel without it, simulated by raising), the
    run writes the same bytes as with it and says nothing about it (the fsync reports
    real errors)."""
    import numpy as np

    from helpers import featx

    args = ["extract", "hog", str(SAMPLES / "coffee.jpg"), str(SAMPLES / "rocket.jpg"), "--resize", "64x64", "-q",
            "-j", "1"]
    ref = featx(*args, "-o", str(tmp_path / "ref.npy"))
    assert ref.returncode == 0

    def boom(*a):
        raise OSError(err, os.strerror(err))
    monkeypatch.setattr(append, "_sync_range", boom)
    monkeypatch.setattr(append.Writer, "WRITEBACK", 1)   # the writer thread's calls too
    r = featx(*args, "-o", str(tmp_path / "h.npy"))
    assert r.returncode == 0 and r.stderr == b"", r.stderr.decode()[-800:]
    assert (tmp_path / "h.npy").read_bytes() == (tmp_path / "ref.npy").read_bytes()
    assert np.load(tmp_path / "h.npy").shape[0] == 2


# ---------------------------------------------------------------------------
# videoahead.py: a video decoded ahead on a thread


def _video_run(path, **kw):
    from featx.video import VideoError, iter_video

    got, err = [], None
    try:
        for f in iter_video(path, threads=1, **kw):
            got.append(f)
    except VideoError as exc:
        err = exc
    return got, err


@pytest.mark.parametrize("kw", [{"fps": 2}, {"fps": 7.5, "start": 0.3}, {"fps": 1000, "max_frames": 9}])
@pytest.mark.parametrize("damage", ["none", "zeroed middle"])
def test_decoding_ahead_with_fps_sampling_and_a_damaged_middle_gives_the_same_frames_and_error(tmp_path, kw, damage):
    """--fps sampling (frames grabbed, not converted, between the sampled ones) and a video
    whose middle is zeroed (it stops there: "truncated"): the same frames, the same error
    after them, whoever decodes; no decoding thread is left."""
    import numpy as np

    path = SAMPLES / "clip.mp4"
    if damage != "none":
        data = bytearray(path.read_bytes())
        data[len(data) // 3:len(data) // 3 + 5000] = bytes(5000)
        path = tmp_path / "damaged.mp4"
        path.write_bytes(data)
    plain, err = _video_run(path, **kw)
    ahead, err2 = _video_run(path, ahead=True, **kw)
    assert plain and [(f.index, f.time) for f in ahead] == [(f.index, f.time) for f in plain]
    assert all(np.array_equal(a.image, b.image) for a, b in zip(ahead, plain))
    # (max_frames stops on purpose, before the damage: nothing is checked then)
    assert (err is None) == (err2 is None) == (damage == "none" or "max_frames" in kw)
    if err is not None:
        assert (str(err2), err2.reason, err2.frames_read, err2.frames_yielded) == \
            (str(err), err.reason, err.frames_read, err.frames_yielded)
    assert not [t for t in threading.enumerate() if t.name == "featx-video-decode"]


def test_without_the_path_finder_importlib_metadata_answers(monkeypatch):
    """importlib.metadata finds distributions through the finders on sys.meta_path: where the
    standard PathFinder is not there (an embedding, a frozen application's own importer), it
    finds none on sys.path, and featx.dists must not answer from sys.path either."""
    import importlib.machinery
    from importlib import metadata

    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if f is not importlib.machinery.PathFinder])
    want = [(e.name, e.value) for e in metadata.entry_points(group="featx.extractors")]
    try:
        assert [(e.name, e.value) for e in dists.entry_points("featx.extractors")] == want
    except dists.Unknown:
        pass
    try:
        assert dists.version("numpy") is None
    except dists.Unknown:
        pass


def _boom_class(fail_at: dict):
    from featx.extractors.hog import HOG

    class Boom(HOG):
        calls = 0

        def extract(self, image):
            Boom.calls += 1
            exc = fail_at.get(Boom.calls)
            if exc is not None:
                raise exc
            return super().extract(image)
    return Boom


@pytest.mark.parametrize("stop", ["frames fail", "Ctrl-C in the extractor"])
def test_an_extractor_failing_while_the_video_is_decoded_ahead(tmp_path, sample, stop):
    """The worker's extractor raises on some frames (each is a failed row) or is interrupted
    while the thread holds frames ahead: the same rows, errors and interruption as without
    the thread, and no decoding thread is left."""
    from featx import registry
    from featx.engine.executors import InProcess
    from featx.engine.worker import Job, Task
    from featx.extractor import params_to_dict
    from featx.extractors.hog import HOG
    from featx.inputs import Input
    from featx.output.sinkbase import RawEncoder

    from test_video import make_frames, write_video

    path = write_video(tmp_path / "v.avi", make_frames(sample, 30), 10.0, "FFV1")
    fail_at = {5: ValueError("boom 5"), 6: ValueError("boom 6"), 40: ValueError("boom 40")}
    if stop != "frames fail":
        fail_at[9] = KeyboardInterrupt()

    def run(ahead):
        Boom = _boom_class(fail_at)
        ext = Boom.create()
        job = Job(tasks=(Task(target=registry.target_of(HOG), params=params_to_dict(ext.params), resize=(64, 64),
                              encoder=RawEncoder()),), source_options={})
        ip = InProcess(job, [ext])
        ip.worker.ahead = ahead
        got = []
        try:
            for _, recs, payloads in ip.results([Input(str(path), kind="video", mirror="v"),
                                                 Input(str(path), kind="video", mirror="w")]):
                got.append(([(r.key, r.shape, r.error) for rs in recs[0] for r in rs], payloads[0]))
        except KeyboardInterrupt:
            got.append("interrupted")
        return got
    plain, ahead = run(False), run(True)
    assert ahead == plain
    if stop == "frames fail":
        assert [r[2] for r in plain[0][0] if r[2]][:2] == ["ValueError: boom 5", "ValueError: boom 6"]
    else:
        assert plain[-1] == "interrupted"
    assert not [t for t in threading.enumerate() if t.name == "featx-video-decode"]
