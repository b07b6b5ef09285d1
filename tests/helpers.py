"""Helpers for tests that run the real command line in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def featx(*args, cwd=None, stdin: bytes | None = None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``python -m featx ARGS``; returns the completed process (bytes stdout/stderr)."""
    e = dict(os.environ)
    e.pop("FEATX_CACHE_DIR", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "featx", *map(str, args)], cwd=cwd, input=stdin,
                          capture_output=True, env=e, timeout=timeout)


def write_rgb(path: Path, rgb: np.ndarray, **params) -> Path:
    """Write an RGB (or gray) uint8/uint16 array with OpenCV."""
    import cv2

    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    flags = []
    for k, v in params.items():
        flags += [getattr(cv2, k), v]
    assert cv2.imwrite(str(path), arr, flags)
    return path


PLUGIN = '''
import os, time
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec, param

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)

class Trouble(Extractor):
    """Hangs on images 33 pixels wide, kills its process on 34; mean brightness otherwise."""
    name = "trouble"
    summary = "A test extractor that misbehaves on purpose"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        if image.shape[1] == 33:
            time.sleep(600)
        if image.shape[1] == 34:
            os.kill(os.getpid(), 9)
        return np.array([image.mean() * self.params.scale], np.float32)


class Slow(Extractor):
    """8x8 grid of mean intensities, after a fixed pause (makes runs long enough to kill)."""
    name = "slow"
    summary = "A test extractor that takes its time"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (64,))
    def extract(self, image):
        import cv2
        time.sleep(0.02)
        if os.environ.get("SLOW_PROGRESS"):  # one byte per image done, for tests that act mid-run
            with open(os.environ["SLOW_PROGRESS"], "ab") as fh:
                fh.write(b".")
        g = image.mean(axis=2) if image.ndim == 3 else image
        return cv2.resize(g.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA).ravel() * self.params.scale
'''


def fake_plugin(root: Path, dist: str, extractors: dict[str, str], modules: dict[str, str] | None = None) -> dict:
    """An installed-looking plugin under ``root``: a ``DIST-1.0.dist-info`` registering
    ``extractors`` (name -> "module:Class") as featx entry points, plus ``modules``
    (relative path -> source).  Returns the environment that makes Python see it."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[featx.extractors]\n" + "".join(f"{k} = {v}\n" for k, v in extractors.items()))
    for rel, src in (modules or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(src)
    return {"PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def plugin_env(tmp_path: Path) -> dict:
    """PYTHONPATH with a test plugin package registering `trouble` and `slow`."""
    return fake_plugin(tmp_path / "plug", "trouble", {"trouble": "trouble_ext:Trouble", "slow": "trouble_ext:Slow"},
                       {"trouble_ext.py": PLUGIN})
