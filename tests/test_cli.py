"""End-to-end tests of the command line, run as a real subprocess."""
from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, fake_plugin, featx, plugin_env, write_rgb, featx_subprocess

SMALL = ["--resize", "64x48"]


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """A small tree of real photos: a/x.jpg and b/x.jpg share a name; a note file is not an image."""
    root = tmp_path / "photos"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", root / "a" / "x.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", root / "b" / "x.jpg")
    shutil.copy(SAMPLES / "chelsea.png", root / "cat.png")
    shutil.copy(SAMPLES / "camera.png", root / "b" / "camera")  # no extension: found by content
    (root / "notes.txt").write_text("not an image\n")
    return root


def read_index(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_version_and_help_are_fast():
    t = time.perf_counter()
    r = featx("--version")
    assert r.returncode == 0 and b"featx, version" in r.stdout
    r = featx("--help")
    assert r.returncode == 0 and b"extract" in r.stdout
    # start-up must not import the heavy libraries
    code = ("import sys, featx.cli; featx.cli.cli.main(['--help'], standalone_mode=False); "
            "bad=[m for m in ('cv2','skimage','onnxruntime','tqdm') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    assert time.perf_counter() - t < 20


def test_list_and_info():
    r = featx("list")
    assert r.returncode == 0
    out = r.stdout.decode()
    for name in ("gradients", "hog"):
        line = next(l for l in out.splitlines() if l.startswith(name + " "))
        assert "BROKEN" not in line and "[featx]" in line
    r = featx("info", "hog", "--size", "640x480")
    assert r.returncode == 0
    text = r.stdout.decode()
    assert "--cell-size" in text and "--block-norm" in text and "L2-Hys" in text
    from featx.extractors.hog import HOG

    assert f"{HOG().output_spec(480, 640).length} float32 values for 640x480" in " ".join(text.split())


def test_extract_npy_index_sidecar(photos, tmp_path):
    out = tmp_path / "out" / "hog.npy"
    out.parent.mkdir()
    r = featx("extract", "hog", photos, "-o", out, *SMALL, "-j", "1")
    assert r.returncode == 0, r.stderr
    assert r.stdout == b""  # nothing but data on stdout, and the data went to a file
    m = np.load(out)
    assert m.dtype == np.float32 and m.shape[0] == 4
    idx = read_index(tmp_path / "out" / "hog.index.csv")
    paths = [row["path"] for row in idx]
    # recursive, sorted, non-images skipped, extension-less image found by content
    assert paths == [str(photos / "a" / "x.jpg"), str(photos / "b" / "camera"), str(photos / "b" / "x.jpg"),
                     str(photos / "cat.png")]
    assert [int(r["row"]) for r in idx] == [0, 1, 2, 3]
    side = json.loads((tmp_path / "out" / "hog.npy.featx.json").read_text())
    assert side["status"] == "complete" and side["complete"] is True
    assert side["extractor"]["name"] == "hog" and side["extractor"]["params"]["cell_size"] == 8
    assert side["output"]["shape"] == list(m.shape)
    assert {k: side["inputs"][k] for k in ("processed", "failed", "up_to_date", "skipped_non_images")} == \
        {"processed": 4, "failed": 0, "up_to_date": 0, "skipped_non_images": 1}
    assert "numpy" in side["versions"] and side["options"]["resize"] == [64, 48]
    assert b"1 non-image file skipped" in r.stderr
    # no temporary files left behind: only the outputs and featx's hidden state and lock
    assert sorted(p.name for p in out.parent.iterdir()) == [
        ".hog.npy.featx-lock", ".hog.npy.featx-state", "hog.index.csv", "hog.npy", "hog.npy.featx.json"]


def test_csv_matches_npy_exactly(photos, tmp_path):
    featx("extract", "hog", photos, "-o", tmp_path / "h.npy", *SMALL, "-q")
    r = featx("extract", "hog", photos, "-o", tmp_path / "h.csv", *SMALL, "-q")
    assert r.returncode == 0, r.stderr
    m = np.load(tmp_path / "h.npy")
    with open(tmp_path / "h.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][:3] == ["path", "f0", "f1"] and len(rows[0]) == 1 + m.shape[1]
    vals = np.array([[np.float32(v) for v in row[1:]] for row in rows[1:]], dtype=np.float32)
    assert np.array_equal(vals, m)  # decimal text reads back as the same float32


@pytest.mark.slow
def test_jobs_give_identical_bytes(photos, tmp_path):
    for j in ("1", "2"):
        r = featx("extract", "hog", photos, "-o", tmp_path / f"j{j}.csv", *SMALL, "-j", j, "-q")
        assert r.returncode == 0, r.stderr
        r = featx("extract", "hog", photos, "-o", tmp_path / f"j{j}.npy", *SMALL, "-j", j, "-q")
        assert r.returncode == 0, r.stderr
    assert (tmp_path / "j1.csv").read_bytes() == (tmp_path / "j2.csv").read_bytes()
    assert (tmp_path / "j1.npy").read_bytes() == (tmp_path / "j2.npy").read_bytes()
    assert (tmp_path / "j1.index.csv").read_bytes() == (tmp_path / "j2.index.csv").read_bytes()


def test_npy_dir_mirrors_tree_without_collisions(photos, tmp_path):
    out = tmp_path / "feats"
    r = featx("extract", "hog", "photos", "-o", str(out) + "/", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert files == ["photos/a/x.jpg.npy", "photos/b/camera.npy", "photos/b/x.jpg.npy", "photos/cat.png.npy"]
    a = np.load(out / "photos/a/x.jpg.npy")
    b = np.load(out / "photos/b/x.jpg.npy")
    assert a.dtype == np.float32 and a.shape != b.shape  # each its own size: no resize needed here
    assert (tmp_path / "feats.featx.json").exists()


def test_npy_dir_never_writes_outside(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", outside / "c.jpg")
    evil = b"../elsewhere/c.jpg\n" + str(outside / "c.jpg").encode() + b"\n"
    r = featx("extract", "hog", "-", "-o", "out/", "-q", *SMALL, cwd=work, stdin=evil)
    assert r.returncode == 0, r.stderr
    written = [p for p in tmp_path.rglob("*.npy")]
    assert written and all(work / "out" in p.parents for p in written)
    assert len(written) == 1  # both spellings name one file, so one output (written twice, atomically)


def test_stdin_paths_to_stdout_csv(photos, tmp_path):
    lst = b"\n".join(str(p).encode() for p in sorted(photos.rglob("*.jpg")))
    r = featx("extract", "hog", "-", "-o", "-", *SMALL, stdin=lst + b"\n")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[0].startswith("path,f0,") and len(lines) == 3
    assert b"processed" in r.stderr and b"processed" not in r.stdout
    # NUL-separated, as from find -print0
    r0 = featx("extract", "hog", "-", "-0", "-o", "-", "-q", *SMALL, stdin=lst.replace(b"\n", b"\0"))
    assert r0.returncode == 0 and r0.stdout == r.stdout
    # list file
    (tmp_path / "list.txt").write_bytes(lst)
    rl = featx("extract", "hog", "--files-from", tmp_path / "list.txt", "-o", "-", "-q", *SMALL)
    assert rl.returncode == 0 and rl.stdout == r.stdout


def test_bad_inputs_are_isolated(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", d / "1-good.jpg")
    (d / "2-corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (d / "3-empty.png").write_bytes(b"")
    data = (SAMPLES / "astronaut.png").read_bytes()
    (d / "4-truncated.png").write_bytes(data[: len(data) // 3])
    (d / "5-text.txt").write_text("hello")
    shutil.copy(SAMPLES / "chelsea.png", d / "6-good.png")
    args = [d / "1-good.jpg", d / "2-corrupt.jpg", d / "3-empty.png", d / "4-truncated.png", d / "5-text.txt",
            d / "missing.jpg", d / "6-good.png"]
    # a path listed on stdin that does not exist is a failed input (named on the command line, a usage error)
    listed = b"".join(bytes(a) + b"\n" for a in args)
    r = featx("extract", "hog", "-", "-o", tmp_path / "o.npy", *SMALL, "-j", "2", stdin=listed)
    assert r.returncode == 1
    err = r.stderr.decode()
    for name, why in [("2-corrupt.jpg", "corrupt"), ("3-empty.png", "empty"), ("4-truncated.png", "decode"),
                      ("5-text.txt", "not an image"), ("missing.jpg", "no such file")]:
        line = next(l for l in err.splitlines() if name in l)
        assert why in line
    assert np.load(tmp_path / "o.npy").shape[0] == 2
    side = json.loads((tmp_path / "o.npy.featx.json").read_text())
    assert side["status"] == "complete-with-failures" and side["inputs"]["failed"] == 5
    assert {Path(f["path"]).name for f in side["failures"]} == {
        "2-corrupt.jpg", "3-empty.png", "4-truncated.png", "5-text.txt", "missing.jpg"}


def test_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "o.npy"
    out.write_bytes(b"precious")
    r = featx("extract", "hog", SAMPLES / "coffee.jpg", "-o", out, *SMALL)
    assert r.returncode == 2 and b"--overwrite" in r.stderr
    assert out.read_bytes() == b"precious"
    r = featx("extract", "hog", SAMPLES / "coffee.jpg", "-o", out, *SMALL, "--overwrite", "-q")
    assert r.returncode == 0 and np.load(out).shape[0] == 1


def test_usage_errors_name_valid_values(tmp_path):
    img = SAMPLES / "coffee.jpg"
    r = featx("extract", "nosuch", img, "-o", "-")
    assert r.returncode == 2 and b"available: " in r.stderr and b"hog" in r.stderr
    r = featx("extract", "hog", img, "-o", "-", "--bins", "0")
    assert r.returncode == 2 and b"--bins" in r.stderr and b"1 to 180" in r.stderr
    r = featx("extract", "hog", img, "-o", "-", "--block-norm", "L3")
    assert r.returncode == 2 and b"L2-Hys" in r.stderr
    r = featx("extract", "hog", img, "-o", "-", "--no-such-option", "1")
    assert r.returncode == 2
    r = featx("extract", "hog", img, "-o", tmp_path / "x.weird")
    assert r.returncode == 2 and b"--format" in r.stderr
    r = featx("extract", "hog", "-o", "-")
    assert r.returncode == 2 and b"no inputs" in r.stderr


@pytest.mark.slow
def test_config_file_same_validation_and_flags_win(tmp_path):
    img = SAMPLES / "coffee.jpg"
    cfg = tmp_path / "hog.toml"
    cfg.write_text('[hog]\ncell-size = 16\nbins = 12\nresize = "96x64"\n')
    r = featx("extract", "hog", img, "-o", tmp_path / "a.npy", "--config", cfg, "-q")
    assert r.returncode == 0, r.stderr
    side = json.loads((tmp_path / "a.npy.featx.json").read_text())
    assert side["extractor"]["params"]["cell_size"] == 16 and side["extractor"]["params"]["bins"] == 12
    assert side["options"]["resize"] == [96, 64]
    r = featx("extract", "hog", img, "-o", tmp_path / "b.npy", "--config", cfg, "--bins", "6", "-q")
    assert json.loads((tmp_path / "b.npy.featx.json").read_text())["extractor"]["params"]["bins"] == 6
    # a file holds the same defaults `featx info --as-config` prints
    dump = featx("info", "hog", "--as-config").stdout
    (tmp_path / "dump.toml").write_bytes(dump)
    r = featx("extract", "hog", img, "-o", tmp_path / "c.npy", "--config", tmp_path / "dump.toml", *SMALL, "-q")
    assert r.returncode == 0, r.stderr
    (tmp_path / "bad.toml").write_text("bins = 0\n")
    r = featx("extract", "hog", img, "-o", "-", "--config", tmp_path / "bad.toml")
    assert r.returncode == 2 and b"--bins" in r.stderr
    (tmp_path / "unk.toml").write_text("binz = 3\n")
    r = featx("extract", "hog", img, "-o", "-", "--config", tmp_path / "unk.toml")
    assert r.returncode == 2 and b"binz" in r.stderr and b"bins" in r.stderr


def test_an_image_of_another_size_fails_alone(tmp_path):
    """A vector of another length is one failed input, not a failed run: the others are written."""
    imgs = [SAMPLES / "astronaut.png", SAMPLES / "chelsea.png", SAMPLES / "camera.png"]  # chelsea: another size
    r = featx("extract", "hog", *imgs, "-o", tmp_path / "o.npy", "--cell-size", "32")
    assert r.returncode == 1, r.stderr
    line = next(l for l in r.stderr.decode().splitlines() if "chelsea.png" in l)
    assert "--resize" in line and "npy-dir" in line and "values per row" in line
    ref = featx("extract", "hog", imgs[0], imgs[2], "-o", tmp_path / "ref.npy", "--cell-size", "32")
    assert ref.returncode == 0
    assert np.array_equal(np.load(tmp_path / "o.npy"), np.load(tmp_path / "ref.npy"))
    side = json.loads((tmp_path / "o.npy.featx.json").read_text())
    assert [Path(f["path"]).name for f in side["failures"]] == ["chelsea.png"]
    # the same on stdout: every fitting row, the odd one reported, exit 1
    r = featx("extract", "hog", *imgs, "-o", "-", "--cell-size", "32")
    assert r.returncode == 1 and b"chelsea.png" in r.stderr
    assert [l.split(b",")[0] for l in r.stdout.splitlines()[1:]] == [str(imgs[0]).encode(), str(imgs[2]).encode()]


def test_image_kinds_are_handled(tmp_path, sample):
    """16-bit, alpha and EXIF-rotated inputs give what the README promises."""
    import cv2
    from PIL import Image

    rgb = sample("chelsea.png")
    write_rgb(tmp_path / "a8.png", rgb)
    write_rgb(tmp_path / "b16.png", rgb.astype(np.uint16) * 257)  # same picture, 16-bit
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)])
    assert cv2.imwrite(str(tmp_path / "c-alpha.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    # EXIF orientation 6: stored sideways, shown rotated 90 degrees clockwise
    ex = Image.Exif()
    ex[0x0112] = 6
    Image.fromarray(rgb).save(tmp_path / "d-exif.jpg", exif=ex, quality=95)
    stored = cv2.cvtColor(cv2.imread(str(tmp_path / "d-exif.jpg"),
                                     cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION), cv2.COLOR_BGR2RGB)
    write_rgb(tmp_path / "e-upright.png", np.ascontiguousarray(np.rot90(stored, -1)))
    r = featx("extract", "hog", tmp_path, "-o", tmp_path / "o.npy", "-q")
    assert r.returncode == 0, r.stderr
    m = np.load(tmp_path / "o.npy")
    a8, b16, alpha, exif, upright = m
    assert np.array_equal(a8, b16)
    assert np.array_equal(a8, alpha)
    assert np.array_equal(exif, upright)


@pytest.mark.slow
def test_interrupt_commits_what_was_done(tmp_path):
    """Ctrl-C mid-run: what was done is committed, exit 130, and the same command finishes
    the job.  The `slow` test extractor (20 ms an image) reports each image it has done, so
    the interrupt lands mid-run whatever the machine's speed (a busy disk can delay the
    first visible commit by seconds: waiting for that made the test flaky)."""
    d = tmp_path / "many"
    d.mkdir()
    n = 120  # interrupted after 40; at most 6 chunks of 4 are in flight then
    for i in range(n):
        os.link(SAMPLES / "rocket.jpg", d / f"{i:04d}.jpg")
    out = tmp_path / "o.npy"
    penv = plugin_env(tmp_path)
    progress = tmp_path / "progress"
    env = dict(os.environ, **penv, SLOW_PROGRESS=str(progress))
    args = ["--resize", "160x120", "-j", "2", "-q"]
    # as from a terminal: a test run started in the background (`&` in a script) ignores
    # SIGINT, and its children inherit that (Python then leaves Ctrl-C ignored, as it should)
    p = subprocess.Popen([sys.executable, "-m", "featx", "extract", "slow", str(d), "-o", str(out), *args,
                          "--commit-every", "0.1"], stderr=subprocess.PIPE, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 60
    while time.time() < deadline and p.poll() is None and (
            not progress.exists() or progress.stat().st_size < 40):  # ten chunks of 4 done
        time.sleep(0.01)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    side = json.loads((tmp_path / "o.npy.featx.json").read_text())
    assert side["status"] == "interrupted" and side["complete"] is False
    m = np.load(out)
    assert 0 < m.shape[0] < n and side["output"]["shape"] == list(m.shape)
    assert len(read_index(tmp_path / "o.index.csv")) == m.shape[0]
    assert not [x for x in tmp_path.iterdir() if "featx-tmp" in x.name or "spool" in x.name]
    # the same command again finishes the job
    r = featx_subprocess("extract", "slow", d, "-o", out, *args, "--summary-json", "-", env=dict(penv, SLOW_MS="1"))
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert s["up_to_date"] == m.shape[0] and s["processed"] == n - m.shape[0]
    assert np.load(out).shape[0] == n


def test_broken_plugin_is_listed_not_fatal(tmp_path):
    env = fake_plugin(tmp_path, "brokenplug", {"zzbroken": "brokenplug_missing:Thing"})
    r = featx_subprocess("list", env=env)
    assert r.returncode == 0
    line = next(l for l in r.stdout.decode().splitlines() if l.startswith("zzbroken"))
    assert "BROKEN" in line and "brokenplug" in line
    assert b"hog " in r.stdout  # the others still work
    r = featx_subprocess("extract", "zzbroken", SAMPLES / "coffee.jpg", "-o", "-", env=env)
    assert r.returncode == 2 and b"failed to load" in r.stderr


def test_show_writes_png(tmp_path):
    import cv2

    for name in ("hog", "gradients"):
        out = tmp_path / f"{name}.png"
        r = featx("show", name, SAMPLES / "astronaut.png", "-o", out)
        assert r.returncode == 0, r.stderr
        pic = cv2.imread(str(out))
        assert pic is not None and pic.shape[0] > 100 and pic.std() > 1
    r = featx("show", "hog", tmp_path / "nope.png", "-o", tmp_path / "x.png")
    assert r.returncode == 2 and b"nope.png" in r.stderr


def test_detect_writes_one_row_per_region(tmp_path):
    r = featx("detect", SAMPLES / "astronaut.png", SAMPLES / "coffee.jpg", "-o", tmp_path / "faces.csv", "-q")
    assert r.returncode == 0, r.stderr
    rows = read_index(tmp_path / "faces.csv")
    assert len(rows) == 1 and rows[0]["path"].endswith("astronaut.png")
    x, y, w, h = (int(rows[0][k]) for k in "xywh")
    assert 150 < x + w / 2 < 260 and 60 < y + h / 2 < 170  # the astronaut's face
    r = featx("detect", SAMPLES / "astronaut.png", "-o", tmp_path / "faces.npy")
    assert r.returncode == 2 and b"CSV" in r.stderr
    r = featx("detect", SAMPLES / "astronaut.png", "-o", "-", "--cascade", "nosuch")
    assert r.returncode == 2 and b"frontalface_default" in r.stderr


def test_regions_run_any_extractor_per_box(tmp_path, sample):
    import featx as api

    faces = tmp_path / "faces.csv"
    assert featx("detect", SAMPLES / "astronaut.png", "-o", faces, "-q").returncode == 0
    with open(faces, "a") as fh:
        fh.write(f"{SAMPLES / 'coffee.jpg'},10,20,120,90\n{SAMPLES / 'coffee.jpg'},9000,0,10,10\n")
    r = featx("extract", "hog", "--regions", faces, "-o", tmp_path / "r.csv", "--resize", "64x64", "-q")
    assert r.returncode == 1 and b"outside the image" in r.stderr  # the bad box fails alone
    rows = read_index(tmp_path / "r.csv")
    assert [(Path(r["path"]).name, r["x"], r["w"]) for r in rows] == [("astronaut.png", "177", "95"),
                                                                      ("coffee.jpg", "10", "120")]
    crop = sample("coffee.jpg")[20:110, 10:130]
    want = api.extract(crop, "hog", resize=(64, 64))
    got = np.array([float(v) for k, v in rows[1].items() if k.startswith("f")], dtype=np.float32)
    assert np.array_equal(got, want)  # the row is the extractor run on exactly that crop
    r = featx("extract", "hog", SAMPLES, "--regions", faces, "-o", "-")
    assert r.returncode == 2


@pytest.mark.slow
def test_sift_codebook_and_encodings_through_the_cli(tmp_path):
    cb = tmp_path / "cb.npz"
    r = featx("codebook", "sift", SAMPLES, "-k", "16", "-o", cb, "--gmm", "--resize", "320x240", "-q")
    assert r.returncode == 0, r.stderr
    for enc, d in (("bovw", 16), ("vlad", 16 * 128), ("fisher", 2 * 16 * 128)):
        out = tmp_path / f"{enc}.npy"
        r = featx("extract", "sift", SAMPLES, "-o", out, "--encode", enc, "--codebook", cb, "--resize", "320x240",
                  "-q")
        assert r.returncode == 0, r.stderr
        m = np.load(out)
        assert m.shape == (5, d) and np.isfinite(m).all()
        assert np.allclose(np.linalg.norm(m, axis=1), 1, atol=1e-5)  # power + L2 normalised
    # a codebook made for other descriptor parameters is refused before any work
    r = featx("extract", "sift", SAMPLES, "-o", tmp_path / "x.npy", "--encode", "vlad", "--codebook", cb,
              "--root-sift", "--resize", "320x240")
    assert r.returncode == 2 and b"root" in r.stderr.lower()
    # raw keypoints: npy-dir only, one .npz per image
    r = featx("extract", "sift", SAMPLES / "chelsea.png", "-o", tmp_path / "kp.npy")
    assert r.returncode == 2 and b"npy-dir" in r.stderr
    (tmp_path / "imgs").mkdir()
    shutil.copy(SAMPLES / "chelsea.png", tmp_path / "imgs" / "chelsea.png")
    r = featx("extract", "sift", "imgs", "-o", "kp/", "--max-keypoints", "50", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with np.load(tmp_path / "kp" / "imgs" / "chelsea.png.npz") as z:
        assert z["keypoints"].shape == (50, 6) and z["descriptors"].shape == (50, 128)


@pytest.mark.slow
def test_cnn_through_the_cli(tmp_path):
    imgs = [SAMPLES / "chelsea.png", SAMPLES / "coffee.jpg", SAMPLES / "astronaut.png"]
    r = featx("extract", "cnn", *imgs, "-o", tmp_path / "top.csv", "--top-k", "2", "-j", "1")
    assert r.returncode == 0, r.stderr
    assert b"CPUExecutionProvider" in r.stderr  # which provider ran is said, never silently chosen
    rows = read_index(tmp_path / "top.csv")
    assert rows[0]["top1_class"] in ("tabby, tabby cat", "tiger cat", "Egyptian cat")
    assert rows[1]["top1_class"] in ("espresso", "cup", "coffee mug")
    for j in ("1", "2"):
        r = featx("extract", "cnn", *imgs, "-o", tmp_path / f"e{j}.npy", "-j", j, "--batch-size", "2", "-q")
        assert r.returncode == 0, r.stderr
    e1, e2 = np.load(tmp_path / "e1.npy"), np.load(tmp_path / "e2.npy")
    assert e1.shape == (3, 1280) and np.allclose(e1, e2, atol=1e-5)
    side = json.loads((tmp_path / "e2.npy.featx.json").read_text())
    assert side["extractor_details"]["provider"] == "CPUExecutionProvider"
    assert side["extractor_details"]["preprocess"]["input_size"] == [224, 224]
    # batch size and threads do not change the output's identity: a re-run continues it
    r = featx("extract", "cnn", *imgs, "-o", tmp_path / "e2.npy", "-j", "1", "--summary-json", "-", "-q")
    assert r.returncode == 0 and json.loads(r.stderr.decode().splitlines()[-1])["up_to_date"] == 3
