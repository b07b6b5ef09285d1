"""The run description, and the one function that runs it.

A :class:`Plan` is plain data: what to read (inputs, videos, frames,
sampling, regions), which outputs to write (each an extractor with its
parameters, its own ``resize``, format and path) and how to run (jobs,
executor, locks, timeouts, shards).  The command line (``featx extract``), a
``--config`` file, a recipe (``featx run recipe.toml``) and a Python caller
(``featx.run(...)``) all build one, and :func:`execute` runs it: one pass
over the inputs, each decoded once for every output that needs it, each
output with its own state, lock, sidecar and summary.  The sidecar records
the plan.

    plan = Plan(inputs=("photos/",), outputs=(
        OutputPlan("hog", "feats/hog.npy", resize=(256, 256), params={"cell_size": 16}),
        OutputPlan("cnn", "feats/emb.npy")), jobs=2)
    result = execute(plan)
    result.exit_code            # 0, 1 (some inputs failed), 74, 130 ...
"""
from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from . import runopts
from .errors import ExitCode, FeatxError, UsageError
from .output.memory import MemorySink

SAMPLING = runopts.SAMPLING


def _checked(obj: Any, opts, where: str = "") -> None:
    """Every run option of ``obj`` (a plan or an output) converted and checked as the
    table declares it (:func:`featx.runopts.convert`): a Python caller's values are
    refused as a flag's or a recipe key's are."""
    for o in opts:
        v = getattr(obj, o.attr)
        try:
            object.__setattr__(obj, o.attr, runopts.convert(o, v))
        except runopts.Invalid as exc:
            raise UsageError(f"{where}{o.attr} = {v!r}: expected {exc}") from None


class _OutputPlanBase:
    """One output: an extractor with its parameters, the size it works at, where it goes.

    ``path``: ``NAME.npy``, ``NAME.csv``, a ``folder/`` (npy-dir), ``-`` for CSV
    on stdout, or None to keep the rows in memory (:func:`featx.extract_files`).
    ``params``: the extractor's parameters, by their names (``cell_size`` or
    ``cell-size``), validated as the command line's options are.  The other fields are
    the per-output run options of :mod:`featx.runopts` (``format``, ``resize`` as
    ``(width, height)`` or ``"256x256"``, ``resize_mode``, ``sidecar``).
    """

    def __post_init__(self):
        _checked(self, [o for o in runopts.PER_OUTPUT if o.attr != "path"],
                 f"output {self.path}: " if isinstance(self.path, str) and self.path else "")

    def check(self) -> None:
        """Usage errors for values the command line would refuse (a Python caller's)."""
        where = f"output {self.path}: " if self.path else ""
        if not (self.path is None or (isinstance(self.path, str) and self.path)):
            raise UsageError(f"output path {self.path!r}: expected a path, or - for stdout")
        if not isinstance(self.params, dict):
            raise UsageError(f"{where}params: expected a dict of the extractor's parameters")
        _checked(self, [o for o in runopts.PER_OUTPUT if o.attr != "path"], where)

    def to_dict(self) -> dict[str, Any]:
        out = {"extractor": self.extractor, "path": self.path, "params": dict(self.params)}
        for o in runopts.PER_OUTPUT:
            v = getattr(self, o.attr)
            out[o.attr] = list(v) if isinstance(v, tuple) else v
        return out


OutputPlan = dataclasses.make_dataclass(
    "OutputPlan", [("extractor", str), ("path", "str | None"), ("params", dict, field(default_factory=dict))]
    + [(o.attr, Any, field(default=o.default)) for o in runopts.PER_OUTPUT if o.attr != "path"],
    bases=(_OutputPlanBase,), frozen=True, namespace={"__module__": __name__, "__doc__": _OutputPlanBase.__doc__})


