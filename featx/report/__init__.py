"""``featx report``: one self-contained HTML page that shows what an output holds.

:func:`build_report` reads any featx output (every format; images, video frames,
regions) and writes one HTML file that opens offline in any browser: the run
(extractor, parameters, counts, status, timing, versions, every failure with its
reason), a 2-D map of the vectors drawn with thumbnails (hover and click show the
path, the keys and the nearest neighbours), near-duplicate groups and outliers, and
for videos a timeline of how much each frame differs from the previous one with the
shot boundaries marked.  One job per module: :mod:`.gather` (reading, sampling,
neighbours, duplicates, outliers, frame distances), :mod:`.project` (the map),
:mod:`.thumbs` (thumbnails), :mod:`.timeline` (video timelines), :mod:`.page` (the HTML).

Large outputs are sampled for drawing (at most ``max_points`` rows, said on the page);
the neighbours of the drawn rows are searched among all rows.
"""
from __future__ import annotations

import datetime as _dt
import os
import time
from typing import Any

import numpy as np

from ..errors import UsageError
from . import page as _page

__all__ = ["build_report", "default_report_path", "check_report_path"]

#: Default limits: rows drawn on the map (and given a thumbnail), neighbours per row.
MAX_POINTS = 2000
K = 10


def default_report_path(output: str) -> str:
    """``hog.npy`` -> ``hog.npy.report.html``; ``feats/`` -> ``feats.report.html``."""
    return (output.rstrip("/" + os.sep) or output) + ".report.html"


def _is_report(path: str) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(_page.MARK)) == _page.MARK.encode()
    except OSError:
        return False


def check_report_path(dest: str, output: str, *, overwrite: bool) -> None:
    """The page may be written at ``dest``: it is none of the output's own files (data,
    index, sidecar, state), nor anything that is not a regular file, and replaces no file
    featx did not write without ``overwrite`` (a report featx wrote is replaced)."""
    from ..output import reader as rd
    from ..output.atomic import check_replaceable, same_file

    folder = os.path.dirname(os.path.abspath(dest))
    if not os.path.isdir(folder):
        raise UsageError(f"the folder of {dest} does not exist", "create it first; nothing was written")
    if os.path.exists(dest):
        trimmed = output.rstrip("/" + os.sep) or output
        own = [trimmed, rd.sidecar_path(output)]
        try:
            with rd.open_output(output) as r:
                own += r.files() + [r.state_path]
                if r.format == "npy":
                    own.append(r.index_path)
        except Exception:  # noqa: BLE001 - the output itself is checked (and reported) later
            pass
        if same_file(dest, own) is not None:
            raise UsageError(f"{dest} is a file of the output {output}; featx report will not replace it",
                             "name the page apart (-o report.html); nothing was written")
    check_replaceable(dest, "report", overwrite=overwrite, ours=_is_report, own="name a page of its own (-o)")


def _not_an_input(dest: str, keys: list[dict]) -> None:
    """With --overwrite too: the page is never written over an input of the output."""
    from ..output.atomic import same_file

    base = os.path.basename(dest)   # (only inputs of the same name can be it: no stat per row)
    if same_file(dest, [str(k.get("path")) for k in keys if os.path.basename(str(k.get("path"))) == base]):
        raise UsageError(f"{dest} is an input of the output; featx report will not replace it",
                         "name the page apart (-o report.html); nothing was written")


