"""``featx list``: the installed extractors."""
from __future__ import annotations

import click


@click.command("list")
def list_cmd() -> None:
    """List the installed extractors (name, summary, providing package).

    \b
    Examples:
      featx list
      featx info hog            one extractor in detail
    """
    from .. import registry

    infos = registry.discover()
    width = max([len(i.name) for i in infos] + [4])
    for i in infos:
        if i.ok:
            click.echo(f"{i.name:<{width}}  {i.cls.summary}  [{i.package}]")
        else:
            click.echo(f"{i.name:<{width}}  BROKEN: {i.error}  [{i.package}: {i.target}]")

