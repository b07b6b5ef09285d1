"""The Parquet output (issue 22): DuckDB, pyarrow and Polars read exactly the rows of the
``.npy`` output of the same inputs (images, video frames, regions, keypoints), and the
output keeps every guarantee of the others: incremental re-runs (a changed input's old
row never visible with its new one), --prune, shards + merge, recipes, the Python API."""
from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow")
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from helpers import SAMPLES, featx  # noqa: E402

G = ["extract", "gradients", "-q", "-j", "1"]
PHOTOS = {"astronaut.png": "astronaut.png", "camera.png": "camera.png", "coffee.jpg": "sub/coffee.jpg"}


def ok(r):
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    return r


def copy_samples(root: Path, names: dict[str, str] = PHOTOS) -> Path:
    for src, dst in names.items():
        (root / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(SAMPLES / src, root / dst)
    return root


def npy_rows(out: Path) -> tuple[list[dict], np.ndarray]:
    """Keys (typed as the parquet columns) and values of a .npy output."""
    index = out.with_name(out.name[:-4] + ".index.csv")
    with open(index, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    keys = [{k: (v if k == "path" else float(v) if k == "time" else int(v)) for k, v in r.items() if k != "row"}
            for r in rows]
    return keys, np.load(out)


def duck(out: Path, query: str = "SELECT * FROM read_parquet('{glob}')"):
    import duckdb

    con = duckdb.connect()
    try:
        return con.sql(query.format(glob=f"{out}/*.parquet")).fetchall(), con.sql(
            query.format(glob=f"{out}/*.parquet")).columns
    finally:
        con.close()


def duck_rows(out: Path) -> tuple[list[dict], np.ndarray]:
    rows, cols = duck(out)
    keys = [{c: r[i] for i, c in enumerate(cols) if c != "vector"} for r in rows]
    vals = np.array([r[cols.index("vector")] for r in rows], dtype=np.float32)
    return keys, vals


def arrow_rows(out: Path) -> tuple[list[dict], np.ndarray]:
    t = pads.dataset(str(out), format="parquet").to_table()
    keys = t.drop(["vector"]).to_pylist()
    width = t.schema.field("vector").type.list_size
    vals = t.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, width)
    return keys, vals


def same_rows(a, b, order: bool = True) -> None:
    ka, va = a
    kb, vb = b
    if not order:   # compare as sets of rows, keyed
        ia = sorted(range(len(ka)), key=lambda i: json.dumps(ka[i], sort_keys=True))
        ib = sorted(range(len(kb)), key=lambda i: json.dumps(kb[i], sort_keys=True))
        ka, va, kb, vb = [ka[i] for i in ia], va[ia], [kb[i] for i in ib], vb[ib]
    assert ka == kb
    assert va.dtype == np.float32 and vb.dtype == np.float32
    assert va.shape == vb.shape and va.tobytes() == vb.tobytes()   # bit-equal


def both(tmp_path: Path, args: list, name: str = "g", **kw) -> tuple[Path, Path]:
    npy, par = tmp_path / f"{name}.npy", tmp_path / f"{name}.parquet"
    ok(featx(*args, "-o", npy, **kw))
    ok(featx(*args, "-o", par, **kw))
    return npy, par


# ---------------------------------------------------------------------------
# readers see exactly the rows of the .npy output


def test_images_duckdb_pyarrow_polars_give_the_npy_rows(tmp_path):
    import polars as pl

    src = copy_samples(tmp_path / "p")
    npy, par = both(tmp_path, ["extract", "hog", "-q", "-j", "1", "--resize", "64x64", src])
    ref = npy_rows(npy)
    assert len(ref[0]) == 3
    same_rows(duck_rows(par), ref)
    same_rows(arrow_rows(par), ref)
    df = pl.read_parquet(f"{par}/*.parquet")
    assert df.columns == ["path", "vector"] and str(df.schema["vector"]).startswith("Array(Float32")
    same_rows((df.drop("vector").to_dicts(), df["vector"].to_numpy().astype(np.float32)), ref)
    # typed columns; the provenance in the schema's metadata and in the sidecar
    sch = pq.read_schema(next(par.glob("*.parquet")))
    assert sch.field("path").type == pa.string()
    assert sch.field("vector").type == pa.list_(pa.float32(), ref[1].shape[1])
    meta = json.loads(sch.metadata[b"featx"])
    side = json.loads((tmp_path / "g.parquet.featx.json").read_text())
    assert meta["extractor"] == side["extractor"] and meta["extractor"]["name"] == "hog"
    assert side["output"]["format"] == "parquet" and side["output"]["shape"] == list(ref[1].shape)
    assert not [p for p in par.iterdir() if p.name.startswith(".")]


def test_cosine_similarity_in_duckdb(tmp_path):
    src = copy_samples(tmp_path / "p", {n: n for n in ("astronaut.png", "camera.png", "chelsea.png", "coffee.jpg",
                                                       "rocket.jpg")})
    npy, par = both(tmp_path, ["extract", "hog", "-q", "-j", "1", "--resize", "64x64", src])
    keys, m = npy_rows(npy)
    d = m.shape[1]
    rows, _ = duck(par, "WITH f AS (SELECT * FROM read_parquet('{glob}')) "
                        f"SELECT b.path, array_cosine_similarity(a.vector::FLOAT[{d}], b.vector::FLOAT[{d}]) AS s "
                        "FROM f a, f b WHERE a.path LIKE '%camera.png' ORDER BY s DESC, b.path")
    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
    me = [k["path"] for k in keys].index(next(r[0] for r in rows if r[0].endswith("camera.png")))
    sims = unit @ unit[me]
    want = [keys[i]["path"] for i in np.lexsort(([k["path"] for k in keys], -sims))]
    assert [r[0] for r in rows] == want and rows[0][0].endswith("camera.png")
    assert np.allclose([r[1] for r in rows], np.sort(sims)[::-1], atol=1e-5)


def test_video_frames_give_the_npy_rows(tmp_path):
    shutil.copy(SAMPLES / "clip.mp4", tmp_path / "clip.mp4")
    npy, par = both(tmp_path, [*G, "clip.mp4", "--video", "--max-frames", "6"], cwd=tmp_path)
    ref = npy_rows(npy)
    assert len(ref[0]) == 6 and set(ref[0][0]) == {"path", "frame", "time"}
    same_rows(duck_rows(par), ref)
    same_rows(arrow_rows(par), ref)
    sch = pq.read_schema(next(par.glob("*.parquet")))
    assert [sch.field(c).type for c in ("path", "frame", "time")] == [pa.string(), pa.int64(), pa.float64()]


def test_regions_give_the_npy_rows(tmp_path):
    copy_samples(tmp_path / "p", {"coffee.jpg": "coffee.jpg", "rocket.jpg": "rocket.jpg"})
    (tmp_path / "boxes.csv").write_text("path,x,y,w,h\np/coffee.jpg,10,10,64,64\np/coffee.jpg,100,90,32,48\n"
                                        "p/rocket.jpg,0,0,40,40\n")
    npy, par = both(tmp_path, [*G, "--regions", "boxes.csv", "--resize", "32x32"], cwd=tmp_path)
    ref = npy_rows(npy)
    assert len(ref[0]) == 3 and list(ref[0][0]) == ["path", "x", "y", "w", "h"]
    same_rows(duck_rows(par), ref)
    same_rows(arrow_rows(par), ref)


def test_sift_keypoints_are_nested_lists_per_image(tmp_path):
    src = copy_samples(tmp_path / "p", {"camera.png": "camera.png", "coffee.jpg": "coffee.jpg"})
    args = ["extract", "sift", "-q", "-j", "1", "--resize", "160x120", src]
    ok(featx(*args, "-o", f"{tmp_path}/k/"))
    ok(featx(*args, "-o", tmp_path / "k.parquet"))
    from featx.output.parquet import ParquetReader

    rd = ParquetReader(str(tmp_path / "k.parquet"))
    assert rd.kind == "keypoints" and rd.key_columns == ("path",) and len(rd) == 2
    got = [(k, v) for keys, vals in rd.batches() for k, v in zip(keys, vals)]
    for key, val in got:
        npz = np.load(tmp_path / "k" / (os.path.relpath(key["path"], tmp_path) + ".npz"))
        assert val["keypoints"].tobytes() == npz["keypoints"].tobytes()
        assert val["descriptors"].tobytes() == npz["descriptors"].tobytes()
    rows, _ = duck(tmp_path / "k.parquet", "SELECT path, len(keypoints), keypoints[1].x, len(descriptors[1]) "
                                           "FROM read_parquet('{glob}') ORDER BY path")
    assert [r[1] for r in rows] == [len(v["keypoints"]) for _, v in sorted(got, key=lambda t: t[0]["path"])]
    assert all(r[3] == 128 for r in rows if r[1])


def test_dense_and_region_outputs_are_refused(tmp_path):
    from featx.errors import OutputError
    from featx.output.parquet import ParquetSink

    with pytest.raises(OutputError, match="npy-dir"):
        ParquetSink(str(tmp_path / "d.parquet")).check_kind("dense", "flow")
    with pytest.raises(OutputError, match="csv"):
        ParquetSink(str(tmp_path / "d.parquet")).check_kind("regions", "detect")


def test_odd_names_hold_featx_escaped_name_as_in_the_index(tmp_path):
    src = tmp_path / "p"
    src.mkdir()
    shutil.copy(SAMPLES / "camera.png", os.path.join(os.fsencode(src), b"caf\xe9.png"))
    shutil.copy(SAMPLES / "coffee.jpg", src / "two\nlines.jpg")
    npy, par = both(tmp_path, [*G, "--resize", "32x32", src])
    same_rows(duck_rows(par), npy_rows(npy))
    assert any("\\xe9" in k["path"] for k in duck_rows(par)[0])


# ---------------------------------------------------------------------------
# choosing the format


def test_format_chosen_by_name_by_flag_and_mismatches_refused(tmp_path):
    src = copy_samples(tmp_path / "p", {"camera.png": "camera.png"})
    ok(featx(*G, src, "--format", "parquet", "-o", tmp_path / "a.parquet"))
    assert list((tmp_path / "a.parquet").glob("part-*.parquet"))
    for bad in (["--format", "parquet", "-o", tmp_path / "b.npy"], ["--format", "npy", "-o", tmp_path / "c.parquet"]):
        r = featx(*G, src, *bad)
        assert r.returncode == 2 and b"parquet" in r.stderr, r.stderr
    (tmp_path / "file.parquet").write_text("not a folder")
    r = featx(*G, src, "-o", tmp_path / "file.parquet", "--overwrite")
    assert r.returncode == 2 and b"not a folder" in r.stderr


def test_missing_pyarrow_is_a_usage_error_naming_the_extra(tmp_path, monkeypatch):
    import sys

    src = copy_samples(tmp_path / "p", {"camera.png": "camera.png"})
    monkeypatch.setitem(sys.modules, "pyarrow", None)   # import pyarrow -> ImportError
    r = featx(*G, src, "-o", tmp_path / "a.parquet")
    assert r.returncode == 2
    assert b"pip install 'featx[parquet]'" in r.stderr and b"Traceback" not in r.stderr
    assert not (tmp_path / "a.parquet").exists()


def test_featx_starts_without_importing_pyarrow(tmp_path):
    import subprocess
    import sys

    code = "import featx.cli, featx.output.sinks, sys; print('pyarrow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_recipe_and_python_api_write_parquet(tmp_path):
    import featx as featx_api

    src = copy_samples(tmp_path / "p")
    (tmp_path / "r.toml").write_text(f'inputs = ["{src}"]\njobs = 1\n[[output]]\nextractor = "gradients"\n'
                                     f'path = "r.parquet"\n[[output]]\nextractor = "gradients"\npath = "r2"\n'
                                     'format = "parquet"\n')
    r = featx("run", "r.toml", "-q", cwd=tmp_path)
    assert r.returncode == 2 and b"r2" in r.stderr   # format parquet needs the .parquet name
    (tmp_path / "r.toml").write_text((tmp_path / "r.toml").read_text().replace('"r2"', '"r2.parquet"'))
    ok(featx("run", "r.toml", "-q", cwd=tmp_path))
    res = featx_api.run(inputs=[str(src)], outputs=[{"extractor": "gradients", "path": str(tmp_path / "api.parquet")}],
                    jobs=1)
    assert res.exit_code == 0
    ok(featx(*G, src, "-o", tmp_path / "g.npy"))
    ref = npy_rows(tmp_path / "g.npy")
    for name in ("r.parquet", "r2.parquet", "api.parquet"):
        same_rows(duck_rows(tmp_path / name), ref)


# ---------------------------------------------------------------------------
# incremental runs


def _watch_renames(monkeypatch, out: Path, seen: list):
    """After every rename featx makes, what a reader of the folder would see then."""
    real = os.replace

    def replace(src, dst, *a, **k):
        real(src, dst, *a, **k)
        if os.path.dirname(os.fspath(dst)) == str(out):
            seen.append(pads.dataset(str(out), format="parquet").to_table().column("path").to_pylist())
    monkeypatch.setattr(os, "replace", replace)


def test_new_inputs_appended_changed_replaced_never_both_visible(tmp_path, monkeypatch):
    src = copy_samples(tmp_path / "p")
    out = tmp_path / "g.parquet"
    args = [*G, src, "-o", out, "--commit-every", "0"]
    ok(featx(*args))
    first = duck_rows(out)
    assert len(first[0]) == 3
    shutil.copy(SAMPLES / "rocket.jpg", src / "new.jpg")             # new: appended
    shutil.copy(SAMPLES / "chelsea.png", src / "camera.png")         # changed in place: replaced
    seen: list = []
    _watch_renames(monkeypatch, out, seen)
    r = ok(featx(*args))
    monkeypatch.undo()
    assert seen and all(len(s) == len(set(s)) for s in seen), seen   # never a path twice
    got = duck_rows(out)
    ok(featx(*G, src, "-o", tmp_path / "fresh.npy"))
    same_rows(got, npy_rows(tmp_path / "fresh.npy"), order=False)
    assert [k["path"] for k in got[0]][-1].endswith("new.jpg")
    assert b"" == r.stdout
    # nothing changed: nothing rewritten
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    ok(featx(*args))
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before


def test_a_changed_input_that_now_fails_loses_its_row(tmp_path):
    src = copy_samples(tmp_path / "p")
    out = tmp_path / "g.parquet"
    ok(featx(*G, src, "-o", out))
    (src / "camera.png").write_bytes(b"not an image any more")
    r = featx(*G, src, "-o", out)
    assert r.returncode == 1
    paths = [k["path"] for k in duck_rows(out)[0]]
    assert len(paths) == 2 and not any(p.endswith("camera.png") for p in paths)


def test_prune_removes_rows_and_without_it_they_stay(tmp_path):
    src = copy_samples(tmp_path / "p")
    out = tmp_path / "g.parquet"
    ok(featx(*G, src, "-o", out))
    (src / "camera.png").unlink()
    ok(featx(*G, src, "-o", out))
    side = json.loads((tmp_path / "g.parquet.featx.json").read_text())
    assert len(side["disappeared"]) == 1 and len(duck_rows(out)[0]) == 3
    ok(featx(*G, src, "-o", out, "--prune"))
    keys, vals = duck_rows(out)
    assert len(keys) == 2 and not any(k["path"].endswith("camera.png") for k in keys)
    side = json.loads((tmp_path / "g.parquet.featx.json").read_text())
    assert side["output"]["shape"] == [2, vals.shape[1]]


def test_small_parts_are_merged_and_rows_keep_their_order(tmp_path, monkeypatch):
    from featx.output import parquet

    monkeypatch.setattr(parquet, "PILE", 3)
    src = tmp_path / "p"
    out = tmp_path / "g.parquet"
    names = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]
    seen: list = []
    for k, n in enumerate(names):   # one run per new input: one part each
        copy_samples(src, {n: f"{k}{n}"})
        out.mkdir(exist_ok=True)
        with monkeypatch.context() as m:
            _watch_renames(m, out, seen)
            ok(featx(*G, src, "-o", out))
    assert all(len(s) == len(set(s)) for s in seen), seen   # a merge never shows a row twice
    parts = sorted(p.name for p in out.glob("*.parquet"))
    assert len(parts) < len(names)   # 3 small parts in a row became one
    ok(featx(*G, src, "-o", tmp_path / "ref.npy"))
    same_rows(duck_rows(out), npy_rows(tmp_path / "ref.npy"))


