"""``--executor ray``: same bytes as a local run, clean stdout, retried and isolated failures.

A local Ray with 2 CPUs is started once for the module (as a cluster would be:
the CLI runs join it with ``--ray-address``); one test lets the CLI start its
own local Ray, as it does without an address.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, fake_plugin, featx_subprocess

SMALL = ["--resize", "96x64", "-q"]

PLUGIN = '''
import os, time
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec, param

MARKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "crashed-once")

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)

class Flaky(Extractor):
    """Hangs on images 33 pixels wide, kills its process on 34 (always) and on 35 (the first
    time only); mean brightness otherwise."""
    name = "flaky"
    summary = "A test extractor that misbehaves on purpose"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        w = image.shape[1]
        if w == 33:
            time.sleep(600)
        if w == 34 or (w == 35 and not os.path.exists(MARKER)):
            if w == 35:
                open(MARKER, "w").close()
            os.kill(os.getpid(), 9)
        return np.array([image.mean() * self.params.scale], np.float32)

class Picky(Flaky):
    """Refuses to be built anywhere but in the test's own process (as on a node without the plugin)."""
    name = "picky"
    def __init__(self, params):
        if not os.environ.get("PICKY_HERE"):
            raise ModuleNotFoundError("No module named 'picky_dependency'")
        super().__init__(params)

class Doomed(Flaky):
    """Kills its process as it is built anywhere but in the test's own process (a native library
    that does not start there)."""
    name = "doomed"
    def __init__(self, params):
        if not os.environ.get("PICKY_HERE"):
            os._exit(3)
        super().__init__(params)
