"""Attacks on issue 25's new code: featx.dists (entry points and versions read without
importlib.metadata), the pool started before the outputs are opened, the commit's read-back
check in CRC parts on two threads (output/append.py), and video decoded ahead on a thread.

Each test here is an attack that once broke featx (or a cheap one not yet covered): the
rule for featx.dists is that whatever it answers equals importlib.metadata's answer."""
from __future__ import annotations

import errno
import os
import threading
import zlib

import pytest

from featx import dists, registry
from featx.output import append

from helpers import SAMPLES, fake_plugin, featx_subprocess


# ---------------------------------------------------------------------------
# featx.dists


NESTED = ("from featx.extractors.hog import HOG\n\n\nclass Outer:\n    class Inner(HOG):\n"
          "        name = 'nested'\n        summary = 'a class inside a class'\n")


@pytest.mark.parametrize("value", ["nested_ext:Outer..Inner", "nested_ext:.Outer.Inner", "nested_ext:Outer.Inner."])
def test_an_entry_point_with_empty_attribute_parts_loads_as_importlib_loads_it(tmp_path, monkeypatch, value):
    """importlib.metadata's ``EntryPoint.load`` skips empty parts of the attribute path
    (``mod:A..B`` is ``mod.A.B``); featx.dists' entry point must load the same object."""
    from importlib import metadata

    fake_plugin(tmp_path, "nestedplug", {"nested": value}, {"nested_ext.py": NESTED})
    monkeypatch.syspath_prepend(str(tmp_path))
    ours = next(e for e in dists.entry_points("featx.extractors") if e.name == "nested")
    theirs = next(e for e in metadata.entry_points(group="featx.extractors") if e.name == "nested")
    assert ours.load() is theirs.load()
    assert registry.get("nested").summary == "a class inside a class"


@pytest.mark.parametrize("text, why", [(b"[console_scripts]\ncaf\xe9 = cafe:main\n", "not UTF-8"),
                                      (b"[console_scripts]\ncafe cafe:main\n", "line 2 has no '='")])
def test_a_damaged_entry_points_file_is_a_clear_error(tmp_path, text, why):
    """An installed distribution whose entry_points.txt is not UTF-8 or has a line without
    ``=`` (importlib.metadata raises UnicodeDecodeError or ValueError for every look-up): a
    usage error naming the file, exit 2, not a traceback."""
    info = tmp_path / "latin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: latin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(text)
    env = {"PYTHONPATH": str(tmp_path) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for args in (["extract", "hog", "coffee.jpg", "-o", str(tmp_path / "h.npy"), "--resize", "32x32", "-q"],
                 ["list"]):
        r = featx_subprocess(*args, cwd=SAMPLES, env=env)
        err = r.stderr.decode()
        assert r.returncode == 2 and "Traceback" not in err, err
        assert str(info / "entry_points.txt") in err and why in err, err
    assert not (tmp_path / "h.npy").exists()


# ---------------------------------------------------------------------------
# output/append.py: the read-back check in CRC parts on two threads


def _parts_file(tmp_path, n=4, size=1 << 16):
    data = os.urandom(n * size)
    path = tmp_path / "data.bin"
    path.write_bytes(data)
    return path, [(size, zlib.crc32(data[i:i + size])) for i in range(0, n * size, size)]


@pytest.mark.parametrize("bad_part", [0, 3])   # read by the helper thread / by the caller
def test_a_read_error_in_either_half_of_the_check_is_raised_not_taken_for_a_change(tmp_path, monkeypatch, bad_part):
    """An I/O error while reading back what was written is that error (a disk error, exit
    74), whichever of the two threads met it: not "changed by another program", and no
    thread's traceback on stderr."""
    path, parts = _parts_file(tmp_path)
    seen = []
    monkeypatch.setattr(threading, "excepthook", lambda args: seen.append(args.exc_value))
    real = os.pread

    def pread(fd, n, off):
        if off // (1 << 16) == bad_part:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, n, off)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert append.parts_match(fd, 0, parts)
        monkeypatch.setattr(os, "pread", pread)
        with pytest.raises(OSError) as info:
            append.parts_match(fd, 0, parts)
        assert info.value.errno == errno.EIO
    finally:
        os.close(fd)
    assert seen == []
    assert not [t for t in threading.enumerate() if t.name == "featx-verify"]
