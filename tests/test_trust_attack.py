"""Attacks on what issue 20/21 built (the run options in one place, side files that never
replace what featx did not write, ...), tried as an adversary and as a new user would:
the same attack through another door (a recipe, ``-j 2``, an npy-dir, Python, another
folder).  Each test is a hole that was found and closed."""
from __future__ import annotations

import json
from pathlib import Path

from helpers import copy_samples, featx, ok


def err(r) -> str:
    return r.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------
# Side files: another output's sidecar


def test_sidecar_or_summary_never_replaces_another_outputs_sidecar(tmp_path):
    """``--sidecar a.npy.featx.json`` on the run of ``b.npy`` (or ``--summary-json`` naming
    it) was accepted because featx wrote that file, and a's provenance and failure list
    (which `featx merge` reads) were replaced by b's.  Another existing output's sidecar is
    refused as a file featx did not write for this output is; the output's own sidecar,
    a summary file, and ``--overwrite`` still go through."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    ok(featx("extract", "gradients", "s", "-o", "a.npy", "-q", cwd=tmp_path))
    side = tmp_path / "a.npy.featx.json"
    before = side.read_bytes()
    for opt in ("--sidecar", "--summary-json"):
        r = featx("extract", "gradients", "s", "-o", "b.npy", opt, "a.npy.featx.json", cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert f"is the sidecar of the output {tmp_path / 'a.npy'}" in err(r), err(r)
        assert side.read_bytes() == before
        assert not (tmp_path / "b.npy").exists()
    # a recipe's sidecar= goes through the same check
    (tmp_path / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\n'
                                     'sidecar = "a.npy.featx.json"\n')
    r = featx("run", "r.toml", cwd=tmp_path)
    assert r.returncode == 2 and "is the sidecar of the output" in err(r), err(r)
    assert side.read_bytes() == before
    # its own sidecar, named explicitly and from another folder: still its own
    ok(featx("extract", "gradients", ".", "-o", "../a.npy", "--sidecar", "../a.npy.featx.json", "-q",
             cwd=tmp_path / "s"))
    assert json.loads(side.read_text())["output"]["path"] == str(tmp_path / "a.npy")
    # a summary file is rewritten run after run
    for _ in range(2):
        ok(featx("extract", "gradients", "s", "-o", "a.npy", "--summary-json", "sum.json", "-q", cwd=tmp_path))
    # --overwrite: the user said so
    ok(featx("extract", "gradients", "s", "-o", "b.npy", "--sidecar", "a.npy.featx.json", "--overwrite", "-q",
             cwd=tmp_path))
    assert json.loads(side.read_text())["output"]["path"] == str(tmp_path / "b.npy")


def test_a_moved_folder_of_outputs_keeps_its_sidecars(tmp_path):
    """A sidecar records its output's absolute path: after ``mv feats feats2`` the output's
    own sidecar (and one named beside it, whose recorded output is gone) is still its own."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    (tmp_path / "feats").mkdir()
    ok(featx("extract", "gradients", "s", "-o", "feats/g.npy", "-q", cwd=tmp_path))
    ok(featx("extract", "gradients", "s", "-o", "feats/h.npy", "--sidecar", "feats/h.json", "-q", cwd=tmp_path))
    (tmp_path / "feats").rename(tmp_path / "feats2")
    ok(featx("extract", "gradients", "s", "-o", "feats2/g.npy", "-q", cwd=tmp_path))
    ok(featx("extract", "gradients", "s", "-o", "feats2/h.npy", "--sidecar", "feats2/h.json", "-q", cwd=tmp_path))


# ---------------------------------------------------------------------------
# Format and name agree


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


def test_a_folder_named_twice_counts_its_skipped_files_once(tmp_path):
    """Item 8 made a repeated file count once, but a folder named twice (``s s``,
    ``s ./s/``) or with one of its subfolders (``s/sub s``) still said "2 non-image files
    skipped, 2 videos skipped" for one of each, in the summary line and the sidecar."""
    s = copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "clip.mp4": "clip.mp4", "README.md": "README.md"})
    (s / "sub").mkdir()
    copy_samples(s / "sub", {"r.jpg": "rocket.jpg"})
    (s / "sub" / "notes.txt").write_text("notes\n")
    for i, args in enumerate((["s"], ["s", "s"], ["s", "./s/"], ["s/sub", "s"], ["s", "s/sub"])):
        r = ok(featx("extract", "gradients", *args, "-o", f"o{i}.npy", cwd=tmp_path))
        assert "2 processed, 2 non-image files skipped, 1 video skipped" in err(r), (args, err(r))
        side = json.loads((tmp_path / f"o{i}.npy.featx.json").read_text())["inputs"]
        assert (side["skipped_non_images"], side["skipped_videos"]) == (2, 1), args


# ---------------------------------------------------------------------------
# Python API


