"""featx.video: frame keys (index, time), sampling, errors, streaming.

Test videos are tiny (160x120) and written in tmp_path: FFV1 (lossless) and
MJPG/mp4v/VP9 with OpenCV, and a variable-frame-rate Matroska file with
known timestamps written by the small muxer below (OpenCV's writer only
makes constant-rate video).
"""
from __future__ import annotations

import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from featx.errors import InputError, UsageError
from featx.video import (
    Sampling, VideoError, find_videos, is_video, iter_frame_folder, iter_video, list_frames,
    load_frame, natural_key, probe_video, select_frames,
)

SAMPLES = Path(__file__).resolve().parent.parent / "samples"

# ---------------------------------------------------------------------------
# Helpers


def make_frames(sample, n, size=(160, 120)):
    """n distinct RGB frames: a photo panned by 3 px per frame, with the index drawn in."""
    import cv2

    base = cv2.resize(sample("astronaut.png"), size, interpolation=cv2.INTER_AREA)
    frames = []
    for i in range(n):
        f = np.ascontiguousarray(np.roll(base, 3 * i, axis=1))
        cv2.putText(f, str(i), (5, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 0), 2)
        frames.append(f)
    return frames


def write_video(path, frames_rgb, fps, fourcc="FFV1"):
    import cv2

    h, w = frames_rgb[0].shape[:2]
    out = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*fourcc), fps, (w, h))
    assert out.isOpened(), (path, fourcc)
    for f in frames_rgb:
        out.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    out.release()
    return Path(path)


def _ebml(eid: bytes, data) -> bytes:
    if isinstance(data, int):
        data = data.to_bytes(max(1, (data.bit_length() + 7) // 8), "big")
    elif isinstance(data, float):
        data = struct.pack(">d", data)
    elif isinstance(data, str):
        data = data.encode()
    return eid + b"\x01" + len(data).to_bytes(7, "big") + data


def write_mkv(path, frames_rgb, times_ms, codec="V_MJPEG"):
    """A Matroska file with one MJPEG video track and the given timestamps
    (integer milliseconds; one cluster per frame)."""
    import cv2

    h, w = frames_rgb[0].shape[:2] if frames_rgb else (120, 160)
    header = _ebml(b"\x1a\x45\xdf\xa3", _ebml(b"\x42\x86", 1) + _ebml(b"\x42\xf7", 1)
                   + _ebml(b"\x42\xf2", 4) + _ebml(b"\x42\xf3", 8) + _ebml(b"\x42\x82", "matroska")
                   + _ebml(b"\x42\x87", 4) + _ebml(b"\x42\x85", 2))
    last = times_ms[-1] if times_ms else 0
    step = (times_ms[-1] - times_ms[-2]) if len(times_ms) > 1 else 40
    info = _ebml(b"\x15\x49\xa9\x66", _ebml(b"\x2a\xd7\xb1", 1_000_000)
                 + _ebml(b"\x4d\x80", "featx-tests") + _ebml(b"\x57\x41", "featx-tests")
                 + _ebml(b"\x44\x89", float(last + step)))
    track = _ebml(b"\xae", _ebml(b"\xd7", 1) + _ebml(b"\x73\xc5", 1) + _ebml(b"\x83", 1)
                  + _ebml(b"\x9c", 0) + _ebml(b"\x86", codec)
                  + _ebml(b"\xe0", _ebml(b"\xb0", w) + _ebml(b"\xba", h)))
    clusters = b""
    for f, t in zip(frames_rgb, times_ms):
        ok, jpg = cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR),
                               [cv2.IMWRITE_JPEG_QUALITY, 95])
        block = b"\x81" + struct.pack(">h", 0) + b"\x80" + jpg.tobytes()
        clusters += _ebml(b"\x1f\x43\xb6\x75", _ebml(b"\xe7", int(t)) + _ebml(b"\xa3", block))
    Path(path).write_bytes(header + _ebml(b"\x18\x53\x80\x67", info + _ebml(b"\x16\x54\xae\x6b",
                                                                             track) + clusters))
    return Path(path)


