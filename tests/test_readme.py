"""The README's plugin example is real: registered through an entry point, it runs."""
from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from helpers import SAMPLES, fake_plugin, featx

README = Path(__file__).resolve().parent.parent / "README.md"


def test_plugin_example_registers_and_runs(tmp_path):
    text = README.read_text()
    section = text[text.index("## Writing an extractor plugin"):]
    code = re.findall(r"```python\n(.*?)```", section, re.S)[0]
    env = fake_plugin(tmp_path, "lbp", {"lbp": "mypkg.lbp:LBP"}, {"mypkg/__init__.py": "", "mypkg/lbp.py": code})
    r = featx("list", env=env)
    assert any(l.startswith("lbp ") and "[lbp]" in l for l in r.stdout.decode().splitlines())
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "2", "-q", env=env)
    assert r.returncode == 0, r.stderr
    rows = list(csv.reader(io.StringIO(r.stdout.decode())))
    counts = [float(v) for v in rows[1][1:]]
    assert len(counts) == 10 and sum(counts) == 512 * 512  # every pixel has one uniform-LBP code
    r = featx("extract", "lbp", SAMPLES / "camera.png", "-o", "-", "--radius", "0", env=env)
    assert r.returncode == 2 and b"--radius" in r.stderr
