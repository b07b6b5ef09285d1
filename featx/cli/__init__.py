"""The ``featx`` command line: a thin click shell over the library.

One module per command (:mod:`.extract` with ``a+b`` and ``run``, :mod:`.info`,
:mod:`.show`, :mod:`.detect`, :mod:`.codebook`, :mod:`.merge`, :mod:`.models`,
:mod:`.list`); :mod:`.options` holds what they share (option types, shared options,
the ``--config`` loader); :mod:`.main` the group and the entry point.  Nothing in the
library imports this package.
"""
from .main import cli, console, main

__all__ = ["cli", "console", "main"]
