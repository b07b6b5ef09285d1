"""featx.imageops: 16-bit to 8-bit conversion rounds ``v / 257`` to the nearest level
(it never truncates), checked on a table of values and on a real 16-bit photo whose values
are not multiples of 257."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest

from featx import imageops

GOLDEN_INPUTS = Path(__file__).resolve().parent / "golden" / "inputs"

#: v -> round(v / 257): the level whose 16-bit value 257 * level is nearest v (257 is
#: odd, so v / 257 is never exactly halfway and no tie rule is needed)
TABLE = {
    0: 0, 1: 0, 128: 0,            # 128 / 257 = 0.498
    129: 1,                        # 0.502: truncation would give 0
    256: 1, 257: 1, 258: 1,
    385: 1,                        # 1.498
    386: 2,                        # 1.502
    32767: 127,                    # 127.498
    32768: 128,                    # 127.502
    32896: 128, 33024: 128,        # 128 * 257 = 32896; 33024 = 128.498 * 257
    33025: 129,
    65278: 254,                    # 254 * 257
    65406: 254,                    # 254.498
    65407: 255,                    # 254.502
    65535: 255,
}


def reference_uint8(v: np.ndarray) -> np.ndarray:
    """round(v / 257) for uint16 ``v``, computed independently of featx: exact rationals
    for each distinct value, then a look-up."""
    levels = np.array([int(Fraction(int(x), 257) + Fraction(1, 2)) for x in range(65536)], np.uint8)
    return levels[v]


def check_rounding(to_uint8) -> None:
    got = to_uint8(np.array(list(TABLE), np.uint16))
    assert got.dtype == np.uint8
    assert got.tolist() == list(TABLE.values()), dict(zip(TABLE, got.tolist()))
    every = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(to_uint8(every), reference_uint8(every))


def test_to_uint8_rounds_a_table_of_values():
    check_rounding(imageops.to_uint8)


def test_to_uint8_on_a_real_16bit_photo():
    """The committed 16-bit astronaut (tests/golden/inputs: area-averaged, then low bits):
    its values are spread across the 257-wide steps, so rounding and truncating disagree
    on nearly half of them; featx agrees with the reference on all of them, colour kept."""
    img16 = cv2.imread(str(GOLDEN_INPUTS / "astronaut16.png"), cv2.IMREAD_UNCHANGED)
    assert img16.dtype == np.uint16 and img16.ndim == 3
    rgb16 = cv2.cvtColor(img16, cv2.COLOR_BGR2RGB)
    upper = np.mean(rgb16.astype(np.int64) % 257 >= 129)
    assert upper > 0.3, "the photo would not tell rounding from truncation"
    ref = reference_uint8(rgb16)
    np.testing.assert_array_equal(imageops.to_uint8(rgb16), ref)
    np.testing.assert_array_equal(imageops.to_rgb_uint8(rgb16), ref)
    np.testing.assert_array_equal(imageops.to_gray_uint8(rgb16), cv2.cvtColor(ref, cv2.COLOR_RGB2GRAY))
    # the float path stays on the same 0-255 scale (v / 257)
    np.testing.assert_allclose(imageops.to_float32(rgb16), rgb16 / 257.0, rtol=2**-22)


def test_uint8_and_float_inputs():
    u8 = np.array([[0, 7, 255]], np.uint8)
    assert imageops.to_uint8(u8) is u8
    f = np.array([[-3.0, 0.49, 0.51, 254.5, 300.0]], np.float32)
    assert imageops.to_uint8(f).tolist() == [[0, 0, 1, 254, 255]]  # rint: half to even


def test_the_check_catches_truncation():
    """The planted bug that escaped mutation testing once (truncating ``v // 257``) fails
    the checks above."""
    import golden.mutants as mutants

    with mutants.mutated("to-uint8-truncates"):
        with pytest.raises(AssertionError):
            check_rounding(imageops.to_uint8)
    check_rounding(imageops.to_uint8)
