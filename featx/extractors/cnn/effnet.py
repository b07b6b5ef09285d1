"""Build EfficientNet-Lite0 as an ONNX graph from its PyTorch state dict.

EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variants of the TensorFlow TPU
repository) is EfficientNet-B0 made friendlier to mobile accelerators: no
squeeze-and-excitation, ReLU6 instead of swish, and a stem (32 channels) and
head (1280 channels) that are not scaled.  The network is

* stem: 3×3 convolution, stride 2, 32 channels, batch norm, ReLU6;
* 16 mobile inverted bottleneck blocks (MBConv) in 7 stages, each: optional
  1×1 expansion (×6) + BN + ReLU6, k×k depthwise convolution + BN + ReLU6,
  1×1 projection + BN, identity skip when the stride is 1 and the channel
  count is unchanged;
* head: 1×1 convolution to 1280 channels, BN, ReLU6, global average pooling,
  and a linear classifier to the 1000 ImageNet-1k classes.

Convolutions use TensorFlow's ``SAME`` padding (output size ``ceil(in /
stride)``, any odd padding on the bottom/right), which is ONNX's
``auto_pad=SAME_UPPER``.  Batch norm (epsilon 1e-3) is folded into the
preceding convolution in float64 before the weights are cast to float32.

Named tensors of the graph (all fetchable with ``--layer``): ``stem``,
``block0`` … ``block15`` (N×C×H×W), ``features`` (N×1280×7×7, after the head's
ReLU6), ``embedding`` (N×1280, global average), ``logits`` (N×1000) and
``class_maps`` (N×1000×7×7, the classifier applied at every position: its
spatial mean is exactly ``logits``, which is what ``featx show cnn`` draws).

References
----------
.. [1] M. Tan, Q. V. Le, "EfficientNet: Rethinking Model Scaling for
   Convolutional Neural Networks", ICML 2019.
.. [2] "Higher accuracy on vision models with EfficientNet-Lite", TensorFlow
   blog, March 2020; the TensorFlow TPU repository, ``models/official/efficientnet/lite``.
"""
from __future__ import annotations

import json

import numpy as np

from . import onnxproto as P

#: Bumped whenever the graph built from the same weights changes (cache key).
#: 2: the class maps' 1x1 convolution reads the classifier's weights through a Reshape
#: instead of a second copy (18.5 MB instead of 23.7; the same numbers).
BUILDER_VERSION = 2
OPSET = 13
BN_EPS = 1e-3

#: (repeats, kernel, stride, expand ratio, output channels) per stage.
LITE0_STAGES = [
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
]
STEM_CHANNELS, HEAD_CHANNELS = 32, 1280


