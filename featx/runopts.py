"""Every run option declared once.

One row of :data:`RUN_OPTIONS` says all there is to say about an option of a run: its
name (the field of :class:`~featx.plan.Plan` or :class:`~featx.plan.OutputPlan`), its
flags, its kind and range, its default, its help text and help section, its recipe key,
whether it is set per output, and whether the output's sidecar records it.  Everything
else is made from this table:

* the fields of ``Plan`` and ``OutputPlan`` and their checks (:func:`convert`), so a
  Python caller's values are refused as the command line's are;
* the options of ``featx extract``, ``featx extract a+b`` and ``featx run`` and their help
  sections (``featx.cli.options``), whose click types enforce the same ranges;
* the keys of a recipe and their parsing (:mod:`featx.recipe`, through :func:`convert`);
* the options a sidecar records (:func:`sidecar_options`).

Adding a run option is adding one row here (and using its value where the run needs it).

Library code: no click here; ``featx.cli`` turns the rows into click options.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

#: Help sections of the run options, in the order `featx extract NAME --help` shows them.
SECTIONS = ("Output", "Inputs", "Videos and frame sequences", "Running", "Production runs (cron, resume, shards)")


@dataclass(frozen=True)
class RunOption:
    """One run option.

    ``scope``: ``"run"`` (a field of ``Plan``), ``"output"`` (a field of ``OutputPlan``:
    set per output, an ``[[output]]`` key of a recipe) or ``"cli"`` (the command line's
    alone: how it reports).  ``kind``: ``flag``, ``int``, ``float``, ``choice``, ``str``,
    ``path``, ``paths`` (one or several), ``size`` (``WIDTHxHEIGHT``), ``shard``
    (``I/N``) or ``memory`` (``4G``).  ``low``/``high``: the range of a number
    (``low_open``: ``low`` itself excluded).  ``recipe``: the recipe key (None: a recipe
    cannot set it).  ``in_run``: ``featx run`` offers it to override the recipe's value.
    ``sidecar``: the sidecar records it among the output's options; ``sampling``: one of
    the video/frame sampling options (recorded together, as ``sampling``); ``pooling``: one
    of the options of pooling during extraction (recorded together, as the sidecar's
    ``pool``, as ``featx pool`` records it, by an output that pools).  ``flags``
    empty: the command line's INPUTS arguments.
    """

    name: str
    flags: tuple[str, ...]
    kind: str
    help: str
    section: str
    scope: str = "run"
    default: Any = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    choices: tuple[str, ...] = ()
    metavar: str | None = None
    show_default: bool = False
    recipe: str | None = None
    required: bool = False
    file: bool = False            # names a file (never a folder)
    in_run: bool = True
    sidecar: bool = False
    sampling: bool = False
    pooling: bool = False         # one of the in-pass pooling options (recorded together: the sidecar's ``pool``)
    field: str | None = None      # the Plan/OutputPlan field, when not ``name``

    @property
    def attr(self) -> str:
        """The field of ``Plan`` (scope run) or ``OutputPlan`` (scope output)."""
        return self.field or self.name

    @property
    def expected(self) -> str:
        """What a value must be, in words (the end of every message that refuses one)."""
        k = self.kind
        if k == "flag":
            return "true or false"
        if k in ("int", "float"):
            what = "an integer" if k == "int" else "a number"
            if self.low is not None:
                what += f" above {_num(self.low)}" if self.low_open else f" of at least {_num(self.low)}"
            if self.high is not None:
                what += f" and at most {_num(self.high)}"
            return what
        if k == "choice":
            return " or ".join(", ".join(f'"{c}"' for c in self.choices).rsplit(", ", 1))
        return {"str": "a string", "path": "a path", "paths": "a path or a list of paths",
                "size": 'a size "WIDTHxHEIGHT" of at least 1x1, e.g. "256x256"',
                "shard": 'a shard "I/N" with 1 <= I <= N, e.g. "2/8"',
                "memory": 'a memory size such as "4G", "512M" or 0',
                "length": 'seconds ("2", "2.5s") or rows ("30f"), more than 0',
                "stats": "statistics among mean, std, min, max, diff (\"mean,max\"), each at most once"}[k]


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


_O, _I, _V, _R, _P = SECTIONS

#: The run options, in the order of the command line's help.
RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("inputs", (), "paths", "Image files, folders, videos, or - for paths on stdin.", _I, default=(),
              recipe="inputs"),
    RunOption("output", ("-o", "--output"), "path",
              "Output: NAME.npy, NAME.csv, NAME.parquet, a folder/ (npy-dir) or - for CSV on stdout.", _O,
              scope="output", metavar="PATH", recipe="path", required=True, in_run=False, sidecar=True, field="path"),
    RunOption("format", ("-f", "--format"), "choice", "Output format (default: from the output name).", _O,
              scope="output", choices=("csv", "npy", "npy-dir", "parquet"), recipe="format", in_run=False,
              sidecar=True),
    RunOption("pool_over", ("--pool-over",), "choice",
              "Pool each input's rows while extracting, writing only the pooled rows (memory flat in a "
              "video's length): one row per video or frame folder (video), per picture of a --regions run "
              "(image), per segment or per track.", _O, scope="output", choices=("video", "image", "segment", "track"),
              metavar="UNIT", recipe="pool-over", in_run=False, pooling=True),
    RunOption("pool_stats", ("--pool-stats",), "stats",
              "With --pool-over: the statistics, concatenated in the order mean, std, min, max, diff "
              "(diff: mean absolute change between consecutive rows). Default: mean.", _O, scope="output",
              metavar="LIST", recipe="pool-stats", in_run=False, pooling=True),
    RunOption("pool_window", ("--pool-window",), "length",
              "With --pool-over: pool sliding windows of this length inside each unit, in seconds (2, 2.5s) "
              "or rows (30f); adds the key window.", _O, scope="output", metavar="LENGTH", recipe="pool-window",
              in_run=False, pooling=True),
    RunOption("pool_stride", ("--pool-stride",), "length",
              "With --pool-window: how far each window starts after the last (default: the window's length).", _O,
              scope="output", metavar="LENGTH", recipe="pool-stride", in_run=False, pooling=True),
    RunOption("pool_pyramid", ("--pool-pyramid",), "flag",
              "With --pool-over: also pool the halves and quarters of each unit (a temporal pyramid: "
              "all, h1, h2, q1..q4).", _O, scope="output", default=False, recipe="pool-pyramid", in_run=False,
              pooling=True),
    RunOption("overwrite", ("--overwrite",), "flag", "Replace an existing output.", _O, default=False),
    RunOption("jobs", ("-j", "--jobs"), "int", "Worker processes (0 = one per core).", _R, default=0, low=0,
              show_default=True, recipe="jobs", sidecar=True),
    RunOption("resize", ("--resize",), "size",
              "Resize every image to WIDTHxHEIGHT first, so every vector has one length "
              "(one number is a square: 256 = 256x256).", _I, scope="output", metavar="WxH", recipe="resize",
              in_run=False, sidecar=True),
    RunOption("resize_mode", ("--resize-mode",), "choice",
              "How --resize fits: stretch each axis, or scale the shorter side and cut the centre.", _I,
              scope="output", default="stretch", choices=("stretch", "crop"), show_default=True,
              recipe="resize-mode", in_run=False, sidecar=True),
    RunOption("max_pixels", ("--max-pixels",), "int",
              "Refuse images with more pixels than this (default 178956970; 0 = no limit).", _I, low=0,
              recipe="max-pixels", sidecar=True),
    RunOption("exact_decode", ("--exact-decode",), "flag",
              "Decode every JPEG in full, even when the extractor needs fewer pixels "
              "(--resize, the network's input): the numbers of a full decode, slower.", _I, default=False,
              recipe="exact-decode"),
    RunOption("lenient_decode", ("--lenient-decode",), "flag",
              "Accept pictures whose decoder reported damaged data (a corrupt JPEG stream, "
              "bytes missing mid-file) as the decoder returns them, grey or smeared areas "
              "included, instead of failing them.", _I, default=False, recipe="lenient-decode", sidecar=True),
    RunOption("max_memory", ("--max-memory",), "memory",
              "Memory one input may cost a worker (4G, 512M; 0 = no limit): an image that "
              "would need more (decoded, resized, extracted) is refused before decoding. "
              "Default: half the machine's memory divided by the jobs, at least 1G.", _I, metavar="SIZE",
              recipe="max-memory", sidecar=True),
    RunOption("files_from", ("--files-from",), "paths",
              "Read input paths from FILE, one per line (repeatable; - for stdin).", _I, default=(),
              metavar="FILE", recipe="files-from", file=True),
    RunOption("null", ("-0", "--null"), "flag",
              "Paths on stdin / in list files are NUL-separated (find -print0).", _I, default=False,
              recipe="null"),
    RunOption("video", ("--video",), "flag",
              "Also take the video files found in folders (one row per frame; adds frame and "
              "time columns). Videos named on the command line are always taken.", _V, default=False,
              recipe="video", sidecar=True),
    RunOption("frames", ("--frames",), "flag",
              "Folders are frame sequences: each folder holding images is one sequence, "
              "in natural order (frame2 before frame10).", _V, default=False, recipe="frames", sidecar=True),
    RunOption("every", ("--every",), "int", "Video/frames: keep every N-th frame.", _V, low=1, metavar="N",
              recipe="every", sampling=True),
    RunOption("fps", ("--fps",), "float", "Video/frames: keep at most RATE frames per second, chosen by timestamp.",
              _V, low=0, low_open=True, metavar="RATE", recipe="fps", sampling=True),
    RunOption("start", ("--start",), "float", "Video/frames: first time to keep.", _V, low=0, metavar="SECONDS",
              recipe="start", sampling=True),
    RunOption("end", ("--end",), "float", "Video/frames: keep frames before this time.", _V, low=0,
              metavar="SECONDS", recipe="end", sampling=True),
    RunOption("max_frames", ("--max-frames",), "int", "Video/frames: stop after N kept frames per input.", _V,
              low=1, metavar="N", recipe="max-frames", sampling=True),
    RunOption("frame_rate", ("--frame-rate",), "float",
              "Frame folders: their frame rate (gives the time column; allows --fps/--start/--end).", _V,
              low=0, low_open=True, metavar="RATE", recipe="frame-rate", sampling=True),
    RunOption("regions", ("--regions",), "path",
              "Extract from each box of a regions file (path,x,y,w,h, e.g. from featx detect) "
              "instead of whole images: one row per region.", _I, metavar="CSV", recipe="regions", file=True, in_run=False,
              sidecar=True),
    RunOption("segments", ("--segments",), "path",
              "Extract only the stretches of time a segments file names (path,start,end[,label] in "
              "seconds, e.g. from featx segments): one row per frame of each segment, keyed by segment.", _V,
              metavar="CSV", recipe="segments", file=True, in_run=False, sidecar=True),
    RunOption("sidecar", ("--sidecar",), "path",
              "Where to write the provenance record (default: OUTPUT.featx.json).", _O, scope="output",
              metavar="PATH", recipe="sidecar", in_run=False),
    RunOption("hash", ("--hash",), "flag",
              "Decide what is up to date by content hash, not size and modification time.", _P, default=False,
              recipe="hash", sidecar=True),
    RunOption("prune", ("--prune",), "flag", "Remove from the output the inputs that no longer exist.", _P,
              default=False, recipe="prune", sidecar=True),
    RunOption("wait", ("--wait",), "flag",
              "If another run is writing the same output, wait for it instead of exiting (75).", _P,
              default=False, recipe="wait"),
    RunOption("timeout", ("--timeout",), "float",
              "Give up on an input after this long (it is recorded as failed; runs in a worker).", _R, low=0,
              low_open=True, high=1e9, metavar="SECONDS", recipe="timeout", sidecar=True),
    RunOption("shard", ("--shard",), "shard", "Process only shard I of N (a stable partition of the inputs by path).",
              _P, metavar="I/N", recipe="shard", sidecar=True),
    RunOption("executor", ("--executor",), "choice",
              "Run workers as local processes, or as tasks on a Ray cluster (pip install 'featx[ray]').", _R,
              default="local", choices=("local", "ray"), show_default=True, recipe="executor", sidecar=True),
    RunOption("ray_address", ("--ray-address",), "str",
              "Ray cluster to join (auto, HOST:6379, or ray://HOST:10001); default: $RAY_ADDRESS "
              "if set, else a local Ray.", _R, metavar="ADDRESS", recipe="ray-address"),
    RunOption("commit_every", ("--commit-every",), "float",
              "Commit what is done this often: a killed run loses at most this much work.", _P, default=2.0,
              low=0, show_default=True, metavar="SECONDS", recipe="commit-every"),
    RunOption("summary_json", ("--summary-json",), "str",
              "Also write the end-of-run summary as JSON to FILE (- for stderr).", _O, scope="cli", metavar="FILE"),
    RunOption("quiet", ("-q", "--quiet"), "flag", "No progress bar and no summary line.", _O, scope="cli",
              default=False),
)

BY_NAME: dict[str, RunOption] = {o.name: o for o in RUN_OPTIONS}
#: The options of a whole run (fields of ``Plan``) and of one output (fields of ``OutputPlan``).
RUN = tuple(o for o in RUN_OPTIONS if o.scope == "run")
PER_OUTPUT = tuple(o for o in RUN_OPTIONS if o.scope == "output")
#: Video/frame sampling: recorded together, checked together (``Plan.sampling``).
SAMPLING = tuple(o.name for o in RUN_OPTIONS if o.sampling)


class Invalid(ValueError):
    """A value an option refuses; ``str()`` is what the option expects."""


def convert(opt: RunOption, v: Any, base: str | None = None) -> Any:
    """``v`` checked and converted for option ``opt``, the same for a recipe's TOML value,
    a Python caller's and (through the click types made from the same row) a flag's.

    Strings are taken where a flag takes them (``"4G"``, ``"2/8"``, ``"256x256"``).
    ``base``: the folder relative paths are read from (a recipe's).  None stays None
    (the default) for options whose default is None.  Raises :class:`Invalid`.
    """
    if v is None and opt.default is None:
        return None
    k = opt.kind
    bad = Invalid(opt.expected)
    if k == "flag":
        if not isinstance(v, bool):
            raise bad
        return v
    if k in ("int", "float"):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (k == "int" and not isinstance(v, int)):
            raise bad
        if not math.isfinite(v) or (opt.low is not None and (v <= opt.low if opt.low_open else v < opt.low)) \
                or (opt.high is not None and v > opt.high):
            raise bad
        return float(v) if k == "float" else v
    if k == "choice":
        if v not in opt.choices:
            raise bad
        return v
    if k == "str":
        if not isinstance(v, str):
            raise bad
        return v
    if k == "path":
        if isinstance(v, os.PathLike):
            v = os.fspath(v)
        if not isinstance(v, str) or not v:
            raise bad
        return _based(v, base)
    if k == "paths":
        items = [v] if isinstance(v, (str, os.PathLike)) else v
        if not isinstance(items, (list, tuple)):
            raise bad
        items = [os.fspath(x) if isinstance(x, os.PathLike) else x for x in items]
        if not all(isinstance(x, str) and x for x in items):
            raise bad
        return tuple(_based(x, base) for x in items)
    if k == "size":
        return parse_size_pair(v, bad)
    if k == "shard":
        return parse_shard(v, bad)
    if k == "length":
        from .pooling import length_text, parse_length
        from .errors import UsageError

        if isinstance(v, bool) or not isinstance(v, (str, int, float)):
            raise bad
        try:
            return length_text(*parse_length(v, opt.flags[0]))
        except UsageError:
            raise bad from None
    if k == "stats":
        from .pooling import STATS

        items = [x.strip().lower() for x in v.split(",")] if isinstance(v, str) else v
        if not isinstance(items, (list, tuple)) or not items or not all(isinstance(x, str) for x in items):
            raise bad
        items = [x.strip().lower() for x in items]
        if any(x not in STATS for x in items) or len(set(items)) != len(items):
            raise bad
        return tuple(x for x in STATS if x in items)
    if k == "memory":
        from .memory import parse_size

        try:
            return parse_size(v)
        except (ValueError, TypeError):
            raise bad from None
    raise AssertionError(k)  # pragma: no cover


def _based(path: str, base: str | None) -> str:
    return path if base is None or path == "-" else os.path.join(base, os.path.expanduser(path))


def _int_pair(v: Any, read_text, bad: Exception) -> tuple[int, int]:
    """Two integers from a list or tuple of two, or from text through ``read_text``."""
    try:
        if isinstance(v, (list, tuple)):
            if len(v) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
                raise ValueError(v)
            a, b = v
        elif isinstance(v, str):
            a, b = read_text(v)
        else:
            raise ValueError(v)
    except (ValueError, TypeError):
        raise bad from None
    return int(a), int(b)


def parse_size_pair(v: Any, bad: Exception | None = None) -> tuple[int, int]:
    """``"640x480"``, ``"256"`` (a square), ``[640, 480]`` or ``(640, 480)`` -> ``(640, 480)``,
    each at least 1: the one reader of image sizes."""
    from .extractor import parse_pair

    bad = bad or Invalid(BY_NAME["resize"].expected)
    w, h = _int_pair(v, parse_pair, bad)
    if min(w, h) < 1:
        raise bad
    return w, h


def parse_shard(v: Any, bad: Exception | None = None) -> tuple[int, int]:
    """``"2/8"`` or ``(2, 8)`` -> ``(2, 8)`` with 1 <= I <= N: the one reader of shards."""
    bad = bad or Invalid(BY_NAME["shard"].expected)
    i, n = _int_pair(v, lambda text: [int(x) for x in text.split("/")], bad)
    if not 1 <= i <= n:
        raise bad
    return i, n


def closest(word: str, valid) -> str | None:
    """``did you mean NAME?`` for the one of ``valid`` closest to ``word`` (``-`` and ``_``
    alike), or None: the one "did you mean" of featx's messages (keys, tables, extractors)."""
    import difflib

    norm: dict[str, str] = {}
    for n in sorted({str(v) for v in valid}):  # "cell-size" before "cell_size": the - spelling is shown
        norm.setdefault(n.replace("_", "-"), n)
    same_case = [n for n in norm if n.lower() == word.replace("_", "-").lower()]   # HOG -> hog
    match = same_case or difflib.get_close_matches(word.replace("_", "-"), list(norm), n=1, cutoff=0.6)
    return f"did you mean {norm[match[0]]}?" if match else None


def sidecar_options(plan: Any, output: Any) -> dict[str, Any]:
    """The options an output's sidecar records, from the run's resolved plan and the
    output (its format resolved): each option marked ``sidecar``, then the sampling
    options together."""
    out: dict[str, Any] = {}
    for o in RUN_OPTIONS:
        if not o.sidecar:
            continue
        v = getattr(output if o.scope == "output" else plan, o.attr)
        out[o.name] = list(v) if isinstance(v, tuple) else v
    out["sampling"] = {n: getattr(plan, n) for n in SAMPLING if getattr(plan, n) is not None}
    return out


def pool_spec(output: Any):
    """The :class:`featx.pooling.PoolSpec` of an output's pooling options (``--pool-over``,
    ``--pool-stats``, ``--pool-window``, ``--pool-stride``, ``--pool-pyramid``), or None when
    it does not pool.  :class:`~featx.errors.UsageError` for a pooling option given without
    ``--pool-over``, and for what the spec itself refuses (a stride without a window,
    ``diff`` over an image's boxes), in the words of these flags."""
    from .errors import UsageError

    if getattr(output, "pool_over", None) is None:
        given = [o.flags[0] for o in RUN_OPTIONS if o.pooling and o.name != "pool_over"
                 and getattr(output, o.attr, o.default) not in (None, False)]
        if given:
            raise UsageError(f"{', '.join(given)} {'needs' if len(given) == 1 else 'need'} --pool-over",
                             "add --pool-over video (one row per video), or drop " + ", ".join(given))
        return None
    from .pooling import PoolSpec

    try:
        return PoolSpec.parse(output.pool_over, output.pool_stats, output.pool_window, output.pool_stride,
                              output.pool_pyramid)
    except UsageError as exc:
        raise pool_words(exc) from None


def pool_words(exc):
    """A :class:`~featx.errors.UsageError` of :mod:`featx.pooling` (whose words are those
    of ``featx pool``: ``--over``, ``--window``) in the words of extraction's flags
    (``--pool-over``, ``--pool-window``)."""
    import re

    from .errors import UsageError

    def say(text):
        return re.sub(r"--(over|stats|window|stride|pyramid)\b", r"--pool-\1", text) if text else text
    return UsageError(say(exc.message), say(exc.hint))


def markdown_table() -> str:
    """The run options as the Markdown table of docs/recipes.md (a test keeps the page equal
    to this): flags, recipe key, what a value must be, default, per output or per run."""
    rows = ["| option | recipe key | value | default | set | what it does |", "|---|---|---|---|---|---|"]
    for o in RUN_OPTIONS:
        flags = ", ".join(f"`{f}`" for f in o.flags) or "INPUTS (arguments)"
        key = f"`{o.recipe}`" if o.recipe else "—"
        if o.scope == "output":
            key += " (in `[[output]]`)" if o.recipe else ""
        default = "—" if o.default is None or o.default == () or o.kind == "flag" else f"`{o.default}`"
        scope = {"run": "per run", "output": "per output", "cli": "command line only"}[o.scope]
        rows.append(f"| {flags} | {key} | {o.expected} | {default} | {scope} | {o.help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"