def keys(frames):
    return [(f.index, f.time) for f in frames]


def closest(frames, image):
    return int(np.argmin([np.abs(f.astype(np.int16) - image).mean() for f in frames]))


VFR_MS = [0, 40, 80, 200, 240, 500, 510, 520, 1000, 1033]


@pytest.fixture(scope="module")
def frames20():
    from conftest import load_sample

    return make_frames(lambda name: load_sample(name), 20)


@pytest.fixture()
def ffv1(tmp_path, frames20):
    return write_video(tmp_path / "clip.avi", frames20, 10.0, "FFV1")


@pytest.fixture()
def vfr(tmp_path, frames20):
    return write_mkv(tmp_path / "vfr.mkv", frames20[:len(VFR_MS)], VFR_MS)


# ---------------------------------------------------------------------------
# Keys and pixels


def test_constant_rate_keys_and_lossless_pixels(ffv1, frames20):
    got = list(iter_video(ffv1))
    assert [f.index for f in got] == list(range(20))
    np.testing.assert_allclose([f.time for f in got], np.arange(20) / 10.0, atol=1e-9)
    for f, want in zip(got, frames20):
        assert f.image.dtype == np.uint8 and f.image.shape == (120, 160, 3)
        np.testing.assert_array_equal(f.image, want)      # RGB order, lossless
        assert f.path == str(ffv1)


def test_variable_rate_times_come_from_the_container(vfr, frames20):
    got = list(iter_video(vfr))
    assert [f.index for f in got] == list(range(len(VFR_MS)))
    np.testing.assert_allclose([f.time for f in got], np.array(VFR_MS) / 1000.0, atol=1e-9)
    # the right pictures (MJPEG is lossy: the nearest original)
    assert [closest(frames20, f.image) for f in got] == list(range(len(VFR_MS)))
    info = probe_video(vfr)
    assert (info.width, info.height) == (160, 120)


@pytest.mark.parametrize("kw,want", [
    (dict(every=3), [0, 3, 6, 9, 12, 15, 18]),
    (dict(fps=2.5), [0, 4, 8, 12, 16]),
    (dict(fps=3.0), [0, 4, 7, 10, 14, 17]),          # targets 0, 1/3, 2/3, 1, ... s
    (dict(fps=100.0), list(range(20))),              # faster than the source: every frame
    (dict(start=0.5, end=1.5), list(range(5, 15))),  # [start, end)
    (dict(max_frames=4), [0, 1, 2, 3]),
    (dict(every=2, start=0.3, max_frames=3), [3, 5, 7]),
    (dict(fps=2.0, start=0.25, end=1.8), [3, 8, 13]),
])
def test_sampling_constant_rate(ffv1, frames20, kw, want):
    got = list(iter_video(ffv1, **kw))
    assert [f.index for f in got] == want
    np.testing.assert_allclose([f.time for f in got], np.array(want) / 10.0, atol=1e-9)
    for f in got:
        np.testing.assert_array_equal(f.image, frames20[f.index])
    assert keys(iter_video(ffv1, sampling=Sampling(**kw))) == keys(got)


@pytest.mark.parametrize("kw,want", [
    # targets 0, .1, .2, ...: a frame is kept when it reaches the next unmet target
    (dict(fps=10.0), [0, 3, 5, 8]),
    (dict(fps=25.0, start=0.05, end=1.0), [2, 3, 4, 5]),
    (dict(fps=50.0), [0, 1, 2, 3, 4, 5, 7, 8, 9]),   # 510 ms misses the 520 ms target
    (dict(every=2), [0, 2, 4, 6, 8]),
    (dict(start=0.2, end=0.52), [3, 4, 5, 6]),
    (dict(max_frames=3), [0, 1, 2]),
])
def test_sampling_variable_rate_by_timestamp(vfr, kw, want):
    got = list(iter_video(vfr, **kw))
    assert [f.index for f in got] == want
    np.testing.assert_allclose([f.time for f in got], [VFR_MS[i] / 1000.0 for i in want],
                               atol=1e-9)


