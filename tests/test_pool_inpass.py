"""Pooling during extraction (issue 24: ``--pool-over``, ``--pool-stats``, ``--pool-window``,
``--pool-stride``, ``--pool-pyramid``): the worker feeds each input's rows to a
:class:`featx.pooling.Pooler` and writes only the pooled rows.

The reference everywhere is the per-frame extraction of the same inputs pooled afterwards by
the same pooling core: in-pass pooling must give the same bytes (.npy and its index, .csv),
whatever the number of workers, after a kill -9, in a recipe."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx_inprocess as featx, output_files, plugin_env

CLIP = SAMPLES / "clip.mp4"


# ---------------------------------------------------------------------------
# the reference: rows extracted per frame, pooled afterwards with the pooling core


def per_frame(inputs, name="gradients", **run):
    """(vectors, keys) of a per-frame extraction, kept in memory (exact times)."""
    import featx as fx

    values, keys, failures = fx.extract_files([str(p) for p in inputs], name, **run)
    assert failures == []
    return values, keys


def pooled_reference(values, keys, spec, source_keys=("path", "frame", "time"), path_of=None):
    """The pooled rows (keys, float32 matrix) of per-frame ``values``/``keys``, pooled by
    the core.  ``path_of``: the input a row belongs to (a frame folder for its frames)."""
    from featx.pooling import Pooler

    pooler, out = None, []
    for v, k in zip(values, keys):
        k = dict(k)
        if path_of is not None:
            k["path"] = path_of(k["path"])
        if isinstance(k.get("time"), float):   # times as outputs record them (microseconds)
            k["time"] = round(k["time"], 6)
        if pooler is None:
            pooler = Pooler(spec, source_keys, len(v))
        out.extend(pooler.feed(k, v))
    out.extend(pooler.finish())
    assert all(p.error is None for p in out)
    return [p.key for p in out], np.stack([p.vector for p in out]).astype(np.float32), pooler.key_columns


def npy_bytes(m: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, m)
    return b.getvalue()


def index_text(keys, columns) -> bytes:
    from featx.output.sinkbase import csv_line, key_text

    lines = [csv_line(["row", *columns])] + [csv_line([str(i), *key_text(k, columns)]) for i, k in enumerate(keys)]
    return "".join(lines).encode()


def csv_text(keys, m, columns, names) -> bytes:
    from featx.output.sinkbase import csv_line, format_floats, key_text

    lines = [csv_line([*columns, *names])]
    lines += [csv_line(key_text(k, columns))[:-1] + "," + format_floats(v) + "\n" for k, v in zip(keys, m)]
    return "".join(lines).encode()


SETTINGS = [
    ("mean", [], False),
    ("mean,max", [], False),
    ("diff,min,std,max,mean", [], False),            # any order asked: canonical order written
    ("mean,std", ["--pool-window", "0.5s", "--pool-stride", "0.25s"], False),
    ("max,diff", ["--pool-window", "1"], False),      # seconds, stride = window; a short last window
    ("mean,min", ["--pool-window", "16f", "--pool-stride", "5f"], False),
    ("mean,diff", [], True),
    ("std", ["--pool-window", "20f", "--pool-stride", "14f"], True),   # the last window holds 6 rows
]


@pytest.mark.parametrize("stats,window,pyramid", SETTINGS, ids=[f"{s}{''.join(w)}{'-pyr' if p else ''}"
                                                                 for s, w, p in SETTINGS])
def test_in_pass_is_per_frame_extraction_pooled_afterwards_byte_for_byte(tmp_path, stats, window, pyramid):
    from featx.pooling import PoolSpec
    from featx import registry

    args = ["--pool-over", "video", "--pool-stats", stats, *window, *(["--pool-pyramid"] if pyramid else [])]
    for fmt in ("npy", "csv"):
        r = featx("extract", "gradients", CLIP, "-o", tmp_path / f"p.{fmt}", "-j", "1", "-q", *args)
        assert r.returncode == 0, r.stderr
    values, keys = per_frame([CLIP])
    w = dict(zip(window[::2], window[1::2]))
    spec = PoolSpec.parse("video", stats, w.get("--pool-window"), w.get("--pool-stride"), pyramid)
    pkeys, m, columns = pooled_reference(values, keys, spec)
    assert len(pkeys) > (1 if window else 0)
    assert (tmp_path / "p.npy").read_bytes() == npy_bytes(m)
    assert (tmp_path / "p.index.csv").read_bytes() == index_text(pkeys, columns)
    names = spec.columns(registry.get("gradients").create().output_spec(480, 640).columns, values.shape[1])
    assert (tmp_path / "p.csv").read_bytes() == csv_text(pkeys, m, columns, names)
    # the keys say what each row covers
    assert pkeys[0]["path"] == str(CLIP.resolve()) and pkeys[0]["start"] == 0.0
    if not window:
        assert pkeys[0]["frames"] == len(keys) and pkeys[0]["end"] == keys[-1]["time"]
    side = json.loads((tmp_path / "p.npy.featx.json").read_text())
    assert side["pool"] == spec.record() and "pool" not in side["options"]   # where featx pool records it


def make_frames(folder: Path, n: int = 12) -> Path:
    import cv2

    folder.mkdir(parents=True)
    cap = cv2.VideoCapture(str(CLIP))
    for i in range(n):
        ok, img = cap.read()
        assert ok
        cv2.imwrite(str(folder / f"frame{i}.png"), img[::2, ::2])
    cap.release()
    return folder


def test_frame_folders_are_pooled_as_one_input_each(tmp_path):
    from featx.pooling import PoolSpec

    a, b = make_frames(tmp_path / "in" / "a", 12), make_frames(tmp_path / "in" / "b", 9)
    args = ["--frames", "--frame-rate", "25", "--pool-over", "video", "--pool-stats", "mean,std,diff",
            "--pool-window", "0.2", "--pool-stride", "0.12"]
    r = featx("extract", "hog", tmp_path / "in", "-o", tmp_path / "f.npy", "-j", "1", "-q", *args)
    assert r.returncode == 0, r.stderr
    values, keys = per_frame([tmp_path / "in"], "hog", frames=True, frame_rate=25.0)
    spec = PoolSpec.parse("video", "mean,std,diff", "0.2", "0.12", False)
    pkeys, m, columns = pooled_reference(values, keys, spec, path_of=lambda p: os.path.dirname(p))
    assert {k["path"] for k in pkeys} == {str(a.resolve()), str(b.resolve())}
    assert (tmp_path / "f.npy").read_bytes() == npy_bytes(m)
    assert (tmp_path / "f.index.csv").read_bytes() == index_text(pkeys, columns)
    # hog's length depends on the frame size: the CSV names its pooled values from the first row
    r = featx("extract", "hog", tmp_path / "in", "-o", tmp_path / "f.csv", "-j", "1", "-q", *args)
    assert r.returncode == 0, r.stderr
    names = spec.columns(None, values.shape[1])
    assert (tmp_path / "f.csv").read_bytes() == csv_text(pkeys, m, columns, names)


def test_two_workers_write_what_one_writes_and_a_rerun_is_up_to_date(tmp_path):
    make_frames(tmp_path / "in" / "a", 10)
    make_frames(tmp_path / "in" / "b", 7)
    inputs = [CLIP, tmp_path / "in" / "a", tmp_path / "in" / "b"]
    args = ["--frames", "--frame-rate", "25", "--pool-over", "video", "--pool-stats", "mean,max",
            "--pool-window", "4f", "--max-frames", "16", "-q"]
    outs = {}
    for j in ("1", "2"):
        for fmt in ("npy", "csv", "npy-dir"):
            (tmp_path / f"o{j}").mkdir(exist_ok=True)
            out = f"{tmp_path}/o{j}/o/" if fmt == "npy-dir" else tmp_path / f"o{j}" / f"o.{fmt}"
            r = featx("extract", "gradients", *inputs, "-o", out, "-j", j, *args)
            assert r.returncode == 0, r.stderr
            outs[j, fmt] = output_files(Path(out))
    for fmt in ("npy", "csv", "npy-dir"):
        assert outs["1", fmt] == outs["2", fmt], fmt
    assert any(k.endswith("a/window000001.npy") for k in outs["1", "npy-dir"]), sorted(outs["1", "npy-dir"])
    # a second run finds every input up to date (npy-dir: the pooled files are counted)
    for fmt in ("npy", "npy-dir"):
        out = f"{tmp_path}/o1/o/" if fmt == "npy-dir" else tmp_path / "o1" / "o.npy"
        r = featx("extract", "gradients", *inputs, "-o", out, "-j", "1", *args[:-1], "--summary-json", "-", "-q")
        assert r.returncode == 0, r.stderr
        s = json.loads(r.stderr.decode().strip().splitlines()[-1])
        assert (s["processed"], s["up_to_date"]) == (0, 3), (fmt, s)
    # other pooling settings are another output: refused, as changed parameters are
    other = [a if a != "4f" else "5f" for a in args]
    r = featx("extract", "gradients", *inputs, "-o", tmp_path / "o1" / "o.npy", "-j", "1", *other)
    assert r.returncode == 2 and b"--overwrite" in r.stderr, r.stderr
    assert b"pooling: --pool-over video --pool-stats mean,max --pool-window 4f --pool-stride 4f -> " \
           b"--pool-over video --pool-stats mean,max --pool-window 5f --pool-stride 5f" in r.stderr, r.stderr


def test_a_changed_input_is_pooled_again_and_the_output_is_as_a_fresh_run(tmp_path):
    import shutil

    make_frames(tmp_path / "in" / "a", 6)
    b = make_frames(tmp_path / "in" / "b", 5)
    args = ["--frames", "--pool-over", "video", "--pool-stats", "mean,max", "-j", "1", "-q"]
    out = tmp_path / "o.npy"
    assert featx("extract", "gradients", tmp_path / "in", "-o", out, *args).returncode == 0
    shutil.copyfile(b / "frame0.png", b / "frame5.png")   # a sixth frame
    r = featx("extract", "gradients", tmp_path / "in", "-o", out, *args, "--summary-json", "-")
    s = json.loads(r.stderr.decode().strip().splitlines()[-1])
    assert (s["processed"], s["up_to_date"]) == (1, 1), s
    fresh = tmp_path / "fresh" / "o.npy"
    fresh.parent.mkdir()
    assert featx("extract", "gradients", tmp_path / "in", "-o", fresh, *args).returncode == 0
    assert np.array_equal(np.load(out), np.load(fresh))
    assert (tmp_path / "o.index.csv").read_text().splitlines()[2].endswith(",6")


def test_a_failed_frame_is_listed_and_the_pooled_row_covers_the_others(tmp_path):
    folder = make_frames(tmp_path / "in" / "a", 8)
    (folder / "frame3.png").write_bytes(b"not a picture")
    out = tmp_path / "o.npy"
    r = featx("extract", "gradients", folder, "--frames", "-o", out, "-j", "1", "--pool-over", "video")
    assert r.returncode == 1
    assert b"/in/a: partial: cannot decode" in r.stderr   # as a per-frame run says it
    idx = (tmp_path / "o.index.csv").read_text().splitlines()
    assert idx[0] == "row,path,start,end,frames" and idx[1].endswith(",,,7")
    values, keys = per_frame([f for f in sorted(folder.iterdir()) if f.name != "frame3.png"])
    assert np.array_equal(np.load(out)[0], values.astype(np.float64).sum(axis=0).__truediv__(7).astype(np.float32))
    side = json.loads((tmp_path / "o.npy.featx.json").read_text())
    assert side["partial"][0]["reason"].startswith("partial: cannot decode")


def test_a_pyramid_of_too_few_frames_fails_that_input_alone(tmp_path):
    make_frames(tmp_path / "in" / "a", 3)
    make_frames(tmp_path / "in" / "b", 6)
    out = tmp_path / "o.csv"
    r = featx("extract", "gradients", tmp_path / "in", "--frames", "-o", out, "-j", "1", "--pool-over", "video",
              "--pool-pyramid")
    assert r.returncode == 1 and b"a pyramid splits at least 4 rows" in r.stderr
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and "/in/b," in lines[1]


def test_regions_pooled_per_picture(tmp_path):
    from featx.pooling import PoolSpec

    regions = tmp_path / "r.csv"
    photos = [SAMPLES / "chelsea.png", SAMPLES / "coffee.jpg"]
    regions.write_text("path,x,y,w,h\n" + "".join(f"{p},{x},{y},64,48\n" for p in photos
                                                  for x, y in ((0, 0), (30, 20), (100, 60))))
    out = tmp_path / "o.npy"
    r = featx("extract", "gradients", "--regions", regions, "-o", out, "-j", "1", "-q",
              "--pool-over", "image", "--pool-stats", "mean,max")
    assert r.returncode == 0, r.stderr
    import featx as fx

    plan = fx.run(outputs=[{"extractor": "gradients", "path": None}], regions=str(regions), jobs=1)
    sink = plan.outputs[0].sink
    spec = PoolSpec.parse("image", "mean,max")
    pkeys, m, columns = pooled_reference(np.stack(sink.values), sink.keys, spec, source_keys=("path", "x", "y", "w", "h"))
    assert columns == ("path", "regions") and [k["regions"] for k in pkeys] == [3, 3]
    assert out.read_bytes() == npy_bytes(m)
    assert (tmp_path / "o.index.csv").read_bytes() == index_text(pkeys, columns)


def test_a_recipe_pools_one_output_and_not_the_other(tmp_path):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'inputs = ["{CLIP}"]\njobs = 1\n'
                      '[[output]]\nextractor = "gradients"\npath = "frames.npy"\n'
                      '[[output]]\nextractor = "gradients"\npath = "clip.npy"\npool-over = "video"\n'
                      'pool-stats = ["max", "mean"]\npool-window = 1\npool-stride = "0.5s"\n'
                      '[[output]]\nextractor = "cnn"\npath = "cnn.npy"\npool = "max"\npool-over = "video"\n')
    r = featx("run", recipe, "-q", "--max-frames", "30")
    assert r.returncode == 0, r.stderr
    r2 = featx("extract", "gradients", CLIP, "-o", tmp_path / "cli.npy", "-j", "1", "-q", "--max-frames", "30",
               "--pool-over", "video", "--pool-stats", "mean,max", "--pool-window", "1s", "--pool-stride", "0.5")
    assert r2.returncode == 0, r2.stderr
    assert (tmp_path / "clip.npy").read_bytes() == (tmp_path / "cli.npy").read_bytes()
    assert np.load(tmp_path / "frames.npy").shape[0] == 30
    assert np.load(tmp_path / "cnn.npy").shape == (1, 1280)   # the network's own --pool max, pooled over the video
    r = featx("run", recipe, "--print-recipe")
    text = r.stdout.decode()
    assert 'pool-over = "video"\npool-stats = [\n    "mean",\n    "max",\n]\npool-window = "1s"\npool-stride = "0.5s"\n' \
        'pool-pyramid = false\n' in text, text
    assert text.split("[[output]]")[1].count("pool-") == 0   # an output that does not pool: no pooling keys
    side = json.loads((tmp_path / "clip.npy.featx.json").read_text())
    assert side["pool"] == {"over": "video", "stats": ["mean", "max"], "window": "1s", "stride": "0.5s",
                            "pyramid": False}
    assert "pool" not in json.loads((tmp_path / "frames.npy.featx.json").read_text())


@pytest.mark.parametrize("args,words", [
    (["extract", "sift", CLIP, "--pool-over", "video"], b"sift gives a set of keypoints per image"),
    (["extract", "detect", CLIP, "--pool-over", "video"], b"--pool-over pools vectors"),
    (["extract", "gradients", SAMPLES / "chelsea.png", "--pool-over", "video"], b"one row per image already"),
    (["extract", "gradients", CLIP, "--pool-over", "image"], b"it needs --regions"),
    (["extract", "gradients", CLIP, "--pool-over", "segment"], b"--pool-over segment: these rows have no segment"),
    (["extract", "gradients", CLIP, "--pool-over", "track"], b"--pool-over track: these rows have no track"),
    (["extract", "gradients", CLIP, "--pool-stats", "mean"], b"--pool-stats needs --pool-over"),
    (["extract", "gradients", CLIP, "--pool-over", "video", "--pool-stats", "mean,avg"], b"--pool-stats"),
    (["extract", "gradients", CLIP, "--pool-over", "video", "--pool-stats", "mean,mean"], b"--pool-stats"),
    (["extract", "gradients", CLIP, "--pool-over", "video", "--pool-window", "0"], b"--pool-window"),
    (["extract", "gradients", CLIP, "--pool-over", "video", "--pool-stride", "1"], b"--pool-stride needs --pool-window"),
    (["extract", "gradients", CLIP, "--pool-over", "video", "--pool-window", "2s", "--pool-stride", "3f"],
     b"both in seconds or both in rows"),
    (["extract", "gradients", SAMPLES, "--frames", "--pool-over", "video", "--pool-window", "2"],
     b"in seconds needs the frames' times"),
])
def test_what_cannot_be_pooled_is_a_usage_error_before_any_work(tmp_path, args, words):
    out = tmp_path / "o.npy"
    r = featx(*args, "-o", out)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr, r.stderr
    assert not out.exists()


def test_regions_refusals(tmp_path):
    regions = tmp_path / "r.csv"
    regions.write_text(f"path,x,y,w,h\n{SAMPLES / 'chelsea.png'},0,0,20,20\n")
    r = featx("extract", "gradients", "--regions", regions, "-o", tmp_path / "o.npy", "--pool-over", "video")
    assert r.returncode == 2 and b"--pool-over image" in r.stderr
    for extra, words in ((["--pool-stats", "diff"], b"--pool-stats diff needs rows in time order"),
                         (["--pool-pyramid"], b"--pool-pyramid splits rows in time order"),
                         (["--pool-window", "3f"], b"--pool-window slides over time")):
        r = featx("extract", "gradients", "--regions", regions, "-o", tmp_path / "o.npy", "--pool-over", "image",
                  *extra)
        assert r.returncode == 2 and words in r.stderr, r.stderr


def test_python_and_recipe_values_are_checked_as_flags_are(tmp_path):
    import featx as fx
    from featx.errors import UsageError

    for bad in ({"pool_over": "frame"}, {"pool_over": "video", "pool_stats": "mean,nope"},
                {"pool_over": "video", "pool_window": "-2"}, {"pool_over": "video", "pool_window": True}):
        with pytest.raises(UsageError):
            fx.run(outputs=[{"extractor": "gradients", "path": str(tmp_path / "g.npy"), **bad}], inputs=[str(CLIP)])
    assert not (tmp_path / "g.npy").exists()


# ---------------------------------------------------------------------------
# kill -9 of the main process mid-run, then the same command again


def small_videos(root: Path, n: int, frames: int) -> list[Path]:
    import cv2

    root.mkdir(parents=True)
    cap = cv2.VideoCapture(str(CLIP))
    imgs = []
    for _ in range(frames + n):
        ok, img = cap.read()
        if not ok:
            cap.release()
            cap = cv2.VideoCapture(str(CLIP))
            ok, img = cap.read()
        imgs.append(cv2.resize(img, (80, 60)))
    cap.release()
    out = []
    for v in range(n):
        p = root / f"v{v:02d}.avi"
        w = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (80, 60))
        for img in imgs[v:v + frames]:
            w.write(img)
        w.release()
        out.append(p)
    return out


@pytest.mark.slow
def test_kill9_of_the_main_process_mid_run_then_rerun_is_identical(tmp_path):
    """kill -9 of the main process alone while its two workers pool videos: no process of the
    run is left, what was committed is whole videos' pooled rows, and the same command then
    ends byte-identical to an uninterrupted run."""
    from test_faults_workers import marked, wait_gone

    videos, frames, per_video = 24, 8, 2      # --pool-window 4f: two pooled rows per video
    src = tmp_path / "videos"
    small_videos(src, videos, frames)
    env = {**os.environ, **plugin_env(tmp_path)}
    env.pop("FEATX_CACHE_DIR", None)
    args = ["--video", "--pool-over", "video", "--pool-stats", "mean,std,diff", "--pool-window", "4f",
            "-q", "-j", "2", "--commit-every", "0.1"]
    ref = tmp_path / "ref" / "s.npy"
    ref.parent.mkdir()
    r = subprocess.run([sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(ref), *args],
                       env=dict(env, SLOW_MS="1"), capture_output=True)
    assert r.returncode == 0, r.stderr
    expected = output_files(ref)
    assert np.load(ref).shape[0] == videos * per_video
    out = tmp_path / "run" / "s.npy"
    out.parent.mkdir()
    progress, gate = tmp_path / "progress", tmp_path / "gate"
    cmd = [sys.executable, "-m", "featx", "extract", "slow", str(src), "-o", str(out), *args]
    mark = "inpass-" + os.urandom(6).hex()
    # a known point: the workers hold after 160 frames (the gate file is never made): five chunks
    # of 4 videos (32 frames) came back, 5 ms a frame, so commits were started and recorded
    p = subprocess.Popen(cmd, env=dict(env, SLOW_MS="5", SLOW_PROGRESS=str(progress), SLOW_GATE=f"160:{gate}",
                                       FEATX_TEST_RUN=mark), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while p.poll() is None and time.monotonic() < deadline and not (
                out.exists() and np.load(out, mmap_mode="r").shape[0] > 0
                and progress.exists() and progress.stat().st_size >= 160):
            time.sleep(0.01)
        assert p.poll() is None, "the run ended before it could be killed mid-run"
        assert out.exists(), "nothing committed at the known point"
        os.kill(p.pid, signal.SIGKILL)   # the main process only: its workers must go with it
        p.wait()
        wait_gone(mark)
        done = np.load(out).shape[0]
        assert 0 < done < videos * per_video and done % per_video == 0   # whole videos, never part of one
    finally:
        for pid in marked(mark):
            os.kill(pid, signal.SIGKILL)
    r = subprocess.run(cmd, env=dict(env, SLOW_MS="1"), capture_output=True)
    assert r.returncode == 0, r.stderr
    assert output_files(out) == expected
    assert [q.name for q in out.parent.iterdir() if "tmp" in q.name or "spool" in q.name] == []


# ---------------------------------------------------------------------------
# every way of running and reading an output


def test_every_format_and_the_python_api_hold_the_same_pooled_rows(tmp_path):
    import featx as fx
    from featx.output.reader import open_output

    args = ["--pool-over", "video", "--pool-stats", "mean,max", "--pool-window", "1", "--max-frames", "40", "-j", "1"]
    values, keys, failures = fx.extract_files(str(CLIP), "gradients", pool_over="video", pool_stats="max,mean",
                                              pool_window="1s", max_frames=40)
    assert failures == [] and values.shape == (2, 256) and [k["frames"] for k in keys] == [25, 15]
    r = featx("extract", "gradients", CLIP, "-o", "-", *args)   # CSV on stdout
    assert r.returncode == 0, r.stderr
    (tmp_path / "direct.csv").write_bytes(r.stdout)
    for fmt in ("npy", "parquet", "npy-dir"):
        out = f"{tmp_path}/o/" if fmt == "npy-dir" else str(tmp_path / f"o.{fmt}")
        r = featx("extract", "gradients", CLIP, "-o", out, "-q", *args)
        assert r.returncode == 0, r.stderr
        got_keys, got = [], []
        for ks, vs in open_output(out).batches():
            got_keys += ks
            got += [np.asarray(v, dtype=np.float32).reshape(-1) for v in vs]
        assert np.array_equal(np.stack(got), values), fmt
        assert [k.get("window") for k in got_keys] == [0, 1], fmt
        # converted to CSV: what the direct CSV holds (names of the pooled values included)
        if fmt != "npy-dir":   # (an npy-dir does not keep the times: start and end are empty)
            r = featx("convert", out, tmp_path / f"c-{fmt}.csv")
            assert r.returncode == 0, r.stderr
            assert (tmp_path / f"c-{fmt}.csv").read_bytes() == (tmp_path / "direct.csv").read_bytes(), fmt
    assert (tmp_path / "direct.csv").read_text().splitlines()[0].startswith(
        "path,window,start,end,frames,mean.cell0_0_bin0,")
    r = featx("inspect", tmp_path / "o.npy")
    assert b"pooled:       one row per video window: mean, max; windows of 1s every 1s" in r.stdout, r.stdout
    assert b"mean.cell0_0_bin0" in r.stdout


def test_several_extractors_in_one_pass_each_pooled(tmp_path):
    out = f"{tmp_path}/feats/"
    r = featx("extract", "gradients+hog", CLIP, "-o", out, "-j", "1", "-q", "--resize", "64x64",
              "--max-frames", "10", "--pool-over", "video", "--pool-stats", "mean,max")
    assert r.returncode == 0, r.stderr
    for name in ("gradients", "hog"):
        one = tmp_path / f"{name}.npy"
        r = featx("extract", name, CLIP, "-o", one, "-j", "1", "-q", "--resize", "64x64", "--max-frames", "10",
                  "--pool-over", "video", "--pool-stats", "mean,max")
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "feats" / f"{name}.npy").read_bytes() == one.read_bytes()
        assert np.load(one).shape[0] == 1


# ---------------------------------------------------------------------------
# the same bytes as `featx pool` over the per-frame (per-box) output


POOL_ARGS = [
    (["--stats", "mean,max"], "csv", 0),
    (["--stats", "std,diff", "--window", "0.5s", "--stride", "0.3s"], "npy", 0),
    # 62 frames: the last window of 10 holds 2, too few to split: that window fails in both, alone
    (["--stats", "min", "--window", "10f", "--pyramid"], "npy", 1),
]


@pytest.mark.parametrize("pool_args,fmt,code", POOL_ARGS, ids=["mean-max-csv", "windows-s-npy", "windows-f-pyramid"])
def test_in_pass_writes_what_featx_pool_writes_from_the_per_frame_output(tmp_path, pool_args, fmt, code):
    per = tmp_path / f"frames.{fmt}"
    assert featx("extract", "gradients", CLIP, "-o", per, "-j", "1", "-q").returncode == 0
    r = featx("pool", per, "-o", tmp_path / f"after.{fmt}", "--over", "video", *pool_args)
    assert r.returncode == code, r.stderr
    flags = [f"--pool-{a[2:]}" if a.startswith("--") else a for a in pool_args]
    r = featx("extract", "gradients", CLIP, "-o", tmp_path / f"inpass.{fmt}", "-j", "1", "-q", "--pool-over", "video",
              *flags)
    assert r.returncode == code, r.stderr
    if code:
        assert b"window 6: 2 rows: a pyramid splits at least 4 rows" in r.stderr, r.stderr
    for name in ((f"{{}}.{fmt}",) if fmt == "csv" else ("{}.npy", "{}.index.csv")):
        assert (tmp_path / name.format("inpass")).read_bytes() == (tmp_path / name.format("after")).read_bytes(), name


def test_tracks_and_frame_folders_as_featx_pool_pools_them(tmp_path):
    """--regions with a track column (featx detect --track's file, written here by hand for
    two boxes moving over clip.mp4), pooled per track; and a frame folder, pooled as the
    folder: in-pass and featx pool agree byte for byte."""
    tracks = tmp_path / "tracks.csv"
    lines = ["path,track,frame,time,x,y,w,h"]
    for f in range(0, 30, 2):
        lines.append(f"{CLIP},0,{f},{f * 0.04:.6f},{10 + f},20,48,40")
        if f >= 6:
            lines.append(f"{CLIP},1,{f},{f * 0.04:.6f},100,{60 - f},40,40")
    tracks.write_text("\n".join(lines) + "\n")
    folder = make_frames(tmp_path / "in" / "a", 9)
    for name, src, over, extra in (("t", ["--regions", tracks], "track", ["--stats", "mean,diff", "--window", "4f"]),
                                   ("f", [folder, "--frames"], "video", ["--stats", "max", "--window", "3f"])):
        per = tmp_path / f"{name}-rows.npy"
        assert featx("extract", "gradients", *src, "-o", per, "-j", "1", "-q").returncode == 0
        r = featx("pool", per, "-o", tmp_path / f"{name}-after.npy", "--over", over, *extra)
        assert r.returncode == 0, r.stderr
        flags = [f"--pool-{a[2:]}" if a.startswith("--") else a for a in extra]
        r = featx("extract", "gradients", *src, "-o", tmp_path / f"{name}-inpass.npy", "-j", "1", "-q",
                  "--pool-over", over, *flags)
        assert r.returncode == 0, r.stderr
        for suffix in (".npy", ".index.csv"):
            a, b = (tmp_path / f"{name}-inpass{suffix}").read_bytes(), (tmp_path / f"{name}-after{suffix}").read_bytes()
            assert a == b, (name, suffix)
    idx = (tmp_path / "t-inpass.index.csv").read_text().splitlines()
    assert idx[0] == "row,path,track,window,start,end,frames" and len(idx) == 1 + 4 + 3


@pytest.mark.parametrize("name,values", [
    ("pool_window", ["2", "2.5s", "30f", "0", "-1", "1.5f", "abc", "2x", "inf"]),
    ("pool_stride", ["1", "0.5s", "15f", "0f", "s"]),
    ("pool_stats", ["mean", "max,mean", "diff,min,std", "mean,mean", "avg", ",", ""]),
])
def test_pooling_values_are_refused_alike_by_flag_recipe_and_python(tmp_path, name, values):
    """The new kinds of run option (a length, a list of statistics) are read by one function
    (runopts.convert) for the flag, the recipe key and a Python value."""
    from featx import runopts
    from test_runopts import _by_flag, _by_python, _by_recipe

    o = runopts.BY_NAME[name]
    for v in values:
        flag, recipe, python = _by_flag(o, v), _by_recipe(o, v, tmp_path), _by_python(o, v)
        try:
            runopts.convert(o, v)
            declared = True
        except runopts.Invalid:
            declared = False
        assert flag == recipe == python == declared, (name, v, flag, recipe, python, declared)
    # a recipe may write a length as a number of seconds, and statistics as a list
    assert runopts.convert(runopts.BY_NAME["pool_window"], 2) == "2s"
    assert runopts.convert(runopts.BY_NAME["pool_window"], 0.5) == "0.5s"
    assert runopts.convert(runopts.BY_NAME["pool_stats"], ["max", "mean"]) == ("mean", "max")


def test_a_config_file_sets_pooling_as_a_recipe_writes_it(tmp_path):
    cfg = tmp_path / "pool.toml"
    cfg.write_text('pool-over = "video"\npool-stats = ["max", "mean"]\npool-window = 1\n')
    r = featx("extract", "gradients", CLIP, "--config", cfg, "-o", tmp_path / "c.npy", "-j", "1", "-q",
              "--max-frames", "30")
    assert r.returncode == 0, r.stderr
    r = featx("extract", "gradients", CLIP, "-o", tmp_path / "f.npy", "-j", "1", "-q", "--max-frames", "30",
              "--pool-over", "video", "--pool-stats", "mean,max", "--pool-window", "1s")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "c.npy").read_bytes() == (tmp_path / "f.npy").read_bytes()
    cfg.write_text('pool-over = "video"\npool-stats = ["max", "nope"]\n')
    r = featx("extract", "gradients", CLIP, "--config", cfg, "-o", tmp_path / "x.npy")
    assert r.returncode == 2 and b"pool-stats" in r.stderr, r.stderr


def test_segments_pooled_during_extraction_as_featx_pool_pools_them(tmp_path):
    """--segments rows (path, segment, label, frame, time; segments may overlap: a frame of
    two segments is a row of each) pooled per segment, with windows inside them: in-pass and
    featx pool agree byte for byte, labels kept."""
    segs = tmp_path / "segs.csv"
    segs.write_text(f"path,start,end,label\n{CLIP},0.0,1.0,intro\n{CLIP},0.6,2.0,\n{CLIP},1.9,2.4,end\n")
    extra = ["--stats", "mean,diff", "--window", "0.4s", "--stride", "0.2s"]
    per = tmp_path / "rows.npy"
    assert featx("extract", "gradients", "--segments", segs, "-o", per, "-j", "1", "-q").returncode == 0
    r = featx("pool", per, "-o", tmp_path / "after.csv", "--over", "segment", *extra)
    assert r.returncode == 0, r.stderr
    flags = [f"--pool-{a[2:]}" if a.startswith("--") else a for a in extra]
    for j in ("1", "2"):
        r = featx("extract", "gradients", "--segments", segs, "-o", tmp_path / f"inpass{j}.csv", "-j", j, "-q",
                  "--pool-over", "segment", *flags)
        assert r.returncode == 0, r.stderr
        assert (tmp_path / f"inpass{j}.csv").read_bytes() == (tmp_path / "after.csv").read_bytes(), j
    lines = (tmp_path / "after.csv").read_text().splitlines()
    assert lines[0].startswith("path,segment,label,window,start,end,frames,mean.")
    assert {l.split(",")[2] for l in lines[1:]} == {"intro", "", "end"}


def test_an_npy_dir_of_segment_windows_counts_its_nested_files(tmp_path):
    """Pooled windows of segments are files two folders down (segment0000-a/window000001.npy):
    a second run finds them all and the input up to date; one of them deleted, the input is
    done again and the file is back."""
    segs = tmp_path / "s.csv"
    segs.write_text(f"path,start,end,label\n{CLIP},0,1.2,a\n{CLIP},1.2,2.5,b\n")
    out = f"{tmp_path}/o/"
    args = ["extract", "gradients", "--segments", segs, "-o", out, "--pool-over", "segment", "--pool-window", "0.5s"]
    r = featx(*args)
    assert r.returncode == 0, r.stderr
    nested = sorted(p for p in (tmp_path / "o").rglob("window*.npy"))
    assert len(nested) >= 4 and all(p.parent.name.startswith("segment") for p in nested), nested
    r = featx(*args)
    assert r.returncode == 0 and b"0 processed, 1 up to date" in r.stderr, r.stderr
    nested[-1].unlink()
    r = featx(*args)
    assert r.returncode == 0 and b"1 processed" in r.stderr, r.stderr
    assert nested[-1].is_file()
