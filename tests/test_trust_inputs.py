"""Attacks on what featx reads: damaged pictures that decode "fine", several faults in one
input, a variable-rate video with a pause, names that are not UTF-8 or carry control
characters (issue 21, items 4, 11, 12, 16).  Each test reproduces the issue's report and
asserts the behaviour the issue asks for."""
from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, copy_samples, featx, featx_inprocess, ok, photo_crops


def sidecar(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".featx.json").read_text("utf-8"))


def err(r) -> str:
    return r.stderr.decode(errors="replace")


def index_paths(npy: Path) -> list[str]:
    idx = npy.with_name(npy.stem + ".index.csv")
    return [row["path"] for row in csv.DictReader(io.StringIO(idx.read_text("utf-8")))]


# ---------------------------------------------------------------------------
# 4. a JPEG damaged mid-stream that still ends in FFD9; a PNG with a bad CRC


def _jpeg_damaged(how: str) -> bytes:
    data = bytearray((SAMPLES / "coffee.jpg").read_bytes())
    sos = data.index(b"\xff\xda")
    mid = sos + (len(data) - sos) // 2
    if how == "deleted":
        del data[mid:mid + 4000]
    elif how == "zeroed":
        data[mid:mid + 4000] = bytes(4000)
    assert data[-2:] == b"\xff\xd9"
    return bytes(data)


@pytest.mark.parametrize("how", ["deleted", "zeroed"])
def test_i04_jpeg_corrupt_mid_stream_is_a_failed_input(tmp_path, how):
    """Item 4: a JPEG with bytes deleted or zeroed mid-stream but ending in FFD9 is accepted
    (a gray-filled area, exit 0) while libjpeg warns "Corrupt JPEG data: premature end of data
    segment".  Such an input is a failure: exit 1, no row, a failure entry naming it."""
    copy_samples(tmp_path / "s", {"good.jpg": "rocket.jpg"})
    (tmp_path / "s" / "bad.jpg").write_bytes(_jpeg_damaged(how))
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    assert [Path(p).name for p in index_paths(tmp_path / "h.npy")] == ["good.jpg"]
    assert [Path(f["path"]).name for f in sidecar(tmp_path / "h.npy")["failures"]] == ["bad.jpg"]


def test_i04_lenient_decode_takes_the_damaged_jpeg_as_the_decoder_returns_it(tmp_path):
    """--lenient-decode is the escape hatch: the damaged JPEG gives a row (what libjpeg
    decoded, grey area included: the numbers of a plain decode of that file), exit 0, and
    the sidecar records that the run was lenient."""
    import cv2

    copy_samples(tmp_path / "s", {"good.jpg": "rocket.jpg"})
    bad = tmp_path / "s" / "bad.jpg"
    bad.write_bytes(_jpeg_damaged("deleted"))
    r = featx_inprocess("extract", "gradients", "s", "-o", "g.npy", "--exact-decode", "--lenient-decode",
                        cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, err(r)[-600:])
    assert [Path(p).name for p in index_paths(tmp_path / "g.npy")] == ["bad.jpg", "good.jpg"]
    assert sidecar(tmp_path / "g.npy")["options"]["lenient_decode"] is True
    import featx

    rgb = cv2.cvtColor(cv2.imread(str(bad)), cv2.COLOR_BGR2RGB)  # libjpeg's own result, warning and all
    np.testing.assert_array_equal(np.load(tmp_path / "g.npy")[0], featx.extract(rgb, "gradients"))


