"""featx inspect: what an output is, for every format, from a real run; a bare .npy; a copy
on another folder; a truncated output reported as not agreeing with its state."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from helpers import SAMPLES, featx


def _photos(folder: Path) -> Path:
    """Three real photos from samples/ made small, and a corrupt JPEG."""
    folder.mkdir()
    for name in ("astronaut.png", "chelsea.png", "coffee.jpg"):
        img = cv2.imread(str(SAMPLES / name))
        cv2.imwrite(str(folder / name), cv2.resize(img, (64, 48), interpolation=cv2.INTER_AREA))
    (folder / "broken.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:300])
    return folder


def _inspect(*args, cwd=None) -> dict:
    r = featx("inspect", *args, "--json", cwd=cwd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("out", ["g.npy", "g.csv", "g/"])
def test_every_format_from_a_real_run(tmp_path, out):
    photos = _photos(tmp_path / "p")
    r = featx("extract", "gradients", photos, "-o", f"{tmp_path}/{out}", "-j", "1", "--bins", "6")
    assert r.returncode == 1   # the broken photo
    info = _inspect(f"{tmp_path}/{out}")
    assert info["format"] == {"g.npy": "npy", "g.csv": "csv", "g/": "npy-dir"}[out]
    assert info["rows"] == 3 and info["width"] == 6 * 16 and info["kind"] == "vector"
    assert info["key_columns"] == ["path"]
    assert info["columns"][:2] == ["cell0_0_bin0", "cell0_0_bin1"] and len(info["columns"]) == 96
    assert info["extractor"]["name"] == "gradients" and info["extractor"]["params"]["bins"] == 6
    assert info["extractor"]["params"]["grid"] == [4, 4]
    assert info["inputs"]["in_output"] == 3
    assert info["inputs"]["last_run"]["processed"] == 3 and info["inputs"]["last_run"]["failed"] == 1
    (fail,) = info["inputs"]["failures"]
    assert fail["path"].endswith("broken.jpg") and "cannot decode" in fail["reason"]
    assert info["last_run"]["status"] == "complete-with-failures" and info["last_run"]["finished"]
    assert info["versions"]["featx"] and info["versions"]["numpy"] == np.__version__
    assert info["agreement"]["agrees"] is True and info["unknown"] == []
    text = featx("inspect", f"{tmp_path}/{out}").stdout.decode()
    for want in ("gradients features", "rows:         3", "96 float32 values per row", "key columns:  path",
                 "cell0_0_bin0, cell0_0_bin1", "--bins", "6", "3 processed, 1 failed, 0 disappeared",
                 "broken.jpg: cannot decode", "complete-with-failures", "agree with the state"):
        assert want in text, (want, text)


def test_disappeared_inputs_and_the_next_run(tmp_path):
    photos = _photos(tmp_path / "p")
    featx("extract", "gradients", photos, "-o", tmp_path / "g.npy", "-j", "1")
    (photos / "chelsea.png").unlink()
    featx("extract", "gradients", photos, "-o", tmp_path / "g.npy", "-j", "1")
    info = _inspect(tmp_path / "g.npy")
    last = info["inputs"]["last_run"]
    assert (last["processed"], last["up_to_date"], last["failed"], last["disappeared"]) == (0, 2, 1, 1)
    assert [os.path.basename(p) for p in info["inputs"]["disappeared"]] == ["chelsea.png"]
    assert info["rows"] == 3 and info["inputs"]["in_output"] == 3   # kept until --prune
    text = featx("inspect", tmp_path / "g.npy").stdout.decode()
    assert "1 disappeared" in text and "disappeared: " in text and "chelsea.png" in text


def test_a_bare_npy_says_what_it_cannot_know(tmp_path):
    np.save(tmp_path / "emb.npy", np.zeros((7, 3), np.float64))
    info = _inspect(tmp_path / "emb.npy")
    assert info["array"] == {"shape": [7, 3], "dtype": "float64"} and info["rows"] == 7
    assert info["extractor"] is None and info["last_run"] is None and info["agreement"]["agrees"] is None
    assert any("no featx record beside it" in u for u in info["unknown"])
    text = featx("inspect", tmp_path / "emb.npy").stdout.decode()
    assert "shape (7, 3), dtype float64" in text and "no featx record beside it" in text
    # featx info is about extractors: it points to inspect
    r = featx("info", "emb.npy", cwd=tmp_path)
    assert r.returncode == 2 and b"featx inspect emb.npy" in r.stderr


def test_an_output_copied_to_another_folder(tmp_path):
    photos = _photos(tmp_path / "p")
    featx("extract", "gradients", photos, "-o", tmp_path / "g.npy", "-j", "1")
    featx("extract", "gradients", photos, "-o", f"{tmp_path}/d/", "-j", "1")
    other = tmp_path / "machine2"
    other.mkdir()
    for name in ("g.npy", "g.index.csv", "g.npy.featx.json", ".g.npy.featx-state", "d.featx.json"):
        shutil.copy(tmp_path / name, other / name)
    shutil.copytree(tmp_path / "d", other / "d")
    shutil.rmtree(photos)   # the inputs are not on this machine
    info = _inspect("g.npy", cwd=other)
    assert info["rows"] == 3 and info["extractor"]["name"] == "gradients"
    assert info["agreement"]["agrees"] is True and info["agreement"]["copied"] is True
    assert info["inputs"]["failures"][0]["path"] == str(photos / "broken.jpg")   # the paths where it was made
    assert _inspect("d", cwd=other)["agreement"]["agrees"] is True
    # without its sidecar and state, only the files speak
    (other / "g.npy.featx.json").unlink()
    (other / ".g.npy.featx-state").unlink()
    info = _inspect("g.npy", cwd=other)
    assert info["rows"] == 3 and info["key_columns"] == ["path"] and info["extractor"] is None
    assert len(info["unknown"]) == 2


def test_a_truncated_output_does_not_agree_with_its_state(tmp_path):
    photos = _photos(tmp_path / "p")
    featx("extract", "gradients", photos, "-o", tmp_path / "g.npy", "-j", "1")
    featx("extract", "gradients", photos, "-o", tmp_path / "g.csv", "-j", "1")
    with open(tmp_path / "g.npy", "r+b") as fh:
        fh.truncate(700)
    info = _inspect(tmp_path / "g.npy")
    assert info["agreement"]["agrees"] is False and "shorter" in info["agreement"]["why"]
    assert "DO NOT agree" in featx("inspect", tmp_path / "g.npy").stdout.decode()
    lines = (tmp_path / "g.csv").read_bytes().splitlines(keepends=True)
    (tmp_path / "g.csv").write_bytes(b"".join(lines[:-1]))
    assert _inspect(tmp_path / "g.csv")["agreement"]["agrees"] is False
    featx("extract", "gradients", photos, "-o", f"{tmp_path}/d/", "-j", "1")
    assert _inspect(tmp_path / "d")["agreement"]["agrees"] is True
    (tmp_path / "d" / "p" / "coffee.jpg.npy").unlink()
    ag = _inspect(tmp_path / "d")["agreement"]
    assert ag["agrees"] is False and "coffee.jpg are missing (0 of 1 there)" in ag["why"]


def test_unreadable_is_a_usage_error(tmp_path):
    r = featx("inspect", tmp_path / "none.npy")
    assert r.returncode == 2 and b"does not exist" in r.stderr
    (tmp_path / "junk.npy").write_bytes(b"not an array")
    r = featx("inspect", tmp_path / "junk.npy")
    assert r.returncode == 2 and b"not a readable .npy" in r.stderr


def test_video_and_converted_outputs(tmp_path):
    shutil.copy(SAMPLES / "clip.mp4", tmp_path / "clip.mp4")
    featx("extract", "gradients", tmp_path / "clip.mp4", "--every", "30", "-o", tmp_path / "v.csv", "-j", "1")
    assert featx("convert", tmp_path / "v.csv", f"{tmp_path}/v/").returncode == 0
    info = _inspect(tmp_path / "v")
    assert info["key_columns"] == ["path", "frame", "time"] and info["rows"] == 3
    assert info["options"]["sampling"] == {"every": 30}
    assert info["converted_from"]["path"] == str(tmp_path / "v.csv") and info["converted_from"]["format"] == "csv"
    assert "converted:    from" in featx("inspect", tmp_path / "v").stdout.decode()


def test_a_bare_csv(tmp_path):
    (tmp_path / "t.csv").write_text('path,frame,time,a,b\n"x\ny.png",3,0.120000,1.5,2\n')
    info = _inspect(tmp_path / "t.csv")
    assert info["rows"] == 1 and info["key_columns"] == ["path", "frame", "time"] and info["columns"] == ["a", "b"]
    assert info["extractor"] is None and len(info["unknown"]) == 2
    from featx.output.reader import open_output

    with open_output(str(tmp_path / "t.csv")) as r:
        ((keys, vals),) = list(r.batches())
    assert keys == [{"path": "x\ny.png", "frame": 3, "time": 0.12}] and vals.tolist() == [[1.5, 2.0]]


def test_a_pooled_output_says_how_it_was_pooled_and_from_what(tmp_path):
    frames = tmp_path / "frames.npy"
    assert featx("extract", "gradients", SAMPLES / "clip.mp4", "-o", frames, "-q").returncode == 0
    out = tmp_path / "win.csv"
    r = featx("pool", frames, "-o", out, "--window", "1s", "--stride", "0.5s", "--stats", "diff,mean", "--pyramid")
    assert r.returncode == 0, r.stderr
    text = featx("inspect", out).stdout.decode()
    assert "pooled:       one row per video window: mean, diff; windows of 1s every 0.5s; temporal pyramid" in text
    assert f"from {frames} (npy, 62 rows)" in text
    doc = json.loads(featx("inspect", out, "--json").stdout)
    assert doc["pool"]["stats"] == ["mean", "diff"] and doc["pooled_from"]["rows"] == 62
