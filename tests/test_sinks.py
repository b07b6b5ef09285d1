"""Sinks: exact formats, atomic commit, refusal of what a format cannot hold."""
from __future__ import annotations

import csv

import numpy as np
import pytest

from featx.output import npyformat, sinks
from featx.errors import OutputError
from featx.extractor import Keypoints
from featx.output.state import Entry, State


def _feed(sink, rows, state=None):
    state = state or State(sink.state_path)
    enc = sink.encoder()
    sink.open(state)
    entries = []
    for key, v in rows:
        r0 = sink.rows
        sink.append(key, enc.encode(key, key["path"], v), v.shape)
        entries.append(Entry(key["path"], None, r0, 1))
    sink.commit(state, entries)
    sink.close()
    return sink.info()


def test_npy_header_is_valid_for_any_count(tmp_path):
    rng = np.random.default_rng(0)
    rows = [({"path": f"p{i}"}, rng.standard_normal(7).astype(np.float32)) for i in range(1000)]
    out = tmp_path / "x.npy"
    info = _feed(sinks.NpySink(str(out)), rows)
    m = np.load(out)
    assert info["shape"] == [1000, 7] and np.array_equal(m, np.stack([v for _, v in rows]))
    assert len(npyformat.npy_header(10**15, 10**9)) == len(npyformat.npy_header(0, 0)) == 128
    with open(tmp_path / "x.index.csv", newline="") as fh:
        idx = list(csv.reader(fh))
    assert idx[0] == ["row", "path"] and idx[1000] == ["999", "p999"]


def test_csv_quotes_awkward_paths_and_round_trips_floats(tmp_path):
    vals = np.array([0.1, -1e-38, 3.4028235e38, 1 / 3, 0.0], dtype=np.float32)
    out = tmp_path / "x.csv"
    _feed(sinks.CsvSink(str(out)), [({"path": 'a,b "c".jpg'}, vals)])
    with open(out, newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["path", "f0", "f1", "f2", "f3", "f4"]
    assert rows[1][0] == 'a,b "c".jpg'
    assert np.array_equal(np.array(rows[1][1:], dtype=np.float32), vals)


def test_uncommitted_appends_are_cut_on_reopen(tmp_path):
    """What a killed run appended after its last commit disappears; committed rows stay."""
    for cls, name in ((sinks.NpySink, "x.npy"), (sinks.CsvSink, "x.csv")):
        out = str(tmp_path / name)
        rows = [({"path": f"p{i}"}, np.full(4, i, np.float32)) for i in range(3)]
        _feed(cls(out), rows[:2])
        committed = {p: open(p, "rb").read() for p in cls(out).paths()}
        st = State(cls(out).state_path)
        s = cls(out)
        s.open(st)
        key, v = rows[2]
        s.append(key, s.encoder().encode(key, "p2", v), v.shape)
        s._fh.flush()  # written, never committed: as if killed here
        s.close()
        s = cls(out)
        s.open(State(s.state_path))
        s.close()
        assert {p: open(p, "rb").read() for p in s.paths()} == committed
        if name.endswith(".npy"):
            assert np.array_equal(np.load(out), np.stack([rows[0][1], rows[1][1]]))


def test_stacked_outputs_refuse_keypoints_and_maps(tmp_path):
    for fmt, name in (("npy", "x.npy"), ("csv", "x.csv")):
        s = sinks.make_sink(str(tmp_path / name), fmt)
        with pytest.raises(OutputError, match="npy-dir"):
            s.check_kind("keypoints", "sift")
        with pytest.raises(OutputError, match="npy-dir"):
            s.check_kind("dense", "flow")
    sinks.make_sink(str(tmp_path / "d") + "/", None).check_kind("keypoints", "sift")


def test_npy_dir_writes_npz_for_keypoints(tmp_path):
    enc = sinks.NpyDirEncoder(str(tmp_path))
    kp = Keypoints(np.zeros((2, 6), np.float32), np.ones((2, 128), np.float32))
    enc.encode({"path": "a/b.jpg"}, "a/b.jpg", kp)
    with np.load(tmp_path / "a" / "b.jpg.npz", allow_pickle=False) as z:
        assert z["keypoints"].shape == (2, 6) and z["descriptors"].shape == (2, 128)
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.jpg.npz"]


def test_format_inference():
    assert sinks.infer_format("-", None) == "csv"
    assert sinks.infer_format("a.NPY", None) == "npy"
    assert sinks.infer_format("feats/", None) == "npy-dir"
    with pytest.raises(OutputError, match="--format"):
        sinks.infer_format("features", None)


@pytest.mark.parametrize("where", ["first part", "middle part", "last part", "none"])
@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_a_commit_checks_every_part_of_what_was_appended(tmp_path, monkeypatch, where, fmt):
    """What was appended since the last commit is checked in parts (each its own CRC-32, two
    threads): a byte changed under the run in any part stops the commit; untouched, it commits."""
    from featx.output.atomic import OutputWriteError
    from featx.output.sinkbase import _StackedSink

    monkeypatch.setattr(_StackedSink, "CRC_PART", 1000)   # many parts for a few rows
    out = tmp_path / f"x.{fmt}"
    sink = sinks.make_sink(str(out), fmt)
    state = State(sink.state_path)
    sink.open(state)
    enc = sink.encoder()
    rng = np.random.default_rng(0)
    for i in range(40):
        v = rng.standard_normal(100).astype(np.float32)
        sink.append({"path": f"p{i}"}, enc.encode({"path": f"p{i}"}, f"p{i}", v), v.shape)
    sink._drain()
    sink._fh.flush()
    assert len(sink._crc_parts) > 3
    size = sink.data_len
    at = {"first part": sink.data_start + 10, "middle part": (sink.data_start + size) // 2,
          "last part": size - 3}.get(where)
    if at is not None:
        with open(sink._data_name(), "r+b") as fh:   # another program, same length
            fh.seek(at)
            b = fh.read(1)
            fh.seek(at)
            fh.write(bytes([b[0] ^ 0x20]))
    try:
        if at is None:
            sink.commit(state, [])
            assert sink.rows == 40
        else:
            with pytest.raises(OutputWriteError, match="changed in what featx wrote"):
                sink.commit(state, [])
    finally:
        sink.close()
        state.close()
