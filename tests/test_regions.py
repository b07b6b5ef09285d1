"""Viola–Jones cascade detection (featx.regions) on the sample photographs."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from featx.errors import ParamError, UsageError
from featx.extractor import param_infos
from featx.regions import (DetectParams, Detector, available_cascades, build_detect_params,
                           crop_regions, detect_regions, draw_boxes, resolve_cascade)

# Ground truth, labelled by hand on samples/astronaut.png (x, y in pixels):
# the face from the hairline to the chin and cheek to cheek, the eye centres
# and the mouth centre.
FACE = (183, 80, 90, 98)
EYES = [(203, 102), (245, 102)]
MOUTH = (224, 145)


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    return inter / (aw * ah + bw * bh - inter)


def contains(box, pt) -> bool:
    x, y, w, h = box
    return x <= pt[0] < x + w and y <= pt[1] < y + h


def test_face_found_on_astronaut(sample):
    boxes = detect_regions(sample("astronaut.png"))
    assert boxes.dtype == np.int32 and boxes.shape == (1, 4)
    face = boxes[0]
    assert iou(face, FACE) > 0.5
    for pt in EYES + [MOUTH]:
        assert contains(face, pt)


@pytest.mark.parametrize("name", ["chelsea.png", "coffee.jpg", "rocket.jpg"])
def test_no_face_where_there_is_none(sample, name):
    assert detect_regions(sample(name)).shape == (0, 4)


def test_eye_cascade_finds_both_eyes(sample):
    eyes = detect_regions(sample("astronaut.png"), "eye")
    assert len(eyes) == 2
    centres = sorted((x + w / 2, y + h / 2) for x, y, w, h in eyes)
    for (cx, cy), (ex, ey) in zip(centres, EYES):
        assert abs(cx - ex) < 8 and abs(cy - ey) < 8


def test_same_result_for_gray_rgb_and_16bit(sample):
    import cv2

    rgb = sample("astronaut.png")
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    ref = detect_regions(rgb)
    np.testing.assert_array_equal(detect_regions(gray), ref)
    np.testing.assert_array_equal(detect_regions(rgb.astype(np.uint16) * 257), ref)


def test_cascade_names_and_paths(tmp_path, sample):
    names = available_cascades()
    for n in ("frontalface_default", "frontalface_alt", "eye", "profileface"):
        assert n in names and names[n].is_file()
    assert resolve_cascade("eye") == resolve_cascade("haarcascade_eye.xml") == names["eye"]
    # any XML file given by path (a copy outside OpenCV's folder)
    copy = tmp_path / "my faces.xml"
    shutil.copy(names["frontalface_default"], copy)
    assert resolve_cascade(str(copy)) == copy
    np.testing.assert_array_equal(detect_regions(sample("astronaut.png"), copy),
                                  detect_regions(sample("astronaut.png")))


def test_unknown_cascade_lists_available():
    with pytest.raises(UsageError) as e:
        detect_regions(np.zeros((32, 32), np.uint8), "nose")
    assert "unknown cascade 'nose'" in e.value.message
    assert "frontalface_default" in e.value.hint and "eye" in e.value.hint


def test_missing_and_unreadable_cascade_files(tmp_path):
    img = np.zeros((32, 32), np.uint8)
    with pytest.raises(UsageError, match="not found"):
        detect_regions(img, tmp_path / "missing.xml")
    bad = tmp_path / "bad.xml"
    bad.write_text("<opencv_storage>not a cascade</opencv_storage>")
    with pytest.raises(UsageError, match="cannot read cascade"):
        detect_regions(img, bad)
    empty = tmp_path / "empty.xml"
    empty.write_text("")
    with pytest.raises(UsageError, match="cannot read cascade"):
        detect_regions(img, empty)


def test_params_declared_once_and_validated():
    infos = {i.name: i for i in param_infos(DetectParams)}
    assert set(infos) == {"cascade", "scale_factor", "min_neighbors", "min_size", "max_size",
                          "equalize", "detect_size", "track", "track_iou", "track_gap"}
    assert all(i.help for i in infos.values())
    p = build_detect_params({"scale-factor": "1.2", "min_neighbors": "4"})
    assert (p.scale_factor, p.min_neighbors) == (1.2, 4)
    with pytest.raises(ParamError, match="scale-factor"):
        build_detect_params({"scale_factor": 1.0})
    with pytest.raises(ParamError, match="max-size"):
        build_detect_params({"min_size": 50, "max_size": 40})
    with pytest.raises(ParamError, match="unknown parameter"):
        build_detect_params({"neighbours": 3})


def test_size_limits_filter(sample):
    img = sample("astronaut.png")
    assert len(detect_regions(img, min_size=120)) == 0   # the face is ~95 px
    assert len(detect_regions(img, max_size=60)) == 0
    assert len(detect_regions(img, min_size=60, max_size=120)) == 1


def test_detector_sorted_and_deterministic(sample):
    from featx.regions import _sort_boxes

    boxes = np.array([[50, 10, 5, 5], [10, 10, 5, 5], [0, 40, 9, 9], [10, 10, 4, 4]])
    np.testing.assert_array_equal(_sort_boxes(boxes),
                                  [[10, 10, 4, 4], [10, 10, 5, 5], [50, 10, 5, 5], [0, 40, 9, 9]])
    np.testing.assert_array_equal(_sort_boxes(boxes[::-1]), _sort_boxes(boxes))
    det = Detector(DetectParams(cascade="eye"))
    img = sample("astronaut.png")
    a, b = det.detect(img), det.detect(img)
    np.testing.assert_array_equal(a, b)
    assert (np.diff(a[:, 1]) >= 0).all()


def test_crop_and_draw(sample):
    img = sample("astronaut.png")
    boxes = np.array([[177, 66, 95, 95], [500, 500, 40, 40], [-5, -5, 10, 10]])
    crops = crop_regions(img, boxes)
    assert crops[0].shape == (95, 95, 3) and np.shares_memory(crops[0], img)
    assert crops[1].shape == (12, 12, 3) and crops[2].shape == (5, 5, 3)
    pic = draw_boxes(img, boxes[:1], thickness=1)
    assert pic.shape == img.shape and pic.dtype == np.uint8
    assert tuple(pic[66, 200]) == (0, 255, 0) and tuple(pic[160, 177]) == (0, 255, 0)
    assert tuple(pic[120, 220]) == tuple(img[120, 220])  # inside untouched
    assert (img[66, 200] != (0, 255, 0)).any()  # the input is not modified
