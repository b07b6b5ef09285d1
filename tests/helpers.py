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
