"""The small Python API for notebooks and scripts.

These functions run the same code as the CLI, so the numbers are the same::

    import featx, cv2
    img = cv2.cvtColor(cv2.imread("photo.jpg"), cv2.COLOR_BGR2RGB)   # RGB, like featx
    v = featx.extract(img, "hog", cell_size=16, resize=(256, 256))
"""
from __future__ import annotations

from typing import Any

import numpy as np

from . import registry, runopts
from .extractor import Extractor, Keypoints


def open_extractor(name: str, **params: Any) -> Extractor:
    """Build the extractor ``name`` with validated ``params`` (keyword names as on the CLI,
    with ``_`` for ``-``).  Reuse it for many images."""
    cls = registry.get(name)
    return cls.create(**params)


def extract(image: np.ndarray, name: str | Extractor, *, resize: tuple[int, int] | None = None,
            resize_mode: str = "stretch", **params: Any) -> np.ndarray | Keypoints:
    """Features of one image array, exactly as ``featx extract`` computes them.

    Parameters
    ----------
    image : ndarray
        ``uint8`` or ``uint16``, ``(H, W)`` grayscale or ``(H, W, 3)`` **RGB**
        (note: ``cv2.imread`` gives BGR; convert first).
    name : str or Extractor
        A registered extractor name, or an extractor from :func:`open_extractor`.
    resize : (width, height), optional
        As ``--resize WxH``.
    **params
        Extractor parameters, when ``name`` is a string.

    Returns
    -------
    ndarray (float32) or Keypoints
    """
    ext = name if isinstance(name, Extractor) else open_extractor(name, **params)
    if isinstance(name, Extractor) and params:
        raise TypeError("pass parameters to open_extractor(), not with an extractor instance")
    resize = _checked_resize(resize)
    image = np.asarray(image)
    if image.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"image must be uint8 or uint16, got {image.dtype}")
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise ValueError(f"image must be (H, W) or (H, W, 3), got shape {image.shape}")
    value = ext.extract_resized(image, resize, resize_mode)  # as the engine: detectors map boxes back
    if isinstance(value, Keypoints):
        return value
    return np.ascontiguousarray(value, dtype=np.float32)


def _checked_resize(resize: Any) -> tuple[int, int] | None:
    """``resize`` as the command line's ``--resize`` takes it (``(64, 64)``, ``"64x64"``,
    ``64``...), or a :class:`~featx.errors.UsageError`: sizes under 1x1, fractions, and
    sizes over the default pixel limit are refused before any pixel is touched."""
    from .engine.worker import DEFAULT_MAX_PIXELS
    from .errors import UsageError

    if resize is None:
        return None
    if isinstance(resize, int) and not isinstance(resize, bool):
        resize = (resize, resize)
    try:
        w, h = runopts.convert(runopts.BY_NAME["resize"], resize)
    except runopts.Invalid as exc:
        raise UsageError(f"resize = {resize!r}: expected {exc}, or (width, height)") from None
    if w * h > DEFAULT_MAX_PIXELS:
        raise UsageError(f"resize = {resize!r}: {w}x{h} is {w * h} pixels, over the limit of {DEFAULT_MAX_PIXELS}",
                         "resize to fewer pixels")
    return w, h


def read_image(path: str, name: str | Extractor | None = None, *, resize: tuple[int, int] | None = None,
               resize_mode: str = "stretch", exact: bool = False, max_pixels: int | None = None,
               max_memory: int | str | None = None) -> np.ndarray:
    """An image file's pixels as ``featx extract`` decodes them for the extractor ``name``.

    uint8/uint16, ``(H, W)`` or ``(H, W, 3)`` RGB, EXIF orientation applied.  Given an
    extractor (and the run's ``resize``), a JPEG is decoded at the reduced size the CLI
    uses for it (the largest DCT reduction that leaves the pixels the extractor needs,
    :meth:`~featx.extractor.Extractor.decode_size`), so that
    ``extract(read_image(p, ext, resize=r), ext, resize=r)`` is what the CLI writes;
    ``exact=True`` (as ``--exact-decode``) or no extractor: every pixel.

    ``max_pixels``, ``max_memory``: as ``--max-pixels`` and ``--max-memory`` (the same
    defaults: about 179 million pixels; half the machine's memory; 0 = no limit), checked
    against the file's header before any pixel is decoded.

    Raises :class:`featx.errors.InputError` for a file that cannot be decoded or is over a
    limit, :class:`featx.errors.UsageError` for a limit that is not one.
    """
    from . import memory, runopts
    from .decode import decode_image
    from .engine.worker import DEFAULT_MAX_PIXELS
    from .errors import UsageError

    try:
        max_pixels = runopts.convert(runopts.BY_NAME["max_pixels"], max_pixels)
        max_memory = runopts.convert(runopts.BY_NAME["max_memory"], max_memory)
        resize = runopts.convert(runopts.BY_NAME["resize"], resize)
    except runopts.Invalid as exc:
        raise UsageError(f"read_image: expected {exc}") from None
    min_size = None
    ext = None
    if name is not None and (not exact or isinstance(name, Extractor)):
        ext = name if isinstance(name, Extractor) else registry.get(name)()
        if not exact:
            min_size = ext.decode_size(resize, resize_mode)
    limit = memory.resolve(max_memory, 1)
    budget = None
    if limit:
        budget = memory.MemoryBudget.for_extractor(limit, ext, resize) if ext is not None else \
            memory.MemoryBudget(limit, lambda h, w: 0)
    return decode_image(str(path), max_pixels=DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels,
                        memory=budget, min_size=min_size)