class _PlanBase:
    """A whole run: inputs, outputs and how to run.  Its fields are ``outputs`` and the
    run options of :data:`featx.runopts.RUN_OPTIONS` (``max_memory`` is ``--max-memory``;
    None means the default), checked as the command line checks them."""

    def __post_init__(self):
        object.__setattr__(self, "outputs", tuple(self.outputs))
        _checked(self, runopts.RUN)

    def check(self) -> None:
        """Usage errors for values the command line would refuse (it checks its flags, a
        recipe its keys; a Python caller's plan is checked here, before any work)."""
        _checked(self, runopts.RUN)
        for o in self.outputs:
            if not isinstance(o, OutputPlan):
                raise UsageError(f"output {o!r}: expected an OutputPlan (or a dict of its fields)")
            o.check()

    def replace(self, **changes: Any) -> Plan:
        return dataclasses.replace(self, **changes)

    def resolved(self) -> Plan:
        """The plan with ``{shard}`` in output paths replaced by this run's shard (``2of8``,
        or ``all`` without ``shard``), so one recipe serves every shard of a job."""
        def sub(p):
            return with_shard(p, self.shard) if p else p

        if not any("{shard}" in (o.path or "") + (o.sidecar or "") for o in self.outputs):
            return self
        return self.replace(outputs=tuple(dataclasses.replace(o, path=sub(o.path), sidecar=sub(o.sidecar))
                                          for o in self.outputs))

    @property
    def sampling(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SAMPLING if getattr(self, k) is not None}

    def to_dict(self) -> dict[str, Any]:
        """The plan as plain data (what the sidecar records)."""
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "outputs":
                v = [o.to_dict() for o in v]
            elif isinstance(v, tuple):
                v = list(v)
            out[f.name] = v
        return out


Plan = dataclasses.make_dataclass(
    "Plan", [("outputs", "tuple[OutputPlan, ...]")] + [(o.attr, Any, field(default=o.default)) for o in runopts.RUN],
    bases=(_PlanBase,), frozen=True, namespace={"__module__": __name__, "__doc__": _PlanBase.__doc__})


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def with_shard(path: str, shard: tuple[int, int] | None) -> str:
    """``path`` with ``{shard}`` replaced: ``2of8`` for shard 2 of 8, ``all`` without shards."""
    return path.replace("{shard}", f"{shard[0]}of{shard[1]}" if shard else "all")


@dataclass
class OutputResult:
    plan: OutputPlan
    summary: Any                  # featx.output.output.Summary
    sidecar: str | None
    extractor: Any = None         # the extractor instance (its provenance, labels)
    sink: Any = None


@dataclass
class Result:
    """What a run did: one :class:`OutputResult` per output, and what enumerating found."""

    outputs: list[OutputResult]
    stats: Any                    # featx.inputs.Enumeration

    @property
    def exit_code(self) -> int:
        sums = [o.summary for o in self.outputs]
        err = next((s.error for s in sums if s.error is not None), None)
        if err is not None:
            return int(err.exit_code)
        if any(s.interrupted for s in sums):
            return int(ExitCode.INTERRUPTED)
        if any(s.failed or s.partial for s in sums):
            return int(ExitCode.ITEMS_FAILED)
        return int(ExitCode.OK)


# ---------------------------------------------------------------------------
# building


@dataclass
class _Built:
    """A plan turned into live objects: extractors, sinks, engine options, input stream."""

    plan: Plan
    classes: list
    extractors: list
    sinks: list
    run: Plan
    video_mode: bool
    temporal: bool
    jobs: int
    max_pixels: int | None
    max_memory: int | None
    stats: Any = None
    pools: list = field(default_factory=list)   # each output's PoolSpec (None: it does not pool)
    keys: list = field(default_factory=list)    # each output's key columns as extracted (before pooling)


