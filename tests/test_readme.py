"""The README's plugin example is real: registered through an entry point, it runs."""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path

from helpers import SAMPLES, featx

README = Path(__file__).resolve().parent.parent / "README.md"


def test_plugin_example_registers_and_runs(tmp_path):
    text = README.read_text()
    section = text[text.index("## Writing an extractor plugin"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "__init__.py").write_text("")
    (tmp_path / "mypkg" / "lbp.py").write_text(code)
    dist = tmp_path / "lbp-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: lbp\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[featx.extractors]\nlbp = mypkg.lbp:LBP\n")
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = featx("list", env=env)
    assert any(l.startswith("lbp ") and "[lbp]" in l for l in r.stdout.decode().splitlines())
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "2", "-q", env=env)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode())))
    counts = [float(v) for v in rows[1][1:]]
    assert len(counts) == 10 and sum(counts) == 512 * 512  # every pixel has one uniform-LBP code
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "0", env=env)
    assert r.returncode == 2 and b"--radius" in r.stderr
