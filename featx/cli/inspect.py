"""``featx inspect OUTPUT``: what an output is, from its files, sidecar and state."""
from __future__ import annotations

import click

from ..errors import FeatxError
from .options import CONTEXT
from .report import _fail


@click.command("inspect", context_settings=CONTEXT,
               short_help="Say what an output holds: extractor, rows, inputs, failures, state.")
@click.argument("output")
@click.option("--json", "as_json", is_flag=True, help="Print it as JSON (for scripts).")
@click.pass_context
def inspect_cmd(ctx: click.Context, output: str, as_json: bool) -> None:
    """Say what OUTPUT is: its extractor and every parameter, the vector length and the
    names of its columns, rows and key columns, the inputs processed, failed (with the
    reasons) and disappeared, the status and time of the last run, the versions of featx
    and its libraries, and whether the files agree with the state's last commit.

    Any format (.npy with its index, .csv, an npy-dir folder, .parquet).  Only the
    output's own files are read (its sidecar OUTPUT.featx.json and its hidden state):
    it works on a copy on another machine, and says what it cannot know without them.

    \b
    Examples:
      featx inspect hog.npy
      featx inspect feats/ --json
    """
    from ..inspect import inspect_output, render, to_json

    try:
        info = inspect_output(output)
    except FeatxError as exc:
        _fail(exc, ctx)
    except OSError as exc:
        _fail(FeatxError(f"cannot read {output}: {exc.strerror or exc}"), ctx)
    click.echo(to_json(info) if as_json else render(info))
