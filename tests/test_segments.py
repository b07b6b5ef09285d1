"""Time segments (issue 24, item 2): ``--segments FILE`` and ``featx segments VIDEO``.

* ``--segments`` keeps exactly the frames with ``start <= time < end`` of each segment,
  checked against the frame times of a per-frame run of the same video: bounds exactly on
  frame times, sampling with ``--fps``, overlapping segments (a frame in two gives two rows),
  frame folders with ``--frame-rate``; rows keyed ``path, segment, label, frame, time``;
* frames outside every segment are never converted, and decoding stops after the last one;
* a segments file is refused as a regions file is (unreadable, columns, bad numbers,
  ``start >= end``, a path that is not a video), before any work;
* npy-dir names (``segment0003-LABEL/frame000012.npy``) read back with their keys;
* incremental: a video whose segments changed is redone, the others stay;
* ``featx segments`` finds the cuts of a video built from real photos filmed with a moving
  camera (pans, zooms, fast whip pans and light that fades are NOT cuts): recall and false
  alarms measured and asserted; its file is what ``--segments`` reads.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, csv_dicts as rows, featx, ok

KEYS = ["path", "segment", "label", "frame", "time"]


def values(r: dict, keys) -> np.ndarray:
    return np.array([np.float32(v) for k, v in r.items() if k not in keys], dtype=np.float32)


def write_segments(path: Path, segs: list[tuple], label: bool = True) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "start", "end", "label"] if label else ["path", "start", "end"])
        for s in segs:
            w.writerow(s if label else s[:3])
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> tuple[Path, list[dict]]:
    """samples/clip.mp4 in a folder of its own, and the rows of a per-frame run on it."""
    d = tmp_path_factory.mktemp("clip")
    shutil.copy(SAMPLES / "clip.mp4", d / "clip.mp4")
    ok(featx("extract", "gradients", "clip.mp4", "-o", "all.csv", "-q", cwd=d))
    return d, rows(d / "all.csv")


def expected(per_frame: list[dict], segs: list[tuple]) -> list[tuple]:
    """(segment, label, frame, time text) of the rows a segments run must give: frame order,
    then the file's order of segments; a frame in two segments twice."""
    out = []
    for r in per_frame:
        t = float(r["time"])
        for j, (_, a, b, lab) in enumerate(segs):
            if float(a) <= t < float(b):
                out.append((str(j), lab, r["frame"], r["time"]))
    return out


# ---------------------------------------------------------------------------
# --segments selects exactly start <= time < end


def test_segments_keep_exactly_the_frames_in_them(clip, tmp_path):
    d, per_frame = clip
    t = [r["time"] for r in per_frame]          # as featx writes times: the text a user copies
    assert len(t) == 62
    segs = [("clip.mp4", t[5], t[12], "first one"),        # bounds exactly on frame times
            ("clip.mp4", t[10], t[20], "overlap/x"),       # overlaps the first: frames 10, 11 twice
            ("clip.mp4", "1.01", "1.3", ""),               # bounds between frames, no label
            ("clip.mp4", t[61], "99", "tail")]             # the last frame, an end past the video
    write_segments(d / "segs.csv", segs)
    ok(featx("extract", "gradients", "--segments", "segs.csv", "-o", "seg.csv", "-q", cwd=d))
    got = rows(d / "seg.csv")
    assert list(got[0])[:5] == KEYS
    want = expected(per_frame, segs)
    assert [(r["segment"], r["label"], r["frame"], r["time"]) for r in got] == want
    assert [w[2] for w in want] == ["5", "6", "7", "8", "9", "10", "10", "11", "11"] + \
        [str(i) for i in range(12, 20)] + ["26", "27", "28", "29", "30", "31", "32", "61"]
    # the same pixels as the per-frame run: the same numbers, exactly
    by_frame = {r["frame"]: values(r, ["path", "frame", "time"]) for r in per_frame}
    for r in got:
        assert np.array_equal(values(r, KEYS), by_frame[r["frame"]])
        assert r["path"] == per_frame[0]["path"]


