"""Pixel conversions shared by extractors and the decoder.

What an extractor receives (see docs/inputs.md, "What the extractor sees"):
``uint8`` or ``uint16`` arrays, ``(H, W)`` for grayscale sources and
``(H, W, 3)`` in RGB order for colour ones.  The helpers below convert to
what an algorithm needs.  Floating-point conversions always use the 0–255
scale, whatever the bit depth, so that an 8-bit and a 16-bit copy of the same
picture give the same numbers (a 16-bit value ``v`` becomes ``v / 257``).
"""
from __future__ import annotations

import numpy as np

_U16_TO_255 = np.float32(255.0 / 65535.0)


def to_float32(image: np.ndarray) -> np.ndarray:
    """The image as float32 on the 0–255 scale, channels kept."""
    if image.dtype == np.uint8:
        return image.astype(np.float32)
    if image.dtype == np.uint16:
        return image.astype(np.float32) * _U16_TO_255
    return image.astype(np.float32, copy=False)


def to_gray_float32(image: np.ndarray) -> np.ndarray:
    """Luma (ITU-R BT.601, as OpenCV's ``COLOR_RGB2GRAY``) as float32, 0–255 scale."""
    import cv2

    f = to_float32(image)
    if f.ndim == 3:
        f = cv2.cvtColor(f, cv2.COLOR_RGB2GRAY)
    return f


def to_uint8(image: np.ndarray) -> np.ndarray:
    """The image as uint8, channels kept (16-bit rounded from ``v / 257``)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def to_gray_uint8(image: np.ndarray) -> np.ndarray:
    """Luma as uint8 (OpenCV's ``COLOR_RGB2GRAY`` on the 8-bit image)."""
    import cv2

    u = to_uint8(image)
    if u.ndim == 3:
        u = cv2.cvtColor(u, cv2.COLOR_RGB2GRAY)
    return u


def to_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """The image as uint8 RGB ``(H, W, 3)`` (grayscale replicated)."""
    import cv2

    u = to_uint8(image)
    if u.ndim == 2:
        u = cv2.cvtColor(u, cv2.COLOR_GRAY2RGB)
    return u


def resize(image: np.ndarray, width: int, height: int, mode: str = "stretch") -> np.ndarray:
    """Resize to exactly ``width`` × ``height``.

    ``stretch`` scales each axis independently; ``crop`` scales the shorter
    side to fit and cuts the centre.  Downscaling uses area averaging,
    upscaling bilinear interpolation (OpenCV).
    """
    import cv2

    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if mode == "crop":
        scale = max(width / w, height / h)
        nw, nh = max(width, round(w * scale)), max(height, round(h * scale))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        image = cv2.resize(image, (nw, nh), interpolation=interp)
        y0, x0 = (nh - height) // 2, (nw - width) // 2
        return np.ascontiguousarray(image[y0:y0 + height, x0:x0 + width])
    if mode != "stretch":
        raise ValueError(f"unknown resize mode {mode!r}")
    interp = cv2.INTER_AREA if (width <= w and height <= h) else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)
