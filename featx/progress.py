"""Progress of a run, in items: images, video frames, regions.

A run tells a display (anything tqdm-like: ``update(n)``, ``total``,
``refresh()``) how far it is:

* :func:`count` gives the total before the run when it is cheap to know — a
  walk of the folders named (listed again by the run itself), the frame count
  and rate in each video's header (with the sampling applied), the files of
  frame folders, the boxes of a regions file — and gives up (no total) on
  stdin, list files, or when counting takes longer than :data:`COUNT_SECONDS`;
* :class:`Feed` moves the display: by an input's weight when it is up to date,
  by each item as a worker loads it (a shared counter, so a long video moves
  while it is read), and at the end of each input by what its estimate and
  its real item count disagree.
"""
from __future__ import annotations

import time
from typing import Any

#: Counting the items before a run gives up (no total, a count only) after this long.
COUNT_SECONDS = 3.0


def count(built: Any) -> tuple[int | None, dict[str, int]]:
    """The items a plan will go through (None when not cheap to know) and the estimates
    of inputs that are not one item each (videos, frame folders), by canonical path."""
    from . import inputs, video

    plan = built.plan
    if "-" in plan.inputs or plan.files_from:
        return None, {}
    deadline = time.monotonic() + COUNT_SECONDS
    total, weights = 0, {}
    canonical = inputs.Canonical()
    sampling = inputs.sampling_of(plan.sampling) if plan.sampling else None
    try:
        if plan.segments:  # how many frames fall in the segments is known only once decoded
            return None, {}
        if plan.regions:
            for inp in inputs.read_regions(plan.regions):
                total += len(inp.boxes or ())
                if time.monotonic() > deadline:
                    return None, {}
            return total, {}
        stream = inputs.enumerate_inputs(plan.inputs, stats=inputs.Enumeration(), videos=built.video_mode,
                                         frames=plan.frames or built.temporal, sequence=built.temporal)
        for inp in stream:
            n = 1
            if inp.kind == "sequence":
                n = len(inp.paths or ())
            elif inp.kind == "video":
                n = video.estimate_frames(inp.path, sampling)
            elif inp.kind == "frames":
                try:
                    n = len(video.select_frames(video.list_frames(inp.path), sampling=sampling,
                                                frame_rate=plan.frame_rate))
                except Exception:  # noqa: BLE001 - it fails in the run, as one input
                    n = 1
            if n != 1:
                weights[canonical(inp.path)] = n
            total += n
            if time.monotonic() > deadline:
                return None, {}
    except Exception:  # noqa: BLE001 - counting is a courtesy: the run reports what is wrong
        return None, {}
    return total, weights


class Feed:
    """Moves a progress display from what the engine does (see the module docstring)."""

    def __init__(self, display: Any, weights: dict[str, int] | None = None):
        self.display = display
        self.weights = weights or {}
        self.counter = _Counter()  # items loaded by workers (a shared value with a pool)
        self._seen = 0
        self.failed = 0
        self.pooled: set[int] = set()   # outputs that pool: their records are pooled rows, not items

    def weight(self, inp) -> int:
        if inp.boxes is not None:
            return len(inp.boxes)
        if inp.kind == "sequence":
            return len(inp.paths or ())
        return self.weights.get(inp.path, 1)

    def skip(self, inp) -> None:
        """``inp`` is up to date in every output."""
        self.display.update(self.weight(inp))

    def poll(self) -> None:
        """Show the items workers loaded since the last look."""
        v = self.counter.value
        if v > self._seen:
            self.display.update(v - self._seen)
            self._seen = v

    def done(self, inputs, records) -> None:
        """The records of a chunk came back: bring each input to its weight."""
        self.poll()
        for i, inp in enumerate(inputs):
            counted = [len(out[i]) for k, out in enumerate(records) if k not in self.pooled]
            if not counted:   # every output pools: nothing says how many items there were
                continue
            n = max(counted)
            w = self.weight(inp)
            if n < w:
                self.display.update(w - n)
            elif n > w and getattr(self.display, "total", None):
                self.display.total += n - w
                self.display.refresh()

    def failure(self) -> None:
        self.failed += 1
        setter = getattr(self.display, "set_postfix_str", None)
        if setter is not None:
            setter(f"{self.failed} failed", refresh=False)


class _Counter:
    """A counter in this process (``-j 1``); a pool shares a ``multiprocessing.Value``."""

    value = 0

    def add(self) -> None:
        self.value += 1
