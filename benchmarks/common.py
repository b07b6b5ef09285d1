"""Small helpers shared by the benchmark scripts (run them from any folder: each
script's own folder is on sys.path)."""
from __future__ import annotations

import statistics
import time


def timed(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn``, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def as_installed(*trees) -> None:
    """Time featx as an install runs it: with compiled bytecode.  Compiles ``featx/`` of each
    source tree given (default: this checkout) and drops ``PYTHONDONTWRITEBYTECODE`` from this
    process's environment, which the commands it starts inherit (a shell that sets it makes
    every start recompile all of featx: 0.1-0.15 s that no installed featx pays)."""
    import compileall
    import os
    from pathlib import Path

    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    for tree in trees or (Path(__file__).resolve().parent.parent,):
        compileall.compile_dir(str(Path(tree) / "featx"), quiet=1)


def camera_photos(folder, n: int, megapixels: float = 12.0, quality: int = 90, seed: int = 0):
    """``n`` JPEGs of about ``megapixels`` (4:3, e.g. 4000x3000 for 12) in ``folder``, made
    from the sample photos: cut to 4:3, upscaled (cubic), each with its own sensor-like
    noise (Gaussian, sigma 3, per pixel and channel) so that they compress like real
    camera photos (~3-5 MB each at 12 MP), not like smooth upscales.  Returns ``folder``."""
    import math
    from pathlib import Path

    import cv2
    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    samples = Path(__file__).resolve().parent.parent / "samples"
    w = int(round(math.sqrt(megapixels * 1e6 * 4 / 3) / 8) * 8)
    h = w * 3 // 4
    rng = np.random.default_rng(seed)
    bases = []
    for name in ("astronaut.png", "coffee.jpg", "chelsea.png", "rocket.jpg", "camera.png"):
        img = cv2.imread(str(samples / name), cv2.IMREAD_COLOR)
        ih, iw = img.shape[:2]
        if iw * 3 > ih * 4:
            cw = ih * 4 // 3
            img = img[:, (iw - cw) // 2:(iw - cw) // 2 + cw]
        else:
            ch = iw * 3 // 4
            img = img[(ih - ch) // 2:(ih - ch) // 2 + ch]
        bases.append(cv2.resize(img, (w, h), interpolation=cv2.INTER_CUBIC))
    noise = rng.normal(0.0, 3.0, (h, w, 3)).astype(np.int16)
    for i in range(n):
        shift = (int(rng.integers(h)), int(rng.integers(w)))
        img = np.clip(bases[i % len(bases)] + np.roll(noise, shift, (0, 1)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"photo{i:03d}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return folder