def test_sampling_validation():
    for kw in (dict(every=0), dict(fps=0), dict(fps=-1.0), dict(start=-1.0),
               dict(start=2.0, end=1.0), dict(max_frames=0), dict(every=2, fps=5.0)):
        with pytest.raises(UsageError):
            Sampling(**kw)


def test_decoding_threads_option(ffv1):
    assert keys(iter_video(ffv1, threads=1)) == keys(iter_video(ffv1))


# ---------------------------------------------------------------------------
# Frame folders


def _write_pngs(folder, frames, names):
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    for f, name in zip(frames, names):
        assert cv2.imwrite(str(folder / name), cv2.cvtColor(f, cv2.COLOR_RGB2BGR))


def test_frame_folder_natural_order_and_times(tmp_path, frames20):
    names = [f"frame{i}.png" for i in range(12)]
    order = np.random.default_rng(0).permutation(12)           # written in shuffled order
    _write_pngs(tmp_path / "f", [frames20[i] for i in order], [names[i] for i in order])
    (tmp_path / "f" / "notes.txt").write_text("not a frame")
    paths = list_frames(tmp_path / "f")
    assert [p.name for p in paths] == names                    # frame2 before frame10
    got = list(iter_frame_folder(tmp_path / "f"))
    assert [f.index for f in got] == list(range(12)) and all(f.time is None for f in got)
    for f in got:
        np.testing.assert_array_equal(f.image, frames20[f.index])
    timed = list(iter_frame_folder(tmp_path / "f", fps=5.0, frame_rate=20.0))
    assert keys(timed) == [(0, 0.0), (4, 0.2), (8, 0.4)]
    assert [r.index for r in select_frames(paths, every=5)] == [0, 5, 10]
    assert [r.index for r in select_frames(paths, start=0.25, max_frames=2, frame_rate=4)] == [1, 2]
    with pytest.raises(UsageError):
        list(iter_frame_folder(tmp_path / "f", fps=5.0))            # no frame rate
    with pytest.raises(UsageError):
        select_frames(paths, start=1.0)


def test_natural_key():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame02.png", "frame1b.png", "a/x10",
             "a/x9"]
    assert sorted(names, key=natural_key) == ["a/x9", "a/x10", "Frame1.png", "frame1b.png",
                                              "frame2.png", "frame02.png", "frame10.png"]


def test_frame_folder_errors(tmp_path, frames20):
    with pytest.raises(VideoError) as e:
        list_frames(tmp_path / "missing")
    assert e.value.reason == "missing"
    (tmp_path / "empty").mkdir()
    with pytest.raises(VideoError) as e:
        list(iter_frame_folder(tmp_path / "empty"))
    assert e.value.reason == "no-frames"
    _write_pngs(tmp_path / "f", frames20[:3], ["f1.png", "f2.png", "f4.png"])
    (tmp_path / "f" / "f3.png").write_bytes(b"not a png")
    got = []
    with pytest.raises(VideoError) as e:
        for f in iter_frame_folder(tmp_path / "f"):
            got.append(f)
    assert [f.index for f in got] == [0, 1]
    assert e.value.reason == "unreadable-frame" and e.value.partial and e.value.frames_yielded == 2
    assert "f3.png" in str(e.value)
    assert isinstance(e.value, InputError)


def test_frame_folder_and_lossless_video_give_identical_vectors(tmp_path, ffv1, frames20):
    """The same frames as a folder of PNGs and as an FFV1 video: identical
    pixels and identical flow vectors, frame by frame."""
    from featx.extractors.flow import Flow

    _write_pngs(tmp_path / "frames", frames20, [f"{i:03d}.png" for i in range(20)])
    a, b = Flow.create(mbh=True), Flow.create(mbh=True)
    va = [(f.index, a.extract(f.image)) for f in iter_video(ffv1, every=2)]
    vb = [(f.index, b.extract(f.image)) for f in iter_frame_folder(tmp_path / "frames", every=2)]
    assert [i for i, _ in va] == [i for i, _ in vb] == list(range(0, 20, 2))
    for (_, x), (_, y) in zip(va, vb):
        np.testing.assert_array_equal(x, y)
    assert all(v.any() for _, v in va[1:])


