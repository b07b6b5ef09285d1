"""featx detect on camera-sized photos: the cascade works on a copy reduced to
--detect-size and the boxes come back in the photo's own pixels (issue 14, item 3).

The big photo is samples/astronaut.png upscaled to 12 MP as a camera would
deliver it (bicubic, sensor-like noise, JPEG quality 90).  What the face is
compared with is computed here, from the original 512x512 sample.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest

from featx.regions import (DEFAULT_DETECT_SIZE, MIN_DETECT_SIZE, DetectParams, Detector,
                           RegionDetector, build_detect_params, detect_regions)
from helpers import featx, write_rgb

from test_regions import FACE, iou

MP12 = 3464   # a square photo of 12 MP: 3464 x 3464


@pytest.fixture(scope="module")
def big_astronaut(tmp_path_factory):
    """(path of the 12-MP JPEG, its RGB pixels, the scale from the 512-px sample)."""
    import cv2

    from conftest import load_sample

    small = load_sample("astronaut.png")
    big = cv2.resize(small, (MP12, MP12), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(14)
    big = np.clip(big + rng.normal(0.0, 2.5, big.shape), 0, 255).astype(np.uint8)
    path = write_rgb(tmp_path_factory.mktemp("big") / "astronaut12mp.jpg", big,
                     IMWRITE_JPEG_QUALITY=90)
    rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    return path, rgb, MP12 / small.shape[1]


@pytest.fixture(scope="module")
def face_on_sample():
    """The face the cascade finds on the 512-px sample, at full size (the reference)."""
    from conftest import load_sample

    boxes = detect_regions(load_sample("astronaut.png"), detect_size=0)
    assert len(boxes) == 1 and iou(boxes[0], FACE) > 0.5
    return boxes[0].astype(float)


def read_boxes(path) -> list[tuple[str, list[int]]]:
    with open(path, newline="") as fh:
        return [(r["path"], [int(r[k]) for k in "xywh"]) for r in csv.DictReader(fh)]


class _Spy:
    """Stands in for the cv2.CascadeClassifier: records the image it is given."""

    def __init__(self, real=None):
        self.real, self.shapes, self.kwargs = real, [], []

    def detectMultiScale(self, image, **kw):
        self.shapes.append(image.shape)
        self.kwargs.append(kw)
        return self.real.detectMultiScale(image, **kw) if self.real is not None else ()


def spy_on(det: Detector, delegate: bool = False) -> _Spy:
    spy = _Spy(det._clf if delegate else None)
    det._clf = spy
    return spy


def test_cascade_sees_a_copy_no_longer_than_detect_size(big_astronaut):
    _, rgb, _ = big_astronaut
    det = Detector(DetectParams())
    spy = spy_on(det)
    det.detect(rgb)
    assert max(spy.shapes[0]) <= DEFAULT_DETECT_SIZE
    assert spy.shapes[0] == det.working_shape(*rgb.shape[:2])
    assert max(spy.shapes[0]) >= DEFAULT_DETECT_SIZE - 1        # reduced to it, not below

    det = Detector(DetectParams(detect_size=1000))
    spy = spy_on(det)
    det.detect(rgb)
    assert max(spy.shapes[0]) == 1000

    det = Detector(DetectParams(detect_size=0))                 # 0: the image as it is
    spy = spy_on(det)
    det.detect(rgb)
    assert spy.shapes[0] == rgb.shape[:2]


def test_samples_are_searched_at_their_own_size(sample):
    """The samples (<= 640 px) are not reduced at the default: same boxes as full size."""
    for name in ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]:
        img = sample(name)
        det = Detector(DetectParams())
        assert det.working_shape(*img.shape[:2]) == img.shape[:2]
        np.testing.assert_array_equal(det.detect(img), detect_regions(img, detect_size=0))


def test_cli_detect_size_boxes_agree_with_full_size(tmp_path, samples_dir, face_on_sample):
    """--detect-size 256 halves astronaut for the cascade; the face comes back where full size finds it."""
    src = samples_dir / "astronaut.png"
    full, small = tmp_path / "full.csv", tmp_path / "small.csv"
    r = featx("detect", src, "--detect-size", "0", "-o", full)
    assert r.returncode == 0, r.stderr.decode()
    r = featx("detect", src, "--detect-size", "256", "-o", small)
    assert r.returncode == 0, r.stderr.decode()
    (_, a), = read_boxes(full)
    (_, b), = read_boxes(small)
    np.testing.assert_array_equal(a, face_on_sample)
    assert a != b                                    # it did run on the smaller copy ...
    assert iou(a, b) > 0.8                           # ... and found the same face
    r = featx("detect", src, "--detect-size", "20", "-o", tmp_path / "x.csv")
    assert r.returncode == 2 and b"--detect-size" in r.stderr


def test_face_found_where_it_is_on_a_12mp_photo(tmp_path, big_astronaut, face_on_sample):
    path, rgb, scale = big_astronaut
    out = tmp_path / "faces.csv"
    r = featx("detect", path, "-o", out)
    assert r.returncode == 0, r.stderr.decode()
    boxes = [b for _, b in read_boxes(out)]
    expected = face_on_sample * scale
    best = max(boxes, key=lambda b: iou(b, expected))
    assert iou(best, expected) > 0.8
    assert iou(best, np.array(FACE) * scale) > 0.5   # the hand-labelled face
    # the boxes are in the photo's pixels, and the same as the library gives
    got = detect_regions(rgb)
    np.testing.assert_array_equal(sorted(map(list, got)), sorted(boxes))


def test_sizes_are_in_the_photos_pixels(big_astronaut, face_on_sample):
    """--min-size/--max-size count the photo's pixels, not the working copy's."""
    _, rgb, scale = big_astronaut
    side = face_on_sample[2] * scale                 # ~650 px on the 12-MP photo

    def faces(**kw):
        return [b for b in detect_regions(rgb, **kw) if iou(b, face_on_sample * scale) > 0.8]

    assert faces(min_size=round(side * 0.8))
    assert not faces(min_size=round(side * 1.25))
    assert faces(max_size=round(side * 1.25))
    assert not faces(max_size=round(side * 0.8))


def test_small_min_size_keeps_the_copy_large_enough(big_astronaut):
    """Asking for regions smaller than the cascade's window on the reduced copy
    makes the copy just large enough for them (the window is 24 px)."""
    _, rgb, _ = big_astronaut
    det = Detector(build_detect_params({"min_size": 60}))
    spy = spy_on(det)
    det.detect(rgb)
    long = max(spy.shapes[0])
    assert DEFAULT_DETECT_SIZE < long < MP12
    assert long == pytest.approx(MP12 * 24 / 60, abs=1)
    w, h = spy.kwargs[0]["minSize"]
    assert 24 <= w <= 25 and 24 <= h <= 25             # 60 photo pixels on that copy


@pytest.mark.parametrize("mode, size", [("stretch", (1800, 1800)), ("crop", (2000, 1600))])
def test_with_resize_boxes_come_back_to_the_photo(big_astronaut, face_on_sample, mode, size):
    """--resize first, then the detect-size reduction: one mapping back, to the photo's pixels."""
    _, rgb, scale = big_astronaut
    ext = RegionDetector(DetectParams())
    spy = spy_on(ext._detector, delegate=True)
    boxes = ext.extract_resized(rgb, size, mode)
    assert max(spy.shapes[0]) <= DEFAULT_DETECT_SIZE
    assert max(iou(b, face_on_sample * scale) for b in boxes) > 0.8
    # min-size in the photo's pixels also through --resize
    side = face_on_sample[2] * scale
    for factor, found in [(0.8, True), (1.25, False)]:
        ext = RegionDetector(build_detect_params({"min_size": round(side * factor)}))
        boxes = ext.extract_resized(rgb, size, mode)
        assert bool([b for b in boxes if iou(b, face_on_sample * scale) > 0.8]) is found


def test_detect_size_validated():
    with pytest.raises(Exception, match="detect-size"):
        build_detect_params({"detect_size": MIN_DETECT_SIZE - 1})
    assert build_detect_params({"detect_size": 0}).detect_size == 0
