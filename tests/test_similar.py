"""``featx similar``: every output format and a plain matrix as input, key columns of frames
and regions, --query extracted with the output's recorded settings, the approximate index
kept beside the output (grown, rebuilt, never stale), and the missing extra."""
from __future__ import annotations

import csv
import io
import json
import shutil
import sys

import numpy as np
import pytest
from helpers import SAMPLES, featx

from featx import ann, neighbors

PHOTOS = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]
G = ["extract", "gradients", "-j", "1", "--resize", "96x64", "--bins", "6"]


def ok(r):
    assert r.returncode == 0, r.stderr.decode()
    return r


def rows(r) -> list[dict]:
    return list(csv.DictReader(io.StringIO(r.stdout.decode())))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    d = tmp_path_factory.mktemp("similar")
    (d / "photos").mkdir()
    for p in PHOTOS:
        shutil.copy(SAMPLES / p, d / "photos" / p)
    ok(featx(*G, "photos", "-o", "g.npy", "-q", cwd=d))
    return d


def test_matches_the_brute_force_reference_and_every_format_reads_the_same(made):
    base = ok(featx("similar", "g.npy", "--k", "2", cwd=made))
    got = rows(base)
    assert list(got[0]) == ["path", "neighbor", "rank", "distance"]
    X = np.load(made / "g.npy")
    names = [r["path"] for r in csv.DictReader(open(made / "g.index.csv"))]
    assert len(got) == 2 * len(names)
    # hellinger (gradients' declared metric), computed plainly
    H = np.sqrt(X / X.sum(1, keepdims=True))
    D = np.sqrt(((H[:, None] - H[None]) ** 2).sum(-1)) / np.sqrt(2)
    np.fill_diagonal(D, np.inf)
    for r in got:
        i, j = names.index(r["path"]), names.index(r["neighbor"])
        assert i != j
        assert np.argsort(D[i], kind="stable")[int(r["rank"]) - 1] == j
        assert abs(float(r["distance"]) - D[i, j]) < 1e-5
    for dst in ("g.csv", "gd/", "g.parquet"):
        if dst.endswith("parquet"):
            pytest.importorskip("pyarrow")
        ok(featx("convert", "g.npy", dst, "--overwrite", cwd=made))
        assert featx("similar", dst, "--k", "2", cwd=made).stdout == base.stdout, dst
    out = made / "n.csv"
    ok(featx("similar", "g.npy", "--k", "2", "-o", out, cwd=made))
    assert out.read_bytes() == base.stdout


def test_plain_matrix_with_and_without_an_index(made, tmp_path):
    X = np.load(made / "g.npy")
    np.save(tmp_path / "m.npy", X)
    r = rows(ok(featx("similar", "m.npy", "--k", "1", "--metric", "l2", cwd=tmp_path)))
    idx, dist = neighbors.nearest(X, 1, "l2")
    assert [(int(x["row"]), int(x["neighbor"])) for x in r] == [(i, int(idx[i, 0])) for i in range(len(X))]
    assert np.allclose([float(x["distance"]) for x in r], dist[:, 0], rtol=1e-5)
    # default for a plain matrix: l2, with no sidecar to say otherwise
    assert ok(featx("similar", "m.npy", "--k", "1", cwd=tmp_path)).stdout == \
        ok(featx("similar", "m.npy", "--k", "1", "--metric", "l2", cwd=tmp_path)).stdout
    shutil.copy(made / "g.index.csv", tmp_path / "m.index.csv")
    named = rows(ok(featx("similar", "m.npy", "--k", "1", "--metric", "l2", cwd=tmp_path)))
    assert named[0]["path"].endswith("astronaut.png") and "row" not in named[0]


def test_more_neighbours_than_rows_writes_what_there_is(made):
    r = rows(ok(featx("similar", "g.npy", "--k", "9", cwd=made)))
    assert len(r) == 5 * 4 and max(int(x["rank"]) for x in r) == 4


