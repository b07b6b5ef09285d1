#!/usr/bin/env python
"""JPEG decoders side by side: OpenCV (what featx uses), simplejpeg and PyTurboJPEG.

Makes camera-like JPEGs of 2-5 MB as ``bench_photos.py`` does (the samples upscaled
with ``cv2.INTER_CUBIC`` to 12 MP, Gaussian sensor-like noise, quality 90).  They are
NOT files from a camera (none is available here): no maker notes, no embedded
thumbnail, 4:2:0 chroma as OpenCV's encoder writes it.  Variants made from them:
progressive (Pillow, ``progressive=True``), CMYK (Pillow, Adobe-inverted as Photoshop
writes it), grayscale (OpenCV) and baseline with an EXIF orientation 6 tag.

For every file and scale (1, 1/2, 1/4, 1/8) it times, in one process, interleaved
(each round runs every decoder once on every file, the order of the decoders
alternating between rounds), medians of ``--repeats``:

* ``cv2``: ``cv2.imread(path, IMREAD_REDUCED_COLOR_k)`` (IMREAD_COLOR at 1) and the
  BGR-to-RGB conversion featx applies: featx's decode of an 8-bit JPEG;
* ``simplejpeg``: the file mapped (``mmap``), ``simplejpeg.decode_jpeg(..., colorspace="RGB",
  min_factor=k, min_width=ceil(w / k), min_height=ceil(h / k))`` (exactly the 1/k scale;
  strict: libjpeg's warnings raise);
* ``turbojpeg``: the file's bytes read, ``TurboJPEG().decode(..., pixel_format=TJPF_RGB,
  scaling_factor=(1, k))`` (needs the libturbojpeg shared library; skipped without it).

and prints the ratio cv2 / decoder (> 1: the other decoder is faster) and the
largest absolute difference of their pixels from cv2's.  Then what each decoder does
with what featx must get right: the EXIF orientation, CMYK, grayscale, progressive,
and damaged data (bytes zeroed mid-stream: libjpeg warns "Corrupt JPEG data" and
fills the rest; featx refuses it).  Last, featx's own ``decode_image`` with simplejpeg
(``featx[fast-jpeg]``) against its OpenCV path, each photo decoded both ways back to
back (``--featx-only``: this table alone): the figure that decided which files go to
simplejpeg (sequential colour JPEGs; see ``featx.decode.FAST_JPEG``).

PyTurboJPEG 2.x needs libjpeg-turbo >= 3.0 as a system library; where the system has
2.x (Debian 12: ``apt-get install libturbojpeg0`` gives 2.1.5) use ``PyTurboJPEG<2``.

Usage::

    python benchmarks/bench_decode.py [--n 4] [--repeats 5] [--noise 6] [--featx-only]
"""
from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from bench_photos import make_photos  # noqa: E402

from featx.decode import _bgr_to_rgb_in_place  # noqa: E402

SCALES = (1, 2, 4, 8)


def exif_orientation(value: int) -> bytes:
    """An APP1 EXIF segment holding just an orientation tag."""
    import struct

    ifd = struct.pack("<H", 1) + struct.pack("<HHI", 0x0112, 3, 1) + struct.pack("<HH", value, 0) + b"\0\0\0\0"
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    body = b"Exif\0\0" + tiff
    return b"\xff\xe1" + (len(body) + 2).to_bytes(2, "big") + body


def make_variants(base: Path, folder: Path) -> dict[str, Path]:
    import cv2
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    out = {"baseline": base}
    rgb = Image.open(base).convert("RGB")
    p = folder / "progressive.jpg"
    rgb.save(p, quality=90, progressive=True)
    out["progressive"] = p
    p = folder / "cmyk.jpg"
    rgb.convert("CMYK").save(p, quality=90)
    out["cmyk"] = p
    p = folder / "gray.jpg"
    cv2.imwrite(str(p), cv2.imread(str(base), cv2.IMREAD_GRAYSCALE), [cv2.IMWRITE_JPEG_QUALITY, 90])
    out["gray"] = p
    data = base.read_bytes()
    p = folder / "exif6.jpg"
    p.write_bytes(data[:2] + exif_orientation(6) + data[2:])
    out["exif6"] = p
    return out


def cv2_decode(path: str, k: int, gray: bool = False) -> np.ndarray:
    import cv2

    flags = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR | {1: 0, 2: 16, 4: 32, 8: 64}[k]
    img = cv2.imread(path, flags)
    if img.ndim == 3:
        img = _bgr_to_rgb_in_place(img)  # as featx converts: in place, a band at a time
    return img


