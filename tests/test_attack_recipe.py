"""Adversarial tests of recipes and the run description (issue 13): `featx run`, the short
form `featx extract a+b+c`, `featx.run`, and what they share with single runs.  Each test
failed when it was written (the README promise it breaks is named in its docstring); a
small fix in the library makes it pass.  Real photos from samples/ throughout."""
from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import copy_samples, featx, featx_inprocess, ok, output_files, photo_crops


def write_recipe(path: Path, inputs: list | None, outputs: list[dict], **run) -> Path:
    """A recipe file: ``outputs`` as dicts of keys (paths as written, relative to the recipe)."""
    lines = [f"inputs = {json.dumps([str(p) for p in inputs])}"] if inputs is not None else []
    lines += [f"{k.replace('_', '-')} = {json.dumps(v)}" for k, v in run.items()]
    for o in outputs:
        lines += ["", "[[output]]"] + [f"{k} = {json.dumps(v)}" for k, v in o.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


data_files = output_files  # what a reader sees of an output (tests/helpers.py)


def limit_file_size(nbytes: int):
    """A preexec_fn: every file of the run (and its workers) may grow to ``nbytes`` only,
    and writes past it fail with EFBIG as on a full disk (as test_faults_outputs does)."""
    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (nbytes, nbytes))
    return pre


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return photo_crops(tmp_path_factory.mktemp("photos") / "in", 6, (160, 120))


# ---------------------------------------------------------------------------
# byte-identity with separate runs


def test_a_stdout_output_does_not_change_the_other_outputs_when_an_input_is_named_twice(tmp_path, photos):
    """README: every output of a recipe is 'byte-identical to what a separate featx extract
    NAME with the same settings writes'.  An input named twice (a file, then its folder)
    is redone by a stateful output (the later rows win); a recipe with a CSV on stdout
    folded the repeat for every output, so the npy and csv outputs beside it came out in
    another row order than their separate runs."""
    first = photos / "img003.png"
    inputs = [first, photos, str(photos) + "/./img003.png"]
    outs = [{"extractor": "gradients", "path": "-", "grid": "2x2"},
            {"extractor": "hog", "path": "h.npy", "resize": "64x64"},
            {"extractor": "gradients", "path": "g.csv", "grid": "2x2"}]
    r = write_recipe(tmp_path / "r.toml", inputs, outs)
    streamed = ok(featx_inprocess("run", r, "-j", "1", "-q")).stdout
    ref = tmp_path / "ref"
    ref.mkdir()
    alone = ok(featx_inprocess("extract", "gradients", *inputs, "-o", "-", "--grid", "2x2", "-q")).stdout
    ok(featx_inprocess("extract", "hog", *inputs, "-o", ref / "h.npy", "--resize", "64x64", "-q"))
    ok(featx_inprocess("extract", "gradients", *inputs, "-o", ref / "g.csv", "--grid", "2x2", "-q"))
    assert streamed == alone
    assert data_files(tmp_path / "h.npy") == data_files(ref / "h.npy")
    assert data_files(tmp_path / "g.csv") == data_files(ref / "g.csv")
    assert len(streamed.splitlines()) == 1 + 6   # the stream still has each input once


# ---------------------------------------------------------------------------
# --print-recipe


