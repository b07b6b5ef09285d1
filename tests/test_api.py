"""The Python API gives the numbers the CLI writes."""
from __future__ import annotations

import numpy as np
import pytest

import featx
from featx.errors import ParamError
from helpers import SAMPLES, featx_inprocess as run_featx  # the CLI's entry point, in this process


def test_api_equals_cli(tmp_path, sample):
    r = run_featx("extract", "hog", SAMPLES / "coffee.jpg", SAMPLES / "camera.png", "-o", tmp_path / "o.npy",
                  "--resize", "160x120", "--cell-size", "16", "--bins", "12", "-q")
    assert r.returncode == 0, r.stderr
    cli = np.load(tmp_path / "o.npy")
    ext = featx.open_extractor("hog", cell_size=16, bins=12)
    # the pixels as the CLI decodes them for this extractor and --resize (coffee.jpg at 1/2)
    pixels = [featx.read_image(SAMPLES / n, ext, resize=(160, 120)) for n in ("coffee.jpg", "camera.png")]
    assert pixels[0].shape == (200, 300, 3)
    api = np.stack([featx.extract(im, "hog", resize=(160, 120), cell_size=16, bins=12) for im in pixels])
    assert api.dtype == np.float32 and np.array_equal(api, cli)
    assert np.array_equal(featx.extract(pixels[0], ext, resize=(160, 120)), cli[0])
    # every pixel (cv2.imread, featx.read_image without an extractor): the CLI's --exact-decode
    r = run_featx("extract", "hog", SAMPLES / "coffee.jpg", "-o", tmp_path / "x.npy", "--exact-decode",
                  "--resize", "160x120", "--cell-size", "16", "--bins", "12", "-q")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(featx.read_image(SAMPLES / "coffee.jpg"), sample("coffee.jpg"))
    assert np.array_equal(featx.extract(sample("coffee.jpg"), ext, resize=(160, 120)), np.load(tmp_path / "x.npy")[0])
    assert not np.array_equal(cli[0], np.load(tmp_path / "x.npy")[0])


def test_api_validates_like_the_cli(sample):
    with pytest.raises(ParamError, match="bins"):
        featx.extract(sample("coffee.jpg"), "hog", bins=0)
    with pytest.raises(ParamError, match="valid parameters"):
        featx.open_extractor("hog", cellsize=3)
    with pytest.raises(TypeError, match="uint8"):
        featx.extract(sample("coffee.jpg").astype(np.float64), "hog")
    assert "hog" in featx.list_extractors()


def test_extract_files_returns_the_cli_numbers(tmp_path):
    r = run_featx("extract", "hog", SAMPLES, "-o", tmp_path / "o.npy", "--resize", "96x64", "-q")
    assert r.returncode == 0, r.stderr
    for jobs in (1, 2):
        X, keys, failures = featx.extract_files(str(SAMPLES), "hog", resize=(96, 64), jobs=jobs)
        assert np.array_equal(X, np.load(tmp_path / "o.npy")) and failures == []
        assert [k["path"] for k in keys] == [l.split(",", 1)[1] for l in
                                            (tmp_path / "o.index.csv").read_text().splitlines()[1:]]
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    X, keys, failures = featx.extract_files([str(SAMPLES / "coffee.jpg"), str(tmp_path / "bad.jpg")], "gradients")
    assert X.shape[0] == 1 and failures[0][0].endswith("bad.jpg")
