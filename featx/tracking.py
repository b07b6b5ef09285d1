"""Linking the boxes of consecutive frames into tracks (``featx detect --track``).

Pure: boxes in, one track id per box out; no pixels, no files.  The method is
a greedy IoU tracker with a constant-velocity prediction and a gap allowance:

1. Each live track predicts where its box is in the new frame: its last box,
   moved by the track's velocity (the displacement of the box's centre per
   frame between its last two boxes; the size is kept) times the frames since
   it was last seen.  A track seen once does not move.
2. The intersection over union (IoU) of every predicted box with every box of
   the new frame is computed; the pairs with IoU >= ``min_iou`` are taken
   greedily, highest IoU first (ties: the older track, then the earlier box),
   each track and each box at most once.
3. A box left unmatched starts a new track.  A track left unmatched is missed
   in this frame; after more than ``max_gap`` consecutive missed frames it
   ends for good.

Track ids are numbered 0, 1, 2... in the order the tracks first appear (and,
within a frame, in the order of its boxes), so the same boxes always give the
same ids.  Frames are counted as they are given: with frame sampling
(``--fps``, ``--every``) a gap is counted in sampled frames.

Why greedy rather than an optimal assignment (the Hungarian method,
``scipy.optimize.linear_sum_assignment``): with a minimum IoU the two differ
only when one box is contested by two tracks and giving it to the better
match forces the other onto a worse box; for the few, mostly separate boxes a
detector gives per frame that is rare, and greedy matching is simpler to
explain and deterministic under ties.  The prediction is what keeps two
crossing boxes apart: each one is matched where its own motion takes it.

What it does not do: there is no appearance model, so a face that
disappears for longer than the gap (an occlusion, leaving the frame) comes
back as a new track (no re-identification); a box that splits into two
continues as one track and the other becomes a new one; two tracks that meet
and move on together may swap when their motion does not tell them apart.

Example
-------
>>> from featx.tracking import track_boxes
>>> frames = [[(10, 10, 20, 20)], [(12, 10, 20, 20), (80, 80, 20, 20)], [(14, 10, 20, 20)]]
>>> [ids.tolist() for ids in track_boxes(frames)]
[[0], [0, 1], [0]]
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

#: Defaults of :class:`IouTracker` (and of ``featx detect --track-iou/--track-gap``).
DEFAULT_MIN_IOU = 0.3
DEFAULT_MAX_GAP = 10


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of every box of ``a`` with every box of ``b``.

    Parameters
    ----------
    a : (M, 4) array-like
    b : (N, 4) array-like
        ``x, y, w, h`` per box.

    Returns
    -------
    iou : (M, N) ndarray of float64
        0 for boxes that do not overlap (or have no area).
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax0, ay0, ax1, ay1 = a[:, 0:1], a[:, 1:2], a[:, 0:1] + a[:, 2:3], a[:, 1:2] + a[:, 3:4]
    bx0, by0, bx1, by1 = b[:, 0], b[:, 1], b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.clip(np.minimum(ax1, bx1) - np.maximum(ax0, bx0), 0, None)
    ih = np.clip(np.minimum(ay1, by1) - np.maximum(ay0, by0), 0, None)
    inter = iw * ih
    union = (np.clip(a[:, 2:3], 0, None) * np.clip(a[:, 3:4], 0, None)
             + np.clip(b[:, 2], 0, None) * np.clip(b[:, 3], 0, None) - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


@dataclass
class _Track:
    id: int
    box: np.ndarray            # the last box seen, float64 x, y, w, h
    seen: int                  # the frame it was last seen in
    velocity: np.ndarray       # centre displacement per frame (dx, dy)

    def predicted(self, frame: int) -> np.ndarray:
        dx, dy = self.velocity * (frame - self.seen)
        return self.box + np.array([dx, dy, 0.0, 0.0])


class IouTracker:
    """Online greedy IoU tracker: call :meth:`update` with each frame's boxes, in order.

    Parameters
    ----------
    min_iou : float
        Smallest IoU between a track's predicted box and a box for the box to
        continue the track (0 < min_iou <= 1).
    max_gap : int
        Consecutive frames a track may be missed and still continue (0: a
        track ends at its first frame without a match).
    predict : bool
        Match against each track's constant-velocity prediction (True) or
        against its last box as it was (False).
    """

    def __init__(self, min_iou: float = DEFAULT_MIN_IOU, max_gap: int = DEFAULT_MAX_GAP,
                 predict: bool = True):
        if not 0.0 < float(min_iou) <= 1.0:
            raise ValueError(f"min_iou must be in (0, 1], got {min_iou}")
        if int(max_gap) < 0:
            raise ValueError(f"max_gap must be >= 0, got {max_gap}")
        self.min_iou = float(min_iou)
        self.max_gap = int(max_gap)
        self.predict = bool(predict)
        self.reset()

    def reset(self) -> None:
        """Forget every track: the next frame starts a new sequence, ids from 0."""
        self._tracks: list[_Track] = []
        self._frame = -1
        self._next_id = 0

    @property
    def frames(self) -> int:
        """Frames given so far."""
        return self._frame + 1

    def update(self, boxes: Sequence | np.ndarray) -> np.ndarray:
        """The track id of each box of the next frame.

        Parameters
        ----------
        boxes : (N, 4) array-like
            ``x, y, w, h`` per box (N may be 0: a frame where nothing was found).

        Returns
        -------
        ids : (N,) ndarray of int64
            The track of each box, in the order of ``boxes``.
        """
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        self._frame += 1
        t = self._frame
        # tracks missed for more than max_gap frames are over
        self._tracks = [tr for tr in self._tracks if t - tr.seen - 1 <= self.max_gap]
        ids = np.full(len(boxes), -1, dtype=np.int64)
        if self._tracks and len(boxes):
            pred = np.array([tr.predicted(t) if self.predict else tr.box for tr in self._tracks])
            iou = iou_matrix(pred, boxes)
            ti, bi = np.nonzero(iou >= self.min_iou)
            # highest IoU first; ties: the older track (lower index), then the earlier box
            order = np.lexsort((bi, ti, -iou[ti, bi]))
            used_t, used_b = set(), set()
            for k in order:
                i, j = int(ti[k]), int(bi[k])
                if i in used_t or j in used_b:
                    continue
                used_t.add(i)
                used_b.add(j)
                tr = self._tracks[i]
                ids[j] = tr.id
                step = (boxes[j][:2] + boxes[j][2:] / 2) - (tr.box[:2] + tr.box[2:] / 2)
                tr.velocity = step / (t - tr.seen)
                tr.box, tr.seen = boxes[j].copy(), t
        for j in range(len(boxes)):
            if ids[j] < 0:
                ids[j] = self._next_id
                self._tracks.append(_Track(self._next_id, boxes[j].copy(), t, np.zeros(2)))
                self._next_id += 1
        return ids


def track_boxes(frames: Iterable[Sequence | np.ndarray], min_iou: float = DEFAULT_MIN_IOU,
                max_gap: int = DEFAULT_MAX_GAP, predict: bool = True) -> list[np.ndarray]:
    """Track ids for the boxes of a sequence of frames (see :class:`IouTracker`).

    Parameters
    ----------
    frames : iterable of (N_t, 4) array-like
        The boxes (``x, y, w, h``) of each frame, in order.
    min_iou, max_gap, predict
        As :class:`IouTracker`.

    Returns
    -------
    ids : list of (N_t,) ndarray of int64
        One array per frame: the track of each of its boxes.
    """
    tracker = IouTracker(min_iou, max_gap, predict)
    return [tracker.update(b) for b in frames]


def id_switches(truth: Sequence[Sequence], ids: Sequence[Sequence]) -> int:
    """How many times a true identity changes track (the ID switches of the CLEAR MOT metrics,
    counted over the frames where the identity has a box).

    Parameters
    ----------
    truth : sequence of sequences
        Per frame, the true identity of each box (any hashable).
    ids : sequence of sequences
        Per frame, the track id a tracker gave each of the same boxes.
    """
    last: dict = {}
    n = 0
    for tf, idf in zip(truth, ids):
        for who, tid in zip(tf, idf):
            if who in last and last[who] != tid:
                n += 1
            last[who] = tid
    return n