#: The run options :func:`extract_files` takes as keywords (a run kept in memory has no
#: output file to overwrite, prune, hash, lock or commit).
_MEMORY_RUN_OPTIONS = frozenset(
    o.attr for o in runopts.RUN
    if o.attr not in ("inputs", "jobs", "overwrite", "hash", "prune", "wait", "commit_every", "regions",
                      "segments"))


#: Pooling during extraction, by output (``pool_over="video"``, ``pool_stats="mean,max"``, ...).
_POOL_OPTIONS = frozenset(o.attr for o in runopts.PER_OUTPUT if o.pooling)


def extract_files(inputs: str | list[str], name: str, *, jobs: int = 1, resize: tuple[int, int] | None = None,
                  resize_mode: str = "stretch", **params: Any):
    """Run a batch, as ``featx extract``, and get the results back in memory.

    Parameters
    ----------
    inputs : str or list of str
        Files and folders (folders are walked recursively, sorted), as on the CLI.
    name : str
        Extractor name; the other keywords of ``**params`` are its parameters.
    jobs, resize, resize_mode
        As the CLI's ``-j``, ``--resize``, ``--resize-mode``.
    **params
        Also every run option of ``featx extract`` that applies to a run kept in memory, by
        its name with ``_`` for ``-`` (:data:`featx.runopts.RUN_OPTIONS`): ``fps``, ``every``,
        ``start``, ``end``, ``max_frames``, ``frame_rate``, ``video``, ``frames``,
        ``timeout``, ``max_pixels``, ``max_memory``, ``exact_decode``, ``executor``,
        ``ray_address``, ``files_from``, ``null``, ``shard``; and pooling during
        extraction, ``pool_over`` (``"video"``: one row per video), ``pool_stats``
        (``"mean,max"``), ``pool_window`` (``"2s"``, ``"30f"``), ``pool_stride``,
        ``pool_pyramid``, whose keys then say what each pooled row covers
        (``start``, ``end``, ``frames``...).

    Returns
    -------
    values : ndarray (N, D) float32, or list
        Stacked vectors when the extractor gives fixed-length vectors (all of
        one length), else a list of arrays / :class:`~featx.extractor.Keypoints`.
    keys : list of dict
        One per row: ``{"path": ...}`` (plus ``frame``/``time`` for video frames).
    failures : list of (path, reason)
    """
    from .plan import OutputPlan, Plan, execute

    paths = [inputs] if isinstance(inputs, (str, bytes)) or hasattr(inputs, "__fspath__") else list(inputs)
    run = {k: params.pop(k) for k in list(params) if k in _MEMORY_RUN_OPTIONS}
    pool = {k: params.pop(k) for k in list(params) if k in _POOL_OPTIONS}
    plan = Plan(outputs=(OutputPlan(name, None, params=params, resize=resize, resize_mode=resize_mode, **pool),),
                inputs=tuple(str(p) for p in paths), jobs=jobs, **run)
    _check_script_guard(plan, "featx.extract_files()")
    result = execute(plan)
    out = result.outputs[0]
    sink = out.sink
    values = np.stack(sink.values) if sink.stacked and sink.values else sink.values
    if sink.stacked and not sink.values:   # (0, D) where the extractor fixes D before any image
        from .plan import _fixed_width

        spec = None
        try:
            r = out.plan.resize
            spec = out.extractor.output_spec(*(r[::-1] if r else (480, 640)))
        except Exception:  # noqa: BLE001 - only the shape of an empty result depends on it
            pass
        width = _fixed_width(out.extractor, spec, out.plan.resize) or 0
        pooling = runopts.pool_spec(out.plan)
        values = np.zeros((0, pooling.width(width) if pooling is not None else width), np.float32)
    return values, sink.keys, [(f.path, f.reason) for f in out.summary.failed]