def decoders(gray: bool):
    out = {"cv2": lambda p, k: cv2_decode(p, k)}
    try:
        import simplejpeg

        cs = "GRAY" if gray else "RGB"

        def sj(p: str, k: int) -> np.ndarray:
            import mmap

            with open(p, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
                h, w, _, _ = simplejpeg.decode_jpeg_header(m)
                # min_factor k and at least ceil(size / k) pixels: exactly the 1/k scale
                return simplejpeg.decode_jpeg(m, colorspace=cs, min_factor=k, min_width=-(-w // k),
                                              min_height=-(-h // k))

        out["simplejpeg"] = sj
    except ImportError:
        pass
    try:
        from turbojpeg import TJPF_GRAY, TJPF_RGB, TurboJPEG

        tj = TurboJPEG()
        fmt = TJPF_GRAY if gray else TJPF_RGB
        out["turbojpeg"] = lambda p, k: tj.decode(Path(p).read_bytes(), pixel_format=fmt,
                                                  scaling_factor=(1, k))
    except (ImportError, RuntimeError, OSError) as exc:
        print(f"# turbojpeg: skipped ({type(exc).__name__}: {exc})")
    return out


def squeeze(img: np.ndarray) -> np.ndarray:
    return img[:, :, 0] if img.ndim == 3 and img.shape[2] == 1 else img


def timing(files: list[Path], repeats: int, gray: bool = False) -> None:
    import cv2

    cv2.setNumThreads(1)
    decs = decoders(gray)
    names = list(decs)
    for k in SCALES:
        times = {n: [] for n in names}
        diffs = {n: 0 for n in names}
        for r in range(repeats):
            order = names if r % 2 == 0 else names[::-1]
            for n in order:
                t = time.perf_counter()
                for f in files:
                    decs[n](str(f), k)
                times[n].append((time.perf_counter() - t) / len(files) * 1e3)
        for f in files:
            ref = cv2_decode(str(f), k)
            for n in names[1:]:
                got = squeeze(decs[n](str(f), k))
                if got.shape != ref.shape:
                    diffs[n] = f"shape {got.shape} vs {ref.shape}"
                elif not isinstance(diffs[n], str):
                    diffs[n] = max(diffs[n], int(np.abs(got.astype(np.int16) - ref).max()))
        med = {n: float(np.median(v)) for n, v in times.items()}
        cells = [f"{med['cv2']:.1f}"]
        for n in names[1:]:
            cells.append(f"{med[n]:.1f} (**{med['cv2'] / med[n]:.2f}×**, max |Δ| {diffs[n]})")
        print(f"| 1/{k} | " + " | ".join(cells) + " |", flush=True)


def behaviours(variants: dict[str, Path], tmp: Path) -> None:
    """What each decoder gives for the variants featx must get right, against featx's decode."""
    from featx.decode import decode_image
    from featx.errors import InputError

    data = variants["baseline"].read_bytes()
    sos = data.index(b"\xff\xda")
    bad = bytearray(data)
    mid = sos + (len(data) - sos) // 2
    bad[mid:mid + 2000] = bytes(2000)
    corrupt = tmp / "corrupt.jpg"
    corrupt.write_bytes(bytes(bad))
    files = dict(variants, corrupt=corrupt)
    print("\n| file | featx (cv2) 1/8 | simplejpeg 1/8 | turbojpeg 1/8 |")
    print("|---|---|---|---|")
    for name, path in files.items():
        try:
            ref = decode_image(str(path), min_size=(1, 1))
            cell0 = f"{ref.shape}"
        except InputError as exc:
            ref, cell0 = None, f"refused: {exc}"[:90]
        row = [cell0]
        for n, dec in decoders(name == "gray").items():
            if n == "cv2":
                continue
            try:
                got = squeeze(dec(str(path), 8))
                if ref is None:
                    row.append(f"decoded {got.shape} (no error)")
                elif got.shape != ref.shape:
                    row.append(f"{got.shape}: not featx's shape")
                else:
                    row.append(f"{got.shape}, max |Δ| {int(np.abs(got.astype(np.int16) - ref).max())}")
            except Exception as exc:  # noqa: BLE001
                row.append(f"raises {type(exc).__name__}: {exc}"[:90])
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


def featx_paths(sets: dict[str, list[Path]], repeats: int) -> None:
    """featx's own decode (``decode_image`` with the ``min_size`` that picks each scale),
    simplejpeg on against off (``decode.FAST_JPEG``): each photo decoded both ways back to
    back (the order alternating), so that both see the same load; medians of the times
    and of the per-pair ratios; outputs compared."""
    from featx import decode

    if decode.fast_jpeg_decoder() is None:
        print("\n# featx decode_image: simplejpeg not installed, nothing to compare")
        return
    print("\nfeatx `decode_image` (what a worker runs): ms per photo, OpenCV path / simplejpeg path "
          "(paired runs; ratio: median of the per-pair ratios)\n")
    print("| file | scale | OpenCV path | simplejpeg path | ratio (quartiles) | same pixels |")
    print("|---|---|---|---|---|---|")
    for name, files in sets.items():
        hdr = decode.read_header(np.fromfile(files[0], np.uint8, count=65536))
        for k in SCALES:
            need = None if k == 1 else (-(-hdr.width // k), -(-hdr.height // k))
            if name == "exif6" and need:
                need = need[::-1]
            times = {True: [], False: []}
            ratios = []
            for r in range(repeats):
                for i, f in enumerate(files):
                    pair = {}
                    for fast in ((True, False) if (r + i) % 2 == 0 else (False, True)):
                        decode.FAST_JPEG = fast
                        t = time.perf_counter()
                        decode.decode_image(str(f), min_size=need)
                        pair[fast] = (time.perf_counter() - t) * 1e3
                        times[fast].append(pair[fast])
                    ratios.append(pair[False] / pair[True])
            same = True
            for f in files:
                decode.FAST_JPEG = True
                a = decode.decode_image(str(f), min_size=need)
                decode.FAST_JPEG = False
                b = decode.decode_image(str(f), min_size=need)
                same = same and a.shape == b.shape and bool(np.array_equal(a, b))
            decode.FAST_JPEG = True
            on, off = float(np.median(times[True])), float(np.median(times[False]))
            q1, q3 = np.percentile(ratios, [25, 75])
            print(f"| {name} | 1/{k} | {off:.1f} | {on:.1f} | **{np.median(ratios):.2f}×** "
                  f"({q1:.2f}–{q3:.2f}) | {'yes' if same else 'NO'} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=4, help="12-MP photos to decode")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--noise", type=float, default=6.0)
    ap.add_argument("--featx-only", action="store_true", help="only featx's decode, simplejpeg on / off")
    args = ap.parse_args()
    import cv2

    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:  # featx's allocator setting, as bench_photos runs
        os.environ.update(MALLOC_MMAP_THRESHOLD_=str(32 << 20), MALLOC_TRIM_THRESHOLD_=str(256 << 20))
        os.execv(sys.executable, [sys.executable] + sys.argv)
    print(f"# {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; "
          f"OpenCV {cv2.__version__}; one process, one OpenCV thread, medians of {args.repeats}, "
          "interleaved")
    with tempfile.TemporaryDirectory(prefix="featx-bench-decode-") as tmp:
        tmp = Path(tmp)
        photos = make_photos(tmp / "12mp", 12, args.n, args.noise)
        sizes = [p.stat().st_size / 1e6 for p in photos]
        print(f"# {len(photos)} camera-like 12-MP JPEGs (NOT real camera files: upscaled samples + noise "
              f"σ {args.noise}, q90), {min(sizes):.1f}-{max(sizes):.1f} MB")
        variants = make_variants(photos[0], tmp)
        for name, files, gray in () if args.featx_only else (("baseline", photos, False),
                                  ("progressive", [variants["progressive"]], False),
                                  ("grayscale", [variants["gray"]], True)):
            print(f"\n{name}: ms per photo (ratio cv2 / decoder; max |Δ| against cv2's pixels)\n")
            print("| scale | cv2.imread + RGB | " + " | ".join(n for n in decoders(gray) if n != "cv2") + " |")
            print("|---|---|" + "---|" * (len(decoders(gray)) - 1))
            timing(files, args.repeats, gray)
        if not args.featx_only:
            behaviours(variants, tmp)
        more = [make_variants(p, tmp / f"v{i}") for i, p in enumerate(photos)]
        featx_paths({kind: [v[kind] for v in more] for kind in ("baseline", "progressive", "gray", "exif6")},
                    args.repeats)
        print(f"\n# load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
