"""Where each item's file goes under an ``npy-dir`` output: the one place
that makes those names.

An item's *mirror* is its relative path under the output folder without the
suffix: the input's path (:func:`mirror_path`), plus ``/frame000012`` for a
video frame, ``/segment0003-LABEL/frame000012`` for a frame of a segment
(``--segments``) and ``.region-X-Y-W-H`` for a region (``.region-X-Y-W-H.track-N``
for a region of a track); its file is the mirror with
``.npy`` (``.npz`` for keypoints).
"""
from __future__ import annotations

import os


def mirror_path(path: str, base: str | None = None) -> str:
    """Where ``path``'s output goes under an output folder (relative, safe).

    Paths inside ``base`` (the output's own parent folder; the current
    folder if not given) keep their relative form (``photos/a/x.jpg``), so the
    layout does not depend on where featx is started; paths outside it go
    under ``_abs/`` followed by their absolute path without the leading
    separator.  Distinct input paths never share a mirror path, and no mirror
    path can leave the output folder (``..`` is resolved away before it is used).
    """
    ap = os.path.abspath(path)
    cwd = base if base is not None else os.getcwd()
    try:
        rel = os.path.relpath(ap, cwd)
    except ValueError:  # another drive on Windows
        rel = os.pardir
    if rel == os.curdir or rel == os.pardir or rel.startswith(os.pardir + os.sep) or os.path.isabs(rel):
        drive, tail = os.path.splitdrive(ap)
        rel = os.path.join("_abs", drive.replace(":", ""), tail.lstrip("\\/"))
    elif rel.split(os.sep, 1)[0] == "_abs":
        rel = os.path.join("_rel", rel)  # keep "_abs" free for outside paths
    return rel


def rebase_mirror(mirror: str, old: str | None, new: str) -> str:
    """A mirror path made by :func:`mirror_path` against the folder ``old``, made again
    against ``new`` (one run writing two ``npy-dir`` outputs in different folders)."""
    head, _, rest = mirror.partition(os.sep)
    if head == "_abs" and rest:
        path = os.sep + rest
    elif head == "_rel" and rest:
        path = os.path.join(old or os.getcwd(), rest)
    else:
        path = os.path.join(old or os.getcwd(), mirror)
    return mirror_path(path, new)


def frame_mirror(mirror: str, index: int) -> str:
    """The mirror of frame ``index`` of a video whose mirror is ``mirror``."""
    return os.path.join(mirror, "frame%06d" % index)


def region_mirror(mirror: str, x: int, y: int, w: int, h: int, track: int | None = None) -> str:
    """The mirror of the region ``x, y, w, h`` of the image (or frame) ``mirror``; a box of
    a track (``--regions`` with a file of ``featx detect --track``) ends in ``.track-N``."""
    if track is not None:
        return "%s.region-%d-%d-%d-%d.track-%d" % (mirror, x, y, w, h, track)
    return "%s.region-%d-%d-%d-%d" % (mirror, x, y, w, h)


def segment_mirror(mirror: str, segment: int, label: str | None = None) -> str:
    """The folder of segment ``segment`` (0-based, ``--segments``) of the video or frame
    folder ``mirror``: ``segment0003``, or ``segment0003-LABEL`` with the label
    %-encoded (every byte but letters, digits and ``_.-~``), so that any label makes
    one safe file name that reads back (:func:`parse_segment`).  Its frames go inside
    it as they would go inside ``mirror``."""
    import urllib.parse

    name = "segment%04d" % segment
    if label:
        name += "-" + urllib.parse.quote(label, safe="", errors="surrogateescape")
    return os.path.join(mirror, name)


def parse_segment(name: str) -> tuple[int, str | None] | None:
    """``(segment, label)`` of a folder name :func:`segment_mirror` made, else None."""
    import re
    import urllib.parse

    m = re.match(r"^segment(\d+)(?:-(.*))?$", name)
    if m is None:
        return None
    label = m.group(2)
    return int(m.group(1)), (urllib.parse.unquote(label, errors="surrogateescape") if label else None)


def frame_file(mirror: str, path: str) -> str:
    """The mirror of the frame file ``path`` of a frame folder whose mirror is ``mirror``."""
    return os.path.join(mirror, os.path.basename(path))


def pooled_mirror(mirror: str, key: dict) -> str:
    """The mirror of a pooled row (:mod:`featx.pooling`) of the input whose mirror is
    ``mirror``: a folder per level of its key, the last one its file: a video's
    ``pooled``, its ``window000003``, ``segment0002``, ``track0003``,
    ``segment0002/window000003``, a video frame's boxes ``frame000012/pooled``."""
    parts = []
    for col, fmt in POOLED_PARTS:
        if key.get(col) is not None:
            parts.append(fmt % int(key[col]))
    return os.path.join(mirror, *(parts or [POOLED_LEAF]))


#: The levels of a pooled row's name under its input's mirror (key column, name), in order.
POOLED_PARTS = (("frame", "frame%06d"), ("segment", "segment%04d"), ("track", "track%04d"),
                ("window", "window%06d"))

#: The file of a unit's one pooled row (no window, segment, track or frame in its key).
POOLED_LEAF = "pooled"


def file_name(mirror: str, keypoints: bool = False) -> str:
    """The file (relative to the output folder) of the item ``mirror``."""
    return mirror + (".npz" if keypoints else ".npy")


#: Suffixes of an item's file.
SUFFIXES = (".npy", ".npz")

#: What follows an image's mirror in the names of its regions' files.
REGION_INFIX = ".region-"


def expected_mirrors(inp) -> list[str] | None:
    """The mirror paths (under an ``npy-dir`` output) of the items ``inp`` (an
    :class:`~featx.inputs.Input`) gives, when
    they are known before decoding (images, regions, sequences); None for videos and
    frame folders, whose frames are only known once read."""
    if inp.boxes is not None:
        def track(b):
            return b[0] if len(b) == 7 else None
        if inp.kind == "video":
            return [region_mirror(frame_mirror(inp.mirror, b[-6]), *b[-4:], track(b)) for b in inp.boxes]
        return [region_mirror(inp.mirror, *b[-4:], track(b)) for b in inp.boxes]
    if inp.kind == "sequence":
        return list(inp.mirrors or ())
    if inp.kind == "image":
        return [inp.mirror]
    return None


def check_apart(sinks) -> None:
    """Refuse, before anything is written, an output whose files would lie inside another
    output's ``npy-dir`` folder (a recipe's ``feats/`` and ``feats/x.jpg.npy``): one would
    overwrite the other's files, and the next run would call them up to date."""
    from ..errors import OutputError

    folders = [(s, s.output.rstrip("/" + os.sep)) for s in sinks if s.persistent and s.format == "npy-dir"]
    for s, folder in folders:
        inside = folder + os.sep
        for other in sinks:
            if other is s or not other.persistent:
                continue
            names = [other.output.rstrip("/" + os.sep)] + [p for p in other.paths() + [
                other.state_path, other.lock_path, other.sidecar_path] if p]
            hit = next((p for p in names if p.startswith(inside)), None)
            if hit is not None:
                raise OutputError(f"the output {other.output} would write {hit}, inside the npy-dir output "
                                  f"{folder}/", "give each output a place of its own, outside the others' "
                                  "folders")
