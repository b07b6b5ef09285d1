"""The input side under real faults (issue 11, items 9-14): every entry of a walked folder
is taken or counted, only regular files are read, one bad input fails alone, one input
cannot exhaust memory, bad codebooks / config values / numbers are usage errors, and
native decoders never print on stderr.

Unreadable entries as root.  The tests run as root, who reads a mode-000 file anyway.
They drop root's power to bypass permissions instead: the featx subprocess runs under
``setpriv --bounding-set=-dac_override,-dac_read_search`` (util-linux), which removes the
two capabilities from the process before it starts, so mode 000 denies it as it would an
ordinary user.  When that is not possible (no setpriv, a container that forbids it) the
subprocess tests that need it are skipped with that reason, and in-process tests that
make ``os.scandir`` / ``os.open`` raise ``PermissionError`` still cover the same paths.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from helpers import SAMPLES, featx, featx_subprocess

# ---------------------------------------------------------------------------
# helpers


def _can_drop_dac() -> bool:
    probe = Path(__file__).parent / "helpers.py"  # any readable file; we chmod a copy
    if os.geteuid() != 0:
        return True  # chmod 000 already denies an ordinary user
    if shutil.which("setpriv") is None:
        return False
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "x"
        shutil.copy(probe, f)
        f.chmod(0)
        r = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", "cat", str(f)],
                           capture_output=True)
        return r.returncode != 0 and b"ermission denied" in r.stderr


CAN_DROP_DAC = _can_drop_dac()
needs_unreadable = pytest.mark.skipif(not CAN_DROP_DAC, reason="cannot make a file unreadable for root here "
                                      "(no setpriv, or the bounding set cannot be changed)")


def featx_unprivileged(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    """``python -m featx ARGS`` for which mode-000 files and folders are unreadable, even as root."""
    env = dict(os.environ)
    env.pop("FEATX_CACHE_DIR", None)
    prefix = ["setpriv", "--bounding-set=-dac_override,-dac_read_search"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, sys.executable, "-m", "featx", *map(str, args)], cwd=cwd,
                          capture_output=True, env=env, timeout=timeout)


def error_lines(r) -> list[str]:
    return [ln for ln in r.stderr.decode().splitlines() if ln.startswith("featx: error: ")]


def summary_of(r) -> str:
    lines = [ln for ln in r.stderr.decode().splitlines() if " processed" in ln]
    assert lines, r.stderr.decode()
    return lines[-1]


def sidecar(path: Path) -> dict:
    return json.loads(path.read_text())


def rows_of_csv(path: Path) -> list[str]:
    import csv

    with open(path, newline="") as fh:
        return [row["path"] for row in csv.DictReader(fh)]


# ---------------------------------------------------------------------------
# 9. every entry of a walked folder is taken, counted, or reported


@pytest.fixture()
def hostile_tree(tmp_path: Path) -> Path:
    """Real photos, plus everything a folder may hold that is not a plain image file."""
    root = tmp_path / "in"
    (root / "sub").mkdir(parents=True)
    (root / "locked").mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", root / "a.jpg")
    shutil.copy(SAMPLES / "chelsea.png", root / "sub" / "b.png")
    shutil.copy(SAMPLES / "camera.png", root / "locked" / "c.png")
    os.mkfifo(root / "fifo.jpg")              # special: skipped and counted (never opened)
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as s:  # special: skipped and counted
        s.bind(str(root / "sock"))
    os.symlink("nowhere.jpg", root / "gone.jpg")     # broken link named like an image: failed
    os.symlink("loop.png", root / "loop.png")       # a link loop named like an image: failed
    os.symlink("nowhere.txt", root / "notes.txt")   # broken link, not an image name: counted
    os.symlink("sub", root / "sublink")             # link to a folder: counted, not followed
    (root / "locked").chmod(0)                      # unreadable folder: failed
    return root


@needs_unreadable
def test_walk_reports_unreadable_folders_and_broken_links_and_counts_the_rest(hostile_tree, tmp_path):
    out = tmp_path / "g.csv"
    r = featx_unprivileged("extract", "gradients", hostile_tree, "-o", out, "-j", "2", timeout=120)
    assert r.returncode == 1, r.stderr.decode()
    root = str(hostile_tree)
    assert sorted(error_lines(r)) == sorted([
        f"featx: error: {root}/gone.jpg: broken symbolic link (its target does not exist)",
        f"featx: error: {root}/locked: cannot list folder: permission denied",
        f"featx: error: {root}/loop.png: symbolic link loop (too many levels of links)",
    ])
    line = summary_of(r)
    for part in ("2 processed", "3 failed", "1 non-image file skipped", "3 special files skipped",
                 "1 link to a folder not followed"):
        assert part in line, line
    assert rows_of_csv(out) == [f"{root}/a.jpg", f"{root}/sub/b.png"]   # sub/b.png once, not via sublink
    doc = sidecar(tmp_path / "g.csv.featx.json")
    assert doc["status"] == "complete-with-failures"
    assert sorted(f["path"] for f in doc["failures"]) == [f"{root}/gone.jpg", f"{root}/locked", f"{root}/loop.png"]
    assert doc["inputs"]["skipped_special"] == 3 and doc["inputs"]["skipped_folder_links"] == 1


@needs_unreadable
def test_a_folder_that_becomes_unreadable_is_reported_not_pruned(tmp_path):
    """Its files are still there: their rows must survive --prune, and the run says why
    it could not look at them (before: "1 disappeared (1 removed)", exit 1 for nothing)."""
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    shutil.copy(SAMPLES / "coffee.jpg", src / "a.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", src / "sub" / "b.jpg")
    r = featx_unprivileged("extract", "gradients", "in", "-o", "g.npy", "-j", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    (src / "sub").chmod(0)
    r = featx_unprivileged("extract", "gradients", "in", "-o", "g.npy", "-j", "1", "--prune", cwd=tmp_path)
    real = os.path.realpath(src)  # paths are canonical: absolute, whatever the spelling
    assert r.returncode == 1 and error_lines(r) == [f"featx: error: {real}/sub: cannot list folder: permission denied"]
    assert "disappeared" not in summary_of(r)
    assert (tmp_path / "g.index.csv").read_text().splitlines()[1:] == [f"0,{real}/a.jpg", f"1,{real}/sub/b.jpg"]
    (src / "sub").chmod(0o755)


def test_walk_in_process_unreadable_folder_is_an_error_input(tmp_path, monkeypatch):
    """The same enumeration without privileges to drop: os.scandir denied for one folder."""
    from featx import inputs, items

    (tmp_path / "ok").mkdir()
    (tmp_path / "locked").mkdir()
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "ok" / "x.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", tmp_path / "locked" / "y.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.path.basename(os.fspath(path)) == "locked":
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    for frames in (False, True):
        stats = inputs.Enumeration()
        got = [(i.kind, os.path.relpath(i.path, tmp_path), i.error)
               for i in inputs.enumerate_inputs([str(tmp_path)], stats=stats, frames=frames)]
        first = ("frames", "ok", None) if frames else ("image", "ok/x.jpg", None)
        assert got == [("error", "locked", "cannot list folder: permission denied"), first]
    # an error input fails alone when it is loaded, with its reason
    from featx.errors import InputError

    with pytest.raises(InputError, match="cannot list folder: permission denied"):
        list(items.load(inputs.Input(str(tmp_path / "locked"), kind="error",
                                     error="cannot list folder: permission denied")))


# ---------------------------------------------------------------------------
# 10. only regular files are read: a FIFO named *.jpg cannot hang the run


@pytest.mark.slow  # three featx processes (a hang must be killable)
def test_fifo_and_devices_named_as_inputs_fail_alone_without_blocking(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    os.mkfifo(tmp_path / "pipe.jpg")
    os.mkfifo(tmp_path / "pipe.mp4")
    out = tmp_path / "g.csv"
    # without --timeout: reading the FIFO would block forever (no writer ever comes); -j 1 so
    # that, were it to block, the timeout's kill ends every process holding the pipes
    r = featx_subprocess("extract", "gradients", "a.jpg", "pipe.jpg", "/dev/urandom", "-o", out, "-j", "1",
                         cwd=tmp_path, timeout=60)
    assert r.returncode == 1, r.stderr.decode()
    assert sorted(error_lines(r)) == [
        "featx: error: /dev/urandom: not a regular file (a character device): only regular files are read",
        f"featx: error: {os.path.realpath(tmp_path)}/pipe.jpg: not a regular file (a FIFO): only regular files are read",
    ]
    assert rows_of_csv(out) == [f"{os.path.realpath(tmp_path)}/a.jpg"]
    # --hash reads inputs in the main process to decide what is up to date: not a FIFO
    r = featx_subprocess("extract", "gradients", "a.jpg", "pipe.jpg", "-o", tmp_path / "h.npy", "--hash", "-j", "1",
                         cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and error_lines(r) == [
        f"featx: error: {os.path.realpath(tmp_path)}/pipe.jpg: not a regular file (a FIFO): only regular files are read"]
    r = featx_subprocess("extract", "gradients", "pipe.mp4", "-o", tmp_path / "v.csv", "-j", "1", cwd=tmp_path, timeout=60)
    assert r.returncode == 1 and "pipe.mp4: not a regular file (a FIFO)" in r.stderr.decode()


def test_decode_refuses_special_files_in_process(tmp_path):
    from featx import decode
    from featx.errors import InputError

    # (a FIFO is tested in a subprocess above: in this process, a regression would hang the tests)
    with pytest.raises(InputError, match=r"not a regular file \(a character device\)"):
        decode.decode_image("/dev/urandom")
    with pytest.raises(InputError, match=r"not a regular file \(a character device\)"):
        decode.decode_image("/dev/null")


# ---------------------------------------------------------------------------
# 11. an unreadable file named on the command line fails alone


@needs_unreadable
def test_unreadable_file_on_the_command_line_fails_alone(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    shutil.copy(SAMPLES / "chelsea.png", tmp_path / "b.png")
    shutil.copy(SAMPLES / "rocket.jpg", tmp_path / "c.jpg")
    (tmp_path / "b.png").chmod(0)
    out = tmp_path / "g.csv"
    r = featx_unprivileged("extract", "gradients", "a.jpg", "b.png", "c.jpg", "-o", out, cwd=tmp_path)
    assert r.returncode == 1, r.stderr.decode()
    real = os.path.realpath(tmp_path)
    assert error_lines(r) == [f"featx: error: {real}/b.png: permission denied"]
    assert rows_of_csv(out) == [f"{real}/a.jpg", f"{real}/c.jpg"]
    assert [f["path"] for f in sidecar(tmp_path / "g.csv.featx.json")["failures"]] == [f"{real}/b.png"]


# ---------------------------------------------------------------------------
# 12. the memory one input may cost


def _png_of_zeros(path: Path, width: int, height: int) -> Path:
    """A valid RGB PNG of ``width`` x ``height`` black pixels, written row by row (a few
    hundred KB for 13000 x 13000: small file, huge image)."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    comp = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


