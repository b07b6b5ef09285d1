"""benchmarks/plain_photos.py, the reference loop of ``bench_photos.py --overnight``, computes
exactly what ``featx extract hog+cnn FOLDER -o OUT/ --resize 256x256`` writes: the benchmark's
ratios compare the same work, so its numbers must be featx's, to the byte."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import camera_jpeg, featx, ok

PLAIN = Path(__file__).resolve().parent.parent / "benchmarks" / "plain_photos.py"


@pytest.mark.parametrize("fast_jpeg", ["1", "0"], ids=["simplejpeg", "opencv"])
def test_plain_loop_writes_featx_numbers(tmp_path, monkeypatch, fast_jpeg):
    from featx import decode

    folder = tmp_path / "photos"
    folder.mkdir()
    # decoded at 1/8 (263x256), 1/2 and in full: the reduction rule's edge and its ends
    camera_jpeg(folder / "a.jpg", "coffee.jpg", size=(2100, 2048), seed=1)
    camera_jpeg(folder / "b.jpg", "astronaut.png", size=(1100, 800), seed=2)
    camera_jpeg(folder / "c.jpg", "chelsea.png", size=(451, 300), seed=3)
    monkeypatch.setattr(decode, "FAST_JPEG", fast_jpeg == "1")
    ok(featx("extract", "hog+cnn", folder, "-o", f"{tmp_path / 'featx'}/", "--resize", "256x256", "-j", "1", "-q"))
    env = {**os.environ, "FEATX_FAST_JPEG": fast_jpeg}
    subprocess.run([sys.executable, str(PLAIN), str(folder), str(tmp_path / "plain")], check=True, env=env)
    for name, shape in (("hog", (3, 72900)), ("cnn", (3, 1280))):
        ours, plain = np.load(tmp_path / "featx" / f"{name}.npy"), np.load(tmp_path / "plain" / f"{name}.npy")
        assert ours.shape == shape and ours.dtype == np.float32
        assert plain.dtype == np.float32 and np.array_equal(ours, plain), name
