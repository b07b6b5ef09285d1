"""A new user's first day: the Python API in a saved script, the short form's shared options,
and messages that mislead (issue 21, items 17, 18, 19).  Each test reproduces the issue's
report and asserts the behaviour the issue asks for."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, copy_samples, featx_inprocess, featx_subprocess as _featx, ok


def featx(args, cwd=None):  # a fresh interpreter: what one process prints, and a lock held by another
    return _featx(*args, cwd=cwd, timeout=300)


def err(r) -> str:
    return r.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------
# 17. the Python API in a script


def _script(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    (tmp_path / "job.py").write_text("import featx\n" + body)
    env = {k: v for k, v in os.environ.items() if k != "FEATX_CACHE_DIR"}
    return subprocess.run([sys.executable, "job.py"], cwd=tmp_path, capture_output=True, timeout=300, env=env)


def _works_or_one_clear_message(r: subprocess.CompletedProcess, check_ok) -> None:
    e = err(r)
    if r.returncode == 0:
        check_ok()
        return
    assert "worker process crashed" not in e, e[-2000:]
    assert e.count("Traceback") <= 1, e[-3000:]
    assert "__main__" in e, e[-2000:]


def test_i17_featx_run_in_a_script_without_main_guard(tmp_path):
    """Item 17: the README's `featx.run(...)` example saved as a script (no `if __name__ ==
    "__main__":`) fails every input with "the worker process crashed" and ten tracebacks.
    Either it works without the guard or it fails at once with one clear message."""
    copy_samples(tmp_path / "photos", {"a.jpg": "coffee.jpg", "b.jpg": "rocket.jpg", "c.png": "chelsea.png"})
    r = _script(tmp_path, 'res = featx.run(inputs=["photos/"], jobs=2, outputs=[\n'
                          '    {"extractor": "gradients", "path": "g.npy"}])\n'
                          'raise SystemExit(res.exit_code)\n')
    _works_or_one_clear_message(r, lambda: None)
    if r.returncode == 0:
        assert np.load(tmp_path / "g.npy").shape == (3, 128)


def test_i17_extract_files_with_jobs_in_a_script(tmp_path):
    """Item 17: `featx.extract_files(..., jobs=2)` in a script without the guard returns a
    (0, 0) array."""
    copy_samples(tmp_path / "photos", {"a.jpg": "coffee.jpg", "b.jpg": "rocket.jpg", "c.png": "chelsea.png"})
    r = _script(tmp_path, 'X, keys, failures = featx.extract_files("photos/", "gradients", jobs=2)\n'
                          'print(X.shape, len(failures))\n')
    _works_or_one_clear_message(r, lambda: None)
    if r.returncode == 0:
        assert r.stdout.decode().split() == ["(3,", "128)", "0"], r.stdout


def test_i17_extract_files_takes_the_run_options_the_readme_names(tmp_path):
    """Item 17: `featx.extract_files` refuses the run options the README says it takes
    (`fps`, `timeout`, `max_memory`)."""
    import featx

    copy_samples(tmp_path / "photos", {"a.jpg": "coffee.jpg"})
    X, keys, failures = featx.extract_files(str(tmp_path / "photos"), "gradients", fps=5, timeout=60,
                                            max_memory="1G")
    assert X.shape == (1, 128) and not failures


@pytest.mark.parametrize("resize", [(0, 5), (64.5, 64), (100000, 100000), (-3, 64)])
def test_i17_extract_with_a_bad_resize_is_a_usage_error(resize):
    """Item 17: `featx.extract(..., resize=(0, 5))`, `(64.5, 64)`, `(100000, 100000)` give raw
    OpenCV errors or a 30 GB allocation: they are featx.errors.UsageError, at once."""
    import featx
    from featx.errors import UsageError

    img = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(UsageError):
        featx.extract(img, "gradients", resize=resize)


def test_i17_extract_takes_the_command_line_spelling_of_resize():
    """Item 17: `featx.extract(..., resize="64x64")` is a raw OpenCV error; the plan takes that
    spelling, so the one-image call takes it too (or refuses it with a UsageError)."""
    import featx
    from featx.errors import UsageError

    img = np.asarray(__import__("cv2").imread(str(SAMPLES / "coffee.jpg")))[:, :, ::-1].copy()
    want = featx.extract(img, "gradients", resize=(64, 64))
    try:
        got = featx.extract(img, "gradients", resize="64x64")
    except UsageError:
        return
    np.testing.assert_array_equal(got, want)


# ---------------------------------------------------------------------------
# 18. the short form's --resize and cnn


def test_i18_short_form_resize_does_not_stretch_cnn(tmp_path):
    """Item 18: `featx extract hog+gradients+cnn samples/ -o out/ --resize 256x256` gives CNN
    embeddings of stretched images (cosine 0.85-0.99 against plain `cnn`).  The cnn output of
    the short form equals a plain cnn run (the extractor declines the shared resize, with a
    note), or the short form refuses."""
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg"})
    (tmp_path / "out").mkdir()
    r = featx_inprocess("extract", "hog+cnn", "s", "-o", "out/", "--resize", "64x64", "-j", "1", cwd=tmp_path)
    if r.returncode == 2:
        assert "cnn" in err(r) and "--resize" in err(r), err(r)[-600:]
        return
    ok(r)
    ok(featx_inprocess("extract", "cnn", "s", "-o", "c.npy", "-j", "1", cwd=tmp_path))
    np.testing.assert_allclose(np.load(tmp_path / "out" / "cnn.npy"), np.load(tmp_path / "c.npy"), atol=1e-5)
    assert "cnn" in err(r) and "resize" in err(r), err(r)[-600:]     # a note says so


def test_i18_help_never_suggests_resize_for_cnn():
    """Item 18: every extractor's --help suggests `featx extract cnn photos/ -o cnn.npy
    --resize 256x256`, which stretches the photos before the model's own crop."""
    for name in ("cnn", "hog", "gradients"):
        r = featx_inprocess("extract", name, "--help")
        ok(r)
        for line in r.stdout.decode().splitlines():
            if "extract cnn" in line or ("cnn" in line and "featx extract" in line):
                assert "--resize" not in line, (name, line)


# ---------------------------------------------------------------------------
# 19. messages that mislead


@pytest.fixture()
def two(tmp_path):
    copy_samples(tmp_path / "s", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg"})
    return tmp_path


def test_i19_changing_the_extractor_says_so(two):
    """Item 19: changing the extractor on an existing output lists parameter differences
    without saying the extractor changed (and mentions --exact-decode, never passed)."""
    ok(featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64x64", cwd=two))
    r = featx_inprocess("extract", "gradients", "s", "-o", "t.npy", "--resize", "64x64", cwd=two)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert "extractor" in err(r) and "hog" in err(r) and "gradients" in err(r), err(r)
    assert "exact-decode" not in err(r), err(r)


def test_i19_only_the_index_left_is_named_as_such(two):
    """Item 19: an error names `t.npy` "already exists" when only its index is left."""
    ok(featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64x64", cwd=two))
    for p in (two / "t.npy", two / ".t.npy.featx-state", two / "t.npy.featx.json"):
        p.unlink()
    r = featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64x64", cwd=two)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert "t.index.csv" in err(r), err(r)
    assert "t.npy already exists" not in err(r), err(r)


def test_i19_extractor_option_in_the_plus_form_is_not_answered_with_jobs(two):
    """Item 19: the `a+b` form answers `--bins` with "did you mean --jobs"."""
    (two / "o").mkdir()
    r = featx_inprocess("extract", "hog+gradients", "s", "-o", "o/", "--bins", "12", cwd=two)
    assert r.returncode == 2
    assert "--jobs" not in err(r), err(r)
    assert "hog" in err(r), err(r)


def test_i19_extractor_name_in_capitals_gets_a_suggestion(two):
    """Item 19: `HOG` gets no suggestion."""
    r = featx_inprocess("extract", "HOG", "s", "-o", "t.npy", cwd=two)
    assert r.returncode == 2
    assert re.search(r"did you mean '?hog\b", err(r)), err(r)


def test_i19_resize_with_a_capital_x_is_refused(two):
    """Item 19: `256X256` is accepted, against the README (WIDTHxHEIGHT)."""
    r = featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64X64", cwd=two)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert "64x64" in err(r), err(r)


def test_i19_quiet_run_prints_no_note(two):
    """Item 19: with -q a cron run still prints the "no longer exist" note (cron mails it)."""
    ok(featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64x64", cwd=two))
    (two / "s" / "rocket.jpg").unlink()
    r = ok(featx_inprocess("extract", "hog", "s", "-o", "t.npy", "--resize", "64x64", "-q", cwd=two))
    assert err(r) == "", err(r)


def test_i19_cnn_model_line_once_and_with_the_right_tensor(two):
    """Item 19: the cnn model line prints 3-5 times per run and says "tensor embedding" with
    `--layer logits`."""
    r = featx([
        "extract", "cnn", "s", "-o", "c.npy", "--layer", "logits", "-j", "2"], cwd=two)
    lines = [line for line in err(r).splitlines() if line.startswith("featx: cnn: model")]
    assert len(lines) == 1, err(r)
    assert "embedding" not in lines[0] and "logits" in lines[0], lines


def test_i19_cnn_help_and_info_do_not_load_the_model(monkeypatch):
    """Item 19: `extract cnn --help` and `info cnn` load the model (1-3 s, 166 MB)."""
    from featx.extractors.cnn import models

    def boom(*a, **k):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(models, "default_model_bytes", boom)
    ok(featx_inprocess("extract", "cnn", "--help"))
    ok(featx_inprocess("info", "cnn"))


def test_i19_layer_name_gets_a_suggestion(two):
    """Item 19: `--layer embeding` gets no suggestion."""
    r = featx_inprocess("extract", "cnn", "s", "-o", "c.npy", "--layer", "embeding", "-j", "1", cwd=two)
    assert r.returncode == 2
    assert re.search(r"did you mean '?embedding\b", err(r)), err(r)


def test_i19_recipe_lock_names_the_output(two):
    """Item 19: recipe exit 75 does not say which output is locked."""
    import fcntl

    (two / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "hog"\npath = "a.npy"\nresize = "64x64"\n'
                                '[[output]]\nextractor = "gradients"\npath = "busy.npy"\n')
    lock = two / ".busy.npy.featx-lock"
    with open(lock, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = featx(["run", "r.toml"], cwd=two)
    assert r.returncode == 75, (r.returncode, err(r)[-600:])
    assert "busy.npy" in err(r), err(r)


def test_i19_flow_on_a_tiny_frame_has_no_opencv_source_line(tmp_path):
    """Item 19: flow on a 10x10 frame prints OpenCV's source line (dis_flow.cpp:1471 ...)."""
    import cv2

    rng = np.random.default_rng(0)
    for n in ("a.png", "b.png"):
        cv2.imwrite(str(tmp_path / n), rng.integers(0, 255, (10, 10, 3), dtype=np.uint8))
    r = featx_inprocess("extract", "flow", "a.png", "b.png", "-o", "f.npy", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    assert ".cpp" not in err(r) and "OpenCV(" not in err(r) and "in function" not in err(r), err(r)
    assert "10x10" in err(r), err(r)


def test_i19_a_two_byte_jpg_stub_is_not_text(tmp_path):
    """Item 19: a 1-2-byte `.jpg` stub is "the file holds text"."""
    (tmp_path / "stub.jpg").write_bytes(b"\xff\xd8")
    (tmp_path / "one.jpg").write_bytes(b"\xff")
    r = featx_inprocess("extract", "hog", "stub.jpg", "one.jpg", "-o", "t.npy", cwd=tmp_path)
    assert r.returncode == 1
    assert "holds text" not in err(r), err(r)


def test_i19_codebook_sift_help_lists_only_what_it_takes():
    """Item 19: `codebook sift --help` lists --encode, --pyramid, --soft (refused or ignored)."""
    r = ok(featx_inprocess("codebook", "sift", "--help"))
    text = r.stdout.decode()
    for opt in ("--encode", "--pyramid", "--soft"):
        assert opt not in text.replace("--encode bovw|vlad|fisher", ""), opt


def test_i19_show_help_has_examples():
    """Item 19: `show NAME --help` has no examples."""
    r = ok(featx_inprocess("show", "hog", "--help"))
    text = r.stdout.decode()
    assert "Examples:" in text, text
    assert any(line.strip().startswith("featx show hog ") and " -o " in line for line in text.splitlines()), text


def test_i19_empty_output_has_shape_0_by_d(tmp_path):
    """Item 19: empty outputs have shape (0, 0) instead of (0, D)."""
    copy_samples(tmp_path, {"c.jpg": "coffee.jpg"})
    (tmp_path / "stub.jpg").write_bytes(b"not a picture, text")
    ok(featx_inprocess("extract", "hog", "c.jpg", "-o", "ref.npy", "--resize", "64x64", cwd=tmp_path))
    d = np.load(tmp_path / "ref.npy").shape[1]
    r = featx_inprocess("extract", "hog", "stub.jpg", "-o", "t.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 1
    assert np.load(tmp_path / "t.npy").shape == (0, d)


def test_i19_regions_list_paths_resolve_against_the_lists_folder(tmp_path):
    """Item 19: relative paths in a `--regions` list resolve against the working folder while
    a recipe's resolve against its folder: one rule, the list's folder."""
    job = tmp_path / "job"
    copy_samples(job, {"c.jpg": "coffee.jpg"})
    (job / "boxes.csv").write_text("path,x,y,w,h\nc.jpg,0,0,64,64\n")
    r = featx_inprocess("extract", "hog", "--regions", "job/boxes.csv", "-o", "r.npy", "--resize", "32x32",
                        cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, err(r)[-600:])
    assert np.load(tmp_path / "r.npy").shape[0] == 1


# ---------------------------------------------------------------------------
# found by attacking the fixes above through other doors (a recipe, -j 2, an npy-dir,
# Python, another folder)


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
    if (os.cpu_count() or 1) == 1:
        pytest.skip("one CPU: no worker processes, so no guard is needed")
    assert r.returncode != 0, (r.returncode, err(r)[-2000:])  # the UsageError ends the script
    assert "(jobs not given: one worker per CPU)" in err(r), err(r)[-2000:]