def _fold(sd: dict, conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """Convolution weight and bias with the batch norm folded in (float64 maths)."""
    w = sd[f"{conv}.weight"].astype(np.float64)
    gamma = sd[f"{bn}.weight"].astype(np.float64)
    beta = sd[f"{bn}.bias"].astype(np.float64)
    mean = sd[f"{bn}.running_mean"].astype(np.float64)
    var = sd[f"{bn}.running_var"].astype(np.float64)
    scale = gamma / np.sqrt(var + BN_EPS)
    w = w * scale[:, None, None, None]
    b = beta - mean * scale
    return w.astype(np.float32), b.astype(np.float32)


class _Builder:
    def __init__(self):
        self.nodes: list[bytes] = []
        self.inits: list[bytes] = []
        self._n = 0

    def const(self, name: str, array: np.ndarray) -> str:
        self.inits.append(P.tensor(name, array))
        return name

    def conv_bn(self, sd: dict, x: str, conv: str, bn: str, out: str, *, stride: int = 1,
                groups: int = 1, relu6: bool = True) -> str:
        w, b = _fold(sd, conv, bn)
        wn = self.const(f"{conv}.w", w)
        bname = self.const(f"{conv}.b", b)
        k = int(w.shape[2])
        y = out if not relu6 else f"{out}.pre"
        self.nodes.append(P.node("Conv", [x, wn, bname], [y], name=conv,
                                 kernel_shape=[k, k], strides=[stride, stride], group=groups,
                                 auto_pad="SAME_UPPER"))
        if relu6:
            self.nodes.append(P.node("Clip", [y, "relu6.min", "relu6.max"], [out],
                                     name=f"{conv}.relu6"))
        return out


def _check(sd: dict, key: str, shape: tuple) -> None:
    if key not in sd:
        raise ValueError(f"state dict has no {key!r}: not an EfficientNet-Lite0 checkpoint")
    if tuple(sd[key].shape) != shape:
        raise ValueError(f"{key} has shape {tuple(sd[key].shape)}, expected {shape}")


def build_lite0(sd: dict[str, np.ndarray], metadata: dict[str, str] | None = None) -> bytes:
    """Serialise EfficientNet-Lite0 with the weights in ``sd`` as an ONNX model.

    Parameters
    ----------
    sd : dict of str to numpy.ndarray
        The state dict (``efficientnet_lite_pytorch`` naming: ``_conv_stem``,
        ``_bn0``, ``_blocks.N._expand_conv`` ... ``_fc``).
    metadata : dict of str to str, optional
        Stored as the model's ``metadata_props``.

    Returns
    -------
    bytes
        The ``ModelProto``: input ``input`` (N×3×H×W float32, H and W any size;
        224×224 as trained), outputs ``embedding``, ``logits``, ``features``,
        ``class_maps``.
    """
    g = _Builder()
    g.const("relu6.min", np.array(0.0, np.float32))
    g.const("relu6.max", np.array(6.0, np.float32))
    _check(sd, "_conv_stem.weight", (STEM_CHANNELS, 3, 3, 3))
    x = g.conv_bn(sd, "input", "_conv_stem", "_bn0", "stem", stride=2)
    cin, idx = STEM_CHANNELS, 0
    for repeats, k, stride, expand, cout in LITE0_STAGES:
        for r in range(repeats):
            s = stride if r == 0 else 1
            p = f"_blocks.{idx}"
            mid = cin * expand
            h = x
            if expand != 1:
                _check(sd, f"{p}._expand_conv.weight", (mid, cin, 1, 1))
                h = g.conv_bn(sd, h, f"{p}._expand_conv", f"{p}._bn0", f"block{idx}.expand")
            _check(sd, f"{p}._depthwise_conv.weight", (mid, 1, k, k))
            h = g.conv_bn(sd, h, f"{p}._depthwise_conv", f"{p}._bn1", f"block{idx}.dw",
                          stride=s, groups=mid)
            _check(sd, f"{p}._project_conv.weight", (cout, mid, 1, 1))
            skip = s == 1 and cin == cout
            out = f"block{idx}"
            h = g.conv_bn(sd, h, f"{p}._project_conv", f"{p}._bn2",
                          f"{out}.proj" if skip else out, relu6=False)
            if skip:
                g.nodes.append(P.node("Add", [h, x], [out], name=f"{p}.skip"))
            x, cin, idx = out, cout, idx + 1
    if any(k.startswith(f"_blocks.{idx}.") for k in sd):
        raise ValueError("state dict has more blocks than EfficientNet-Lite0")
    _check(sd, "_conv_head.weight", (HEAD_CHANNELS, cin, 1, 1))
    feats = g.conv_bn(sd, x, "_conv_head", "_bn1", "features")
    g.nodes.append(P.node("GlobalAveragePool", [feats], ["pooled"], name="pool"))
    g.nodes.append(P.node("Flatten", ["pooled"], ["embedding"], name="flatten", axis=1))
    _check(sd, "_fc.weight", (1000, HEAD_CHANNELS))
    fc_w = sd["_fc.weight"].astype(np.float32)
    fc_b = sd["_fc.bias"].astype(np.float32)
    g.const("fc.w", fc_w)
    g.const("fc.b", fc_b)
    g.nodes.append(P.node("Gemm", ["embedding", "fc.w", "fc.b"], ["logits"], name="fc",
                          transB=1))
    # The classifier at every position (class activation maps, Zhou et al. 2016): its
    # weights are the classifier's own, seen as 1x1 kernels (one copy in the file).
    g.const("fc.w4.shape", np.array([1000, HEAD_CHANNELS, 1, 1], np.int64))
    g.nodes.append(P.node("Reshape", ["fc.w", "fc.w4.shape"], ["fc.w4"], name="fc.w4"))
    g.nodes.append(P.node("Conv", [feats, "fc.w4", "fc.b"], ["class_maps"], name="cam",
                          kernel_shape=[1, 1]))
    inputs = [P.value_info("input", P.FLOAT, ["batch", 3, "height", "width"])]
    outputs = [P.value_info("embedding", P.FLOAT, ["batch", HEAD_CHANNELS]),
               P.value_info("logits", P.FLOAT, ["batch", 1000]),
               P.value_info("features", P.FLOAT, ["batch", HEAD_CHANNELS, "fh", "fw"]),
               P.value_info("class_maps", P.FLOAT, ["batch", 1000, "fh", "fw"])]
    return P.model(g.nodes, g.inits, inputs, outputs, graph_name="efficientnet_lite0",
                   opset=OPSET, metadata=dict(metadata or {}),
                   producer_version=str(BUILDER_VERSION),
                   doc="EfficientNet-Lite0 (ImageNet-1k), built by featx from PyTorch weights")


def metadata_json(obj) -> str:
    """Compact, stable JSON for metadata values."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
