"""An output held in memory: the rows of a library call (``featx.extract_files``)."""
from __future__ import annotations

from .sinkbase import Encoder, RawEncoder, Sink


class _PickleEncoder(Encoder):
    def encode(self, key, mirror, value):
        import pickle

        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


class MemorySink(Sink):
    """Collects a run's rows in memory (no state, lock or sidecar): the output of
    :func:`featx.extract_files` and other library calls that return arrays."""

    format = "memory"

    def __init__(self, stacked: bool, key_columns=("path",), on_row=None):
        super().__init__("-", key_columns=key_columns)
        self.stacked = stacked
        self.values: list = []
        self.keys: list[dict] = []
        self.on_row = on_row      # given: each row is handed to it (key, value), in input order, and not kept

    def encoder(self):
        return RawEncoder() if self.stacked else _PickleEncoder()

    def check_kind(self, kind, extractor):
        pass

    def append(self, key, data, shape):
        import numpy as np

        if self.width is None and self.stacked:
            self.width = int(shape[0])
        value = np.frombuffer(data, dtype="<f4").copy() if self.stacked else _unpickle(data)
        if self.on_row is not None:
            self.on_row(dict(key), value)
        else:
            self.keys.append(dict(key))
            self.values.append(value)
        self.rows += 1

    def commit(self, state, entries):
        pass


def _unpickle(data: bytes):
    import pickle

    return pickle.loads(data)  # produced by our own worker processes