def run(plan=None, /, **fields: Any):
    """Run a job as the command line does, from a :class:`~featx.plan.Plan`, a recipe file
    (``featx run`` reads the same TOML) or the plan's fields as keywords::

        featx.run("features.toml")
        featx.run(inputs=["photos/"], outputs=[{"extractor": "hog", "path": "hog.npy",
                                                 "resize": (256, 256)}], jobs=2)

    Returns a :class:`~featx.plan.Result` (``result.exit_code``, and each output's
    ``summary`` and ``sidecar``).  Usage errors raise :class:`~featx.errors.UsageError`;
    failed inputs are listed in the summaries, not raised.
    """
    from .plan import OutputPlan, Plan, execute
    from .recipe import load_recipe, override

    if plan is None:
        outs = tuple(o if isinstance(o, OutputPlan) else OutputPlan(**o) for o in fields.pop("outputs", ()))
        plan = Plan(outputs=outs, **fields)
    elif not isinstance(plan, Plan):
        plan = override(load_recipe(str(plan)), **fields)  # inputs given here replace the recipe's, as on the CLI
    elif fields:
        plan = plan.replace(**fields)
    _check_script_guard(plan, "featx.run()")
    return execute(plan)


def _check_script_guard(plan, what: str) -> None:
    """Fail at once, with one clear message, where a run's worker processes would run the
    calling script again: a script that calls featx at its top level, outside ``if __name__
    == "__main__":``, started with worker processes (``jobs`` > 1) by forkserver or spawn,
    which import the script in every worker (each would start its own run, and the run
    would end in "the worker process crashed").  Notebooks, ``python -c``, and scripts with
    the guard are never refused."""
    import ast
    import sys

    from . import host
    from .engine import process
    from .errors import UsageError

    jobs = plan.jobs or host.default_jobs()
    if plan.executor != "local" or jobs <= 1 or process.start_method(False) == "fork":
        return
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or not path or (getattr(main, "__spec__", None) is not None
                                    and str(main.__spec__.name).endswith("__main__")
                                    and str(main.__spec__.name) != "__main__"):
        return
    frame, line = sys._getframe(1), None
    while frame is not None:      # the outermost statement of the script that led here
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return
    try:
        with open(path, "rb") as fh:
            tree = ast.parse(fh.read())
    except (OSError, SyntaxError, ValueError):
        return
    for node in tree.body:
        if isinstance(node, ast.If) and "__main__" in ast.dump(node.test) and "__name__" in ast.dump(node.test) \
                and node.lineno <= line <= (node.end_lineno or node.lineno):
            return
    said = f"jobs={jobs}" if plan.jobs else f"jobs={jobs} (jobs not given: one worker per CPU)"
    raise UsageError(f"{what} with {said} starts worker processes, which import the script {path} "
                     "again: its call at the top level would start the run over in each of them",
                     'put the call under `if __name__ == "__main__":`, or pass jobs=1')


def list_extractors() -> dict[str, str]:
    """Registered extractors: name -> one-line summary (or ``BROKEN: reason``)."""
    return {i.name: (i.cls.summary if i.ok else f"BROKEN: {i.error}") for i in registry.discover()}


def inspect_output(path: str) -> dict[str, Any]:
    """What the output ``path`` (any format) is, as ``featx inspect --json`` prints it:
    extractor and parameters, rows, width, key and value columns, inputs, failures, the
    last run, versions, and whether the files agree with the state
    (see :func:`featx.inspect.inspect_output`)."""
    from .inspect import inspect_output as _inspect

    return _inspect(path)


def convert(src: str, dst: str, format: str | None = None, *, overwrite: bool = False) -> dict[str, Any]:
    """Write the output ``src`` again as ``dst`` in another format, without recomputing, as
    ``featx convert`` does (see :func:`featx.output.convert.convert`); returns the new
    output's info (``path``, ``format``, ``shape``, ``rows``)."""
    from .output.convert import convert as _convert

    return _convert(src, dst, format, overwrite=overwrite, argv=["featx.convert", src, dst])


def pool(src: str, dst: str, format: str | None = None, *, over: str | None = None, stats: Any = "mean",
         window: Any = None, stride: Any = None, pyramid: bool = False, segments: str | None = None,
         overwrite: bool = False) -> dict[str, Any]:
    """Pool the rows of the output ``src`` into ``dst``, as ``featx pool`` does (see
    :func:`featx.poolrun.pool`): ``over`` ``"video"`` (default), ``"image"``,
    ``"segment"`` or ``"track"``; ``stats`` ``"mean,max"`` or a list of ``mean``, ``std``,
    ``min``, ``max``, ``diff``; ``window``/``stride`` in seconds (``2``, ``"2.5s"``) or rows
    (``"30f"``); ``pyramid``; ``segments`` a CSV ``path,start,end[,label]``.  Returns the
    new output's info (``path``, ``format``, ``shape``, ``rows``, ``processed``,
    ``up_to_date``, ``dropped``, ``failures``); units that could not be pooled are in
    ``failures``, the rest is written."""
    from .poolrun import pool as _pool

    return _pool(src, dst, format, over=over, stats=stats, window=window, stride=stride, pyramid=pyramid,
                 segments=segments, overwrite=overwrite, argv=["featx.pool", src, dst])
