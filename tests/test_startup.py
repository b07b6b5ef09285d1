"""Start-up: what ``featx extract`` imports before its first image, and the distribution
reader (:mod:`featx.dists`) that spares it :mod:`importlib.metadata`.

Not timed (a timed test fails on a busy machine and passes a slow change on a quiet one):
the modules a run imports are looked at instead, and :mod:`featx.dists` is checked against
:mod:`importlib.metadata` itself, which it must agree with wherever it answers.
"""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from featx import dists, registry

from helpers import SAMPLES, fake_plugin

ROOT = Path(__file__).resolve().parent.parent

#: run the CLI as `featx ARGS` would, in this fresh interpreter, then list what it imported
RUN = """
import json, sys
from featx.cli.main import main
sys.argv = ["featx"] + json.loads(sys.argv[1])
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"rc": code, "modules": sorted(sys.modules)}))
"""


def _imported(args: list[str], cwd: Path) -> tuple[int, set[str]]:
    p = subprocess.run([sys.executable, "-c", RUN, json.dumps(args)], cwd=cwd, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    got = json.loads(p.stdout.splitlines()[-1])
    return got["rc"], set(got["modules"])


#: never needed by `featx extract hog` on photos at -j 1
NOT_FOR_HOG = ("importlib.metadata", "email", "zipfile", "onnxruntime", "featx.extractors.cnn", "featx.video",
               "concurrent.futures.process", "featx.cli.show", "featx.cli.info", "featx.cli.codebook",
               "featx.cli.pool", "featx.cli.segments", "featx.cli.htmlreport", "featx.pooling", "featx.report")


def test_a_hog_run_imports_only_what_it_uses(tmp_path):
    rc, mods = _imported(["extract", "hog", "coffee.jpg", "-o", str(tmp_path / "h.npy"), "--resize", "64x64",
                          "-q", "-j", "1"], SAMPLES)
    assert rc == 0 and (tmp_path / "h.npy").exists() and (tmp_path / "h.npy.featx.json").exists()
    assert "featx.extractors.hog" in mods and "featx.provenance" in mods   # the check can see a module
    assert not sorted(m for m in mods if m.split(".")[0] in NOT_FOR_HOG or m in NOT_FOR_HOG
                      or any(m.startswith(n + ".") for n in NOT_FOR_HOG))
    # and the sidecar still names the libraries' versions, as importlib.metadata gives them
    from importlib import metadata

    versions = json.loads((tmp_path / "h.npy.featx.json").read_text())["versions"]
    assert versions["numpy"] == metadata.version("numpy") and versions["click"] == metadata.version("click")


def test_featx_list_still_asks_importlib_metadata(tmp_path):
    """``featx list`` names each plugin's distribution (importlib.metadata knows it)."""
    rc, mods = _imported(["list"], SAMPLES)
    assert rc == 0 and "importlib.metadata" in mods


# ---------------------------------------------------------------------------
# featx.dists against importlib.metadata


def _agree(groups=("featx.extractors", "console_scripts")) -> None:
    from importlib import metadata

    for group in groups:
        assert [(e.name, e.value) for e in dists.entry_points(group)] == \
            [(e.name, e.value) for e in metadata.entry_points(group=group)], group
    names = {d.metadata["Name"] for d in metadata.distributions()} | {"not-installed-at-all", "OpenCV_Python.Headless"}
    for name in sorted(names):
        try:
            want = metadata.version(name)
        except metadata.PackageNotFoundError:
            want = None
        assert dists.version(name) == want, name


def test_dists_agree_with_importlib_metadata_here():
    _agree()


SHADOW = ("from featx.extractors.hog import HOG\n\n\nclass Shadow(HOG):\n"
          "    summary = 'a plugin that registers a built-in name'\n")


def test_a_plugin_that_shadows_a_builtin_still_wins(tmp_path, monkeypatch):
    """A distribution earlier on sys.path that registers ``hog`` is what ``featx extract
    hog`` runs, as importlib.metadata's order says (it did before featx.dists)."""
    fake_plugin(tmp_path, "shadowhog", {"hog": "shadow_hog_ext:Shadow", "zzextra": "shadow_hog_ext:Shadow"},
                {"shadow_hog_ext.py": SHADOW})
    # a distribution of no interest, with comments and other groups, and one without entry points
    info = tmp_path / "other_pkg-2.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Other.Pkg\nVersion: 2.0rc1\n\nbody: x\n")
    (info / "entry_points.txt").write_text("# comment\n[console_scripts]\nother = other_pkg:main\n\n"
                                           "[featx.extractors]\n")
    (tmp_path / "bare-0.1.dist-info").mkdir()
    (tmp_path / "bare-0.1.dist-info" / "METADATA").write_text("Name: bare\nVersion: 0.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    _agree()
    assert dists.version("other.pkg") == "2.0rc1"
    assert registry.get("hog").__name__ == "Shadow"
    assert registry.get("hog").summary == "a plugin that registers a built-in name"
    assert "zzextra" in registry.names()
    # featx list agrees (it reads importlib.metadata)
    assert {i.name: i.package for i in registry.discover()}["hog"] == "shadowhog"


def test_where_it_cannot_tell_importlib_metadata_answers(tmp_path, monkeypatch):
    """A zip on sys.path (or anything else it does not read as importlib.metadata would):
    :class:`featx.dists.Unknown`, and the registry asks importlib.metadata, which reads it."""
    from importlib import metadata

    z = tmp_path / "plugins.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("zipped-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: zipped\nVersion: 1.0\n")
        zf.writestr("zipped-1.0.dist-info/entry_points.txt", "[featx.extractors]\nzipped = zipped_ext:Z\n")
    monkeypatch.syspath_prepend(str(z))
    with pytest.raises(dists.Unknown):
        dists.entry_points("featx.extractors")
    with pytest.raises(dists.Unknown):
        dists.version("numpy")
    names = registry.names()
    assert "zipped" in names and names == sorted({e.name for e in metadata.entry_points(group="featx.extractors")})
    assert metadata.version("zipped") == "1.0"


def test_a_folded_or_odd_version_header_is_left_to_importlib(tmp_path, monkeypatch):
    info = tmp_path / "odd-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: odd\nVersion: 1.0\n  .post1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(dists.Unknown):
        dists.version("odd")
    assert dists.version("numpy")   # others still read


# ---------------------------------------------------------------------------
# workers forked from the main process start with its extractors

COUNTED = '''
import os
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec, param

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)

class Counted(Extractor):
    """Mean brightness; notes the process that built it."""
    name = "counted"
    summary = "A test extractor that says where it was built"
    Params = P
    def __init__(self, params=None):
        super().__init__(params)
        with open(os.environ["BUILT_LOG"], "a") as fh:
            fh.write(f"{os.getpid()}\\n")
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        return np.array([image.mean() * self.params.scale], np.float32)
'''


@pytest.mark.parametrize("start", ["fork", "forkserver"])
def test_forked_workers_use_the_extractors_their_parent_built(tmp_path, start):
    """``-j 2`` forked from the CLI: the extractor is built in the main process only (the
    workers are its copies); from a fork server each worker builds its own, as before.
    The rows are the same either way."""
    from helpers import featx_subprocess

    env = fake_plugin(tmp_path / "plug", "counted", {"counted": "counted_ext:Counted"}, {"counted_ext.py": COUNTED})
    log = tmp_path / "built.log"
    env.update(BUILT_LOG=str(log), FEATX_START_METHOD=start)
    photos = [SAMPLES / n for n in ("coffee.jpg", "chelsea.png", "astronaut.png", "camera.png")]
    p = featx_subprocess("extract", "counted", *photos, "-o", tmp_path / "c.csv", "-j", "2", "-q", env=env)
    assert p.returncode == 0, p.stderr
    pids = log.read_text().split()
    main = pids[0]   # (the main process builds first: to plan, and to describe the command)
    workers = [p for p in pids if p != main]
    assert len(workers) == (0 if start == "fork" else 2), pids
    assert len(set(workers)) == len(workers)
    assert len((tmp_path / "c.csv").read_text().splitlines()) == 5
