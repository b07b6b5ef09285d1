"""One decode, many features (issue 13): recipes (``featx run``), the short form
``featx extract a+b+c``, and ``featx.run`` — every output byte-identical to a
separate ``featx extract`` run with the same settings, each with its own state,
lock, sidecar and summary; -j 1, -j 2, kill -9 and resume, Ctrl-C, timeouts,
shards and merge, the Ray executor; real photos and a real video."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx, ok, output_files, photo_crops, plugin_env, featx_subprocess

VIDEO = SAMPLES / "clip.mp4"

#: (extractor, file name, per-output options as flags, the same as recipe keys)
PHOTO_OUTPUTS = [
    ("hog", "hog.npy", {"resize": "64x64", "cell-size": 16}),
    ("gradients", "grad.csv", {"resize": "96x72", "bins": 12}),
    ("cnn", "emb.npy", {}),
]
VIDEO_OUTPUTS = [
    ("hog", "hog.npy", {"resize": "64x48"}),
    ("flow", "flow.csv", {"grid": "2x2"}),
    ("gradients", "grad/", {"resize": "80x60"}),   # npy-dir: one file per frame
]


def flags(opts: dict) -> list[str]:
    return [x for k, v in opts.items() for x in (f"--{k}", str(v))]


def recipe(path: Path, inputs: list, outputs: list, outdir: Path, **run) -> Path:
    """A recipe file; output paths relative to the recipe's folder when ``outdir`` is inside it."""
    lines = [f"inputs = {json.dumps([str(p) for p in inputs])}"]
    for k, v in run.items():
        lines.append(f"{k.replace('_', '-')} = {json.dumps(v)}")
    for name, fname, opts in outputs:
        lines += ["", "[[output]]", f'extractor = "{name}"', f'path = "{os.path.relpath(outdir / fname, path.parent)}'
                                                              + ("/" if fname.endswith("/") else "") + '"']
        lines += [f"{k} = {json.dumps(v)}" for k, v in opts.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


files_of = output_files  # what a reader sees of an output (tests/helpers.py)


def separate(tmp: Path, src, outputs, extra: list, cwd=None, env=None) -> Path:
    """Each output by its own `featx extract` run (the reference)."""
    ref = tmp / "separate"
    ref.mkdir(exist_ok=True)
    for name, fname, opts in outputs:
        dest = str(ref / fname) + ("/" if fname.endswith("/") else "")
        run = featx_subprocess if env else featx   # env: a plugin, found by a fresh interpreter
        ok(run("extract", name, *([src] if not isinstance(src, list) else src), "-o", dest,
               *flags(opts), "-q", *extra, cwd=cwd, env=env))
    return ref


def assert_same(a: Path, b: Path, outputs) -> None:
    for _, fname, _ in outputs:
        fa, fb = files_of(a / fname.rstrip("/")), files_of(b / fname.rstrip("/"))
        assert fa.keys() == fb.keys(), (fname, sorted(fa)[:5], sorted(fb)[:5])
        for k in fa:
            assert fa[k] == fb[k], (fname, k)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    photo_crops(root / "in", 10, (200, 150))
    return root / "in"


@pytest.fixture(scope="module")
def photo_reference(tmp_path_factory, photos) -> Path:
    return separate(tmp_path_factory.mktemp("ref"), photos, PHOTO_OUTPUTS, ["-j", "1"])


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_three_output_recipe_on_photos_equals_three_separate_runs(tmp_path, photos, photo_reference, jobs):
    out = tmp_path / "feats"
    out.mkdir()
    r = recipe(tmp_path / "features.toml", [photos], PHOTO_OUTPUTS, out)
    res = ok(featx("run", r, "-j", jobs, cwd="/"))
    assert_same(out, photo_reference, PHOTO_OUTPUTS)
    err = res.stderr.decode()
    for name, fname, _ in PHOTO_OUTPUTS:  # a summary line per output
        assert f"{name}: 10 processed" in err, err
        side = json.loads((out / (fname + ".featx.json")).read_text())
        assert side["status"] == "complete" and side["extractor"]["name"] == name
        assert [o["extractor"] for o in side["run"]["outputs"]] == [n for n, _, _ in PHOTO_OUTPUTS]
    # the second run finds every output up to date, in each output's own state
    again = ok(featx("run", r, "-j", jobs)).stderr.decode()
    assert again.count("0 processed, 10 up to date") == 3, again


def test_a_three_output_recipe_on_a_video_equals_three_separate_runs(tmp_path):
    extra = ["--max-frames", "12", "-j", "2"]
    ref = separate(tmp_path, VIDEO, VIDEO_OUTPUTS, extra)
    out = tmp_path / "feats"
    out.mkdir()
    r = recipe(tmp_path / "v.toml", [VIDEO], VIDEO_OUTPUTS, out, max_frames=12)
    ok(featx("run", r, "-j", "1"))
    assert_same(out, ref, VIDEO_OUTPUTS)
    rows = np.load(out / "hog.npy").shape[0]
    assert rows == 12 and len(files_of(out / "grad")) == 12


def test_the_short_form_writes_one_output_per_extractor_as_separate_runs_would(tmp_path, photos):
    outs = [("hog", "hog.npy", {"resize": "64x64"}), ("gradients", "gradients.npy", {"resize": "64x64"}),
            ("sift", "sift/", {"resize": "64x64"})]
    ref = separate(tmp_path, photos, outs, [])
    r = ok(featx("extract", "hog+gradients+sift", photos, "-o", f"{tmp_path}/feats/", "--resize", "64x64", "-j", "2"))
    assert_same(tmp_path / "feats", ref, outs)
    assert "sift: 10 processed" in r.stderr.decode()
    # per-extractor options are not taken there: a recipe is the way, and --print-recipe writes it
    bad = featx("extract", "hog+gradients", photos, "-o", f"{tmp_path}/f2/", "--cell-size", "16")
    assert bad.returncode == 2 and b"--cell-size" in bad.stderr
    text = ok(featx("extract", "hog+gradients+sift", photos, "-o", f"{tmp_path}/feats/", "--resize", "64x64",
                    "--print-recipe")).stdout.decode()
    assert "[[output]]" in text and 'extractor = "sift"' in text and "cell-size = 8" in text
    (tmp_path / "again.toml").write_text(text)
    again = ok(featx("run", tmp_path / "again.toml")).stderr.decode()
    assert again.count("0 processed, 10 up to date") == 3, again  # the same outputs, the same settings
    one = featx("extract", "hog+gradients", photos, "-o", tmp_path / "x.npy")
    assert one.returncode == 2 and b"must be a folder" in one.stderr


def test_adding_an_output_computes_only_its_rows_and_failures_are_per_output(tmp_path, photos):
    src = tmp_path / "in"
    src.mkdir()
    for p in sorted(photos.iterdir())[:4]:
        (src / p.name).write_bytes(p.read_bytes())
    import cv2

    cv2.imwrite(str(src / "tiny.png"), np.full((10, 10, 3), 128, np.uint8))   # too small for hog's blocks
    (src / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")     # fails for every output
    two = [("gradients", "g.npy", {"grid": "2x2"}), ("hog", "h.npy", {"resize": "64x64"})]
    out = tmp_path / "o"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [src], two, out)
    first = featx("run", r, "--summary-json", tmp_path / "s1.json")
    assert first.returncode == 1
    s1 = json.loads((tmp_path / "s1.json").read_text())["outputs"]
    assert [s["processed"] for s in s1] == [5, 5] and [s["failed"] for s in s1] == [1, 1]
    # one line for the input that failed for both outputs
    assert first.stderr.decode().count("broken.jpg") == 1
    # hog without --resize on the tiny image: fails for that output alone
    three = two + [("hog", "h2.npy", {})]
    recipe(r, [src], three, out)
    second = featx("run", r, "--summary-json", tmp_path / "s2.json")
    s2 = json.loads((tmp_path / "s2.json").read_text())["outputs"]
    assert [s["processed"] for s in s2[:2]] == [0, 0], s2        # the first two: nothing recomputed
    assert [s["up_to_date"] for s in s2[:2]] == [5, 5]
    assert s2[2]["processed"] >= 4 and s2[2]["up_to_date"] == 0
    err = second.stderr.decode()
    tiny = [line for line in err.splitlines() if "tiny.png" in line]
    assert len(tiny) == 1 and tiny[0].endswith(f"[{out / 'h2.npy'}]"), err  # it names the output
    assert np.load(out / "g.npy").shape[0] == 5 and np.load(out / "h.npy").shape[0] == 5  # tiny.png has rows
    assert np.load(out / "h2.npy").shape[0] == 4


def test_recipe_errors_name_the_file_the_key_and_the_closest_valid_one(tmp_path, photos):
    r = tmp_path / "bad.toml"
    r.write_text(f'inputs = ["{photos}"]\njobz = 2\n[[output]]\nextractor = "hog"\npath = "h.npy"\n')
    res = featx("run", r)
    assert res.returncode == 2 and b"unknown key 'jobz'" in res.stderr and b"did you mean jobs?" in res.stderr
    assert str(r).encode() in res.stderr
    r.write_text(f'inputs = ["{photos}"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\ncel-size = 4\n')
    res = featx("run", r)
    assert res.returncode == 2 and b"did you mean cell-size?" in res.stderr
    r.write_text(f'inputs = ["{photos}"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\n'
                 '[[output]]\nextractor = "gradients"\npath = "./h.npy"\n')
    res = featx("run", r)
    assert res.returncode == 2 and b"two outputs" in res.stderr
    r.write_text(f'inputs = ["{photos}"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\ncell-size = "big"\n')
    res = featx("run", r)
    assert res.returncode == 2 and b"cell-size" in res.stderr
    assert not list(tmp_path.glob("h.*")) and not list(tmp_path.glob(".h.*"))  # nothing created


def test_paths_in_a_recipe_are_relative_to_its_folder_and_command_line_inputs_replace_its_own(tmp_path, photos):
    job = tmp_path / "job"
    job.mkdir()
    (job / "features.toml").write_text('inputs = ["nowhere"]\n[[output]]\nextractor = "gradients"\n'
                                       'path = "g.npy"\n')
    ok(featx("run", "job/features.toml", photos, cwd=tmp_path))
    assert np.load(job / "g.npy").shape[0] == 10 and not (tmp_path / "g.npy").exists()
    # paths on stdin replace them too
    listing = "\n".join(str(p) for p in sorted(photos.iterdir())[:3]).encode()
    (job / "features.toml").write_text('inputs = ["nowhere"]\n[[output]]\nextractor = "gradients"\n'
                                       'path = "g3.npy"\n')
    ok(featx("run", job / "features.toml", "-", stdin=listing, cwd="/"))
    assert np.load(job / "g3.npy").shape[0] == 3


def test_featx_run_in_python_gives_what_the_command_line_gives(tmp_path, photos):
    import featx as fx

    out = tmp_path / "py"
    out.mkdir()
    outs = [{"extractor": "hog", "path": str(out / "hog.npy"), "resize": (64, 64), "params": {"cell_size": 16}},
            {"extractor": "gradients", "path": str(out / "g.csv"), "params": {"bins": 12}, "resize": (96, 72)}]
    res = fx.run(inputs=[str(photos)], outputs=outs, jobs=1)
    assert res.exit_code == 0 and [o.summary.processed for o in res.outputs] == [10, 10]
    cli = tmp_path / "cli"
    cli.mkdir()
    spec = [("hog", "hog.npy", {"resize": "64x64", "cell-size": 16}), ("gradients", "g.csv", {"bins": 12,
                                                                                           "resize": "96x72"})]
    ok(featx("run", recipe(tmp_path / "r.toml", [photos], spec, cli)))
    assert_same(out, cli, spec)
    # a recipe file through Python, as `featx run` reads it
    res2 = fx.run(str(tmp_path / "r.toml"))
    assert [o.summary.up_to_date for o in res2.outputs] == [10, 10]


def test_flow_over_a_frame_folder_is_the_same_in_python_and_on_the_command_line(tmp_path):
    import cv2

    import featx as fx

    frames = tmp_path / "seq"
    frames.mkdir()
    img = cv2.imread(str(SAMPLES / "coffee.jpg"))
    for i in range(5):
        cv2.imwrite(str(frames / f"f{i}.png"), np.roll(img, 3 * i, axis=1)[:200, :300])
    values, keys, failures = fx.extract_files(str(frames), "flow")
    ok(featx("extract", "flow", frames, "-o", tmp_path / "f.npy", "-q"))
    assert not failures and np.array_equal(values, np.load(tmp_path / "f.npy"))
    assert [k["frame"] for k in keys] == list(range(5))


@pytest.mark.slow
def test_kill9_of_a_recipe_run_resumes_to_the_same_bytes_and_leaves_no_process(tmp_path):
    """kill -9 of the whole -j 2 recipe run at seeded random moments: no process outlives
    it, and the same command then finishes every output byte-identical to separate runs."""
    src = photo_crops(tmp_path / "in", 80, (160, 120))
    env = plugin_env(tmp_path)
    outs = [("slow", "s.npy", {}), ("slow", "s2.csv", {"scale": 2.0}), ("gradients", "g/", {"resize": "64x48"})]
    ref = separate(tmp_path, src, outs, ["-j", "1"], env=dict(env, SLOW_MS="1"))   # (the pause: no value)
    out = tmp_path / "run"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [src], outs, out, commit_every=0.2)
    cmd = [sys.executable, "-m", "featx", "run", str(r), "-j", "2", "-q"]
    full_env = {**os.environ, **env}
    rng = random.Random(5)
    mid = 0

    def committed() -> int:
        try:
            return np.load(out / "s.npy", mmap_mode="r").shape[0]
        except (OSError, ValueError):  # not there yet, or caught mid-commit
            return 0

    for _ in range(6):
        before = committed()
        p = subprocess.Popen(cmd, start_new_session=True, stderr=subprocess.DEVNULL, env=full_env)
        # not a guess at how long start-up takes on this machine: wait for this run's first
        # commit, then kill at a seeded moment after it (mid-chunk, mid-write, mid-commit)
        deadline = time.monotonic() + 60
        while p.poll() is None and committed() <= before and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.25))
        if p.poll() is not None:
            break
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        gone = time.monotonic() + 5   # SIGKILL is delivered at once; the kernel may take a moment
        while (left := [pid for pid in subprocess.run(["pgrep", "-s", str(p.pid)], capture_output=True).stdout.split()
                        if not zombie(int(pid))]) and time.monotonic() < gone:
            time.sleep(0.05)
        assert not left, f"processes outlived the run: {left}"
        if (out / "s.npy").exists() and 0 < np.load(out / "s.npy").shape[0] < 80:
            mid += 1
    r2 = subprocess.run(cmd, capture_output=True, env=dict(full_env, SLOW_MS="1"))
    assert r2.returncode == 0, r2.stderr
    assert_same(out, ref, outs)
    assert mid, "no kill landed mid-run"


