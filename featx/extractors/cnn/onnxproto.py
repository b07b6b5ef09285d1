"""A minimal ONNX protobuf writer and reader (no ``onnx`` dependency).

featx builds its default network itself and needs only a sliver of the ONNX
format: write a graph of nodes with initializers and metadata, and read back a
user's model far enough to list its inputs, outputs, node output names and
metadata, and to expose an intermediate tensor as an extra graph output.  The
protobuf wire format (varints and length-delimited fields) is small enough to
handle directly.  Field numbers follow ``onnx.proto`` (IR version 8).

Why not the ``onnx`` package (measured on the development machine, Python 3.11,
onnx 1.23.2, onnxruntime 1.32; the choice was made for issue 16):

* **Size**: onnx is an 8.9 MB wheel, 31 MB installed, and pulls in ``ml_dtypes``
  (1.8 MB) — for about 350 lines of code here.
* **Time**: ``import onnx`` takes 0.13–0.17 s after numpy, paid by every ``cnn``
  worker (the whole cnn start-up for one image is 0.25–0.34 s); this module
  imports in milliseconds.  Reading the 23.7 MB EfficientNet-Lite0 model takes
  1.6–2.3 ms with :func:`read_model` (it walks the fields without copying the
  weights) against 58–99 ms with ``onnx.load_from_string``.
* **Constraints**: onnx 1.23 needs ``protobuf>=6.31.1``, where onnxruntime asks
  only for ``protobuf>=4.25.8``, so it would narrow the environments featx
  installs into; and its ``helper.make_model`` writes IR version 14 by default,
  which onnxruntime 1.18 and 1.20 refuse to load (tried) — featx supports
  onnxruntime >= 1.16, so every model would need its IR version pinned by hand
  anyway.

What keeping it costs: the writer must emit what real protobuf parsers read.
``tests/test_onnxproto.py`` checks that against ONNX Runtime's parser for every
kind of field written (attributes of each type, initializers of each dtype,
symbolic and fixed shapes, metadata with awkward strings), checks that
:func:`read_model` sees what ONNX Runtime sees, and runs the golden CNN outputs
(tests/golden) through the built model; OpenCV's DNN importer reads the same bytes
(``test_opencv_backend_matches``).  Were featx to need more of ONNX (shape
inference, graph surgery, external data), switch to ``onnx`` then.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

# TensorProto.DataType
FLOAT, UINT8, INT8, INT32, INT64, FLOAT16, DOUBLE = 1, 2, 3, 6, 7, 10, 11
_NP_TO_ONNX = {np.dtype("float32"): FLOAT, np.dtype("int64"): INT64, np.dtype("int32"): INT32,
               np.dtype("uint8"): UINT8, np.dtype("int8"): INT8, np.dtype("float64"): DOUBLE,
               np.dtype("float16"): FLOAT16}
DTYPE_NAMES = {FLOAT: "float32", UINT8: "uint8", INT8: "int8", INT32: "int32", INT64: "int64",
               FLOAT16: "float16", DOUBLE: "float64"}

# AttributeProto.AttributeType
_A_FLOAT, _A_INT, _A_STRING, _A_FLOATS, _A_INTS = 1, 2, 3, 6, 7

IR_VERSION = 8


class ProtoError(ValueError):
    """The bytes are not a well-formed protobuf message of the expected shape."""


# ---------------------------------------------------------------------------
# Writing


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(fieldno: int, wire: int) -> bytes:
    return _varint((fieldno << 3) | wire)


def f_int(fieldno: int, value: int) -> bytes:
    return _key(fieldno, 0) + _varint(int(value))


def f_bytes(fieldno: int, value: bytes | str) -> bytes:
    if isinstance(value, str):
        value = value.encode("utf-8")
    return _key(fieldno, 2) + _varint(len(value)) + value


def f_float(fieldno: int, value: float) -> bytes:
    return _key(fieldno, 5) + struct.pack("<f", float(value))


def f_packed_ints(fieldno: int, values) -> bytes:
    return f_bytes(fieldno, b"".join(_varint(int(v)) for v in values))


def tensor(name: str, array: np.ndarray) -> bytes:
    """A ``TensorProto`` holding ``array`` as raw little-endian data."""
    a = np.ascontiguousarray(array)
    dt = _NP_TO_ONNX[a.dtype]
    out = b"".join(f_int(1, d) for d in a.shape)
    out += f_int(2, dt) + f_bytes(8, name)
    out += f_bytes(9, a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
    return out


def attribute(name: str, value) -> bytes:
    """An ``AttributeProto`` for an int, float, string or list of ints/floats."""
    out = f_bytes(1, name)
    if isinstance(value, bool) or isinstance(value, (int, np.integer)):
        return out + f_int(20, _A_INT) + f_int(3, int(value))
    if isinstance(value, float):
        return out + f_int(20, _A_FLOAT) + f_float(2, value)
    if isinstance(value, (str, bytes)):
        return out + f_int(20, _A_STRING) + f_bytes(4, value)
    values = list(value)
    if all(isinstance(v, (int, np.integer)) for v in values):
        return out + f_int(20, _A_INTS) + f_packed_ints(8, values)
    return out + f_int(20, _A_FLOATS) + f_bytes(7, struct.pack(f"<{len(values)}f", *values))


def node(op_type: str, inputs: list[str], outputs: list[str], name: str = "", **attrs) -> bytes:
    """A ``NodeProto``."""
    out = b"".join(f_bytes(1, i) for i in inputs) + b"".join(f_bytes(2, o) for o in outputs)
    if name:
        out += f_bytes(3, name)
    out += f_bytes(4, op_type)
    out += b"".join(f_bytes(5, attribute(k, v)) for k, v in attrs.items())
    return out


def value_info(name: str, elem_type: int | None = None, shape: list | None = None) -> bytes:
    """A ``ValueInfoProto``; ``shape`` items are ints or symbolic names (str)."""
    out = f_bytes(1, name)
    if elem_type is not None:
        ttype = f_int(1, elem_type)
        if shape is not None:
            dims = b""
            for d in shape:
                dims += f_bytes(1, f_bytes(2, d) if isinstance(d, str) else f_int(1, d))
            ttype += f_bytes(2, dims)
        out += f_bytes(2, f_bytes(1, ttype))
    return out


def model(nodes: list[bytes], initializers: list[bytes], inputs: list[bytes],
          outputs: list[bytes], *, graph_name: str, opset: int, metadata: dict[str, str],
          producer: str = "featx", producer_version: str = "", doc: str = "") -> bytes:
    """Serialise a ``ModelProto`` from pre-encoded parts."""
    graph = b"".join(f_bytes(1, n) for n in nodes) + f_bytes(2, graph_name)
    graph += b"".join(f_bytes(5, t) for t in initializers)
    graph += b"".join(f_bytes(11, v) for v in inputs)
    graph += b"".join(f_bytes(12, v) for v in outputs)
    out = f_int(1, IR_VERSION) + f_bytes(2, producer)
    if producer_version:
        out += f_bytes(3, producer_version)
    if doc:
        out += f_bytes(6, doc)
    out += f_bytes(7, graph)
    out += f_bytes(8, f_bytes(1, "") + f_int(2, opset))
    out += b"".join(f_bytes(14, f_bytes(1, k) + f_bytes(2, v)) for k, v in metadata.items())
    return out


# ---------------------------------------------------------------------------
# Reading


def _read_varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtoError("varint too long")


def fields(buf: bytes | memoryview) -> list[tuple[int, int, object]]:
    """Split a message into ``(field, wire_type, value)``; length-delimited values are memoryviews."""
    buf = memoryview(buf)
    pos, n, out = 0, len(buf), []
    while pos < n:
        key, pos = _read_varint(buf, pos)
        fno, wire = key >> 3, key & 7
        if fno == 0:
            raise ProtoError("field number 0")
        if wire == 0:
            val, pos = _read_varint(buf, pos)
        elif wire == 2:
            ln, pos = _read_varint(buf, pos)
            if pos + ln > n:
                raise ProtoError("truncated length-delimited field")
            val = buf[pos:pos + ln]
            pos += ln
        elif wire == 5:
            if pos + 4 > n:
                raise ProtoError("truncated fixed32")
            val = bytes(buf[pos:pos + 4])
            pos += 4
        elif wire == 1:
            if pos + 8 > n:
                raise ProtoError("truncated fixed64")
            val = bytes(buf[pos:pos + 8])
            pos += 8
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        out.append((fno, wire, val))
    return out


def _str(v) -> str:
    return bytes(v).decode("utf-8", errors="replace")


@dataclass
class TensorInfo:
    """Name, element type and shape (ints, symbolic names or None) of a graph value."""

    name: str
    elem_type: int | None = None
    shape: list | None = None

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.elem_type, f"type{self.elem_type}")


def _value_info(buf) -> TensorInfo:
    info = TensorInfo("")
    for fno, _w, v in fields(buf):
        if fno == 1:
            info.name = _str(v)
        elif fno == 2:
            for tf, _w2, tv in fields(v):
                if tf != 1:  # only tensor types
                    continue
                for ef, ew, ev in fields(tv):
                    if ef == 1 and ew == 0:
                        info.elem_type = int(ev)
                    elif ef == 2:
                        info.shape = []
                        for df, _dw, dv in fields(ev):
                            if df != 1:
                                continue
                            dim = None
                            for xf, xw, xv in fields(dv):
                                if xf == 1 and xw == 0:
                                    dim = int(xv)
                                elif xf == 2:
                                    dim = _str(xv) or None
                            info.shape.append(dim)
    return info


@dataclass
class ModelInfo:
    """What featx needs to know about an ONNX model."""

    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    node_outputs: list[str] = field(default_factory=list)
    initializers: set[str] = field(default_factory=set)
    metadata: dict[str, str] = field(default_factory=dict)
    opset: int | None = None
    producer: str = ""
    external_data: bool = False

    def tensor_names(self) -> list[str]:
        """Every tensor that can be fetched: graph outputs first, then node outputs."""
        seen, out = set(), []
        for n in [o.name for o in self.outputs] + self.node_outputs:
            if n and n not in seen:
                seen.add(n)
                out.append(n)
        return out


def read_model(data: bytes) -> ModelInfo:
    """Parse the parts of a ``ModelProto`` featx uses.

    Raises
    ------
    ProtoError
        The bytes are not an ONNX model (no graph, malformed protobuf).
    """
    info = ModelInfo()
    graph = None
    top = fields(data)
    for fno, wire, v in top:
        if fno == 7 and wire == 2:
            graph = v
        elif fno == 8 and wire == 2:
            dom, ver = "", None
            for of, _ow, ov in fields(v):
                if of == 1:
                    dom = _str(ov)
                elif of == 2:
                    ver = int(ov)
            if dom in ("", "ai.onnx"):
                info.opset = ver
        elif fno == 14 and wire == 2:
            kv = {f: _str(x) for f, _w, x in fields(v) if f in (1, 2)}
            info.metadata[kv.get(1, "")] = kv.get(2, "")
        elif fno == 2 and wire == 2:
            info.producer = _str(v)
    if graph is None or info.opset is None:
        raise ProtoError("no graph or no opset in the model")
    inputs = []
    for fno, wire, v in fields(graph):
        if fno == 1:
            for nf, _nw, nv in fields(v):
                if nf == 2:
                    info.node_outputs.append(_str(nv))
        elif fno == 5:
            for tf, tw, tv in fields(v):
                if tf == 8:
                    info.initializers.add(_str(tv))
                elif tf == 14 and tw == 0 and int(tv) == 1:
                    info.external_data = True
        elif fno == 11:
            inputs.append(_value_info(v))
        elif fno == 12:
            info.outputs.append(_value_info(v))
    info.inputs = [i for i in inputs if i.name not in info.initializers]
    return info


def add_outputs(data: bytes, names: list[str], elem_type: int | None = None) -> bytes:
    """The same model with ``names`` appended to the graph outputs.

    ONNX Runtime accepts untyped extra outputs (``elem_type=None``); OpenCV's
    importer insists on a type and a shape, for which an element type with an
    empty (unknown-rank) shape is enough — the real shape is inferred.
    """
    out = bytearray()
    buf = memoryview(data)
    pos, found = 0, False
    while pos < len(buf):
        start = pos
        key, pos = _read_varint(buf, pos)
        fno, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _read_varint(buf, pos)
        elif wire == 2:
            ln, pos = _read_varint(buf, pos)
            if fno == 7:
                graph = bytes(buf[pos:pos + ln]) + b"".join(
                    f_bytes(12, value_info(n, elem_type, [] if elem_type else None)) for n in names)
                out += f_bytes(7, graph)
                pos += ln
                found = True
                continue
            pos += ln
        elif wire == 5:
            pos += 4
        elif wire == 1:
            pos += 8
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        out += buf[start:pos]
    if not found:
        raise ProtoError("no graph in the model")
    return bytes(out)


def _node_io(buf) -> tuple[list[str], list[str], bool]:
    """A ``NodeProto``'s inputs, outputs, and whether it holds a subgraph (If, Loop, Scan:
    their bodies may read any tensor of the outer graph by name)."""
    ins, outs, sub = [], [], False
    for f, _w, v in fields(buf):
        if f == 1:
            ins.append(_str(v))
        elif f == 2:
            outs.append(_str(v))
        elif f == 5:
            sub = sub or any(af in (6, 11) for af, _aw, _av in fields(v))
    return ins, outs, sub


def _tensor_name(buf) -> str:
    for f, _w, v in fields(buf):
        if f == 8:
            return _str(v)
    return ""


def prune(data: bytes, names: list[str]) -> bytes:
    """The same model computing only ``names`` (graph outputs or any node's output): its
    graph outputs become ``names``, and the nodes and initializers that none of them
    depends on are left out.

    ONNX Runtime runs every node of a graph whether its result is fetched or not, so a
    session built on the whole model pays for the outputs nobody asked for (the class
    maps and the classifier of the default model: 12 % of its inference).  The kept nodes,
    their order, attributes and weights are the original bytes: the same numbers.  A model
    with subgraphs (If, Loop, Scan, whose bodies may read outer tensors by name) is only
    given the extra outputs, not pruned.
    """
    top = fields(data)
    graph = next((v for f, w, v in top if f == 7 and w == 2), None)
    if graph is None:
        raise ProtoError("no graph in the model")
    gfields = fields(graph)
    nodes = [(v, *_node_io(v)) for f, _w, v in gfields if f == 1]
    if any(sub for *_x, sub in nodes):
        return add_outputs(data, [n for n in names if n not in
                                  {_value_info(v).name for f, _w, v in gfields if f == 12}])
    outputs = {}
    for f, _w, v in gfields:
        if f == 12:
            outputs.setdefault(_value_info(v).name, v)
    needed = set(names)
    keep = [False] * len(nodes)
    for i in range(len(nodes) - 1, -1, -1):   # nodes are in topological order
        _v, ins, outs, _s = nodes[i]
        if any(o in needed for o in outs if o):
            keep[i] = True
            needed.update(x for x in ins if x)
    produced = {o for (_v, _i, outs, _s), k in zip(nodes, keep) if k for o in outs}
    inits = {_tensor_name(v) for f, _w, v in gfields if f == 5}
    # (the parts are joined once: the weights are copied once, not once per level)
    parts: list = []

    def put(f: int, w: int, v) -> None:
        if w == 2:
            parts.extend((_key(f, 2) + _varint(len(v)), v))
        else:
            parts.append(f_int(f, v) if w == 0 else _key(f, w) + v)

    for (v, _i, _o, _s), k in zip(nodes, keep):
        if k:
            put(1, 2, v)
    for f, w, v in gfields:
        if f in (1, 12):
            continue
        if f == 5 and _tensor_name(v) not in needed:
            continue
        if f == 11 and _value_info(v).name in inits and _value_info(v).name not in needed:
            continue
        if f == 13 and _value_info(v).name not in produced:
            continue
        put(f, w, v)
    for n in names:
        put(12, 2, outputs[n] if n in outputs else value_info(n))
    glen = sum(len(x) for x in parts)
    graph_parts = parts
    parts = []
    for f, w, v in top:
        if f == 7 and w == 2:
            parts.append(_key(7, 2) + _varint(glen))
            parts.extend(graph_parts)
        else:
            put(f, w, v)
    return b"".join(parts)
