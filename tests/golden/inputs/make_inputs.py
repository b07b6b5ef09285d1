"""Make the golden inputs that samples/ lacks (committed; run from the repository root
only to remake them: ``python tests/golden/inputs/make_inputs.py``).

* ``astronaut16.png``: a real 16-bit photo whose values are not multiples of 257 — the
  astronaut sample shrunk 4x by area averaging in float (each value a mean of 16
  pixels, so a multiple of 1/16 on the 0–255 scale), then ``round(v * 257)``, plus a
  fixed pattern of low bits (0..15) as a sensor's noise floor would give.  About half
  its values lie in the upper half of a 257-wide step, where rounding and truncating
  to 8 bits differ.
"""
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[3]
HERE = Path(__file__).resolve().parent


def astronaut16() -> np.ndarray:
    bgr = cv2.imread(str(ROOT / "samples" / "astronaut.png"), cv2.IMREAD_COLOR).astype(np.float32)
    small = cv2.resize(bgr, (128, 128), interpolation=cv2.INTER_AREA).astype(np.float64)
    y, x, c = np.indices(small.shape)
    low = (x * 7 + y * 13 + c * 5) % 16
    return np.clip(np.rint(small * 257.0) + low, 0, 65535).astype(np.uint16)


if __name__ == "__main__":
    img = astronaut16()
    assert cv2.imwrite(str(HERE / "astronaut16.png"), img)
    back = cv2.imread(str(HERE / "astronaut16.png"), cv2.IMREAD_UNCHANGED)
    assert back.dtype == np.uint16 and np.array_equal(back, img)
    frac = (img.astype(np.int64) % 257)
    print("multiples of 257:", float(np.mean(frac == 0)), " upper half of a step:", float(np.mean(frac >= 129)))
