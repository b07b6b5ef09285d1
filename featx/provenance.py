"""The provenance sidecar: enough to know what was run, and to run it again."""
from __future__ import annotations

import datetime as _dt
import json
import platform
import sys
from typing import Any

from . import __version__, dists
from .names import escape_name, utf8_text
from .output.atomic import write_atomic

_LIBRARIES = ("numpy", "opencv-python-headless", "opencv-python", "scikit-image", "click", "tqdm",
              "onnxruntime", "onnxruntime-gpu")  # the CUDA build is a distribution of its own


#: looked up once per process (each look-up scans the installed distributions: 15-45 ms,
#: and a run writes its sidecars at its start and at its end)
_VERSIONS: dict[str, str] | None = None


def library_versions() -> dict[str, str]:
    global _VERSIONS
    if _VERSIONS is None:
        out = {"featx": __version__, "python": platform.python_version()}
        for name in _LIBRARIES:
            try:
                v = dists.version(name)   # (importlib.metadata costs 30-50 ms to import)
            except dists.Unknown:
                from importlib import metadata

                try:
                    v = metadata.version(name)
                except metadata.PackageNotFoundError:
                    v = None
            if v is not None:
                out[name] = v
        _VERSIONS = out
    return dict(_VERSIONS)


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def record(*, extractor: str, params: dict[str, Any], options: dict[str, Any], summary: Any,
           started: str, argv: list[str] | None = None, extra: dict[str, Any] | None = None) -> dict:
    """The sidecar document for one run."""
    doc = {
        "featx_sidecar": 1,
        "status": summary.status,
        "complete": summary.status in ("complete", "complete-with-failures"),
        "command": [utf8_text(str(a)) for a in (argv if argv is not None else sys.argv)],
        "extractor": {"name": extractor, "params": params},
        "options": options,
        "output": summary.output,
        "inputs": summary.counts(),
        # names as in the index files (featx.names): valid UTF-8, reversible
        "failures": [{"path": escape_name(f.path), "reason": utf8_text(f.reason)} for f in summary.failed],
        "partial": [{"path": escape_name(f.path), "reason": utf8_text(f.reason)} for f in summary.partial],
        "disappeared": [escape_name(p) for p in summary.disappeared],
        "timing": {"started": started, "finished": now(), "seconds": round(summary.seconds, 3),
                   "items_per_second": round(summary.processed / summary.seconds, 2)
                   if summary.seconds > 0 else None},
        "versions": library_versions(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
    }
    if extra:
        doc.update(extra)
    return doc


def _utf8(v: Any) -> Any:
    """``v`` with undecodable bytes of names (surrogates) in any string as ``\\xNN``."""
    if isinstance(v, str):
        return utf8_text(v)
    if isinstance(v, dict):
        return {_utf8(k): _utf8(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_utf8(x) for x in v]
    return v


def write(path: str, doc: dict) -> None:
    """Write a sidecar: JSON with no lone surrogate anywhere (the names :func:`record` puts
    in are escaped as in the index files; any other string, e.g. a merge's part names, has
    its undecodable bytes written ``\\xNN``)."""
    write_atomic(path, json.dumps(_utf8(doc), indent=2, sort_keys=False) + "\n")
