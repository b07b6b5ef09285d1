"""Installed distributions' entry points and versions, read as :mod:`importlib.metadata`
reads them, without importing it.

Every ``featx`` command looks up its extractor (an entry point of the ``featx.extractors``
group) and a run's sidecar records a few libraries' versions.  :mod:`importlib.metadata`
answers both, but importing it costs 30-50 ms of a start-up of 0.3 s (``email``,
``zipfile``, ``csv``...).  For the usual layout -- folders on ``sys.path`` holding
``NAME-VERSION.dist-info`` (or ``.egg-info``) folders, and no import hook that brings
distributions of its own -- this module finds the same distributions in the same order
(``sys.path`` in order; within a folder, by name in ``os.listdir`` order; the first of a
name wins) and reads the same files.  Wherever it could answer otherwise than
:mod:`importlib.metadata` (a zip or an egg on ``sys.path``, another finder of
distributions, a file it does not parse as simply as that module would), it raises
:class:`Unknown` and the caller asks :mod:`importlib.metadata`.
"""
from __future__ import annotations

import os
import re
import sys
from typing import NamedTuple


class Unknown(Exception):
    """This reading cannot promise :mod:`importlib.metadata`'s answer: ask it."""


class EntryPoint(NamedTuple):
    name: str
    value: str     # "module:attr"
    group: str

    def load(self):
        """The object the entry point names (as ``importlib.metadata.EntryPoint.load``)."""
        import importlib

        m = re.fullmatch(r"([\w.]+):([\w.]+)", self.value)
        if m is None:   # extras, spaces, no attribute: importlib.metadata's own rules and errors
            from importlib.metadata import EntryPoint as Full

            return Full(self.name, self.value, self.group).load()
        obj = importlib.import_module(m.group(1))
        for attr in filter(None, m.group(2).split(".")):   # as importlib.metadata: "A..B" is A.B
            obj = getattr(obj, attr)
        return obj


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower().replace("-", "_")


_LISTED: dict[str, tuple[float, list[tuple[str, str, str]]]] = {}


def _folder(root: str) -> list[tuple[str, str, str]]:
    """``(normalized name, name as spelt, metadata folder)`` of the distributions in the
    ``sys.path`` entry ``root``, grouped by name in first-seen order (importlib.metadata's
    ``Lookup``); remembered while the folder's mtime stays."""
    try:
        mtime = os.stat(root or ".").st_mtime
    except OSError:
        return []
    hit = _LISTED.get(root)
    if hit is not None and hit[0] == mtime:
        return hit[1]
    try:
        children = os.listdir(root or ".")
    except OSError:
        raise Unknown(root) from None   # a file (a zip: importlib.metadata reads inside it)
    if os.path.basename(root).lower().endswith(".egg"):
        raise Unknown(root)
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for child in children:
        low = child.lower()
        if not low.endswith((".dist-info", ".egg-info")):
            continue
        stem, ext = os.path.splitext(child)
        if ext not in (".dist-info", ".egg-info"):   # importlib.metadata then reads the name in METADATA
            raise Unknown(child)
        spelt = stem.partition("-")[0]
        norm = _normalize(spelt)
        groups.setdefault(norm, []).append((norm, spelt, os.path.join(root, child)))
    found = [d for ds in groups.values() for d in ds]
    _LISTED[root] = (mtime, found)
    return found


def _all() -> list[tuple[str, str, str]]:
    """Every distribution's metadata folder, in :func:`importlib.metadata.distributions`
    order (duplicates included)."""
    import importlib.machinery

    if any(hasattr(f, "find_distributions") and f is not importlib.machinery.PathFinder for f in sys.meta_path):
        raise Unknown("a finder of distributions")
    if importlib.machinery.PathFinder not in sys.meta_path:   # then importlib.metadata looks at no sys.path
        raise Unknown("no PathFinder")
    out = []
    for root in sys.path:
        if not isinstance(root, str):
            raise Unknown(repr(root))
        out.extend(_folder(root))
    return out


def _read(folder: str, name: str) -> str | None:
    try:
        with open(os.path.join(folder, name), encoding="utf-8") as fh:
            return fh.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return None
    except (OSError, ValueError):
        raise Unknown(folder) from None


def entry_points(group: str) -> list[EntryPoint]:
    """The entry points of ``group``, in the order of
    ``importlib.metadata.entry_points(group=group)`` (one distribution of a name: the first)."""
    seen: dict[str, str] = {}
    out = []
    for norm, spelt, folder in _all():
        if norm in seen:
            if seen[norm] != spelt:   # Python 3.10 tells distributions apart by the name as spelt
                raise Unknown(folder)
            continue
        seen[norm] = spelt
        text = _read(folder, "entry_points.txt")
        section = None
        for line in (text or "").splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("[") and line.endswith("]"):
                section = line.strip("[]")
                continue
            if section is None:
                continue
            if "=" not in line:
                raise Unknown(folder)
            if section == group:
                name, _, value = line.partition("=")
                out.append(EntryPoint(name.strip(), value.strip(), group))
    return out


def unreadable_entry_points() -> tuple[str, str] | None:
    """``(path, why)`` of the first entry_points.txt that :mod:`importlib.metadata`
    cannot read (not UTF-8, a line of a section without ``=``): after it raised, to
    name the file in the message.  None when none is found here (a zip...)."""
    seen: set[str] = set()
    for root in sys.path:
        try:
            found = _folder(root) if isinstance(root, str) else []
        except Unknown:
            continue
        for norm, _s, folder in found:
            if norm in seen:
                continue
            seen.add(norm)
            path = os.path.join(folder, "entry_points.txt")
            try:
                with open(path, "rb") as fh:
                    data = fh.read()
            except OSError:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                return path, f"not UTF-8 (byte {data[exc.start]:#04x} at offset {exc.start})"
            section = None
            for k, line in enumerate(text.splitlines(), 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                if line.startswith("[") and line.endswith("]"):
                    section = line
                elif section is not None and "=" not in line:
                    return path, f"line {k} has no '=': {line!r}"
    return None


_HEADER = re.compile(r"[\041-\071\073-\176]*:")


def version(name: str) -> str | None:
    """The version of the installed distribution ``name`` (``importlib.metadata.version``),
    None when none is installed."""
    if not name:
        raise Unknown(name)   # importlib.metadata: ValueError, "A distribution name is required."
    want = _normalize(name)
    folder = next((f for norm, _s, f in _all() if norm == want), None)
    if folder is None:
        return None
    text = _read(folder, "METADATA") or _read(folder, "PKG-INFO")
    if not text:
        raise Unknown(folder)
    lines = re.split(r"\r\n|\r|\n", text)
    for i, line in enumerate(lines):
        if not line:
            break   # the end of the headers
        if not _HEADER.match(line):
            raise Unknown(folder)   # a folded line or a defect: the email parser's rules
        key, _, value = line.partition(":")
        if key.lower() == "version":
            if i + 1 < len(lines) and lines[i + 1][:1] in (" ", "\t"):
                raise Unknown(folder)
            return value.lstrip(" \t")
    raise Unknown(folder)