@pytest.mark.parametrize("sampling", [["--fps", "6"], ["--every", "4"], ["--start", "0.5", "--fps", "3"]])
def test_segments_compose_with_sampling(clip, tmp_path, sampling):
    """Sampling picks the frames, segments keep those inside them: the segments run is the
    per-frame run with the same sampling, filtered by time."""
    d, _ = clip
    out = tmp_path / "sampled.csv"
    ok(featx("extract", "gradients", d / "clip.mp4", "-o", out, "-q", *sampling))
    sampled = rows(out)
    t = [r["time"] for r in sampled]
    segs = [("clip.mp4", t[1], t[3], "a"), ("clip.mp4", t[2], "2.0", "b")]
    write_segments(d / f"s{len(sampling)}{sampling[1]}.csv", segs)
    seg_out = tmp_path / "seg.csv"
    ok(featx("extract", "gradients", "--segments", d / f"s{len(sampling)}{sampling[1]}.csv", "-o", seg_out, "-q",
             *sampling))
    got = [(r["segment"], r["label"], r["frame"], r["time"]) for r in rows(seg_out)]
    assert got == expected(sampled, segs) and len(got) > 3


def test_one_video_spelled_two_ways_is_one_input(clip, tmp_path):
    """The segments of one video on any lines, however its path is spelled, are one input
    (decoded once), numbered in the file's order."""
    d, _ = clip
    write_segments(d / "two.csv", [("clip.mp4", "0", "0.1", "a"), ("other.mp4", "0", "1", "x"),
                                   ("./sub/../clip.mp4", "0.04", "0.1", "b")])
    r = featx("extract", "gradients", "--segments", d / "two.csv", "-o", tmp_path / "o.csv", "-q",
              "--summary-json", tmp_path / "s.json")
    assert r.returncode == 1 and b"other.mp4" in r.stderr   # (a missing video fails alone)
    got = [(x["segment"], x["label"], x["frame"]) for x in rows(tmp_path / "o.csv")]
    assert got == [("0", "a", "0"), ("0", "a", "1"), ("1", "b", "1"), ("0", "a", "2"), ("1", "b", "2")]
    doc = json.loads((tmp_path / "s.json").read_text())
    s = doc["outputs"][0] if "outputs" in doc else doc
    assert (s["processed"], s["failed"]) == (1, 1)


def test_max_frames_counts_the_frames_kept(clip, tmp_path):
    d, per_frame = clip
    write_segments(tmp_path / "s.csv", [(str(d / "clip.mp4"), "1.0", "2.0", "x")])
    ok(featx("extract", "gradients", "--segments", tmp_path / "s.csv", "-o", tmp_path / "o.csv", "-q",
             "--max-frames", "3"))
    assert [r["frame"] for r in rows(tmp_path / "o.csv")] == ["25", "26", "27"]


def test_frames_outside_segments_are_not_converted_and_decoding_stops(clip, monkeypatch):
    """Frames outside every segment are grabbed, not retrieved and converted; nothing after
    the end of the last segment is decoded."""
    import cv2

    from featx import items, video
    from featx.inputs import Input

    d, _ = clip
    converted, grabbed = [], [0]
    real_rgb = video._to_rgb
    monkeypatch.setattr(video, "_to_rgb", lambda bgr: converted.append(1) or real_rgb(bgr))
    real_capture = cv2.VideoCapture

    class Counting:
        def __init__(self, *a):
            self.cap = real_capture(*a)

        def grab(self):
            grabbed[0] += 1
            return self.cap.grab()

        def __getattr__(self, name):
            return getattr(self.cap, name)

    monkeypatch.setattr(cv2, "VideoCapture", Counting)
    inp = Input(str(d / "clip.mp4"), kind="video", segments=((0.4, 0.6, None), (0.5, 0.7, "b")))
    got = [(it.key["segment"], it.key["frame"]) for it in items.load(inp)]
    assert got == [(0, 10), (0, 11), (0, 12), (0, 13), (1, 13), (0, 14), (1, 14), (1, 15), (1, 16), (1, 17)]
    assert len(converted) == 8            # frames 10..17, each once (13 and 14 are in both segments)
    assert grabbed[0] == 19               # frames 0..18: frame 18 (0.72 s) is past 0.7, and stops it