def test_video_frames_equal_their_png_export(tmp_path, sample):
    """Per-frame features on a (lossy) video equal those on its frames exported
    as PNG: the reader hands over exactly the decoded pixels, in RGB order."""
    import cv2

    frames = make_frames(sample, 12)
    video = write_video(tmp_path / "lossy.mp4", frames, 25.0, "mp4v")
    decoded = list(iter_video(video))
    assert len(decoded) == 12
    folder = tmp_path / "export"
    _write_pngs(folder, [f.image for f in decoded], [f"frame{f.index}.png" for f in decoded])
    exported = list(iter_frame_folder(folder))
    for d, e in zip(decoded, exported):
        np.testing.assert_array_equal(d.image, e.image)
    # and the same as OpenCV's own reader (BGR) converted to RGB
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    for d in decoded:
        ok, bgr = cap.read()
        np.testing.assert_array_equal(d.image, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    from featx.extractors.flow import Flow

    fa, fb = Flow.create(), Flow.create()
    for d, e in zip(decoded, exported):
        np.testing.assert_array_equal(fa.extract(d.image), fb.extract(e.image))
    try:
        import featx.extractors.hog as hog_module  # written by another helper
    except ImportError:
        pytest.skip("hog extractor not available yet; pixels and flow vectors were checked")
    from featx.extractor import Extractor

    hog = [c for c in vars(hog_module).values()
           if isinstance(c, type) and issubclass(c, Extractor) and c.name == "hog"]
    assert hog, "featx.extractors.hog has no extractor named hog"
    h = hog[0].create()
    for d, e in zip(decoded, exported):
        np.testing.assert_array_equal(h.extract(d.image), h.extract(e.image))


# ---------------------------------------------------------------------------
# Broken input


def _collect(path, **kw):
    got = []
    with pytest.raises(VideoError) as e:
        for f in iter_video(path, **kw):
            got.append(f)
    assert isinstance(e.value, InputError) and e.value.path == str(path)
    return got, e.value


def test_missing_and_not_a_video(tmp_path):
    got, err = _collect(tmp_path / "nope.mp4")
    assert not got and err.reason == "missing" and not err.partial
    (tmp_path / "text.mp4").write_text("hello, not a video")
    got, err = _collect(tmp_path / "text.mp4")
    assert not got and err.reason == "unopenable" and err.frames_read == 0


def test_unsupported_codec(tmp_path, frames20):
    bad = write_mkv(tmp_path / "weird.mkv", frames20[:3], [0, 40, 80], codec="V_FEATX_NO_SUCH")
    got, err = _collect(bad)
    assert not got and err.reason == "unopenable"


def test_zero_frame_video(tmp_path):
    import cv2

    path = tmp_path / "empty.avi"
    w = cv2.VideoWriter(str(path), cv2.CAP_FFMPEG, cv2.VideoWriter_fourcc(*"FFV1"), 10, (160, 120))
    w.release()
    got, err = _collect(path)
    assert not got and err.reason == "no-frames" and not err.partial


@pytest.mark.parametrize("ext,fourcc", [("avi", "FFV1"), ("mkv", "FFV1"), ("avi", "MJPG"),
                                        ("webm", "VP90")])
def test_truncated_video_yields_what_decodes_then_fails(tmp_path, frames20, ext, fourcc):
    full = write_video(tmp_path / f"full.{ext}", frames20 * 2, 10.0, fourcc)
    assert len(list(iter_video(full))) == 40                    # complete: no error
    cut = tmp_path / f"cut.{ext}"
    data = full.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])
    got, err = _collect(cut)
    assert 5 <= len(got) < 36
    assert err.reason == "truncated" and err.partial
    assert err.frames_read == err.frames_yielded == len(got)
    assert [f.index for f in got] == list(range(len(got)))
    if fourcc == "FFV1":
        for f in got:
            np.testing.assert_array_equal(f.image, (frames20 * 2)[f.index])