def test_the_script_guard_message_says_where_jobs_came_from(tmp_path):
    """``featx.run("features.toml")`` at a script's top level (no jobs given) was refused
    "with jobs=2", a number the user never wrote; the message says it is the default.
    (A script run by a fresh interpreter: the process boundary is the point.)"""
    import os
    import subprocess
    import sys

    copy_samples(tmp_path / "photos", {"a.jpg": "coffee.jpg"})
    (tmp_path / "job.py").write_text(
        'import featx\nfeatx.run(inputs=["photos/"], outputs=[{"extractor": "gradients", "path": "g.npy"}])\n')
    env = {k: v for k, v in os.environ.items() if k != "FEATX_CACHE_DIR"}
    r = subprocess.run([sys.executable, "job.py"], cwd=tmp_path, capture_output=True, timeout=300, env=env)
    if os.cpu_count() == 1 or r.returncode == 0:
        return  # one CPU (or fork): no worker processes, no guard needed
    assert "(jobs not given: one worker per CPU)" in err(r), err(r)[-2000:]


def test_sidecar_dash_is_not_a_file_named_dash(tmp_path):
    """``--summary-json -`` prints the summary, ``-o -`` writes to stdout, but ``--sidecar -``
    silently wrote a file named ``-`` in the working folder.  It is refused, before any
    work, and ``./-`` still names that file on purpose."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    for out in ("-", "a.npy"):
        r = featx("extract", "gradients", "s", "-o", out, "--sidecar", "-", cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert "--sidecar - would name a file '-'" in err(r) and r.stdout == b""
        assert not (tmp_path / "-").exists() and not (tmp_path / "a.npy").exists()
    ok(featx("extract", "gradients", "s", "-o", "a.npy", "--sidecar", "./-", "-q", cwd=tmp_path))
    assert json.loads((tmp_path / "-").read_text())["featx_sidecar"]


# ---------------------------------------------------------------------------
# A newcomer's first commands


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


def test_codebook_output_is_an_npz_that_is_not_an_input_nor_a_device(tmp_path):
    """``featx codebook -o`` had none of the output rules: ``-o cb.jpg`` wrote a zip named
    .jpg (the next walk of the folder takes it for a photo and fails it), ``-o c.jpg
    --overwrite`` on its own input replaced the photo, and a device (``-o dev.npz``, a link
    to /dev/null) would be replaced by a regular file.  The name must end .npz, and the
    file may be neither one the run reads nor anything but a regular file."""
    import os

    s = copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    photo = (s / "c.jpg").read_bytes()
    r = featx("codebook", "sift", "s", "-k", "8", "-o", "cb.jpg", cwd=tmp_path)
    assert r.returncode == 2 and "a codebook is an .npz archive" in err(r), err(r)
    assert not (tmp_path / "cb.jpg").exists()
    (tmp_path / "c.npz").symlink_to(s / "c.jpg")
    r = featx("codebook", "sift", "s/c.jpg", "s/r.jpg", "-k", "8", "-o", "c.npz", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "is a file this run reads" in err(r), err(r)
    assert (s / "c.jpg").read_bytes() == photo and (tmp_path / "c.npz").is_symlink()
    (tmp_path / "dev.npz").symlink_to(os.devnull)
    r = featx("codebook", "sift", "s", "-k", "8", "-o", "dev.npz", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "not a file featx can write" in err(r), err(r)
    assert (tmp_path / "dev.npz").is_symlink()
    ok(featx("codebook", "sift", "s", "-k", "8", "-o", "cb.NPZ", "-q", cwd=tmp_path))


def test_show_into_a_missing_folder_is_refused_before_the_work(tmp_path):
    """``featx show hog c.jpg -o nodir/x.png`` rendered the picture, then ended in a
    FileNotFoundError traceback from the atomic write; extract says "output folder ... does
    not exist" before any work, and so does show now."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    r = featx("show", "hog", "s/c.jpg", "-o", "nodir/x.png", cwd=tmp_path)
    assert r.returncode == 2, err(r)
    assert "output folder" in err(r) and "does not exist" in err(r) and "Traceback" not in err(r), err(r)
    ok(featx("show", "hog", "s/c.jpg", "-o", "x.png", cwd=tmp_path))


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


def test_a_side_file_in_a_missing_folder_is_refused_before_the_work(tmp_path):
    """``--sidecar nodir/x.json`` was a FileNotFoundError traceback (with the lock taken),
    ``--summary-json nodir/x.json`` one after all the work was committed; from a recipe's
    ``sidecar =`` too.  Each is a usage error before anything is written."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    (tmp_path / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "gradients"\npath = "r.npy"\n'
                                     'sidecar = "nodir/x.json"\n')
    for args, what in ((["extract", "gradients", "s", "-o", "a.npy", "--sidecar", "nodir/x.json"], "sidecar"),
                       (["extract", "gradients", "s", "-o", "b.npy", "--summary-json", "nodir/x.json"], "summary file"),
                       (["run", "r.toml"], "sidecar")):
        r = featx(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, err(r))
        assert f"the folder of the {what} {tmp_path / 'nodir' / 'x.json'} does not exist" in err(r), err(r)
        assert "Traceback" not in err(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml", "s"]
