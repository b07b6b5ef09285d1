"""``featx report``: the page of every kind of output, its data, its escaping, where it may
be written, and the page itself loaded in a real browser (headless Chromium over the
DevTools protocol; those tests skip, saying why, where no Chromium is installed)."""
from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, copy_samples, featx, ok

from featx import shots
from featx.report import build_report, gather as ga, timeline as tl
from featx.report.page import MARK, csp, json_block
from featx.report.project import pca2, unit_square

try:
    import pyarrow  # noqa: F401
    HAVE_PARQUET = True
except ImportError:  # pragma: no cover
    HAVE_PARQUET = False

PHOTOS = {"astronaut.png": "astronaut.png", "chelsea.png": "chelsea.png", "coffee.jpg": "coffee.jpg",
          "rocket.jpg": "rocket.jpg", "camera.png": "camera.png"}


def page_data(path: Path) -> dict:
    """The JSON the page's script reads."""
    text = path.read_text(encoding="utf-8")
    m = re.search(r'<script type="application/json" id="featx-data">(.*?)</script>', text, re.S)
    assert m, "no data block"
    return json.loads(m.group(1))


def thumb_shape(uri: str) -> tuple[int, int]:
    import cv2

    assert uri.startswith("data:image/jpeg;base64,")
    img = cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    return img.shape[:2]


@pytest.fixture(scope="module")
def photos_out(tmp_path_factory):
    """Five sample photos, their gradients as .npy, and that output converted to every format."""
    root = tmp_path_factory.mktemp("rep")
    photos = copy_samples(root / "photos", PHOTOS)
    ok(featx("extract", "gradients", str(photos), "-o", str(root / "g.npy"), "-q"))
    outs = {"npy": root / "g.npy"}
    for fmt, name in (("csv", "g.csv"), ("npy-dir", "gdir/")) + ((("parquet", "g.parquet"),) if HAVE_PARQUET else ()):
        ok(featx("convert", str(root / "g.npy"), str(root) + "/" + name))
        outs[fmt] = root / name
    return root, outs


@pytest.mark.parametrize("fmt", ["npy", "csv", "npy-dir", "parquet"])
def test_every_format(photos_out, fmt):
    if fmt == "parquet" and not HAVE_PARQUET:
        pytest.skip("pyarrow is not installed (pip install 'featx[parquet]')")
    root, outs = photos_out
    out = outs[fmt]
    page = root / f"{fmt}.html"
    r = ok(featx("report", str(out), "-o", str(page)))
    assert b"wrote" in r.stderr and b"5 rows, 5 thumbnails" in r.stderr
    d = page_data(page)
    assert len(d["points"]) == 5 and len(d["thumbs"]) == 5
    assert d["metric"] == "hellinger"          # gradients' own metric
    assert sorted(os.path.basename(v["l"]) for v in d["labels"].values()) == sorted(PHOTOS)
    # neighbours: the k = 4 others, nearest first, never the row itself
    for p, nn in zip(d["points"], d["nn"]):
        assert len(nn) == 4 and p[2] not in [n[0] for n in nn]
        assert [n[1] for n in nn] == sorted(n[1] for n in nn)
    text = page.read_text()
    assert text.startswith(MARK) and "gradients" in text and "sobel" in text
    assert "versions" in text and "complete" in text


def test_neighbours_are_exact_across_batches(tmp_path, monkeypatch):
    """The neighbour search runs one batch of the output at a time: the same lists as one
    search over the whole matrix, for drawn rows that are a sample."""
    from featx.neighbors import nearest

    rng = np.random.default_rng(3)
    X = rng.normal(size=(700, 16)).astype(np.float32)
    X[5] = X[400]                                   # an exact duplicate in another batch
    np.save(tmp_path / "m.npy", X)
    (tmp_path / "m.index.csv").write_text("row,path\n" + "".join(f"{i},/nowhere/{i}.png\n" for i in range(700)))
    monkeypatch.setattr(ga, "BATCH_ROWS", 128)
    monkeypatch.setattr(ga, "QUERY_ROWS", 16)
    g = ga.gather(str(tmp_path / "m.npy"), max_points=50, k=5, metric="l2")
    assert len(g.drawn) == 50 and list(g.drawn) == sorted(set(g.drawn.tolist()))
    idx, dist = nearest(X, 5, "l2")
    assert np.array_equal(g.neighbors, idx[g.drawn])
    np.testing.assert_allclose(g.distances, dist[g.drawn], rtol=1e-5, atol=1e-6)
    assert np.allclose(g.outlier, dist[g.drawn][:, -1], rtol=1e-5)
    # the same sample every time
    assert np.array_equal(ga.choose_rows(700, 50), g.drawn)