'''


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local 2-CPU Ray whose workers can import the ``flaky`` test plugin."""
    import ray

    plug = tmp_path_factory.mktemp("plug")
    fake_plugin(plug, "flaky", {"flaky": "flaky_ext:Flaky"}, {"flaky_ext.py": PLUGIN})
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(plug) + (os.pathsep + old if old else "")  # inherited by Ray's workers
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    sys.path.insert(0, str(plug))
    try:
        yield {"address": ray.get_runtime_context().gcs_address, "plugin": plug}
    finally:
        sys.path.remove(str(plug))
        ray.shutdown()


def photos(folder: Path, n: int) -> Path:
    """n distinct real photos of different sizes (crops of the samples)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    imgs = [cv2.imread(str(SAMPLES / s)) for s in ("astronaut.png", "coffee.jpg", "rocket.jpg", "chelsea.png")]
    for i in range(n):
        p = imgs[i % 4]
        y, x = (i * 11) % 50, (i * 17) % 70
        cv2.imwrite(str(folder / f"img{i:03d}.png"), p[y:y + 120 + i, x:x + 150 + 2 * i])
    return folder


def output_files(out: Path) -> dict[str, bytes]:
    """What a reader sees of an output (a folder's files, or NAME.* beside a file), not the sidecar."""
    if out.is_dir():
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    return {p.name: p.read_bytes() for p in sorted(out.parent.glob(out.stem + ".*"))
            if not p.name.endswith(".featx.json")}


@pytest.mark.slow  # starts the module's local Ray
def test_a_recipe_on_ray_writes_what_it_writes_locally(tmp_path, cluster):
    """Three outputs (npy, csv, npy-dir) in one pass on Ray actors, with a crash that the
    actors retry: the same bytes as the recipe run locally with -j 1."""
    src = photos(tmp_path / "in", 10)
    outs = [("hog", "h.npy", "64x48"), ("gradients", "g.csv", "96x64"), ("gradients", "d/", "32x32")]
    for where in ("local", "ray"):
        (tmp_path / where).mkdir()
        lines = [f'inputs = ["{src}"]']
        for name, fname, size in outs:
            lines += ["[[output]]", f'extractor = "{name}"', f'path = "{where}/{fname}"', f'resize = "{size}"']
        (tmp_path / f"{where}.toml").write_text("\n".join(lines) + "\n")
    r = featx_subprocess("run", tmp_path / "local.toml", "-j", "1", "-q")
    assert r.returncode == 0, r.stderr
    r = featx_subprocess("run", tmp_path / "ray.toml", "-j", "2", "-q", "--executor", "ray", "--ray-address", cluster["address"])
    assert r.returncode == 0, r.stderr
    for _, fname, _ in outs:
        expected = output_files(tmp_path / "local" / fname.rstrip("/"))
        assert expected and output_files(tmp_path / "ray" / fname.rstrip("/")) == expected, fname


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["npy", "csv", "npy-dir"])
def test_output_is_byte_identical_to_a_local_run(tmp_path, cluster, fmt):
    src = photos(tmp_path / "in", 14)
    name = {"npy": "h.npy", "csv": "h.csv", "npy-dir": "h/"}[fmt]
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    r = featx_subprocess("extract", "hog", src, "-o", f"{tmp_path}/local/{name}", *SMALL, "-j", "1")
    assert r.returncode == 0, r.stderr
    r = featx_subprocess("extract", "hog", src, "-o", f"{tmp_path}/ray/{name}", *SMALL, "-j", "2",
              "--executor", "ray", "--ray-address", cluster["address"], "--summary-json", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    expected = output_files(tmp_path / "local" / name.rstrip("/"))
    got = output_files(tmp_path / "ray" / name.rstrip("/"))
    assert len(expected) >= (14 if fmt == "npy-dir" else 1)
    assert got == expected
    leftovers = [p.name for p in (tmp_path / "ray").iterdir() if "tmp" in p.name or "spool" in p.name]
    assert leftovers == []
    if fmt == "npy":
        # a re-run on Ray is incremental like a local one
        import json

        r = featx_subprocess("extract", "hog", src, "-o", f"{tmp_path}/ray/{name}", *SMALL, "--executor", "ray",
                  "--ray-address", cluster["address"], "--summary-json", tmp_path / "s.json")
        s = json.loads((tmp_path / "s.json").read_text())
        assert r.returncode == 0 and (s["processed"], s["up_to_date"]) == (0, 14)
        assert output_files(tmp_path / "ray" / name) == expected


@pytest.mark.slow
def test_own_local_ray_keeps_stdout_data_only(tmp_path, cluster):
    """Without --ray-address the CLI starts (and stops) its own Ray.  Nothing of Ray reaches
    stdout, not even the messages Ray's driver prints when a worker dies."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    img = cv2.imread(str(SAMPLES / "rocket.jpg"))
    for name, w in (("a", 40), ("c", 41), ("e", 42)):
        cv2.imwrite(str(src / f"{name}.png"), img[100:160, 200:200 + w])
    env = {"PYTHONPATH": str(cluster["plugin"]) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    local = featx_subprocess("extract", "flaky", src, "-o", "-", "-j", "1", env=env)
    assert local.returncode == 0, local.stderr
    assert local.stdout.count(b"\n") == 4
    cv2.imwrite(str(src / "d-crash.png"), img[100:160, 200:234])  # kills every worker it is sent to
    t = time.monotonic()
    r = featx_subprocess("extract", "flaky", src, "-o", "-", "-j", "2", "--executor", "ray", env=env)
    assert time.monotonic() - t < 60
    assert r.returncode == 1, r.stderr
    assert r.stdout == local.stdout
    err = [line for line in r.stderr.decode().splitlines() if line.strip()]
    assert any(line.endswith("d-crash.png: the worker process crashed on this input") for line in err), err
    assert all(line.startswith("featx: ") for line in err), err  # no Ray chatter on stderr either


@pytest.mark.slow
def test_worker_deaths_are_retried_and_bad_inputs_fail_alone(tmp_path, cluster):
    """A worker killed once is retried transparently; an input that always kills its worker, or
    hangs past --timeout, fails alone; everything else is written, in order."""
    import cv2

    from featx import inputs, registry
    from featx.engine import loop as pipeline
    from featx.output import sinks

    src = tmp_path / "in"
    src.mkdir()
    img = cv2.imread(str(SAMPLES / "coffee.jpg"))
    widths = (("a", 40), ("b-hang", 33), ("c", 41), ("d-crash", 34), ("e", 42), ("f-once", 35), ("g", 43))
    for name, w in widths:
        cv2.imwrite(str(src / f"{name}.png"), img[:30, :w])
    ext = registry.load_target("flaky_ext:Flaky").create()
    out = tmp_path / "t.csv"
    sink = sinks.make_sink(str(out), None)
    failures = []
    from featx.plan import Plan

    how = Plan(outputs=(), jobs=2, timeout=2.0, executor="ray")  # the engine reads a plan's run options
    t = time.monotonic()
    (summary,) = pipeline.run([pipeline.Target(ext, sink)], inputs.enumerate_inputs([str(src)]), how, chunk=1,
                              on_failure=lambda f, outs: failures.append(f))
    assert time.monotonic() - t < 45
    why = {Path(f.path).stem: f.reason for f in failures}
    assert why == {"b-hang": "timed out after 2 s", "d-crash": "the worker process crashed on this input"}
    assert (cluster["plugin"] / "crashed-once").exists()  # f-once did kill its worker, and was retried
    rows = out.read_text().splitlines()[1:]
    assert [Path(line.split(",")[0]).stem for line in rows] == ["a", "c", "e", "f-once", "g"]
    for line in rows:  # the numbers, too
        w = dict(widths)[Path(line.split(",")[0]).stem]
        assert np.float32(line.split(",")[1]) == np.float32(img[:30, :w][:, :, ::-1].mean())
    assert summary.processed == 5 and len(summary.failed) == 2


def test_missing_ray_is_a_usage_error_with_a_hint(tmp_path, monkeypatch):
    from featx.errors import UsageError
    from featx.engine.ray import import_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(UsageError) as e:
        import_ray()
    assert e.value.message == "--executor ray needs Ray" and e.value.hint == "pip install 'featx[ray]'"
    # end to end: a Python where ray cannot be imported
    shadow = tmp_path / "shadow" / "ray"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    src = photos(tmp_path / "in", 1)
    r = featx_subprocess("extract", "hog", src, "-o", tmp_path / "h.npy", "--executor", "ray",
              env={"PYTHONPATH": str(shadow.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")})
    assert r.returncode == 2
    assert b"--executor ray needs Ray" in r.stderr and b"pip install 'featx[ray]'" in r.stderr
    assert r.stdout == b"" and not (tmp_path / "h.npy").exists()


def _run_on_cluster(tmp_path, target: str, out: str, error: type):
    """Run the extractor ``target`` (built here) on 3 photos with Ray's workers; it must stop
    with ``error`` and write nothing.  Returns the error and the seconds it took."""
    from featx import inputs, registry
    from featx.engine import loop as pipeline
    from featx.output import sinks
    from featx.plan import Plan

    ext = registry.load_target(target).create()
    src = photos(tmp_path / "in", 3)
    sink = sinks.make_sink(str(tmp_path / out), None)
    t = time.monotonic()
    with pytest.raises(error) as e:
        pipeline.run([pipeline.Target(ext, sink)], inputs.enumerate_inputs([str(src)]),
                     Plan(outputs=(), jobs=2, executor="ray"))
    assert not (tmp_path / out).exists()
    return e.value, time.monotonic() - t


@pytest.mark.slow
def test_workers_that_cannot_build_the_extractor_stop_the_run_at_once(tmp_path, cluster, monkeypatch):
    from featx.errors import FeatxError

    monkeypatch.setenv("PICKY_HERE", "1")  # this process can build it; the cluster's workers cannot
    err, took = _run_on_cluster(tmp_path, "flaky_ext:Picky", "p.csv", FeatxError)
    assert took < 30
    assert "picky_dependency" in err.message and "every node" in err.hint


@pytest.mark.slow
def test_workers_killed_as_they_build_the_extractor_stop_the_run(tmp_path, cluster, monkeypatch):
    """An actor whose process dies as it builds the extractor: Ray restarted an actor whose
    constructor died for ever (the run hung); the build is the actor's first task, retried
    a few times, and the run stops with the reason."""
    from featx.errors import WorkerStartError

    monkeypatch.setenv("PICKY_HERE", "1")  # this process can build it; the cluster's workers cannot
    err, took = _run_on_cluster(tmp_path, "flaky_ext:Doomed", "d.csv", WorkerStartError)
    assert took < 60
    assert "a worker process died while building it" in err.message


def test_actor_hands_back_bytes_by_spool_file_or_object_store(tmp_path):
    """An actor writes its batch's bytes to the spool file when it can see the run's spool
    folder (same node or shared storage), else returns them (for the object store); the two
    carry the same bytes.  Run in this process: the actor class itself, no Ray needed."""
    from featx import registry
    from featx.api import open_extractor
    from featx.extractor import params_to_dict
    from featx.inputs import Input
    from featx.engine.worker import Job, Task, Worker as _Worker
    from featx.engine.ray import _RayWorker
    from featx.output.sinks import RawEncoder

    src = photos(tmp_path / "in", 3)
    ex = open_extractor("hog")
    job = Job(tasks=(Task(target=registry.target_of(type(ex)), params=params_to_dict(ex.params), resize=(96, 64),
                          encoder=RawEncoder()),))
    actor = object.__new__(_RayWorker)  # without its process set-up (one thread, allocator)
    actor.worker = _Worker(job)
    inputs = [Input(str(p)) for p in sorted(src.iterdir())]

    (tmp_path / "spool").mkdir()
    (recs,), (spool,), _ = actor.run(inputs, str(tmp_path / "spool" / "ray-1.bin"))
    assert spool == str(tmp_path / "spool" / "ray-1.bin.0")   # output 0's rows
    on_disk = Path(spool).read_bytes()
    sizes = [r.nbytes for rs in recs for r in rs]
    assert len(sizes) == 3 and all(n > 0 for n in sizes) and len(on_disk) == sum(sizes)

    for where in (str(tmp_path / "not-here" / "ray-2.bin"), None):  # another node's folder, or none
        (recs2,), (array,), _ = actor.run(inputs, where)
        assert [r.nbytes for rs in recs2 for r in rs] == sizes
        assert array.tobytes() == on_disk
    assert not (tmp_path / "not-here").exists()
