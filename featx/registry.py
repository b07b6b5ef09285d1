"""Extractor discovery through the ``featx.extractors`` entry-point group.

Built-in extractors register exactly like third-party plugins.  Looking up
one extractor imports only that one; a plugin that fails to import is
reported as broken by :func:`discover` instead of breaking the caller.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass

from . import dists
from .errors import PluginError

GROUP = "featx.extractors"


@dataclass
class PluginInfo:
    name: str
    target: str          # "module:Class"
    package: str         # the distribution that provides it
    cls: type | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.cls is not None


def _entry_points(full: bool = False) -> dict:
    """name -> entry point; ``full``: importlib.metadata's own (which know their
    distribution), else :mod:`featx.dists`' (the same ones, found without importing
    importlib.metadata where it can tell)."""
    found = None
    if not full:
        try:
            found = dists.entry_points(GROUP)
        except dists.Unknown:
            pass
    if found is None:
        from importlib.metadata import entry_points

        try:
            found = entry_points(group=GROUP)
        except (ValueError, TypeError):   # an entry_points.txt not UTF-8, or a line without "="
            where = dists.unreadable_entry_points()
            if where is None:
                raise
            raise PluginError(f"cannot read the installed distributions' entry points: {where[0]}: {where[1]}",
                              "an installed distribution's entry_points.txt is damaged (every featx command "
                              "reads them all): reinstall or remove that distribution") from None
    eps = {}
    for ep in found:
        eps.setdefault(ep.name, ep)  # first registration wins, deterministically
    return dict(sorted(eps.items()))


def names() -> list[str]:
    """Registered extractor names, sorted, without importing any of them."""
    return list(_entry_points())


#: set once an extractor from outside featx has been imported in this process
_foreign = False


def foreign_code_ran() -> bool:
    """Did this process import an extractor that is not featx's own (a plugin)?"""
    return _foreign


def _note_origin(module: str) -> None:
    global _foreign
    if module != "featx" and not module.startswith("featx."):
        _foreign = True


def _load(ep) -> type:
    from .extractor import Extractor

    _note_origin(ep.value.partition(":")[0].strip())
    obj = ep.load()
    if not (isinstance(obj, type) and issubclass(obj, Extractor)):
        raise TypeError(f"{ep.value} is not a featx Extractor subclass")
    if obj.name != ep.name:
        raise TypeError(f"{ep.value} declares name {obj.name!r}, registered as {ep.name!r}")
    return obj


def get(name: str) -> type:
    """The extractor class registered as ``name`` (imports only that plugin)."""
    eps = _entry_points()
    ep = eps.get(name)
    if ep is None:
        from .runopts import closest

        valid = ", ".join(eps) or "(none installed)"
        near = closest(name, eps)
        raise PluginError(f"unknown extractor {name!r}" + (f"; {near}" if near else ""), f"available: {valid}")
    try:
        return _load(ep)
    except Exception as exc:  # a broken plugin must not look like a crash of featx
        raise PluginError(f"extractor {name!r} failed to load: {type(exc).__name__}: {exc}",
                          f"provided by {ep.value}; reinstall or fix the plugin") from exc


def load_target(target: str) -> type:
    """Import ``module:Class`` directly (used by worker processes)."""
    module, _, attr = target.partition(":")
    _note_origin(module)
    return getattr(importlib.import_module(module), attr)


def target_of(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def discover() -> list[PluginInfo]:
    """Every registered extractor with its status (imports all of them)."""
    out = []
    for name, ep in _entry_points(full=True).items():
        package = ep.dist.name if getattr(ep, "dist", None) is not None else "?"
        info = PluginInfo(name=name, target=ep.value, package=package)
        try:
            info.cls = _load(ep)
        except Exception as exc:
            info.error = f"{type(exc).__name__}: {exc}"
        out.append(info)
    return out
