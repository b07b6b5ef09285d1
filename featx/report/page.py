"""The report page: one self-contained HTML file.

Everything is inline — the style (``page.css``), the script (``page.js``), the data (one
JSON block) and the thumbnails (``data:`` JPEGs) — so the file opens offline in any
browser, from anywhere, and makes no network request: its Content-Security-Policy allows
only its own script and style (by their SHA-256) and ``data:`` images, nothing else.
Every text that comes from the output (file names, failure reasons, parameters, the
command line) is escaped here (``html.escape``) or set as text by the script, and odd
names (newlines, undecodable bytes) are shown quoted as featx's messages quote them.
"""
from __future__ import annotations

import base64
import hashlib
import html
import json
from pathlib import Path
from typing import Any

from ..names import printable, quote_name, utf8_text
from ..doctext import value_text

#: What marks a file as a featx report (the first line), so that ``-o`` replaces its own
#: reports and nothing else without ``--overwrite``.
MARK = "<!-- featx report -->"

#: Failures listed in full on the page (the rest counted; ``featx inspect --json`` has all).
MAX_FAILURES = 10000
#: Duplicate groups and outliers shown.
MAX_GROUPS = 200
OUTLIERS_SHOWN = 24
GROUP_SHOWN = 20

_HERE = Path(__file__).resolve().parent


def esc(value: Any) -> str:
    """Any value as HTML text: names and reasons with their unprintable characters
    escaped, then ``& < > " '`` escaped."""
    return html.escape(printable(utf8_text(str(value))), quote=True)


def json_block(data: Any) -> str:
    """``data`` as JSON that is safe inside ``<script type="application/json">``: ASCII
    only, and ``<``, ``>``, ``&`` as ``\\u`` escapes, so no text can close the element."""
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def csp(script: str, style: str) -> str:
    """The page's Content-Security-Policy: nothing may load but its own inline script and
    style (by hash) and ``data:`` images."""
    return (f"default-src 'none'; img-src data:; style-src {_sha(style)}; script-src {_sha(script)}; "
            "base-uri 'none'; form-action 'none'")


