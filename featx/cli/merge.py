"""``featx merge``: one output from the outputs of ``--shard I/N`` runs."""
from __future__ import annotations

import click

from ..errors import FeatxError
from .report import _fail, _say


@click.command("merge")
@click.argument("output")
@click.argument("parts", nargs=-1, required=True)
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.pass_context
def merge_cmd(ctx: click.Context, output: str, parts: tuple[str, ...], overwrite: bool) -> None:
    """Merge the outputs of `featx extract ... --shard I/N` runs into OUTPUT.

    Verified: the shards must come from one command, cover 1..N exactly once,
    be complete and share no input.  Rows are ordered by input path.

    \b
    Examples:
      featx extract hog photos/ -o hog-1.npy --resize 256x256 --shard 1/2
      featx extract hog photos/ -o hog-2.npy --resize 256x256 --shard 2/2
      featx merge hog.npy hog-1.npy hog-2.npy
    """
    from ..output.merge import merge

    try:
        info = merge(output, parts, overwrite=overwrite)
    except FeatxError as exc:
        _fail(exc, ctx)
    _say(f"merged {len(parts)} shards -> {output} {tuple(info.get('shape') or ())}")

