"""The memory one input may cost a worker, checked before the input is decoded.

A worker holds, for one image: the file's bytes, the decoded pixels (and one
converted copy: BGR to RGB, EXIF rotation), the resized copy (``--resize``),
and what the extractor allocates while it works, which each extractor
declares per pixel of the image it receives
(:meth:`featx.extractor.Extractor.bytes_per_pixel`).  :class:`MemoryBudget`
adds these up from the image header (no pixel is decoded) and refuses an
input whose cost is over the per-worker budget (``--max-memory``), so a
small file that claims huge dimensions cannot exhaust the machine.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import InputError, UsageError
from .host import default_jobs

GiB = 1 << 30
MiB = 1 << 20

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": MiB, "mb": MiB, "mib": MiB,
          "g": GiB, "gb": GiB, "gib": GiB, "t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40}


def parse_size(text: str | int) -> int:
    """``"4G"``, ``"512M"``, ``"1.5GiB"``, ``"2000000000"`` -> bytes (units are powers of 1024).

    Raises ``ValueError`` for anything else (negative, NaN, infinite, unknown unit).
    """
    if isinstance(text, bool):
        raise ValueError(text)
    if isinstance(text, int):
        if text < 0:
            raise ValueError(text)
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(text)
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def format_size(n: float) -> str:
    """``1288490188`` -> ``"1.2 GiB"``."""
    for unit, size in (("GiB", GiB), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} bytes"


def total_memory() -> int:
    """Physical memory of this machine, or the cgroup (container) limit if lower."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        total = 8 * GiB
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        if text.isdigit() and 0 < int(text) < total:
            total = int(text)
    return total


