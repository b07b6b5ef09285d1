"""What an output is (``featx inspect``): read from its files, its sidecar and its state.

:func:`inspect_output` gathers everything featx can tell of an output of any format —
the extractor and its parameters, the vector length and the names of the columns,
the rows and key columns, the inputs processed, failed and disappeared, the last
run's status and time, the versions, and whether the files agree with the state —
as one JSON-ready dict; :func:`render` writes it for people.  It reads only the
output's own files: it works on an output copied to another machine (its inputs
absent, its paths those of the machine that made it), and says what it cannot know
when the sidecar or the state is missing (a bare ``.npy`` someone found).  It never
writes: no lock, no state is created.
"""
from __future__ import annotations

import os
from typing import Any

from .doctext import value_text
from .output import reader as rd
from .output.convert import check_files, value_columns

#: Failures shown in the text form (the JSON lists all of them).
FAILURES_SHOWN = 10


def _size(path: str) -> int | None:
    try:
        return os.path.getsize(path)
    except OSError:
        return None


def _lock_held(lock_path: str) -> bool | None:
    """Is a run holding the output's lock now (None: cannot tell)?  Opened read-only, never made."""
    import fcntl

    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)
    return False


def _agreement(r: rd.OutputReader) -> dict[str, Any]:
    """Whether the files are what the state's last commit left: ``agrees`` True / False /
    None (no state to compare with), ``why``, and ``copied`` (the same contents in other files)."""
    if r.state is None or r.config is None:
        return {"agrees": None, "why": "no featx state beside the output: nothing to compare the files with"}
    why, copied = check_files(r)
    out: dict[str, Any] = {"agrees": why is None, "why": why}
    if copied:
        out["copied"] = True
        out["note"] = ("these files are a copy of the ones featx wrote (other inodes); their committed bytes "
                       "match the state. featx extract continuing this output here would rebuild it")
    if r.format == "csv" and why is None:
        shown = r.shown_rows()
        rows = int(r.state.get("rows", 0) or 0)
        if shown > rows:
            out["note"] = (f"{shown - rows} rows past the last commit (a run was stopped); the next run "
                           "removes them, and readers of featx skip them")
    return out


def inspect_output(path: str) -> dict[str, Any]:
    """Everything featx can tell of the output ``path`` (see the module docstring).
    Raises :class:`~featx.errors.OutputError` if it does not exist or cannot be read."""
    with rd.open_output(path) as r:
        return _inspect(r, path)


