"""featx's hand-written ONNX protobuf writer and reader, checked against a real protobuf
parser: ONNX Runtime's.  Every kind of field the writer emits (attributes of each type,
initializers of each dtype, symbolic and fixed dimensions, metadata, doc strings) must be
read back by ONNX Runtime as written, and featx's reader must see what ONNX Runtime sees."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest

from featx.extractors.cnn import onnxproto as P

DTYPES = {np.float32: P.FLOAT, np.float64: P.DOUBLE, np.float16: P.FLOAT16, np.int64: P.INT64,
          np.int32: P.INT32, np.int8: P.INT8, np.uint8: P.UINT8}
ORT_TYPES = {P.FLOAT: "tensor(float)", P.UINT8: "tensor(uint8)"}

METADATA = {"featx.preprocess": '{"mean": [127, 127, 127], "note": "a \\"quoted\\" value"}',
            "unicode ✓ key": "line one\nline two\ttab é",
            "empty": ""}


def everything_model() -> bytes:
    """A model that uses every writer feature; its outputs are easy to compute with numpy."""
    rng = np.random.default_rng(7)
    inits, nodes, outputs = [], [], []
    for dt, code in DTYPES.items():
        arr = (rng.standard_normal((2, 3)) * 50).astype(dt)
        name = f"c_{np.dtype(dt).name}"
        inits.append(P.tensor(name, arr))
        nodes.append(P.node("Cast", [name], [f"{name}_f"], to=P.FLOAT))          # int attribute
        outputs.append(P.value_info(f"{name}_f", P.FLOAT, [2, 3]))
    inits.append(P.tensor("pads", np.array([0, 0, 1, 2, 0, 0, 1, 2], np.int64)))
    nodes += [
        P.node("Pad", ["x", "pads"], ["padded"], name="pad", mode="reflect"),      # string attribute
        P.node("LeakyRelu", ["padded"], ["leaky"], alpha=0.25),                    # float attribute
        P.node("Transpose", ["leaky"], ["moved"], perm=[0, 2, 3, 1]),              # ints attribute
        P.node("Constant", [], ["consts"], value_floats=[1.5, -2.25, 3.0e-3]),     # floats attribute
        P.node("ReduceSum", ["moved"], ["hidden"], keepdims=0),                    # an intermediate tensor
        P.node("Identity", ["hidden"], ["total"]),
    ]
    outputs += [P.value_info("moved", P.FLOAT, ["batch", 6, 8, 3]),
                P.value_info("consts", P.FLOAT, [3]),
                P.value_info("total", P.FLOAT, None)]
    return P.model(nodes, inits, [P.value_info("x", P.FLOAT, ["batch", 3, 4, 4])], outputs,
                   graph_name="every-field", opset=13, metadata=METADATA, producer_version="9.9",
                   doc="written by featx's onnxproto")


def session(data: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_onnxruntime_reads_every_field_as_written():
    data = everything_model()
    sess = session(data)
    meta = sess.get_modelmeta()
    assert meta.custom_metadata_map == METADATA
    assert meta.producer_name == "featx" and meta.graph_name == "every-field"
    assert meta.description == "written by featx's onnxproto"
    [inp] = sess.get_inputs()
    assert (inp.name, inp.shape, inp.type) == ("x", ["batch", 3, 4, 4], "tensor(float)")
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4) - 40
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(names, {"x": x})))
    # initializers of every dtype arrive with their values
    rng = np.random.default_rng(7)
    for dt in DTYPES:
        arr = (rng.standard_normal((2, 3)) * 50).astype(dt)
        np.testing.assert_array_equal(got[f"c_{np.dtype(dt).name}_f"], arr.astype(np.float32))
    # attributes of every type arrive with their values
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (2, 2)), mode="reflect")
    moved = np.where(padded > 0, padded, 0.25 * padded).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(got["moved"], moved)
    np.testing.assert_array_equal(got["consts"], np.array([1.5, -2.25, 3.0e-3], np.float32))
    np.testing.assert_allclose(got["total"], moved.sum(), rtol=1e-6)


def test_reader_sees_what_onnxruntime_sees():
    data = everything_model()
    sess = session(data)
    info = P.read_model(data)
    assert info.metadata == sess.get_modelmeta().custom_metadata_map
    assert info.opset == 13 and info.producer == "featx" and not info.external_data
    assert [(i.name, i.shape, ORT_TYPES[i.elem_type]) for i in info.inputs] == \
        [(i.name, i.shape, i.type) for i in sess.get_inputs()]
    assert [o.name for o in info.outputs] == [o.name for o in sess.get_outputs()]
    for mine, theirs in zip(info.outputs, sess.get_outputs()):
        if mine.shape is not None:
            assert mine.shape == theirs.shape, mine.name
    assert "hidden" in info.tensor_names() and "padded" in info.node_outputs
    assert {"pads", "c_float32"} <= info.initializers


@pytest.mark.parametrize("typed", [False, True])
def test_added_outputs_are_fetched_by_onnxruntime(typed):
    data = P.add_outputs(everything_model(), ["hidden", "padded"], P.FLOAT if typed else None)
    sess = session(data)
    x = np.ones((1, 3, 4, 4), np.float32)
    hidden, padded, total = sess.run(["hidden", "padded", "total"], {"x": x})
    assert padded.shape == (1, 3, 6, 8) and hidden == total
    assert [o.name for o in P.read_model(data).outputs][-2:] == ["hidden", "padded"]


def test_truncated_bytes_are_a_proto_error():
    data = everything_model()
    with pytest.raises(P.ProtoError):
        P.read_model(data[: len(data) // 2])