def test_frame_folder_segments_need_frame_rate(tmp_path):
    import cv2

    folder = tmp_path / "shots"
    folder.mkdir()
    photo = cv2.imread(str(SAMPLES / "coffee.jpg"))
    for i in range(10):
        cv2.imwrite(str(folder / f"f{i}.png"), photo[i * 8:i * 8 + 64, i * 10:i * 10 + 96])
    write_segments(tmp_path / "s.csv", [("shots", "0.2", "0.5", "mid"), ("shots", "0.45", "0.6", "")])
    r = featx("extract", "gradients", "--segments", tmp_path / "s.csv", "-o", tmp_path / "o.csv", "-q")
    assert r.returncode == 2 and b"is a frame folder" in r.stderr and b"--frame-rate" in r.stderr
    assert not (tmp_path / "o.csv").exists()
    ok(featx("extract", "gradients", "--segments", tmp_path / "s.csv", "-o", tmp_path / "o.csv", "-q",
             "--frame-rate", "10"))
    got = [(Path(r["path"]).name, r["segment"], r["label"], r["frame"], r["time"]) for r in rows(tmp_path / "o.csv")]
    assert got == [("f2.png", "0", "mid", "2", "0.200000"), ("f3.png", "0", "mid", "3", "0.300000"),
                   ("f4.png", "0", "mid", "4", "0.400000"), ("f5.png", "1", "", "5", "0.500000")]


# ---------------------------------------------------------------------------
# refusals, before any work


@pytest.mark.parametrize("text, message", [
    ("path,start,stop\nclip.mp4,0,1\n", "no column end (found: path, start, stop)"),
    ("path,start,end\nclip.mp4,0,nan\nclip.mp4,x,1\nclip.mp4,0,inf\nclip.mp4,0,1\n",
     "start and end must be finite numbers of seconds: 3 bad segment(s), on line 2 (0,nan), line 3 (x,1), "
     "line 4 (0,inf)"),
    ("path,start,end\nclip.mp4,1.5,1.5\n", "line 2: start 1.5 is not before end 1.5"),
    ("path,start,end\nclip.mp4,2,1\n", "line 2: start 2 is not before end 1"),
    ("path,start,end\nclip.mp4,-1,1\n", "line 2: start -1 is negative"),
    ("path,start,end\n,0,1\n", "line 2: no path"),
    ("path,start,end\nphoto.jpg,0,1\n", "photo.jpg is not a video or a frame folder"),
    ("path,start,end,label\nclip.mp4,0,1," + "x" * 201 + "\n", "line 2: the label is too long"),
])
def test_bad_segments_files_are_refused(clip, tmp_path, text, message):
    d, _ = clip
    (d / "bad.csv").write_text(text)
    out = tmp_path / "o.csv"
    r = featx("extract", "gradients", "--segments", d / "bad.csv", "-o", out, "-q")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr.decode() and "--segments" in r.stderr.decode()
    assert not out.exists() and not list(tmp_path.iterdir())


