"""Realistic bugs planted in featx's code, one at a time, to show that the golden
comparison still fails when the numbers move for a real reason (tests/test_golden_mutants.py,
``python -m tests.golden mutants``).

A mutant is an exact piece of a module's source and what it becomes.  :func:`mutated`
compiles the changed module and puts the changed functions' code into the functions
that are already loaded (``__code__``), so every reference to them — an extractor class
imported elsewhere, a method bound earlier — runs the bug, and puts the original code
back afterwards.  Only code inside functions can be changed this way (not module-level
constants or parameter defaults), which is where the bugs below are.
"""
from __future__ import annotations

import builtins
import contextlib
import importlib
import types
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    """``old`` (exactly ``count`` times in ``module``'s source) becomes ``new``."""

    name: str
    module: str
    old: str
    new: str
    what: str
    count: int = 1


MUTANTS = {m.name: m for m in [
    Mutant("hog-clip", "featx.extractors.hog", "np.minimum(flat, np.float32(0.2), out=flat)",
           "np.minimum(flat, np.float32(0.25), out=flat)", "L2-Hys clips at 0.25 instead of 0.2"),
    Mutant("gradients-bin-offset", "featx.extractors.gradients", "theta += 0.5",
           "theta += 0.45", "orientation bins shifted by a twentieth of a bin"),
    Mutant("sift-contrast", "featx.extractors.sift",
           "cv2.SIFT_create(0, p.n_octave_layers, p.contrast_threshold,",
           "cv2.SIFT_create(0, p.n_octave_layers, p.contrast_threshold * 1.25,",
           "SIFT contrast threshold 0.05 instead of 0.04"),
    Mutant("sift-sigma", "featx.extractors.sift", "p.edge_threshold, p.sigma)",
           "p.edge_threshold, p.sigma * 1.03)", "SIFT octave-0 blur 1.648 instead of 1.6"),
    Mutant("sift-half-pixel", "featx.extractors.sift", "(k.pt[0], k.pt[1], k.size,",
           "(k.pt[0] + 0.02, k.pt[1], k.size,", "keypoint x off by 0.02 pixel"),
    Mutant("haar-border", "featx.extractors.haar",
           "padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT)",
           "padded = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)",
           "grid-mode border reflected without repeating the edge pixel"),
    Mutant("haar-window-fit", "featx.extractors.haar",
           "return resize(to_gray_uint8(image), w, h, mode=self.params.fit)",
           "return resize(to_gray_uint8(image), w, h, mode='crop')",
           "window mode crops instead of stretching"),
    Mutant("gabor-sigma", "featx.extractors.gabor",
           "return math.sqrt(math.log(2.0) / 2.0) / math.pi",
           "return 1.02 * math.sqrt(math.log(2.0) / 2.0) / math.pi",
           "Gabor envelope sigma 2 % too wide"),
    Mutant("gabor-aspect", "featx.extractors.gabor", "sy = sx / p.aspect", "sy = sx * p.aspect",
           "aspect applied upside down (sigma_y = sigma_x * aspect)"),
    Mutant("flow-scale", "featx.extractors.flow", "return np.ascontiguousarray(flow, dtype=np.float32)",
           "return np.ascontiguousarray(flow * np.float32(1.01), dtype=np.float32)",
           "flow vectors 1 % too long"),
    Mutant("mbh-scale", "featx.extractors.flow", "k = 1.0 / (8.0 * p.step)", "k = 1.0 / 8.0",
           "MBH gradients per sample instead of per pixel (step left out)"),
    Mutant("cnn-mean", "featx.extractors.cnn", "chw -= self.mean[order, None, None]",
           "chw -= self.mean[order, None, None] + 1.0", "network input mean 128 instead of 127"),
    Mutant("cnn-bgr", "featx.extractors.cnn",
           'order = [2, 1, 0] if self.channel_order == "BGR" else [0, 1, 2]',
           'order = [0, 1, 2] if self.channel_order == "BGR" else [2, 1, 0]',
           "network fed BGR instead of RGB"),
    Mutant("to-uint8-truncates", "featx.imageops", "((image.astype(np.uint32) + 128) // 257)",
           "(image.astype(np.uint32) // 257)", "16-bit to 8-bit truncates instead of rounding"),
    Mutant("to-float32-256", "featx.imageops", "return image.astype(np.float32) * _U16_TO_255",
           "return image.astype(np.float32) * np.float32(1 / 256)", "16-bit scaled by 1/256 instead of 1/257"),
    Mutant("detect-scale", "featx.regions", '"scaleFactor": p.scale_factor',
           '"scaleFactor": p.scale_factor + 0.05', "detector scale step 1.15 instead of 1.1"),
]}

