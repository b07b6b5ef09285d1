"""``featx duplicates OUTPUT``: groups of near-duplicate (or byte-identical) inputs."""
from __future__ import annotations

import sys

import click

from ..errors import FeatxError, UsageError
from .options import CONTEXT
from .report import _fail, _say


@click.command("duplicates", context_settings=CONTEXT,
               short_help="Groups of near-duplicate rows of an output (or byte-identical inputs).")
@click.argument("output")
@click.option("--threshold", type=click.FloatRange(0), default=None, metavar="T",
              help="Largest distance between two duplicates (default measured on edited photos for the "
                   "built-in extractors' own metrics: cnn 0.3, hog 0.2, gradients 0.04; others need one).")
@click.option("--metric", default=None, metavar="METRIC",
              help="cosine, l2 or hellinger (default: the extractor's own, as featx similar).")
@click.option("--exact", "same_bytes", is_flag=True,
              help="Group the output's inputs that have the same bytes instead (size, then hash; "
                   "no features used).")
@click.option("--keep", type=click.Choice(["first", "largest", "oldest"]), default=None,
              help="Print only what would be removed, keeping in each group the first row, the largest "
                   "file or the oldest (modification time). Nothing is ever deleted.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV `group,path` (and key columns; `action` with --keep).")
@click.option("--approximate", is_flag=True, help="Use the approximate index (featx[ann]) at any size.")
@click.option("-q", "--quiet", is_flag=True, help="No messages on stderr but errors.")
@click.pass_context
def duplicates_cmd(ctx: click.Context, output: str, threshold: float | None, metric: str | None, same_bytes: bool,
                   keep: str | None, as_csv: bool, approximate: bool, quiet: bool) -> None:
    """Groups of near-duplicates among the rows of OUTPUT: rows within --threshold of each
    other, joined transitively (connected components), printed one group per line
    (tab-separated names) or as CSV `group,path`.  With --keep, only what would be removed
    is printed (nothing is deleted).  With --exact, the inputs whose files have the same
    bytes, without looking at the features.

    \b
    Examples:
      featx duplicates cnn.npy
      featx duplicates cnn.npy --keep largest > remove.txt
      featx duplicates hog.npy --exact --csv
    """
    from .. import duplicates as dup
    from ..neighbors import default_metric
    from ..output.sinkbase import csv_line, key_text, to_bytes
    from ..vectors import load

    say = (lambda m: None) if quiet else _say
    try:
        vec = load(output)
        if vec.keys is None and (same_bytes or keep in ("largest", "oldest")):
            raise UsageError(f"{output} is a plain matrix: its rows name no files",
                             "use --keep first, or an output with an index")
        if same_bytes:
            paths = list(dict.fromkeys(k.get("path") for k in vec.keys if k.get("path")))
            found = dup.exact_groups(paths)
            cols: tuple[str, ...] = ("path",)
            keys = [{"path": p} for p in paths]
            names = paths
        else:
            metric = metric or default_metric(vec.extractor)
            from ..neighbors import check_metric

            check_metric(metric)
            if threshold is None:
                threshold = dup.default_threshold(vec.extractor, metric)
                if threshold is None:
                    what = f"{vec.extractor} vectors" if vec.extractor else "a plain matrix"
                    raise UsageError(f"no measured default --threshold for {what} under the {metric} metric",
                                     "pass --threshold T (a distance: `featx similar` shows the distances)")
            found = dup.near_groups(vec, metric, threshold, mode="approximate" if approximate else "auto", say=say)
            cols = vec.key_columns
            keys = [vec.key(i) for i in range(len(vec))]
            names = [str(k.get("path", "")) for k in keys]
        out = sys.stdout.buffer
        if as_csv:
            out.write(to_bytes(csv_line(["group", *cols] + (["action"] if keep else []))))
        removed = 0
        for g, members in enumerate(found, 1):
            kept, gone = dup.to_remove(members, names, keep) if keep else (None, [])
            if keep:
                same = {names[kept]}   # frames of a kept video: its file is not removed
                gone = [i for i in gone if names[i] not in same]
                removed += len(gone)
            if as_csv:
                for i in members:
                    act = ([] if not keep else ["keep" if i == kept else "remove" if i in gone else "keep"])
                    out.write(to_bytes(csv_line([str(g), *key_text(keys[i], cols), *act])))
            elif keep:
                for p in dict.fromkeys(names[i] for i in gone):
                    out.write(to_bytes(csv_line(key_text({"path": p}, ["path"]))))
            else:
                out.write(to_bytes("\t".join(",".join(key_text(keys[i], cols)) for i in members) + "\n"))
        out.flush()
    except FeatxError as exc:
        _fail(exc, ctx)
    rows = sum(len(g) for g in found)
    what = "inputs with the same bytes" if same_bytes else f"near-duplicate rows ({metric} <= {threshold:g})"
    say(f"{len(found)} group(s), {rows} {what}" + (f"; {removed} would be removed (--keep {keep}; nothing deleted)"
                                                   if keep else ""))