def _inspect(r: rd.OutputReader, path: str) -> dict[str, Any]:
    doc = r.sidecar if isinstance(r.sidecar, dict) else None
    unknown: list[str] = []
    info: dict[str, Any] = {"path": path, "format": r.format,
                            "files": [{"path": f, "bytes": _size(f)} for f in r.files()][:20],
                            "sidecar": r.sidecar_path if doc is not None else None,
                            "state": r.state_path if r.state is not None else None}
    if r.format == "npy-dir":
        info["files_count"] = len(r.files())
        del info["files"]
    if getattr(r, "state_error", None):
        info["state_error"] = r.state_error
    if doc is None:
        unknown.append(f"no featx record beside it (no sidecar {os.path.basename(r.sidecar_path)}): the "
                       "extractor, its parameters, the run's inputs, failures, times and versions are unknown")
    if r.state is None:
        unknown.append("no featx state beside it: which inputs its rows belong to (their sizes and times), "
                       "and whether the files are whole, cannot be checked")
    # what the rows are
    info["kind"] = r.kind
    info["rows"] = len(r)
    info["width"] = r.width
    if r.format == "npy":
        info["array"] = {"shape": list(r.shape), "dtype": str(r.dtype)}
        if r.index_header is None:
            unknown.append(f"no index {os.path.basename(r.index_path)}: the rows have no names")
    info["key_columns"] = list(r.key_columns) if r.format != "npy" or r.index_header is not None else []
    cols = value_columns(r) if r.kind == "vector" else None
    info["columns"] = cols
    if r.kind == "vector" and not cols and r.width:
        info["columns_note"] = "not named by the extractor: f0 ... f%d in CSV" % (r.width - 1) if doc or r.config \
            else "unknown: no record of the extractor"
    # what made it
    cfg = r.config or {}
    ext = (doc or {}).get("extractor") if isinstance((doc or {}).get("extractor"), dict) else None
    if ext is None and isinstance(cfg.get("extractor"), dict):
        ext = {"name": cfg["extractor"].get("name"),
               "params": {k: v for k, v in cfg["extractor"].items() if k != "name"}}
    info["extractor"] = ext
    opts = (doc or {}).get("options") if isinstance((doc or {}).get("options"), dict) else cfg.get("options")
    if isinstance(opts, dict):
        keep = ("resize", "resize_mode", "decode", "lenient_decode", "hash", "shard", "sampling", "video",
                "frames", "regions", "segments", "every", "fps", "start", "end", "max_frames")
        info["options"] = {k: opts[k] for k in keep if k in opts}
    else:
        info["options"] = None
    # inputs
    inputs: dict[str, Any] = {}
    if r.state is not None:
        ents = list(rd.OutputReader.entries(r))
        inputs["in_output"] = sum(1 for e in ents if e[5] != "failed")
        inputs["partial"] = sum(1 for e in ents if e[5] == "partial")
    last = (doc or {}).get("inputs") if isinstance((doc or {}).get("inputs"), dict) else None
    if last:
        inputs["last_run"] = {k: last.get(k) for k in ("processed", "up_to_date", "failed", "partial",
                                                      "disappeared", "removed", "rows") if k in last}
    if doc is not None:
        inputs["failures"] = list(doc.get("failures") or [])
        inputs["disappeared"] = list(doc.get("disappeared") or [])
    info["inputs"] = inputs
    # the last run
    if doc is not None:
        timing = doc.get("timing") if isinstance(doc.get("timing"), dict) else {}
        status = doc.get("status")
        held = _lock_held(os.path.join(os.path.dirname(os.path.abspath(r.output)),
                                       f".{os.path.basename(r.output)}.featx-lock"))
        if status == "running" and held is False:
            status_note = "the run that wrote it did not finish (killed?); running its command again resumes it"
        elif status == "running" and held:
            status_note = "a run is writing it now"
        else:
            status_note = None
        info["last_run"] = {"status": status, "complete": doc.get("complete"), "started": timing.get("started"),
                            "finished": timing.get("finished"), "seconds": timing.get("seconds"),
                            "command": doc.get("command"), "note": status_note}
        info["versions"] = doc.get("versions")
        conv = doc.get("converted_from")
        if isinstance(conv, dict):
            info["converted_from"] = {k: conv.get(k) for k in ("path", "format", "rows", "finished", "command",
                                                               "versions")}
        if doc.get("merged_from"):
            info["merged_from"] = doc.get("merged_from")
        if isinstance(doc.get("pool"), dict):
            info["pool"] = doc["pool"]
            src = doc.get("source")
            if isinstance(src, dict):
                info["pooled_from"] = {k: src.get(k) for k in ("path", "format", "rows")}
    else:
        info["last_run"] = None
        info["versions"] = None
    info["agreement"] = _agreement(r)
    info["unknown"] = unknown
    return info


# ---------------------------------------------------------------------------
# text


def _columns_text(cols: list[str]) -> str:
    if len(cols) <= 6:
        return ", ".join(cols)
    return ", ".join(cols[:4]) + ", ..., " + ", ".join(cols[-2:])


def pool_text(rec: dict[str, Any]) -> str:
    """A pooled output's settings in words: ``one row per video window: mean, max; windows
    of 1s every 0.5s`` (lengths as the sidecar writes them: ``2s``, ``30f``)."""
    from .names import quote_name

    over = rec.get("over") or "video"
    parts = [f"one row per {over}" + (" window" if rec.get("window") is not None else "")
             + ": " + ", ".join(rec.get("stats") or ["mean"])]
    if rec.get("window") is not None:
        stride = rec.get("stride") if rec.get("stride") is not None else rec.get("window")
        parts.append(f"windows of {rec['window']} every {stride}")
    if rec.get("pyramid"):
        parts.append("temporal pyramid (whole, halves, quarters)")
    if rec.get("segments"):
        parts.append(f"segments from {quote_name(str(rec['segments']))}")
    return "; ".join(parts)