def extractor_class(name: str) -> type:
    """The extractor class an output names: a registered name (``detect`` too: the Haar
    cascade region finder of ``featx detect``) or a ``module:Class`` target."""
    from . import registry
    from .errors import PluginError
    from .extractor import Extractor

    if not isinstance(name, str) or not name:
        raise PluginError(f"extractor {name!r}: expected an extractor's name", "featx list names them")
    if ":" in name:
        try:
            cls = registry.load_target(name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise PluginError(f"cannot load the extractor {name}: {type(exc).__name__}: {exc}",
                              "name a registered extractor (featx list), or module:Class of one") from None
        if not (isinstance(cls, type) and issubclass(cls, Extractor)):
            raise PluginError(f"{name} is not a featx extractor", "featx list names the extractors")
        return cls
    return registry.get(name)


def _check_inputs(plan: Plan) -> None:
    from . import inputs

    if not plan.outputs:
        raise UsageError("no outputs", "name at least one output")
    if plan.regions and (plan.inputs or plan.files_from):
        raise UsageError("--regions names the inputs itself", "drop the INPUTS arguments, or drop --regions")
    if plan.segments and plan.regions:
        raise UsageError("--segments and --regions cannot be combined",
                         "--regions names boxes of frames, --segments stretches of time: use one of them")
    if plan.segments and (plan.inputs or plan.files_from):
        raise UsageError("--segments names the inputs itself", "drop the INPUTS arguments, or drop --segments")
    if not plan.inputs and not plan.files_from and not plan.regions and not plan.segments:
        raise UsageError("no inputs given", "name image files or folders, or - to read paths from stdin")
    if sum(1 for a in plan.inputs if a == "-") + sum(1 for a in plan.files_from if a == "-") > 1:
        raise UsageError("stdin (-) can be read only once")
    inputs.check_named(plan.inputs)
    for lf in plan.files_from:  # (looked at, not opened: a FIFO list must be read once, later)
        if lf == "-":
            continue
        try:
            is_dir = os.path.isdir(lf)
            os.stat(lf)
            why = "a folder" if is_dir else (None if os.access(lf, os.R_OK) else "Permission denied")
        except OSError as exc:
            why = exc.strerror or str(exc)
        if why:
            raise UsageError(f"cannot read the list --files-from {lf}: {why}",
                             "check the spelling; nothing was written")


def _check_outputs(plan: Plan) -> None:
    from .output.sinks import canonical_output

    paths = [o.path for o in plan.outputs]
    if sum(1 for p in paths if p == "-") > 1:
        raise UsageError("only one output can go to stdout (-)")
    seen: dict[str, str] = {}
    for o in plan.outputs:
        if o.sidecar == "-":  # (it was written to a file named '-' in the working folder)
            raise UsageError("a sidecar is a file: --sidecar - would name a file '-'",
                             "name a file (--sidecar run.json, or ./- if that is the name you mean); "
                             "--summary-json - prints the end-of-run summary")
        if o.path in (None, "-"):
            continue
        key = canonical_output(o.path).rstrip("/" + os.sep)
        if key in seen:
            raise UsageError(f"two outputs are written to {o.path}", "give each output its own path")
        seen[key] = o.path


def _side_doc(path: str) -> dict | None:
    """The JSON object in ``path``, or None (unreadable, too large, not a JSON object)."""
    import json

    try:
        if os.path.getsize(path) > 256 << 20:
            return None
        with open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def featx_side_file(path: str) -> bool:
    """Whether ``path`` holds a side file featx writes: a sidecar (``featx_sidecar``) or an
    end-of-run summary (``--summary-json``).  Only such a file is replaced without
    ``--overwrite``: a sidecar or summary named onto a photo, an output or notes is refused."""
    doc = _side_doc(path)
    if doc is None:
        return False
    return "featx_sidecar" in doc or {"status", "output"} <= doc.keys() or isinstance(doc.get("outputs"), list)


def _sidecar_owner(path: str) -> str | None:
    """The output whose sidecar ``path`` is (as that sidecar records it), or None."""
    doc = _side_doc(path)
    if doc is None or "featx_sidecar" not in doc or not isinstance(doc.get("output"), dict):
        return None
    owner = doc["output"].get("path")
    return owner if isinstance(owner, str) and owner else None


def check_side_file(path: str, what: str, overwrite: bool, output: str | None = None) -> None:
    """A sidecar or summary file may be written at ``path``: it does not exist, or featx
    wrote it, or ``overwrite``.  Anything that is not a regular file is never replaced.
    Nor, without ``overwrite``, is the sidecar of another output that exists (``output``:
    the one this sidecar is written for; None for a summary file): that output's
    provenance and failure list would be lost.  An output's own ``OUTPUT.featx.json`` is
    always its own (a folder of outputs moved elsewhere keeps working)."""
    from .output.atomic import check_replaceable

    check_replaceable(path, what, overwrite=overwrite, ours=featx_side_file)
    owner = None if overwrite else _sidecar_owner(path)
    if owner is not None:
        from .output.sinks import canonical_output

        def same(a: str, b: str) -> bool:
            return a == b or (a != "-" and b != "-" and canonical_output(a) == canonical_output(b))

        if (output is None or not same(owner, output)) and owner != "-" and os.path.exists(owner) \
                and not (output and path == canonical_output(output) + ".featx.json"):
            raise UsageError(f"the {what} {path} is the sidecar of the output {owner}",
                             "name a file of its own, or pass --overwrite to replace it; nothing was written")


def _check_files(plan: Plan, built_sinks: list, summary_json: str | None = None) -> None:
    """No two outputs (nor an output's data and its own sidecar) may write one file: an npy
    output's index is NAME.index.csv, and sidecars can be named anywhere.  A sidecar (and
    the ``--summary-json`` file) never replaces a file featx did not write, without
    ``--overwrite``."""
    from .output.sinks import canonical_output

    owner: dict[str, str] = {}
    for o, sink in zip(plan.outputs, built_sinks):
        if o.path is None:
            continue
        sidecar = canonical_output(o.sidecar) if o.sidecar else sink.sidecar_path
        if o.sidecar:
            _check_folder(sidecar, "sidecar")
        if sidecar:
            check_side_file(sidecar, "sidecar", plan.overwrite, o.path)
        files = [p for p in sink.paths() + [sink.state_path, sink.lock_path] if p] if o.path != "-" else []
        if sidecar in files:
            raise UsageError(f"the sidecar {o.sidecar} and the output {o.path} are the same file",
                             "name the sidecar apart (the default is OUTPUT.featx.json)")
        for f in files + ([sidecar] if sidecar else []):
            if f in owner and owner[f] != o.path:
                raise UsageError(f"the outputs {owner[f]} and {o.path} would write the same file {f}",
                                 "give each output (and its sidecar) names of its own")
            owner[f] = o.path
    _check_not_an_input(plan, owner, summary_json)
    if summary_json and summary_json != "-":
        summary = canonical_output(summary_json)
        if summary in owner:
            raise UsageError(f"--summary-json {summary_json} is a file of the output {owner[summary]}",
                             "name the summary file apart; nothing was written")
        _check_folder(summary, "summary file")
        check_side_file(summary, "summary file", plan.overwrite)


def _check_folder(path: str, what: str) -> None:
    """A side file named by the user (--sidecar, --summary-json) goes into a folder that
    exists: it was a traceback (at the start for a sidecar, after all the work for a summary)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"the folder of the {what} {path} does not exist", "create it first; nothing was written")


def _check_not_an_input(plan: Plan, owner: dict[str, str], summary_json: str | None) -> None:
    """No file the run writes (an output's data, index, sidecar; the summary) may be a file
    the run reads by name: an input file, the --regions list, a --files-from list.  Even
    with ``--overwrite``: ``-o photo.png --format csv --overwrite`` deleted the photo, then
    failed it as missing."""
    named = [a for a in plan.inputs if a != "-"] + [lf for lf in plan.files_from if lf != "-"]
    if plan.regions:
        named.append(plan.regions)
    if plan.segments:
        named.append(plan.segments)
    ids: dict[tuple[int, int], str] = {}
    for a in named:
        try:
            st = os.stat(a)
        except OSError:
            continue
        if not os.path.isdir(a):
            ids[(st.st_dev, st.st_ino)] = a
    if not ids:
        return
    writes = list(owner.items()) + ([(summary_json, None)] if summary_json and summary_json != "-" else [])
    for f, out in writes:
        try:
            st = os.stat(f)
        except OSError:
            continue
        read = ids.get((st.st_dev, st.st_ino))
        if read is not None:
            what = f"the output {out}" if out is not None else "--summary-json"
            raise UsageError(f"{what} would write {f}, which this run reads ({read})",
                             "name the output apart from its inputs; nothing was written")


def build(plan: Plan, *, descriptors: bool = False, on_row: Callable[[int, dict, Any], None] | None = None,
          summary_json: str | None = None) -> _Built:
    """Check ``plan`` and build its extractors, sinks and engine options (usage errors up
    front, before anything is created).  ``descriptors``, ``on_row``, ``summary_json``: see
    :func:`execute`."""
    from . import host, inputs, memory
    from .engine import loop
    from .extractor import build_params, construct
    from .output import sinks

    plan.check()
    plan = plan.resolved()
    _check_inputs(plan)
    _check_outputs(plan)
    jobs = plan.jobs
    if not jobs:  # with Ray: one worker per CPU of the cluster, which RayExecutor finds out
        jobs = 0 if plan.executor == "ray" else host.default_jobs()
    classes = [extractor_class(o.extractor) for o in plan.outputs]
    extractors = []
    for cls, o in zip(classes, plan.outputs):
        # the parameters first, then one extractor (a cnn reads and checks its model file)
        params = build_params(cls, dict(o.params))
        runtime = {}
        if getattr(params, "threads", None) == 0 and jobs >= 1:
            # engines with their own threads (ONNX Runtime) get the cores the workers leave them,
            # set explicitly so that their idle threads sleep: at -j 1 too, where the next batch
            # decodes on a thread of the same process and spinning threads would take its core
            runtime["threads"] = max(1, host.default_jobs() // jobs)
        if plan.executor == "ray" and getattr(params, "threads", None) == 0:
            runtime["threads"] = 1  # one Ray worker per CPU
        if runtime:
            params = dataclasses.replace(params, **runtime)
        extractors.append(construct(cls, params))
    sampling = plan.sampling
    if sampling:
        inputs.sampling_of(sampling)  # invalid combinations are usage errors, before any work
        inputs.check_sampling_applies(plan.inputs, sampling, files_from=plan.files_from, frames=plan.frames)
        if (plan.fps is not None or plan.start is not None or plan.end is not None) and plan.frames \
                and plan.frame_rate is None:
            raise UsageError("sampling frame folders by time (--fps, --start, --end) needs --frame-rate")
    temporal = any(e.temporal for e in extractors)
    video_mode = bool(plan.video or plan.frames or sampling or temporal
                      or any(inputs.is_video_name(a) for a in plan.inputs if a != "-"))
    if plan.regions and video_mode:
        if temporal:
            name = next(e.name for e in extractors if e.temporal)
            raise UsageError(f"{name} needs consecutive frames; it cannot run on --regions boxes")
        raise UsageError("--regions names its images and video frames itself",
                         "drop --video, --frames and the sampling options (--every, --fps, ...)")
    if plan.segments:
        _check_segments(plan, extractors)
        video_mode = True
    tracker = next((e for e in extractors if e.row_keys), None)
    if tracker is not None and (plan.regions or not video_mode):
        what = "--regions boxes" if plan.regions else "still images"
        raise UsageError(f"{tracker.name} --track links the boxes of consecutive video frames; it cannot "
                         f"run on {what}",
                         "give a video file, --video for the videos inside folders, or --frames for "
                         "folders of frames")
    keys = inputs.region_keys(plan.regions) if plan.regions else inputs.SEGMENT_KEYS if plan.segments else \
        (inputs.VIDEO_KEYS if video_mode else ("path",))
    pools = [_pool_spec(plan, ext, o, keys_with(keys, ext.row_keys), video_mode)
             for ext, o in zip(extractors, plan.outputs)]
    max_pixels = plan.max_pixels
    if max_pixels is None:
        max_pixels = loop.DEFAULT_MAX_PIXELS
    max_memory = memory.resolve(plan.max_memory, jobs)  # bytes per worker, None: no limit
    built_sinks = []
    base_keys = keys
    source_keys = []   # each output's key columns as extracted (before any pooling)
    for ext, o, pool in zip(extractors, plan.outputs, pools):
        keys = keys_with(base_keys, ext.row_keys)
        source_keys.append(keys)
        spec = None
        try:
            spec = ext.output_spec(*(o.resize[::-1] if o.resize else (480, 640)))
        except FeatxError as exc:
            if o.resize:  # every image would fail the same way: say it once, before any work
                raise UsageError(f"{_which(plan, o)}--resize {o.resize[0]}x{o.resize[1]}: {exc.message}",
                                 exc.hint) from None
        memory.check_resize(o.resize, ext, max_memory, max_pixels)
        out_keys = keys if pool is None else pool.key_columns(keys)
        if o.path is None:
            built_sinks.append(MemorySink(stacked=ext.output_kind() == "vector" and not descriptors,
                                          key_columns=out_keys,
                                          on_row=None if on_row is None else functools.partial(on_row, len(built_sinks))))
            continue
        width = _fixed_width(ext, spec, o.resize)
        if pool is None:
            columns, labels, label_columns = (spec.columns, spec.labels, spec.label_columns) if spec else (None, None, ())
        else:  # pooled values: {stat}.{col}; class indices pooled are no class (no names written for them)
            columns = pool.columns(spec.columns, width) if width else None
            labels, label_columns = None, ()
            width = pool.width(width) if width else None
        built_sinks.append(sinks.make_sink(o.path, o.format, overwrite=plan.overwrite,
                                           columns=columns, kind=ext.output_kind(),
                                           key_columns=out_keys, labels=labels, label_columns=label_columns))
        built_sinks[-1].check_kind(ext.output_kind(), ext.name)  # (keypoints in a csv...) before any work
        if pool is not None and columns is None:   # D known at the first row: the CSV header's names then
            built_sinks[-1].names_of = functools.partial(_pooled_names, pool)
        if width and hasattr(type(built_sinks[-1]), "expected_width"):
            built_sinks[-1].expected_width = width   # an output with no rows is (0, D)
    _check_files(plan, built_sinks, summary_json)
    # what the engine reads: this plan with its defaults resolved (0: no limit)
    run = plan.replace(jobs=jobs, max_pixels=max_pixels, max_memory=max_memory or 0,
                       exact_decode=plan.exact_decode or bool(plan.regions))  # a box may need every pixel
    return _Built(plan, classes, extractors, built_sinks, run, video_mode, temporal, jobs, max_pixels, max_memory,
                  pools=pools, keys=source_keys)


def _pooled_names(pool, width: int) -> list[str]:
    """The names of the pooled values of a row of ``width`` values (no names from the extractor)."""
    d = width // max(1, len(pool.parts) * len(pool.stats))
    return pool.columns(None, d)


def _pool_spec(plan: Plan, ext, o: OutputPlan, keys: tuple[str, ...], video_mode: bool):
    """Output ``o``'s pooling (:class:`featx.pooling.PoolSpec`), None when it does not pool;
    a usage error, before any work, for pooling that cannot apply to this run's rows."""
    spec = runopts.pool_spec(o)
    if spec is None:
        return None
    where = _which(plan, o)
    kind = ext.output_kind()
    if kind != "vector":
        what = {"keypoints": "a set of keypoints per image", "regions": "boxes (one row per region found)",
                "dense": "a map per image"}.get(kind, f"{kind} rows")
        hint = ("encode the keypoints into one vector per image first (--encode bovw, vlad or fisher "
                "with --codebook FILE), or use a vector extractor") if kind == "keypoints" else \
            "use an extractor that gives one vector per image (featx list)"
        raise UsageError(f"{where}--pool-over pools vectors: {ext.name} gives {what}", hint)
    if spec.over == "image" and not plan.regions:
        raise UsageError(f"{where}--pool-over image pools the boxes of each picture: it needs --regions",
                         "name the boxes with --regions FILE (from featx detect), or use --pool-over video")
    if spec.over == "video" and not video_mode:
        raise UsageError(f"{where}--pool-over video pools the frames of each video or frame folder: these "
                         "inputs are images, one row per image already",
                         "name videos (or --video, --frames), or use --pool-over image with --regions")
    if spec.over == "video" and plan.regions and "frame" not in keys:
        raise UsageError(f"{where}--pool-over video pools the frames of a video: the boxes of {plan.regions} "
                         "are of still images", "use --pool-over image (one row per picture)")
    if spec.window is not None and spec.window_unit == "s" and plan.frames and plan.frame_rate is None:
        raise UsageError(f"{where}--pool-window in seconds needs the frames' times: frame folders have them "
                         "with --frame-rate", "add --frame-rate RATE, or give the window in rows (30f)")
    try:
        spec.key_columns(keys)
    except UsageError as exc:
        raise runopts.pool_words(exc) from None
    return spec


def keys_with(keys: tuple[str, ...], extra: tuple[str, ...]) -> tuple[str, ...]:
    """The key columns ``keys`` with ``extra`` ones (an extractor's ``row_keys``), in
    :data:`featx.output.keys.KEY_COLUMNS` order."""
    if not extra:
        return keys
    from .output.keys import KEY_COLUMNS

    have = set(keys) | set(extra)
    return tuple(c for c in KEY_COLUMNS if c in have) + tuple(c for c in keys if c not in KEY_COLUMNS)


def _check_segments(plan: Plan, extractors: list) -> None:
    """A segments file is usable before any work: readable, every row valid (see
    :func:`~featx.inputs.read_segments`), a frame folder only with ``--frame-rate``, and
    no extractor that needs consecutive frames (a segment's sampled frames are not)."""
    from . import inputs

    temporal = next((e.name for e in extractors if e.temporal), None)
    if temporal:
        raise UsageError(f"{temporal} needs consecutive frames; it cannot run on --segments",
                         "extract it over the whole video, then pool by segment (featx pool --segments)")
    tracker = next((e.name for e in extractors if e.row_keys), None)
    if tracker:  # segments skip frames, and a frame of two segments comes twice
        raise UsageError(f"{tracker} --track links the boxes of consecutive video frames; it cannot run on "
                         "--segments", "track over the whole video (featx detect VIDEO --track)")
    if plan.frames:
        raise UsageError("--segments names its videos and frame folders itself", "drop --frames")
    for inp in inputs.read_segments(plan.segments):
        if inp.kind == "frames" and plan.frame_rate is None:
            raise UsageError(f"--segments {plan.segments}: {inp.path} is a frame folder, whose frames have "
                             "no time without --frame-rate", "give the folder's frame rate (--frame-rate)")


def _fixed_width(ext, spec, resize) -> int | None:
    """D of every row of a vector output, when the extractor fixes it before any image
    (with ``resize``, or whatever the image size), else None."""
    if spec is None or spec.kind != "vector" or spec.length is None:
        return None
    if resize:
        return spec.length
    try:
        return spec.length if ext.output_spec(240, 320).shape == spec.shape else None
    except FeatxError:
        return None


def _which(plan: Plan, o: OutputPlan) -> str:
    return f"{o.extractor} ({o.path}): " if len(plan.outputs) > 1 else ""


def input_stream(built: _Built, stdin=None) -> Iterator:
    from . import inputs

    plan = built.plan
    built.stats = inputs.Enumeration()
    if plan.regions:
        return inputs.read_regions(plan.regions)
    if plan.segments:
        return inputs.read_segments(plan.segments)
    return inputs.enumerate_inputs(plan.inputs, files_from=plan.files_from, null=plan.null, stats=built.stats,
                                   stdin=stdin, videos=built.video_mode, frames=plan.frames or built.temporal,
                                   sequence=built.temporal)


# ---------------------------------------------------------------------------
# running


def execute(plan: Plan, *, on_failure: Callable[[Any, list[int]], None] | None = None,
            on_note: Callable[[str], None] | None = None, progress: Callable[[int | None, str], Any] | None = None,
            stdin=None, fork: bool = False, descriptors: bool = False,
            on_row: Callable[[int, dict, Any], None] | None = None, summary_json: str | None = None) -> Result:
    """Run ``plan``: check it, build it, lock its outputs, extract, commit, write the sidecars.

    ``on_failure(failure, outputs)``: a failed input (``failure.path``,
    ``failure.reason``) and the indices of the outputs it failed for;
    ``on_note(text)``: things worth saying (resumed, rebuilt, waiting for a
    lock); ``progress(total, unit)``: makes a tqdm-like display (``update(n)``,
    ``total``) once the run knows its total of items (None when not cheap to
    know, see :mod:`featx.progress`) and their unit (``"images"``, ``"frames"``,
    ``"regions"``).  Usage errors
    (:class:`~featx.errors.UsageError`) are raised before anything is
    created; an output that cannot be written ends in its summary's
    ``error`` (see :attr:`Result.exit_code`).  ``fork``: this process may be
    forked to start the worker pool (the CLI's may: it has run nothing
    threaded; see :func:`featx.engine.process.start_method`).  ``descriptors``: each
    extractor gives the local descriptors codebooks are learnt from
    (:func:`featx.codebook.local_descriptors`), not its output; ``on_row(k, key,
    value)``: the rows of in-memory output ``k`` (path None) are handed to it in input
    order instead of being kept.  ``summary_json``: a file the caller will write the summary
    to, checked with the outputs' files (never one of theirs, never a file featx did not write
    without ``--overwrite``).
    """
    from . import provenance
    from .engine import loop, process

    built = build(plan, descriptors=descriptors, on_row=on_row, summary_json=summary_json)
    plan = built.plan   # checked, {shard} resolved
    if built.jobs == 1 and plan.executor == "local":
        process.setup_worker_process()  # -j 1 means one core: no OpenCV threads behind its back
    feed = None
    if progress is not None:
        from .progress import Feed, count

        total, weights = count(built)
        unit = "regions" if plan.regions else ("frames" if built.video_mode else "images")
        feed = Feed(progress(total, unit), weights)
        feed.pooled = {k for k, pool in enumerate(built.pools) if pool is not None}
    stream = input_stream(built, stdin)
    targets = [loop.Target(ext, sink, o.resize, o.resize_mode, describe=descriptors, pool=pool, source_keys=keys)
               for ext, sink, o, pool, keys in zip(built.extractors, built.sinks, plan.outputs, built.pools,
                                                   built.keys)]
    started = provenance.now()
    results = [OutputResult(o, None, None if o.path is None else (o.sidecar or sink.sidecar_path), ext, sink) for o, ext, sink in zip(plan.outputs, built.extractors, built.sinks)]

    def write_sidecars(summaries) -> None:
        for r, s in zip(results, summaries):
            if r.sidecar:
                provenance.write(r.sidecar, sidecar_record(built, r, s, started))

    try:
        summaries = loop.run(targets, stream, built.run, on_failure=on_failure, on_note=on_note,
                             progress=feed, on_start=write_sidecars, fork=fork)
    except loop.NoInputs:
        raise UsageError(nothing_found(plan, built.stats, built.video_mode),
                         "name image files or folders that hold images; nothing was written") from None
    stats = built.stats
    for r, s in zip(results, summaries):
        r.summary = s
        if stats is not None:
            s.skipped_non_images = stats.skipped_non_images
            s.skipped_videos = stats.skipped_videos
            s.skipped_special = stats.skipped_special
            s.skipped_folder_links = stats.skipped_folder_links
    for r in results:
        if not r.sidecar:
            continue
        try:
            provenance.write(r.sidecar, sidecar_record(built, r, r.summary, started))
        except OSError as exc:
            if r.summary.error is None:
                r.summary.error = FeatxError(f"cannot write the sidecar {r.sidecar}: {exc.strerror or exc}")
    return Result(results, stats)


def sidecar_record(built: _Built, r: OutputResult, summary, started: str) -> dict:
    """One output's sidecar: its extractor and options (as one-output runs always recorded
    them), the whole run description, and this output's summary."""
    from . import provenance
    from .engine import loop
    from .extractor import params_to_dict

    plan, o = built.plan, r.plan
    resolved = plan.replace(jobs=built.jobs, max_pixels=built.max_pixels or None, max_memory=built.max_memory,
                            video=built.video_mode)  # what the run used, defaults resolved
    options = runopts.sidecar_options(resolved, dataclasses.replace(o, format=r.sink.format))
    options["decode"] = loop.decode_mode(loop.Target(r.extractor, r.sink, o.resize, o.resize_mode), built.run)
    details = getattr(r.extractor, "provenance", None)
    extra = {"run": plan.to_dict()}
    pool = runopts.pool_spec(o)
    if pool is not None:   # pooled during extraction: recorded as featx pool records it (only then)
        extra["pool"] = pool.record()
    if isinstance(details, dict):
        extra["extractor_details"] = details
    return provenance.record(extractor=r.extractor.name, params=params_to_dict(r.extractor.params),
                             options=options, summary=summary, started=started, extra=extra)


def nothing_found(plan: Plan, stats, video_mode: bool) -> str:
    """``no images in photos/ (3 videos skipped: --video takes them)``"""
    where = plan.regions or plan.segments or ", ".join([a for a in plan.inputs if a != "-"] + (["stdin"] if "-" in plan.inputs
                                                                             else []) + list(plan.files_from)) \
        or "the inputs"
    what = "videos or images" if video_mode else "images"
    skipped = []
    if stats is not None and stats.skipped_videos:
        n = stats.skipped_videos
        skipped.append(f"{n} video{'s' if n != 1 else ''} skipped: --video takes them")
    if stats is not None and stats.skipped_non_images:
        n = stats.skipped_non_images
        skipped.append(f"{n} non-image file{'s' if n != 1 else ''} skipped")
    return f"no {what} in {where}" + (f" ({'; '.join(skipped)})" if skipped else "")
