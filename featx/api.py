"""The small Python API for notebooks and scripts.

These functions run the same code as the CLI, so the numbers are the same::

    import featx, cv2
    img = cv2.cvtColor(cv2.imread("photo.jpg"), cv2.COLOR_BGR2RGB)   # RGB, like featx
    v = featx.extract(img, "hog", cell_size=16, resize=(256, 256))
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import imageops, registry
from .extractor import Extractor, Keypoints, build_params


def open_extractor(name: str, **params: Any) -> Extractor:
    """Build the extractor ``name`` with validated ``params`` (keyword names as on the CLI,
    with ``_`` for ``-``).  Reuse it for many images."""
    cls = registry.get(name)
    return cls(build_params(cls, params))


def extract(image: np.ndarray, name: str | Extractor, *, resize: tuple[int, int] | None = None,
            resize_mode: str = "stretch", **params: Any) -> np.ndarray | Keypoints:
    """Features of one image array, exactly as ``featx extract`` computes them.

    Parameters
    ----------
    image : ndarray
        ``uint8`` or ``uint16``, ``(H, W)`` grayscale or ``(H, W, 3)`` **RGB**
        (note: ``cv2.imread`` gives BGR; convert first).
    name : str or Extractor
        A registered extractor name, or an extractor from :func:`open_extractor`.
    resize : (width, height), optional
        As ``--resize WxH``.
    **params
        Extractor parameters, when ``name`` is a string.

    Returns
    -------
    ndarray (float32) or Keypoints
    """
    ext = name if isinstance(name, Extractor) else open_extractor(name, **params)
    if isinstance(name, Extractor) and params:
        raise TypeError("pass parameters to open_extractor(), not with an extractor instance")
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {image.shape}")
    if resize is not None:
        image = imageops.resize(image, resize[0], resize[1], resize_mode)
    value = ext.extract(image)
    if isinstance(value, Keypoints):
        return value
    return np.ascontiguousarray(value, dtype=np.float32)


def list_extractors() -> dict[str, str]:
    """Registered extractors: name -> one-line summary (or ``BROKEN: reason``)."""
    return {i.name: (i.cls.summary if i.ok else f"BROKEN: {i.error}") for i in registry.discover()}