def _card(value: Any, what: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{esc(value)}</b><span>{esc(what)}</span></div>'


def _figure(row: int, thumb: int, caption: str, cls: str = "", title: str | None = None) -> str:
    img = (f'<img data-t="{thumb}" alt="" width="96" height="72">' if thumb >= 0
           else '<div class="noimg">no thumbnail</div>')
    tt = f' title="{esc(title)}"' if title else ""
    return (f'<figure class="{cls}" data-row="{row}"{tt}>{img}<figcaption>{esc(caption)}'
            f"</figcaption></figure>")


def run_section(info: dict[str, Any]) -> str:
    """The run: extractor and parameters, options, status, timing, command, versions, agreement."""
    rows = []
    ext = info.get("extractor") or {}
    rows.append(("format", f"{info.get('format')} ({info.get('kind')}), {info.get('rows')} rows"
                 + (f" of {info.get('width')} values" if info.get("width") else "")))
    rows.append(("key columns", ", ".join(info.get("key_columns") or []) or "none"))
    rows.append(("extractor", ext.get("name") or "unknown (no featx record beside the output)"))
    for k, v in (ext.get("params") or {}).items():
        rows.append(("  --" + str(k).replace("_", "-"), value_text(v)))
    opts = {k: v for k, v in (info.get("options") or {}).items() if v not in (None, False, {}, [])}
    if opts:
        rows.append(("options", "; ".join(f"{k.replace('_', '-')} {value_text(v)}" for k, v in opts.items())))
    run = info.get("last_run") or {}
    if run:
        rows.append(("status", f"{run.get('status')}" + (f" — {run['note']}" if run.get("note") else "")))
        rows.append(("started", run.get("started") or "unknown"))
        rows.append(("finished", run.get("finished") or "unknown"))
        if run.get("seconds") is not None:
            rows.append(("took", f"{run['seconds']} s"))
        if run.get("command"):
            rows.append(("command", " ".join(quote_name(str(a)) for a in run["command"])))
    conv = info.get("converted_from")
    if conv:
        rows.append(("converted", f"from {conv.get('path')} ({conv.get('format')}) on {conv.get('finished')}"))
    if info.get("merged_from"):
        rows.append(("merged from", ", ".join(map(str, info["merged_from"]))))
    v = info.get("versions")
    if isinstance(v, dict):
        rows.append(("versions", ", ".join(f"{k} {x}" for k, x in v.items())))
    ag = info.get("agreement") or {}
    if ag.get("agrees") is True:
        rows.append(("files", "agree with the state's last commit"))
    elif ag.get("agrees") is False:
        rows.append(("files", f"DO NOT agree with the state: {ag.get('why')}"))
    else:
        rows.append(("files", "not checked (no featx state)"))
    for u in info.get("unknown") or []:
        rows.append(("unknown", u))
    body = "".join(f'<tr><th>{esc(a)}</th><td class="{"mono" if a in ("command",) else ""}">{esc(b)}</td></tr>'
                   for a, b in rows)
    return f'<section id="run"><h2>The run</h2><table>{body}</table></section>'


def failures_section(info: dict[str, Any]) -> str:
    inp = info.get("inputs") or {}
    fails = inp.get("failures") or []
    gone = inp.get("disappeared") or []
    if not fails and not gone:
        what = "no failures recorded" if info.get("last_run") else "no featx record: failures unknown"
        return f'<section id="failures"><h2>Failures</h2><p class="note">{esc(what)}</p></section>'
    rows = "".join(f'<tr><td class="path">{esc(quote_name(str(f.get("path"))))}</td><td>{esc(f.get("reason"))}</td></tr>'
                   for f in fails[:MAX_FAILURES])
    more = (f'<p class="note">{len(fails) - MAX_FAILURES} more failures are not listed here '
            "(featx inspect OUTPUT --json lists them all)</p>") if len(fails) > MAX_FAILURES else ""
    gone_html = ""
    if gone:
        gone_html = (f"<h2>Disappeared ({len(gone)})</h2><ul>"
                     + "".join(f'<li class="path">{esc(quote_name(str(p)))}</li>' for p in gone[:MAX_FAILURES])
                     + "</ul>")
    return (f'<section id="failures"><h2>Failures ({len(fails)})</h2><table class="fails"><tr><th>input</th>'
            f"<th>reason</th></tr>{rows}</table>{more}{gone_html}</section>")


def render(ctx: dict[str, Any]) -> str:
    """The page, from what :func:`featx.report.build_report` gathered (``ctx``)."""
    style = (_HERE / "page.css").read_text(encoding="utf-8")
    script = (_HERE / "page.js").read_text(encoding="utf-8")
    info = ctx["info"]
    inp = info.get("inputs") or {}
    lr = inp.get("last_run") or {}
    run = info.get("last_run") or {}
    status = run.get("status") or "unknown"
    n_fail = len(inp.get("failures") or [])
    ext = (info.get("extractor") or {}).get("name") or "unknown"
    cards = [_card(f"{ctx['rows']:,}", "rows"),
             _card(inp.get("in_output", "—"), "inputs in the output"),
             _card(lr.get("processed", "—"), "processed in the last run"),
             _card(n_fail, "failed", "bad" if n_fail else "ok"),
             _card(status, "status", "ok" if status in ("complete",) else "warn"),
             _card(ext, "extractor"),
             _card(ctx.get("metric") or "—", "metric")]
    head = (f'<header><h1>featx report: <span class="out">{esc(ctx["output"])}</span></h1>'
            f'<div class="muted">made {esc(ctx["made"])} by featx {esc(ctx["version"])} in '
            f'{ctx["seconds"]:.1f} s · <span id="status">map: loading</span> <span id="errors"></span></div>'
            f'<div class="cards">{"".join(cards)}</div></header>')
    parts = [head, "<main>"]
    parts.append(map_section(ctx))
    parts.append(ctx.get("outliers_html", ""))
    parts.append(ctx.get("duplicates_html", ""))
    parts.append(ctx.get("timelines_html", ""))
    parts.append(failures_section(info))
    parts.append(run_section(info))
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in ctx.get("notes", []))
    parts.append(f'<section id="about"><h2>How this page was made</h2>{notes}</section></main>')
    data = json_block(ctx["data"])
    title = esc(f"featx report: {ctx['output']}")
    return (f"{MARK}\n<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{csp(script, style)}">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="referrer" content="no-referrer">\n'
            f"<title>{title}</title>\n<style>{style}</style>\n</head>\n<body>\n"
            + "\n".join(parts)
            + f'\n<script type="application/json" id="featx-data">{data}</script>\n'
            f"<script>{script}</script>\n</body></html>\n")