def test_segments_refusals_of_the_run(clip, tmp_path):
    d, _ = clip
    write_segments(d / "ok.csv", [("clip.mp4", "0", "1", "a")])
    cases = [
        (["--segments", tmp_path / "missing.csv"], "--segments " + str(tmp_path / "missing.csv") + ": cannot read"),
        (["--segments", d / "ok.csv", d / "clip.mp4"], "--segments names the inputs itself"),
        (["--segments", d / "ok.csv", "--regions", d / "ok.csv"], "--segments and --regions cannot be combined"),
        (["--segments", d / "ok.csv", "--frames"], "--segments names its videos and frame folders itself"),
    ]
    for args, message in cases:
        r = featx("extract", "gradients", *args, "-o", tmp_path / "o.csv", "-q")
        assert r.returncode == 2 and message in r.stderr.decode(), (args, r.stderr)
    r = featx("extract", "flow", "--segments", d / "ok.csv", "-o", tmp_path / "o.csv", "-q")
    assert r.returncode == 2 and b"flow needs consecutive frames; it cannot run on --segments" in r.stderr
    r = featx("extract", "gradients", "--segments", d / "ok.csv", "-o", d / "ok.csv", "--format", "csv",
              "--overwrite", "-q")
    assert r.returncode == 2 and b"which this run reads" in r.stderr
    assert not list(tmp_path.iterdir())


def test_a_missing_video_fails_alone(clip, tmp_path):
    d, _ = clip
    write_segments(tmp_path / "s.csv", [(str(d / "clip.mp4"), "0", "0.1", "a"), ("gone.mp4", "0", "1", "b")])
    r = featx("extract", "gradients", "--segments", tmp_path / "s.csv", "-o", tmp_path / "o.csv", "-q")
    assert r.returncode == 1 and b"gone.mp4" in r.stderr
    assert [x["frame"] for x in rows(tmp_path / "o.csv")] == ["0", "1", "2"]


# ---------------------------------------------------------------------------
# npy-dir names, other formats


def test_npy_dir_names_read_back_with_their_keys(clip, tmp_path):
    from featx.output.reader import open_output

    d, per_frame = clip
    t = [r["time"] for r in per_frame]
    segs = [("clip.mp4", t[3], t[5], "a b/c%"), ("clip.mp4", t[4], t[6], "")]
    write_segments(d / "n.csv", segs)
    ok(featx("extract", "gradients", "--segments", d / "n.csv", "-o", f"{tmp_path}/out/", "-q"))
    files = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.npy"))
    assert all(f.startswith("_abs/") for f in files)   # the video is outside the output's folder
    assert [f.split("clip.mp4/")[1] for f in files] == [
        "segment0000-a%20b%2Fc%25/frame000003.npy", "segment0000-a%20b%2Fc%25/frame000004.npy",
        "segment0001/frame000004.npy", "segment0001/frame000005.npy"]
    with open_output(str(tmp_path / "out")) as rd:
        assert rd.key_columns == tuple(KEYS)
        got = [(k["segment"], k["label"], k["frame"]) for b, _ in rd.batches() for k in b]
    assert got == [(0, "a b/c%", 3), (0, "a b/c%", 4), (1, None, 4), (1, None, 5)]
    # converting a CSV of segment rows into an npy-dir makes the same names
    ok(featx("extract", "gradients", "--segments", d / "n.csv", "-o", tmp_path / "seg.csv", "-q"))
    ok(featx("convert", tmp_path / "seg.csv", f"{tmp_path}/conv/"))
    assert sorted(str(p.relative_to(tmp_path / "conv")) for p in (tmp_path / "conv").rglob("*.npy")) == files


def test_npy_and_parquet_keys(clip, tmp_path):
    pytest.importorskip("pyarrow")
    from featx.output.reader import open_output

    d, per_frame = clip
    write_segments(d / "p.csv", [("clip.mp4", "0", "0.1", "x,y"), ("clip.mp4", "0.05", "0.1", "")])
    for name in ("o.npy", "o.parquet"):
        ok(featx("extract", "gradients", "--segments", d / "p.csv", "-o", tmp_path / name, "-q"))
        with open_output(str(tmp_path / name)) as rd:
            assert rd.key_columns == tuple(KEYS)
            got = [(k["segment"], k["label"], k["frame"], k["time"]) for b, _ in rd.batches() for k in b]
        assert got == [(0, "x,y", 0, 0.0), (0, "x,y", 1, 0.04), (0, "x,y", 2, 0.08), (1, None, 2, 0.08)]


