"""Attacks on what featx writes: outputs damaged under a run, outputs in odd places, rows
counted twice, state files that are not there, a reader that goes away (issue 21, items
1, 3, 5, 6, 7, 8, 9, 10).  Each test reproduces the issue's report and asserts the
behaviour the issue asks for; they fail on the code the issue was filed against."""
from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import copy_samples, featx, featx_inprocess, ok, photo_crops, plugin_env


def sidecar(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".featx.json").read_text("utf-8"))


def err(r) -> str:
    return r.stderr.decode(errors="replace")


def index_rows(npy: Path) -> int:
    idx = npy.with_name(npy.stem + ".index.csv")
    return len(idx.read_text("utf-8").splitlines()) - 1


# ---------------------------------------------------------------------------
# 1. an output truncated or rewritten during a run


@pytest.mark.parametrize("out,damaged", [("h.npy", "h.npy"), ("h.csv", "h.csv"), ("h.npy", "h.index.csv")])
def test_i01_output_truncated_or_rewritten_mid_run_is_exit_74(tmp_path, out, damaged):
    """Item 1: `featx extract hog ds -o h.npy --commit-every 0.2 & sleep 1.1; truncate -s 1000
    h.npy; wait` -> exit 0, sidecar `complete`, and the next run says "up to date" over rows
    of zeros (the same for a .csv and a rewritten h.index.csv).  The README promises exit 74
    when an output changes under a run.  No race: the run is a `slow` plugin extractor that
    reports each image done; the test stops the run's process group, damages the file the
    run has committed to, and lets it go on."""
    src = photo_crops(tmp_path / "ds", 120, (64, 48))
    env = plugin_env(tmp_path)
    progress = tmp_path / "progress"
    p = subprocess.Popen([sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", out, "-j", "1",
                          "--commit-every", "0.05", "-q"], cwd=tmp_path, stderr=subprocess.PIPE,
                         env={**os.environ, **env, "SLOW_PROGRESS": str(progress)}, start_new_session=True)
    target = tmp_path / damaged
    try:
        deadline = time.monotonic() + 120
        # a known point: 15 images done and a commit on disk (the damaged file holds rows)
        while not (progress.exists() and progress.stat().st_size >= 15 and target.exists()
                   and target.stat().st_size > 1500):
            assert p.poll() is None, err(subprocess.CompletedProcess([], p.returncode, b"", p.stderr.read()))
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(p.pid, signal.SIGSTOP)
        try:
            assert progress.stat().st_size < 120   # work is left after the damage
            if damaged.endswith(".index.csv"):
                lines = target.read_bytes().splitlines(keepends=True)
                target.write_bytes(lines[0] + b"".join(reversed(lines[1:])))   # rewritten in place
            else:
                os.truncate(target, 1000)
        finally:
            os.killpg(p.pid, signal.SIGCONT)
        _, stderr = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 74, (p.returncode, stderr.decode(errors="replace")[-800:])
    assert sidecar(tmp_path / out)["status"] != "complete"


# ---------------------------------------------------------------------------
# 3. -o a device node


def test_i03_output_onto_a_device_node_is_refused_even_with_overwrite(tmp_path):
    """Item 3: `-o /dev/null --overwrite` replaces the device node with a regular file (as
    root, /dev/null itself).  The test makes its own character device (1,3 = null) so the
    real /dev/null is never at stake; featx must refuse anything that is not a regular file
    or a featx folder, and leave the node as it is."""
    if os.geteuid() != 0:
        pytest.skip("making a device node needs root")
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg"})
    for name in ("null.npy", "null.csv"):
        node = tmp_path / name
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        for extra in ([], ["--overwrite"]):
            r = featx_inprocess("extract", "hog", "s", "-o", name, "--resize", "64x64", *extra, cwd=tmp_path)
            assert r.returncode == 2, (name, extra, r.returncode, err(r)[-600:])
            assert stat.S_ISCHR(os.lstat(node).st_mode), (name, extra)
            assert name in err(r)


