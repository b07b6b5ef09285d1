"""Shared fixtures: the real photographs in samples/."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
COLOUR = ["astronaut.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]
GRAY = ["camera.png"]


def load_sample(name: str) -> np.ndarray:
    """A sample photo as featx's extractors see it: uint8, RGB or grayscale."""
    import cv2

    img = cv2.imread(str(SAMPLES / name), cv2.IMREAD_UNCHANGED)
    assert img is not None, name
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    return SAMPLES


@pytest.fixture(scope="session")
def sample():
    cache: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = load_sample(name)
        return cache[name].copy()

    return get