# ---------------------------------------------------------------------------
# incremental: which rows are redone when the segments file changes


def test_incremental_redoes_the_videos_whose_segments_changed(tmp_path):
    for n in ("a", "b"):
        shutil.copy(SAMPLES / "clip.mp4", tmp_path / f"{n}.mp4")
    seg = tmp_path / "s.csv"

    def run(*extra):
        ok(featx("extract", "gradients", "--segments", seg, "-o", tmp_path / "o.csv", "-q",
                 "--summary-json", tmp_path / "sum.json", *extra))
        doc = json.loads((tmp_path / "sum.json").read_text())
        s = doc["outputs"][0] if "outputs" in doc else doc
        return s, [(Path(r["path"]).name, r["segment"], r["label"], r["frame"]) for r in rows(tmp_path / "o.csv")]

    write_segments(seg, [("a.mp4", "0", "0.1", "x"), ("b.mp4", "0.2", "0.3", "y")])
    s, first = run()
    assert (s["processed"], s["up_to_date"]) == (2, 0)
    s, again = run()
    assert (s["processed"], s["up_to_date"]) == (0, 2) and again == first
    # b's segments change (a label is part of it: its rows are keyed by it): b alone is redone
    write_segments(seg, [("a.mp4", "0", "0.1", "x"), ("b.mp4", "0.2", "0.3", "z"), ("b.mp4", "0", "0.05", "w")])
    s, third = run()
    assert (s["processed"], s["up_to_date"]) == (1, 1)
    assert sorted(third) == sorted([r for r in first if r[0] == "a.mp4"] + [
        ("b.mp4", "0", "z", "5"), ("b.mp4", "0", "z", "6"), ("b.mp4", "0", "z", "7"),
        ("b.mp4", "1", "w", "0"), ("b.mp4", "1", "w", "1")])
    # a video the file no longer lists is gone from the output with --prune
    write_segments(seg, [("b.mp4", "0.2", "0.3", "z"), ("b.mp4", "0", "0.05", "w")])
    s, fourth = run("--prune")
    assert s["up_to_date"] == 1 and {r[0] for r in fourth} == {"b.mp4"}
    side = json.loads((tmp_path / "o.csv.featx.json").read_text())
    assert side["options"]["segments"] == str(seg)


# ---------------------------------------------------------------------------
# featx segments: shot boundaries on a video of real photos filmed with a moving camera