def map_section(ctx: dict[str, Any]) -> str:
    if ctx.get("why_no_map"):
        return (f'<section id="map-section"><h2>Map</h2><p class="note">No map: {esc(ctx["why_no_map"])}</p>'
                f"</section>")
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in ctx.get("map_notes", []))
    return ('<section id="map-section"><h2>Map of the vectors</h2>'
            '<div class="controls"><label><input type="checkbox" id="show-thumbs" checked> thumbnails</label>'
            '<label>colour <select id="colour-by"><option value="outlier">by outlier score</option>'
            '<option value="none">one colour</option></select></label>'
            '<button type="button" id="reset-view">reset zoom</button>'
            '<span class="muted">hover: name · click: neighbours · wheel: zoom · drag: pan</span></div>'
            f'{notes}<div class="maprow"><div class="mapwrap"><canvas id="map" width="760" height="760"></canvas>'
            '<div id="tip"></div></div><aside id="panel"><p class="note">Click a point (or a picture below) to see '
            "its path, keys and nearest neighbours.</p></aside></div></section>")


def outliers_html(rows: list[tuple[int, int, str, float]], k: int, sampled: bool) -> str:
    """The drawn rows farthest from their k-th neighbour: (row, thumb, label, score)."""
    if not rows:
        return ""
    figs = "".join(_figure(r, t, f"{s:.4g} · {lab}", title=lab) for r, t, lab, s in rows)
    scope = "of the drawn rows, " if sampled else ""
    return (f'<section id="outliers"><h2>Outliers</h2><p class="note">The {len(rows)} rows {scope}farthest from '
            f"their {k}-th nearest neighbour among all rows (the number before each name is that distance)."
            f'</p><div class="strip">{figs}</div></section>')


def duplicates_html(groups: list[list[tuple[int, int, str]]], note: str) -> str:
    """Near-duplicate groups: each a list of (row, thumb, label)."""
    body = ""
    for n, grp in enumerate(groups[:MAX_GROUPS]):
        rest = (f'<div class="gh">... and {len(grp) - GROUP_SHOWN} more rows of this group</div>'
                if len(grp) > GROUP_SHOWN else "")
        body += (f'<div class="group"><div class="gh">group {n + 1}: {len(grp)} rows</div>'
                 + "".join(_figure(r, t, lab, title=lab) for r, t, lab in grp[:GROUP_SHOWN]) + rest + "</div>")
    more = (f'<p class="note">{len(groups) - MAX_GROUPS} more groups are not shown.</p>'
            if len(groups) > MAX_GROUPS else "")
    if not groups:
        body = '<p class="note">No near-duplicates.</p>'
    return (f'<section id="duplicates"><h2>Near-duplicates ({len(groups)} groups)</h2>'
            f'<p class="note">{esc(note)}</p>{body}{more}</section>')


def timelines_html(videos: list[dict[str, Any]], note: str) -> str:
    """One timeline per video: its SVG (already escaped) and a strip of frames."""
    if not videos:
        return ""
    body = ""
    for v in videos:
        figs = "".join(_figure(r, t, cap, "cutf" if cut else "") for r, t, cap, cut in v["strip"])
        cuts = ", ".join(str(f) for f in v["cut_frames"][:40]) or "none"
        if len(v["cut_frames"]) > 40:
            cuts += f", ... ({len(v['cut_frames'])} in all)"
        body += (f'<div class="video"><div class="path">{esc(quote_name(v["name"]))}</div>'
                 f'<div class="note">{v["frames"]} frames; shot boundaries at frames: {esc(cuts)}</div>'
                 f'{v["svg"]}<div class="strip">{figs}</div></div>')
    return f'<section id="timelines"><h2>Video timelines</h2><p class="note">{esc(note)}</p>{body}</section>'
