"""Helpers for tests that run the real command line: in this process (:func:`featx`, the
default) or in a fresh interpreter (:func:`featx_subprocess`, where the process boundary is
the point)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def featx_subprocess(*args, cwd=None, stdin: bytes | None = None, env=None, timeout=120) -> subprocess.CompletedProcess:
    """Run ``python -m featx ARGS`` in a fresh interpreter; returns the completed process
    (bytes stdout/stderr).  For tests where the process boundary is the point: signals and
    kill -9, a child's exit, native libraries' stderr, plugins found through a fresh
    interpreter's entry points (``env`` with ``PYTHONPATH``), environment variables the
    ``-j N`` workers must see, stdin/stdout whose file descriptor matters, a hang that
    ``timeout`` must end.  Everything else uses :func:`featx` (in this process, ~1 s less
    per call)."""
    e = dict(os.environ)
    e.pop("FEATX_CACHE_DIR", None)
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "featx", *map(str, args)], cwd=cwd, input=stdin,
                          capture_output=True, env=e, timeout=timeout)


_FORKSERVER_STARTED = False


def _start_forkserver() -> None:
    """The forkserver that in-process ``-j N`` pools fork their workers from: started once,
    from this process's own environment (not a test's ``env``), with featx's worker and its
    libraries already imported so that each worker starts in milliseconds."""
    global _FORKSERVER_STARTED
    if _FORKSERVER_STARTED:
        return
    import multiprocessing as mp
    from multiprocessing import forkserver

    mp.set_forkserver_preload(["numpy", "cv2", "featx.engine.worker"])
    e = dict(os.environ)
    try:
        os.environ.pop("FEATX_CACHE_DIR", None)
        forkserver.ensure_running()
    finally:
        os.environ.clear()
        os.environ.update(e)
    _FORKSERVER_STARTED = True


def featx(*args, cwd=None, stdin: bytes | None = None, env=None) -> subprocess.CompletedProcess:
    """``featx ARGS`` through :func:`featx.cli.main` (the console entry point) in this
    process: the same code path as :func:`featx_subprocess` without a Python start-up per
    call.  The default for CLI tests; the process boundary is :func:`featx_subprocess`'s.

    As in a fresh process: stdout/stderr are captured as bytes; ``stdin`` is the bytes
    read from standard input; an exception that escapes ``main`` is printed as a
    traceback with exit code 1.  Worker pools (``-j 2``) start by forkserver: this process
    has run OpenCV's threads, so forking it could deadlock; with ``env``, by spawn, so
    that the workers see it (a recipe's own ``jobs`` is not looked at: give ``-j``).
    A plugin (``env`` with ``PYTHONPATH``) is found only by a fresh interpreter: such a call
    runs :func:`featx_subprocess` (say so in the test: call that one).

    stdin, the environment, the working directory and the process-wide settings that
    ``main`` and ``-j 1`` change (log handlers and level, SIGTERM and SIGINT handlers, OpenCV threads)
    are put back afterwards, so that tests stay independent of order.  (Decode threads and
    whether a pool may fork are passed down through the run, not set in module globals.)
    """
    import contextlib
    import io
    import logging
    import signal
    import traceback

    import cv2

    from featx import cli

    env = dict(env or {})
    if "PYTHONPATH" in env:  # a plugin: only a fresh interpreter finds it through its entry points
        return featx_subprocess(*args, cwd=cwd, stdin=stdin, env=env)
    _start_forkserver()
    log = logging.getLogger("featx")
    saved = (list(log.handlers), log.level, signal.getsignal(signal.SIGTERM), cv2.getNumThreads(),
             os.getcwd(), dict(os.environ), sys.stdin, signal.getsignal(signal.SIGINT))
    out, err = io.BytesIO(), io.BytesIO()
    out_t = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err_t = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    code = 0
    try:
        os.environ.pop("FEATX_CACHE_DIR", None)
        # the forkserver's workers have the environment it started with: a test's env
        # reaches -j N workers only through spawn (a fresh interpreter each)
        os.environ["FEATX_START_METHOD"] = "spawn" if env and _pool_size(args) > 1 else "forkserver"
        os.environ.update(env)
        sys.stdin = io.TextIOWrapper(io.BytesIO(stdin or b""), encoding="utf-8")
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out_t), contextlib.redirect_stderr(err_t):
            try:
                cli.main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except Exception:  # what the interpreter does with an uncaught exception
                traceback.print_exc()
                code = 1
            finally:
                if sys.stdout is not None:
                    sys.stdout.flush()
    finally:
        log.handlers[:] = saved[0]
        log.setLevel(saved[1])
        signal.signal(signal.SIGTERM, saved[2])
        signal.signal(signal.SIGINT, saved[7])
        cv2.setNumThreads(saved[3])
        os.chdir(saved[4])
        os.environ.clear()
        os.environ.update(saved[5])
        sys.stdin = saved[6]
    return subprocess.CompletedProcess(["featx", *map(str, args)], code, out.getvalue(), err.getvalue())


#: the former name of :func:`featx` (in this process)
featx_inprocess = featx


def _pool_size(args) -> int:
    """The ``-j`` of a command line (1 when not given)."""
    args = [str(a) for a in args]
    for i, a in enumerate(args):
        v = None
        if a in ("-j", "--jobs") and i + 1 < len(args):
            v = args[i + 1]
        elif a.startswith("--jobs="):
            v = a.split("=", 1)[1]
        elif a.startswith("-j") and len(a) > 2 and a[2:].isdigit():
            v = a[2:]
        if v is not None:
            return int(v) if v.isdigit() and int(v) >= 1 else 2
    return 1


def photo_crops(root: Path, n: int, size: tuple[int, int] = (160, 120)) -> Path:
    """n distinct real images in ``root``: crops (``size`` = width, height) of the sample
    photos, as PNG so rewriting one is exact; ``img000.png``, ``img001.png``..."""
    import cv2

    root.mkdir(parents=True, exist_ok=True)
    photos = [cv2.imread(str(SAMPLES / s)) for s in ("astronaut.png", "coffee.jpg", "rocket.jpg", "chelsea.png")]
    w, h = size
    for i in range(n):
        p = photos[i % 4]
        y, x = (i * 7) % 60, (i * 13) % 80
        cv2.imwrite(str(root / f"img{i:03d}.png"), p[y:y + h, x:x + w])
    return root


def camera_jpeg(path: Path, sample: str, size: tuple[int, int] = (4000, 3000), noise: float = 6.0,
                seed: int = 0, orientation: int = 1, quality: int = 90) -> Path:
    """A camera-like JPEG made from a sample photo: upscaled (cubic) to ``size`` = (width,
    height) of the upright picture, Gaussian sensor-like noise of sigma ``noise``, quality
    ``quality``.  ``orientation`` 6 stores the pixels turned a quarter anticlockwise with
    EXIF orientation 6, so that a decoder that applies EXIF shows the upright picture again
    (written by Pillow); 1 writes no EXIF (OpenCV)."""
    import cv2

    img = cv2.imread(str(SAMPLES / sample), cv2.IMREAD_COLOR)
    big = cv2.resize(img, size, interpolation=cv2.INTER_CUBIC).astype(np.float32)
    big += np.random.default_rng(seed).normal(0.0, noise, big.shape).astype(np.float32)
    big = np.clip(big, 0, 255).astype(np.uint8)
    if orientation == 1:
        assert cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return path
    assert orientation == 6
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = 6
    stored = np.ascontiguousarray(np.rot90(cv2.cvtColor(big, cv2.COLOR_BGR2RGB), 1))
    Image.fromarray(stored).save(path, "JPEG", quality=quality, exif=exif.tobytes())
    return path


def place(shared: Path, dst: Path) -> Path:
    """``dst`` as a hard link to a shared, read-only test file (a session fixture's
    photo): no copy of its bytes; a copy where the file system has no links."""
    import shutil

    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(shared, dst)
    except OSError:
        shutil.copyfile(shared, dst)
    return dst


def copy_samples(folder: Path, names: dict[str, str]) -> Path:
    """Copies of sample photos: ``names`` maps a target name to a sample's name."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    for dst, src in names.items():
        shutil.copyfile(SAMPLES / src, folder / dst)
    return folder


def ok(r: subprocess.CompletedProcess, codes=(0,)) -> subprocess.CompletedProcess:
    """``r`` ended with one of ``codes`` (else the assertion shows its stderr's tail)."""
    assert r.returncode in codes, (r.returncode, r.stderr.decode(errors="replace")[-2000:])
    return r


def csv_dicts(path: Path) -> list[dict]:
    """The records of a CSV file with a header line, as dicts (text values)."""
    import csv

    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def write_rgb(path: Path, rgb: np.ndarray, **params) -> Path:
    """Write an RGB (or gray) uint8/uint16 array with OpenCV."""
    import cv2

    arr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    flags = []
    for k, v in params.items():
        flags += [getattr(cv2, k), v]
    assert cv2.imwrite(str(path), arr, flags)
    return path


PLUGIN = '''
import os, time
import numpy as np
from dataclasses import dataclass
from featx.extractor import Extractor, OutputSpec, param

@dataclass(frozen=True)
class P:
    scale: float = param(1.0, "Scale.", min=0)

class Trouble(Extractor):
    """Hangs on images 33 pixels wide, kills its process on 34; mean brightness otherwise."""
    name = "trouble"
    summary = "A test extractor that misbehaves on purpose"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (1,))
    def extract(self, image):
        if image.shape[1] == 33:
            time.sleep(600)
        if image.shape[1] == 34:
            os.kill(os.getpid(), 9)
        return np.array([image.mean() * self.params.scale], np.float32)


class Slow(Extractor):
    """8x8 grid of mean intensities, after a pause (20 ms, or $SLOW_MS: makes runs long enough to kill)."""
    name = "slow"
    summary = "A test extractor that takes its time"
    Params = P
    def output_spec(self, h, w):
        return OutputSpec("vector", (64,))
    def extract(self, image):
        import cv2
        time.sleep(float(os.environ.get("SLOW_MS", "20")) / 1000)  # (the values never depend on it)
        if os.environ.get("SLOW_PROGRESS"):  # one byte per image done, for tests that act mid-run
            with open(os.environ["SLOW_PROGRESS"], "ab") as fh:
                fh.write(b".")
            if os.environ.get("SLOW_GATE"):  # "N:PATH": after N images, hold until PATH exists
                n, gate = os.environ["SLOW_GATE"].split(":", 1)
                while os.path.getsize(os.environ["SLOW_PROGRESS"]) >= int(n) and not os.path.exists(gate):
                    time.sleep(0.005)
        g = image.mean(axis=2) if image.ndim == 3 else image
        return cv2.resize(g.astype(np.float32), (8, 8), interpolation=cv2.INTER_AREA).ravel() * self.params.scale
'''


def fake_plugin(root: Path, dist: str, extractors: dict[str, str], modules: dict[str, str] | None = None) -> dict:
    """An installed-looking plugin under ``root``: a ``DIST-1.0.dist-info`` registering
    ``extractors`` (name -> "module:Class") as featx entry points, plus ``modules``
    (relative path -> source).  Returns the environment that makes Python see it."""
    info = root / f"{dist}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[featx.extractors]\n" + "".join(f"{k} = {v}\n" for k, v in extractors.items()))
    for rel, src in (modules or {}).items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(src)
    return {"PYTHONPATH": str(root) + os.pathsep + os.environ.get("PYTHONPATH", "")}


def plugin_env(tmp_path: Path) -> dict:
    """PYTHONPATH with a test plugin package registering `trouble` and `slow`."""
    return fake_plugin(tmp_path / "plug", "trouble", {"trouble": "trouble_ext:Trouble", "slow": "trouble_ext:Slow"},
                       {"trouble_ext.py": PLUGIN})


def output_files(out: Path) -> dict[str, bytes]:
    """What a reader sees of an output, to compare two outputs byte for byte: a ``.npy``
    with its index, a ``.csv``, or an npy-dir's files (not its state file inside, which
    says when, not what)."""
    if out.is_dir():
        return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
                if p.is_file() and not p.name.startswith(".featx-")}
    got = {out.name: out.read_bytes()}
    if out.suffix == ".npy":
        idx = out.with_name(out.stem + ".index.csv")
        got[idx.name] = idx.read_bytes()
    return got
