"""File names in what featx writes: text files that stay valid UTF-8, messages that
cannot be forged.

POSIX file names are bytes; Python holds a name that is not UTF-8 with each
undecodable byte as a lone surrogate (``os.fsdecode``, "surrogateescape").  featx's
state keeps the exact bytes; every text file featx writes (index files, CSV outputs,
detect's box lists, sidecar JSON) holds names through one documented, reversible escape:

* a byte that is not part of valid UTF-8 is written ``\\xNN`` (two lowercase hex digits);
* a backslash is written ``\\\\`` (doubled), so that a name that itself holds ``\\x41``
  reads back as it was.

Every other character is written as it is (UTF-8).  Names without a backslash or a bad
byte - nearly all - are unchanged.  :func:`unescape_name` reverses it, and is lenient: a
backslash followed by anything else stays a backslash (a hand-written list of Windows-like
names still reads).  Where featx reads its own files by name (``--regions`` lists) it
unescapes; files copied record by record (merge, compaction) keep their escaped text.

In messages, :func:`quote_name` leaves a printable name as it is and quotes any other
in the shell's ``$'...'`` form (``$'x\\nfeatx: 99 processed.jpg'``, ``$'esc\\x1b[31m.jpg'``,
``$'caf\\xe9.png'``): a crafted name cannot start a line of its own or colour the terminal,
and the quoted form pastes back into bash.
"""
from __future__ import annotations

import re

_SURROGATE = re.compile("[\\\\\udc80-\udcff]")
_ESCAPED = re.compile(r"\\(\\|x[0-9a-fA-F]{2})")


def _esc(m: re.Match) -> str:
    c = m.group()
    return "\\\\" if c == "\\" else "\\x%02x" % (ord(c) - 0xDC00)


def escape_name(name: str) -> str:
    """``name`` as valid UTF-8 text: undecodable bytes (surrogates) as ``\\xNN``, ``\\`` as
    ``\\\\``; anything else as it is."""
    if "\\" not in name and name.isascii():
        return name
    return _SURROGATE.sub(_esc, name)


def _unesc(m: re.Match) -> str:
    g = m.group(1)
    if g == "\\":
        return "\\"
    b = int(g[1:], 16)
    return chr(0xDC00 + b) if b >= 0x80 else chr(b)


def unescape_name(text: str) -> str:
    """The name (with undecodable bytes as surrogates, as ``os.fsdecode`` gives them)
    that :func:`escape_name` wrote as ``text``."""
    if "\\" not in text:
        return text
    return _ESCAPED.sub(_unesc, text)


def utf8_text(text: str) -> str:
    """Any other text featx writes (a failure reason, a command line): undecodable bytes as
    ``\\xNN``, nothing else changed (for reading, not for reading back)."""
    if text.isascii():
        return text
    return re.sub("[\udc80-\udcff]", lambda m: "\\x%02x" % (ord(m.group()) - 0xDC00), text)


_SHELL = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\", "'": "\\'"}


def quote_name(name: str) -> str:
    """``name`` for a message: as it is when every character is printable, else quoted as
    ``$'...'`` with control characters, undecodable bytes (``\\xNN``) and other
    unprintable characters (``\\uNNNN``) escaped."""
    if name.isprintable():
        return name
    out = []
    for c in name:
        if c in _SHELL:
            out.append(_SHELL[c])
        elif 0xDC80 <= ord(c) <= 0xDCFF:
            out.append("\\x%02x" % (ord(c) - 0xDC00))
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x100:
            out.append("\\x%02x" % ord(c))
        elif ord(c) < 0x10000:
            out.append("\\u%04x" % ord(c))
        else:
            out.append("\\U%08x" % ord(c))
    return "$'" + "".join(out) + "'"


def printable(text: str) -> str:
    """A message part that may hold names (a failure reason): every unprintable character
    escaped as in :func:`quote_name`, without the quotes."""
    if text.isprintable():
        return text
    q = quote_name(text)
    return q[2:-1].replace("\\'", "'").replace("\\\\", "\\") if q.startswith("$'") else q