def test_print_recipe_round_trips_wherever_the_recipe_is_saved(tmp_path, photos):
    """README: '--print-recipe prints the job as a recipe to edit', and a recipe's paths
    are relative to its own folder.  The printed paths were the command line's, relative
    to the working folder: saved anywhere else, the recipe read other inputs and wrote
    other outputs (here: none existed, exit 2)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "photos").symlink_to(photos)
    ok(featx_inprocess("extract", "hog+gradients", "photos", "-o", "feats/", "--resize", "64x64", "-q", cwd=work))
    text = ok(featx_inprocess("extract", "hog+gradients", "photos", "-o", "feats/", "--resize", "64x64",
                    "--print-recipe", cwd=work)).stdout
    (tmp_path / "jobs").mkdir()
    saved = tmp_path / "jobs" / "again.toml"
    saved.write_bytes(text)
    res = ok(featx_inprocess("run", saved, cwd="/"))
    err = res.stderr.decode()
    assert err.count("0 processed, 6 up to date") == 2, err          # the same outputs, found
    assert not (tmp_path / "jobs" / "feats").exists()
    # and a recipe's own printout, with inputs given on the command line, the same
    text2 = ok(featx_inprocess("run", saved, "photos", "--print-recipe", cwd=work)).stdout
    (tmp_path / "jobs" / "third.toml").write_bytes(text2)
    err = ok(featx_inprocess("run", tmp_path / "jobs" / "third.toml", cwd="/")).stderr.decode()
    assert err.count("0 processed, 6 up to date") == 2, err


def test_print_recipe_refuses_a_path_that_toml_cannot_hold(tmp_path, photos):
    """--print-recipe must print a recipe `featx run` reads.  A folder named with bytes
    that are not UTF-8 (legal on Linux, and featx reads and writes there) cannot be
    written in TOML: it printed the raw bytes, a file that `featx run` refuses as
    'not UTF-8 text'.  It is now a usage error that says so."""
    odd = os.fsencode(str(tmp_path)) + b"/caf\xe9"
    os.mkdir(odd)
    res = featx("extract", "hog+gradients", photos, "-o", os.fsdecode(odd) + "/", "--print-recipe")
    assert res.returncode == 2, res.stdout[:200]
    assert b"Traceback" not in res.stderr and b"UTF-8" in res.stderr
    assert res.stdout == b""


# ---------------------------------------------------------------------------
# outputs that share files


@pytest.mark.parametrize("case", ["index", "shared-sidecar", "sidecar-on-data"])
def test_outputs_that_would_write_the_same_file_are_refused_before_any_work(tmp_path, photos, case):
    """README: 'Every output is a first-class output' with its own files.  Only the output
    paths were compared: an npy output's index (h.index.csv) could be another output's
    CSV (exit 74 after hog's index had been overwritten by gradients' rows), two outputs
    could share one sidecar (one record silently lost), and a sidecar could be another
    output's data file (its rows replaced by JSON)."""
    outs = {"index": [{"extractor": "hog", "path": "h.npy", "resize": "64x64"},
                      {"extractor": "gradients", "path": "h.index.csv"}],
            "shared-sidecar": [{"extractor": "hog", "path": "h.npy", "resize": "64x64", "sidecar": "meta.json"},
                               {"extractor": "gradients", "path": "g.csv", "sidecar": "meta.json"}],
            "sidecar-on-data": [{"extractor": "gradients", "path": "g.csv"},
                                {"extractor": "hog", "path": "h.npy", "resize": "64x64", "sidecar": "g.csv"}]}[case]
    r = write_recipe(tmp_path / "r.toml", [photos], outs)
    res = featx("run", r)
    err = res.stderr.decode()
    assert res.returncode == 2 and "Traceback" not in err, err
    assert "the same file" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]   # nothing created


def test_a_sidecar_named_as_its_own_output_is_refused(tmp_path, photos):
    """The same in a single run: `--sidecar` naming the output itself wrote the JSON record
    over the rows, exit 0."""
    res = featx("extract", "gradients", photos, "-o", tmp_path / "g.csv", "--sidecar", tmp_path / "g.csv")
    assert res.returncode == 2 and b"the same file" in res.stderr, res.stderr
    assert not (tmp_path / "g.csv").exists()


# ---------------------------------------------------------------------------
# shards


