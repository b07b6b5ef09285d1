"""A frame folder (``--frames``) is redone when any of its frames changes, not only the
last one or the newest: its identity covers every frame (name, size, modification time,
inode), so a rewritten frame of the same byte size is seen however its time was set."""
from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import SAMPLES, featx_inprocess, ok


def _frames(folder: Path, n: int = 4) -> list[Path]:
    """n BMP frames (a BMP's size depends only on its dimensions): crops of a photo."""
    folder.mkdir(parents=True)
    photo = cv2.imread(str(SAMPLES / "astronaut.png"))
    paths = []
    for i in range(n):
        p = folder / f"frame{i}.bmp"
        assert cv2.imwrite(str(p), photo[i * 20:i * 20 + 64, i * 30:i * 30 + 80])
        paths.append(p)
    # distinct, increasing times, as a camera writes them: the last frame is the newest
    base = 1_700_000_000_000_000_000
    for i, p in enumerate(paths):
        os.utime(p, ns=(base + i * 10**9, base + i * 10**9))
    return paths


def _run(root: Path, out: Path, *extra) -> bytes:
    r = ok(featx_inprocess("extract", "gradients", root, "--frames", "-j", "1", "-q", "-o", out, *extra))
    return r.stderr


def _rewrite(path: Path, *, keep_inode: bool) -> None:
    """The same frame with other pixels, same byte size."""
    img = cv2.imread(str(path))
    changed = np.ascontiguousarray(img[::-1])  # upside down
    if keep_inode:
        ok_, buf = cv2.imencode(".bmp", changed)
        with open(path, "r+b") as fh:          # in place: same inode
            fh.write(buf.tobytes())
            fh.truncate()
    else:
        tmp = path.with_name(".tmp-" + path.name)   # a new file renamed over it
        assert cv2.imwrite(str(tmp.with_suffix(".bmp")), changed)
        os.replace(tmp.with_suffix(".bmp"), path)


def _fresh(root: Path, tmp_path: Path, name: str) -> np.ndarray:
    out = tmp_path / name
    _run(root, out)
    return np.load(out)


@pytest.mark.parametrize("how", ["now", "older-time", "same-time-new-file"])
def test_rewritten_non_last_frame_is_redone(tmp_path, how):
    """Frame 1 of 4 rewritten at the same byte size: with a new time (the usual case),
    with an older time than the newest frame's (restored from a backup with its time,
    ``cp -p``, ``rsync -t``), or as a new file given the old file's very time (written
    beside and renamed over, ``rsync -t``).  The next run redoes the folder: the output
    equals a fresh run's on the changed folder."""
    root = tmp_path / "clips"
    frames = _frames(root / "seq")
    out = tmp_path / "grad.npy"
    _run(root, out)
    before = np.load(out)
    target = frames[1]
    st = target.stat()
    size = st.st_size
    if how == "now":
        _rewrite(target, keep_inode=True)
    elif how == "older-time":
        _rewrite(target, keep_inode=True)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns - 5 * 10**9))   # older than frame 0 even
    else:
        _rewrite(target, keep_inode=False)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert target.stat().st_size == size
    _run(root, out)
    after = np.load(out)
    expected = _fresh(root, tmp_path, "fresh.npy")
    assert not np.array_equal(expected, before), "the rewrite must change the features"
    np.testing.assert_array_equal(after, expected)


def test_untouched_frame_folder_is_not_redone(tmp_path):
    root = tmp_path / "clips"
    _frames(root / "seq")
    out = tmp_path / "grad.npy"
    _run(root, out)
    first = out.read_bytes()
    r = ok(featx_inprocess("extract", "gradients", root, "--frames", "-j", "1", "-o", out))
    assert b"1 up to date" in r.stderr, r.stderr[-500:]
    assert out.read_bytes() == first


def test_in_place_rewrite_with_its_own_time_is_seen_with_hash(tmp_path):
    """A frame rewritten in place and given back its own time is invisible to size and
    time (as for a single image); ``--hash`` sees it."""
    root = tmp_path / "clips"
    frames = _frames(root / "seq")
    out = tmp_path / "grad.npy"
    _run(root, out, "--hash")
    st = frames[2].stat()
    _rewrite(frames[2], keep_inode=True)
    os.utime(frames[2], ns=(st.st_atime_ns, st.st_mtime_ns))
    _run(root, out, "--hash")
    np.testing.assert_array_equal(np.load(out), _fresh(root, tmp_path, "fresh.npy"))


def test_image_sequence_with_a_changed_middle_image_is_redone(tmp_path):
    """A sequence named image by image (``flow a.png b.png c.png``) is one input: a change
    of any of its images, not only the first, redoes it."""
    frames = _frames(tmp_path / "seq", 3)
    out = tmp_path / "flow.npy"

    def run(o):
        ok(featx_inprocess("extract", "flow", *frames, "-j", "1", "-q", "-o", o))
        return np.load(o)

    before = run(out)
    _rewrite(frames[1], keep_inode=True)
    after = run(out)
    expected = run(tmp_path / "fresh.npy")
    assert not np.array_equal(before, expected)
    np.testing.assert_array_equal(after, expected)
    # and an untouched sequence stays up to date
    r = ok(featx_inprocess("extract", "flow", *frames, "-j", "1", "-o", out))
    assert b"1 up to date" in r.stderr, r.stderr[-300:]