def default_budget(jobs: int) -> int:
    """The default ``--max-memory``: half the machine's memory shared by ``jobs``
    workers, at least 1 GiB."""
    return max(GiB, total_memory() // 2 // max(1, jobs))


def resolve(max_memory: int | None, jobs: int) -> int | None:
    """Bytes per worker from a run option: None -> the default for ``jobs``; 0 -> no limit."""
    if max_memory is None:
        return default_budget(jobs if jobs and jobs > 0 else default_jobs())
    return max_memory or None


@dataclass(frozen=True)
class MemoryBudget:
    """What one worker may spend on one input, and how to cost an input.

    ``limit``: bytes; ``working``: the extractor's working memory for an image
    of ``(height, width)`` it receives (:meth:`Extractor.working_memory`);
    ``resize``: ``(width, height)`` of ``--resize``.
    """

    limit: int
    working: Callable[[int, int], int]
    resize: tuple[int, int] | None = None
    output: Callable[[int, int], int] | None = None   # bytes of the encoded result
    parts: tuple = ()   # (working, resize, output) of each output sharing the decode (a recipe)

    @classmethod
    def for_extractor(cls, limit: int, extractor, resize: tuple[int, int] | None = None) -> MemoryBudget:
        return cls.for_extractors(limit, [(extractor, resize)])

    @classmethod
    def for_extractors(cls, limit: int, pairs) -> MemoryBudget:
        """The budget of one decode shared by several ``(extractor, resize)`` outputs, which
        extract one after the other: the costliest of them counts."""
        # working_memory includes the result; the worker then encodes it: a float32 copy, or
        # CSV text of up to about 16 bytes a value
        parts = tuple((ext.working_memory, resize, (lambda e: lambda h, w: 4 * output_bytes(e, h, w))(ext))
                      for ext, resize in pairs)
        first = parts[0]
        return cls(limit, first[0], first[1], first[2], parts)

    def cost(self, width: int, height: int, channels: int = 3, sample_bytes: int = 1,
             file_bytes: int = 0, scale: int = 1, progressive: bool = False) -> int:
        """Peak bytes to decode an image of this size and extract from it (an upper bound):
        the file, the decoded pixels twice (decode + colour conversion), then for the
        costliest output the resized copy and the extractor's working memory on the image
        it receives.

        ``scale``: the JPEG is decoded at 1/scale per axis (DCT scaling): the pixels held
        are the reduced ones; a ``progressive`` JPEG's decoder also holds every DCT
        coefficient of the full image (2 bytes a sample, whatever the scale).
        """
        ch = max(channels, 1)
        if scale > 1:
            width, height = -(-width // scale), -(-height // scale)
        decoded = width * height * ch * sample_bytes
        cost = file_bytes + 2 * decoded
        if scale > 1 and progressive:
            cost += 2 * ch * (width * scale) * (height * scale)
        parts = self.parts or ((self.working, self.resize, self.output),)
        return int(cost + max(self._part(p, width, height, channels, sample_bytes) for p in parts))

    @staticmethod
    def _part(part, width: int, height: int, channels: int, sample_bytes: int) -> int:
        working, resize, output = part
        cost = 0
        if resize is not None:
            rw, rh = resize
            cost += rw * rh * max(channels, 1) * sample_bytes
            height, width = rh, rw
        cost += working(height, width)
        if output is not None:
            cost += output(height, width)
        return cost

    def check(self, width: int, height: int, channels: int = 3, sample_bytes: int = 1,
              file_bytes: int = 0, scale: int = 1, progressive: bool = False) -> None:
        """Raise :class:`InputError` if the input would cost more than the budget
        (``scale``, ``progressive``: as :meth:`cost`; the message names the image's own size)."""
        need = self.cost(width, height, channels, sample_bytes, file_bytes, scale, progressive)
        if need <= self.limit:
            return
        what = f"image is {width}x{height} pixels"
        if file_bytes:
            what += f" (a {format_size(file_bytes)} file)"
        if self.resize is not None:
            fix = "raise --max-memory, or run fewer jobs (-j) so each worker may use more"
        else:
            fix = "raise --max-memory, run fewer jobs (-j) so each worker may use more, or --resize it smaller"
        raise InputError(f"{what}: decoding and extracting it would need about {format_size(need)}, "
                         f"over the per-worker memory budget of {format_size(self.limit)}",
                         f"{fix}; set --max-memory {format_size_flag(need)} to allow it")

    def check_file_size(self, file_bytes: int) -> None:
        """Refuse a file whose bytes alone are over the budget, before reading it."""
        if file_bytes > self.limit:
            raise InputError(f"file is {format_size(file_bytes)}, over the per-worker memory budget of "
                             f"{format_size(self.limit)}", "raise --max-memory")


def output_bytes(extractor, height: int, width: int) -> int:
    """Bytes of what ``extractor`` returns for an image of that size (0 if unknown)."""
    import math

    try:
        spec = extractor.output_spec(height, width)
    except Exception:  # noqa: BLE001 - too small for the extractor, etc.: it fails by itself
        return 0
    if spec.kind not in ("vector", "dense") or any(not isinstance(d, int) for d in spec.shape):
        return 0
    return 4 * math.prod(spec.shape)


def format_size_flag(n: float) -> str:
    """A ``--max-memory`` value at least ``n`` bytes, rounded up (``"9.5G"``)."""
    import math

    if n >= GiB:
        return f"{math.ceil(n * 10 / GiB) / 10:g}G"
    return f"{math.ceil(n / MiB)}M"


def check_resize(resize: tuple[int, int] | None, extractor, limit: int | None, max_pixels: int | None) -> None:
    """``--resize`` beyond ``--max-pixels`` or the memory budget is a usage error, up front."""
    if resize is None:
        return
    w, h = resize
    if max_pixels and w * h > max_pixels:
        raise UsageError(f"--resize {w}x{h} is {w * h:,} pixels, over --max-pixels {max_pixels:,}",
                         "choose a smaller --resize, or raise --max-pixels")
    if limit:
        need = int(w * h * 3 + extractor.working_memory(h, w) + output_bytes(extractor, h, w))
        if need > limit:
            raise UsageError(f"--resize {w}x{h}: extracting from each image at that size needs about "
                             f"{format_size(need)}, over the per-worker memory budget of {format_size(limit)}",
                             f"choose a smaller --resize, or raise --max-memory (at least "
                             f"{format_size_flag(need)}) or run fewer jobs (-j)")