def build_report(output: str, dest: str | None = None, *, overwrite: bool = False, max_points: int = MAX_POINTS,
                 k: int = K, metric: str | None = None, threshold: float | None = None,
                 projection: str = "pca", thumbnails: bool = True, cut_z: float | None = None,
                 seed: int = 0) -> dict[str, Any]:
    """Write the report of ``output`` to ``dest`` (default :func:`default_report_path`;
    ``"-"``: write nothing and return the page as ``html``, bytes); returns what was done:
    ``path``, ``html``, ``bytes``, ``rows``, ``drawn``, ``thumbnails``, ``seconds``, ``notes``, ``metric``.  Raises :class:`~featx.errors.FeatxError` (a usage error
    before anything is written) where the output cannot be read or the page not written."""
    from .. import __version__
    from ..inspect import inspect_output
    from ..output.atomic import write_atomic
    from . import gather as ga
    from . import thumbs as th
    from .. import shots
    from . import timeline as tl
    from .project import project

    t0 = time.perf_counter()
    if max_points < 1:
        raise UsageError(f"--max-points must be at least 1, not {max_points}")
    if k < 1:
        raise UsageError(f"-k must be at least 1, not {k}")
    z_cut = shots.Z_THRESHOLD if cut_z is None else float(cut_z)
    dest = dest or default_report_path(output)
    to_stdout = dest == "-"
    if not to_stdout:
        check_report_path(dest, output, overwrite=overwrite)
    info = inspect_output(output)
    ext = (info.get("extractor") or {}).get("name")
    g = ga.gather(output, max_points=max_points, k=k, metric=metric, threshold=threshold, seed=seed,
                  extractor=ext)
    if not to_stdout:
        _not_an_input(dest, g.keys)
    notes: list[str] = []
    map_notes: list[str] = []
    drawn = g.drawn
    sampled = len(drawn) < g.rows
    coords = np.zeros((0, 2))
    if g.why_no_map is None:
        from ..neighbors import prepare

        coords, how = project(prepare(g.vectors, g.metric), g.metric, projection, seed)
        map_notes.append(how + ".")
        if sampled:
            map_notes.append(f"{len(drawn):,} of {g.rows:,} rows are drawn: a uniform random sample (seed {seed}; "
                             f"--max-points {max_points} draws more or fewer). Their neighbours are searched "
                             "among all rows.")
        else:
            map_notes.append(f"All {g.rows:,} rows are drawn.")
        map_notes.append(f"Nearest neighbours: the {g.k} nearest rows by {g.metric} distance, exact. "
                         + (g.metric_note or ""))
    # which rows get a thumbnail: the drawn ones, and the frames shown under timelines
    videos = sorted(g.diffs.items(), key=lambda kv: kv[0])
    shown_videos = videos[:tl.MAX_TIMELINES]
    strips = []
    for name, (rows, frames, d) in shown_videos:
        cuts = shots.boundaries(d, z_cut)
        strips.append((name, rows, frames, d, cuts, tl.thumb_positions(len(rows), cuts)))
    want_rows = list(drawn.tolist())
    for _, rows, _, _, _, pos in strips:
        want_rows += [int(rows[p]) for p in pos]
    want_rows = sorted(set(want_rows))
    t1 = time.perf_counter()
    thumbs, idx = th.make([g.keys[r] for r in want_rows], thumbnails)
    thumb_of = dict(zip(want_rows, idx))
    t_thumbs = time.perf_counter() - t1
    no_thumb = "; ".join(f"{n} without a thumbnail: {why}" for why, n in thumbs.missing.items())
    if thumbs.missing:
        notes.append("Thumbnails: " + no_thumb + ". The page works without them.")
    # what the script needs
    labels: dict[str, Any] = {}

    base = ga.common_folder(g.keys)

    def lab(row: int) -> str:
        """The row's full label for the script; returns its short one (inside ``base``) for captions."""
        key = g.keys[row]
        if str(row) not in labels:
            labels[str(row)] = {"l": ga.label(key), "t": thumb_of.get(row, -1),
                                "k": {c: (_page.quote_name(str(key.get(c))) if c == "path" else
                                          ("" if key.get(c) is None else str(key.get(c))))
                                      for c in g.key_columns}}
        return ga.label(key, base)

    points, nn = [], []
    for q, row in enumerate(drawn.tolist()):
        lab(row)
        score = float(g.outlier[q]) if g.outlier is not None and np.isfinite(g.outlier[q]) else None
        points.append([round(float(coords[q, 0]), 4), round(float(coords[q, 1]), 4), row,
                       thumb_of.get(row, -1), score])
        lst = []
        for j in range(g.k):
            r = int(g.neighbors[q, j])
            if r < 0:
                break
            lab(r)
            lst.append([r, round(float(g.distances[q, j]), 6)])
        nn.append(lst)
    ctx: dict[str, Any] = {"info": info, "output": output, "rows": g.rows, "metric": g.metric,
                           "made": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                           "version": __version__, "why_no_map": g.why_no_map, "map_notes": map_notes}
    # outliers and duplicates
    if g.why_no_map is None and g.k:
        order = [q for q in np.argsort(-np.nan_to_num(g.outlier, posinf=np.finfo(np.float32).max), kind="stable")
                 if np.isfinite(g.outlier[q])][:_page.OUTLIERS_SHOWN]
        ctx["outliers_html"] = _page.outliers_html(
            [(int(drawn[q]), thumb_of.get(int(drawn[q]), -1), lab(int(drawn[q])), float(g.outlier[q])) for q in order],
            g.k, sampled)
        scope = f"among the {len(drawn):,} drawn rows" if sampled else "among all rows"
        dnote = (f"Rows {scope} within {g.metric} distance {g.threshold:g} of another ({g.threshold_note}), "
                 "joined into groups (connected components). "
                 + ("featx duplicates OUTPUT finds them among all rows." if sampled else ""))
        ctx["duplicates_html"] = _page.duplicates_html(
            [[(r, thumb_of.get(r, -1), lab(r)) for r in grp] for grp in g.groups], dnote)
    # timelines
    vids = []
    for name, rows, frames, d, cuts, pos in strips:
        cutset = set(cuts.tolist())
        strip = [(int(rows[p]), thumb_of.get(int(rows[p]), -1), f"frame {int(frames[p])}" +
                  (" · cut" if p in cutset else ""), p in cutset) for p in pos]
        for p in pos:
            lab(int(rows[p]))
        vids.append({"name": name, "frames": len(rows), "svg": tl.svg(d, frames, cuts, z_cut),
                     "cut_frames": [int(frames[c]) for c in cuts], "strip": strip})
    if vids:
        tnote = (f"The {g.metric} distance between each frame's vector and the previous frame's. Red bars: shot "
                 f"boundaries, frames whose distance has a robust z-score above {z_cut:g} (median and MAD of the "
                 "video's own distances; --cut-z changes it); the dashed line is that threshold; outlined "
                 "thumbnails are the frames at a boundary.")
        if len(videos) > len(shown_videos):
            tnote += f" {len(shown_videos)} of {len(videos)} videos are shown."
        ctx["timelines_html"] = _page.timelines_html(vids, tnote)
    notes.insert(0, f"Read {g.rows:,} rows in {g.seconds.get('read', 0):.1f} s; neighbours in "
                    f"{g.seconds.get('neighbours', 0):.1f} s; {len(thumbs.uris):,} thumbnails in {t_thumbs:.1f} s "
                    f"({thumbs.bytes / 1e6:.1f} MB).")
    notes.append("This page is one file: its script, style, data and pictures are inside it, and it loads "
                 "nothing from anywhere (its Content-Security-Policy forbids it).")
    if base:
        notes.append(f"Names under pictures are relative to {_page.quote_name(base)}, the folder that holds "
                     "every input; the panel and the tooltips show whole paths.")
    ctx["notes"] = notes
    ctx["data"] = {"points": points, "nn": nn, "labels": labels, "thumbs": thumbs.uris, "k": g.k,
                   "metric": g.metric, "threshold": g.threshold if g.threshold is not None else 0,
                   "noThumb": ("no thumbnail: " + no_thumb) if thumbs.missing else "no thumbnail"}
    ctx["seconds"] = time.perf_counter() - t0
    text = _page.render(ctx)
    data = text.encode("utf-8", "backslashreplace")
    if not to_stdout:
        write_atomic(dest, data)
    return {"path": dest, "html": data if to_stdout else None, "bytes": len(data), "rows": g.rows, "drawn": len(drawn), "thumbnails": len(thumbs.uris),
            "seconds": time.perf_counter() - t0, "notes": notes, "metric": g.metric}