def test_pca_both_ways_agree():
    """PCA through the covariance (D <= N) and through the Gram matrix (D > N) give the same
    map, and the same axes as numpy's SVD."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8)) @ rng.normal(size=(8, 8)) + 3
    Y1, share = pca2(X)
    Xw = np.hstack([X, np.zeros((40, 60))])        # wider than tall: the Gram path
    Y2, share2 = pca2(Xw)
    U, S, Vt = np.linalg.svd(X - X.mean(0), full_matrices=False)
    ref = U[:, :2] * S[:2]
    for j in range(2):
        assert np.allclose(np.abs(Y1[:, j]), np.abs(ref[:, j]), atol=1e-8)
        assert np.allclose(Y1[:, j], Y2[:, j], atol=1e-6)
    assert np.allclose(share, S[:2] ** 2 / (S ** 2).sum()) and np.allclose(share, share2)
    u = unit_square(Y1)
    assert u.min() >= 0 and u.max() <= 1 and np.isclose(max(np.ptp(u, 0)), 1)


def test_boundaries_robust_z():
    rng = np.random.default_rng(1)
    d = np.abs(rng.normal(0.05, 0.005, 300))
    d[0] = np.nan                          # the first frame has no previous one
    d[100] = 0.4                           # a cut
    d[200:203] = [0.2, 0.3, 0.25]          # a change over three frames: marked once
    assert shots.boundaries(d).tolist() == [100, 201]
    assert shots.boundaries(np.full(10, 0.1)).tolist() == []        # nothing changes
    assert shots.boundaries(np.array([np.nan])).tolist() == []
    svg = tl.svg(d, np.arange(300), shots.boundaries(d))
    assert svg.count('class="cut"') == 2 and "frame 299" in svg


def _cut_video(path: Path, n: int = 12) -> Path:
    """A video that shows one photo (panning slowly), then cuts to another at frame n."""
    import cv2

    a = cv2.resize(cv2.imread(str(SAMPLES / "astronaut.png")), (200, 200))
    b = cv2.resize(cv2.imread(str(SAMPLES / "chelsea.png")), (200, 200))
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    for i in range(2 * n):
        src = a if i < n else b
        vw.write(np.ascontiguousarray(src[10 + i:130 + i, 10 + i:170 + i]))
    vw.release()
    return path


def test_video_timeline_marks_the_cut(tmp_path):
    video = _cut_video(tmp_path / "cut.avi")
    ok(featx("extract", "gradients", str(video), "-o", str(tmp_path / "v.csv"), "-q"))
    page = tmp_path / "v.html"
    ok(featx("report", str(tmp_path / "v.csv"), "-o", str(page)))
    text = page.read_text()
    assert "Video timelines" in text
    assert "shot boundaries at frames: 12<" in text       # the cut, and nothing else
    d = page_data(page)
    assert len(d["points"]) == 24 and all(p[3] >= 0 for p in d["points"])   # every frame has a thumbnail
    h, w = thumb_shape(d["thumbs"][0])
    assert (w, h) == (96, 72)                              # a 160x120 frame, scaled
    # the thumbnails are the frames: before the cut the astronaut (orange suit), after it the cat
    import cv2

    def thumb(row):
        uri = d["thumbs"][d["labels"][str(row)]["t"]]
        return cv2.imdecode(np.frombuffer(base64.b64decode(uri.split(",", 1)[1]), np.uint8), cv2.IMREAD_COLOR)

    cap = cv2.VideoCapture(str(video))
    frames = [cap.read()[1] for _ in range(24)]
    for row in (3, 20):
        ref = cv2.resize(frames[row], (96, 72), interpolation=cv2.INTER_AREA).astype(float)
        other = cv2.resize(frames[23 - row], (96, 72), interpolation=cv2.INTER_AREA).astype(float)
        got = thumb(row).astype(float)
        assert np.abs(got - ref).mean() < 6 < np.abs(got - other).mean()


def test_regions_thumbnails_are_the_boxes(tmp_path):
    photos = copy_samples(tmp_path / "p", {"astronaut.png": "astronaut.png"})
    regions = tmp_path / "r.csv"
    regions.write_text(f"path,x,y,w,h\n{photos / 'astronaut.png'},10,20,200,100\n"
                       f"{photos / 'astronaut.png'},300,100,50,150\n")
    ok(featx("extract", "gradients", "--regions", str(regions), "-o", str(tmp_path / "f.npy"), "-q"))
    page = tmp_path / "f.html"
    ok(featx("report", str(tmp_path / "f.npy"), "-o", str(page)))
    d = page_data(page)
    assert len(d["points"]) == 2
    shapes = sorted(thumb_shape(u) for u in d["thumbs"])
    assert shapes == sorted([(48, 96), (96, 32)])         # 200x100 and 50x150 boxes, longest side 96
    assert any("region 10,20 200x100" in v["l"] for v in d["labels"].values())


def test_inputs_gone_no_thumbnails(tmp_path):
    photos = copy_samples(tmp_path / "p", {"a.png": "astronaut.png", "c.jpg": "coffee.jpg"})
    ok(featx("extract", "gradients", str(photos), "-o", str(tmp_path / "g.npy"), "-q"))
    shutil.rmtree(photos)
    page = tmp_path / "g.html"
    r = ok(featx("report", str(tmp_path / "g.npy"), "-o", str(page)))
    assert b"0 thumbnails" in r.stderr
    d = page_data(page)
    assert d["thumbs"] == [] and len(d["points"]) == 2 and all(p[3] == -1 for p in d["points"])
    assert "2 without a thumbnail: the input is gone" in page.read_text()


def test_failures_listed_and_empty_output(tmp_path):
    photos = tmp_path / "p"
    photos.mkdir()
    (photos / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    r = featx("extract", "gradients", str(photos), "-o", str(tmp_path / "g.npy"), "-q")
    assert r.returncode == 1
    page = tmp_path / "g.html"
    ok(featx("report", str(tmp_path / "g.npy"), "-o", str(page)))
    text = page.read_text()
    assert "Failures (1)" in text and "broken.jpg" in text and "the output has no rows" in text
    reason = json.loads((tmp_path / "g.npy.featx.json").read_text())["failures"][0]["reason"]
    assert html.escape(reason) in text
    assert page_data(page)["points"] == []


def test_one_row(tmp_path):
    photos = copy_samples(tmp_path / "p", {"a.png": "astronaut.png"})
    ok(featx("extract", "gradients", str(photos), "-o", str(tmp_path / "g.csv"), "-q"))
    ok(featx("report", str(tmp_path / "g.csv")))          # default name beside the output
    d = page_data(tmp_path / "g.csv.report.html")
    assert len(d["points"]) == 1 and d["nn"] == [[]] and d["k"] == 0


ODD = ["new\nline.png", "carriage\rreturn.png", "<script>alert(1)</script>.png",
       "<img src=x onerror=alert(2)>.png", "quote\"amp&apos'.png"]


@pytest.fixture(scope="module")
def odd_page(tmp_path_factory):
    """A report of photos with names that try to break out of the page."""
    root = tmp_path_factory.mktemp("odd")
    photos = root / "p"
    (photos / "<script>alert(1)<").mkdir(parents=True)   # a folder: the path then holds "</script>"
    for name, src in zip(ODD, ["astronaut.png", "chelsea.png", "coffee.jpg", "rocket.jpg", "camera.png"]):
        shutil.copyfile(SAMPLES / src, photos / name)
    raw = os.fsencode(str(photos)) + b"/caf\xe9.png"       # not UTF-8
    shutil.copyfile(SAMPLES / "astronaut.png", raw)
    ok(featx("extract", "gradients", str(photos), "-o", str(root / "g.npy"), "-q"))
    page = root / "odd.html"
    ok(featx("report", str(root / "g.npy"), "-o", str(page)))
    return page


def test_odd_names_escaped(odd_page):
    raw = odd_page.read_bytes()
    text = raw.decode("utf-8")                              # valid UTF-8 throughout
    assert "<script>alert" not in text and "<img src=x" not in text
    assert text.count("<script") == 2                      # the data block and the page's script
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.png" in text
    labels = [v["l"] for v in page_data(odd_page)["labels"].values()]
    assert len(labels) == 6
    assert any(lab.startswith("$'") and lab.endswith("/new\\nline.png'") for lab in labels)
    assert any("carriage\\rreturn.png" in lab for lab in labels)
    assert any("caf\\xe9.png" in lab for lab in labels)
    assert any(lab.endswith("<script>alert(1)</script>.png") for lab in labels)   # as text, for textContent


def test_json_block_and_csp():
    s = json_block({"a": "</script><!-- & \u2028"})
    assert "<" not in s and ">" not in s and "&" not in s and "\u2028" not in s
    assert json.loads(s) == {"a": "</script><!-- & \u2028"}
    policy = csp("x()", "b{}")
    assert "default-src 'none'" in policy and "img-src data:" in policy
    assert "'sha256-" + base64.b64encode(hashlib.sha256(b"x()").digest()).decode() + "'" in policy


def test_where_the_page_may_go(photos_out, tmp_path):
    root, outs = photos_out
    npy = str(outs["npy"])
    for own in (npy, str(root / "g.index.csv"), str(root / "g.npy.featx.json")):
        before = Path(own).read_bytes()
        r = featx("report", npy, "-o", own, "--overwrite")
        assert r.returncode == 2 and b"file of the output" in r.stderr, r.stderr
        assert Path(own).read_bytes() == before
    photo = str(root / "photos" / "coffee.jpg")
    r = featx("report", npy, "-o", photo, "--overwrite")
    assert r.returncode == 2 and b"is an input of the output" in r.stderr
    other = tmp_path / "notes.html"
    other.write_text("mine")
    r = featx("report", npy, "-o", str(other))
    assert r.returncode == 2 and b"featx did not write it" in r.stderr and other.read_text() == "mine"
    ok(featx("report", npy, "-o", str(tmp_path / "r.html")))
    ok(featx("report", npy, "-o", str(tmp_path / "r.html")))     # its own page is replaced
    r = featx("report", str(tmp_path / "missing.npy"))
    assert r.returncode == 2 and b"does not exist" in r.stderr


def test_sampled_map_says_so(tmp_path):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "m.npy", rng.random((300, 8), dtype=np.float32))
    (tmp_path / "m.index.csv").write_text("row,path\n" + "".join(f"{i},/gone/{i}.png\n" for i in range(300)))
    done = build_report(str(tmp_path / "m.npy"), str(tmp_path / "m.html"), max_points=40, k=3)
    assert done["drawn"] == 40 and done["rows"] == 300
    text = (tmp_path / "m.html").read_text()
    assert "40 of 300 rows are drawn" in text and "among the 40 drawn rows" in text
    assert "no featx record" in text                    # a bare matrix: the page says what is unknown


# ---------------------------------------------------------------------------
# in a real browser

def _browser():
    from chromium import Browser, find_chromium

    exe = find_chromium()
    if exe is None:
        pytest.skip("no Chromium found (apt-get install chromium, or set FEATX_CHROMIUM): the page is "
                    "not tested in a browser here")
    return Browser(exe, width=1280, height=1000)


def _foreign(requests: list[str], page: Path) -> list[str]:
    own = page.resolve().as_uri()
    return [u for u in requests if not u.startswith("data:") and u.split("#")[0] != own]


def test_page_in_chromium(photos_out, tmp_path):
    """The map draws, hovering shows a name, clicking shows the neighbour list; no script
    error, no CSP violation, no request but the page itself and its data: images."""
    root, outs = photos_out
    page = tmp_path / "p.html"
    ok(featx("report", str(outs["npy"]), "-o", str(page)))
    with _browser() as b:
        b.open(page.resolve().as_uri())
        assert b.js("document.documentElement.dataset.map") == "drawn 5"
        assert b.js("document.documentElement.dataset.status") == "ok"
        assert b.js("[...document.images].filter(i => i.getAttribute('data-t') && !i.naturalWidth).length") == 0
        b.js("document.getElementById('map').scrollIntoView()")
        x, y = b.js("featxReport.screen(2)")
        row = b.js("featxReport.row(2)")
        b.mouse("mouseMoved", x, y)
        assert b.js("getComputedStyle(document.getElementById('tip')).display") == "block"
        assert os.path.basename(b.js("document.getElementById('tip').textContent").split("  ")[0]) in PHOTOS
        b.mouse("mousePressed", x, y)
        b.mouse("mouseReleased", x, y)
        assert b.js("document.documentElement.dataset.panel") == f"row {row}: 4 neighbours"
        assert b.js("document.querySelectorAll('#neighbours li').length") == 4
        assert b.js("document.querySelectorAll('#neighbours li img').length") == 4
        # a neighbour's entry selects it
        b.js("document.querySelector('#neighbours li').click()")
        assert b.js("document.documentElement.dataset.panel") != f"row {row}: 4 neighbours"
        assert b.errors() == []
        assert _foreign(b.requests(), page) == []
        assert b.js("document.documentElement.dataset.errors") is None


def test_chromium_checks_can_fail(photos_out, tmp_path):
    """The network and error checks above see a request and an error when a page makes one."""
    root, outs = photos_out
    page = tmp_path / "p.html"
    ok(featx("report", str(outs["npy"]), "-o", str(page)))
    text = page.read_text()
    open_page = tmp_path / "open.html"        # no policy: the request goes out (and fails: nothing listens)
    open_page.write_text(re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
                         .replace("<main>", '<main><img src="http://127.0.0.1:9/x.png">'))
    strict_page = tmp_path / "strict.html"    # the policy: the request is blocked, and that is an error
    strict_page.write_text(text.replace("<main>", '<main><img src="http://127.0.0.1:9/x.png">'))
    with _browser() as b:
        b.open(open_page.resolve().as_uri())
        assert "http://127.0.0.1:9/x.png" in _foreign(b.requests(), open_page)
        b.open(strict_page.resolve().as_uri())
        assert b.errors() != [] or b.js("document.documentElement.dataset.errors") is not None


def test_odd_names_in_chromium(odd_page):
    """Names that look like markup stay text: no element made from them, no script run."""
    with _browser() as b:
        b.open(odd_page.resolve().as_uri() + "#row=2")
        assert b.js("document.documentElement.dataset.status") == "ok"
        assert b.js("document.scripts.length") == 2
        assert b.js("document.querySelectorAll('img:not([data-t]):not(.big)').length") == \
            b.js("document.querySelectorAll('#neighbours img').length")
        shown = b.js("document.body.innerText")
        assert "<script>alert(1)</script>.png" in shown and "/new\\nline.png'" in shown
        assert b.errors() == [] and _foreign(b.requests(), odd_page) == []


def test_frame_folder_timeline(tmp_path):
    """A frame sequence (a folder of frames, --frames) gets a timeline named after its folder."""
    import cv2

    seq = tmp_path / "shots"
    seq.mkdir()
    video = _cut_video(tmp_path / "cut.avi", n=8)
    cap = cv2.VideoCapture(str(video))
    for i in range(16):
        okay, frame = cap.read()
        assert okay
        cv2.imwrite(str(seq / f"f{i:02d}.png"), frame)
    ok(featx("extract", "gradients", str(seq), "--frames", "-o", str(tmp_path / "s.npy"), "-q"))
    page = tmp_path / "s.html"
    ok(featx("report", str(tmp_path / "s.npy"), "-o", str(page)))
    text = page.read_text()
    assert f'<div class="path">{seq}</div>' in text and "shot boundaries at frames: 8<" in text


def test_no_map_for_keypoints_and_class_names(tmp_path):
    """Rows that are not one vector each (sift keypoints), or not numbers (cnn --top-k class
    names in CSV): the page says why there is no map, and still shows the run."""
    photos = copy_samples(tmp_path / "p", {"a.png": "astronaut.png"})
    ok(featx("extract", "sift", str(photos), "-o", str(tmp_path) + "/kp/", "-q"))
    r = ok(featx("report", str(tmp_path) + "/kp/", "-o", str(tmp_path / "kp.html")))
    assert b"1 rows, no map" in r.stderr
    text = (tmp_path / "kp.html").read_text()
    assert "No map: the rows of this output are keypoints" in text and "The run" in text
    csv = tmp_path / "top.csv"
    csv.write_text("path,top1_class,top1_prob\n/x/a.png,tabby cat,0.9\n")
    ok(featx("report", str(csv), "-o", str(tmp_path / "top.html")))
    assert "No map: the rows cannot be read as vectors" in (tmp_path / "top.html").read_text()


@pytest.mark.slow
def test_thousands_of_points_in_chromium(tmp_path):
    """2,000 points with 2,000 thumbnails (regions of one photo: decoded once) open at once:
    the map is redrawn once per frame while the thumbnails decode, not once per thumbnail
    (which took over 30 s, the browser's timeout here)."""
    shutil.copyfile(SAMPLES / "astronaut.png", tmp_path / "a.png")
    n = 2000
    rng = np.random.default_rng(0)
    np.save(tmp_path / "m.npy", rng.random((n, 8), dtype=np.float32))
    boxes = "".join(f"{i},{tmp_path / 'a.png'},{i % 400},{(i // 400) * 50},{20 + i % 90},{30 + i % 70}\n"
                    for i in range(n))
    (tmp_path / "m.index.csv").write_text("row,path,x,y,w,h\n" + boxes)
    page = tmp_path / "m.html"
    done = build_report(str(tmp_path / "m.npy"), str(page), k=3)
    assert done["drawn"] == n and done["thumbnails"] == n
    with _browser() as b:
        b.open(page.resolve().as_uri() + "#row=1500")
        assert b.js("document.documentElement.dataset.map") == f"drawn {n}"
        assert b.js("document.documentElement.dataset.panel") == "row 1500: 3 neighbours"
        assert b.errors() == [] and _foreign(b.requests(), page) == []


def test_metric_and_threshold_defaults(tmp_path):
    """hellinger (the histograms' metric) falls back to l2, saying so, on negative values; l2
    has no default threshold: only identical vectors are grouped."""
    X = np.array([[1, 0, 2], [0, 1, 1], [3, 3, 0], [0, 1, 1], [-1, 2, 0]], np.float32)
    np.save(tmp_path / "m.npy", X)
    (tmp_path / "m.index.csv").write_text("row,path\n" + "".join(f"{i},/x/{i}.png\n" for i in range(5)))
    g = ga.gather(str(tmp_path / "m.npy"), k=2, extractor="gradients")
    assert g.metric == "l2" and "negative values" in g.metric_note
    assert g.threshold == 0.0 and "no measured threshold" in g.threshold_note
    assert g.groups == [[1, 3]]
    g = ga.gather(str(tmp_path / "m.npy"), k=2, metric="l2", threshold=2.5)
    assert g.threshold_note == "given with --threshold" and g.groups == [[0, 1, 3, 4]]   # row 2 is 3.7 away


def test_page_on_stdout(photos_out):
    root, outs = photos_out
    r = ok(featx("report", str(outs["csv"]), "-o", "-"))
    assert r.stdout.startswith(MARK.encode()) and b"wrote the page to stdout" in r.stderr
    assert not (root / "-").exists()


def test_umap_asked_for_without_umap_learn(photos_out, tmp_path):
    try:
        import umap  # noqa: F401
        pytest.skip("umap-learn is installed here")
    except ImportError:
        pass
    root, outs = photos_out
    ok(featx("report", str(outs["npy"]), "-o", str(tmp_path / "u.html"), "--map", "umap"))
    text = (tmp_path / "u.html").read_text()
    assert "PCA of the drawn rows" in text and "UMAP was asked for, but umap-learn is not installed" in text


def test_video_and_empty_pages_in_chromium(tmp_path):
    """The script runs without error on a page with timelines and on a page with no map (0
    rows, a failure listed): status ok, nothing asked of the network."""
    video = _cut_video(tmp_path / "cut.avi", n=6)
    ok(featx("extract", "gradients", str(video), "-o", str(tmp_path / "v.npy"), "-q"))
    ok(featx("report", str(tmp_path / "v.npy"), "-o", str(tmp_path / "v.html")))
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    featx("extract", "gradients", str(tmp_path / "p"), "-o", str(tmp_path / "e.npy"), "-q")
    ok(featx("report", str(tmp_path / "e.npy"), "-o", str(tmp_path / "e.html")))
    with _browser() as b:
        page = tmp_path / "v.html"
        b.open(page.resolve().as_uri())
        assert b.js("document.documentElement.dataset.map") == "drawn 12"
        assert b.js("document.querySelectorAll('svg.timeline rect.cut').length") == 1
        assert b.js("[...document.querySelectorAll('.strip img')].every(i => i.naturalWidth > 0)")
        b.js("document.querySelector('figure.cutf').click()")       # a timeline frame selects its row
        assert b.js("document.documentElement.dataset.panel").startswith("row 6")
        assert b.errors() == [] and _foreign(b.requests(), page) == []
        page = tmp_path / "e.html"
        b.open(page.resolve().as_uri())
        assert b.js("document.documentElement.dataset.map") == "none"
        assert b.js("document.documentElement.dataset.status") == "ok"
        assert "broken.png" in b.js("document.getElementById('failures').innerText")
        assert b.errors() == [] and _foreign(b.requests(), page) == []