# ---------------------------------------------------------------------------
# 5. a recipe output inside another output's npy-dir


def test_i05_recipe_output_inside_another_outputs_npy_dir_is_refused(tmp_path):
    """Item 5: a recipe accepts an output inside another output's npy-dir (one overwrites the
    other's files, the next run says "up to date"); two separate `featx extract` runs refuse
    it.  The recipe must be refused before anything is written."""
    copy_samples(tmp_path, {"coffee.jpg": "coffee.jpg"})
    (tmp_path / "feats").mkdir()
    (tmp_path / "r.toml").write_text('inputs = ["coffee.jpg"]\n'
                                     '[[output]]\nextractor = "gradients"\npath = "feats/"\n'
                                     '[[output]]\nextractor = "hog"\npath = "feats/coffee.jpg.npy"\n'
                                     'resize = "64x64"\n')
    r = featx_inprocess("run", "r.toml", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert not any((tmp_path / "feats").rglob("*.npy"))


# ---------------------------------------------------------------------------
# 6. region outputs: stale rows and an empty boxes file


def _boxes(path: Path, rows: list[str]) -> Path:
    path.write_text("path,x,y,w,h\n" + "".join(r + "\n" for r in rows))
    return path


def test_i06_empty_boxes_file_on_a_fresh_output_is_zero_rows_exit_0(tmp_path):
    """Item 6: a nightly `detect` -> `extract --regions` job on a day with no faces gets exit 2
    "no images" for a fresh output.  An empty boxes list is a valid input: zero rows, exit 0."""
    copy_samples(tmp_path / "p", {"coffee.jpg": "coffee.jpg"})
    _boxes(tmp_path / "boxes.csv", [])
    r = featx_inprocess("extract", "hog", "--regions", "boxes.csv", "-o", "r.npy", "--resize", "32x32",
                        cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, err(r)[-600:])
    assert np.load(tmp_path / "r.npy").shape[0] == 0
    assert index_rows(tmp_path / "r.npy") == 0


def test_i06_prune_removes_region_rows_no_longer_listed(tmp_path):
    """Item 6: when today's boxes file no longer lists a box or an image (the image still
    exists), yesterday's rows stay, even with --prune; an empty boxes file on an existing
    output says "0 processed" and keeps every old row."""
    copy_samples(tmp_path / "p", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg"})
    args = ["extract", "hog", "--regions", "boxes.csv", "-o", "r.npy", "--resize", "32x32"]
    _boxes(tmp_path / "boxes.csv", ["p/coffee.jpg,0,0,64,64", "p/coffee.jpg,10,10,64,64", "p/rocket.jpg,0,0,64,64"])
    ok(featx_inprocess(*args, cwd=tmp_path))
    assert index_rows(tmp_path / "r.npy") == 3
    _boxes(tmp_path / "boxes.csv", ["p/coffee.jpg,0,0,64,64"])
    ok(featx_inprocess(*args, "--prune", cwd=tmp_path))
    assert index_rows(tmp_path / "r.npy") == 1
    assert np.load(tmp_path / "r.npy").shape[0] == 1
    _boxes(tmp_path / "boxes.csv", [])
    ok(featx_inprocess(*args, "--prune", cwd=tmp_path))
    assert index_rows(tmp_path / "r.npy") == 0
    assert np.load(tmp_path / "r.npy").shape[0] == 0


# ---------------------------------------------------------------------------
# 7. -o y.npy --format csv


def test_i07_csv_format_into_an_npy_name_is_refused(tmp_path):
    """Item 7: `-o y.npy --format csv` writes CSV text into a .npy (the opposite is refused)."""
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg"})
    r = featx_inprocess("extract", "hog", "s", "-o", "y.npy", "--format", "csv", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert not (tmp_path / "y.npy").exists()
    assert "y.npy" in err(r)


# ---------------------------------------------------------------------------
# 8. repeated inputs in one list


def test_i08_repeated_inputs_in_one_list_are_counted_once(tmp_path):
    """Item 8: `s/coffee.jpg`, `./s/coffee.jpg` and `s/../s/coffee.jpg` on stdin -> "3
    processed", sidecar rows: 3, one row in the file.  One file is one input."""
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg"})
    listing = b"s/coffee.jpg\n./s/coffee.jpg\ns/../s/coffee.jpg\n"
    r = ok(featx_inprocess("extract", "hog", "-", "-o", "h.npy", "--resize", "64x64", stdin=listing, cwd=tmp_path))
    assert index_rows(tmp_path / "h.npy") == 1
    meta = sidecar(tmp_path / "h.npy")["inputs"]
    assert meta["processed"] == 1 and meta["rows"] == 1, meta
    assert "1 processed" in err(r), err(r)


def test_i08_after_a_full_disk_the_counts_are_the_committed_rows(tmp_path):
    """Item 8: after a full disk the summary line and the sidecar counted rows that were never
    committed (261 vs 249).  The output cannot grow past RLIMIT_FSIZE (writes fail as on a
    full disk); commits are a second apart, so rows are pending when the write fails.  Whatever
    the timing, the sidecar's counts must be the rows the output holds."""
    import resource

    def limit():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)   # writes past the limit fail with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (150_000, 150_000))

    src = photo_crops(tmp_path / "ds", 40, (96, 96))
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "hog", str(src), "-o", "h.npy", "--resize",
                        "96x96", "-j", "1", "--commit-every", "1"], cwd=tmp_path, capture_output=True,
                       preexec_fn=limit, timeout=300)
    assert r.returncode == 74, (r.returncode, err(r)[-600:])
    meta = sidecar(tmp_path / "h.npy")
    rows = np.load(tmp_path / "h.npy").shape[0] if (tmp_path / "h.npy").exists() else 0
    assert meta["status"] == "failed"
    assert meta["inputs"]["rows"] == rows and meta["inputs"]["processed"] == rows, (meta["inputs"], rows)
    assert f"{rows} processed" in err(r), err(r)


