"""Right results from ordinary habits (issue 12): one file is one row whatever its
spelling, every output keeps its own record, a misspelt input is a usage error, a
closed stdout is not a failure — and a whole "cron week" as a user would run it."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx, plugin_env, featx_subprocess

PHOTOS = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]


def photo_folder(root: Path) -> Path:
    p = root / "p"
    p.mkdir(parents=True)
    for name in PHOTOS:
        shutil.copy(SAMPLES / name, p / name)
    return p


def index_paths(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as fh:
        rows = list(csv.reader(fh))
    col = rows[0].index("path")
    return [r[col] for r in rows[1:]]


@pytest.mark.parametrize("out", ["g.npy", "g.csv", "g/"])
def test_one_file_is_one_row_whatever_its_spelling(tmp_path, out):
    here = tmp_path / "here"
    p = photo_folder(here)
    (here / "sub").mkdir()
    os.symlink(p, here / "link")
    o = str(tmp_path / "o") + "/" + out
    (tmp_path / "o").mkdir()
    spellings = [(here, ["p"]), (here, ["./p"]), (here, [f"{p}//"]), (here / "sub", ["../p"]),
                 (here, ["p/../p/coffee.jpg", "p/./rocket.jpg"]), (here, ["link"]), (tmp_path, ["here/p/"])]
    for cwd, args in spellings:
        r = featx("extract", "gradients", *args, "-o", o, cwd=cwd)
        assert r.returncode == 0, (args, r.stderr)
    expected = sorted(str(p / n) for n in PHOTOS)
    if out == "g/":
        files = sorted(str(f.relative_to(tmp_path / "o" / "g")) for f in (tmp_path / "o" / "g").rglob("*.npy"))
        assert len(files) == 5, files
        assert all(f.endswith(tuple(n + ".npy" for n in PHOTOS)) for f in files)
    else:
        paths = index_paths(tmp_path / "o" / ("g.index.csv" if out == "g.npy" else "g.csv"))
        assert sorted(paths) == expected  # the path column: canonical, the same from every spelling
    if out != "g.npy":
        return
    # and with shards: the same partition whatever the spelling
    for cwd, arg in ((here, "p"), (here / "sub", "../p"), (here, "link")):
        rows = 0
        for i in (1, 2):
            r = featx("extract", "gradients", arg, "-o", tmp_path / "o" / f"s{i}.npy", "--shard", f"{i}/2", "-q",
                      cwd=cwd)
            assert r.returncode == 0, r.stderr
            rows += np.load(tmp_path / "o" / f"s{i}.npy").shape[0]
        assert rows == 5


def test_each_output_keeps_its_own_record(tmp_path):
    img = SAMPLES / "coffee.jpg"
    assert featx("extract", "hog", img, "-o", tmp_path / "hog.npy", "--resize", "64x64", "-q").returncode == 0
    assert featx("extract", "hog", img, "-o", tmp_path / "hog.csv", "--resize", "32x32", "-q").returncode == 0
    npy = json.loads((tmp_path / "hog.npy.featx.json").read_text())
    csv_ = json.loads((tmp_path / "hog.csv.featx.json").read_text())
    assert npy["options"]["resize"] == [64, 64] and csv_["options"]["resize"] == [32, 32]
    assert npy["output"]["path"].endswith("hog.npy") and csv_["output"]["path"].endswith("hog.csv")
    # each keeps its own state and lock too: both continue incrementally
    for name in ("hog.npy", "hog.csv"):
        assert (tmp_path / f".{name}.featx-state").exists()
        size = "64x64" if name == "hog.npy" else "32x32"
        r = featx("extract", "hog", img, "-o", tmp_path / name, "--resize", size)
        assert r.returncode == 0 and b"0 processed, 1 up to date" in r.stderr, r.stderr
    # detect's faces.csv and an extract's faces.npy side by side
    r = featx("detect", SAMPLES / "astronaut.png", "-o", tmp_path / "faces.csv", "-q")
    assert r.returncode == 0, r.stderr
    r = featx("extract", "gradients", "--regions", tmp_path / "faces.csv", "-o", tmp_path / "faces.npy", "-q")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "faces.csv.featx.json").read_text())["extractor"]["name"] == "detect"
    assert json.loads((tmp_path / "faces.npy.featx.json").read_text())["extractor"]["name"] == "gradients"


def test_a_misspelt_input_is_a_usage_error_and_nothing_is_created(tmp_path):
    r = featx("extract", "gradients", tmp_path / "nosuch", "-o", tmp_path / "g1.npy")
    assert r.returncode == 2 and b"no such file or folder" in r.stderr and b"nosuch" in r.stderr
    assert os.listdir(tmp_path) == []
    vids = tmp_path / "vids"
    vids.mkdir()
    shutil.copy(SAMPLES / "clip.mp4", vids / "a.mp4")
    shutil.copy(SAMPLES / "clip.mp4", vids / "b.mp4")
    r = featx("extract", "gradients", vids, "-o", tmp_path / "g2.npy")
    assert r.returncode == 2, r.stderr
    assert b"no images in" in r.stderr and b"2 videos skipped: --video takes them" in r.stderr
    assert sorted(os.listdir(tmp_path)) == ["vids"]
    # a path read from stdin that does not exist is data: it fails alone
    r = featx("extract", "gradients", "-", "-o", tmp_path / "g3.npy",
              stdin=f"{tmp_path}/gone.jpg\n{SAMPLES / 'coffee.jpg'}\n".encode())
    assert r.returncode == 1 and b"gone.jpg" in r.stderr and np.load(tmp_path / "g3.npy").shape[0] == 1


@pytest.mark.slow  # featx processes writing into a pipe that closes (the file descriptor is the point)
def test_a_closed_stdout_is_not_a_failure_of_inputs(tmp_path):
    src = tmp_path / "many"
    src.mkdir()
    for i in range(40):
        shutil.copy(SAMPLES / PHOTOS[i % 5], src / f"{i:02d}-{PHOTOS[i % 5]}")
    for jobs in ("1", "2"):
        p = subprocess.Popen(f"{sys.executable} -m featx extract gradients {src} -o - -j {jobs} | head -3",
                             shell=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, executable="/bin/bash")
        p2 = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m featx extract gradients {src} "
                             f"-o - -j {jobs} | head -3 >/dev/null"], capture_output=True)
        out, err = p.communicate(timeout=120)
        assert len(out.splitlines()) == 3
        assert b"Traceback" not in err and b"Exception ignored" not in err, err
        assert p2.returncode == 141, p2.stderr


def test_outputs_of_the_earlier_featx_are_refused_with_the_way_out(tmp_path):
    out = tmp_path / "old.npy"
    assert featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out, "-q").returncode == 0
    db = sqlite3.connect(tmp_path / ".old.npy.featx-state")
    db.execute("DELETE FROM meta WHERE k='schema'")  # what featx 0.1 left: no schema mark
    db.commit()
    db.close()
    r = featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out)
    assert r.returncode == 2 and b"earlier featx" in r.stderr and b"--overwrite" in r.stderr
    r = featx("extract", "gradients", SAMPLES / "coffee.jpg", "-o", out, "--overwrite", "-q")
    assert r.returncode == 0


@pytest.mark.slow
def test_a_cron_week(tmp_path):
    """A week of nightly runs as a user makes them — from two working directories and
    through a link to the folder, a new photo of another size, a removed photo, a run
    killed half-way — ends row for row where one clean run over the final folder ends."""
    import cv2

    env = plugin_env(tmp_path)
    home = tmp_path / "home"
    photos = home / "photos"
    photos.mkdir(parents=True)
    pics = [cv2.imread(str(SAMPLES / s)) for s in ("astronaut.png", "coffee.jpg", "rocket.jpg", "chelsea.png")]

    def add(i: int, size=(240, 200)) -> None:
        p = pics[i % 4]
        y, x = (i * 7) % 60, (i * 13) % 80
        crop = p[y:y + 200, x:x + 240]
        cv2.imwrite(str(photos / f"img{i:03d}.png"), cv2.resize(crop, size))

    for i in range(40):
        add(i)
    (tmp_path / "cron").mkdir()
    os.symlink(photos, tmp_path / "cron" / "pics")
    feats = home / "feats"
    feats.mkdir()

    quick = dict(env, SLOW_MS="1")   # the nights not killed need no pause (same values)

    def night(cwd: Path, inp: str, out: str, extra=()):
        return featx_subprocess("extract", "slow", inp, "-o", out, "-q", *extra, cwd=cwd, env=quick)

    # Monday: from home, relative paths
    assert night(home, "photos", "feats/w.npy").returncode == 0
    # Tuesday: cron runs from its own folder, through the link, with an absolute output
    for i in range(40, 50):
        add(i)
    assert night(tmp_path / "cron", "pics/", str(feats / "w.npy")).returncode == 0
    # Wednesday: a photo of another size arrives (slow: any size gives 64 values), one is removed
    add(50, size=(500, 300))
    (photos / "img007.png").unlink()
    r = night(home, "./photos", "./feats/w.npy", ("--prune",))
    assert r.returncode == 0, r.stderr
    # Thursday: killed half-way through a run over many new photos
    for i in range(51, 150):
        add(i)
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(tmp_path / "cron" / "pics"), "-o",
           str(feats / "w.npy"), "-q", "-j", "2", "--commit-every", "0.2"]
    p = subprocess.Popen(cmd, cwd=tmp_path / "cron", start_new_session=True, stderr=subprocess.DEVNULL,
                         env={**os.environ, **env})
    deadline = time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline and \
            np.load(feats / "w.npy", mmap_mode="r").shape[0] < 60:
        time.sleep(0.02)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    # Friday: the same command as Monday, from another folder, finishes the job
    r = night(tmp_path, str(photos) + "//", "home/feats/w.npy")
    assert r.returncode == 0, r.stderr
    # one clean run over the final folder
    ref = tmp_path / "ref.npy"
    assert featx_subprocess("extract", "slow", photos, "-o", ref, "-q", env=quick).returncode == 0
    got = dict(zip(index_paths(feats / "w.index.csv"), np.load(feats / "w.npy")))
    want = dict(zip(index_paths(tmp_path / "ref.index.csv"), np.load(ref)))
    assert len(got) == np.load(feats / "w.npy").shape[0]  # no input twice
    assert sorted(got) == sorted(want) and len(want) == 149
    for k in want:
        assert np.array_equal(got[k], want[k]), k
