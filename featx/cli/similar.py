"""``featx similar OUTPUT``: the nearest rows of each row (or of query files), as CSV."""
from __future__ import annotations

import sys

import click

from ..errors import FeatxError
from .options import CONTEXT
from .report import _fail, _say


@click.command("similar", context_settings=CONTEXT,
               short_help="The k nearest rows of every row of an output (or of --query files), as CSV.")
@click.argument("output")
@click.option("-k", "--k", "k", type=click.IntRange(1), default=5, show_default=True,
              help="Neighbours per row.")
@click.option("--metric", default=None, metavar="METRIC",
              help="cosine, l2 or hellinger (default: the extractor's own: cosine for cnn, "
                   "hellinger for hog and gradients, l2 for the rest and for a plain matrix).")
@click.option("--query", "queries", multiple=True, metavar="FILE",
              help="Find the neighbours of FILE instead (repeatable), extracted with OUTPUT's recorded "
                   "extractor, parameters and options.")
@click.option("-o", "--output", "dest", default="-", metavar="FILE.csv",
              help="Write the CSV there (written whole, then renamed) instead of stdout.")
@click.option("--exact/--approximate", "exact", default=None,
              help="Force the exact search or the approximate index (featx[ann]); default: exact up to "
                   "20,000 rows, approximate above.")
@click.option("-q", "--quiet", is_flag=True, help="No messages on stderr but errors.")
@click.pass_context
def similar_cmd(ctx: click.Context, output: str, k: int, metric: str | None, queries: tuple[str, ...],
                dest: str, exact: bool | None, quiet: bool) -> None:
    """The K nearest rows of each row of OUTPUT (never itself), or of each --query FILE,
    as CSV: `path,neighbor,rank,distance` (rank 1 is the nearest), with the key columns
    of frames and regions (`frame`, ..., `neighbor_frame`, ...).

    OUTPUT is any featx output (.npy with its index, .csv, npy-dir folder, .parquet) or a
    plain (N, D) .npy matrix (rows named by number: `row,neighbor,...`).  The search is
    exact, in blocks, up to 20,000 rows; above, an approximate index (HNSW, `pip install
    'featx[ann]'`) kept beside the output as .NAME.featx-ann and grown with the output;
    its recall@K, measured against the exact search on a sample, is printed.

    \b
    Examples:
      featx similar cnn.npy --k 5
      featx similar cnn.npy --query new.jpg --k 3
      featx similar hog.csv --metric l2 -o neighbours.csv
    """
    from ..similar import search, write_csv
    from ..vectors import extract_like, load

    say = (lambda m: None) if quiet else _say
    mode = "auto" if exact is None else ("exact" if exact else "approximate")
    try:
        vec = load(output)
        q = None
        qcols = vec.key_columns
        if queries:
            qv, qk = extract_like(vec, list(queries))
            q = (qv, qk)
            qcols = tuple(c for c in ("path", "frame", "time") if any(kk.get(c) is not None for kk in qk)) or ("path",)
        ans = search(vec, k, metric, queries=q, mode=mode, say=say)
        if dest == "-":
            out = sys.stdout.buffer
            n = write_csv(out.write, vec, ans, qcols)
            out.flush()
        else:
            from ..output.atomic import write_atomic

            written: list[int] = []
            write_atomic(dest, lambda fh: written.append(write_csv(fh.write, vec, ans, qcols)))
            n = written[0]
    except FeatxError as exc:
        _fail(exc, ctx)
    if ans.approximate and ans.recall is not None:
        say(f"approximate search: recall@{k} {ans.recall:.3f} against the exact search on {ans.sampled} sampled "
            f"{'queries' if queries else 'rows'}")
    if dest != "-":
        say(f"wrote {n} neighbour rows ({ans.metric}) to {dest}")