# ---------------------------------------------------------------------------
# 9. a 0-byte state file


def test_i09_zero_byte_state_file_is_refused_like_a_missing_one(tmp_path):
    """Item 9: a 0-byte state file next to an existing output lets featx replace that output
    with no settings check (with no state file at all, featx refuses)."""
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg"})
    ok(featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path))
    before = (tmp_path / "h.npy").read_bytes()
    state = tmp_path / ".h.npy.featx-state"
    state.unlink()
    missing = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", "--cell-size", "16",
                              cwd=tmp_path)
    assert missing.returncode == 2, (missing.returncode, err(missing)[-600:])   # today's behaviour
    state.write_bytes(b"")
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", "--cell-size", "16", cwd=tmp_path)
    assert r.returncode == missing.returncode, (r.returncode, err(r)[-600:])
    assert (tmp_path / "h.npy").read_bytes() == before


# ---------------------------------------------------------------------------
# 10. a reader of stdout that goes away; a closed stdout


def test_i10_recipe_piped_into_head_leaves_interrupted_sidecars(tmp_path):
    """Item 10: `featx run r.toml | head -2` (one output to stdout, one to a file) leaves the
    file output's sidecar at `running` with committed rows - the README's word for a killed
    run.  It must say `interrupted` (with the committed counts)."""
    src = photo_crops(tmp_path / "ds", 120, (64, 48))
    (tmp_path / "r.toml").write_text(f'inputs = ["{src}"]\njobs = 1\ncommit-every = 0.05\n'
                                     '[[output]]\nextractor = "gradients"\npath = "-"\nformat = "csv"\n'
                                     '[[output]]\nextractor = "gradients"\npath = "g.npy"\n')
    r = subprocess.run(f"'{sys.executable}' -m featx run r.toml | head -2 > /dev/null", shell=True, cwd=tmp_path,
                       capture_output=True, timeout=300, executable="/bin/bash")
    meta = sidecar(tmp_path / "g.npy")
    assert meta["status"] == "interrupted", (meta["status"], err(r)[-600:])
    assert meta["inputs"]["rows"] == index_rows(tmp_path / "g.npy")