def test_the_short_form_takes_shard_in_its_folder(tmp_path, photos):
    """README: '{shard} in an output path becomes 2of8 with --shard 2/8'.  The short form
    made the folder as written (a literal 'f{shard}/'), then wrote into f1of2/, which did
    not exist: exit 2."""
    ok(featx("extract", "hog+gradients", photos, "-o", "f{shard}/", "--shard", "1/2", "--resize", "64x64", "-q",
             cwd=tmp_path))
    ok(featx("extract", "hog+gradients", photos, "-o", "f{shard}/", "--shard", "2/2", "--resize", "64x64", "-q",
             cwd=tmp_path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f1of2", "f2of2"]
    rows = sum(np.load(tmp_path / f"f{i}of2" / "hog.npy").shape[0] for i in (1, 2))
    assert rows == 6


# ---------------------------------------------------------------------------
# garbage recipes


@pytest.mark.parametrize("bad", ['extractor = 3\npath = "h.npy"',
                                 'extractor = ["hog"]\npath = "h.npy"',
                                 'extractor = "os:path"\npath = "h.npy"',
                                 'extractor = "json:nothing_here"\npath = "h.npy"',
                                 'extractor = "hog"\npath = ""',
                                 'extractor = "hog"\npath = "h.npy"\nresize = [1.5, 2]',
                                 'extractor = "hog"\npath = "h.npy"\nresize = [true, 64]'])
def test_a_garbage_output_table_is_a_usage_error_naming_the_file(tmp_path, photos, bad):
    """README: recipe errors name the file and the key, exit 2.  An extractor that is not a
    string, or a module:attribute that is no extractor, ended in a Python traceback (exit 1);
    an empty path wrote into the recipe's own folder; resize = [1.5, 2] was cut to 1x2."""
    r = tmp_path / "r.toml"
    r.write_text(f'inputs = ["{photos}"]\n[[output]]\n{bad}\n')
    res = featx("run", r)
    err = res.stderr.decode()
    assert res.returncode == 2 and "Traceback" not in err, err
    assert str(r) in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml"]


def test_a_missing_files_from_list_is_a_usage_error(tmp_path, photos):
    """README exit codes: 2 for a usage error.  --files-from naming a file that does not exist
    ended in a FileNotFoundError traceback (exit 1), for `featx extract` and in a recipe."""
    res = featx("extract", "gradients", "--files-from", tmp_path / "nope.txt", "-o", tmp_path / "g.npy")
    assert res.returncode == 2 and b"Traceback" not in res.stderr and b"nope.txt" in res.stderr, res.stderr
    r = write_recipe(tmp_path / "r.toml", None, [{"extractor": "gradients", "path": "g.npy"}],
                     files_from=["nope.txt"])
    res = featx("run", r)
    assert res.returncode == 2 and b"Traceback" not in res.stderr and b"nope.txt" in res.stderr, res.stderr
    assert not (tmp_path / "g.npy").exists()


# ---------------------------------------------------------------------------
# featx run: what the command line replaces


def test_inputs_given_to_featx_run_replace_the_recipes_however_they_are_given(tmp_path, photos):
    """README: 'inputs and options given here replace the recipe's'.  --files-from on the
    command line was added to the recipe's inputs (all 6 photos plus the list), and INPUTS
    on the command line were added to a recipe's files-from list."""
    listing = tmp_path / "two.txt"
    listing.write_text("".join(f"{photos / n}\n" for n in ("img000.png", "img001.png")))
    r = write_recipe(tmp_path / "r.toml", [photos], [{"extractor": "gradients", "path": "g.npy"}])
    ok(featx("run", r, "--files-from", listing, "-q"))
    assert np.load(tmp_path / "g.npy").shape[0] == 2
    r2 = write_recipe(tmp_path / "r2.toml", None, [{"extractor": "gradients", "path": "g2.npy"}],
                      files_from=[str(listing)])
    ok(featx("run", r2, photos / "img005.png", "-q"))
    keys = (tmp_path / "g2.index.csv").read_text().splitlines()[1:]
    assert [k.split(",", 1)[1] for k in keys] == [str(photos / "img005.png")]


# ---------------------------------------------------------------------------
# featx.run in Python


@pytest.mark.parametrize("field", [{"shard": (3, 2)}, {"timeout": -1.0}, {"executor": "dask"},
                                   {"jobs": -3}, {"commit_every": -1.0}, {"max_memory": -1},
                                   {"output": {"resize": (0, 5)}}, {"output": {"resize_mode": "zoom"}},
                                   {"output": {"extractor": 3}}])
def test_featx_run_in_python_refuses_bad_fields_before_any_work(tmp_path, photos, field):
    """README: the command line, recipes and Python build the same run description.  Python
    callers got none of the checks: shard (3, 2) silently wrote nothing, timeout=-1 failed
    every input, executor='dask' ran locally, resize (0, 5) or resize_mode='zoom' failed
    every input, extractor=3 raised a TypeError."""
    import featx as fx
    from featx.errors import UsageError

    out = {"extractor": "gradients", "path": str(tmp_path / "g.npy"), **field.pop("output", {})}
    with pytest.raises(UsageError):
        fx.run(inputs=[str(photos)], outputs=[out], **{"jobs": 1, **field})
    assert list(tmp_path.iterdir()) == []


def test_featx_run_in_python_takes_one_input_as_a_string_and_sizes_as_text(tmp_path, photos):
    """`featx.extract_files("photos/", ...)` takes one path as a string; `featx.run(inputs=
    "photos/")` read it letter by letter ('no such file or folder: i, n'), and resize="64x64"
    (the recipe's and the flag's spelling) raised a TypeError deep in the extractor."""
    import featx as fx

    res = fx.run(inputs=str(photos), jobs=1, max_memory="1G",
                    outputs=[{"extractor": "hog", "path": str(tmp_path / "h.npy"), "resize": "64x64"}])
    assert res.exit_code == 0 and res.outputs[0].summary.processed == 6
    (tmp_path / "cli").mkdir()
    ok(featx("extract", "hog", photos, "-o", tmp_path / "cli" / "h.npy", "--resize", "64x64", "-q"))
    assert data_files(tmp_path / "h.npy") == data_files(tmp_path / "cli" / "h.npy")


# ---------------------------------------------------------------------------
# regions


def test_every_box_of_a_regions_file_gets_its_row_whatever_the_order_of_the_rows(tmp_path):
    """README: 'one row per region'.  Boxes of one image that were not on consecutive rows
    (or named once as x.png and once as ./x.png) became two inputs of the same path; the
    second replaced the first one's rows: 3 boxes, 2 rows, exit 0 — in a recipe and alone."""
    copy_samples(tmp_path, {"a.png": "astronaut.png", "c.jpg": "coffee.jpg"})
    (tmp_path / "boxes.csv").write_text("path,x,y,w,h\na.png,10,10,100,80\nc.jpg,5,5,300,200\n"
                                        "./a.png,200,30,90,120\n")
    ok(featx_inprocess("extract", "gradients", "--regions", "boxes.csv", "-o", "alone.csv", "-q", cwd=tmp_path))
    r = write_recipe(tmp_path / "r.toml", None, [{"extractor": "gradients", "path": "g.csv"},
                                                 {"extractor": "hog", "path": "h.npy", "resize": "64x64"}],
                     regions="boxes.csv")
    ok(featx_inprocess("run", r, "-q", cwd=tmp_path))   # (paths in a boxes file are taken from the working folder)
    for csv in (tmp_path / "alone.csv", tmp_path / "g.csv"):
        boxes = sorted(tuple(line.split(",")[1:5]) for line in csv.read_text().splitlines()[1:])
        assert boxes == [("10", "10", "100", "80"), ("200", "30", "90", "120"), ("5", "5", "300", "200")], csv
    assert np.load(tmp_path / "h.npy").shape[0] == 3
    # the run after finds them all up to date
    again = ok(featx_inprocess("run", r, cwd=tmp_path)).stderr.decode()
    assert again.count("0 processed, 2 up to date") == 2, again


# ---------------------------------------------------------------------------
# a full disk


@pytest.mark.slow
def test_a_full_disk_under_worker_processes_is_an_output_error_not_failed_inputs(tmp_path, photos):
    """README exit codes: 74 when an output cannot be written, 'what was committed is kept';
    an input fails for its own reasons.  With -j 2 the workers' spool files hit the full
    disk and every input of the chunk was reported as failed ('OSError: [Errno 27] File too
    large') for every output of the recipe, the small ones too; their sidecars listed them."""
    outs = [{"extractor": "hog", "path": "h.npy", "resize": "96x96"},
            {"extractor": "gradients", "path": "g.csv", "grid": "2x2"}]
    r = write_recipe(tmp_path / "r.toml", [photos], outs, commit_every=0)
    cmd = [sys.executable, "-m", "featx", "run", str(r), "-j", "2"]
    res = subprocess.run(cmd, capture_output=True, preexec_fn=limit_file_size(60_000))
    err = res.stderr.decode()
    assert res.returncode == 74 and "Traceback" not in err, err
    assert "File too large" in err and "OSError" not in err, err
    side = json.loads((tmp_path / "g.csv.featx.json").read_text())
    assert side["inputs"]["failed"] == 0 and side["failures"] == [], side["failures"]
    ok(subprocess.run(cmd, capture_output=True))
    ref = tmp_path / "ref"
    ref.mkdir()
    ok(featx("extract", "hog", photos, "-o", ref / "h.npy", "--resize", "96x96", "-q"))
    ok(featx("extract", "gradients", photos, "-o", ref / "g.csv", "--grid", "2x2", "-q"))
    assert data_files(tmp_path / "h.npy") == data_files(ref / "h.npy")
    assert data_files(tmp_path / "g.csv") == data_files(ref / "g.csv")


def test_the_output_that_hit_the_full_disk_is_the_one_that_fails(tmp_path, photos):
    """Each output keeps its own sidecar and summary: the one that could not be written is
    'failed', the others 'interrupted'.  With outputs g/ and g2/ the error about g2/ was
    pinned on g/ (its path is a prefix of g2's): g/ said 'stopped early', g2/ nothing."""
    outs = [{"extractor": "gradients", "path": "g/", "grid": "2x2"},
            {"extractor": "hog", "path": "g2/", "resize": "128x128"}]
    r = write_recipe(tmp_path / "r.toml", [photos], outs, commit_every=0)
    res = subprocess.run([sys.executable, "-m", "featx", "run", str(r), "-j", "1"], capture_output=True,
                         preexec_fn=limit_file_size(40_000))
    err = res.stderr.decode()
    assert res.returncode == 74, err
    status = {n: json.loads((tmp_path / f"{n}.featx.json").read_text())["status"] for n in ("g", "g2")}
    assert status == {"g": "interrupted", "g2": "failed"}, (status, err)
    assert "hog: 0 processed, stopped early" in err, err


# ---------------------------------------------------------------------------
# changing one output of a recipe


def test_one_output_with_new_settings_is_redone_alone_once_its_files_are_deleted(tmp_path, photos):
    """README: an output made with other settings is refused, and an output whose files were
    deleted 'is rebuilt from scratch'.  Both at once — the way to redo one output of a
    recipe with new settings — was refused ('made with other settings': the rebuilt output
    kept the old settings to check against), and the hint named --overwrite, which in a
    recipe starts every output afresh."""
    outs = [{"extractor": "hog", "path": "h.npy", "resize": "64x64"},
            {"extractor": "gradients", "path": "g.csv", "grid": "2x2"}]
    r = write_recipe(tmp_path / "r.toml", [photos], outs)
    ok(featx_inprocess("run", r, "-q"))
    outs[0]["cell-size"] = 16
    write_recipe(r, [photos], outs)
    res = featx_inprocess("run", r)
    err = res.stderr.decode()
    assert res.returncode == 2 and "h.npy was made with other settings" in err, err
    assert "every output" in err, err                 # the hint says what --overwrite would do here
    (tmp_path / "h.npy").unlink()
    (tmp_path / "h.index.csv").unlink()
    err = ok(featx_inprocess("run", r)).stderr.decode()
    assert "hog: 6 processed" in err and "gradients: 0 processed, 6 up to date" in err, err
    ref = tmp_path / "ref"
    ref.mkdir()
    ok(featx_inprocess("extract", "hog", photos, "-o", ref / "h.npy", "--resize", "64x64", "--cell-size", "16", "-q"))
    assert data_files(tmp_path / "h.npy") == data_files(ref / "h.npy")


def test_inputs_given_to_featx_run_in_python_replace_a_recipes_list(tmp_path, photos):
    """The same for `featx.run("recipe.toml", inputs=[...])`: the recipe's files-from list
    was read as well."""
    import featx as fx

    listing = tmp_path / "two.txt"
    listing.write_text("".join(f"{photos / n}\n" for n in ("img000.png", "img001.png")))
    r = write_recipe(tmp_path / "r.toml", None, [{"extractor": "gradients", "path": "g.npy"}],
                     files_from=[str(listing)])
    res = fx.run(str(r), inputs=[str(photos / "img004.png")], jobs=1)
    assert res.exit_code == 0 and res.outputs[0].summary.processed == 1


def test_the_closing_line_names_the_sidecars_that_list_failures(tmp_path, photos):
    """'N input(s) failed ...; they are listed in SIDECARS' named every output's sidecar,
    also those of outputs for which nothing failed (whose sidecars list nothing)."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    (src / "a.png").write_bytes((photos / "img000.png").read_bytes())
    cv2.imwrite(str(src / "tiny.png"), cv2.imread(str(photos / "img001.png"))[:10, :10])  # too small for hog
    r = write_recipe(tmp_path / "r.toml", [src], [{"extractor": "hog", "path": "h.npy"},
                                                  {"extractor": "gradients", "path": "g.npy"}])
    res = featx_inprocess("run", r)
    last = res.stderr.decode().strip().splitlines()[-1]
    assert res.returncode == 1 and "listed in" in last, last
    assert "h.npy.featx.json" in last and "g.npy.featx.json" not in last, last


def test_the_short_form_with_format_npy_dir_writes_folders_named_after_the_extractors(tmp_path, photos):
    """README: the short form writes 'feats/hog.npy, or feats/sift/ for keypoints and maps'.
    With --format npy-dir it wrote folders named feats/hog.npy/ and feats/gradients.npy/."""
    ok(featx_inprocess("extract", "hog+gradients", photos, "-o", f"{tmp_path}/feats/", "--format", "npy-dir",
                       "--resize", "64x64", "-q"))
    assert sorted(p.name for p in (tmp_path / "feats").iterdir() if p.is_dir()) == ["gradients", "hog"]
    (tmp_path / "ref").mkdir()
    ok(featx_inprocess("extract", "hog", photos, "-o", str(tmp_path / "ref" / "hog") + "/", "--resize", "64x64",
                       "-q"))
    assert data_files(tmp_path / "feats" / "hog") == data_files(tmp_path / "ref" / "hog")


def test_the_short_form_refuses_an_output_kind_before_making_its_folder(tmp_path, photos):
    """Usage errors come before anything is created: hog+sift --format csv (keypoints
    cannot go into a CSV) was refused after the folder -o had been made."""
    res = featx_inprocess("extract", "hog+sift", photos, "-o", f"{tmp_path}/f/", "--format", "csv")
    assert res.returncode == 2 and b"keypoints" in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []


def test_overwrite_of_a_recipe_keeps_every_output_when_one_cannot_be_written(tmp_path, photos):
    """Exit 2 means nothing was done.  `featx run --overwrite` deleted the first output's
    files, then refused the second (a file where its folder goes): exit 2, and a.npy gone."""
    outs = [{"extractor": "gradients", "path": "a.npy"}, {"extractor": "gradients", "path": "b/", "grid": "2x2"}]
    r = write_recipe(tmp_path / "r.toml", [photos], outs)
    ok(featx_inprocess("run", r, "-q"))
    before = data_files(tmp_path / "a.npy")
    import shutil

    shutil.rmtree(tmp_path / "b")
    (tmp_path / "b").write_text("a file where the output folder goes\n")
    res = featx_inprocess("run", r, "--overwrite")
    assert res.returncode == 2 and b"not a folder" in res.stderr, res.stderr
    assert data_files(tmp_path / "a.npy") == before