def test_truncated_mp4_loses_its_index(tmp_path, frames20):
    full = write_video(tmp_path / "full.mp4", frames20, 10.0, "mp4v")
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:len(full.read_bytes()) // 2])
    got, err = _collect(cut)
    assert not got and err.reason == "unopenable"


def test_damaged_middle_is_reported(tmp_path, frames20):
    full = write_video(tmp_path / "full.avi", frames20 * 2, 10.0, "FFV1")
    data = bytearray(full.read_bytes())
    for k in range(len(data) // 3, 2 * len(data) // 3, 97):
        data[k] ^= 0xFF
    bad = tmp_path / "bad.avi"
    bad.write_bytes(bytes(data))
    got, err = _collect(bad)
    assert err.reason in ("truncated", "corrupt") and err.partial and len(got) < 40


def test_stopping_early_on_purpose_is_not_an_error(tmp_path, frames20):
    full = write_video(tmp_path / "full.avi", frames20 * 2, 10.0, "FFV1")
    cut = tmp_path / "cut.avi"
    cut.write_bytes(full.read_bytes()[:len(full.read_bytes()) // 2])
    assert [f.index for f in iter_video(cut, max_frames=3)] == [0, 1, 2]
    assert [f.index for f in iter_video(cut, end=0.35)] == [0, 1, 2, 3]


# ---------------------------------------------------------------------------
# Streaming, discovery


def test_memory_does_not_grow_with_length(tmp_path, sample):
    """300 frames of 57.6 KB each (17 MB in all) are read with a traced peak
    of a few frames."""
    frames = make_frames(sample, 30)
    video = write_video(tmp_path / "long.avi", frames * 10, 25.0, "MJPG")
    tracemalloc.start()
    try:
        n = 0
        for f in iter_video(video):
            n += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert n == 300
    assert peak < 10 * 160 * 120 * 3, peak


def test_is_video_and_find_videos(tmp_path, frames20):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    for rel in ("a10.avi", "a2.avi", "b/clip.MKV", "b/deep/x.webm", ".hidden/h.avi", "b/.h.avi"):
        write_video(tmp_path / rel, frames20[:2], 10.0, "MJPG" if not rel.endswith("webm")
                    else "VP90")
    (tmp_path / "b" / "photo.png").write_bytes(b"")
    found = [p.relative_to(tmp_path).as_posix() for p in find_videos(tmp_path)]
    assert found == ["a2.avi", "a10.avi", "b/clip.MKV", "b/deep/x.webm"]
    assert [p.name for p in find_videos(tmp_path, recursive=False)] == ["a2.avi", "a10.avi"]
    assert is_video(tmp_path / "b" / "clip.MKV") and not is_video(tmp_path / "b" / "photo.png")
    assert not is_video(tmp_path / "b")
    odd = tmp_path / "clip.bin"
    odd.write_bytes((tmp_path / "a2.avi").read_bytes())
    assert not is_video(odd) and is_video(odd, probe=True)
    assert not is_video(SAMPLES / "rocket.jpg", probe=True)    # FFmpeg would open a JPEG


def test_load_frame_keeps_gray_and_16_bit(tmp_path):
    import cv2

    g16 = (np.arange(120 * 160, dtype=np.uint32).reshape(120, 160) * 3 % 65536).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "g.png"), g16)
    np.testing.assert_array_equal(load_frame(tmp_path / "g.png"), g16)
    rgba = np.zeros((4, 5, 4), np.uint8)
    rgba[..., 0] = 10   # B
    rgba[..., 2] = 30   # R
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    img = load_frame(tmp_path / "a.png")
    assert img.shape == (4, 5, 3) and img[0, 0].tolist() == [30, 0, 10]


def test_sample_clip():
    clip = SAMPLES / "clip.mp4"
    assert clip.stat().st_size < 2 * 1024 * 1024
    info = probe_video(clip)
    assert info.width <= 640 and info.height <= 480
    frames = list(iter_video(clip))
    assert len(frames) == info.frame_count and frames[-1].time >= 2.0
    from featx.extractors.flow import Flow

    ext = Flow.create()
    vecs = [ext.extract(f.image) for f in frames[:3]]
    assert not vecs[0].any() and vecs[1].any()


# ---------------------------------------------------------------------------
# Decoding ahead on a thread (a lone video at -j N: the idle core decodes)


def _decode_threads():
    import threading

    return [t for t in threading.enumerate() if t.name == "featx-video-decode"]


def _same_frames(a, b):
    assert [(f.index, f.time, f.path) for f in a] == [(f.index, f.time, f.path) for f in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.image, y.image)


@pytest.mark.parametrize("kw", [{}, {"every": 3}, {"start": 0.5, "end": 1.5}, {"max_frames": 4}])
def test_decoding_ahead_gives_the_same_frames(ffv1, vfr, kw, monkeypatch):
    import threading

    from featx import videoahead

    monkeypatch.setattr(videoahead, "AHEAD_AFTER", 0.0)
    for path in (ffv1, vfr):
        plain = list(iter_video(path, **kw))
        _same_frames(list(iter_video(path, ahead=True, **kw)), plain)
        answers = iter([False, False, True, False] + [True] * 1000)   # moves to the thread mid-way
        where = []

        def keep(t):
            where.append(threading.current_thread().name)
            return True
        _same_frames(list(iter_video(path, ahead=lambda last: next(answers), keep=keep, **kw)), plain)
        assert where[0] == threading.current_thread().name
        if len(plain) > 5:
            assert where[-1] == "featx-video-decode"
    assert not _decode_threads()


def test_decoding_ahead_waits_for_a_lasting_answer(ffv1, monkeypatch):
    """A worker between two chunks looks idle for a moment: decoding moves to a thread only
    after ``ahead`` said True for AHEAD_AFTER seconds."""
    import threading

    from featx import videoahead

    monkeypatch.setattr(videoahead, "AHEAD_AFTER", 3600.0)
    where = []

    def keep(t):
        where.append(threading.current_thread().name)
        return True
    list(iter_video(ffv1, ahead=lambda last: True, keep=keep))
    assert set(where) == {threading.current_thread().name}


def test_decoding_ahead_keeps_segments_keep(ffv1):
    seen = []

    def keep(t):
        seen.append(t)
        return 0.3 <= t < 0.9
    plain = list(iter_video(ffv1, keep=keep, until=1.2))
    _same_frames(list(iter_video(ffv1, keep=keep, until=1.2, ahead=True)), plain)
    assert [f.index for f in plain] == [3, 4, 5, 6, 7, 8]


def test_decoding_ahead_raises_the_same_error_after_the_same_frames(tmp_path, frames20):
    full = write_video(tmp_path / "full.avi", frames20 * 2, 10.0, "FFV1")
    cut = tmp_path / "cut.avi"
    data = full.read_bytes()
    cut.write_bytes(data[:int(len(data) * 0.6)])
    got, err = _collect(cut)
    got2, err2 = _collect(cut, ahead=True)
    _same_frames(got2, got)
    assert (str(err2), err2.hint, err2.reason, err2.frames_read, err2.frames_yielded) == \
        (str(err), err.hint, err.reason, err.frames_read, err.frames_yielded)
    got3, err3 = _collect(tmp_path / "nope.mp4", ahead=True)
    assert not got3 and err3.reason == "missing"
    assert not _decode_threads()


def test_decoding_ahead_stops_with_its_caller(tmp_path, sample):
    """Closing the iterator (a break, an error in the caller) stops the thread and
    releases the capture; the thread never holds more than AHEAD frames ready."""
    import time

    from featx import videoahead

    path = write_video(tmp_path / "long.avi", make_frames(sample, 60), 10.0, "FFV1")
    it = iter_video(path, ahead=True)
    first = next(it)
    assert first.index == 0 and len(_decode_threads()) == 1
    time.sleep(0.2)   # the thread fills its queue, then waits
    assert len(_decode_threads()) == 1
    it.close()
    assert not _decode_threads()
    with pytest.raises(ZeroDivisionError):
        for f in iter_video(path, ahead=True):
            if f.index == 5:
                1 / 0
    assert not _decode_threads()
    assert videoahead.AHEAD <= 3
