"""Video and frame-sequence inputs through the real command line (its entry point, run in this
process: none of these tests is about the process boundary)."""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from helpers import SAMPLES, featx_inprocess as featx  # -j 1: these tests are about frames, not workers
from test_video import make_frames, write_video


def rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def vectors(rs: list[dict]) -> np.ndarray:
    return np.array([[np.float32(v) for k, v in r.items() if k not in ("path", "frame", "time")] for r in rs],
                    dtype=np.float32)


def test_video_rows_carry_frame_and_time(tmp_path, sample):
    frames = make_frames(sample, 20)
    clip = write_video(tmp_path / "clip.avi", frames, 10.0, "FFV1")
    r = featx("extract", "hog", "-j", "1", clip, "-o", tmp_path / "all.csv", "-q")
    assert r.returncode == 0, r.stderr
    rs = rows(tmp_path / "all.csv")
    assert [int(x["frame"]) for x in rs] == list(range(20))
    assert [float(x["time"]) for x in rs] == [i / 10 for i in range(20)]
    r = featx("extract", "hog", "-j", "1", clip, "-o", tmp_path / "s.npy", "--every", "3", "--start", "0.5", "-q")
    assert r.returncode == 0, r.stderr
    idx = rows(tmp_path / "s.index.csv")
    assert [int(x["frame"]) for x in idx] == [5, 8, 11, 14, 17]
    assert [float(x["time"]) for x in idx] == [0.5, 0.8, 1.1, 1.4, 1.7]
    assert np.array_equal(np.load(tmp_path / "s.npy"), vectors(rs)[[5, 8, 11, 14, 17]])


def test_frame_folder_equals_lossless_video_and_png_export(tmp_path, sample):
    import cv2

    frames = make_frames(sample, 12)
    clip = write_video(tmp_path / "clip.avi", frames, 25.0, "FFV1")
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, f in enumerate(frames):  # natural order: frame2 before frame10
        cv2.imwrite(str(folder / f"frame{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    for name in ("hog", "flow"):
        assert featx("extract", name, "-j", "1", clip, "-o", tmp_path / f"v-{name}.csv", "-q").returncode == 0
        r = featx("extract", name, "-j", "1", folder, "--frames", "--frame-rate", "25", "-o", tmp_path / f"f-{name}.csv", "-q")
        assert r.returncode == 0, r.stderr
        v, f = rows(tmp_path / f"v-{name}.csv"), rows(tmp_path / f"f-{name}.csv")
        assert [x["frame"] for x in f] == [str(i) for i in range(12)]
        assert [Path(x["path"]).name for x in f] == [f"frame{i}.png" for i in range(12)]
        assert [x["time"] for x in f] == [x["time"] for x in v]
        assert np.array_equal(vectors(v), vectors(f))  # identical per-frame vectors
    flow = vectors(rows(tmp_path / "v-flow.csv"))
    assert not flow[0].any() and flow[1:].any(axis=1).all()  # first frame: zeros (no previous frame)


def test_folder_of_videos_is_opt_in_and_never_collides(tmp_path, sample):
    frames = make_frames(sample, 6)
    for sub in ("a", "b"):
        (tmp_path / "v" / sub).mkdir(parents=True)
        write_video(tmp_path / "v" / sub / "clip.avi", frames, 10.0, "FFV1")
    (tmp_path / "v" / "a" / "still.png").write_bytes((SAMPLES / "chelsea.png").read_bytes())
    r = featx("extract", "gradients", "-j", "1", tmp_path / "v", "-o", "-")
    assert r.returncode == 0 and b"2 videos skipped" in r.stderr
    out = tmp_path / "feats"
    r = featx("extract", "gradients", "-j", "1", "v", "--video", "-o", "feats/", "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.npy"))
    assert files == sorted([f"v/{s}/clip.avi/frame{i:06d}.npy" for s in ("a", "b") for i in range(6)] +
                           ["v/a/still.png.npy"])


def test_broken_video_keeps_decoded_frames_marked_partial(tmp_path, sample):
    frames = make_frames(sample, 40)
    full = write_video(tmp_path / "full.avi", frames, 10.0, "FFV1")
    data = full.read_bytes()
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: len(data) // 2])
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    r = featx("extract", "gradients", "-j", "1", cut, empty, full, "-o", tmp_path / "o.npy")
    assert r.returncode == 1
    err = r.stderr.decode()
    assert "cut.avi: partial" in err and "empty.mp4" in err
    side = json.loads((tmp_path / "o.npy.featx.json").read_text())
    assert [Path(p["path"]).name for p in side["partial"]] == ["cut.avi"]
    assert [Path(p["path"]).name for p in side["failures"]] == ["empty.mp4"]
    idx = rows(tmp_path / "o.index.csv")
    n_cut = sum(1 for x in idx if x["path"].endswith("cut.avi"))
    assert 0 < n_cut < 40 and sum(1 for x in idx if x["path"].endswith("full.avi")) == 40
    assert np.load(tmp_path / "o.npy").shape[0] == len(idx)


def test_flow_on_an_image_pair_sees_the_known_shift(tmp_path, sample):
    import cv2

    img = sample("astronaut.png")
    shifted = cv2.warpAffine(img, np.float32([[1, 0, 2.0], [0, 1, 0]]), (img.shape[1], img.shape[0]),
                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    a = tmp_path / "a.png"
    b = tmp_path / "b.png"
    cv2.imwrite(str(a), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    cv2.imwrite(str(b), cv2.cvtColor(shifted, cv2.COLOR_RGB2BGR))
    r = featx("extract", "flow", "-j", "1", a, b, "-o", tmp_path / "f", "--result", "field", "--format", "npy-dir", "-q",
              cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    field = np.load(next((tmp_path / "f").rglob("b.png.npy")))
    inner = field[64:-64, 64:-64]
    assert abs(np.median(inner[..., 0]) - 2.0) < 0.2 and abs(np.median(inner[..., 1])) < 0.2
    r = featx("show", "flow", a, b, "-o", tmp_path / "flow.png")
    assert r.returncode == 0, r.stderr
    assert cv2.imread(str(tmp_path / "flow.png")) is not None


def test_frame_folder_is_redone_when_a_frame_changes(tmp_path, sample):
    import cv2

    frames = make_frames(sample, 6)
    folder = tmp_path / "seq"
    folder.mkdir()
    for i, f in enumerate(frames):
        cv2.imwrite(str(folder / f"f{i}.png"), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    args = ["extract", "gradients", folder, "-j", "1", "--frames", "-o", tmp_path / "o.npy", "--summary-json", "-", "-q"]
    first = json.loads(featx(*args).stderr.decode().splitlines()[-1])
    again = json.loads(featx(*args).stderr.decode().splitlines()[-1])
    assert (first["processed"], again["processed"], again["up_to_date"]) == (1, 0, 1)
    cv2.imwrite(str(folder / "f3.png"), cv2.cvtColor(frames[0], cv2.COLOR_RGB2BGR))  # a frame edited in place
    os.utime(folder / "f3.png", ns=(1, 10**19 // 5))
    redo = json.loads(featx(*args).stderr.decode().splitlines()[-1])
    assert redo["processed"] == 1
    assert np.load(tmp_path / "o.npy").shape[0] == 6  # the old rows were replaced, not added to