def _moving(photo: str, n: int, size: tuple[int, int], kind: str, seed: int):
    """BGR frames of a camera moving over a sample photo: ``pan`` (slow drift and zoom, as
    samples/clip.mp4), ``whip`` (across half the photo in a third of the shot: a fast pan),
    ``zoom`` (in, fast) or ``fade`` (the light goes down to 40% and back: a slow change)."""
    import cv2

    base = cv2.imread(str(SAMPLES / photo), cv2.IMREAD_COLOR)
    h0, w0 = base.shape[:2]
    w, h = size
    ph = np.random.default_rng(seed).uniform(0, 2 * math.pi)
    fit = max(w / w0, h / h0)
    for i in range(n):
        u = i / (n - 1)
        gain = 1.0
        if kind == "pan":
            zoom = fit * (1.3 + 0.1 * math.sin(2 * math.pi * u + ph))
            cx = w0 / 2 + 0.12 * w0 * math.sin(2 * math.pi * u * 0.8 + ph)
            cy = h0 / 2 + 0.08 * h0 * math.sin(2 * math.pi * u * 1.3)
        elif kind == "whip":
            zoom = fit * 1.8
            v = min(max((u - 0.33) * 3, 0), 1)
            cx, cy = w0 * (0.3 + 0.4 * (0.5 - 0.5 * math.cos(math.pi * v))), h0 / 2
        elif kind == "zoom":
            zoom, cx, cy = fit * (1.1 + 1.2 * u), w0 / 2, h0 / 2
        else:  # fade
            zoom, cx, cy = fit * 1.3, w0 / 2 + 0.05 * w0 * u, h0 / 2
            gain = 1.0 - 0.6 * math.sin(math.pi * u)
        m = np.array([[zoom, 0, w / 2 - zoom * cx], [0, zoom, h / 2 - zoom * cy]])
        f = cv2.warpAffine(base, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        yield f if gain == 1.0 else np.clip(f.astype(np.float32) * gain, 0, 255).astype(np.uint8)


#: The shots of the test video: photo, frames (25 fps), camera.  Three whip pans, two fast
#: zooms and a fade happen inside shots: none of them may be taken for a cut.
SHOTS = [("rocket.jpg", 30, "pan"), ("astronaut.png", 35, "whip"), ("coffee.jpg", 30, "pan"),
         ("chelsea.png", 40, "fade"), ("camera.png", 25, "zoom"), ("rocket.jpg", 30, "whip"),
         ("coffee.jpg", 30, "zoom"), ("astronaut.png", 30, "pan"), ("chelsea.png", 30, "whip")]


@pytest.fixture(scope="module")
def shots_video(tmp_path_factory) -> tuple[Path, list[int], int]:
    """A video of the shots above (mp4v, 320x240, 25 fps), the frames where each cut
    happens, and its number of frames."""
    import cv2

    d = tmp_path_factory.mktemp("shots")
    path = d / "shots.mp4"
    out = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 240))
    assert out.isOpened()
    starts, n = [], 0
    for k, (photo, frames, kind) in enumerate(SHOTS):
        starts.append(n)
        for f in _moving(photo, frames, (320, 240), kind, k):
            out.write(f)
            n += 1
    out.release()
    return path, starts[1:], n


def test_featx_segments_finds_the_cuts_and_nothing_else(shots_video, tmp_path):
    """Recall 8/8, false alarms 0 (a found cut counts when within one frame of a true one);
    the weakest true cut scores z = 22.7, the strongest motion inside a shot 5.2 (threshold 6)."""
    from featx import shots
    from featx.video import iter_video

    path, cuts, n = shots_video
    out = tmp_path / "segs.csv"
    ok(featx("segments", path, "-o", out))
    got = rows(out)
    assert [r["label"] for r in got] == [f"shot{k + 1}" for k in range(len(got))]
    found = [round(float(r["start"]) * 25) for r in got[1:]]
    hits = [c for c in cuts if any(abs(c - f) <= 1 for f in found)]
    false_alarms = [f for f in found if not any(abs(c - f) <= 1 for c in cuts)]
    assert len(hits) / len(cuts) == 1.0 and false_alarms == []
    assert found == cuts                       # exactly on the cut's first frame, in fact
    # the segments cover the video, end to end, without overlap
    assert float(got[0]["start"]) == 0 and float(got[-1]["end"]) == pytest.approx(n / 25)
    assert all(a["end"] == b["start"] for a, b in zip(got, got[1:]))
    # the margin: every cut well above the threshold, all motion inside shots below it
    d = shots.distances(shots.signature(f.image) for f in iter_video(path))
    z = shots.robust_z(d)
    inside = np.delete(np.nan_to_num(z, nan=-np.inf), cuts)
    assert z[cuts].min() > 3 * shots.Z_THRESHOLD and inside.max() < shots.Z_THRESHOLD
    # and a file --segments reads: every frame in exactly one shot, keyed by its label
    ok(featx("extract", "gradients", "--segments", out, "-o", tmp_path / "g.csv", "-q", "--fps", "5"))
    g = rows(tmp_path / "g.csv")
    assert [int(r["frame"]) for r in g] == list(range(0, n, 5))
    for r in g:
        k = int(r["segment"])
        assert r["label"] == f"shot{k + 1}" and float(got[k]["start"]) <= float(r["time"]) < float(got[k]["end"])


