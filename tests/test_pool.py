"""featx pool: pooled rows equal a numpy aggregation of the per-frame rows of real featx
outputs (every statistic, windows at a video's ends, pyramids, a variable-frame-rate video
with windows in seconds), every format in and out, incremental, crash-safe, refusals."""
from __future__ import annotations

import fractions
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from featx.errors import UsageError
from featx.output.layout import mirror_path
from featx.output.reader import open_output
from featx.pooling import PARTS, PoolSpec, Pooler
from helpers import SAMPLES, featx, ok

F32 = np.float32


def _read(path) -> tuple[list[dict], np.ndarray]:
    with open_output(str(path)) as r:
        keys, vals = [], []
        for k, v in r.batches(3):
            keys += k
            vals.append(v)
    return keys, np.concatenate(vals) if vals else np.zeros((0, 0), F32)


# -- the reference: numpy over the per-frame rows, written independently of featx.pooling --

def ref_stats(x: np.ndarray, stats) -> np.ndarray:
    """mean, std, min, max, diff of the rows ``x`` (float32), as POOL.md defines them."""
    x64 = x.astype(np.float64)
    n = len(x)
    out = []
    for s in ("mean", "std", "min", "max", "diff"):
        if s not in stats:
            continue
        if s == "mean":
            v = x64.sum(axis=0) / n
        elif s == "std":
            v = np.std(x64, axis=0)
        elif s == "min":
            v = x.min(axis=0)
        elif s == "max":
            v = x.max(axis=0)
        else:
            v = np.abs(np.diff(x64, axis=0)).sum(axis=0) / (n - 1) if n > 1 else np.zeros(x.shape[1])
        out.append(np.asarray(v).astype(F32))
    return np.concatenate(out)