#: The mutant each entry must catch (the perturbation of the extractor it runs).
FOR_ENTRY = {
    "gradients": "gradients-bin-offset",
    "hog-max": "hog-clip",
    "hog-gray": "hog-clip",
    "sift-keypoints": "sift-sigma",
    "sift-dense": "sift-sigma",
    "sift-codebook": "sift-contrast",
    "sift-bovw": "sift-contrast",
    "sift-vlad": "sift-contrast",
    "sift-fisher": "sift-contrast",
    "haar-grid": "haar-border",
    "haar-window": "haar-window-fit",
    "gabor-pooled": "gabor-sigma",
    "gabor-maps": "gabor-sigma",
    "gabor-aspect": "gabor-aspect",
    "flow-descriptor": "flow-scale",
    "flow-farneback": "flow-scale",
    "flow-field": "flow-scale",
    "flow-tvl1": "flow-scale",
    "flow-mbh-none": "mbh-scale",
    "cnn-embedding": "cnn-mean",
    "cnn-logits": "cnn-mean",
    "cnn-top-k": "cnn-bgr",
    "detect": "detect-scale",
    "sift-dense-16bit": "to-uint8-truncates",
    "hog-16bit": "to-float32-256",
}


#: Bugs that an entry does not see, and the entry that does: the reason that entry exists
#: (sift-contrast leaves the 40 strongest keypoints as they are; cnn-mean moves the top-5
#: probabilities by at most 2.8 %, inside their 3.6 % bound).
BLIND = [
    ("sift-keypoints", "sift-contrast", "sift-codebook"),
    ("flow-descriptor", "mbh-scale", "flow-mbh-none"),
    ("gabor-pooled", "gabor-aspect", "gabor-aspect"),
    ("sift-dense", "to-uint8-truncates", "sift-dense-16bit"),
    ("cnn-top-k", "cnn-mean", "cnn-logits"),
]


def _functions(ns: dict, modname: str, filename: str):
    """(qualified name, function) of every function defined in a module's namespace:
    module-level ones and methods (also static, class, property ones) of its classes,
    nested classes included."""
    def walk(prefix: str, d: dict, seen: set):
        for name, obj in list(d.items()):
            if isinstance(obj, (staticmethod, classmethod)):
                obj = obj.__func__
            if isinstance(obj, property):
                for part, f in (("fget", obj.fget), ("fset", obj.fset)):
                    if isinstance(f, types.FunctionType) and f.__code__.co_filename == filename:
                        yield f"{prefix}{name}.{part}", f
                continue
            if isinstance(obj, types.FunctionType):
                if obj.__code__.co_filename == filename:
                    yield prefix + name, obj
            elif isinstance(obj, type) and obj.__module__ == modname and id(obj) not in seen:
                seen.add(id(obj))
                yield from walk(f"{prefix}{name}.", dict(vars(obj)), seen)
    yield from walk("", ns, set())


@contextlib.contextmanager
def mutated(mutant: Mutant | str):
    """Run the ``with`` block with ``mutant`` planted in its (already loaded) module."""
    m = MUTANTS[mutant] if isinstance(mutant, str) else mutant
    mod = importlib.import_module(m.module)
    filename = mod.__file__
    src = Path(filename).read_text(encoding="utf-8")
    found = src.count(m.old)
    if found != m.count:
        raise AssertionError(f"mutant {m.name}: {m.old!r} occurs {found} times in {m.module}, "
                             f"expected {m.count}: the code changed, update the mutant")
    ns = {"__name__": mod.__name__, "__package__": mod.__package__, "__file__": filename,
          "__spec__": mod.__spec__, "__builtins__": builtins}
    exec(compile(src.replace(m.old, m.new), filename, "exec"), ns)
    new = dict(_functions(ns, mod.__name__, filename))
    swapped = []
    try:
        for qual, f in _functions(vars(mod), mod.__name__, filename):
            g = new.get(qual)
            if g is not None and g.__code__ != f.__code__ \
                    and len(g.__code__.co_freevars) == len(f.__code__.co_freevars):
                swapped.append((f, f.__code__))
                f.__code__ = g.__code__
        if not swapped:
            raise AssertionError(f"mutant {m.name}: the change is not inside a function")
        yield m
    finally:
        for f, code in swapped:
            f.__code__ = code
