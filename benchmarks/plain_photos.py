#!/usr/bin/env python
"""The reference loop of bench_photos: what ``featx extract hog+cnn FOLDER -o OUT/ --resize
256x256`` computes, by hand, with no featx run machinery (no plan, engine, sinks, state).

Each JPEG is decoded once at the largest DCT reduction (1/8, 1/4, 1/2) that leaves at least
256x256 pixels (hog's --resize and cnn's 224/0.875), by simplejpeg when it is installed (as
featx does for sequential colour JPEGs; FEATX_FAST_JPEG=0: cv2.imread reduced, as featx then).
hog: that image resized to 256x256 (area), then featx's HOG computation (the numbers of
skimage.feature.hog, vectorised; skimage's own is 15x slower).  cnn: the central square of
0.875 of the shorter side, float32, bicubic to 224x224, (x - 127) / 128, NCHW, in batches of
8 (featx's default) through ONNX Runtime on featx's model cut to its embedding (--model; default: built from
featx's cache as featx runs it).  Writes OUT/hog.npy and OUT/cnn.npy, rows in sorted order,
each row as it is computed.  ``-j 2``: two processes on the two halves of the list (one
inference thread each), each writing its rows in place.

    python benchmarks/plain_photos.py FOLDER OUT/ [--model embedding.onnx] [-j 2]
"""
import argparse, os, subprocess, sys
from pathlib import Path

import numpy as np

SIDE, NET, CROP, BATCH = 256, 224, 0.875, 8   # featx's --batch-size default
#: the lengths of a row: featx's hog defaults (8-pixel cells, blocks of 3x3 cells, 9 bins) at
#: 256x256, and the network's embedding
COLS = {"hog": (SIDE // 8 - 3 + 1) ** 2 * 3 * 3 * 9, "cnn": 1280}


def decode(path):
    import cv2
    data = np.fromfile(path, np.uint8)
    try:
        import simplejpeg as sj
    except ImportError:
        sj = None
    if os.environ.get("FEATX_FAST_JPEG", "1").strip().lower() in ("0", "false", "no", "off"):
        sj = None
    if sj is not None:
        h, w = sj.decode_jpeg_header(data)[:2]
    else:
        from PIL import Image
        with Image.open(path) as im:
            w, h = im.size
    k = next((k for k in (8, 4, 2) if -(-w // k) >= SIDE and -(-h // k) >= SIDE), 1)
    if sj is not None:
        return sj.decode_jpeg(data, colorspace="RGB", min_factor=k, min_width=-(-w // k), min_height=-(-h // k))
    flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}[k]
    return cv2.cvtColor(cv2.imread(str(path), flag), cv2.COLOR_BGR2RGB)


def hog_input(img):
    import cv2
    h, w = img.shape[:2]
    return cv2.resize(img, (SIDE, SIDE), interpolation=cv2.INTER_AREA if w >= SIDE and h >= SIDE else cv2.INTER_LINEAR)


def cnn_input(img):
    import cv2
    h, w = img.shape[:2]
    c = max(1, int(round(NET * min(h / NET, w / NET) * CROP)))
    y, x = (h - c + 1) // 2, (w - c + 1) // 2
    f = img[y:y + c, x:x + c].astype(np.float32)
    if c != NET:
        f = cv2.resize(f, (NET, NET), interpolation=cv2.INTER_AREA if c / NET > 2 else cv2.INTER_CUBIC)
    chw = np.ascontiguousarray(f.transpose(2, 0, 1))
    chw -= np.float32(127.0)
    chw /= np.float32(128.0)
    return chw


def session(model, threads):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.log_severity_level, so.execution_mode = 3, ort.ExecutionMode.ORT_SEQUENTIAL
    if threads:  # several processes share the cores: one thread each, sleeping when idle
        so.intra_op_num_threads, so.inter_op_num_threads = threads, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=so, providers=["CPUExecutionProvider"])


def featx_model():
    """The bytes featx's cnn runs by default: its built model, cut to the embedding."""
    from featx.extractors.cnn import models, onnxproto
    return onnxproto.prune(models.default_model_bytes()[0], ["embedding"])


def blank(out, rows):
    """OUT/hog.npy and OUT/cnn.npy of ``rows`` float32 rows each, written later in place: the
    processes write their rows as they go, nothing is held or concatenated."""
    for name, cols in COLS.items():
        with open(out / f"{name}.npy", "wb") as f:
            np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (rows, cols)})
            f.truncate(f.tell() + rows * cols * 4)


def rows_from(out, name, first):
    """OUT/NAME.npy open for writing from row ``first`` on."""
    f = open(out / f"{name}.npy", "r+b")
    np.lib.format.read_magic(f)
    np.lib.format.read_array_header_1_0(f)
    f.seek(f.tell() + first * COLS[name] * 4)
    return f


def run(paths, out, first, model, threads):
    import cv2
    from featx.extractors.hog import HOG
    cv2.setNumThreads(1)
    hog, sess = HOG().extract, session(model, threads)
    hogs, embs, batch = rows_from(out, "hog", first), rows_from(out, "cnn", first), []
    for i, p in enumerate(paths):
        img = decode(p)
        hogs.write(hog(hog_input(img)).astype("<f4").tobytes())
        batch.append(cnn_input(img))
        if len(batch) == BATCH or i == len(paths) - 1:
            embs.write(sess.run(["embedding"], {sess.get_inputs()[0].name: np.stack(batch)})[0].astype("<f4").tobytes())
            batch = []
    hogs.close()
    embs.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--model", help="ONNX file of featx's model cut to its embedding")
    ap.add_argument("-j", "--jobs", type=int, default=1)
    ap.add_argument("--part", type=int, help=argparse.SUPPRESS)  # a child process: its share
    a = ap.parse_args()
    paths = sorted(p for p in a.folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    share = -(-len(paths) // a.jobs)
    if a.part is not None:  # photos part*share.. of the list, into the files the parent made
        mine = paths[a.part * share:(a.part + 1) * share]
        return mine and run(mine, a.out, a.part * share, a.model, max(1, len(os.sched_getaffinity(0)) // a.jobs))
    a.out.mkdir(parents=True, exist_ok=True)
    blank(a.out, len(paths))
    if a.jobs == 1:
        return run(paths, a.out, 0, a.model or featx_model(), 0)   # 0 threads: ONNX Runtime's default
    model = Path(a.model) if a.model else a.out / "embedding.onnx"
    if not a.model:  # written once for the children
        model.write_bytes(featx_model())
    kids = [subprocess.Popen([sys.executable, __file__, str(a.folder), str(a.out), "--model", str(model),
                              "-j", str(a.jobs), "--part", str(i)]) for i in range(a.jobs)]
    if any(k.wait() for k in kids):
        sys.exit(1)
    if not a.model:
        model.unlink()

if __name__ == "__main__":
    main()
