"""Encodings and codebooks: hand-computed cases, closed forms, independent
references (scipy densities, cv2.kmeans, cv2.ml.EM) and a retrieval check on
the sample photos."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from featx.codebook import ReservoirSampler, fit_gmm, kmeans, learn_codebook, local_descriptors, supports_codebook
from featx.encoding import (
    Codebook, bovw, check_codebook, fisher, load_codebook, normalise, pyramid_cells, save_codebook, vlad,
)
from featx.errors import ParamError, UsageError

# A tiny codebook and four descriptors whose assignments are worked out by hand:
#   [1,0] -> c0 (d2: 1, 81, 101)   [9,1] -> c1 (82, 2, 162)
#   [0,8] -> c2 (64, 164, 4)       [2,3] -> c0 (13, 73, 53)
C = np.array([[0, 0], [10, 0], [0, 10]], dtype=np.float32)
X = np.array([[1, 0], [9, 1], [0, 8], [2, 3]], dtype=np.float32)


# ---------------------------------------------------------------------------
# normalisation and BoVW


def test_normalise_by_hand():
    v = np.array([4.0, -9.0, 0.0])
    np.testing.assert_allclose(normalise(v, "none", True), [2, -3, 0])
    np.testing.assert_allclose(normalise(v, "l1", False), [4 / 13, -9 / 13, 0])
    np.testing.assert_allclose(normalise(v, "l2", True), [2 / math.sqrt(13), -3 / math.sqrt(13), 0])
    assert not normalise(np.zeros(5), "l2", True).any()
    assert not normalise(np.zeros(5), "l1", False).any()


def test_bovw_hard_by_hand():
    np.testing.assert_allclose(bovw(X, C, norm="none", power=False), [2, 1, 1])
    np.testing.assert_allclose(bovw(X, C, norm="l1", power=False), [0.5, 0.25, 0.25])
    np.testing.assert_allclose(bovw(X, C, norm="l2", power=True), [math.sqrt(2) / 2, 0.5, 0.5], rtol=1e-6)
    out = bovw(X, C)
    assert out.dtype == np.float32 and out.shape == (3,)


def test_bovw_soft_by_hand():
    # soft=2, sigma=5 (2 sigma^2 = 50): each descriptor splits over its two nearest words
    # with weights 1/(1+exp(-(d2_second - d2_first)/50)) and the rest.
    a = 1 / (1 + math.exp(-80 / 50))   # [1,0]: c0 (1) vs c1 (81);  [9,1]: c1 (2) vs c0 (82)
    b = 1 / (1 + math.exp(-60 / 50))   # [0,8]: c2 (4) vs c0 (64)
    c = 1 / (1 + math.exp(-40 / 50))   # [2,3]: c0 (13) vs c2 (53)
    expect = [a + (1 - a) + (1 - b) + c, (1 - a) + a, b + (1 - c)]
    got = bovw(X, C, soft=2, sigma=5.0, norm="none", power=False)
    np.testing.assert_allclose(got, expect, rtol=1e-6)
    assert abs(got.sum() - 4) < 1e-5           # each descriptor is one vote
    assert not np.allclose(got, [2, 1, 1])      # and it differs from hard assignment
    # soft=1 is hard assignment
    np.testing.assert_allclose(bovw(X, C, soft=1, sigma=5.0, norm="none", power=False), [2, 1, 1])


def test_pyramid_cells_and_bovw_pyramid_by_hand():
    pos = np.array([[10, 10], [90, 10], [10, 90], [60, 60]], dtype=np.float32)
    got = bovw(X, C, positions=pos, image_size=(100, 100), pyramid=2, norm="none", power=False)
    expect = [2, 1, 1,      # level 0: whole image
              1, 0, 0,      # top-left: [1,0] -> c0
              0, 1, 0,      # top-right: [9,1] -> c1
              0, 0, 1,      # bottom-left: [0,8] -> c2
              1, 0, 0]      # bottom-right: [2,3] -> c0
    np.testing.assert_allclose(got, expect)
    # boundaries: column = floor((x + 0.5) * n / W), clipped; level 2 cells start at 1 + 4 = 5
    cells = pyramid_cells(np.array([[49.4, 0], [49.5, 0], [-0.5, 99.5], [120, -3]]), 100, 100, 3)
    np.testing.assert_array_equal(cells[:, 0], 0)
    np.testing.assert_array_equal(cells[:, 1], [1, 2, 3, 2])
    np.testing.assert_array_equal(cells[:, 2], [5 + 1, 5 + 2, 5 + 12, 5 + 3])
    assert bovw(X, C, positions=pos, image_size=(100, 100), pyramid=3).shape == (3 * 21,)


# ---------------------------------------------------------------------------
# VLAD


def test_vlad_by_hand():
    # residual sums: c0: [1,0]+[2,3] = [3,3]; c1: [9,1]-[10,0] = [-1,1]; c2: [0,8]-[0,10] = [0,-2]
    np.testing.assert_allclose(vlad(X, C, intra=False, norm="none", power=False), [3, 3, -1, 1, 0, -2])
    r = 1 / math.sqrt(2)
    intra = np.array([r, r, -r, r, 0, -1])
    np.testing.assert_allclose(vlad(X, C, intra=True, norm="none", power=False), intra, rtol=1e-6)
    np.testing.assert_allclose(vlad(X, C, intra=True, norm="l2", power=False), intra / math.sqrt(3), rtol=1e-6)
    q = 2 ** -0.25
    p = np.array([q, q, -q, q, 0, -1])
    np.testing.assert_allclose(vlad(X, C), p / np.linalg.norm(p), rtol=1e-6)
    # unused words keep zero blocks
    v = vlad(X[:1], C, norm="none", power=False)
    np.testing.assert_allclose(v, [1, 0, 0, 0, 0, 0])


# ---------------------------------------------------------------------------
# Fisher vectors


def test_fisher_by_hand_hard_posteriors():
    # two far-apart 1-d components: posteriors are exactly 0/1
    w = np.array([0.5, 0.5])
    mu = np.array([[-10.0], [10.0]])
    var = np.array([[4.0], [1.0]])
    x = np.array([[-8.0], [-11.0], [10.5]])
    n = 3
    gmu1 = ((2 / 2) + (-1 / 2)) / (n * math.sqrt(0.5))
    gmu2 = (0.5 / 1) / (n * math.sqrt(0.5))
    gs1 = ((4 / 4 - 1) + (1 / 4 - 1)) / (n * math.sqrt(1.0))
    gs2 = (0.25 / 1 - 1) / (n * math.sqrt(1.0))
    got = fisher(x, w, mu, var, norm="none", power=False)
    np.testing.assert_allclose(got, [gmu1, gmu2, gs1, gs2], rtol=1e-6)


def test_fisher_by_hand_soft_posteriors():
    # x = 0.5 is equidistant from both means: posteriors are the weights 0.3 / 0.7
    w = np.array([0.3, 0.7])
    mu = np.array([[0.0], [1.0]])
    var = np.ones((2, 1))
    got = fisher(np.array([[0.5]]), w, mu, var, norm="none", power=False)
    expect = [0.3 * 0.5 / math.sqrt(0.3), 0.7 * -0.5 / math.sqrt(0.7),
              0.3 * (0.25 - 1) / math.sqrt(0.6), 0.7 * (0.25 - 1) / math.sqrt(1.4)]
    np.testing.assert_allclose(got, expect, rtol=1e-6)


def test_fisher_against_scipy_densities():
    from scipy.stats import multivariate_normal

    rng = np.random.default_rng(3)
    k, d, n = 4, 3, 25
    w = rng.dirichlet(np.ones(k))
    mu = rng.normal(0, 2, (k, d))
    var = rng.uniform(0.5, 3, (k, d))
    x = rng.normal(0, 2, (n, d))
    dens = np.stack([w[j] * multivariate_normal(mu[j], np.diag(var[j])).pdf(x) for j in range(k)], 1)
    g = dens / dens.sum(1, keepdims=True)
    gmu = np.zeros((k, d))
    gs = np.zeros((k, d))
    for j in range(k):
        for i in range(n):
            z = (x[i] - mu[j]) / np.sqrt(var[j])
            gmu[j] += g[i, j] * z
            gs[j] += g[i, j] * (z * z - 1)
        gmu[j] /= n * math.sqrt(w[j])
        gs[j] /= n * math.sqrt(2 * w[j])
    ref = np.concatenate([gmu.ravel(), gs.ravel()])
    np.testing.assert_allclose(fisher(x, w, mu, var, norm="none", power=False), ref, rtol=1e-5, atol=1e-7)
    ref_i = np.sign(ref) * np.sqrt(np.abs(ref))
    np.testing.assert_allclose(fisher(x, w, mu, var), ref_i / np.linalg.norm(ref_i), rtol=1e-5, atol=1e-7)


def test_empty_descriptors_encode_to_zeros():
    empty = np.zeros((0, 2), np.float32)
    for v in (bovw(empty, C), bovw(empty, C, soft=2, sigma=1.0), vlad(empty, C),
              bovw(empty, C, positions=np.zeros((0, 2)), image_size=(10, 10), pyramid=2),
              fisher(empty, np.full(3, 1 / 3), C, np.ones_like(C))):
        assert v.dtype == np.float32 and v.size and not v.any()


# ---------------------------------------------------------------------------
# sampling, k-means, GMM


def test_reservoir_bounded_deterministic_and_chunking_invariant():
    rows = np.arange(5000, dtype=np.float32)[:, None].repeat(2, axis=1)
    a = ReservoirSampler(300, seed=7)
    for chunk in np.array_split(rows, 37):
        a.add(chunk)
    b = ReservoirSampler(300, seed=7)
    for chunk in np.array_split(rows, 5):
        b.add(chunk)
    b.add(np.zeros((0, 2), np.float32))
    assert a.sample.shape == (300, 2) and a.seen == 5000
    np.testing.assert_array_equal(a.sample, b.sample)
    assert len(np.unique(a.sample[:, 0])) == 300            # no row twice
    c = ReservoirSampler(300, seed=8)
    c.add(rows)
    assert not np.array_equal(np.sort(a.sample[:, 0]), np.sort(c.sample[:, 0]))
    small = ReservoirSampler(300, seed=0)
    small.add(rows[:120])
    np.testing.assert_array_equal(small.sample, rows[:120])


def test_reservoir_is_uniform():
    # each of 10 blocks of 200 rows should hold ~1/10 of a 100-row sample; 200 seeds
    counts = np.zeros(10)
    for seed in range(200):
        r = ReservoirSampler(100, seed=seed)
        for chunk in np.array_split(np.arange(2000, dtype=np.float32)[:, None], 13):
            r.add(chunk)
        counts += np.bincount((r.sample[:, 0] // 200).astype(int), minlength=10)
    expect = 200 * 100 / 10
    # binomial sd per block ~ sqrt(20000 * .1 * .9) = 42: 5 sd
    assert np.abs(counts - expect).max() < 210, counts


def test_kmeans_closed_form():
    # three blobs, each symmetric about its centre: the optimum is the blob means
    centres = np.array([[0, 0, 0], [50, 0, 10], [0, 40, -30]], dtype=np.float32)
    offsets = np.concatenate([np.eye(3), -np.eye(3), 2 * np.eye(3), -2 * np.eye(3)]).astype(np.float32)
    x = np.concatenate([c + offsets for c in centres])
    got, labels, inertia = kmeans(x, 3, seed=1)
    order = np.lexsort(got.T[::-1])
    np.testing.assert_allclose(got[order], centres[np.lexsort(centres.T[::-1])], atol=1e-5)
    assert inertia == pytest.approx(3 * 2 * (3 * 1 + 3 * 4), rel=1e-6)
    assert len(np.unique(labels)) == 3
    one, _, _ = kmeans(x, 1)
    np.testing.assert_allclose(one[0], x.mean(0), atol=1e-4)


def test_kmeans_deterministic_and_as_good_as_cv2(sample):
    import cv2

    from featx.extractors.sift import SIFT

    x = SIFT.create().extract(sample("chelsea.png")).descriptors
    a = kmeans(x, 24, seed=5)
    b = kmeans(x, 24, seed=5)
    np.testing.assert_array_equal(a[0], b[0])
    cv2.setRNGSeed(0)
    compact, _, _ = cv2.kmeans(x, 24, None, (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 100, 1e-4),
                               3, cv2.KMEANS_PP_CENTERS)
    assert a[2] <= 1.03 * compact, (a[2], compact)


def test_gmm_single_component_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal([1, -2, 5], [1, 3, 0.5], (400, 3))
    w, mu, var, _ = fit_gmm(x, 1)
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(mu[0], x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(var[0], x.var(0), rtol=1e-5)


def test_gmm_recovers_known_mixture_and_agrees_with_cv2_em():
    import cv2

    rng = np.random.default_rng(1)
    n = 6000
    true_w = np.array([0.3, 0.7])
    true_mu = np.array([[0.0, 0.0], [6.0, 3.0]])
    true_sd = np.array([[1.0, 0.5], [0.7, 2.0]])
    z = rng.random(n) < true_w[1]
    x = np.where(z[:, None], rng.normal(true_mu[1], true_sd[1], (n, 2)), rng.normal(true_mu[0], true_sd[0], (n, 2)))
    w, mu, var, _ = fit_gmm(x, 2, seed=0)
    o = np.argsort(mu[:, 0])
    np.testing.assert_allclose(w[o], true_w, atol=0.02)
    np.testing.assert_allclose(mu[o], true_mu, atol=0.08)
    np.testing.assert_allclose(np.sqrt(var[o]), true_sd, rtol=0.05)
    em = cv2.ml.EM_create()
    em.setClustersNumber(2)
    em.setCovarianceMatrixType(cv2.ml.EM_COV_MAT_DIAGONAL)
    em.trainEM(x.astype(np.float32))
    cm = em.getMeans()
    co = np.argsort(cm[:, 0])
    np.testing.assert_allclose(mu[o], cm[co], atol=0.02)
    np.testing.assert_allclose(w[o], em.getWeights().ravel()[co], atol=0.005)
    cvar = np.array([np.diag(c) for c in em.getCovs()])[co]
    np.testing.assert_allclose(var[o], cvar, rtol=0.02)


# ---------------------------------------------------------------------------
# learning, storage, checks


class _FakeExtractor:
    name = "fake"
    descriptor_length = 2

    def __init__(self, sig):
        self.params = None
        self._sig = sig

    def descriptor_signature(self):
        return dict(self._sig)


def _stream(seed=0, images=30):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], np.float32)
    for i in range(images):
        n = int(rng.integers(0, 60))
        yield centres[rng.integers(0, 4, n)] + rng.normal(0, 1, (n, 2)).astype(np.float32)


def test_learn_codebook_save_load_roundtrip(tmp_path):
    ext = _FakeExtractor({"root_sift": False})
    cb = learn_codebook(_stream(), 4, sample=500, seed=3, gmm=True, extractor=ext)
    again = learn_codebook(_stream(), 4, sample=500, seed=3, gmm=True, extractor=ext)
    np.testing.assert_array_equal(cb.centers, again.centers)
    np.testing.assert_array_equal(cb.gmm_means, again.gmm_means)
    got = np.sort(cb.centers.round(), axis=0)
    np.testing.assert_allclose(got, [[0, 0], [0, 0], [20, 20], [20, 20]], atol=0.5)
    m = cb.metadata
    assert m["n_sampled"] == 500 and m["n_images"] == 30 and m["n_descriptors_seen"] > 500
    assert m["extractor"] == "fake" and m["descriptor"] == {"root_sift": False} and m["k"] == 4
    assert 0.9 < m["quantisation_rms"] < 2.0            # noise sd 1 in 2-d: rms ~ sqrt(2)
    path = tmp_path / "cb.codebook.npz"
    save_codebook(cb, path)
    assert [p.name for p in tmp_path.iterdir()] == ["cb.codebook.npz"]   # no temporary left
    with np.load(path, allow_pickle=False) as z:
        assert set(z.files) == {"centers", "metadata", "gmm_weights", "gmm_means", "gmm_variances"}
        assert json.loads(str(z["metadata"][()]))["featx_version"]
    back = load_codebook(path)
    np.testing.assert_array_equal(back.centers, cb.centers)
    np.testing.assert_array_equal(back.gmm_variances, cb.gmm_variances)
    assert back.metadata == json.loads(json.dumps(cb.metadata))
    check_codebook(back, "fake", {"root_sift": False}, 2)
    with pytest.raises(ParamError, match="--root-sift off.*--root-sift on"):
        check_codebook(back, "fake", {"root_sift": True}, 2)
    with pytest.raises(ParamError, match="made for extractor 'fake', not 'sift'"):
        check_codebook(back, "sift", {"root_sift": False}, 2)


def test_learn_codebook_needs_k_descriptors():
    with pytest.raises(UsageError, match="cannot learn k = 500"):
        learn_codebook(_stream(images=1), 500, sample=1000)


def test_load_codebook_refuses_bad_files(tmp_path):
    with pytest.raises(UsageError, match="does not exist"):
        load_codebook(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(UsageError, match="not a featx codebook"):
        load_codebook(tmp_path / "other.npz")
    np.savez(tmp_path / "obj.npz", centers=np.zeros((2, 2)), metadata=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UsageError, match="holds Python objects"):
        load_codebook(tmp_path / "obj.npz")      # would need pickle: refused
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(UsageError):
        load_codebook(tmp_path / "junk.npz")
    cb = Codebook(np.zeros((2, 2), np.float32), {"format": "featx-codebook", "format_version": 99})
    save_codebook(cb, tmp_path / "future.npz")
    with pytest.raises(UsageError, match="version 99"):
        load_codebook(tmp_path / "future.npz")


# ---------------------------------------------------------------------------
# With SIFT: the extractor's encodings, empty images, retrieval


NAMES = ["astronaut.png", "camera.png", "chelsea.png", "coffee.jpg", "rocket.jpg"]


def _transformed(img):
    """Rotated 12 deg, scaled 0.9, mild perspective, brighter: a 'copy' of the photo."""
    import cv2

    h, w = img.shape[:2]
    th, s = math.radians(12), 0.9
    c = np.array([[1, 0, -w / 2], [0, 1, -h / 2], [0, 0, 1]])
    r = np.array([[s * math.cos(th), -s * math.sin(th), 0], [s * math.sin(th), s * math.cos(th), 0], [0, 0, 1]])
    p = np.array([[1, 0, 0], [0, 1, 0], [2e-4, 1e-4, 1]])
    hmat = np.linalg.inv(c) @ p @ r @ c
    out = cv2.warpPerspective(img, hmat, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return np.clip(out.astype(np.int16) + 12, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def sift_world(sample, tmp_path_factory):
    from featx.extractors.sift import SIFT

    ext = SIFT.create(root_sift=True)
    originals = {n: ext.describe(sample(n)) for n in NAMES}
    copies = {n: ext.describe(_transformed(sample(n))) for n in NAMES}
    d = tmp_path_factory.mktemp("codebooks")
    cb = learn_codebook((f.descriptors for f in originals.values()), 32, sample=20000, seed=0,
                        gmm=True, extractor=ext)
    path = d / "sift-root-k32.codebook.npz"
    save_codebook(cb, path)
    return {"originals": originals, "copies": copies, "path": str(path), "dir": d}


@pytest.mark.parametrize("encode,extra", [("bovw", {}), ("bovw", {"soft": 3, "pyramid": 2}),
                                          ("vlad", {}), ("fisher", {})])
def test_retrieval_transformed_copy_is_nearest_to_its_original(sift_world, sample, encode, extra):
    from featx.extractors.sift import SIFT

    ext = SIFT.create(root_sift=True, encode=encode, codebook=sift_world["path"], **extra)
    originals = {n: ext.encoder(f, *sample(n).shape[:2]) for n, f in sift_world["originals"].items()}
    margins = []
    for n, f in sift_world["copies"].items():
        q = ext.encoder(f, *sample(n).shape[:2])
        assert q.shape == ext.output_spec(*sample(n).shape[:2]).shape and q.dtype == np.float32
        dist = {m: float(np.linalg.norm(q - v)) for m, v in originals.items()}
        others = min(v for m, v in dist.items() if m != n)
        margins.append(others - dist[n])
        assert dist[n] < others, (encode, n, dist)
    assert min(margins) > 0


def test_encoded_extract_and_flat_image(sift_world, sample):
    from featx.extractors.sift import SIFT

    img = sample("chelsea.png")
    flat = np.full((120, 160, 3), 128, np.uint8)
    for encode, length in (("bovw", 32), ("vlad", 32 * 128), ("fisher", 2 * 32 * 128)):
        ext = SIFT.create(root_sift=True, encode=encode, codebook=sift_world["path"])
        spec = ext.output_spec(*img.shape[:2])
        assert spec.kind == "vector" and spec.shape == (length,)
        v = ext.extract(img)
        assert v.shape == (length,) and v.dtype == np.float32
        assert abs(float(np.linalg.norm(v)) - 1) < 1e-5
        z = ext.extract(flat)
        assert z.shape == (length,) and z.dtype == np.float32 and not z.any()


def test_extractor_refuses_mismatched_codebook(sift_world, tmp_path):
    from featx.extractors.sift import SIFT

    with pytest.raises(ParamError, match=r"--dense off.*--root-sift on.*this run uses.*--root-sift off"):
        SIFT.create(encode="vlad", codebook=sift_world["path"])
    with pytest.raises(ParamError, match="this run uses.*--dense on"):
        SIFT.create(root_sift=True, dense=True, encode="vlad", codebook=sift_world["path"])
    # detection thresholds and caps do not change the descriptor space
    SIFT.create(root_sift=True, contrast_threshold=0.06, max_keypoints=100, encode="vlad",
                codebook=sift_world["path"])
    nogmm = tmp_path / "nogmm.npz"
    cb = load_codebook(sift_world["path"])
    cb.gmm_weights = cb.gmm_means = cb.gmm_variances = None
    save_codebook(cb, nogmm)
    SIFT.create(root_sift=True, encode="bovw", codebook=str(nogmm))
    with pytest.raises(ParamError, match="no GMM"):
        SIFT.create(root_sift=True, encode="fisher", codebook=str(nogmm))
    with pytest.raises(UsageError, match="does not exist"):
        SIFT.create(encode="bovw", codebook=str(tmp_path / "nope.npz"))


@pytest.mark.parametrize("values,match", [
    ({"encode": "bovw"}, "needs --codebook"),
    ({"codebook": "x.npz"}, "without --encode"),
    ({"encode": "vlad", "codebook": "x.npz", "pyramid": 2}, "--pyramid applies to --encode bovw"),
    ({"encode": "fisher", "codebook": "x.npz", "soft": 3}, "--soft applies to --encode bovw"),
    ({"encode": "tfidf"}, "valid: none, bovw, vlad, fisher"),
    ({"norm": "l3"}, "valid: l2, l1, none"),
])
def test_encoding_param_errors(values, match):
    from featx.extractors.sift import SIFT

    with pytest.raises(ParamError) as e:
        SIFT.create(**values)
    assert match in str(e.value)


def test_local_descriptors_and_extra_metadata(sample):
    from featx.extractors.sift import SIFT

    ext = SIFT.create(max_keypoints=50)
    d = local_descriptors(ext, sample("chelsea.png"))
    assert d.shape == (50, 128) and d.dtype == np.float32
    assert supports_codebook(SIFT) and not supports_codebook(object())
    with pytest.raises(UsageError, match="no local descriptors"):
        local_descriptors(object(), sample("chelsea.png"))
    cb = learn_codebook([d], 4, extractor=ext, metadata={"resize": [256, 256], "k": 999})
    assert cb.metadata["resize"] == [256, 256] and cb.metadata["k"] == 4
    assert cb.metadata["params"]["max_keypoints"] == 50 and cb.metadata["extractor"] == "sift"