def test_a_grey_thumbnail_would_not_do(shots_video):
    """Why a colour histogram: on the same video, the difference of 32x32 grey thumbnails
    scores a whip pan (5.8) nearly as high as the weakest cut (6.5): no threshold is safe."""
    import cv2

    from featx import shots
    from featx.video import iter_video

    path, cuts, _ = shots_video
    thumbs = [cv2.resize(cv2.cvtColor(f.image, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)
              .astype(np.float64) / 255 for f in iter_video(path)]
    d = np.array([np.nan] + [np.abs(a - b).mean() for a, b in zip(thumbs, thumbs[1:])])
    z = np.nan_to_num(shots.robust_z(d), nan=-np.inf)
    assert z[cuts].min() < 1.5 * np.delete(z, cuts).max()


def test_featx_segments_on_the_sample_clip(tmp_path):
    """samples/clip.mp4 is one shot (a smooth pan and zoom): one segment, the whole clip,
    written to stdout with paths as given."""
    r = ok(featx("segments", "clip.mp4", cwd=SAMPLES))
    assert r.stdout.decode() == "path,start,end,label\nclip.mp4,0.000000,2.480000,shot1\n"


def test_min_length_keeps_the_strongest_cut():
    from featx import shots

    times = np.arange(100) / 25
    d = np.full(100, 0.01)
    d[0] = np.nan
    d[40], d[45], d[70], d[98] = 0.5, 0.9, 0.6, 0.8     # 45 beats 40 (0.2 s apart); 98 is 0.08 s from the end
    d[1:] += np.linspace(0, 0.001, 99)
    assert shots.cuts(times, d, min_length=0.5, end=4.0) == [45, 70]
    assert shots.cuts(times, d, min_length=0, end=4.0) == [40, 45, 70, 98]
    assert shots.cuts(times, d, min_length=1.1, end=4.0) == [45]
    got = shots.shots_of(times, d, min_length=0.5)
    assert [(s.start, s.end, s.label, s.first_frame, s.frames) for s in got] == [
        (0.0, 1.8, "shot1", 0, 45), (1.8, 2.8, "shot2", 45, 25), (2.8, 4.0, "shot3", 70, 30)]


def test_featx_segments_writes_paths_relative_to_its_file(shots_video, tmp_path):
    path, _, _ = shots_video
    (tmp_path / "sub").mkdir()
    ok(featx("segments", path, SAMPLES / "clip.mp4", "-o", "sub/s.csv", "--min-length", "2", "--threshold", "8",
             cwd=tmp_path))
    got = rows(tmp_path / "sub" / "s.csv")
    assert {r["path"] for r in got} == {str(path), str(SAMPLES / "clip.mp4")}
    shutil.copy(path, tmp_path / "v.mp4")
    ok(featx("segments", "v.mp4", "-o", "sub/t.csv", cwd=tmp_path))
    assert rows(tmp_path / "sub" / "t.csv")[0]["path"] == "../v.mp4"
    ok(featx("extract", "gradients", "--segments", tmp_path / "sub" / "t.csv", "-o", tmp_path / "g.csv", "-q",
             "--max-frames", "2"))
    assert rows(tmp_path / "g.csv")[0]["path"] == str(tmp_path / "v.mp4")


def test_featx_segments_refusals_and_failures(shots_video, tmp_path):
    path, _, _ = shots_video
    r = featx("segments", SAMPLES / "coffee.jpg")
    assert r.returncode == 2 and b"not a video" in r.stderr
    r = featx("segments", tmp_path / "gone.mp4")
    assert r.returncode == 2 and b"no such file" in r.stderr
    (tmp_path / "notes.csv").write_text("my notes\n")
    r = featx("segments", path, "-o", tmp_path / "notes.csv")
    assert r.returncode == 2 and b"featx did not write it" in r.stderr
    assert (tmp_path / "notes.csv").read_text() == "my notes\n"
    r = featx("segments", path, "-o", path)
    assert r.returncode == 2 and b"which this command reads" in r.stderr
    # a file it wrote is replaced; a video that cannot be read fails alone (exit 1)
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 100)
    ok(featx("segments", path, "-o", tmp_path / "s.csv"))
    r = featx("segments", tmp_path / "junk.mp4", path, "-o", tmp_path / "s.csv")
    assert r.returncode == 1 and b"junk.mp4" in r.stderr
    assert {x["path"] for x in rows(tmp_path / "s.csv")} == {str(path)}