def test_query_is_extracted_with_the_recorded_settings(made):
    r = rows(ok(featx("similar", "g.npy", "--k", "2", "--query", "photos/rocket.jpg", cwd=made)))
    assert [x["rank"] for x in r] == ["1", "2"]
    assert r[0]["neighbor"].endswith("rocket.jpg") and float(r[0]["distance"]) == 0.0   # same params, same vector
    # the same file extracted directly with the same options, compared by hand
    from featx.api import extract_files
    v, _, _ = extract_files([str(made / "photos/coffee.jpg")], "gradients", resize=(96, 64), bins=6)
    X = np.load(made / "g.npy")
    H = lambda A: np.sqrt(A / A.sum(-1, keepdims=True))   # noqa: E731
    d = np.sqrt(((H(X) - H(v[0])) ** 2).sum(-1)) / np.sqrt(2)
    q = rows(ok(featx("similar", "g.npy", "--k", "5", "--query", "photos/coffee.jpg", cwd=made)))
    assert np.allclose(sorted(float(x["distance"]) for x in q), np.sort(d), atol=1e-6)


def test_query_without_a_sidecar_is_a_usage_error(made, tmp_path):
    np.save(tmp_path / "m.npy", np.load(made / "g.npy"))
    r = featx("similar", "m.npy", "--query", str(made / "photos/rocket.jpg"), cwd=tmp_path)
    assert r.returncode == 2 and b"no sidecar" in r.stderr


def test_frames_and_regions_have_key_columns(tmp_path):
    ok(featx("extract", "gradients", "-j", "1", SAMPLES / "clip.mp4", "--every", "20", "-o", "v.csv", "-q", cwd=tmp_path))
    r = rows(ok(featx("similar", "v.csv", "--k", "1", cwd=tmp_path)))
    assert list(r[0]) == ["path", "frame", "time", "neighbor", "neighbor_frame", "neighbor_time", "rank", "distance"]
    assert all(x["frame"] != x["neighbor_frame"] for x in r)
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "coffee.jpg")
    (tmp_path / "boxes.csv").write_text("path,x,y,w,h\ncoffee.jpg,10,10,64,64\ncoffee.jpg,100,100,64,64\n"
                                        "coffee.jpg,12,10,64,64\n")
    ok(featx("extract", "gradients", "-j", "1", "--regions", "boxes.csv", "-o", "r.npy", "-q", cwd=tmp_path))
    r = rows(ok(featx("similar", "r.npy", "--k", "1", cwd=tmp_path)))
    assert list(r[0])[:5] == ["path", "x", "y", "w", "h"] and "neighbor_x" in r[0]
    near = {(x["x"], x["neighbor_x"]) for x in r}
    assert ("10", "12") in near and ("12", "10") in near     # the two boxes 2 px apart


def test_odd_file_names(tmp_path):
    (tmp_path / "p").mkdir()
    odd = ["a, b.png", 'q"uote\n.png', "plain.png"]
    for n, src in zip(odd, PHOTOS):
        shutil.copy(SAMPLES / src, tmp_path / "p" / n)
    ok(featx(*G, "p", "-o", "o.npy", "-q", cwd=tmp_path))
    r = rows(ok(featx("similar", "o.npy", "--k", "1", cwd=tmp_path)))
    assert sorted(x["path"].rsplit("/", 1)[1] for x in r) == sorted(odd)
    assert {x["neighbor"].rsplit("/", 1)[1] for x in r} <= set(odd)


def same_answer(a, b):
    """The same neighbours in the same order; distances equal to float32 precision (the index
    gives its own float32 distances, the exact search recomputes them)."""
    ra, rb = rows(a), rows(b)
    names = [c for c in ra[0] if c != "distance"]
    assert [[x[c] for c in names] for x in ra] == [[x[c] for c in names] for x in rb]
    assert np.allclose([float(x["distance"]) for x in ra], [float(x["distance"]) for x in rb], rtol=1e-5, atol=1e-6)
    return True


