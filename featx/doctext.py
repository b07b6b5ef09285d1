"""Docstrings as plain text for the terminal (``featx info``).

Extractor docstrings are written in the reST/numpydoc style of the library's
documentation.  At a terminal the markup is noise, so :func:`plain` removes it:

* ``literal`` becomes `literal`; a literal that names a declared parameter
  becomes its option (``cell_size`` -> `--cell-size`, ``channels=gray`` ->
  `--channels gray`), the spelling a command-line user types;
* roles (:func:`skimage.feature.hog`) become `skimage.feature.hog`;
* *emphasis* and **strong** lose their stars (outside literals only);
* numpydoc section headings (``Notes`` over a line of dashes) become
  ``Notes:`` with the underline dropped;
* the common indentation is removed (relative indentation is kept).
"""
from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

_UNDERLINE = re.compile(r"^\s*([-=~^\"'`#*+])\1{2,}\s*$")
_LITERAL = re.compile(r"``(.+?)``", re.S)
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`]+)`")
_LINK = re.compile(r"`([^`<]+?)(?:\s*<[^>]*>)?`__?")
_STRONG = re.compile(r"(?<![\w*])\*\*(\S(?:[^*\n]*?\S)?)\*\*(?![\w*])")
_EMPH = re.compile(r"(?<![\w*])\*(\S(?:[^*\n]*?\S)?)\*(?![\w*])")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\S+)$")


def _option(name: str) -> str:
    return "--" + name.replace("_", "-")


def _literal(text: str, params: set[str]) -> str:
    """A literal naming a parameter is shown as its option; ``params`` holds only the
    names that are not also a value of some parameter (haar's ``window`` is a
    parameter and a mode: left as it is)."""
    if text in params:
        return f"`{_option(text)}`"
    m = _ASSIGN.match(text)
    if m and m.group(1) in params:
        value = m.group(2).strip("'\"")
        return f"`{_option(m.group(1))} {value}`"
    return f"`{text}`"


def _inline(line: str, params: set[str]) -> str:
    """Markup of one line of text (literals are protected from the emphasis rules)."""
    out = []
    pos = 0
    for m in _LITERAL.finditer(line):
        out.append(_prose(line[pos:m.start()]))
        out.append(_literal(m.group(1), params))
        pos = m.end()
    out.append(_prose(line[pos:]))
    return "".join(out)


def _prose(text: str) -> str:
    text = _ROLE.sub(lambda m: "`" + (m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2)) + "`", text)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = _STRONG.sub(lambda m: m.group(1), text)
    return _EMPH.sub(lambda m: m.group(1), text)


def plain(doc: str | None, params: Iterable[str] = (), values: Iterable[str] = ()) -> str:
    """``doc`` (a docstring) as plain text; ``params`` are the names of declared
    parameters, shown as the options that set them, except those that are also
    one of ``values`` (the choices of some parameter), which stay words."""
    names = set(params) - {str(v) for v in values}
    lines = inspect.cleandoc(doc or "").splitlines()
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(nxt) and len(nxt.strip()) >= len(line.strip()) - 1 \
                and not _UNDERLINE.match(line):
            out.append(line.strip().rstrip(":") + ":")
            i += 2
            continue
        out.append(line.rstrip())
        i += 1
    return _inline("\n".join(out), names).strip("\n")


def value_text(v: Any) -> str:
    """A parameter or option value as a user writes it: ``4x4``, ``on``/``off``, ``not set``."""
    if v is None:
        return "not set"
    if isinstance(v, bool):
        return "on" if v else "off"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    if isinstance(v, dict):
        return ", ".join(f"{k}={value_text(x)}" for k, x in v.items()) or "none"
    return str(v)