def test_i10_closed_stdout_is_no_traceback_and_leaves_no_spool(tmp_path):
    """Item 10: `featx extract gradients s -o gc.npy -j 2 >&-` is a traceback (executors.py,
    'NoneType' object has no attribute 'flush') that leaves a spool folder behind."""
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg",
                                  "chelsea.png": "chelsea.png"})
    r = subprocess.run(f"exec '{sys.executable}' -m featx extract gradients s -o gc.npy -j 2 >&-", shell=True,
                       cwd=tmp_path, capture_output=True, timeout=300, executable="/bin/bash")
    assert "Traceback" not in err(r), err(r)[-1500:]
    assert r.returncode == 0, (r.returncode, err(r)[-600:])
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([".gc.npy.featx-lock", ".gc.npy.featx-state", "gc.index.csv", "gc.npy",
                           "gc.npy.featx.json", "s"]), left


# ---------------------------------------------------------------------------
# found by attacking the fixes above through other doors (a recipe, -j 2, an npy-dir,
# Python, another folder)


def test_a_folder_name_with_a_one_file_format_is_refused(tmp_path):
    """``-o yd/ --format csv`` wrote a CSV file named ``yd`` (the / that says "a folder"
    dropped), ``--format npy`` said only "must end with .npy".  A name ending / with a
    one-file format is refused, with the two ways out."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    for fmt in ("csv", "npy"):
        r = featx("extract", "gradients", "s", "-o", "yd/", "--format", fmt, cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert f"--format {fmt} writes one file, not a folder (yd/)" in err(r), err(r)
        assert f"-o yd.{fmt}" in err(r) and "--format npy-dir" in err(r)
        assert not (tmp_path / "yd").exists()


# ---------------------------------------------------------------------------
# Repeated inputs


def test_extract_without_o_is_a_usage_error(tmp_path):
    """``featx extract hog samples/`` (the README's command without ``-o``) ran the whole
    job, kept nothing and said ``-> None (5, 128)``: the option table declares ``-o``
    required, but with click >= 8.3 an explicit ``default=None`` counts as a value.  It is
    exit 2 "Missing option '-o'" again, for the short form too; a --config file may give it."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    for name in ("gradients", "hog+gradients"):
        r = featx("extract", name, "s", cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert "Missing option '-o'" in err(r) and "None" not in err(r), err(r)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]
    (tmp_path / "c.toml").write_text('output = "cfg.npy"\n')
    ok(featx("extract", "gradients", "s", "--config", "c.toml", "-q", cwd=tmp_path))
    assert (tmp_path / "cfg.npy").exists()


# ---------------------------------------------------------------------------
# An output that is one of the run's own inputs


def test_an_output_is_never_a_file_the_run_reads(tmp_path):
    """``-o cam.png --format csv --overwrite`` on the input ``cam.png`` deleted the photo,
    then failed it as "no such file" (exit 1, an empty output); ``--regions bx.csv -o bx.csv
    --overwrite`` and ``--files-from l.txt -o l.txt`` replaced the list being read.  A file
    the run writes (data, sidecar, summary) that is a file it reads by name is refused,
    even with ``--overwrite``; an output inside an input folder is still fine."""
    s = copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "cam.png": "camera.png"})
    photo = (s / "cam.png").read_bytes()
    (tmp_path / "bx.csv").write_text(f"path,x,y,w,h\n{s / 'c.jpg'},0,0,40,40\n")
    (tmp_path / "l.txt").write_text("s/c.jpg\n")
    (tmp_path / "link.png").symlink_to(s / "cam.png")
    lists = {p: (tmp_path / p).read_bytes() for p in ("bx.csv", "l.txt")}
    for args in (["s/cam.png", "-o", "s/cam.png", "--format", "csv"],
                 ["s/cam.png", "-o", "link.png", "--format", "csv"],
                 ["--regions", "bx.csv", "-o", "bx.csv"],
                 ["--files-from", "l.txt", "-o", "l.txt", "--format", "csv"],
                 ["s/c.jpg", "s/cam.png", "-o", "g.npy", "--sidecar", "s/cam.png"],
                 ["s/cam.png", "-o", "g.npy", "--summary-json", "link.png"]):
        r = featx("extract", "gradients", *args, "--overwrite", cwd=tmp_path)
        assert r.returncode == 2, (args, err(r))
        assert "which this run reads" in err(r), (args, err(r))
        assert (s / "cam.png").read_bytes() == photo
        assert {p: (tmp_path / p).read_bytes() for p in lists} == lists
    ok(featx("extract", "gradients", "s", "-o", "s/g.npy", "-q", cwd=tmp_path))
    ok(featx("extract", "gradients", "s", "-o", "s/g.npy", "-q", cwd=tmp_path))