_PEAK = r'''
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True)
sys.stderr.buffer.write(r.stderr)
print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
sys.exit(r.returncode)
'''


@pytest.mark.slow  # a featx process whose peak memory is measured
def test_small_file_with_huge_dimensions_is_refused_alone_and_memory_stays_low(tmp_path):
    bomb = _png_of_zeros(tmp_path / "bomb.png", 13000, 13000)
    assert bomb.stat().st_size < 1_000_000
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    shutil.copy(SAMPLES / "rocket.jpg", tmp_path / "c.jpg")
    out = tmp_path / "g.csv"
    # 13000 x 13000 = 169 Mpixels is under the default --max-pixels (178,956,970)
    r = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "featx", "extract", "gradients",
                        "a.jpg", "bomb.png", "c.jpg", "-o", out, "-j", "1", "--max-memory", "512M"],
                       cwd=tmp_path, capture_output=True, timeout=300)
    assert r.returncode == 1, r.stderr.decode()
    errs = error_lines(r)
    assert len(errs) == 1 and errs[0].startswith(
        f"featx: error: {os.path.realpath(tmp_path)}/bomb.png: image is 13000x13000 pixels"), errs
    # (gradients works on bands of rows: the 507-MB picture itself, held twice while decoded,
    # is what is over the budget)
    assert "over the per-worker memory budget of 512.0 MiB" in errs[0]
    assert "hint: " in r.stderr.decode() or "--max-memory" in errs[0]
    assert rows_of_csv(out) == [f"{os.path.realpath(tmp_path)}/a.jpg", f"{os.path.realpath(tmp_path)}/c.jpg"]
    peak = int(r.stdout.decode().split()[-1])
    assert peak < 600 * 2**20, f"peak RSS {peak / 2**20:.0f} MiB"   # decoding it would take > 1 GiB


