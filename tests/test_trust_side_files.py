"""Attacks on the files featx writes beside its outputs and outside `extract`: sidecars and
summaries that overwrite anything, `show` pictures, the model cache, `show` without limits
(issue 21, items 2, 14, 15, 13).  Each test reproduces the issue's report and asserts the
behaviour the issue asks for."""
from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from helpers import copy_samples, featx, featx_inprocess, ok


def err(r) -> str:
    return r.stderr.decode(errors="replace")


# ---------------------------------------------------------------------------
# 2. --sidecar and --summary-json


def _setup(tmp_path: Path) -> dict[str, bytes]:
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    (tmp_path / "notes.txt").write_text("my notes\n")
    ok(featx_inprocess("extract", "gradients", "s", "-o", "g2.npy", cwd=tmp_path))
    return {p: (tmp_path / p).read_bytes() for p in ("s/c.jpg", "notes.txt", "g2.npy", "g2.index.csv")}


@pytest.mark.parametrize("opt,target", [("--sidecar", "s/c.jpg"), ("--summary-json", "g2.npy"),
                                        ("--sidecar", "notes.txt"), ("--summary-json", "notes.txt"),
                                        ("--sidecar", "g2.index.csv")])
def test_i02_sidecar_and_summary_never_replace_a_file_featx_did_not_write(tmp_path, opt, target):
    """Item 2: `--sidecar` and `--summary-json` overwrite any file: an input photo (`--sidecar
    c.jpg`), a run's own .npy (`--summary-json g2.npy`), a user's notes.txt, the index.  They
    follow the rule of outputs: never replace what featx did not write without --overwrite."""
    before = _setup(tmp_path)
    r = featx_inprocess("extract", "hog", "s", "-o", "h.npy", "--resize", "64x64", opt, target, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert target in err(r) or Path(target).name in err(r), err(r)[-600:]
    for p, data in before.items():
        assert (tmp_path / p).read_bytes() == data, p


def test_i02_recipe_sidecar_never_replaces_a_user_file(tmp_path):
    """Item 2: the same through a recipe's `sidecar =`."""
    before = _setup(tmp_path)
    (tmp_path / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\n'
                                     'resize = "64x64"\nsidecar = "notes.txt"\n')
    r = featx_inprocess("run", "r.toml", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert (tmp_path / "notes.txt").read_bytes() == before["notes.txt"]


def test_i02_sidecar_of_a_stdout_run_is_written(tmp_path):
    """Item 2: `--sidecar PATH` with `-o -` is silently ignored, so a pipeline run has no
    provenance and no failure list."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    (tmp_path / "s" / "junk.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    r = featx_inprocess("extract", "hog", "s", "-o", "-", "-f", "csv", "--resize", "64x64",
                        "--sidecar", "run.json", cwd=tmp_path)
    assert r.returncode == 1, (r.returncode, err(r)[-600:])
    doc = json.loads((tmp_path / "run.json").read_text("utf-8"))
    assert [Path(f["path"]).name for f in doc["failures"]] == ["junk.jpg"]


# ---------------------------------------------------------------------------
# 14. featx show -o


def test_i14_show_never_overwrites_its_input(tmp_path):
    """Item 14: `show hog c.jpg -o c.jpg` -> the photo is gone."""
    copy_samples(tmp_path, {"c.jpg": "coffee.jpg"})
    before = (tmp_path / "c.jpg").read_bytes()
    r = featx_inprocess("show", "hog", "c.jpg", "-o", "c.jpg", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert (tmp_path / "c.jpg").read_bytes() == before


def test_i14_show_never_overwrites_a_file_it_did_not_write(tmp_path):
    """Item 14: `featx show -o` overwrites anything (a picture of the user's)."""
    copy_samples(tmp_path, {"c.jpg": "coffee.jpg", "holiday.png": "chelsea.png"})
    before = (tmp_path / "holiday.png").read_bytes()
    r = featx_inprocess("show", "hog", "c.jpg", "-o", "holiday.png", cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert (tmp_path / "holiday.png").read_bytes() == before


@pytest.mark.parametrize("name", ["x.svg", "x.pdf", "notes.txt"])
def test_i14_show_checks_the_extension_first(tmp_path, name):
    """Item 14: `-o x.svg`, `x.pdf`, `notes.txt` end in a traceback after all the work: check
    the extension first and say which are supported.  The check must come before any work:
    nothing is written."""
    copy_samples(tmp_path, {"c.jpg": "coffee.jpg"})
    r = featx_inprocess("show", "hog", "c.jpg", "-o", name, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert "Traceback" not in err(r)
    assert ".png" in err(r) and ".jpg" in err(r), err(r)[-600:]
    assert not (tmp_path / name).exists()


# ---------------------------------------------------------------------------
# 15. featx models fetch


@pytest.fixture()
def model_file(tmp_path):
    f = tmp_path / "dl" / "m.onnx"
    f.parent.mkdir()
    f.write_bytes(b"not really a model, but a file to download" * 10)
    return f, hashlib.sha256(f.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", ["/ABS/evil", "../../evil", "a/../../evil", "..", "."])
def test_i15_models_fetch_stays_inside_the_cache(tmp_path, model_file, name):
    """Item 15: `featx models fetch NAME` writes outside the model cache with `/abs/name` or
    `../../` names."""
    f, sha = model_file
    cache = tmp_path / "deep" / "cache"
    cache.mkdir(parents=True)
    name = name.replace("/ABS", str(tmp_path / "abs"))
    r = featx_inprocess("models", "fetch", name, "--url", f.as_uri(), "--sha256", sha, cwd=tmp_path,
                        env={"FEATX_CACHE_DIR": str(cache)})
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    outside = [p for p in tmp_path.rglob("*") if p.is_file() and cache not in p.parents and p != f]
    assert outside == [], outside
    assert not (tmp_path / "abs").exists()


def test_i15_models_fetch_never_fetches_over_the_bundled_model(tmp_path, model_file):
    """Item 15: `featx models fetch efficientnet-lite0 --url ...` fetches over the bundled
    model."""
    from featx.extractors.cnn.models import DEFAULT_MODEL

    f, sha = model_file
    cache = tmp_path / "cache"
    r = featx_inprocess("models", "fetch", DEFAULT_MODEL, "--url", f.as_uri(), "--sha256", sha, cwd=tmp_path,
                        env={"FEATX_CACHE_DIR": str(cache)})
    assert r.returncode == 2, (r.returncode, err(r)[-600:])
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_i15_models_fetch_of_a_custom_name_still_works(tmp_path, model_file):
    """The guard of item 15 keeps an ordinary fetch into the cache working."""
    f, sha = model_file
    cache = tmp_path / "cache"
    ok(featx_inprocess("models", "fetch", "my-model", "--url", f.as_uri(), "--sha256", sha, cwd=tmp_path,
                       env={"FEATX_CACHE_DIR": str(cache)}))
    got = [p for p in (cache / "models" / "my-model").iterdir() if not p.name.endswith(".json")]
    assert len(got) == 1 and got[0].read_bytes() == f.read_bytes()


# ---------------------------------------------------------------------------
# 13. show, read_image and codebook bounded like extract


def _png_claiming(path: Path, w: int, h: int) -> Path:
    """A small PNG whose header claims w x h gray pixels (its data: a few zero rows)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    raw = zlib.compress(b"\x00" * (w + 1) * 4)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
    return path


def test_i13_show_refuses_a_picture_over_max_pixels(tmp_path):
    """Item 13: `featx show` has no pixel or memory limit (a 1.1 MB PNG claiming 20000x20000
    reached 7.5 GB, then a traceback).  `show` takes --max-pixels/--max-memory like extract and
    refuses before decoding."""
    _png_claiming(tmp_path / "big.png", 3000, 3000)
    r = featx_inprocess("show", "hog", "big.png", "-o", "x.png", "--max-pixels", "1000000", cwd=tmp_path)
    assert r.returncode in (1, 2), (r.returncode, err(r)[-600:])
    assert "no such option" not in err(r).lower(), err(r)[-600:]
    assert "pixels" in err(r) and "big.png" in err(r), err(r)[-600:]
    assert not (tmp_path / "x.png").exists()
    r = featx_inprocess("show", "hog", "big.png", "-o", "x.png", "--max-memory", "8M", cwd=tmp_path)
    assert r.returncode in (1, 2) and "no such option" not in err(r).lower(), err(r)[-600:]


def test_i13_show_default_limit_refuses_a_20000_square_png(tmp_path):
    """Item 13: with no option, the same default limit as extract (20000x20000 is over it)."""
    _png_claiming(tmp_path / "huge.png", 20000, 20000)
    r = featx_inprocess("show", "hog", "huge.png", "-o", "x.png", cwd=tmp_path)
    assert r.returncode in (1, 2), (r.returncode, err(r)[-600:])
    assert "Traceback" not in err(r) and "pixels" in err(r), err(r)[-600:]


def test_i13_read_image_takes_the_limit(tmp_path):
    """Item 13: `featx.read_image` (2.4 GB on the same file) gets the same guard."""
    import featx
    from featx.errors import FeatxError

    _png_claiming(tmp_path / "big.png", 3000, 3000)
    with pytest.raises(FeatxError) as e:       # a featx error, not a TypeError for the keyword
        featx.read_image(str(tmp_path / "big.png"), max_pixels=1_000_000)
    assert "pixels" in str(e.value)
    with pytest.raises(FeatxError) as e:
        featx.read_image(str(_png_claiming(tmp_path / "huge.png", 20000, 20000)))
    assert "pixels" in str(e.value) and "libpng" not in str(e.value)


def test_i13_codebook_takes_the_limit(tmp_path):
    """Item 13: `featx codebook` gets the same --max-pixels guard."""
    _png_claiming(tmp_path / "big.png", 3000, 3000)
    r = featx_inprocess("codebook", "sift", "big.png", "-o", "cb.npz", "-k", "4", "--max-pixels", "1000000", cwd=tmp_path)
    assert "no such option" not in err(r).lower(), err(r)[-600:]
    assert "pixels" in err(r), err(r)[-600:]


def test_i13_zip_bomb_codebook_is_refused_from_its_header(tmp_path):
    """Item 13: a 1 MB zip-bomb codebook costs 1 GB before it is refused: check the array
    header's size before reading.  The bomb is a real codebook whose centers member is a
    deflated .npy claiming 600,000 x 128 float32 (307 MB of zeros, 1.3 MB in the file;
    the issue's was 1 GB): refused with the peak memory of a run that reads no array."""
    import zipfile

    copy_samples(tmp_path, {"c.jpg": "coffee.jpg"})
    ok(featx_inprocess("codebook", "sift", "c.jpg", "-o", "cb.npz", "-k", "4", cwd=tmp_path))
    with zipfile.ZipFile(tmp_path / "cb.npz") as z:
        meta = z.read("metadata.npy")
    header = np.lib.format.header_data_from_array_1_0(np.zeros((1, 128), np.float32))
    header["shape"] = (600_000, 128)
    # compresslevel 1: the zeros still shrink 230-fold, and making the bomb costs 0.4 s of CPU,
    # not 1.4 s (the test ran at 3.1 s of CPU, over the 3 s of an unmarked test, on a busy machine)
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        z.writestr("metadata.npy", meta)
        with z.open("centers.npy", "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            left = 600_000 * 128 * 4
            chunk = bytes(1 << 24)
            while left:
                f.write(chunk[:left])
                left -= min(left, len(chunk))
    assert (tmp_path / "bomb.npz").stat().st_size < 4 << 20
    probe = ("import resource, subprocess, sys\n"
             "r = subprocess.run([sys.executable, '-m', 'featx', 'extract', 'sift', 'c.jpg', '-o', 'x.npy', '-j', '1',"
             " '--encode', 'bovw', '--codebook', 'bomb.npz'], capture_output=True)\n"
             "sys.stderr.buffer.write(r.stderr)\n"
             "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    r = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, timeout=300)
    code, peak_kib = map(int, r.stdout.split())
    assert code == 2, (code, err(r)[-600:])
    assert "bomb.npz" in err(r), err(r)[-600:]
    # featx itself stays under 100 MB; reading the array costs 307 MB more
    assert peak_kib < 200 * 1024, (peak_kib, err(r)[-600:])


# ---------------------------------------------------------------------------
# found by attacking the fixes above through other doors (a recipe, -j 2, an npy-dir,
# Python, another folder)


def test_sidecar_or_summary_never_replaces_another_outputs_sidecar(tmp_path):
    """``--sidecar a.npy.featx.json`` on the run of ``b.npy`` (or ``--summary-json`` naming
    it) was accepted because featx wrote that file, and a's provenance and failure list
    (which `featx merge` reads) were replaced by b's.  Another existing output's sidecar is
    refused as a file featx did not write for this output is; the output's own sidecar,
    a summary file, and ``--overwrite`` still go through."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    ok(featx("extract", "gradients", "s", "-o", "a.npy", "-q", cwd=tmp_path))
    side = tmp_path / "a.npy.featx.json"
    before = side.read_bytes()
    for opt in ("--sidecar", "--summary-json"):
        r = featx("extract", "gradients", "s", "-o", "b.npy", opt, "a.npy.featx.json", cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert f"is the sidecar of the output {tmp_path / 'a.npy'}" in err(r), err(r)
        assert side.read_bytes() == before
        assert not (tmp_path / "b.npy").exists()
    # a recipe's sidecar= goes through the same check
    (tmp_path / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "hog"\npath = "h.npy"\n'
                                     'sidecar = "a.npy.featx.json"\n')
    r = featx("run", "r.toml", cwd=tmp_path)
    assert r.returncode == 2 and "is the sidecar of the output" in err(r), err(r)
    assert side.read_bytes() == before
    # its own sidecar, named explicitly and from another folder: still its own
    ok(featx("extract", "gradients", ".", "-o", "../a.npy", "--sidecar", "../a.npy.featx.json", "-q",
             cwd=tmp_path / "s"))
    assert json.loads(side.read_text())["output"]["path"] == str(tmp_path / "a.npy")
    # a summary file is rewritten run after run
    for _ in range(2):
        ok(featx("extract", "gradients", "s", "-o", "a.npy", "--summary-json", "sum.json", "-q", cwd=tmp_path))
    # --overwrite: the user said so
    ok(featx("extract", "gradients", "s", "-o", "b.npy", "--sidecar", "a.npy.featx.json", "--overwrite", "-q",
             cwd=tmp_path))
    assert json.loads(side.read_text())["output"]["path"] == str(tmp_path / "b.npy")


def test_a_moved_folder_of_outputs_keeps_its_sidecars(tmp_path):
    """A sidecar records its output's absolute path: after ``mv feats feats2`` the output's
    own sidecar (and one named beside it, whose recorded output is gone) is still its own."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    (tmp_path / "feats").mkdir()
    ok(featx("extract", "gradients", "s", "-o", "feats/g.npy", "-q", cwd=tmp_path))
    ok(featx("extract", "gradients", "s", "-o", "feats/h.npy", "--sidecar", "feats/h.json", "-q", cwd=tmp_path))
    (tmp_path / "feats").rename(tmp_path / "feats2")
    ok(featx("extract", "gradients", "s", "-o", "feats2/g.npy", "-q", cwd=tmp_path))
    ok(featx("extract", "gradients", "s", "-o", "feats2/h.npy", "--sidecar", "feats2/h.json", "-q", cwd=tmp_path))


# ---------------------------------------------------------------------------
# Format and name agree


def test_sidecar_dash_is_not_a_file_named_dash(tmp_path):
    """``--summary-json -`` prints the summary, ``-o -`` writes to stdout, but ``--sidecar -``
    silently wrote a file named ``-`` in the working folder.  It is refused, before any
    work, and ``./-`` still names that file on purpose."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    for out in ("-", "a.npy"):
        r = featx("extract", "gradients", "s", "-o", out, "--sidecar", "-", cwd=tmp_path)
        assert r.returncode == 2, err(r)
        assert "--sidecar - would name a file '-'" in err(r) and r.stdout == b""
        assert not (tmp_path / "-").exists() and not (tmp_path / "a.npy").exists()
    ok(featx("extract", "gradients", "s", "-o", "a.npy", "--sidecar", "./-", "-q", cwd=tmp_path))
    assert json.loads((tmp_path / "-").read_text())["featx_sidecar"]


# ---------------------------------------------------------------------------
# A newcomer's first commands


def test_a_side_file_in_a_missing_folder_is_refused_before_the_work(tmp_path):
    """``--sidecar nodir/x.json`` was a FileNotFoundError traceback (with the lock taken),
    ``--summary-json nodir/x.json`` one after all the work was committed; from a recipe's
    ``sidecar =`` too.  Each is a usage error before anything is written."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    (tmp_path / "r.toml").write_text('inputs = ["s"]\n[[output]]\nextractor = "gradients"\npath = "r.npy"\n'
                                     'sidecar = "nodir/x.json"\n')
    for args, what in ((["extract", "gradients", "s", "-o", "a.npy", "--sidecar", "nodir/x.json"], "sidecar"),
                       (["extract", "gradients", "s", "-o", "b.npy", "--summary-json", "nodir/x.json"], "summary file"),
                       (["run", "r.toml"], "sidecar")):
        r = featx(*args, cwd=tmp_path)
        assert r.returncode == 2, (args, err(r))
        assert f"the folder of the {what} {tmp_path / 'nodir' / 'x.json'} does not exist" in err(r), err(r)
        assert "Traceback" not in err(r)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.toml", "s"]


def test_show_into_a_missing_folder_is_refused_before_the_work(tmp_path):
    """``featx show hog c.jpg -o nodir/x.png`` rendered the picture, then ended in a
    FileNotFoundError traceback from the atomic write; extract says "output folder ... does
    not exist" before any work, and so does show now."""
    copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg"})
    r = featx("show", "hog", "s/c.jpg", "-o", "nodir/x.png", cwd=tmp_path)
    assert r.returncode == 2, err(r)
    assert "output folder" in err(r) and "does not exist" in err(r) and "Traceback" not in err(r), err(r)
    ok(featx("show", "hog", "s/c.jpg", "-o", "x.png", cwd=tmp_path))


def test_codebook_output_is_an_npz_that_is_not_an_input_nor_a_device(tmp_path):
    """``featx codebook -o`` had none of the output rules: ``-o cb.jpg`` wrote a zip named
    .jpg (the next walk of the folder takes it for a photo and fails it), ``-o c.jpg
    --overwrite`` on its own input replaced the photo, and a device (``-o dev.npz``, a link
    to /dev/null) would be replaced by a regular file.  The name must end .npz, and the
    file may be neither one the run reads nor anything but a regular file."""
    import os

    s = copy_samples(tmp_path / "s", {"c.jpg": "coffee.jpg", "r.jpg": "rocket.jpg"})
    photo = (s / "c.jpg").read_bytes()
    r = featx("codebook", "sift", "s", "-k", "8", "-o", "cb.jpg", cwd=tmp_path)
    assert r.returncode == 2 and "a codebook is an .npz archive" in err(r), err(r)
    assert not (tmp_path / "cb.jpg").exists()
    (tmp_path / "c.npz").symlink_to(s / "c.jpg")
    r = featx("codebook", "sift", "s/c.jpg", "s/r.jpg", "-k", "8", "-o", "c.npz", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "is a file this run reads" in err(r), err(r)
    assert (s / "c.jpg").read_bytes() == photo and (tmp_path / "c.npz").is_symlink()
    (tmp_path / "dev.npz").symlink_to(os.devnull)
    r = featx("codebook", "sift", "s", "-k", "8", "-o", "dev.npz", "--overwrite", cwd=tmp_path)
    assert r.returncode == 2 and "not a file featx can write" in err(r), err(r)
    assert (tmp_path / "dev.npz").is_symlink()
    ok(featx("codebook", "sift", "s", "-k", "8", "-o", "cb.NPZ", "-q", cwd=tmp_path))
