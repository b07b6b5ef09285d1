"""The extractor contract: parameter declaration, output spec, base class.

An extractor is a class with

* ``name`` and ``summary`` (one line), and a docstring that ``featx info``
  shows;
* ``Params``: a frozen dataclass whose fields are declared with
  :func:`param`.  That one declaration drives the CLI options, the config
  file keys, ``featx info``, validation and the provenance record;
* ``output_spec(height, width)``: what ``extract`` returns for an image of
  that size (after any resize done by the engine);
* ``extract(image)``: pixels in, numbers out.  ``image`` is a numpy array,
  ``uint8`` or ``uint16``, shaped ``(H, W)`` (grayscale) or ``(H, W, 3)``
  (RGB order).  See :mod:`featx.imageops` for the conversions extractors use.

Optional capabilities, declared on the class (defaults below):

* ``decode_size(resize, mode)``: the fewest pixels the extractor needs from the
  decoder, so that a big JPEG is decoded at a reduced size (DCT scaling);
* ``preprocess(image)`` + ``extract_batch(inputs)``: an image is brought to the
  extractor's working form as soon as it is decoded, so that a batch holds
  network inputs, not photos.

Extractors never open files, print, or know about the CLI.  They are built
once per worker from frozen parameters.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from .errors import FeatxError, ParamError, UsageError

# ---------------------------------------------------------------------------
# Parameter declaration


def param(default: Any, help: str, *, min: float | None = None, max: float | None = None,
          choices: tuple | list | None = None, metavar: str | None = None, show_only: bool = False) -> Any:
    """Declare one extractor parameter (a dataclass field with metadata).

    ``min``/``max`` are inclusive bounds for numbers; ``choices`` lists the
    allowed values of a string parameter.  Tuple-valued parameters such as a
    grid are annotated ``tuple[int, int]`` and written ``ROWSxCOLS`` on the
    command line and in config files; with ``metavar="WxH"`` the pair is an
    image size, written ``WIDTHxHEIGHT`` like every size featx takes.

    ``show_only`` marks a parameter that changes only the picture ``featx show``
    draws, never the numbers: ``featx extract`` and ``featx codebook`` do not offer
    it as an option (a config file may still hold it for ``show``).
    """
    meta = {"help": help, "min": min, "max": max,
            "choices": tuple(choices) if choices is not None else None, "metavar": metavar,
            "show_only": bool(show_only)}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class ParamInfo:
    """Everything known about one declared parameter."""

    name: str
    type: type            # int, float, bool, str or tuple (a pair of ints)
    optional: bool        # ``None`` is allowed
    default: Any
    help: str
    min: float | None
    max: float | None
    choices: tuple | None
    metavar: str | None
    show_only: bool = False   # only `featx show` uses it

    @property
    def pair_form(self) -> str:
        """How a pair is written: ``WIDTHxHEIGHT`` for a size, else ``ROWSxCOLS``."""
        return "WIDTHxHEIGHT" if self.metavar == "WxH" else "ROWSxCOLS"

    @property
    def option(self) -> str:
        """The command-line spelling: ``--cell-size``."""
        return "--" + self.name.replace("_", "-")

    def describe_range(self) -> str:
        if self.choices:
            return "one of " + ", ".join(str(c) for c in self.choices)
        if self.type is tuple:
            lo = "" if self.min is None else f", each >= {self.min:g}"
            return f"{self.pair_form}{lo}"
        if self.min is not None and self.max is not None:
            return f"{self.min:g} to {self.max:g}"
        if self.min is not None:
            return f">= {self.min:g}"
        if self.max is not None:
            return f"<= {self.max:g}"
        return ""


def _resolve_type(tp: Any) -> tuple[type, bool]:
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            raise TypeError(f"unsupported parameter type {tp!r}")
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is tuple or tp is tuple:
        return tuple, optional
    if tp in (int, float, bool, str):
        return tp, optional
    raise TypeError(f"unsupported parameter type {tp!r}")


def param_infos(params_cls: type) -> list[ParamInfo]:
    """The declared parameters of a ``Params`` dataclass, in order."""
    hints = typing.get_type_hints(params_cls)
    out = []
    for f in dataclasses.fields(params_cls):
        tp, optional = _resolve_type(hints[f.name])
        m = f.metadata
        out.append(ParamInfo(name=f.name, type=tp, optional=optional, default=f.default,
                             help=m.get("help", ""), min=m.get("min"), max=m.get("max"),
                             choices=m.get("choices"), metavar=m.get("metavar"),
                             show_only=bool(m.get("show_only", False))))
    return out


def parse_pair(text: str) -> tuple[int, int]:
    """Parse ``"4x3"`` into ``(4, 3)``; one number is a square (``"256"`` is ``256x256``).
    These two spellings are the documented ones (docs/usage.md); nothing else
    is guessed at."""
    s = str(text).strip()
    parts = s.split("x")
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2:
        raise ValueError(f"expected AxB, got {text!r}")
    return int(parts[0]), int(parts[1])


def coerce_value(info: ParamInfo, value: Any, extractor: str = "") -> Any:
    """Convert ``value`` to the declared type and check range/choices.

    Raises :class:`ParamError` naming the parameter and the valid values.
    """
    where = f"{extractor}: " if extractor else ""
    bad = f"{where}invalid value {value!r} for {info.option}"
    if value is None:
        if info.optional:
            return None
        raise ParamError(f"{where}{info.option} needs a value (it cannot be left unset)",
                         f"valid: {info.describe_range() or info.type.__name__}")
    try:
        if info.type is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    value = True
                elif low in ("0", "false", "no", "off"):
                    value = False
                else:
                    raise ValueError(value)
            elif isinstance(value, (bool, np.bool_)) or value in (0, 1):
                value = bool(value)
            else:
                raise ValueError(value)
        elif info.type is int:
            if isinstance(value, bool) or (isinstance(value, float) and not float(value).is_integer()):
                raise ValueError(value)
            value = int(value)
        elif info.type is float:
            if isinstance(value, bool):
                raise ValueError(value)
            value = float(value)
            if not math.isfinite(value):  # nan passes every range check; inf means nothing here
                raise ParamError(f"{bad}: not a finite number",
                                 f"valid: {info.describe_range() or 'a finite number'}")
        elif info.type is tuple:
            if isinstance(value, (list, tuple)):
                if len(value) != 2:
                    raise ValueError(value)
                value = (int(value[0]), int(value[1]))
            else:
                value = parse_pair(value)
        elif info.type is str:
            if not isinstance(value, str):
                raise ValueError(value)
    except (TypeError, ValueError):
        kind = {tuple: info.pair_form, bool: "true/false"}.get(info.type, info.type.__name__)
        raise ParamError(f"{bad}: expected {kind}",
                         f"valid: {info.describe_range() or kind}") from None
    if info.choices is not None and value not in info.choices:
        raise ParamError(f"{bad}", "valid: " + ", ".join(str(c) for c in info.choices))
    nums = value if info.type is tuple else (value,)
    if info.type in (int, float, tuple):
        for v in nums:
            if (info.min is not None and v < info.min) or (info.max is not None and v > info.max):
                raise ParamError(f"{bad}: out of range", f"valid: {info.describe_range()}")
    return value


def build_params(extractor_cls: type[Extractor], values: dict[str, Any] | None = None) -> Any:
    """Validate ``values`` (names with ``_`` or ``-``) and build the frozen Params.

    Unknown names and invalid values raise :class:`ParamError` that names
    the valid ones.  Missing names take their declared defaults.
    """
    infos = {i.name: i for i in param_infos(extractor_cls.Params)}
    kwargs = {}
    for key, value in (values or {}).items():
        name = key.replace("-", "_")
        if name not in infos:
            valid = ", ".join(i.option for i in infos.values()) or "(none)"
            raise ParamError(f"{extractor_cls.name}: unknown parameter {key!r}",
                             f"valid parameters: {valid}")
        kwargs[name] = coerce_value(infos[name], value, extractor_cls.name)
    params = extractor_cls.Params(**kwargs)
    check = getattr(params, "validate", None)
    if check is not None:
        check()
    return params


def construct(extractor_cls: type[Extractor], params: Any) -> Extractor:
    """``extractor_cls(params)``: an extractor whose own code fails as it is built (a
    plugin's missing file, a library that does not start) is one clear usage error, not
    a traceback (``featx --traceback`` shows where it failed)."""
    try:
        return extractor_cls(params)
    except FeatxError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        why = (f"{type(exc).__name__}: {text}" if text else type(exc).__name__).splitlines()[0]
        raise UsageError(f"cannot build extractor '{getattr(extractor_cls, 'name', extractor_cls.__name__)}': "
                         f"{why}", "its own code failed as featx built it; featx --traceback shows where") from exc


def params_to_dict(params: Any) -> dict[str, Any]:
    """A plain, JSON/TOML-friendly dict of every parameter value."""
    out = {}
    for f in dataclasses.fields(params):
        v = getattr(params, f.name)
        out[f.name] = list(v) if isinstance(v, tuple) else v
    return out


def _toml_comment(text: str) -> list[str]:
    """``text`` as TOML comment lines: one per line of text, control characters
    (which a TOML comment may not hold, tab aside) shown as spaces."""
    lines = str(text).splitlines() or [""]
    return [("# " + "".join(c if c == "\t" or (c >= " " and c != "\x7f") else " " for c in line)).rstrip()
            for line in lines]


def params_to_toml(params: Any, table: str | None = None) -> str:
    """The parameters as a TOML config file that ``--config`` reads back.

    Values are written by ``tomli_w`` (strings with quotes, backslashes,
    newlines and control characters escaped as TOML requires); each is
    preceded by its help as a comment.  Parameters whose value is ``None``
    (unset optional paths) are written as comments, since TOML has no null.
    """
    import tomli_w

    lines = [tomli_w.dumps({table: {}}).strip()] if table else []
    for info in param_infos(type(params)):
        v = getattr(params, info.name)
        key = info.name.replace("_", "-")
        lines += _toml_comment(info.help)
        if v is None:
            lines.append(f"# {key} =")
        else:
            lines.append(tomli_w.dumps({key: list(v) if isinstance(v, tuple) else v}).rstrip("\n"))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Outputs


OutputKind = Literal["vector", "keypoints", "dense", "regions"]


@dataclass(frozen=True)
class OutputSpec:
    """What an extractor returns for one image.

    * ``vector``: a float32 array of shape ``shape == (D,)``.
    * ``keypoints``: a :class:`Keypoints` (variable count); ``shape`` is
      ``(None, descriptor_length)``.
    * ``dense``: a float32 array of shape ``shape`` (e.g. ``(H, W, C)``).
    * ``regions``: a float32 ``(N, 4)`` array of boxes ``x, y, w, h`` (a
      detector, written one CSV row per box).
    """

    kind: OutputKind
    shape: tuple
    #: Optional names for the vector's values (CSV header); default f0..f{D-1}.
    columns: tuple[str, ...] | None = None
    #: Values at ``label_columns`` are class indices into ``labels``: CSV writes
    #: the names there (``.npy`` keeps the indices).
    labels: tuple[str, ...] | None = None
    label_columns: tuple[int, ...] = ()

    @property
    def length(self) -> int | None:
        """Vector length ``D`` for vectors, else None."""
        return int(self.shape[0]) if self.kind == "vector" else None


@dataclass
class Keypoints:
    """Local features of one image.

    ``points``: float32 ``(N, 6)`` — x, y, size, angle (degrees), response,
    octave.  ``descriptors``: float32 ``(N, L)``.  N may be zero.
    """

    points: np.ndarray
    descriptors: np.ndarray

    def __len__(self) -> int:
        return int(self.points.shape[0])


# ---------------------------------------------------------------------------
# The base class


class Extractor:
    """Base class for extractors.  Subclasses set the class attributes below."""

    name: ClassVar[str] = ""
    summary: ClassVar[str] = ""
    Params: ClassVar[type]
    #: True for extractors (optical flow) that need consecutive frames:
    #: ``extract`` is then called in order on one sequence and ``reset``
    #: starts a new one.
    temporal: ClassVar[bool] = False
    #: False for extractors whose constructor starts native threads (an
    #: inference engine): worker processes are then not forked from a process
    #: holding such an instance, but started fresh (forkserver).
    fork_safe: ClassVar[bool] = True
    #: Parameters that change how the work runs but not the numbers (threads,
    #: device); a continued output does not need them to match.
    runtime_params: ClassVar[tuple[str, ...]] = ()
    #: True for extractors whose output is in the image's own pixel
    #: coordinates (a detector's boxes).  The engine then does not resize
    #: the image for them: it calls :meth:`extract_resized` with the image as
    #: decoded and the run's ``--resize``, and what they return stays in the
    #: decoded image's pixels whatever the working size.
    handles_resize: ClassVar[bool] = False
    #: Key columns that a regions extractor gives per box, ahead of the run's own
    #: (``detect --track``: ``("track",)``): each row of its value then starts with
    #: them, before ``x, y, w, h``, and the output's key columns gain them in
    #: :data:`featx.output.keys.KEY_COLUMNS` order.  Such an extractor links the
    #: frames of one input (:meth:`reset` starts the next), so it needs video frames.
    row_keys: tuple[str, ...] = ()

    #: Optional capabilities.  Each is declared here with its default ("not offered");
    #: an extractor that offers one sets the flag and overrides the method(s).
    #:
    #: * ``streams_batches``: :meth:`extract_stream` overlaps preparing the next batch
    #:   with running this one (an inference engine); the engine then feeds it batches;
    #: * ``renders_pairs``: :meth:`render_pair` draws what a temporal extractor computes
    #:   between two frames (``featx show flow a.png b.png``);
    #: * ``has_local_descriptors``: :meth:`describe`, :meth:`descriptor_signature` and
    #:   ``descriptor_length`` give the local descriptors codebooks are learnt from
    #:   (``featx codebook``);
    #: * :attr:`provenance`: details worth keeping in the sidecar (a model's checksum);
    #: * ``neighbor_metric``: how its vectors are compared by ``featx similar`` and
    #:   ``featx duplicates`` (one of :data:`featx.neighbors.METRICS`): ``"cosine"`` for
    #:   embeddings, ``"hellinger"`` for non-negative histograms, ``"l2"`` (the default,
    #:   what a plugin gets unless it says otherwise) for the rest.
    streams_batches: ClassVar[bool] = False
    renders_pairs: ClassVar[bool] = False
    has_local_descriptors: ClassVar[bool] = False
    neighbor_metric: ClassVar[str] = "l2"

    def __init__(self, params: Any = None):
        self.params = params if params is not None else build_params(type(self))

    @classmethod
    def create(cls, **values: Any) -> Extractor:
        """Build from keyword parameters (``cell_size`` or ``cell-size``), validated as the
        command line's options are: the one way featx builds an extractor (the CLI, recipes,
        the Python API and the workers all come here)."""
        return cls(build_params(cls, values))

    def extract_stream(self, batches: Iterable[list[np.ndarray]]) -> Iterator[list]:
        """Results of each batch of ``batches``, in order (see ``streams_batches``).
        The default runs :meth:`extract_batch` on each."""
        for batch in batches:
            yield self.extract_batch(batch)

    def render_pair(self, prev: np.ndarray, nxt: np.ndarray, *, arrows: bool = False) -> np.ndarray:
        """A picture of what is computed from ``prev`` to ``nxt`` (see ``renders_pairs``)."""
        raise NotImplementedError(f"{self.name} renders one image; give one")

    def describe(self, image: np.ndarray) -> Keypoints:
        """Local features of ``image`` whatever the output setting (see ``has_local_descriptors``)."""
        raise NotImplementedError(f"{self.name} has no local descriptors")

    def descriptor_signature(self) -> dict:
        """What makes two extractors' local descriptors comparable (a codebook records it)."""
        raise NotImplementedError(f"{self.name} has no local descriptors")

    @property
    def provenance(self) -> dict | None:
        """Details of this extractor worth recording in the sidecar (None: nothing beyond
        its parameters)."""
        return None

    def output_spec(self, height: int, width: int) -> OutputSpec:  # pragma: no cover
        raise NotImplementedError

    def output_kind(self) -> OutputKind:
        """The kind of output, known before any image is seen (sinks check it first)."""
        return self.output_spec(480, 640).kind

    def extract(self, image: np.ndarray) -> np.ndarray | Keypoints:  # pragma: no cover
        raise NotImplementedError

    def extract_resized(self, image: np.ndarray, size: tuple[int, int] | None,
                        mode: str = "stretch") -> np.ndarray | Keypoints:
        """Extract from ``image`` brought to ``size`` (width, height; None: as it is).

        The default resizes (:func:`featx.imageops.resize`, ``mode`` "stretch"
        or "crop") and calls :meth:`extract`.  Extractors that declare
        ``handles_resize`` override it to work at ``size`` but return results
        in the pixel coordinates of ``image``.
        """
        if size is not None:
            from .imageops import resize

            image = resize(image, size[0], size[1], mode)
        return self.extract(image)

    def decode_size(self, resize: tuple[int, int] | None, mode: str = "stretch") -> tuple[int, int] | None:
        """The fewest pixels ``(width, height)``, on each axis of the upright image, that
        this extractor needs from the decoder when the run resizes to ``resize``
        (``--resize``, ``mode`` "stretch" or "crop"); None: every pixel (decode in full).

        The engine decodes a JPEG at the largest DCT reduction (1/2, 1/4, 1/8) that
        leaves at least this many pixels, then resizes exactly as it would have
        (``--exact-decode`` turns this off).  The default: the resize target itself
        (resizing down to it averages at least as many pixels as it keeps, whatever
        the mode), None without ``--resize`` (the extractor works on every pixel) and
        for ``handles_resize`` extractors (their results are in the decoded image's
        own pixels).  An extractor that resizes by itself (a network's input size)
        overrides it.
        """
        if resize is None or self.handles_resize:
            return None
        return int(resize[0]), int(resize[1])

    def preprocess(self, image: np.ndarray) -> Any:
        """``image`` (after ``--resize``) in the form :meth:`extract_batch` takes: the
        identity by default; a network returns its input tensor.

        The engine calls it on each image as soon as it is decoded, so that what
        waits for a batch is the (small) working input, not the photo.  An extractor
        that overrides it overrides :meth:`extract_batch` too, and keeps
        :meth:`extract` working on images (``extract(im)`` must equal
        ``extract_batch([preprocess(im)])[0]``).
        """
        return image

    def extract_batch(self, inputs: list[Any]) -> list[np.ndarray | Keypoints]:
        """Several :meth:`preprocess` results at once; extractors that gain from
        batching override it (with the identity ``preprocess``, these are images)."""
        return [self.extract(x) for x in inputs]

    @property
    def batch_size(self) -> int:
        """How many images the engine hands :meth:`extract_batch` at once."""
        return int(getattr(self.params, "batch_size", 1) or 1)

    def reset(self) -> None:
        """Forget any state carried between frames (temporal extractors, trackers); the
        engine calls it as each input (a video, a frame folder, an image) starts."""

    #: Working memory of ``extract`` per pixel, for extractors that do not declare it:
    #: above every built-in one but SIFT's keypoints (measured 235).
    DEFAULT_BYTES_PER_PIXEL: ClassVar[float] = 256.0

    def bytes_per_pixel(self) -> float:
        """Peak memory ``extract`` allocates, in bytes per pixel of the image it receives
        (an upper bound, its output included; the input itself not).

        The engine multiplies it by an input's pixel count (after ``--resize``) to
        refuse, before decoding, an input that would not fit the per-worker memory
        budget (``--max-memory``).  Override it with a measured value (see
        tests/test_faults_inputs.py, which checks every built-in's declaration); the
        default is deliberately generous.
        """
        return self.DEFAULT_BYTES_PER_PIXEL

    def working_memory(self, height: int, width: int) -> int:
        """Peak bytes ``extract`` allocates for an image of ``height`` x ``width`` (an upper
        bound): :meth:`bytes_per_pixel` times the pixels, unless an extractor whose needs
        are not proportional to the pixels (padding, caches) overrides it."""
        return int(self.bytes_per_pixel() * height * width)

    def render(self, image: np.ndarray) -> np.ndarray:
        """A picture (uint8 RGB) of what the extractor computes, for ``featx show``."""
        raise NotImplementedError(f"{self.name} has no picture to show")
