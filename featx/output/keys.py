"""The key columns featx writes, declared once: their order and their types.

A row's key says what the row covers: an image (``path``), a frame of a video
(``frame``, ``time``), a box (``x``, ``y``, ``w``, ``h``), a time segment
(``segment``, ``label``), a track (``track``), and, for pooled rows, the
stretch pooled (``window``, ``start``, ``end``, ``frames``; ``regions``: the boxes pooled into
one row per picture).  Sinks write the
key columns a run gives them in that run's order; readers, the Parquet schema
and the CSV header parser take the types from here.
"""
from __future__ import annotations

from typing import Any

from ..names import unescape_name

#: Every key column featx writes, with its type: ``name`` (text written with
#: featx's escape, :mod:`featx.names`), ``int`` or ``float`` (seconds).
KEY_TYPES: dict[str, str] = {
    "path": "name",
    "segment": "int",
    "label": "name",
    "track": "int",
    "window": "int",
    "frame": "int",
    "time": "float",
    "x": "int",
    "y": "int",
    "w": "int",
    "h": "int",
    "start": "float",
    "end": "float",
    "frames": "int",
    "regions": "int",
}

#: The key columns in the order featx writes them where several apply.
KEY_COLUMNS: tuple[str, ...] = tuple(KEY_TYPES)


def key_type(column: str) -> str:
    """``name``, ``int`` or ``float`` (a column featx does not know is text: ``name``)."""
    return KEY_TYPES.get(column, "name")


def parse_key(name: str, text: str) -> Any:
    """A key column's value as featx writes it in text, back to what the run had."""
    if text == "":
        return None
    t = key_type(name)
    if t == "int":
        return int(text)
    if t == "float":
        return float(text)
    if name in KEY_TYPES:
        return unescape_name(text)
    return text