def test_i04_a_lenient_output_is_not_continued_strictly_nor_the_reverse(tmp_path):
    """Rows taken from damaged pictures with --lenient-decode must not pass for a strict
    output's (the next strict run would call them up to date and its sidecar would say
    lenient_decode: false): --lenient-decode is one of an output's settings."""
    copy_samples(tmp_path / "s", {"good.jpg": "rocket.jpg"})
    (tmp_path / "s" / "bad.jpg").write_bytes(_jpeg_damaged("deleted"))
    ok(featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", "--lenient-decode", cwd=tmp_path))
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 2 and "--lenient-decode" in err(r), err(r)
    r = featx_inprocess("extract", "hog", "s", "-o", "k.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 1  # bad.jpg failed: a strict output
    r = featx_inprocess("extract", "hog", "s", "-o", "k.npy", "--resize", "64x64", "--lenient-decode", cwd=tmp_path)
    assert r.returncode == 2 and "--lenient-decode" in err(r), err(r)


def test_i04_png_with_a_bad_crc_is_a_failed_input(tmp_path):
    """Item 4: the same for PNG CRC errors: a flipped byte in an IDAT chunk."""
    copy_samples(tmp_path / "s", {"good.jpg": "rocket.jpg"})
    data = bytearray((SAMPLES / "chelsea.png").read_bytes())
    idat = data.index(b"IDAT")
    data[idat + 4 + 1000] ^= 0x55
    (tmp_path / "s" / "bad.png").write_bytes(bytes(data))
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    assert [Path(p).name for p in index_paths(tmp_path / "h.npy")] == ["good.jpg"]


# ---------------------------------------------------------------------------
# 11. several failures of one input


def test_i11_every_bad_box_of_one_image_is_reported(tmp_path):
    """Item 11: `--regions` with five bad boxes in one image reports only the first (in the
    sidecar too)."""
    copy_samples(tmp_path / "p", {"coffee.jpg": "coffee.jpg"})
    # coffee.jpg is 600x400: the first two lie outside it, or partly
    bad = ["600,10,64,64", "10,370,64,64", "10,10,0,5", "-5,10,20,20", "10,10,5,0"]
    (tmp_path / "boxes.csv").write_text("path,x,y,w,h\np/coffee.jpg,10,10,32,32\n"
                                        + "".join(f"p/coffee.jpg,{b}\n" for b in bad))
    r = featx_inprocess("extract", "hog", "--regions", "boxes.csv", "-o", "r.npy", "--resize", "32x32",
                        cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    for b in bad:
        assert b in err(r), (b, err(r)[-1500:])
    doc = sidecar(tmp_path / "r.npy")    # one good box: the image is listed as partial
    text = json.dumps([doc["failures"], doc["partial"]])
    for b in bad:
        assert b in text, (b, text[-1500:])


@pytest.mark.parametrize("value", ["inf", "1e400"])
def test_i11_box_with_an_infinite_coordinate_is_a_reported_bad_box(tmp_path, value):
    """Item 11: a box with `inf` or `1e400` is a traceback (OverflowError)."""
    copy_samples(tmp_path / "p", {"coffee.jpg": "coffee.jpg"})
    (tmp_path / "boxes.csv").write_text(f"path,x,y,w,h\np/coffee.jpg,10,10,32,32\np/coffee.jpg,10,10,{value},32\n")
    r = featx_inprocess("extract", "hog", "--regions", "boxes.csv", "-o", "r.npy", "--resize", "32x32",
                        cwd=tmp_path)
    assert "Traceback" not in err(r) and "OverflowError" not in err(r), err(r)[-1500:]
    assert r.returncode in (1, 2), (r.returncode, err(r)[-600:])
    assert value in err(r).lower(), err(r)[-600:]


def test_i11_huge_fps_is_no_overflow(tmp_path):
    """Item 11: `--fps 1e308` is an OverflowError after 45 of 62 frames of the sample video:
    refuse it at once, or take it as "every frame"."""
    r = featx_inprocess("extract", "gradients", str(SAMPLES / "clip.mp4"), "--fps", "1e308", "-o", "g.npy",
                        cwd=tmp_path)
    assert "OverflowError" not in err(r), err(r)[-1500:]
    assert r.returncode in (0, 2), (r.returncode, err(r)[-600:])


def test_i11_frame_folder_size_change_and_junk_frame_both_reported(tmp_path):
    """Item 11: a frame folder with a size change and then a junk frame never reports the
    junk frame (it is dropped silently: 6 rows of 8 frames, one failure)."""
    import cv2

    seq = tmp_path / "f" / "seq"
    seq.mkdir(parents=True)
    for i in range(8):
        img = np.full((48, 64, 3), i * 20, np.uint8) if i != 3 else np.zeros((40, 40, 3), np.uint8)
        cv2.imwrite(str(seq / f"f{i:03d}.png"), img)                     # f003: a size change
    (seq / "f006.png").write_bytes(b"this is not a picture")             # f006: a junk frame
    r = featx_inprocess("extract", "hog", "f", "--frames", "-o", "h.npy", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    assert "values per row" in err(r), err(r)[-1500:]                   # the size change
    assert "f006.png" in err(r), err(r)[-1500:]                         # and the junk frame


# ---------------------------------------------------------------------------
# 12. a variable-frame-rate video with a pause


def test_i12_complete_vfr_video_with_a_pause_is_not_truncated(tmp_path):
    """Item 12: a complete variable-frame-rate video with a pause (timestamps 0..160 ms, then
    2000..2160 ms) is reported as truncated, exit 1: completeness must be judged by the
    container's last timestamp, not duration x nominal fps."""
    from test_video import write_mkv

    frames = [np.ascontiguousarray(f[:, :, ::-1]) for f in
              (np.asarray(__import__("cv2").imread(str(p))) for p in sorted(photo_crops(tmp_path / "src", 10, (64, 48)).iterdir()))]
    times = [0, 40, 80, 120, 160, 2000, 2040, 2080, 2120, 2160]
    write_mkv(tmp_path / "pause.mkv", frames, times)
    r = featx_inprocess("extract", "gradients", "pause.mkv", "-o", "g.csv", cwd=tmp_path)
    assert r.returncode == 0, (r.returncode, err(r)[-800:])
    assert "truncated" not in err(r)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "g.csv").read_text("utf-8"))))
    assert len(rows) == 10