def test_resize_is_held_to_max_pixels_and_the_memory_budget_up_front(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    r = featx("extract", "gradients", "a.jpg", "-o", tmp_path / "g.npy", "--resize", "8000x8000",
              "--max-pixels", "1000000", cwd=tmp_path)
    assert r.returncode == 2 and "--resize 8000x8000 is 64,000,000 pixels, over --max-pixels 1,000,000" \
        in r.stderr.decode()
    r = featx("extract", "gradients", "a.jpg", "-o", tmp_path / "g.npy", "--resize", "8000x8000",
              "--max-memory", "128M", cwd=tmp_path)   # 192 MB of pixels (gradients works in bands)
    err = r.stderr.decode()
    assert r.returncode == 2 and "--resize 8000x8000: extracting from each image at that size needs about" in err
    assert "over the per-worker memory budget of 128.0 MiB" in err and "--max-memory" in err
    assert not (tmp_path / "g.npy").exists()


def test_memory_option_parsing_and_default():
    from featx import memory

    assert memory.parse_size("4G") == 4 << 30 and memory.parse_size("512M") == 512 << 20
    assert memory.parse_size("1.5GiB") == 3 << 29 and memory.parse_size("0") == 0
    for bad in ("nan", "inf", "-1G", "4X", ""):
        with pytest.raises(ValueError):
            memory.parse_size(bad)
    assert memory.default_budget(1) >= 1 << 30
    assert memory.default_budget(10**6) == 1 << 30          # at least 1 GiB
    assert memory.default_budget(2) == max(1 << 30, memory.total_memory() // 4)


# Peak RSS growth of one extract() on a real photo upscaled to W x H (a fresh process;
# VmHWM is reset after the setup, so the growth is what extract() added).
_MEASURE = r'''
import gc, json, sys
import numpy as np

def rss():
    with open("/proc/self/status") as f:
        d = dict(l.split(":", 1) for l in f)
    return int(d["VmRSS"].split()[0]) * 1024, int(d["VmHWM"].split()[0]) * 1024

name, params, w, h, photo = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
from featx import registry
from featx.engine import process as pipeline
from featx.extractor import build_params
pipeline.setup_worker_process()          # as in a worker: tuned allocator, one OpenCV thread
import cv2
cls = registry.get(name)
ext = cls(build_params(cls, params))
src = cv2.cvtColor(cv2.imread(photo), cv2.COLOR_BGR2RGB)
small = cv2.resize(src, (160, 120), interpolation=cv2.INTER_AREA)
ext.extract(small)                       # lazy imports, engines, plans: not the image's cost
if ext.temporal:
    ext.extract(np.roll(small, 2, axis=1)); ext.reset()
img = cv2.resize(src, (w, h), interpolation=cv2.INTER_LINEAR)
img2 = np.roll(img, 3, axis=1) if ext.temporal else None
gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                         # reset the peak (VmHWM) to the current RSS
base, _ = rss()
out = ext.extract(img)
if ext.temporal:
    out = ext.extract(img2)              # a frame pair: the previous frame is held
_, peak = rss()
print(json.dumps({"growth": peak - base, "declared": ext.working_memory(h, w), "bpp": ext.bytes_per_pixel()}))
'''

MEMORY_CASES = [
    ("gradients", {}), ("hog", {}), ("hog", {"channels": "gray"}),
    ("sift", {}), ("sift", {"dense": True, "step": 4}),
    ("haar", {}), ("haar", {"n_scales": 5}), ("haar", {"mode": "window"}),
    ("gabor", {}), ("gabor", {"result": "maps"}),
    ("flow", {}), ("flow", {"method": "farneback", "mbh": True}),
    ("cnn", {}),
]


def _measure(name: str, params: dict, w: int, h: int) -> dict:
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc peak-RSS reset (clear_refs)")
    r = subprocess.run([sys.executable, "-c", _MEASURE, name, json.dumps(params), str(w), str(h),
                        str(SAMPLES / "coffee.jpg")], capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("name,params", MEMORY_CASES, ids=[f"{n}-{json.dumps(p)}" for n, p in MEMORY_CASES])
def test_declared_working_memory_bounds_the_measured_peak(name, params):
    """Each extractor's declaration (bytes per pixel, or its working_memory) is an upper
    bound of what extract() really adds to the peak RSS on a 2000x1500 real photo, and
    not a wild over-estimate (which would refuse images that fit)."""
    m = _measure(name, params, 2000, 1500)
    assert m["growth"] <= m["declared"], m
    assert m["declared"] <= 2 * m["growth"] + 16 * 2000 * 1500, m


@pytest.mark.slow
def test_gabor_declaration_counts_its_kernel_spectrum_cache():
    """At 1000x750 gabor keeps the spectra of all 32 kernels (~250 MB): per pixel that is far
    more than at 2000x1500, where the cache is off; the declaration follows the size."""
    m = _measure("gabor", {}, 1000, 750)
    assert m["growth"] <= m["declared"], m
    assert m["growth"] > 2 * 68 * 1000 * 750   # the cache is really there


# The whole per-input cost in a worker (read, decode, colour conversion, resize, extract,
# encode) against what the budget computes from the file's header before decoding it.
_WORKER = r'''
import gc, json, sys
name, params, path, resize = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
from featx import decode, inputs, registry
from featx.engine import process as pipeline, worker as W
from featx.memory import MemoryBudget
from featx.output.sinks import RawEncoder
pipeline.setup_worker_process()
size = tuple(int(v) for v in resize.split("x")) if resize else None
job = W.Job(tasks=(W.Task(target=registry.target_of(registry.get(name)), params=params, resize=size,
                          encoder=RawEncoder()),), max_memory=1 << 40)
worker = W.Worker(job)
data = decode.read_regular_file(path)
hdr = decode.read_header(data)
del data
budget = MemoryBudget.for_extractor(1 << 40, worker.extractor, size)
estimate = budget.cost(hdr.width, hdr.height, hdr.channels, hdr.sample_bytes, __import__("os").path.getsize(path))
worker.run([inputs.Input("warmup.png")], [lambda b: None])      # imports, no image
gc.collect()
def rss():
    with open("/proc/self/status") as f:
        d = dict(l.split(":", 1) for l in f)
    return int(d["VmRSS"].split()[0]) * 1024, int(d["VmHWM"].split()[0]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base, _ = rss()
out = []
recs = worker.run([inputs.Input(path)], [out.append])[0][0]
_, peak = rss()
assert recs and recs[0].error is None, recs
print(json.dumps({"growth": peak - base, "estimate": estimate}))
'''


@pytest.mark.slow
@pytest.mark.parametrize("name,params,resize", [("gradients", {}, ""), ("hog", {}, "1600x1200"),
                                                ("sift", {"dense": True}, "")])
def test_budget_estimate_bounds_a_workers_whole_cost_for_one_input(tmp_path, name, params, resize):
    """Before decoding, the budget's estimate of one input (from the header) is above what
    the worker really adds to its peak RSS to read, decode, resize, extract and encode it."""
    import cv2

    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux /proc peak-RSS reset (clear_refs)")
    big = cv2.resize(cv2.imread(str(SAMPLES / "astronaut.png")), (2400, 2400), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "big.png"
    assert cv2.imwrite(str(path), big)
    r = subprocess.run([sys.executable, "-c", _WORKER, name, json.dumps(params), str(path), resize],
                       capture_output=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr.decode()
    m = json.loads(r.stdout.decode().splitlines()[-1])
    assert m["growth"] <= m["estimate"], m
    assert m["estimate"] <= 3 * m["growth"], m    # a bound, not a wild guess


def test_every_registered_extractor_declares_its_memory():
    from featx import registry

    for info in registry.discover():
        if not info.ok:
            continue
        ext = info.cls()
        bpp = ext.bytes_per_pixel()
        assert 0 <= bpp < 4096, (info.name, bpp)
        assert ext.working_memory(1500, 2000) >= 0
        assert ext.working_memory(3000, 4000) >= ext.working_memory(1500, 2000)


# ---------------------------------------------------------------------------
# 13. codebooks, config values and numbers: usage errors, before any work


@pytest.fixture(scope="module")
def good_codebook(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("cb")
    out = d / "cb.npz"
    r = featx("codebook", "sift", SAMPLES / "coffee.jpg", SAMPLES / "rocket.jpg", "-k", "8", "--gmm",
              "--resize", "256x192", "-o", out, "-q")
    assert r.returncode == 0, r.stderr.decode()
    return out


def _rewrite_npz(src: Path, dst: Path, **arrays) -> Path:
    with np.load(src, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    data.update(arrays)
    np.savez(dst, **data)
    return dst


def _forged_header_npz(src: Path, dst: Path, shape: tuple[int, ...]) -> Path:
    """A codebook whose ``centers`` header claims ``shape`` but holds a few bytes."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename == "centers.npy":
                header = "{'descr': '<f4', 'fortran_order': False, 'shape': %r, }" % (shape,)
                header = header.ljust(118) + "\n"
                data = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data[128:]
            zout.writestr(info.filename, data)
    return dst


def test_bad_codebooks_are_one_line_usage_errors_before_any_work(good_codebook, tmp_path):
    cb = good_codebook
    with np.load(cb) as z:
        centers, variances = z["centers"], z["gmm_variances"]
    nan_centres = centers.copy()
    nan_centres[3, 5] = np.nan
    inf_var = variances.copy()
    inf_var[0, 0] = np.inf
    cases = {
        "forged header (10^9 x 128)": (_forged_header_npz(cb, tmp_path / "huge.npz", (10**9, 128)),
                                       "1000000000 x 128 values"),
        "plain .npy": (tmp_path / "plain.npy", "is a plain .npy array, not a featx codebook"),
        "k = 0": (_rewrite_npz(cb, tmp_path / "k0.npz", centers=np.zeros((0, 128), np.float32)), "no words"),
        "NaN centres": (_rewrite_npz(cb, tmp_path / "nan.npz", centers=nan_centres), "not finite"),
        "inf variances": (_rewrite_npz(cb, tmp_path / "inf.npz", gmm_variances=inf_var), "not finite"),
        "random bytes": (tmp_path / "random.npz", "not a featx codebook (not an .npz archive)"),
        "random bytes in a zip": (tmp_path / "zipjunk.npz", "not a valid featx codebook"),
    }
    np.save(tmp_path / "plain.npy", centers)
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(1).bytes(4096))
    (tmp_path / "zipjunk.npz").write_bytes(b"PK\x03\x04" + np.random.default_rng(2).bytes(4096))
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    for what, (path, expected) in cases.items():
        for encode in ("vlad", "fisher"):
            out = tmp_path / f"{path.stem}-{encode}.npy"
            r = featx("extract", "sift", "a.jpg", "-o", out, "--encode", encode, "--codebook", path,
                      "--resize", "256x192", cwd=tmp_path)
            err = r.stderr.decode()
            assert r.returncode == 2, (what, encode, err)
            first = err.splitlines()[0]
            assert first.startswith(f"featx: error: {path}") and expected in first, (what, first)
            assert "Traceback" not in err and "allow_pickle" not in err and "pickle" not in err, (what, err)
            assert not out.exists(), what


def test_load_codebook_checks_headers_before_allocating(good_codebook, tmp_path, monkeypatch):
    """A forged header is refused from the header alone: np.load is never reached."""
    from featx.encoding import load_codebook
    from featx.errors import UsageError

    forged = _forged_header_npz(good_codebook, tmp_path / "huge.npz", (10**9, 128))
    monkeypatch.setattr(np, "load", lambda *a, **k: pytest.fail("np.load called on a forged codebook"))
    with pytest.raises(UsageError, match="1000000000 x 128 values"):
        load_codebook(forged)


@pytest.mark.parametrize("value,message", [
    ("3.5", "'3.5' is not a valid integer"),
    ("4.0", "'4.0' is not a valid integer"),
    ("true", "expected an integer, got a boolean"),
    ("[4, 4]", "expected a single value, got a list"),
    ("{ a = 1 }", "expected a value, got a table"),
    ('"many"', "'many' is not a valid integer"),
    ("1979-05-27", "got a date or time"),
])
def test_config_values_for_integer_options_are_usage_errors_naming_file_and_key(tmp_path, value, message):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    (tmp_path / "c.toml").write_text(f"[hog]\ncell-size = {value}\n")
    r = featx("extract", "hog", "a.jpg", "-o", tmp_path / "h.npy", "--resize", "64x64", "--config", "c.toml",
              cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err, err
    assert f"c.toml: cell-size = " in err and message in err, err
    assert not (tmp_path / "h.npy").exists()


def test_config_and_flags_validate_identically(tmp_path):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    base = ("extract", "gradients", "a.jpg", "-o", "-", "-q")
    # refused both ways
    for key, text in (("bins", "3.5"), ("bins", "0"), ("timeout", "nan"), ("timeout", "inf"), ("jobs", "-1")):
        (tmp_path / "c.toml").write_text(f"{key} = {text}\n")
        by_file = featx(*base, "--config", "c.toml", cwd=tmp_path)
        by_flag = featx(*base, f"--{key}", text, cwd=tmp_path)
        assert by_file.returncode == 2 and by_flag.returncode == 2, (key, text, by_file.stderr, by_flag.stderr)
    # accepted both ways, with the same numbers: an int for a float option, a pair as a list
    (tmp_path / "c.toml").write_text("timeout = 30\n[gradients]\ngrid = [2, 3]\nsigned = false\n")
    by_file = featx(*base, "--config", "c.toml", cwd=tmp_path)
    by_flag = featx(*base, "--timeout", "30", "--grid", "2x3", "--no-signed", cwd=tmp_path)
    assert by_file.returncode == 0 and by_flag.returncode == 0, by_file.stderr.decode()
    assert by_file.stdout == by_flag.stdout and b"cell1_2_bin7" in by_file.stdout
    (tmp_path / "c.toml").write_text("[gradients]\nsigned = 1\n")   # a flag takes true/false only
    r = featx(*base, "--config", "c.toml", cwd=tmp_path)
    assert r.returncode == 2 and "signed = 1: expected true or false" in r.stderr.decode()


@pytest.mark.parametrize("option,value", [("--timeout", "inf"), ("--timeout", "nan"), ("--timeout", "-inf"),
                                          ("--timeout", "1e308"),   # finite, but past what a lock wait takes
                                          ("--fps", "nan"), ("--commit-every", "inf"), ("--sigma", "nan")])
def test_non_finite_numbers_are_refused(tmp_path, option, value):
    shutil.copy(SAMPLES / "coffee.jpg", tmp_path / "a.jpg")
    r = featx("extract", "sift" if option == "--sigma" else "gradients", "a.jpg", "-o", tmp_path / "o.npy",
              option, value, cwd=tmp_path)
    err = r.stderr.decode()
    assert r.returncode == 2 and "Traceback" not in err and "OverflowError" not in err, err
    assert option in err and ("not a finite number" in err or "not in the range" in err), err
    assert not (tmp_path / "o.npy").exists()


def test_library_refuses_non_finite_parameters():
    from featx.errors import ParamError
    from featx.extractor import build_params
    from featx.extractors.sift import SIFT

    for v in (float("nan"), float("inf")):
        with pytest.raises(ParamError, match="--sigma: not a finite number"):
            build_params(SIFT, {"sigma": v})


# ---------------------------------------------------------------------------
# 14. native decoders stay quiet; reasons say what a file is


def _tiff(path: Path, pixels: np.ndarray) -> Path:
    """A valid uncompressed little-endian TIFF, RGB plus extra samples (ExtraSamples tag)."""
    h, w, c = pixels.shape
    data = np.ascontiguousarray(pixels, np.uint8).tobytes()
    bps = struct.pack(f"<{c}H", *([8] * c))
    bps_off, data_off = 8, 8 + len(bps)
    ifd_off = data_off + len(data)
    extra = c - 3
    entries = [
        (256, 4, 1, struct.pack("<I", w)), (257, 4, 1, struct.pack("<I", h)),
        (258, 3, c, struct.pack("<I", bps_off)), (259, 3, 1, struct.pack("<HH", 1, 0)),
        (262, 3, 1, struct.pack("<HH", 2, 0)), (273, 4, 1, struct.pack("<I", data_off)),
        (277, 3, 1, struct.pack("<HH", c, 0)), (278, 4, 1, struct.pack("<I", h)),
        (279, 4, 1, struct.pack("<I", len(data))), (284, 3, 1, struct.pack("<HH", 1, 0)),
        (338, 3, extra, struct.pack(f"<{extra}H", *([0] * extra)).ljust(4, b"\0")),
    ]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHI", t, ty, n) + v for t, ty, n, v in entries)
    path.write_bytes(b"II*\x00" + struct.pack("<I", ifd_off) + bps + data + ifd + b"\0\0\0\0")
    return path


def test_native_decoder_messages_never_reach_stderr_and_reasons_are_specific(tmp_path, sample):
    d = tmp_path / "bad"
    d.mkdir()
    png = (SAMPLES / "chelsea.png").read_bytes()
    damaged = bytearray(png)
    damaged[200] ^= 0xFF                                   # a CRC error in an ancillary chunk: decodes
    (d / "crc.png").write_bytes(bytes(damaged))
    (d / "trunc.png").write_bytes(png[: len(png) // 2])
    (d / "text.jpg").write_text("hello, this is a text file\n")
    (d / "trunc.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:20000])
    rgb = sample("coffee.jpg")[:64, :64]
    _tiff(d / "five.tiff", np.dstack([rgb, rgb[:, :, :2]]))   # RGB + 2 extra channels
    _tiff(d / "rgba.tiff", np.dstack([rgb, rgb[:, :, :1]]))   # the same writer, 4 channels: decodes
    for jobs in ("1", "2"):
        r = featx("extract", "gradients", d, "-o", "-", "-q", "-j", jobs)
        err = r.stderr.decode()
        assert r.returncode == 1
        stray = [ln for ln in err.splitlines() if not ln.startswith(("featx: ", "  hint: "))]
        assert stray == [], stray                          # no libpng lines, no [ERROR:0@...] dumps
        reasons = dict(ln[len("featx: error: "):].split(": ", 1) for ln in error_lines(r))
        assert set(reasons) == {f"{d}/five.tiff", f"{d}/text.jpg", f"{d}/trunc.jpg", f"{d}/trunc.png"}
        assert reasons[f"{d}/five.tiff"].startswith("cannot decode: unsupported TIFF image: 5 channels per pixel")
        assert reasons[f"{d}/text.jpg"] == "cannot decode: not an image: the file holds text, not JPEG data"
        assert reasons[f"{d}/trunc.jpg"].startswith("cannot decode: corrupt or truncated JPEG image")
        assert reasons[f"{d}/trunc.png"].startswith("cannot decode: corrupt or truncated PNG image (libpng")
        assert sorted(r.stdout.decode().splitlines()[1:])[0].startswith(f"{d}/crc.png,")
        assert len(r.stdout.decode().splitlines()) == 3     # header + crc.png + rgba.tiff


def test_decoding_in_process_keeps_file_descriptor_2_quiet(tmp_path, capfd):
    from featx import decode
    from featx.errors import InputError

    png = (SAMPLES / "chelsea.png").read_bytes()
    (tmp_path / "t.png").write_bytes(png[: len(png) // 2])
    with pytest.raises(InputError, match=r"corrupt or truncated PNG image \(libpng error: "):
        decode.decode_image(str(tmp_path / "t.png"))
    damaged = bytearray(png)
    damaged[200] ^= 0xFF
    (tmp_path / "w.png").write_bytes(bytes(damaged))
    assert decode.decode_image(str(tmp_path / "w.png")).shape == (300, 451, 3)
    print("still ours", file=sys.stderr)                   # the capture is undone afterwards
    captured = capfd.readouterr()
    assert captured.err == "still ours\n"