def test_one_reader_for_extract_and_pool(clip, tmp_path):
    """``featx pool --segments FILE`` reads a segments file as ``extract --segments`` does
    (one reader: paths relative to the file's folder, the same refusals): pooling the
    per-frame rows by the file gives the rows of pooling an extraction restricted to it,
    whatever the working folder (pool read paths against it: 0 rows, exit 0)."""
    d, _ = clip
    ok(featx("extract", "gradients", "clip.mp4", "-o", "all.npy", "-q", cwd=d))
    write_segments(d / "p2.csv", [("clip.mp4", "0.5", "1.2", "intro"), ("clip.mp4", "1", "2.5", "")])
    ok(featx("extract", "gradients", "--segments", d / "p2.csv", "-o", tmp_path / "seg.npy", "-q"))
    ok(featx("pool", tmp_path / "seg.npy", "-o", tmp_path / "a.csv", "--over", "segment", "--stats", "mean,max"))
    ok(featx("pool", d / "all.npy", "-o", tmp_path / "b.csv", "--segments", d / "p2.csv", "--stats", "mean,max",
             cwd=tmp_path))
    a, b = rows(tmp_path / "a.csv"), rows(tmp_path / "b.csv")
    assert [(r["segment"], r["label"], r["frames"]) for r in a] == [("0", "intro", "17"), ("1", "", "37")]
    assert a == b
    (d / "bad2.csv").write_text("path,start,end\nclip.mp4,2,1\n")
    r = featx("pool", d / "all.npy", "-o", tmp_path / "c.csv", "--segments", d / "bad2.csv")
    assert r.returncode == 2 and b"line 2: start 2 is not before end 1" in r.stderr


def test_detect_track_is_refused_on_segments(clip, tmp_path):
    """A tracker links consecutive frames: segments skip frames and give a frame of two
    segments twice, so --track on --segments is refused before any work."""
    d, _ = clip
    write_segments(d / "t.csv", [("clip.mp4", "0", "1", "a")])
    r = featx("detect", "--segments", d / "t.csv", "--track", "-o", tmp_path / "t.csv")
    assert r.returncode == 2 and b"--track links the boxes of consecutive video frames; it cannot run on " \
        b"--segments" in r.stderr
    ok(featx("detect", "--segments", d / "t.csv", "-o", tmp_path / "f.csv", "-q"))
    assert (tmp_path / "f.csv").read_text().startswith("path,segment,label,frame,time,x,y,w,h\n")


def test_segment_index_is_segments_holding():
    """The sweep that finds a frame's segments gives what looking at every segment gives,
    for times in order, repeated, and going backwards (damaged timestamps)."""
    from featx.inputs import SegmentIndex, segments_holding

    rng = np.random.default_rng(0)
    for _ in range(50):
        starts = rng.integers(0, 40, 12) / 4
        segs = [(float(a), float(a + rng.integers(1, 12) / 4), None) for a in starts]
        times = np.round(np.sort(rng.uniform(0, 14, 60)), 2).tolist()
        times += times[:5] + [times[3]] * 3 + [0.0, 2.0, 2.0 - 1e-7, 2.0 - 1e-5]   # backwards, ties, bounds
        times += [s[0] for s in segs] + [s[1] for s in segs]
        sweep = SegmentIndex(segs)
        assert [sweep.holding(t) for t in times] == [segments_holding(segs, t) for t in times]
