"""Thumbnails for a report: small JPEGs of the inputs, as ``data:`` URIs.

Made with OpenCV from the inputs when they are there: a still image (decoded as featx's
extractors see it, EXIF orientation applied, a large JPEG decoded at a reduced scale), a
frame of a video (each video decoded once, up to its last frame wanted), a frame file of a
frame sequence, and the box of a region cut from any of them.  An input that is gone or
cannot be read gets no thumbnail, and is counted: the page works without them and says why.
"""
from __future__ import annotations

import base64
import os
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

#: Longest side of a thumbnail, in pixels, and its JPEG quality.
SIDE = 96
QUALITY = 70


@dataclass
class Thumbs:
    """Thumbnails made: ``uris[i]`` (a ``data:image/jpeg;base64,...`` string), and for each
    key asked for, the index into ``uris`` or -1."""

    uris: list[str] = field(default_factory=list)
    missing: Counter = field(default_factory=Counter)   # reason -> count
    bytes: int = 0


def _encode(rgb: np.ndarray) -> str:
    import cv2

    from ..imageops import to_rgb_uint8

    img = to_rgb_uint8(rgb)
    h, w = img.shape[:2]
    s = min(1.0, SIDE / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 RGB
        raise ValueError("cannot encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(buf.tobytes()).decode("ascii")


def _crop(img: np.ndarray, key: dict) -> np.ndarray:
    if key.get("x") is None:
        return img
    x, y, w, h = (int(key[c]) for c in ("x", "y", "w", "h"))
    H, W = img.shape[:2]
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(W, x + w), min(H, y + h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError("the region lies outside the image")
    return img[y0:y1, x0:x1]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "the input is gone"
    from ..errors import FeatxError

    msg = exc.message if isinstance(exc, FeatxError) else str(exc)
    if "no such file" in msg.lower() or "does not exist" in msg or "not found" in msg:
        return "the input is gone"
    return "the input could not be read"


def make(keys: list[dict], enabled: bool = True) -> tuple[Thumbs, list[int]]:
    """A thumbnail for each of ``keys`` (the same picture once: several regions of one
    image decode it once); returns the thumbnails and, per key, its index or -1."""
    from ..decode import decode_image
    from ..video import is_video, read_frames

    th = Thumbs()
    out = [-1] * len(keys)
    if not enabled:
        if keys:
            th.missing["thumbnails were turned off (--no-thumbnails)"] = len(keys)
        return th, out
    done: dict[tuple, int] = {}
    # videos: every frame wanted, per video, decoded in one pass
    videos: dict[str, list[int]] = {}
    stills: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        path = str(key.get("path"))
        if key.get("frame") is not None and is_video(path):
            videos.setdefault(path, []).append(i)
        else:
            stills.setdefault(path, []).append(i)

    def put(i: int, img: np.ndarray) -> None:
        key = keys[i]
        ident = tuple(key.get(c) for c in ("path", "frame", "x", "y", "w", "h"))
        if ident in done:
            out[i] = done[ident]
            return
        try:
            uri = _encode(_crop(img, key))
        except ValueError:
            th.missing["the region lies outside the picture"] += 1
            return
        done[ident] = out[i] = len(th.uris)
        th.uris.append(uri)
        th.bytes += len(uri)

    for path, idx in stills.items():
        try:
            regions = any(keys[i].get("x") is not None for i in idx)
            img = decode_image(path, min_size=None if regions else (SIDE, SIDE))
        except Exception as exc:  # noqa: BLE001 - any failure: no thumbnail, counted
            th.missing[_reason(exc)] += len(idx)
            continue
        for i in idx:
            put(i, img)
    for path, idx in videos.items():
        if not os.path.exists(path):
            th.missing["the input is gone"] += len(idx)
            continue
        by_frame: dict[int, list[int]] = {}
        for i in idx:
            by_frame.setdefault(int(keys[i]["frame"]), []).append(i)
        found = set()
        try:
            for frame in read_frames(path, sorted(by_frame)):
                found.add(frame.index)
                for i in by_frame[frame.index]:
                    put(i, frame.image)
        except Exception as exc:  # noqa: BLE001
            th.missing[_reason(exc)] += sum(len(by_frame[f]) for f in by_frame if f not in found)
            continue
        lost = sum(len(by_frame[f]) for f in by_frame if f not in found)
        if lost:
            th.missing["the frame is past the end of the video"] += lost
    return th, out
