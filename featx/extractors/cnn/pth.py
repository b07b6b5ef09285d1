"""Read PyTorch ``.pth`` state dicts into numpy arrays without torch.

A ``.pth`` file holds pickled Python objects, and unpickling can run
arbitrary code.  This reader parses the pickle with a restricted unpickler
that resolves only the handful of globals a plain state dict needs — tensor
rebuilding, ``OrderedDict`` and the typed storage classes — mapped to small
stand-ins defined here.  Anything else (``os.system``, ``builtins.eval``,
custom classes) is refused with :class:`UnsafePickleError` before it can be
called.

Both on-disk layouts are supported:

* the zip layout (torch >= 1.6): ``<root>/data.pkl`` plus one raw blob per
  storage under ``<root>/data/<key>``;
* the legacy layout (torch < 1.6): a magic-number pickle, a protocol pickle,
  a system-info pickle, the object pickle, the list of storage keys, then
  each storage as an int64 element count followed by its raw bytes.

Storages are little-endian; tensors are rebuilt from their storage offset,
size and stride (``numpy.lib.stride_tricks.as_strided``) and copied into
contiguous arrays.
"""
from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import UsageError

__all__ = ["UnsafePickleError", "load_state_dict"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

#: torch storage class name -> numpy dtype (little-endian)
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}

#: ``torch.float32`` etc. (new-style typed storages name a dtype)
_TORCH_DTYPES = {
    "float32": np.dtype("<f4"), "float": np.dtype("<f4"),
    "float64": np.dtype("<f8"), "double": np.dtype("<f8"),
    "float16": np.dtype("<f2"), "half": np.dtype("<f2"),
    "int64": np.dtype("<i8"), "long": np.dtype("<i8"),
    "int32": np.dtype("<i4"), "int": np.dtype("<i4"),
    "int16": np.dtype("<i2"), "short": np.dtype("<i2"),
    "int8": np.dtype("i1"), "uint8": np.dtype("u1"), "bool": np.dtype("?"),
}


class UnsafePickleError(UsageError):
    """The file's pickle asks for something other than tensors and storages."""


class _StorageType:
    """Stand-in for a torch storage class (``torch.FloatStorage``...)."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype


class _DType:
    """Stand-in for a ``torch.dtype`` object."""

    def __init__(self, dtype: np.dtype):
        self.dtype = dtype


class _TensorRef:
    """A tensor described by the pickle, resolved once storages are read."""

    __slots__ = ("storage_key", "offset", "size", "stride")

    def __init__(self, storage_key, offset, size, stride):
        self.storage_key = storage_key
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only tensor-related globals; refuses everything else."""

    def __init__(self, file, storages: dict):
        super().__init__(file)
        self._storages = storages  # key -> (dtype, numel or None)

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module == "torch" and name == "UntypedStorage":
            return _StorageType(np.dtype("u1"))
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(_TORCH_DTYPES[name])
        raise UnsafePickleError(
            f"refusing to load {module}.{name} from a .pth file",
            "only tensors, storages and OrderedDict are allowed (a state dict saved with "
            "torch.save(model.state_dict(), ...))")

    def persistent_load(self, pid: Any) -> Any:
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafePickleError(f"unexpected persistent id {pid!r} in .pth file")
        stype, key = pid[1], str(pid[2])
        if isinstance(stype, _DType):
            dtype = stype.dtype
        elif isinstance(stype, _StorageType):
            dtype = stype.dtype
        else:
            raise UnsafePickleError(f"unexpected storage type {stype!r} in .pth file")
        numel = int(pid[4]) if len(pid) > 4 and pid[4] is not None else None
        if len(pid) > 5 and pid[5] is not None:
            raise UnsafePickleError("storage views (torch < 0.4 files) are not supported")
        self._storages.setdefault(key, (dtype, numel))
        return key