def _meta(d, name):
    return json.loads((d / f".{name}.featx-ann" / "meta.json").read_text())


def test_index_grows_with_the_output_and_is_rebuilt_when_rows_change(tmp_path):
    pytest.importorskip(ann.MODULE)
    (tmp_path / "p").mkdir()
    for n in PHOTOS[:3]:
        shutil.copy(SAMPLES / n, tmp_path / "p" / n)
    args = [*G, "p", "-o", "o.npy", "-q"]
    ok(featx(*args, cwd=tmp_path))
    r = ok(featx("similar", "o.npy", "--approximate", "--k", "2", cwd=tmp_path))
    assert b"built over 3 rows" in r.stderr and b"recall@2 1.000" in r.stderr
    graph = _meta(tmp_path, "o.npy")["graph"]
    r = ok(featx("similar", "o.npy", "--approximate", "--k", "2", cwd=tmp_path))
    assert b"index" not in r.stderr.split(b"recall")[0] and _meta(tmp_path, "o.npy")["graph"] == graph   # used as is
    for n in PHOTOS[3:]:                       # the output grows: two new rows appended
        shutil.copy(SAMPLES / n, tmp_path / "p" / n)
    ok(featx(*args, cwd=tmp_path))
    r = ok(featx("similar", "o.npy", "--approximate", "--k", "2", cwd=tmp_path))
    assert b"updated (2 new rows added to 3)" in r.stderr and _meta(tmp_path, "o.npy")["rows"] == 5
    assert same_answer(r, ok(featx("similar", "o.npy", "--exact", "--k", "2", cwd=tmp_path)))
    shutil.copy(SAMPLES / "camera.png", tmp_path / "p" / "astronaut.png")   # a row replaced
    ok(featx(*args, cwd=tmp_path))
    r = ok(featx("similar", "o.npy", "--approximate", "--k", "2", cwd=tmp_path))
    assert b"rebuilt (rows of the output were replaced or removed" in r.stderr
    assert same_answer(r, ok(featx("similar", "o.npy", "--exact", "--k", "2", cwd=tmp_path)))
    assert len(list((tmp_path / ".o.npy.featx-ann").iterdir())) == 3     # old graphs removed


def test_stale_index_is_never_used(tmp_path, made):
    """An index whose rows no longer match (the output rewritten by another tool) is rebuilt."""
    pytest.importorskip(ann.MODULE)
    X = np.load(made / "g.npy")
    np.save(tmp_path / "m.npy", X)
    ok(featx("similar", "m.npy", "--approximate", "--k", "1", cwd=tmp_path))
    np.save(tmp_path / "m.npy", X[::-1].copy())
    r = ok(featx("similar", "m.npy", "--approximate", "--k", "1", cwd=tmp_path))
    assert b"rebuilt" in r.stderr
    assert same_answer(r, ok(featx("similar", "m.npy", "--exact", "--k", "1", cwd=tmp_path)))


def test_missing_extra_is_exit_2_only_when_the_index_is_needed(made, monkeypatch):
    monkeypatch.setitem(sys.modules, ann.MODULE, None)     # import hnswlib -> ImportError
    r = featx("similar", "g.npy", "--approximate", cwd=made)
    assert r.returncode == 2 and b"pip install 'featx[ann]'" in r.stderr
    ok(featx("similar", "g.npy", cwd=made))              # small: exact, no extra needed


def test_bad_metric_and_histogram_metric_on_signed_values(made, tmp_path):
    r = featx("similar", "g.npy", "--metric", "manhattan", cwd=made)
    assert r.returncode == 2 and b"unknown metric" in r.stderr
    np.save(tmp_path / "s.npy", np.array([[1, -1], [0, 1], [1, 1]], np.float32))
    r = featx("similar", "s.npy", "--metric", "hellinger", cwd=tmp_path)
    assert r.returncode == 2 and b"negative values" in r.stderr