def test_merge_never_writes_over_one_of_its_shards(tmp_path):
    """``featx merge sh1.npy sh1.npy sh2.npy --overwrite`` deleted shard 1, then read it: a
    FileNotFoundError traceback, exit 1, and the shard's rows gone.  The merged output may
    not be one of the shards (by any spelling), with or without ``--overwrite``."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg", "cam.png": "camera.png"})
    for i in (1, 2):
        ok(featx("extract", "gradients", "s", "-o", f"sh{i}.npy", "--shard", f"{i}/2", "-q", cwd=tmp_path))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for out, cwd in (("sh1.npy", tmp_path), ("../sh2.npy", tmp_path / "s")):
        parts = ["sh1.npy", "sh2.npy"] if cwd == tmp_path else ["../sh1.npy", "./../sh2.npy"]
        r = featx("merge", out, *parts, "--overwrite", cwd=cwd)
        assert r.returncode == 2, err(r)
        assert "would replace the shard" in err(r) and "Traceback" not in err(r), err(r)
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    ok(featx("merge", "m.npy", "sh1.npy", "sh2.npy", cwd=tmp_path))


# ---------------------------------------------------------------------------
# featx codebook -o: the rules of the other outputs


def test_merge_never_replaces_a_device_or_fifo(tmp_path):
    """Item 3 made extract refuse an output that is not a regular file; ``featx merge
    dev.npy ... --overwrite`` (a link to /dev/null) and ``merge fifo.csv ...`` still
    replaced them with regular files."""
    import os

    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    for i in (1, 2):
        ok(featx("extract", "gradients", "s", "-o", f"sh{i}.csv", "--shard", f"{i}/2", "-q", cwd=tmp_path))
    (tmp_path / "dev.csv").symlink_to(os.devnull)
    os.mkfifo(tmp_path / "fifo.csv")
    for out, kind in (("dev.csv", "a device"), ("fifo.csv", "a FIFO")):
        r = featx("merge", out, "sh1.csv", "sh2.csv", "--overwrite", cwd=tmp_path)
        assert r.returncode == 2 and f"is {kind}, not a file featx can write" in err(r), err(r)
    assert (tmp_path / "dev.csv").is_symlink() and (tmp_path / "fifo.csv").is_fifo()


def test_codebook_and_merge_into_a_missing_folder_are_refused(tmp_path):
    """``featx codebook ... -o nodir/cb.npz`` learnt the codebook, then ended in a
    FileNotFoundError traceback; ``featx merge nodir/m.npy ...`` too (its lock file).  Both
    say "output folder ... does not exist" before any work, as extract does."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    for i in (1, 2):
        ok(featx("extract", "gradients", "s", "-o", f"sh{i}.npy", "--shard", f"{i}/2", "-q", cwd=tmp_path))
    for args in (["codebook", "sift", "s", "-k", "8", "-o", "nodir/cb.npz"],
                 ["merge", "nodir/m.npy", "sh1.npy", "sh2.npy"]):
        r = featx(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, err(r))
        assert "output folder" in err(r) and "does not exist" in err(r) and "Traceback" not in err(r), err(r)
    assert not (tmp_path / "nodir").exists()