def render(info: dict[str, Any]) -> str:
    """``info`` (from :func:`inspect_output`) as text for people."""
    from .names import quote_name

    L: list[str] = []
    ext = info.get("extractor")
    what = f"{ext['name']} features" if ext and ext.get("name") else "no featx record beside it"
    L.append(f"{info['path']}: {info['format']} output, {what}")
    if info.get("array"):
        a = info["array"]
        L.append(f"  array:        shape ({', '.join(map(str, a['shape']))}), dtype {a['dtype']}")
    rows, width = info.get("rows"), info.get("width")
    kind = info.get("kind")
    dtype = (info.get("array") or {}).get("dtype", "float32")
    if kind == "vector":
        L.append(f"  rows:         {rows}")
        if width is not None:
            L.append(f"  vector:       {width} {dtype} values per row")
    elif kind == "keypoints":
        L.append(f"  rows:         {rows} (keypoints: per item, N keypoints x 6 and N descriptors)")
    else:
        L.append(f"  rows:         {rows} ({kind} maps)")
    keys = info.get("key_columns") or []
    L.append(f"  key columns:  {', '.join(keys) if keys else 'none (no index: rows are unnamed)'}")
    cols = info.get("columns")
    if cols:
        L.append(f"  columns:      {_columns_text(cols)} ({len(cols)})")
    elif info.get("columns_note"):
        L.append(f"  columns:      {info['columns_note']}")
    if ext:
        L.append(f"  extractor:    {ext.get('name')}")
        params = ext.get("params") or {}
        if params:
            w = max(len(k) for k in params)
            for k, v in params.items():
                L.append(f"    --{k.replace('_', '-'):<{w}}  {value_text(v)}")
    if isinstance(info.get("pool"), dict):
        L.append(f"  pooled:       {pool_text(info['pool'])}")
        src = info.get("pooled_from")
        if src:
            L.append(f"    from {quote_name(str(src.get('path')))} ({src.get('format')}, {src.get('rows')} rows)")
    opts = info.get("options") or {}
    shown = {k: v for k, v in opts.items() if v not in (None, False, {}, [])
             and not (k == "resize_mode" and not opts.get("resize"))}
    if opts and "resize" in opts:
        shown = {"resize": opts.get("resize"), **shown}
    if shown:
        L.append("  options:      " + "; ".join(f"{k.replace('_', '-')} {value_text(v)}" for k, v in shown.items()))
    inp = info.get("inputs") or {}
    if "in_output" in inp:
        L.append(f"  inputs:       {inp['in_output']} in the output" +
                 (f" ({inp['partial']} partial)" if inp.get("partial") else ""))
    lr = inp.get("last_run")
    if lr:
        parts = [f"{lr.get('processed', 0)} processed"]
        if lr.get("up_to_date"):
            parts.append(f"{lr['up_to_date']} up to date")
        parts.append(f"{lr.get('failed', 0)} failed")
        parts.append(f"{lr.get('disappeared', 0)} disappeared")
        if lr.get("removed"):
            parts.append(f"{lr['removed']} removed")
        L.append(f"  last run:     {', '.join(parts)}")
    fails = inp.get("failures") or []
    for f in fails[:FAILURES_SHOWN]:
        L.append(f"    failed: {quote_name(str(f.get('path')))}: {f.get('reason')}")
    if len(fails) > FAILURES_SHOWN:
        L.append(f"    ... and {len(fails) - FAILURES_SHOWN} more failures (--json lists them all)")
    gone = inp.get("disappeared") or []
    for p in gone[:FAILURES_SHOWN]:
        L.append(f"    disappeared: {quote_name(str(p))}")
    if len(gone) > FAILURES_SHOWN:
        L.append(f"    ... and {len(gone) - FAILURES_SHOWN} more (--json lists them all)")
    run = info.get("last_run")
    if run:
        when = run.get("finished") or run.get("started") or "unknown time"
        secs = f" ({run['seconds']} s)" if run.get("seconds") is not None else ""
        L.append(f"  status:       {run.get('status')}, finished {when}{secs}")
        if run.get("note"):
            L.append(f"    {run['note']}")
        if run.get("command"):
            import textwrap

            L += textwrap.wrap(" ".join(quote_name(str(a)) for a in run["command"]), 96, break_long_words=False,
                               break_on_hyphens=False, initial_indent="  command:      ",
                               subsequent_indent=" " * 16)
    conv = info.get("converted_from")
    if conv:
        L.append(f"  converted:    from {conv.get('path')} ({conv.get('format')}) on {conv.get('finished')}")
    if info.get("merged_from"):
        L.append(f"  merged from:  {', '.join(map(str, info['merged_from']))}")
    v = info.get("versions")
    if isinstance(v, dict):
        import textwrap

        L += textwrap.wrap(", ".join(f"{k} {x}" for k, x in v.items()), 96, initial_indent="  versions:     ",
                           subsequent_indent=" " * 16)
    ag = info.get("agreement") or {}
    if ag.get("agrees") is True:
        L.append("  files:        agree with the state's last commit")
    elif ag.get("agrees") is False:
        L.append(f"  files:        DO NOT agree with the state: {ag.get('why')}")
        L.append("    (featx extract with the same settings rebuilds or repairs it; featx convert refuses it)")
    else:
        L.append("  files:        not checked (no featx state)")
    if ag.get("note"):
        L.append(f"    {ag['note']}")
    if info.get("state_error"):
        L.append(f"  state:        unreadable: {info['state_error']}")
    for u in info.get("unknown") or []:
        L.append(f"  unknown:      {u}")
    return "\n".join(L)


def to_json(info: dict[str, Any]) -> str:
    """``info`` as JSON (names escaped as in featx's text files)."""
    import json

    from .provenance import _utf8

    return json.dumps(_utf8(info), indent=2)

