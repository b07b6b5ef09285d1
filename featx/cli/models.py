"""``featx models``: the CNN models known and cached, and ``featx models fetch``."""
from __future__ import annotations

import click

from ..errors import FeatxError
from .options import CONTEXT
from .report import _fail, _say


@click.group("models", invoke_without_command=True, context_settings=CONTEXT)
@click.pass_context
def models_cmd(ctx: click.Context) -> None:
    """CNN models: list the known and cached ones (default), or fetch one.

    \b
    Examples:
      featx models                                 known and cached models
      featx models fetch efficientnet-lite0        bundled: nothing to download
      featx extract cnn photos/ -o emb.npy --model efficientnet-lite0
    """
    if ctx.invoked_subcommand is not None:
        return
    from ..extractors.cnn import models

    for m in models.list_models():
        if m["available"] and models.bundled_path(m["name"]) is not None:
            state = "bundled (installed with featx)"
        else:
            state = "available" if m["available"] else "not cached (featx models fetch " + m["name"] + ")"
        click.echo(f"{m['name']:<22} {state}")
        if m.get("description"):
            click.echo(f"  {m['description']}")
        if m.get("path"):
            click.echo(f"  {m['path']}")
        click.echo(f"  sha256 {m['sha256']}" + (f"  licence {m['license']}" if m.get("license") else ""))


@models_cmd.command("fetch", context_settings=CONTEXT)
@click.argument("name")
@click.option("--url", default=None, help="Where to download from (required for a model featx does not know).")
@click.option("--sha256", default=None, help="Expected SHA-256 of the file (required with --url for a new name).")
@click.pass_context
def models_fetch(ctx: click.Context, name: str, url: str | None, sha256: str | None) -> None:
    """Download a model into the cache; refused (nothing cached) unless its SHA-256 matches.
    A model featx knows needs only its NAME; another needs --url and --sha256, and is then
    used as `--model NAME`.  The bundled model is never downloaded.
    """
    from ..extractors.cnn import models

    bundled = models.bundled_path(name)
    if bundled is not None and url is None:
        _say(f"{name} is bundled: its weights are installed with featx ({bundled}); nothing to download")
        return
    try:
        path = models.fetch(name, url, sha256)
    except FeatxError as exc:
        _fail(exc, ctx)
    _say(f"{name}: {path}")

