"""Checks added after a mutation-testing pass (see /work/notes/mutants.md): each one
fails under a planted bug that the rest of the suite let through."""
from __future__ import annotations

import csv
import os
import shutil

from helpers import SAMPLES, featx, ok

from featx.inputs import Canonical
from featx.names import escape_name, unescape_name
from featx.video import select_frames


def test_frame_folder_times_are_index_over_frame_rate_not_rounded():
    """select_frames' docstring: ``time`` is ``index / frame_rate``.  At 30 fps the
    times are not round milliseconds; rounding them (to 0.033 s) changes the time
    column and the ``--fps`` sampling built on it."""
    refs = select_frames([f"f{i:03d}.png" for i in range(61)], frame_rate=30.0)
    assert [r.index for r in refs] == list(range(61))
    assert [r.time for r in refs] == [i / 30.0 for i in range(61)]


def test_a_symlinked_file_is_canonical_as_its_target(tmp_path):
    """Canonical: ``link-to-p`` and ``p`` are one input - also for a link to a file
    (not only to a folder, which test_habits covers)."""
    real = tmp_path / "photos" / "coffee.jpg"
    real.parent.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", real)
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "shortcut.jpg"
    os.symlink(real, link)
    assert Canonical()(str(link)) == os.path.realpath(real)


def test_a_file_and_a_link_to_it_are_one_row(tmp_path):
    real = tmp_path / "photos" / "coffee.jpg"
    real.parent.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", real)
    os.symlink(real, tmp_path / "shortcut.jpg")
    out = tmp_path / "g.csv"
    ok(featx("extract", "gradients", real, "-o", out, "-q"))
    r = ok(featx("extract", "gradients", tmp_path / "shortcut.jpg", "-o", out))
    assert b"0 processed, 1 up to date" in r.stderr, r.stderr
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert [row[rows[0].index("path")] for row in rows[1:]] == [os.path.realpath(real)]


def test_the_name_escape_doubles_backslashes_so_it_reverses():
    """names.escape_name: ``\\`` is written as ``\\\\``; otherwise a real file named
    ``a\\xff.jpg`` (backslash, x, f, f) reads back as the undecodable byte 0xFF."""
    for name in ["a\\b.jpg", "a\\xff.jpg", "caf\udce9\\x41.png", "\\\\share\\x.jpg"]:
        text = escape_name(name)
        assert text.encode("utf-8")  # valid UTF-8
        assert unescape_name(text) == name, (name, text)
    assert escape_name("a\\b.jpg") == "a\\\\b.jpg"
    assert escape_name("a\\xff.jpg") != escape_name("a\udcff.jpg")


_LAGGARD = '''
import time
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec

@dataclass(frozen=True)
class P:
    pass

class Laggard(Extractor):
    """Mean brightness; an image 41 pixels wide takes 0.4 s, one 42 wide 1.2 s."""
    name = "laggard"
    summary = "A test extractor whose first input is slow"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        if image.shape[1] in (41, 42):
            time.sleep(0.4 if image.shape[1] == 41 else 1.2)
        return np.array([image.mean()], np.float32)
'''


def test_rows_keep_input_order_when_a_later_chunk_finishes_first(tmp_path):
    """Results are in input order whatever ``-j`` is.  Chunks are 4 inputs: with ``-j 3``
    the first chunk takes 0.4 s and the second 1.2 s, so when the first comes back the
    third and later ones are done and the second is not: taking chunks as they complete
    (not in order) puts the third chunk's rows before the second's."""
    import numpy as np

    from helpers import fake_plugin, featx_subprocess, write_rgb

    env = fake_plugin(tmp_path / "plug", "laggard", {"laggard": "laggard_ext:Laggard"},
                      {"laggard_ext.py": _LAGGARD})
    src = tmp_path / "in"
    src.mkdir()
    rng = np.random.default_rng(0)
    n = 24
    for i in range(n):
        w = {0: 41, 4: 42}.get(i, 40)
        write_rgb(src / f"{i:02d}.png", rng.integers(0, 256, (30, w, 3), dtype=np.uint8))
    out = tmp_path / "o.csv"
    r = featx_subprocess("extract", "laggard", src, "-o", out, "-j", "3", "-q", env=dict(os.environ, **env))
    assert r.returncode == 0, r.stderr
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    names = [os.path.basename(row[rows[0].index("path")]) for row in rows[1:]]
    assert names == [f"{i:02d}.png" for i in range(n)]