def _materialise(obj: Any, blobs: dict[str, np.ndarray]) -> Any:
    if isinstance(obj, _TensorRef):
        flat = blobs[obj.storage_key]
        if not obj.size:
            return flat[obj.offset:obj.offset + 1].reshape(()).copy()
        if any(s == 0 for s in obj.size):
            return np.zeros(obj.size, dtype=flat.dtype)
        last = obj.offset + sum((n - 1) * s for n, s in zip(obj.size, obj.stride))
        if obj.offset < 0 or last >= flat.size:
            raise UsageError("corrupt .pth file: a tensor reaches past its storage")
        item = flat.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[obj.offset:], shape=obj.size, strides=tuple(s * item for s in obj.stride),
            writeable=False)
        return np.ascontiguousarray(view)
    if isinstance(obj, collections.OrderedDict):
        return collections.OrderedDict((k, _materialise(v, blobs)) for k, v in obj.items())
    if isinstance(obj, dict):
        return {k: _materialise(v, blobs) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_materialise(v, blobs) for v in obj)
    return obj


def _load_zip(data: bytes) -> Any:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise UsageError("not a PyTorch checkpoint: no single data.pkl in the zip")
        root = pkl[0][: -len("data.pkl")]
        storages: dict = {}
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
        blobs = {}
        for key, (dtype, _numel) in storages.items():
            raw = zf.read(f"{root}data/{key}")
            blobs[key] = np.frombuffer(raw, dtype=dtype)
    return _materialise(obj, blobs)


class _SafeHeaderUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise UnsafePickleError(f"refusing to load {module}.{name} from a .pth header")


def _load_legacy(data: bytes) -> Any:
    f = io.BytesIO(data)
    try:
        magic = _SafeHeaderUnpickler(f).load()
    except UnsafePickleError:
        raise
    except Exception:
        raise UsageError("not a PyTorch checkpoint (neither zip nor legacy format)") from None
    if magic != _LEGACY_MAGIC:
        raise UsageError("not a PyTorch checkpoint (bad magic number)")
    protocol = _SafeHeaderUnpickler(f).load()
    if protocol != 1001:
        raise UsageError(f"unsupported legacy .pth protocol {protocol!r}")
    sys_info = _SafeHeaderUnpickler(f).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise UsageError("big-endian .pth files are not supported")
    storages: dict = {}
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _SafeHeaderUnpickler(f).load()
    if not isinstance(keys, list):
        raise UsageError("corrupt .pth file: storage key list missing")
    blobs = {}
    for key in keys:
        key = str(key)
        if key not in storages:
            raise UsageError("corrupt .pth file: unknown storage key")
        dtype, _numel = storages[key]
        head = f.read(8)
        if len(head) != 8:
            raise UsageError("corrupt .pth file: truncated storage")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * dtype.itemsize
        start = f.tell()
        if numel < 0 or start + nbytes > len(data):
            raise UsageError("corrupt .pth file: truncated storage")
        blobs[key] = np.frombuffer(data, dtype=dtype, count=numel, offset=start)
        f.seek(start + nbytes)
    return _materialise(obj, blobs)


def load_state_dict(source: str | Path | bytes) -> dict[str, np.ndarray]:
    """Load a PyTorch state dict as numpy arrays, without torch and without running code.

    Parameters
    ----------
    source : str, Path or bytes
        Path of the ``.pth`` file, or its contents.

    Returns
    -------
    dict of str to numpy.ndarray
        Parameter name -> contiguous array (dtype as stored, e.g. float32).

    Raises
    ------
    UnsafePickleError
        The pickle references anything but tensors, storages and ``OrderedDict``.
    featx.errors.UsageError
        The file is not a PyTorch checkpoint or is corrupt.
    """
    data = source if isinstance(source, (bytes, bytearray)) else Path(source).read_bytes()
    data = bytes(data)
    if data[:4] == b"PK\x03\x04":
        obj = _load_zip(data)
    else:
        obj = _load_legacy(data)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, np.ndarray) for v in obj.values()):
        raise UsageError("the .pth file does not hold a state dict of tensors")
    return dict(obj)
