"""The ``npy-dir`` output: one ``.npy`` (``.npz`` for keypoints) per item, in a
tree that mirrors the inputs (names from :mod:`featx.output.layout`)."""
from __future__ import annotations

import os
import stat
from typing import Any

import numpy as np

from ..errors import FeatxError, OutputError
from ..extractor import Keypoints
from . import layout
from .atomic import OutputWriteError, disk_error, file_size_under, is_disk_error, open_dir, remove_under, \
    write_under
from .sinkbase import Encoder, Sink



class NpyDirEncoder(Encoder):
    """Writes ``<root>/<mirror>.npy`` (``.npz`` for keypoints) atomically."""

    def __init__(self, root: str):
        self.root = root

    def target(self, mirror: str, value: Any) -> str:
        """``mirror`` is the item's relative path: the input's, plus ``/frame000012``
        for a video frame or ``.region-x-y-w-h`` for a region."""
        return os.path.join(self.root, layout.file_name(mirror, isinstance(value, Keypoints)))

    def encode(self, key, mirror, value):
        """Write the file under the output folder, never through a link inside it
        (:class:`~featx.output.atomic.LinkInOutput` fails that input alone); a full disk
        stops the run (:class:`~featx.output.atomic.OutputWriteError`)."""
        rel = os.path.relpath(self.target(mirror, value), self.root)

        def write(fh):
            if isinstance(value, Keypoints):
                np.savez(fh, keypoints=np.asarray(value.points, np.float32),
                         descriptors=np.asarray(value.descriptors, np.float32))
            else:  # np.save's own path writes with tofile, whose short writes lose errno (ENOSPC)
                from numpy.lib import format as npformat

                arr = np.ascontiguousarray(value, dtype=np.float32)
                npformat.write_array_header_1_0(fh, npformat.header_data_from_array_1_0(arr))
                fh.write(memoryview(arr).cast("B"))

        try:
            write_under(self.root, rel, write)
        except FileNotFoundError:
            if not os.path.isdir(self.root):
                raise OutputWriteError(f"the output folder {self.root} was removed during the run",
                                       "run the same command again to rebuild it") from None
            raise
        except OSError as exc:
            if is_disk_error(exc):
                raise disk_error(self.target(mirror, value), exc) from None
            raise
        return b""



class NpyDirSink(Sink):
    """One ``.npy`` (or ``.npz`` for keypoints) per input, mirroring the input tree."""

    format = "npy-dir"
    stacked = False

    def __init__(self, output, key_columns=("path",), overwrite=False):
        super().__init__(output.rstrip("/" + os.sep) or output, key_columns, overwrite)
        self.shape: tuple | None = None

    @property
    def state_path(self):
        return os.path.join(self.output, ".featx-state")

    def exists(self):
        return os.path.isdir(self.output) and any(not e.name.startswith(".") for e in os.scandir(self.output))

    def preflight(self):
        if os.path.exists(self.output) and not os.path.isdir(self.output):
            raise OutputError(f"{self.output} exists and is not a folder", "choose another -o")

    def prepare(self):
        self.preflight()
        os.makedirs(self.output, exist_ok=True)
        if self.overwrite:
            if os.path.isfile(self.state_path) and not os.path.islink(self.state_path):
                self._forget_all()  # featx's own files, as its state lists them; nothing else in the folder
            for p in (self.state_path, self.sidecar_path):
                if os.path.isfile(p):
                    os.unlink(p)
            return False
        if self.exists() and not self.has_state():
            raise OutputError(f"{self.output}/ already exists, is not empty and was not written by featx",
                              "pass --overwrite to write into it, or choose another -o")
        return self.has_state()

    def encoder(self):
        return NpyDirEncoder(self.output)

    def _forget_all(self) -> None:
        from .state import State

        try:
            st = State(self.state_path)
        except FeatxError:
            return
        try:
            self.forget_outputs([out for *_, out, _ in st.items()])
        finally:
            st.close()

    def discard(self):
        for e in os.scandir(self.output):
            if not e.name.startswith(".featx-state"):
                remove_under(self.output, e.name)

    def present(self, out, nrows, names=None, deep=False):
        """Are a committed input's ``nrows`` files still there (not removed, not emptied)?
        ``names``: their mirror paths when known (images, regions, sequences); else the
        files of the folder ``out`` (a video's or frame folder's frames) are counted, with
        ``deep`` those of its subfolders too (pooled rows: ``segment0002/window000003``)."""
        if nrows == 0:
            return True
        if names is None:
            if not out:
                return True
            try:
                fd = open_dir(self.output, out, create=False)
            except (OSError, FeatxError):
                return False
            found = 0
            try:
                for _, dirs, files, dfd in os.fwalk(".", dir_fd=fd):
                    if not deep:
                        dirs.clear()   # a video's frames: this folder's files alone
                    for f in files:
                        if f.endswith(layout.SUFFIXES):
                            try:
                                st = os.stat(f, dir_fd=dfd, follow_symlinks=False)
                            except OSError:
                                continue
                            found += bool(st.st_size) and stat.S_ISREG(st.st_mode)
            finally:
                os.close(fd)
            return found >= nrows
        found = 0
        for name in names:
            if any(file_size_under(self.output, name + suffix) for suffix in layout.SUFFIXES):
                found += 1
        return found >= nrows

    def forget_outputs(self, outs):
        """Remove every file an input wrote: ``OUT.npy``/``.npz``, its frame folder, and its
        region files ``OUT.region-X-Y-W-H.npy``."""
        for out in outs:
            if not out:
                continue
            for suffix in (*layout.SUFFIXES, ""):
                remove_under(self.output, out + suffix)
            folder, name = os.path.split(out)
            try:
                fd = open_dir(self.output, folder, create=False)
            except (OSError, FeatxError):
                continue
            try:
                regions = [n for n in os.listdir(fd) if n.startswith(name + layout.REGION_INFIX)]
            finally:
                os.close(fd)
            for n in regions:
                remove_under(self.output, os.path.join(folder, n))

    def open(self, state):
        self.rows = state.get("rows", 0) if state is not None else 0

    def append(self, key, data, shape):
        self.rows += 1
        if self.shape is None:
            self.shape = tuple(shape)
        elif self.shape != tuple(shape):
            self.shape = ()  # mixed shapes

    def info(self):
        return {"path": self.output, "format": "npy-dir", "files": self.rows,
                "shape": list(self.shape) if self.shape else None}


