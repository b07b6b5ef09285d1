"""``featx report OUTPUT``: one self-contained HTML page that shows an output.

(``report.py`` beside it is how the CLI prints its messages; this is the command.)"""
from __future__ import annotations

import click

from ..errors import FeatxError
from .options import CONTEXT
from .report import _fail, _say


@click.command("report", context_settings=CONTEXT,
               short_help="Write one offline HTML page to look at an output: map, neighbours, duplicates, videos.")
@click.argument("output")
@click.option("-o", "--output", "dest", default=None, metavar="HTML",
              help="The page to write (default: OUTPUT.report.html beside the output; - for stdout).")
@click.option("-k", "--k", "k", type=click.IntRange(min=1, max=100), default=10, show_default=True,
              help="Nearest neighbours listed per row.")
@click.option("--max-points", type=click.IntRange(min=1, max=50000), default=2000, show_default=True,
              help="Rows drawn on the map and given a thumbnail (a uniform sample when the output has more).")
@click.option("--metric", type=click.Choice(["cosine", "l2", "hellinger"]), default=None,
              help="Distance between vectors (default: the extractor's own, as featx similar uses).")
@click.option("--threshold", type=click.FloatRange(min=0), default=None,
              help="Near-duplicate distance (default: featx duplicates' measured default for the extractor "
                   "and metric; where it has none, identical vectors only).")
@click.option("--map", "projection", type=click.Choice(["pca", "umap"]), default="pca", show_default=True,
              help="How the map is made: PCA (numpy), or UMAP when umap-learn is installed.")
@click.option("--cut-z", type=click.FloatRange(min=0, min_open=True), default=6.0, show_default=True,
              help="Video timelines: a frame whose distance to the previous one has a robust z-score above "
                   "this starts a new shot.")
@click.option("--no-thumbnails", is_flag=True, help="Do not read the inputs for thumbnails.")
@click.option("-q", "--quiet", is_flag=True, help="No messages on stderr but errors.")
@click.option("--overwrite", is_flag=True, help="Replace a file that featx did not write (never the output's "
                                                 "own files or an input).")
@click.pass_context
def report_cmd(ctx: click.Context, output: str, dest: str | None, k: int, max_points: int, metric: str | None,
               threshold: float | None, projection: str, cut_z: float, no_thumbnails: bool, quiet: bool,
               overwrite: bool) -> None:
    """Write one HTML page that shows OUTPUT (any featx output: .npy, .csv, a folder,
    .parquet; images, video frames, regions): the run (extractor, parameters, counts,
    status, timing, versions, every failure and its reason), a map of the vectors drawn
    with thumbnails (hover and click: path, keys, nearest neighbours), near-duplicate
    groups and outliers, and for videos a timeline of the change between frames with
    the shot boundaries marked.

    The page is one file that opens offline in any browser: no server, nothing loaded
    from the network; thumbnails are small JPEGs inside it, made from the inputs when
    they are still there.  Large outputs are sampled for the map (--max-points).

    \b
    Examples:
      featx report hog.npy                    # -> hog.npy.report.html
      featx report clip.csv -o clip.html
    """
    from ..report import build_report

    try:
        done = build_report(output, dest, overwrite=overwrite, max_points=max_points, k=k, metric=metric,
                            threshold=threshold, projection=projection, thumbnails=not no_thumbnails,
                            cut_z=cut_z)
    except FeatxError as exc:
        _fail(exc, ctx)
    except OSError as exc:
        _fail(FeatxError(f"cannot write the report: {exc.strerror or exc}"), ctx)
    if done.get("html") is not None:   # -o -: the page on stdout
        import sys

        sys.stdout.buffer.write(done["html"])
        sys.stdout.flush()
    if not done["drawn"]:
        drawn = f"{done['rows']:,} rows, no map"
    elif done["drawn"] < done["rows"]:
        drawn = f"{done['drawn']:,} of {done['rows']:,} rows drawn"
    else:
        drawn = f"{done['rows']:,} rows"
    if quiet:
        return
    where = "the page to stdout" if done.get("html") is not None else done["path"]
    _say(f"wrote {where} ({done['bytes'] / 1e6:.1f} MB; {drawn}, {done['thumbnails']:,} thumbnails) "
         f"in {done['seconds']:.1f} s")