def zombie(pid: int) -> bool:
    """A process that has ended and waits to be reaped (in a container whose first process
    does not reap, such ones stay listed)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True


@pytest.fixture
def slow_env(tmp_path):
    return plugin_env(tmp_path)


@pytest.mark.slow  # featx processes (a plugin), one interrupted
def test_ctrl_c_stops_every_output_and_the_next_run_finishes_them(tmp_path, slow_env):
    src = photo_crops(tmp_path / "in", 60, (160, 120))
    outs = [("slow", "s.npy", {}), ("gradients", "g.npy", {"resize": "64x48"})]
    out = tmp_path / "run"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [src], outs, out, commit_every=0.1)
    progress = tmp_path / "progress"
    env = {**os.environ, **slow_env, "SLOW_PROGRESS": str(progress)}
    # Ctrl-C at its default in the child: a shell running this suite in the background
    # ignores SIGINT, children inherit that, and Python then rightly leaves Ctrl-C ignored
    p = subprocess.Popen([sys.executable, "-m", "featx", "run", str(r), "-j", "1"], stderr=subprocess.PIPE, env=env,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while (not progress.exists() or progress.stat().st_size < 10) and time.monotonic() < deadline:
        time.sleep(0.02)
    p.send_signal(signal.SIGINT)
    err = p.communicate(timeout=60)[1].decode()
    assert p.returncode == 130, err
    for _, fname, _ in outs:
        assert json.loads((out / (fname + ".featx.json")).read_text())["status"] == "interrupted"
    ok(featx_subprocess("run", r, env=slow_env))
    assert_same(out, separate(tmp_path, src, outs, [], env=slow_env), outs)


@pytest.mark.slow  # waits out a 3-s --timeout
def test_timeout_and_a_crashing_input_fail_alone_in_a_recipe(tmp_path, slow_env):
    """``trouble`` hangs on 33-pixel-wide images and kills its worker on 34: with --timeout
    those inputs fail (for the outputs that asked for them); every other row is written."""
    src = photo_crops(tmp_path / "in", 6, (160, 120))
    import cv2

    img = cv2.imread(str(src / "img000.png"))
    cv2.imwrite(str(src / "hang.png"), img[:, :33])
    cv2.imwrite(str(src / "crash.png"), img[:, :34])
    outs = [("trouble", "t.csv", {}), ("gradients", "g.npy", {"resize": "32x32"})]
    out = tmp_path / "o"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [src], outs, out)
    res = featx_subprocess("run", r, "--timeout", "3", "-j", "2", env=slow_env, timeout=200)
    assert res.returncode == 1, res.stderr
    err = res.stderr.decode()
    assert "hang.png: timed out after 3 s" in err and "crash.png: the worker process crashed" in err
    assert np.load(out / "g.npy").shape[0] == 6
    assert len((out / "t.csv").read_text().splitlines()) == 1 + 6


def test_shards_of_a_recipe_merge_into_what_one_run_writes(tmp_path, photos):
    outs = [("hog", "hog-{shard}.npy", {"resize": "64x64"}), ("gradients", "g-{shard}.csv", {})]
    out = tmp_path / "o"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [photos], outs, out)
    for i in (1, 2):
        ok(featx("run", r, "--shard", f"{i}/2"))
    whole = tmp_path / "whole"
    whole.mkdir()
    ok(featx("run", recipe(tmp_path / "w.toml", [photos], outs, whole)))
    for stem, ext in (("hog", "npy"), ("g", "csv")):
        ok(featx("merge", out / f"{stem}.{ext}", out / f"{stem}-1of2.{ext}", out / f"{stem}-2of2.{ext}"))
        one = whole / f"{stem}-all.{ext}"
        if ext == "npy":
            assert np.array_equal(np.load(out / f"{stem}.npy"), np.load(one))
        else:
            assert sorted((out / f"{stem}.csv").read_text().splitlines()) == sorted(one.read_text().splitlines())


def test_two_recipes_sharing_an_output_do_not_both_write_it(tmp_path, photos, slow_env):
    outs = [("slow", "s.npy", {})]
    out = tmp_path / "o"
    out.mkdir()
    r = recipe(tmp_path / "r.toml", [photos], outs, out)
    env = {**os.environ, **slow_env}
    a = subprocess.Popen([sys.executable, "-m", "featx", "run", str(r), "-j", "1", "-q"], env=env,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not (out / ".s.npy.featx-lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    b = featx_subprocess("run", r, "-q", env=slow_env)
    a.communicate(timeout=60)
    assert a.returncode == 0
    assert b.returncode in (0, 75), b.stderr  # locked out, or it came after the first had finished
    if b.returncode == 75:
        assert b"another run" in b.stderr or b"holds" in b.stderr
    assert np.load(out / "s.npy").shape[0] == 10


def test_outputs_that_need_different_decode_sizes_match_their_own_runs(tmp_path):
    """A JPEG is decoded at the size each output needs (1/8 for hog at 256x256, 1/2 for
    gradients at 640x480 of a 2400x1800 photo): in a recipe, once per distinct size, so
    each output is byte-identical to its own run — and both differ from --exact-decode."""
    import cv2

    src = tmp_path / "in"
    src.mkdir()
    base = cv2.imread(str(SAMPLES / "coffee.jpg"))
    rng = np.random.default_rng(0)
    for i in range(3):
        big = cv2.resize(np.roll(base, 40 * i, axis=1), (2400, 1800), interpolation=cv2.INTER_CUBIC)
        big = np.clip(big + rng.normal(0, 3, big.shape), 0, 255).astype(np.uint8)
        cv2.imwrite(str(src / f"p{i}.jpg"), big, [cv2.IMWRITE_JPEG_QUALITY, 90])
    outs = [("hog", "h.npy", {"resize": "256x256"}), ("gradients", "g.npy", {"resize": "640x480"})]
    ref = separate(tmp_path, src, outs, ["-j", "1"])
    out = tmp_path / "o"
    out.mkdir()
    ok(featx("run", recipe(tmp_path / "r.toml", [src], outs, out), "-j", "2"))
    assert_same(out, ref, outs)
    for _, fname, _ in outs:
        assert json.loads((out / (fname + ".featx.json")).read_text())["options"]["decode"] == "reduced"
    exact = tmp_path / "exact"
    exact.mkdir()
    ok(featx("run", recipe(tmp_path / "e.toml", [src], outs, exact), "--exact-decode"))
    assert not np.array_equal(np.load(exact / "h.npy"), np.load(out / "h.npy"))
    assert json.loads((exact / "h.npy.featx.json").read_text())["options"]["decode"] == "exact"