# ---------------------------------------------------------------------------
# 16. index files readable by ordinary tools; names quoted in messages


def test_i16_non_utf8_name_gives_valid_utf8_index_with_a_reversible_escape(tmp_path):
    """Item 16: a non-UTF-8 file name makes index.csv invalid UTF-8 (pandas.read_csv fails on
    the whole file).  Every text file featx writes must be valid UTF-8, and featx must read its
    own escape back: the detect list of that folder feeds `--regions`."""
    s = tmp_path / "s"
    copy_samples(s, {"rocket.jpg": "rocket.jpg"})
    os.link(SAMPLES / "astronaut.png", os.path.join(os.fsencode(s), b"caf\xe9.png"))
    ok(featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path))
    text = (tmp_path / "h.index.csv").read_bytes().decode("utf-8")       # strict: valid UTF-8
    assert len(text.splitlines()) == 3
    ok(featx_inprocess("detect", "s", "-o", "boxes.csv", cwd=tmp_path))
    boxes = (tmp_path / "boxes.csv").read_bytes().decode("utf-8")
    assert len(boxes.splitlines()) >= 2                                    # the astronaut's face
    r = ok(featx_inprocess("extract", "hog", "--regions", "boxes.csv", "-o", "r.npy", "--resize", "32x32",
                           cwd=tmp_path))
    (tmp_path / "r.index.csv").read_bytes().decode("utf-8")
    assert np.load(tmp_path / "r.npy").shape[0] == len(boxes.splitlines()) - 1, err(r)


def test_i16_names_in_messages_are_quoted(tmp_path):
    """Item 16: names with a newline or ESC are printed raw in messages: a crafted name forges
    a summary line on stderr (`\\nfeatx: 99 processed`), `esc\\e[31mred.jpg` prints as
    `escred.jpg` in red."""
    s = tmp_path / "s"
    copy_samples(s, {"good.jpg": "rocket.jpg"})
    (s / "x\nfeatx: 99 processed.jpg").write_bytes(b"not a picture at all, just text")
    (s / "esc\x1b[31mred.jpg").write_bytes(b"not a picture at all, just text")
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    lines = err(r).splitlines()
    assert not any(line.startswith("featx: 99 processed") for line in lines), err(r)
    assert "\x1b" not in err(r), err(r)
    assert "99 processed" in err(r) and "red.jpg" in err(r)     # named, escaped


# ---------------------------------------------------------------------------
# found by attacking the fixes above through other doors (a recipe, -j 2, an npy-dir,
# Python, another folder)


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