def test_overwrite_starts_afresh_and_foreign_folder_is_refused(tmp_path):
    src = copy_samples(tmp_path / "p", {"camera.png": "camera.png"})
    out = tmp_path / "g.parquet"
    out.mkdir()
    (out / "theirs.parquet").write_bytes(b"x")
    r = featx(*G, src, "-o", out)
    assert r.returncode == 2 and b"--overwrite" in r.stderr
    ok(featx(*G, src, "-o", out, "--overwrite"))
    assert [p.name for p in out.iterdir()] == ["part-000001.parquet"]
    ok(featx(*G, src, "-o", out, "--overwrite"))
    assert len(duck_rows(out)[0]) == 1


# ---------------------------------------------------------------------------
# shards and merge


def test_shards_merge_into_the_unsharded_output(tmp_path):
    src = copy_samples(tmp_path / "p", {n: n for n in ("astronaut.png", "camera.png", "chelsea.png", "coffee.jpg",
                                                       "rocket.jpg")})
    for i in (1, 2):
        ok(featx(*G, src, "--shard", f"{i}/2", "-o", tmp_path / f"s{i}.parquet"))
    ok(featx("merge", tmp_path / "m.parquet", tmp_path / "s1.parquet", tmp_path / "s2.parquet"))
    ok(featx(*G, src, "-o", tmp_path / "ref.npy"))
    same_rows(duck_rows(tmp_path / "m.parquet"), npy_rows(tmp_path / "ref.npy"))
    # the merged output continues incrementally without sharding
    shutil.copy(SAMPLES / "camera.png", src / "zz.png")
    ok(featx(*G, src, "-o", tmp_path / "m.parquet"))
    ok(featx(*G, src, "-o", tmp_path / "ref.npy"))
    same_rows(duck_rows(tmp_path / "m.parquet"), npy_rows(tmp_path / "ref.npy"))
    r = featx("merge", tmp_path / "x.parquet", tmp_path / "s1.parquet", tmp_path / "ref.npy")
    assert r.returncode == 2


def test_parquet_reader_streams_the_committed_rows(tmp_path):
    """ParquetReader (the READER.md interface featx convert/inspect use): rows in output
    order, in batches, with the provenance from the sidecar or, without it, the metadata."""
    from featx.output.parquet import ParquetReader

    src = copy_samples(tmp_path / "p")
    shutil.copy(SAMPLES / "chelsea.png", src / "chelsea.png")
    npy, par = both(tmp_path, [*G, src])
    keys, vals = npy_rows(npy)
    rd = ParquetReader(str(par))
    assert (rd.format, rd.kind, rd.key_columns, rd.width, len(rd)) == ("parquet", "vector", ("path",),
                                                                       vals.shape[1], 4)
    got = list(rd.batches(rows=3))
    assert [len(k) for k, _ in got] == [3, 1]
    assert [k for ks, _ in got for k in ks] == keys
    assert np.concatenate([v for _, v in got]).tobytes() == vals.tobytes()
    assert rd.sidecar["status"] == "complete"
    (tmp_path / "g.parquet.featx.json").unlink()
    rd = ParquetReader(str(par))
    assert rd.sidecar["extractor"]["name"] == "gradients" and "status" not in rd.sidecar
