"""featx convert: every format to every format without recomputing, bit for bit, keeping the
provenance, a real featx output that `featx extract` continues, crash-safe."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from featx.errors import FeatxError
from featx.output.convert import convert
from featx.output.reader import open_output
from helpers import SAMPLES, featx

NEWLINE = "new\nline.png"
LATIN1 = b"caf\xe9.png"


def _photos(folder: Path, odd: bool = True) -> Path:
    """Real photos from samples/, made small (fast), with odd names: a newline, a name
    that is not UTF-8."""
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.jpg"):
        img = cv2.imread(str(SAMPLES / name))
        cv2.imwrite(str(folder / name), cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA))
    if odd:
        shutil.copy(folder / "chelsea.png", folder / NEWLINE)
        shutil.copy(folder / "astronaut.png", os.path.join(os.fsencode(folder), LATIN1))
    return folder


def _rows(path) -> tuple[list[dict], np.ndarray]:
    with open_output(str(path)) as r:
        keys, vals = [], []
        for k, v in r.batches(2):
            keys += k
            vals.append(v)
    return keys, np.concatenate(vals) if vals else np.zeros((0, 0), np.float32)


def test_round_trip_csv_npy_npydir_csv_is_bit_identical(tmp_path):
    photos = _photos(tmp_path / "p")
    assert featx("extract", "gradients", photos, "-o", tmp_path / "a.csv", "-j", "1").returncode == 0
    assert featx("extract", "gradients", photos, "-o", tmp_path / "d.npy", "-j", "1").returncode == 0
    r = featx("convert", tmp_path / "a.csv", tmp_path / "b.npy")
    assert r.returncode == 0, r.stderr
    assert b"converted" in r.stderr and b"(5, 128)" in r.stderr
    assert featx("convert", tmp_path / "b.npy", f"{tmp_path}/c/").returncode == 0
    assert featx("convert", tmp_path / "c", tmp_path / "e.csv").returncode == 0
    # the same bytes as the run's own outputs: no value or name changed on the way
    assert (tmp_path / "e.csv").read_bytes() == (tmp_path / "a.csv").read_bytes()
    assert (tmp_path / "b.npy").read_bytes() == (tmp_path / "d.npy").read_bytes()
    assert (tmp_path / "b.index.csv").read_bytes() == (tmp_path / "d.index.csv").read_bytes()
    keys, vals = _rows(tmp_path / "c")
    k0, v0 = _rows(tmp_path / "d.npy")
    assert keys == k0 and vals.dtype == np.float32 and vals.tobytes() == v0.tobytes()
    names = {os.path.basename(k["path"]) for k in keys}
    assert NEWLINE in names and os.fsdecode(LATIN1) in names
    # npy-dir files where featx extract puts them, holding the rows
    one = np.load(tmp_path / "c" / "p" / (NEWLINE + ".npy"))
    assert one.tobytes() == v0[[k["path"].endswith(NEWLINE) for k in k0]][0].tobytes()


def test_the_sidecar_keeps_the_extraction_record(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1", "--bins", "5")
    src = json.loads((tmp_path / "a.npy.featx.json").read_text())
    assert featx("convert", tmp_path / "a.npy", tmp_path / "b.csv").returncode == 0
    doc = json.loads((tmp_path / "b.csv.featx.json").read_text())
    assert doc["extractor"] == src["extractor"] and doc["extractor"]["params"]["bins"] == 5
    assert doc["versions"] == src["versions"] and doc["inputs"] == src["inputs"]
    assert doc["output"]["format"] == "csv" and doc["output"]["shape"] == [3, 5 * 16]
    conv = doc["converted_from"]
    assert conv["path"] == str(tmp_path / "a.npy") and conv["format"] == "npy" and conv["record"] == src
    assert conv["command"][:2] == ["featx", "convert"]
    # and the CSV names its columns as the extractor does
    assert (tmp_path / "b.csv").read_text().startswith("path,cell0_0_bin0,")


def test_featx_extract_continues_a_converted_output(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    for dst in ("b.csv", "c/"):
        assert featx("convert", tmp_path / "a.npy", f"{tmp_path}/{dst}").returncode == 0
        r = featx("extract", "gradients", photos, "-o", f"{tmp_path}/{dst}", "-j", "1")
        assert r.returncode == 0, r.stderr
        assert b"0 processed, 3 up to date" in r.stderr, r.stderr
    # a new photo: only it is extracted, after the converted rows
    shutil.copy(photos / "coffee.jpg", photos / "zz.jpg")
    r = featx("extract", "gradients", photos, "-o", tmp_path / "b.csv", "-j", "1")
    assert b"1 processed, 3 up to date" in r.stderr, r.stderr
    featx("extract", "gradients", photos, "-o", tmp_path / "fresh.csv", "-j", "1")
    keys, vals = _rows(tmp_path / "b.csv")
    k1, v1 = _rows(tmp_path / "fresh.csv")
    assert sorted(k["path"] for k in keys) == sorted(k["path"] for k in k1)
    assert vals.tobytes() == v1.tobytes()   # the walk's order: zz.jpg last in both


def test_overwrite_and_what_is_refused(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    featx("extract", "gradients", photos, "-o", tmp_path / "g.csv", "-j", "1", "--bins", "4")
    r = featx("convert", tmp_path / "a.npy", tmp_path / "g.csv")
    assert r.returncode == 2 and b"g.csv already exists" in r.stderr and b"--overwrite" in r.stderr
    assert _rows(tmp_path / "g.csv")[1].shape == (3, 64)          # untouched
    r = featx("convert", tmp_path / "a.npy", tmp_path / "g.csv", "--overwrite")
    assert r.returncode == 0, r.stderr
    assert _rows(tmp_path / "g.csv")[1].tobytes() == _rows(tmp_path / "a.npy")[1].tobytes()
    (tmp_path / "mine.csv").write_text("not featx's\n")
    r = featx("convert", tmp_path / "a.npy", tmp_path / "mine.csv")
    assert r.returncode == 2 and b"not written by featx" in r.stderr
    assert (tmp_path / "mine.csv").read_text() == "not featx's\n"
    # never over the source, by any spelling, with --overwrite too
    for dst in ("a.npy", "./a.npy"):
        r = featx("convert", "a.npy", dst, "--overwrite", cwd=tmp_path)
        assert r.returncode == 2 and b"would write over the output it is converted from" in r.stderr
    assert _rows(tmp_path / "a.npy")[1].shape == (3, 128)
    r = featx("convert", tmp_path / "a.npy", tmp_path / "x.npy", "--format", "csv")
    assert r.returncode == 2   # a CSV named .npy
    r = featx("convert", tmp_path / "nothing.npy", tmp_path / "x.csv")
    assert r.returncode == 2 and b"does not exist" in r.stderr


def test_refuses_what_the_format_cannot_hold(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    r = featx("extract", "sift", photos / "astronaut.png", "-o", f"{tmp_path}/k/", "-j", "1")
    assert r.returncode == 0, r.stderr
    for dst in ("k.npy", "k.csv"):
        r = featx("convert", tmp_path / "k", tmp_path / dst)
        assert r.returncode == 2 and b"keypoints" in r.stderr, r.stderr
        assert not (tmp_path / dst).exists()
    assert featx("convert", tmp_path / "k", f"{tmp_path}/k2/").returncode == 0   # keypoints to keypoints
    with np.load(next((tmp_path / "k2").rglob("*.npz"))) as a, np.load(next((tmp_path / "k").rglob("*.npz"))) as b:
        assert a["descriptors"].tobytes() == b["descriptors"].tobytes()
    # a bare .npy has no record of its inputs: nothing to convert it into an output with
    np.save(tmp_path / "bare.npy", np.zeros((2, 3), np.float32))
    r = featx("convert", tmp_path / "bare.npy", tmp_path / "bare.csv")
    assert r.returncode == 2 and b"no featx state" in r.stderr and b"featx inspect" in r.stderr


def test_video_frames(tmp_path):
    clip = tmp_path / "clip.mp4"
    shutil.copy(SAMPLES / "clip.mp4", clip)
    featx("extract", "gradients", clip, "--every", "20", "-o", tmp_path / "v.csv", "-j", "1")
    assert featx("convert", tmp_path / "v.csv", tmp_path / "v.npy").returncode == 0
    keys, vals = _rows(tmp_path / "v.npy")
    k0, v0 = _rows(tmp_path / "v.csv")
    assert keys == k0 and [k["frame"] for k in keys] == [0, 20, 40, 60] and vals.tobytes() == v0.tobytes()
    assert featx("convert", tmp_path / "v.npy", f"{tmp_path}/vd/").returncode == 0
    assert sorted(p.name for p in (tmp_path / "vd" / "clip.mp4").iterdir()) == \
        ["frame000000.npy", "frame000020.npy", "frame000040.npy", "frame000060.npy"]
    r = featx("extract", "gradients", clip, "--every", "20", "-o", f"{tmp_path}/vd/", "-j", "1")
    assert b"0 processed, 1 up to date" in r.stderr
    # an npy-dir does not keep the frames' times, which a stacked output lists
    r = featx("convert", tmp_path / "vd", tmp_path / "w.csv")
    assert r.returncode == 2 and b"times" in r.stderr


def test_a_convert_killed_half_way_leaves_no_output(tmp_path, monkeypatch):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.csv", "-j", "1")
    from featx.output import npysink

    calls = []

    def boom(self, key, data, shape):
        calls.append(key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return orig(self, key, data, shape)

    orig = npysink.NpySink.append
    monkeypatch.setattr(npysink.NpySink, "append", boom)
    with pytest.raises(KeyboardInterrupt):
        convert(str(tmp_path / "a.csv"), str(tmp_path / "b.npy"))
    monkeypatch.setattr(npysink.NpySink, "append", orig)
    assert not (tmp_path / "b.npy").exists() and not (tmp_path / "b.index.csv").exists()
    assert not [p for p in os.listdir(tmp_path) if "featx-tmp" in p]
    info = convert(str(tmp_path / "a.csv"), str(tmp_path / "b.npy"))
    assert info["shape"] == [3, 128]
    # an npy-dir: the files written before the failure go too, and the folder this convert made
    from featx.output import npydir

    calls.clear()
    orig = npydir.NpyDirSink.append
    monkeypatch.setattr(npydir.NpyDirSink, "append", boom)
    with pytest.raises(KeyboardInterrupt):
        convert(str(tmp_path / "a.csv"), str(tmp_path / "d") + "/")
    assert not (tmp_path / "d").exists()
    (tmp_path / "e").mkdir()   # a folder that was there stays, empty of featx's files
    calls.clear()
    with pytest.raises(KeyboardInterrupt):
        convert(str(tmp_path / "a.csv"), str(tmp_path / "e") + "/")
    assert not [p for p in (tmp_path / "e").rglob("*") if p.is_file()]
    monkeypatch.setattr(npydir.NpyDirSink, "append", orig)
    assert convert(str(tmp_path / "a.csv"), str(tmp_path / "e") + "/")["rows"] == 3


def test_a_source_that_disagrees_with_its_state_is_refused(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    with open(tmp_path / "a.npy", "r+b") as fh:
        fh.truncate(1000)
    with pytest.raises(FeatxError, match="does not agree with its state"):
        convert(str(tmp_path / "a.npy"), str(tmp_path / "b.csv"))
    assert not (tmp_path / "b.csv").exists()


def test_a_copied_output_converts(tmp_path):
    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    other = tmp_path / "elsewhere"
    other.mkdir()
    for name in ("a.npy", "a.index.csv", "a.npy.featx.json", ".a.npy.featx-state"):
        shutil.copy(tmp_path / name, other / name)
    shutil.rmtree(photos)   # the inputs are not needed
    assert convert(str(other / "a.npy"), str(other / "a.csv"))["rows"] == 3




def test_parquet_round_trip(tmp_path):
    photos = _photos(tmp_path / "p")
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    r = featx("convert", tmp_path / "a.npy", tmp_path / "a.parquet")
    assert r.returncode == 0, r.stderr
    keys, vals = _rows(tmp_path / "a.parquet")
    k0, v0 = _rows(tmp_path / "a.npy")
    assert keys == k0 and vals.tobytes() == v0.tobytes()
    assert featx("convert", tmp_path / "a.parquet", tmp_path / "b.npy").returncode == 0
    assert (tmp_path / "b.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()
    assert (tmp_path / "b.index.csv").read_bytes() == (tmp_path / "a.index.csv").read_bytes()
    doc = json.loads((tmp_path / "a.parquet.featx.json").read_text())
    assert doc["converted_from"]["format"] == "npy"
    info = json.loads(featx("inspect", tmp_path / "a.parquet", "--json").stdout)
    assert info["format"] == "parquet" and info["rows"] == 5 and info["agreement"]["agrees"] is True
    r = featx("extract", "gradients", photos, "-o", tmp_path / "a.parquet", "-j", "1")
    assert b"0 processed, 5 up to date" in r.stderr


def test_waits_for_no_run_and_is_in_the_python_api(tmp_path):
    import featx as fx
    from featx.output.lock import OutputLock

    photos = _photos(tmp_path / "p", odd=False)
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    held = OutputLock(str(tmp_path / ".a.npy.featx-lock"))
    held.acquire(0.0)
    try:   # a run holding the source would move its rows under the reader
        r = featx("convert", tmp_path / "a.npy", tmp_path / "b.csv")
        assert r.returncode == 75, r.stderr
        assert not (tmp_path / "b.csv").exists()
    finally:
        held.release()
    info = fx.convert(str(tmp_path / "a.npy"), str(tmp_path / "b.csv"))
    assert info["format"] == "csv" and info["rows"] == 3
    assert fx.inspect_output(str(tmp_path / "b.csv"))["converted_from"]["format"] == "npy"


def test_commits_along_the_way_and_a_kill_after_the_commit_point(tmp_path, monkeypatch):
    import subprocess
    import sys

    from featx.output import convert as conv

    photos = _photos(tmp_path / "p")
    featx("extract", "gradients", photos, "-o", tmp_path / "a.npy", "-j", "1")
    monkeypatch.setattr(conv, "COMMIT_ROWS", 2)   # several commits: memory bounded, the same output
    for dst in ("b.csv", "c.npy", "d/"):
        convert(str(tmp_path / "a.npy"), f"{tmp_path}/{dst}")
        assert _rows(f"{tmp_path}/{dst}")[1].tobytes() == _rows(tmp_path / "a.npy")[1].tobytes()
        r = featx("extract", "gradients", photos, "-o", f"{tmp_path}/{dst}", "-j", "1")
        assert b"0 processed, 5 up to date" in r.stderr, r.stderr
    assert (tmp_path / "c.npy").read_bytes() == (tmp_path / "a.npy").read_bytes()
    # killed (as by kill -9) right after its state took the destination's place, before the
    # files' renames: the next featx command on it finishes them
    script = ("import os, sys\nfrom featx.output import convert as c\n"
              "c._fsync_dir = lambda folder: os._exit(9)\n"
              "c.convert(sys.argv[1], sys.argv[2])\n")
    r = subprocess.run([sys.executable, "-c", script, str(tmp_path / "a.npy"), str(tmp_path / "k.csv")],
                       capture_output=True)
    assert r.returncode == 9, r.stderr
    assert (tmp_path / ".k.csv.featx-state").exists() and not (tmp_path / "k.csv").exists()
    r = featx("extract", "gradients", photos, "-o", tmp_path / "k.csv", "-j", "1")
    assert b"0 processed, 5 up to date" in r.stderr, r.stderr
    assert (tmp_path / "k.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert not [n for n in os.listdir(tmp_path) if "featx-tmp" in n]
