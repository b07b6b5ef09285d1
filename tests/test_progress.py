"""The progress bar (issue 15), read from a real pseudo-terminal: a total and a
percentage when the inputs can be counted, items (frames) rather than inputs so a
video moves while it is read, failures on lines of their own above the bar, a
count without a total for stdin lists, and a bar even where the pty reports a
size of 0 x 0."""
from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from helpers import SAMPLES, photo_crops


def run_in_pty(args, cwd, stdin: bytes | None = None, cols: int = 0, rows: int = 0) -> tuple[int, str]:
    """Run featx with stderr on a pty of ``cols`` x ``rows``; what it drew there, and the exit code."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    p = subprocess.Popen([sys.executable, "-m", "featx", *map(str, args)], cwd=cwd, stderr=slave,
                         stdout=subprocess.DEVNULL, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
    os.close(slave)
    if stdin is not None:
        p.stdin.write(stdin)
        p.stdin.close()
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    return p.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def frames_of(text: str) -> list[str]:
    """What the terminal showed, redraw by redraw."""
    return [part for part in re.split(r"[\r\n]", text) if part.strip()]


BAR = re.compile(r"(\d+)%\|.*\| *(\d+)/(\d+) \[")


@pytest.mark.slow  # a featx process on a pseudo-terminal
def test_a_folder_gets_a_total_percentage_and_eta_and_failures_on_their_own_lines(tmp_path):
    src = photo_crops(tmp_path / "in", 30, (320, 240))
    (src / "zz-broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    code, text = run_in_pty(["extract", "gabor", src, "-o", tmp_path / "g.npy", "-j", "1"], tmp_path)
    assert code == 1
    shown = frames_of(text)
    bars = [m for m in (BAR.search(s) for s in shown) if m]
    assert bars, text[-2000:]
    assert {int(m.group(3)) for m in bars} == {31}                      # the total: 31 images
    assert any(0 < int(m.group(2)) < 31 for m in bars)                   # it moved on the way
    assert any("images/s" in s for s in shown) and any(re.search(r"<\d\d:\d\d", s) for s in shown)  # ETA
    errors = [s for s in shown if "zz-broken.jpg" in s]
    assert errors and all(s.startswith("featx: error:") and "%|" not in s for s in errors), errors
    assert any("1 failed" in s for s in shown)


@pytest.mark.slow  # a featx process on a pseudo-terminal, reading a video
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_video_counts_frames_and_moves_while_it_is_read(tmp_path, jobs):
    code, text = run_in_pty(["extract", "gabor", SAMPLES / "clip.mp4", "-o", tmp_path / "v.npy", "-j", jobs,
                             "--max-frames", "24"], tmp_path, cols=100, rows=30)
    assert code == 0, text[-2000:]
    shown = frames_of(text)
    bars = [m for m in (BAR.search(s) for s in shown) if m]
    assert bars and {int(m.group(3)) for m in bars} == {24}, text[-1500:]   # frames, from the header
    assert any("frames/s" in s for s in shown)
    inside = {int(m.group(2)) for m in bars if 0 < int(m.group(2)) < 24}
    assert len(inside) >= 2, shown  # one input, and yet the bar moved frame by frame


def test_paths_on_stdin_are_counted_without_a_total(tmp_path):
    src = photo_crops(tmp_path / "in", 6, (160, 120))
    listing = "\n".join(str(p) for p in sorted(src.iterdir())).encode()
    code, text = run_in_pty(["extract", "gradients", "-", "-o", tmp_path / "g.npy"], tmp_path, stdin=listing)
    assert code == 0
    shown = frames_of(text)
    assert any(re.search(r"gradients: \d+ images \[", s) for s in shown), shown
    assert not any("%|" in s for s in shown)


def test_quiet_and_a_pipe_show_no_bar(tmp_path):
    src = photo_crops(tmp_path / "in", 3, (160, 120))
    code, text = run_in_pty(["extract", "gradients", src, "-o", tmp_path / "g.npy", "-q"], tmp_path)
    assert code == 0 and text.strip() == ""
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "gradients", str(src), "-o",
                        str(tmp_path / "h.npy")], capture_output=True)
    assert r.returncode == 0 and b"%|" not in r.stderr and b"images/s" not in r.stderr