def assert_pooled(got: np.ndarray, x: np.ndarray, stats) -> None:
    """Exact (==) for mean, min, max, diff.  std within one float32 ulp: featx takes it by
    Welford's one-pass update, numpy by two passes (mean, then squared deviations); both in
    float64, they differ in the last float64 bits, which can move the float32 rounding by
    one step when the float64 value lies next to a float32 rounding boundary."""
    want = ref_stats(x, stats)
    d = x.shape[1]
    assert got.shape == want.shape and got.dtype == F32
    for i, s in enumerate(s for s in ("mean", "std", "min", "max", "diff") if s in stats):
        g, w = got[i * d:(i + 1) * d], want[i * d:(i + 1) * d]
        if s == "std":
            np.testing.assert_array_max_ulp(g, w, maxulp=1)
            assert np.abs(g - w).max() <= np.spacing(np.abs(w).max())
        else:
            assert np.array_equal(g, w), s


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Per-frame gradients of every frame of samples/clip.mp4 (62 frames, 25 fps)."""
    d = tmp_path_factory.mktemp("clip")
    ok(featx("extract", "gradients", SAMPLES / "clip.mp4", "-o", d / "g.npy", "--resize", "160x120", "-q"))
    keys, x = _read(d / "g.npy")
    assert len(keys) == 62 and x.shape == (62, 128)
    return d, keys, x


def test_every_statistic_equals_numpy_over_the_frames(clip, tmp_path):
    d, keys, x = clip
    stats = ("mean", "std", "min", "max", "diff")
    r = ok(featx("pool", d / "g.npy", "-o", tmp_path / "p.npy", "--stats", "diff,max,std,min,mean"))
    assert b"1 processed" in r.stderr
    pk, pv = _read(tmp_path / "p.npy")
    assert len(pk) == 1 and pv.shape == (1, 5 * 128)
    assert pk[0] == {"path": keys[0]["path"], "start": 0.0, "end": keys[-1]["time"], "frames": 62}
    assert_pooled(pv[0], x, stats)
    # each statistic alone is the same slice (the order is canonical, not the order given)
    for s in stats:
        ok(featx("pool", d / "g.npy", "-o", tmp_path / f"{s}.npy", "--stats", s))
        assert_pooled(_read(tmp_path / f"{s}.npy")[1][0], x, (s,))
    # named after the extractor's columns, stat first, in CSV (and when converted)
    ok(featx("convert", tmp_path / "p.npy", tmp_path / "p.csv"))
    header = (tmp_path / "p.csv").read_text().split("\n", 1)[0].split(",")
    assert header[:5] == ["path", "start", "end", "frames", "mean.cell0_0_bin0"]
    assert header[4 + 128] == "std.cell0_0_bin0" and header[-1] == "diff.cell3_3_bin7"
    side = json.loads((tmp_path / "p.npy.featx.json").read_text())
    assert side["pool"]["stats"] == list(stats) and side["pool"]["over"] == "video"
    assert side["source"]["path"] == str(d / "g.npy") and side["extractor"]["name"] == "gradients"
    with open_output(str(tmp_path / "p.npy")) as r:
        assert r.key_columns == ("path", "start", "end", "frames")


@pytest.mark.parametrize("window,stride", [(10, None), (7, 3), (5, 8), (62, None), (100, 30)])
def test_windows_in_rows_at_the_ends_of_the_video(clip, tmp_path, window, stride):
    d, keys, x = clip
    args = ["--window", f"{window}f"] + (["--stride", f"{stride}f"] if stride else [])
    ok(featx("pool", d / "g.npy", "-o", tmp_path / "w.npy", "--stats", "mean,max,diff", *args))
    pk, pv = _read(tmp_path / "w.npy")
    step = stride or window
    starts = list(range(0, 62, step))          # every k with k*stride < n
    assert [k["window"] for k in pk] == list(range(len(starts)))
    for k, s, v in zip(pk, starts, pv):
        rows = x[s:s + window]                 # the last window may hold fewer rows
        assert k["frames"] == len(rows) and k["start"] == keys[s]["time"]
        assert k["end"] == keys[min(s + window, 62) - 1]["time"]
        assert_pooled(v, rows, ("mean", "max", "diff"))
    assert pk[-1]["frames"] == len(x[starts[-1]:starts[-1] + window])


def test_windows_in_seconds_follow_the_frame_times(clip, tmp_path):
    d, keys, x = clip
    t = np.array([k["time"] for k in keys])
    for w, s in ((0.5, 0.2), (0.3, 0.7), (1.0, None)):
        out = tmp_path / f"w{w}-{s}.csv"
        ok(featx("pool", d / "g.npy", "-o", out, "--window", f"{w}s", *(["--stride", str(s)] if s else []),
                 "--stats", "mean,min"))
        pk, pv = _read(out)
        want = _second_windows(t, w, s or w)
        assert [k["window"] for k in pk] == [k for k, _ in want]
        for key, v, (_, m) in zip(pk, pv, want):
            assert key["frames"] == int(m.sum())
            assert_pooled(v, x[m], ("mean", "min"))


def _second_windows(t: np.ndarray, w: float, s: float):
    """(k, rows) of every window k >= 0 whose [k*s, k*s + w) holds a row (a time within
    1e-6 s below a bound counts as on it, as for segments)."""
    out = []
    t = t + 1e-6
    for k in range(int(t.max() / s) + 2):
        m = (k * s <= t) & (t < k * s + w)
        if m.any():
            out.append((k, m))
    return out


VFR_MS = [0, 40, 80, 200, 240, 500, 510, 520, 1000, 1033, 1400, 2100, 2150, 2900, 3000, 3010]


def _vfr_video(path: Path) -> Path:
    """A real variable-frame-rate MPEG-4 video of the sample photos, frames shown at
    :data:`VFR_MS` (written with PyAV, every frame's timestamp set by hand)."""
    av = pytest.importorskip("av")
    imgs = [cv2.resize(cv2.imread(str(SAMPLES / n)), (64, 48), interpolation=cv2.INTER_AREA)
            for n in ("astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg")]
    tb = fractions.Fraction(1, 1000)
    with av.open(str(path), "w") as out:
        st = out.add_stream("mpeg4", rate=25)
        st.width, st.height, st.pix_fmt = 64, 48, "yuv420p"
        st.time_base = st.codec_context.time_base = tb
        for i, ms in enumerate(VFR_MS):
            f = av.VideoFrame.from_ndarray(cv2.cvtColor(imgs[i % len(imgs)], cv2.COLOR_BGR2RGB), format="rgb24")
            f.pts, f.time_base = ms, tb
            for p in st.encode(f):
                out.mux(p)
        for p in st.encode():
            out.mux(p)
    return path


def test_a_variable_frame_rate_video_with_windows_in_seconds(tmp_path):
    video = _vfr_video(tmp_path / "vfr.mp4")
    ok(featx("extract", "gradients", video, "-o", tmp_path / "g.csv", "-q"))
    keys, x = _read(tmp_path / "g.csv")
    t = np.array([k["time"] for k in keys])
    # featx's frame times are the container's timestamps, not index / rate
    assert np.allclose(t, np.array(VFR_MS) / 1000.0, atol=1e-6)
    assert not np.allclose(t, np.arange(len(t)) / 25.0)
    for w, s in (("0.5s", "0.25s"), ("1", "1.5"), ("2s", None)):
        out = tmp_path / f"p{w}{s}.npy"
        ok(featx("pool", tmp_path / "g.csv", "-o", out, "--window", w, *(["--stride", s] if s else []),
                 "--stats", "mean,std,max"))
        pk, pv = _read(out)
        ww, ss = float(w.rstrip("s")), float((s or w).rstrip("s"))
        want = _second_windows(t, ww, ss)
        assert [k["window"] for k in pk] == [k for k, _ in want]
        for key, v, (_, m) in zip(pk, pv, want):
            assert (key["frames"], key["start"], key["end"]) == (int(m.sum()), t[m][0], t[m][-1])
            assert_pooled(v, x[m], ("mean", "std", "max"))
    # 0.5 s windows every 0.25 s: window 6, [1.5, 2.0), lies in the gap 1.4-2.1 s: there is none
    pk, _ = _read(tmp_path / "p0.5s0.25s.npy")
    assert [k["window"] for k in pk][4:8] == [4, 5, 7, 8] and [k["frames"] for k in pk][:2] == [5, 3]


def test_pyramid_parts_and_a_unit_too_short_to_split(clip, tmp_path):
    d, keys, x = clip
    ok(featx("pool", d / "g.npy", "-o", tmp_path / "p.csv", "--pyramid", "--stats", "mean,std,diff"))
    pk, pv = _read(tmp_path / "p.csv")
    n, dd = 62, 128
    per = 3 * dd
    for i, (name, j, k) in enumerate(PARTS):
        part = x[j * n // k:(j + 1) * n // k]
        assert_pooled(pv[0][i * per:(i + 1) * per], part, ("mean", "std", "diff"))
    header = (tmp_path / "p.csv").read_text().split("\n", 1)[0].split(",")
    assert header[4] == "all.mean.cell0_0_bin0" and header[4 + per] == "h1.mean.cell0_0_bin0"
    assert header[-1] == "q4.diff.cell3_3_bin7"
    # windows of 10 rows: the last holds 2 (62 = 6 x 10 + 2): it cannot be split, the others are written
    r = featx("pool", d / "g.npy", "-o", tmp_path / "w.npy", "--pyramid", "--window", "10f")
    assert r.returncode == 1 and b"window 6: 2 rows: a pyramid splits at least 4 rows" in r.stderr
    pk, pv = _read(tmp_path / "w.npy")
    assert [k["window"] for k in pk] == [0, 1, 2, 3, 4, 5]
    for k, v in zip(pk, pv):
        rows = x[k["window"] * 10:k["window"] * 10 + 10]
        assert_pooled(v[:dd], rows, ("mean",))
        assert_pooled(v[3 * dd:4 * dd], rows[:2], ("mean",))   # q1 of 10 rows: rows 0, 1
    side = json.loads((tmp_path / "w.npy.featx.json").read_text())
    assert side["failures"][0]["reason"].startswith("window 6: 2 rows")


@pytest.mark.parametrize("src_fmt", ["csv", "npy-dir", "parquet"])
def test_every_format_in_and_out(clip, tmp_path, src_fmt):
    if src_fmt == "parquet":
        pytest.importorskip("pyarrow")
    d, keys, x = clip
    src = {"csv": tmp_path / "g.csv", "npy-dir": tmp_path / "g", "parquet": tmp_path / "g.parquet"}[src_fmt]
    ok(featx("convert", d / "g.npy", str(src) + ("/" if src_fmt == "npy-dir" else "")))
    outs = {"csv": "p.csv", "npy": "p.npy", "npy-dir": "p/", "parquet": "p.parquet"}
    for fmt, name in outs.items():
        if fmt == "parquet" and src_fmt != "parquet":
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                continue
        dst = str(tmp_path / name.rstrip("/")) + ("/" if name.endswith("/") else "")
        ok(featx("pool", src, "-o", dst, "--stats", "mean,max,diff", "--window", "20f"))
        pk, pv = _read(tmp_path / name.rstrip("/"))
        assert [k["window"] for k in pk] == [0, 1, 2, 3]
        for k, v in zip(pk, pv):
            assert_pooled(v, x[k["window"] * 20:k["window"] * 20 + 20], ("mean", "max", "diff"))
            if fmt != "npy-dir" and src_fmt != "npy-dir":
                assert k["frames"] == len(x[k["window"] * 20:k["window"] * 20 + 20])
                assert k["start"] == keys[k["window"] * 20]["time"]
    assert sorted(os.listdir(tmp_path / "p" / mirror_path(str(SAMPLES / "clip.mp4"), str(tmp_path)))) == \
        ["window000000.npy", "window000001.npy", "window000002.npy", "window000003.npy"]


def test_photos_and_regions_over_image(tmp_path):
    """hog --resize of real photos; --regions boxes pooled per picture (keys: regions)."""
    p = tmp_path / "p"
    p.mkdir()
    for n in ("astronaut.png", "coffee.jpg"):
        shutil.copy(SAMPLES / n, p / n)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("path,x,y,w,h\n" "p/astronaut.png,10,10,100,80\np/astronaut.png,200,50,64,64\n"
                     "p/astronaut.png,0,0,300,300\np/coffee.jpg,30,40,120,90\n")
    ok(featx("extract", "hog", "--regions", boxes, "--resize", "64x64", "-o", tmp_path / "r.npy", "-q",
             cwd=tmp_path))
    keys, x = _read(tmp_path / "r.npy")
    ok(featx("pool", "r.npy", "-o", "img.csv", "--over", "image", "--stats", "mean,std,max", cwd=tmp_path))
    pk, pv = _read(tmp_path / "img.csv")
    assert [(os.path.basename(k["path"]), k["regions"]) for k in pk] == [("astronaut.png", 3), ("coffee.jpg", 1)]
    assert list(pk[0]) == ["path", "regions"]
    assert_pooled(pv[0], x[:3], ("mean", "std", "max"))
    assert_pooled(pv[1], x[3:], ("mean", "std", "max"))
    # photos: --over video gives one row per photo, equal to the photo's own row
    ok(featx("extract", "hog", p, "--resize", "64x64", "-o", tmp_path / "h.npy", "-q"))
    keys, x = _read(tmp_path / "h.npy")
    ok(featx("pool", tmp_path / "h.npy", "-o", tmp_path / "hp.npy", "--stats", "mean,diff"))
    pk, pv = _read(tmp_path / "hp.npy")
    assert [k["frames"] for k in pk] == [1, 1]
    assert np.array_equal(pv[:, :x.shape[1]], x) and not pv[:, x.shape[1]:].any()


def test_segments_pool_the_rows_with_start_le_time_lt_end(clip, tmp_path):
    d, keys, x = clip
    t = np.array([k["time"] for k in keys])
    segs = tmp_path / "segs.csv"
    path = keys[0]["path"]
    segs.write_text(f"path,start,end,label\n{path},0.4,1.0,walk\n{path},0,0.4,\n{path},1.0,2.2,run\n"
                    f"{path},0.8,1.2,overlap\n")
    ok(featx("pool", d / "g.npy", "-o", tmp_path / "s.csv", "--segments", segs, "--stats", "mean,max"))
    pk, pv = _read(tmp_path / "s.csv")
    assert [(k["segment"], k["label"]) for k in pk] == [(0, "walk"), (1, None), (2, "run"), (3, "overlap")]
    assert list(pk[0]) == ["path", "segment", "label", "start", "end", "frames"]
    for k, v, (a, b) in zip(pk, pv, ((0.4, 1.0), (0, 0.4), (1.0, 2.2), (0.8, 1.2))):
        m = (a <= t) & (t < b)
        assert k["frames"] == m.sum() and k["start"] == t[m][0] and k["end"] == t[m][-1]
        assert_pooled(v, x[m], ("mean", "max"))
    assert (np.array([k["frames"] for k in pk[:3]]).sum()) == (t < 2.2).sum()
    # incremental: the same file, nothing to do; a path's segments changed, that path again
    assert b"0 processed, 1 up to date" in ok(featx("pool", d / "g.npy", "-o", tmp_path / "s.csv", "--segments",
                                                    segs, "--stats", "mean,max")).stderr
    segs.write_text(f"{path},0.4,1.0,walk\n{path},0,0.4,\n{path},1.0,2.2,run\n")
    assert b"1 processed" in ok(featx("pool", d / "g.npy", "-o", tmp_path / "s.csv", "--segments", segs,
                                      "--stats", "mean,max")).stderr
    assert len(_read(tmp_path / "s.csv")[0]) == 3
    # a segment with no frame in it is listed, the others are written; windows inside segments
    segs.write_text(f"{path},0,1.0,a\n{path},5,6,late\n")
    r = featx("pool", d / "g.npy", "-o", tmp_path / "s2.csv", "--segments", segs, "--window", "10f")
    assert r.returncode == 1 and b"segment 1 (5-6 s): no rows" in r.stderr
    pk, pv = _read(tmp_path / "s2.csv")
    assert [(k["segment"], k["window"], k["frames"]) for k in pk] == [(0, 0, 10), (0, 1, 10), (0, 2, 5)]


def test_tracks_interleaved_in_output_order():
    """Boxes of two tracks, interleaved frame by frame as an extraction writes them: one
    pooled row per track, each equal to numpy over that track's rows (library, in-process)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 6)).astype(F32)
    track = np.array([i % 2 if i < 20 else 1 for i in range(30)])
    spec = PoolSpec.parse("track", "mean,std,min,max,diff", "4f", None, False)
    keys = ("path", "track", "frame", "time", "x", "y", "w", "h")
    p = Pooler(spec, keys, 6)
    out = []
    for i in range(30):
        out += p.feed({"path": "v.mp4", "track": int(track[i]), "frame": i // 2, "time": i / 50,
                       "x": 0, "y": 0, "w": 1, "h": 1}, x[i])
    out += p.finish()
    assert spec.key_columns(keys) == ("path", "track", "window", "start", "end", "frames")
    got = [(o.key["track"], o.key["window"], o.key["frames"]) for o in out]
    assert got == [(0, 0, 4), (0, 1, 4), (0, 2, 2), (1, 0, 4), (1, 1, 4), (1, 2, 4), (1, 3, 4), (1, 4, 4)]
    for o in out:
        rows = x[track == o.key["track"]][o.key["window"] * 4:o.key["window"] * 4 + 4]
        assert_pooled(o.vector, rows, spec.stats)


def _grow(tmp_path: Path):
    v = tmp_path / "v"
    v.mkdir()
    shutil.copy(SAMPLES / "clip.mp4", v / "a.mp4")
    return v


G = ("extract", "gradients", "--resize", "80x60", "--fps", "5", "-q", "--prune")


def test_incremental_new_changed_and_removed_paths(tmp_path):
    v = _grow(tmp_path)
    src, out = tmp_path / "g.npy", tmp_path / "p.csv"
    pool = ("pool", src, "-o", out, "--stats", "mean,max", "--window", "1s")
    ok(featx(*G, v, "-o", src))
    assert b"1 processed in" in ok(featx(*pool)).stderr
    first = out.read_bytes()
    assert b"0 processed, 1 up to date" in ok(featx(*pool)).stderr
    assert out.read_bytes() == first
    # the source grows: only the new path is pooled
    shutil.copy(SAMPLES / "clip.mp4", v / "b.mp4")
    ok(featx(*G, v, "-o", src))
    assert b"1 processed, 1 up to date" in ok(featx(*pool)).stderr
    # a changed path (re-extracted: other frames) is pooled again
    cap = cv2.VideoCapture(str(SAMPLES / "clip.mp4"))
    wr = cv2.VideoWriter(str(v / "a.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 25, (240, 180))
    for _ in range(30):
        okf, frame = cap.read()
        wr.write(cv2.resize(frame, (240, 180)))
    wr.release()
    ok(featx(*G, v, "-o", src))
    assert b"1 processed, 1 up to date" in ok(featx(*pool)).stderr
    # a path gone from the source is dropped
    os.remove(v / "b.mp4")
    ok(featx(*G, v, "-o", src))
    r = ok(featx(*pool))
    assert b"0 processed, 1 up to date, 1 dropped" in r.stderr
    # what the increments left is what pooling afresh gives
    ok(featx("pool", src, "-o", tmp_path / "fresh.csv", "--stats", "mean,max", "--window", "1s"))
    pk, pv = _read(out)
    fk, fv = _read(tmp_path / "fresh.csv")
    assert pk == fk and np.array_equal(pv, fv) and len(pk) == 2   # a.mp4 is 1.2 s now: 2 windows
    keys, x = _read(src)
    assert_pooled(pv[0][:pv.shape[1] // 2], x[[k["time"] < 1.0 for k in keys]], ("mean",))
    # other settings than the existing output's: refused, with the way out
    r = featx("pool", src, "-o", out, "--stats", "mean")
    assert r.returncode == 2 and b"--stats: mean,max -> mean" in r.stderr and b"--overwrite" in r.stderr
    ok(featx("pool", src, "-o", out, "--stats", "mean", "--overwrite"))
    assert _read(out)[1].shape == (1, 128)


KILLER = r"""
import os, signal, sys
from featx.output import npysink
calls = []
orig = npysink.NpySink.append
def append(self, key, data, shape):
    calls.append(1)
    if len(calls) == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(self, key, data, shape)
npysink.NpySink.append = append
from featx.poolrun import pool
pool(sys.argv[1], sys.argv[2], stats="mean,max")
"""


def test_kill_9_during_a_pool_leaves_the_old_output_intact(tmp_path):
    v = _grow(tmp_path)
    shutil.copy(SAMPLES / "clip.mp4", v / "b.mp4")
    src, out = tmp_path / "g.npy", tmp_path / "p.npy"
    ok(featx(*G, v, "-o", src))
    ok(featx("pool", src, "-o", out, "--stats", "mean,max"))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    shutil.copy(SAMPLES / "clip.mp4", v / "c.mp4")
    ok(featx(*G, v, "-o", src))
    before = {k: v for k, v in before.items() if not k.startswith(("g.", ".g.")) and not k.endswith("-lock")}
    assert {"p.npy", "p.index.csv", ".p.npy.featx-state", "p.npy.featx.json"} <= set(before)
    r = subprocess.run([sys.executable, "-c", KILLER, str(src), str(out)], capture_output=True, timeout=120)
    assert r.returncode == -signal.SIGKILL
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file() and p.name in before}
    assert after == before                 # the old output, its index, state and sidecar untouched
    assert [p for p in os.listdir(tmp_path) if "featx-tmp" in p]   # the work folder the kill left
    assert _read(out)[1].shape == (2, 256)
    r = ok(featx("pool", src, "-o", out, "--stats", "mean,max"))
    assert b"1 processed, 2 up to date" in r.stderr
    assert not [p for p in os.listdir(tmp_path) if "featx-tmp" in p]
    assert _read(out)[1].shape == (3, 256)


def test_refusals(clip, tmp_path):
    d, keys, x = clip
    g = d / "g.npy"
    for args, words in (
            (("--stats", "mean,median"), b"unknown statistic 'median'"),
            (("--stats", "max,max"), b"max asked twice"),
            (("--over", "clip"), b"--over clip: expected one of video, image, segment, track"),
            (("--over", "image"), b"--over image pools the boxes of a picture"),
            (("--over", "image", "--stats", "diff"), b"--stats diff needs rows in time order"),
            (("--over", "image", "--pyramid"), b"--pyramid splits rows in time order"),
            (("--over", "track"), b"--over track: these rows have no track"),
            (("--over", "segment"), b"--segments FILE"),
            (("--window", "2s", "--stride", "10f"), b"both in seconds or both in rows"),
            (("--stride", "2"), b"--stride needs --window"),
            (("--window", "0"), b"must be more than 0"),
            (("--window", "2.5f"), b"whole number"),
            (("--window", "two"), b"expected seconds (2, 2.5s) or rows (30f)")):
        r = featx("pool", g, "-o", tmp_path / "x.npy", *args)
        assert r.returncode == 2 and words in r.stderr, (args, r.stderr)
        assert not (tmp_path / "x.npy").exists()
    r = featx("pool", g, "-o", tmp_path / "x.npy", "--stats", "median")
    assert b"mean, std, min, max, diff" in r.stderr
    # windows in seconds on rows without a time: photos
    p = tmp_path / "p"
    p.mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", p / "coffee.jpg")
    ok(featx("extract", "hog", p, "--resize", "64x64", "-o", tmp_path / "h.npy", "-q"))
    r = featx("pool", tmp_path / "h.npy", "-o", tmp_path / "x.npy", "--window", "2")
    assert r.returncode == 2 and b"no time" in r.stderr and b"--window 30f" in r.stderr
    # an npy-dir source does not record frame times
    ok(featx("convert", g, str(tmp_path / "gd") + "/"))
    r = featx("pool", tmp_path / "gd", "-o", tmp_path / "x.npy", "--window", "1s")
    assert r.returncode == 2 and b"does not record" in r.stderr
    with pytest.raises(UsageError):
        PoolSpec.parse("video", "mean,sum")


def test_a_pyramid_keeps_an_open_units_rows_in_a_file_not_in_memory():
    spec = PoolSpec.parse("video", "mean", None, None, True)
    x = np.random.default_rng(1).standard_normal((100, 32)).astype(F32)
    p = Pooler(spec, ("path", "frame", "time"), 32)
    for i in range(100):
        assert p.feed({"path": "v", "frame": i, "time": None}, x[i]) == []
    (unit,) = p.units.values()
    g = unit.groups[None]
    assert g.acc is None and g.file.tell() == 100 * 32 * 4    # the rows, float32, in the file
    (out,) = p.finish()
    assert g.file is None and out.key == {"path": "v", "start": None, "end": None, "frames": 100}
    for i, (_, j, k) in enumerate(PARTS):
        assert_pooled(out.vector[i * 32:(i + 1) * 32], x[j * 100 // k:(j + 1) * 100 // k], ("mean",))


def test_windows_at_an_edge_are_the_same_from_every_source_format(tmp_path):
    """A frame at 1.4 s and the window starting at 7 x 0.2 s (= 1.4000000000000001): text
    formats record times to the microsecond, Parquet keeps the float; pooled windows must not
    depend on which one the rows were read from."""
    pytest.importorskip("pyarrow")
    clip = tmp_path / "clip.mp4"
    shutil.copy(SAMPLES / "clip.mp4", clip)
    segs = tmp_path / "s.csv"
    segs.write_text("path,start,end\nclip.mp4,0.6,2.0\n")
    pooled = {}
    for fmt in ("npy", "parquet", "csv"):
        rows = tmp_path / f"rows.{fmt}"
        assert featx("extract", "gradients", "--segments", segs, "-o", rows, "-q").returncode == 0
        out = tmp_path / f"pooled-{fmt}.csv"
        r = featx("pool", rows, "-o", out, "--over", "segment", "--stats", "mean,diff",
                  "--window", "0.4s", "--stride", "0.2s", "-q")
        assert r.returncode == 0, r.stderr
        pooled[fmt] = out.read_bytes()
    assert pooled["parquet"] == pooled["npy"] == pooled["csv"]
    # and the window at the edge holds the frame at 1.4 s (1.4 to 1.76 s: 10 frames)
    lines = pooled["npy"].decode().splitlines()
    cols = lines[0].split(",")
    w7 = [l.split(",") for l in lines[1:] if l.split(",")[cols.index("window")] == "7"]
    assert len(w7) == 1 and float(w7[0][cols.index("start")]) == 1.4 and w7[0][cols.index("frames")] == "10"
