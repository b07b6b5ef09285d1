"""How to decode: one image file into pixels (worker side).

Files are opened as regular files only (a FIFO or a device is refused before
it is read); formats are told by their signatures; the header (PNG, JPEG and
TIFF parsed here, others through Pillow) is checked against ``--max-pixels``
and the memory budget before any pixel is decoded; JPEGs are decoded upright
(EXIF orientation) and, when the extractor needs fewer pixels, at a reduced
DCT scale; what native decoders print on stderr is folded into the reason an
input fails.

What the extractor sees (documented in docs/inputs.md):

* 8-bit images arrive as ``uint8``, 16-bit PNG/TIFF as ``uint16``;
* grayscale files as ``(H, W)``, colour files as ``(H, W, 3)`` in RGB order;
* an alpha channel is dropped: the colour channels are used as stored;
* JPEGs with an EXIF orientation tag are rotated upright first.
"""
from __future__ import annotations

import os
import stat
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import InputError
from .memory import MemoryBudget


def os_reason(exc: OSError) -> str:
    """A short reason for an ``OSError`` met while listing or reading an input."""
    import errno

    if isinstance(exc, FileNotFoundError):
        return "no such file (missing or vanished)"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (too many levels of links)"
    return exc.strerror or str(exc)


def special_kind(mode: int) -> str | None:
    """``"a FIFO (named pipe)"``, ``"a socket"``... for a file mode that is neither a
    regular file nor a folder; None for those two."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return None
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "a special file"


_DECODE_FLAGS = None

#: While OpenCV decodes, what native decoders (libpng, libjpeg, libtiff) print
#: straight to file descriptor 2 is caught and folded into the failure reason
#: instead of reaching the terminal.  A library user whose other threads write
#: to fd 2 during decoding may turn this off.
CAPTURE_NATIVE_STDERR = True

# Signatures of the formats OpenCV decodes: (name, test on the first bytes).
_SIGNATURES: tuple[tuple[str, Any], ...] = (
    ("JPEG", lambda h: h.startswith(b"\xff\xd8\xff")),
    ("PNG", lambda h: h.startswith(b"\x89PNG\r\n\x1a\n")),
    ("TIFF", lambda h: h[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")),
    ("BMP", lambda h: h.startswith(b"BM")),
    ("JPEG 2000", lambda h: h.startswith((b"\x00\x00\x00\x0cjP  ", b"\xff\x4f\xff\x51"))),
    ("OpenEXR", lambda h: h.startswith(b"\x76\x2f\x31\x01")),
    ("WebP", lambda h: h[:4] == b"RIFF" and h[8:12] == b"WEBP"),
    ("PNM", lambda h: len(h) >= 3 and h[0:1] == b"P" and h[1:2] in b"1234567" and h[2:3] in b" \t\r\n"),
    ("Radiance HDR", lambda h: h.startswith((b"#?RADIANCE", b"#?RGBE"))),
    ("Sun raster", lambda h: h.startswith(b"\x59\xa6\x6a\x95")),
)

#: The format a file's extension promises.
_FORMAT_OF_EXT = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".jfif": "JPEG", ".png": "PNG", ".tif": "TIFF",
    ".tiff": "TIFF", ".bmp": "BMP", ".dib": "BMP", ".webp": "WebP", ".pbm": "PNM", ".pgm": "PNM",
    ".ppm": "PNM", ".pnm": "PNM", ".pxm": "PNM", ".jp2": "JPEG 2000", ".exr": "OpenEXR",
    ".hdr": "Radiance HDR", ".pic": "Radiance HDR", ".sr": "Sun raster", ".ras": "Sun raster",
}


def content_format(head: bytes) -> str | None:
    """The image format whose signature starts ``head`` (``"PNG"``...), else None."""
    for name, test in _SIGNATURES:
        if test(head):
            return name
    return None


def sniff_bytes(head: bytes) -> bool:
    return content_format(head) is not None


def sniff_image(path: str) -> bool:
    """True if a regular file starts with the signature of an image format (opened
    non-blocking: a FIFO put in its place is never waited on)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                     | getattr(os, "O_BINARY", 0))
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = os.read(fd, 16)
    except OSError:
        return False
    finally:
        os.close(fd)
    return sniff_bytes(head)


def read_regular_file(path: str, memory: MemoryBudget | None = None) -> np.ndarray:
    """The bytes of ``path`` as a uint8 array, if it is a regular file.

    Anything else is refused with a one-line reason, without reading it: a
    FIFO would block the run forever, a device (``/dev/urandom``) never ends.
    The file is opened non-blocking and checked again once open (it may have
    been replaced in between).
    """
    fd = open_regular_file(path, memory)
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def open_regular_file(path: str, memory: MemoryBudget | None = None) -> int:
    """A file descriptor open on ``path`` (read-only, non-blocking, close-on-exec), if it
    is a regular file; the caller closes it.  Refusals as :func:`read_regular_file`."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError("broken symbolic link (its target does not exist)" if os.path.islink(path)
                         else "no such file (missing or vanished)") from None
    except OSError as exc:
        raise InputError(os_reason(exc)) from None
    _check_regular(st)
    if memory is not None:
        memory.check_file_size(st.st_size)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise InputError(os_reason(exc) if isinstance(exc, (FileNotFoundError, PermissionError))
                         else f"cannot read: {os_reason(exc)}") from None
    try:
        _check_regular(os.fstat(fd))
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_fd(fd: int, count: int | None = None) -> np.ndarray:
    """The first ``count`` bytes (default: all) of the open regular file ``fd``."""
    import io

    try:
        size = os.fstat(fd).st_size
        size = size if count is None else min(size, count)
        data = np.empty(size, np.uint8)
        view = memoryview(data)
        n = 0
        os.lseek(fd, 0, os.SEEK_SET)
        with io.FileIO(fd, "rb", closefd=False) as fh:
            while n < size:
                got = fh.readinto(view[n:])
                if not got:
                    break
                n += got
    except OSError as exc:
        raise InputError(f"cannot read: {os_reason(exc)}") from None
    if n == 0:
        raise InputError("empty file (0 bytes)")
    return data[:n]


def _check_regular(st: os.stat_result) -> None:
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory")
    kind = special_kind(st.st_mode)
    if kind is not None:
        raise InputError(f"not a regular file ({kind}): only regular files are read")
    if st.st_size == 0:
        raise InputError("empty file (0 bytes)")


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says, read without decoding any pixel."""

    format: str
    width: int
    height: int
    channels: int       # samples per pixel as stored (a palette counts as 3)
    sample_bytes: int   # bytes per sample once decoded (1 for 8-bit, 2 for 16-bit)
    progressive: bool = False   # a progressive JPEG (its decoder holds every DCT coefficient)
    sof: int = 0                # a JPEG's start-of-frame marker (0xC0 baseline, 0xC1 extended...)


def read_header(data: np.ndarray) -> ImageHeader | None:
    """The header of an encoded image: PNG, JPEG and TIFF parsed here, other
    formats through Pillow (which reads only the header); None if unknown."""
    head = data[:65536].tobytes()
    fmt = content_format(head[:16])
    try:
        if fmt == "PNG":
            return _png_header(head)
        if fmt == "JPEG":
            return _jpeg_header(head)
        if fmt == "TIFF":
            return _tiff_header(data)
    except (IndexError, ValueError):
        return None
    return _pillow_header(head)


def _png_header(b: bytes) -> ImageHeader | None:
    if len(b) < 26 or b[12:16] != b"IHDR":
        return None
    depth, colour = b[24], b[25]
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(colour, 4)
    return ImageHeader("PNG", int.from_bytes(b[16:20], "big"), int.from_bytes(b[20:24], "big"),
                       channels, 2 if depth > 8 else 1)


def _jpeg_header(b: bytes) -> ImageHeader | None:
    i = 2
    while i + 9 < len(b):
        if b[i] != 0xFF:
            i += 1
            continue
        marker = b[i + 1]
        if marker in (0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF):
            precision = b[i + 4]
            h = int.from_bytes(b[i + 5:i + 7], "big")
            w = int.from_bytes(b[i + 7:i + 9], "big")
            return ImageHeader("JPEG", w, h, max(1, b[i + 9]), 2 if precision > 8 else 1,
                               progressive=marker in (0xC2, 0xC6, 0xCA, 0xCE), sof=marker)
        if marker in (0xD8, 0x01, 0xFF) or 0xD0 <= marker <= 0xD7:
            i += 1 if marker == 0xFF else 2
            continue
        i += 2 + int.from_bytes(b[i + 2:i + 4], "big")
    return None


def _tiff_header(data: np.ndarray) -> ImageHeader | None:
    """Width, height, samples and bits per sample from the first IFD (TIFF or BigTIFF)."""
    import struct

    def read(off: int, n: int) -> bytes:
        if off < 0 or off + n > data.size:
            raise ValueError("outside the file")
        return data[off:off + n].tobytes()

    e = "<" if read(0, 2) == b"II" else ">"
    big = struct.unpack(e + "H", read(2, 2))[0] == 43
    if big:
        ifd = struct.unpack(e + "Q", read(8, 8))[0]
        count, entry, head, inline = struct.unpack(e + "Q", read(ifd, 8))[0], 20, 8, 8
    else:
        ifd = struct.unpack(e + "I", read(4, 4))[0]
        count, entry, head, inline = struct.unpack(e + "H", read(ifd, 2))[0], 12, 2, 4
    sizes = {1: "B", 3: "H", 4: "I", 16: "Q"}
    tags: dict[int, int] = {}
    for k in range(min(count, 4096)):
        raw = read(ifd + head + k * entry, entry)
        tag, typ = struct.unpack(e + "HH", raw[:4])
        if tag not in (256, 257, 258, 277) or typ not in sizes:
            continue
        n = struct.unpack(e + ("Q" if big else "I"), raw[4:4 + (8 if big else 4)])[0]
        fmt = sizes[typ]
        field = raw[4 + (8 if big else 4):]
        if n * struct.calcsize(fmt) > inline:  # stored elsewhere: its offset is in the field
            field = read(struct.unpack(e + ("Q" if big else "I"), field)[0], struct.calcsize(fmt))
        tags[tag] = struct.unpack(e + fmt, field[:struct.calcsize(fmt)])[0]
    if 256 not in tags or 257 not in tags:
        return None
    bits = tags.get(258, 8)
    return ImageHeader("TIFF", tags[256], tags[257], tags.get(277, 1), max(1, (bits + 7) // 8))


def _pillow_header(head: bytes) -> ImageHeader | None:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with scikit-image
        return None
    import io
    import warnings

    saved = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # featx applies its own limits to the size read here
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(head)) as im:  # parses the header; no pixel is decoded
                (w, h), mode, bands, fmt = im.size, im.mode, len(im.getbands()), im.format or "?"
    except Exception:  # noqa: BLE001 - any failure means "header unknown"
        return None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    sample = 2 if mode.startswith("I;16") else 4 if mode in ("I", "F") else 1
    return ImageHeader(fmt, w, h, bands, sample)


class _NativeStderr:
    """Redirect file descriptor 2 into a per-process temporary file for a moment.

    Native decoders print their complaints (``libpng error: IDAT: CRC error``)
    with ``fprintf(stderr, ...)``, which Python cannot intercept; featx reports
    the input itself, with that text folded into the reason.  Costs a few
    system calls per image.
    """

    _file: Any = None
    _pid: int | None = None

    def __enter__(self) -> _NativeStderr:
        self.saved, self.text = None, ""
        if not CAPTURE_NATIVE_STDERR:
            return self
        try:
            cls = type(self)
            if cls._pid != os.getpid():  # a forked child must not share its parent's file offset
                import tempfile

                cls._file, cls._pid = tempfile.TemporaryFile(prefix="featx-stderr-"), os.getpid()
            try:
                sys.stderr.flush()
            except (AttributeError, ValueError, OSError):
                pass
            self.saved = os.dup(2)
            os.dup2(cls._file.fileno(), 2)
        except OSError:
            if self.saved is not None:
                os.close(self.saved)
            self.saved = None
        return self

    def peek(self) -> str:
        """What has been written so far (inside the block)."""
        if self.saved is None:
            return ""
        fd = type(self)._file.fileno()
        return os.pread(fd, 8192, 0).decode("utf-8", "replace")

    def __exit__(self, *exc: Any) -> None:
        if self.saved is None:
            return
        fd = type(self)._file.fileno()
        os.dup2(self.saved, 2)
        os.close(self.saved)
        size = os.lseek(fd, 0, os.SEEK_END)
        if size:
            os.lseek(fd, 0, os.SEEK_SET)
            self.text = os.read(fd, min(size, 8192)).decode("utf-8", "replace")
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)


#: What libjpeg prints when the compressed data is damaged (its "corrupt data" warnings): it
#: then goes on and fills what it could not decode (grey, or smeared blocks) and the decode
#: "succeeds".  featx fails such an input (see :func:`corrupt_data`).  Not in the list: warnings
#: about metadata only ("bad ICC marker", "Invalid SOS parameters for sequential JPEG").
_JPEG_CORRUPT = ("Corrupt JPEG data", "Premature end of JPEG file", "Inconsistent progression sequence")
_JPEG_BENIGN = ("bad ICC marker",)
#: ... and libpng: a CRC or zlib error in the image data (IDAT) is an error, which fails the
#: decode by itself; should a picture come back all the same, it fails here.  A CRC error in an
#: ancillary chunk (text, colour profile) is a warning: libpng drops that chunk, the pixels are
#: whole, and the picture is kept.
_PNG_CORRUPT = ("libpng error",)


def corrupt_data(fmt: str | None, text: str) -> str:
    """The native decoder's line saying that the data it decoded is damaged, or ``""``.

    ``fmt`` is the file's format (:func:`content_format`), ``text`` what the decoder printed
    on stderr while decoding.  libjpeg warns, goes on and returns an image with a grey or
    smeared area; featx reports such an input as failed unless decoding is lenient
    (``decode_image(..., lenient=True)``).  Note that libjpeg (as OpenCV sets it up) prints
    only the first warning of an image."""
    if not text:
        return ""
    if fmt == "JPEG":
        marks, benign = _JPEG_CORRUPT, _JPEG_BENIGN
    elif fmt == "PNG":
        marks, benign = _PNG_CORRUPT, ()
    else:
        return ""
    for line in text.splitlines():
        line = line.strip()
        if any(m in line for m in marks) and not any(b in line for b in benign):
            return line if len(line) <= 160 else line[:157] + "..."
    return ""


def native_message(text: str) -> str:
    """The line worth showing from a native library's output (errors first), or ``""``."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith(("[", ">"))]
    errors = [ln for ln in lines if "error" in ln.lower()]
    pick = (errors or lines or [""])[0]
    return pick if len(pick) <= 160 else pick[:157] + "..."


def _looks_like_text(head: bytes) -> bool:
    if not head or b"\0" in head:
        return False
    for cut in range(4):  # the head may end inside a UTF-8 sequence
        try:
            text = head[:len(head) - cut].decode("utf-8")
        except UnicodeDecodeError:
            continue
        if not text:  # a 1-3 byte stub that is no UTF-8 at all (b"\xff\xd8"): not text
            return False
        return sum(c.isprintable() or c in "\t\r\n\f" for c in text) >= 0.95 * len(text)
    return False


def _undecodable(path: str, data: np.ndarray, header: ImageHeader | None, native: str) -> str:
    """Why OpenCV could not decode ``data``: unsupported, corrupt, or not an image at all."""
    head = data[:512].tobytes()
    fmt = content_format(head[:16])
    ext = os.path.splitext(path)[1].lower()
    promised = _FORMAT_OF_EXT.get(ext)
    details = []
    if header is not None and header.channels > 4:
        what = (f"unsupported {header.format} image: {header.channels} channels per pixel "
                "(featx reads 1 to 4: gray, gray+alpha, RGB, RGBA)")
    elif fmt is not None:
        what = f"corrupt or truncated {fmt} image"
        if promised is not None and promised != fmt:
            details.append(f"named {ext} but the content is {fmt}")
    elif promised is not None:
        what = (f"not an image: the file holds text, not {promised} data" if _looks_like_text(head)
                else f"not an image: the content is not {promised} (unrecognised format)")
    elif _looks_like_text(head):
        what = "not an image: the file holds text"
    else:
        what = "not an image (unrecognised format)"
    if native:
        details.append(native)
    return f"cannot decode: {what}" + (f" ({'; '.join(details)})" if details else "")


def _cv2():
    import cv2

    global _DECODE_FLAGS
    if _DECODE_FLAGS is None:
        try:  # OpenCV's own log lines ([ERROR:0@...]) never reach stderr: featx reports inputs itself
            cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
        except AttributeError:  # pragma: no cover - very old OpenCV
            pass
        _DECODE_FLAGS = cv2.IMREAD_ANYDEPTH | cv2.IMREAD_ANYCOLOR  # EXIF orientation applied
    return cv2


#: libjpeg's DCT-domain reductions, largest first: (k, the OpenCV flag bit that decodes at 1/k,
#: ``IMREAD_REDUCED_GRAYSCALE_k``; with ``IMREAD_ANYCOLOR`` colour stays colour).
_REDUCTIONS = ((8, 64), (4, 32), (2, 16))


def jpeg_orientation(head: bytes, strict: bool = False) -> int | None:
    """The EXIF orientation (1-8) of a JPEG from its first bytes: 1 when it has none (or
    a value outside 1-8, which decoders ignore), None when it cannot be told (the EXIF
    segment is cut off or malformed).  ``strict``: None also for an orientation tag
    that is not a SHORT (read as 1 otherwise), where another reader might differ."""
    import struct

    i = 2
    while i + 4 <= len(head):
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xDA, 0xD9):  # image data (or the end) before any EXIF: none
            return 1
        length = int.from_bytes(head[i + 2:i + 4], "big")
        if marker == 0xE1 and head[i + 4:i + 10] == b"Exif\0\0":
            if i + 2 + length > len(head):
                return None
            tiff = head[i + 10:i + 2 + length]
            try:
                e = {b"II": "<", b"MM": ">"}[tiff[:2]]
                ifd = struct.unpack(e + "I", tiff[4:8])[0]
                (count,) = struct.unpack(e + "H", tiff[ifd:ifd + 2])
                for k in range(count):
                    tag, typ, _, value = struct.unpack(e + "HHI4s", tiff[ifd + 2 + 12 * k:ifd + 14 + 12 * k])
                    if tag == 0x0112:
                        if strict and typ != 3:
                            return None
                        v = struct.unpack(e + "H", value[:2])[0] if typ == 3 else 1
                        return v if 1 <= v <= 8 else 1
            except (KeyError, struct.error, IndexError):
                return None
            return 1
        i += 2 + length
    return None


def jpeg_reduction(width: int, height: int, min_size: tuple[int, int], orientation: int | None = 1) -> int:
    """The largest DCT reduction ``k`` (8, 4 or 2; 1: none) at which a ``width`` x
    ``height`` JPEG (as stored) still decodes to at least ``min_size`` = (width, height)
    pixels on each axis of the upright image.

    libjpeg decodes at 1/k to ``ceil(width / k)`` x ``ceil(height / k)``; EXIF
    orientations 5-8 swap the axes.  ``orientation`` None (unknown): ``k`` must do for
    both ways round.
    """
    need_w, need_h = int(min_size[0]), int(min_size[1])
    swaps = (False, True) if orientation is None else (orientation in (5, 6, 7, 8),)
    for k, _ in _REDUCTIONS:
        rw, rh = -(-width // k), -(-height // k)
        if all((rh if swap else rw) >= need_w and (rw if swap else rh) >= need_h for swap in swaps):
            return k
    return 1


def _bgr_to_rgb_in_place(img: np.ndarray) -> np.ndarray:
    """BGR to RGB in the array itself, a band of rows (about 1 MB) at a time.

    ``cvtColor(img, dst=img)`` on the whole image copies all of it first (a second
    photo in memory: 144 MB more for 48 MP); band by band only a band is copied, and
    it is faster too (5.7 against 12.8 ms for 12 MP, the cache holds the band)."""
    import cv2

    rows = max(1, (1 << 20) // max(1, img.strides[0]))
    for y in range(0, img.shape[0], rows):
        band = img[y:y + rows]
        cv2.cvtColor(band, cv2.COLOR_BGR2RGB, dst=band)
    return img


#: The optional JPEG decoder (``pip install 'featx[fast-jpeg]'``: simplejpeg, libjpeg-turbo's
#: TurboJPEG API in a wheel).  Where it is installed, an 8-bit sequential Huffman-coded
#: (baseline or extended: SOF0, SOF1) colour JPEG -- what cameras write -- is decoded by it:
#: the same libjpeg-turbo algorithms as OpenCV's, identical pixels, about 1.1-1.2x faster
#: (benchmarks/bench_decode.py).  Where it was measured no faster (progressive, grayscale),
#: where featx must match OpenCV's own handling (CMYK, 12-bit, arithmetic coding, lossless,
#: an EXIF orientation featx cannot read for certain), and for anything it refuses or warns
#: about (damaged data, a bad ICC marker, a truncated file), OpenCV decodes as before, so
#: what featx reports and returns does not change.  ``FEATX_FAST_JPEG=0`` in the
#: environment, or this set to False, always decodes with OpenCV.
FAST_JPEG = os.environ.get("FEATX_FAST_JPEG", "1").strip().lower() not in ("0", "false", "no", "off")
_SIMPLEJPEG: Any = None     # the module once imported; False: not installed


def fast_jpeg_decoder() -> Any:
    """The simplejpeg module if it is installed and :data:`FAST_JPEG` is on, else None."""
    global _SIMPLEJPEG
    if not FAST_JPEG:
        return None
    if _SIMPLEJPEG is None:
        try:
            import simplejpeg

            _SIMPLEJPEG = simplejpeg if hasattr(simplejpeg, "decode_jpeg") else False
        except ImportError:
            _SIMPLEJPEG = False
    return _SIMPLEJPEG or None


def _exif_transform(img: np.ndarray, orientation: int) -> np.ndarray:
    """``img`` turned upright as OpenCV turns a JPEG with this EXIF orientation (2-8)."""
    import cv2

    if orientation in (5, 6, 7, 8):
        img = cv2.transpose(img)
    flip = {2: 1, 3: -1, 4: 0, 6: 1, 7: -1, 8: 0}.get(orientation)
    return img if flip is None else cv2.flip(img, flip)


def _fast_jpeg(sj: Any, data: np.ndarray, header: ImageHeader, scale: int, orientation: int) -> np.ndarray | None:
    """The colour JPEG ``data`` decoded by simplejpeg at 1/``scale``, upright and in RGB, or
    None whenever OpenCV should decode it instead.  simplejpeg is strict: a warning of
    libjpeg (damaged data, a premature end, a bad ICC marker) raises, and OpenCV then decodes
    the file as featx always did (its stderr read, the input refused or kept as before)."""
    w, h = -(-header.width // scale), -(-header.height // scale)
    dst = np.empty((h, w, 3), np.uint8)   # decoded into: no copy
    try:
        img = sj.decode_jpeg(data, colorspace="RGB", min_factor=scale, min_width=w, min_height=h, buffer=dst)
    except Exception:  # noqa: BLE001 - any refusal: OpenCV decides
        return None
    if img.shape != dst.shape:  # a header read unlike simplejpeg's
        return None
    return _exif_transform(img, orientation) if orientation != 1 else img


#: Where a process sees its open files by name (Linux): there, JPEGs are decoded by
#: libjpeg reading the open file (see :func:`_imread_fd`).
_FD_DIR = "/proc/self/fd"


def _imread_fd(fd: int, header: ImageHeader | None, flags: int, scale: int,
               orientation: int | None) -> np.ndarray | None:
    """The JPEG open as ``fd`` decoded by ``cv2.imread`` from the file itself, or None
    if that fails (then the caller reads the file and ``cv2.imdecode`` says why).

    Against ``cv2.imdecode`` of the file's bytes: libjpeg reads the file a buffer at a
    time, so its bytes are not held (10 MB for a 48-MP photo); and an upright 8-bit
    picture is decoded into a numpy array of the expected shape made here (``dst``),
    where ``imdecode`` decodes into OpenCV's own buffer that its Python binding then
    copies: for a moment the photo was in memory twice (+36 MB at 12 MP, +144 MB at
    48 MP).  It reads the file already open (``/proc/self/fd``), not whatever the name
    points at now.  OpenCV still decides everything (orientation, channels): a shape
    other than the one expected only means the copy again.  Same decoder, same pixels.
    """
    import cv2

    dst = None
    if (header is not None and header.sample_bytes == 1 and header.channels in (1, 3) and orientation == 1):
        w, h = -(-header.width // scale), -(-header.height // scale)
        dst = np.empty((h, w) if header.channels == 1 else (h, w, 3), np.uint8)
    name = f"{_FD_DIR}/{fd}"
    try:
        img = cv2.imread(name, dst, flags) if dst is not None else cv2.imread(name, flags)
    except cv2.error:
        return None
    return img if img is not None and img.size else None


def decode_image(path: str, max_pixels: int | None = None, memory: MemoryBudget | None = None,
                 min_size: tuple[int, int] | None = None, *, lenient: bool = False) -> np.ndarray:
    """Read and decode one image file as featx's extractors see it.

    ``max_pixels`` and ``memory`` are checked against the image header before
    any pixel is decoded.  Raises :class:`InputError` with a one-line reason
    (missing, unreadable, not a regular file, empty, not an image, corrupt,
    unsupported, too large).

    ``min_size``: ``(width, height)``, the fewest pixels the caller needs on each
    axis (of the upright image).  An 8-bit JPEG is then decoded by libjpeg at the
    largest DCT reduction (1/2, 1/4, 1/8) that still leaves at least that many
    (:func:`jpeg_reduction`), which skips most of the inverse DCT and holds a
    fraction of the pixels; EXIF orientation is applied all the same.  Other
    formats, and images too small to reduce, decode in full.  ``max_pixels``
    counts the image's own pixels either way.

    A JPEG or PNG whose decoder reports damaged data but returns a picture anyway
    (libjpeg's "Corrupt JPEG data: ..." warnings: bytes deleted, zeroed or replaced
    mid-stream) is refused as corrupt (a PNG with a CRC or zlib error in its pixel
    data fails in libpng already); ``lenient`` accepts such a
    picture as decoded (the damaged part grey or smeared).  A JPEG cut short (no end
    marker) is refused either way.
    """
    cv2 = _cv2()
    fd = open_regular_file(path, memory)
    try:
        return _decode_fd(cv2, path, fd, max_pixels, memory, min_size, lenient)
    finally:
        os.close(fd)


def _decode_fd(cv2, path: str, fd: int, max_pixels: int | None, memory: MemoryBudget | None,
               min_size: tuple[int, int] | None, lenient: bool = False) -> np.ndarray:
    size = os.fstat(fd).st_size
    # On Linux a JPEG is decoded from the open file (libjpeg reads it a buffer at a time,
    # see _imread_fd): only its head is read here, for the header.  Other formats are read
    # whole and decoded from memory (a TIFF's header may lie anywhere in it).
    by_fd = os.path.isdir(_FD_DIR)
    data = _read_fd(fd, 65536 if by_fd else None)
    if data.size < size and content_format(data[:16].tobytes()) != "JPEG":
        data = _read_fd(fd)
    header = read_header(data)
    if header is None and data.size < size:
        data = _read_fd(fd)
        header = read_header(data)
    # ... if it ends where a JPEG ends: libjpeg reading a file makes up the missing end of a
    # truncated one (grey), where decoding from memory fails it, as featx reports it
    by_fd = by_fd and header is not None and header.format == "JPEG" and os.pread(fd, 2, size - 2) == b"\xff\xd9"
    scale, orientation = 1, None
    if header is not None:
        if max_pixels and header.width * header.height > max_pixels:
            raise InputError(f"image is {header.width}x{header.height} pixels, over the limit of {max_pixels}",
                             "raise --max-pixels if this is intended")
        if header.format == "JPEG":
            orientation = jpeg_orientation(data[:65536].tobytes())
        if min_size is not None and header.format == "JPEG" and header.sample_bytes == 1:
            scale = jpeg_reduction(header.width, header.height, min_size, orientation)
        if memory is not None:
            memory.check(header.width, header.height, header.channels, header.sample_bytes, size,
                         scale=scale, progressive=header.progressive)
    sj = fast_jpeg_decoder()
    if (sj is not None and header is not None and header.format == "JPEG" and header.sample_bytes == 1
            and header.channels == 3 and header.sof in (0xC0, 0xC1) and orientation is not None
            and jpeg_orientation(data[:65536].tobytes(), strict=True) is not None):
        if data.size < size:
            data = _read_fd(fd)
        with _NativeStderr() as err:
            img = _fast_jpeg(sj, data, header, scale, orientation)
            if img is not None and err.peek():  # it printed something: OpenCV decides
                img = None
        if img is not None:
            return img   # (max_pixels and the budget were checked on the header above)
    flags = _DECODE_FLAGS | dict(_REDUCTIONS).get(scale, 0)
    with _NativeStderr() as err:
        img = None
        if by_fd:
            img = _imread_fd(fd, header, flags, scale, orientation)
            if img is not None and "Premature end" in err.peek():
                img = None
        if img is None:
            if data.size < size:  # undecodable from the file: its bytes say why
                data = _read_fd(fd)
            img = cv2.imdecode(data, flags)
        if scale > 1 and (img is None or img.shape[1] < min_size[0] or img.shape[0] < min_size[1]):
            if data.size < size:  # not expected: a reading of the EXIF unlike OpenCV's
                data = _read_fd(fd)
            img = cv2.imdecode(data, _DECODE_FLAGS)
    if img is None:
        raise InputError(_undecodable(path, data, header, native_message(err.text)))
    if err.text and not lenient:  # (a clean decode prints nothing: no cost)
        damage = corrupt_data(content_format(data[:16].tobytes()), err.text)
        if damage:
            raise InputError(f"cannot decode: corrupt {content_format(data[:16].tobytes())} image ({damage}); "
                                 "--lenient-decode takes such pictures as decoded")
    del data
    if img.dtype not in (np.uint8, np.uint16):
        if img.dtype == np.float32 or img.dtype == np.float64:
            img = np.clip(img * 255.0, 0, 255).astype(np.uint8)  # HDR/EXR: 0..1 -> 8-bit
        else:
            raise InputError(f"unsupported pixel type {img.dtype}")
    if img.ndim == 3:
        if img.shape[2] == 3:
            img = _bgr_to_rgb_in_place(img)
        elif img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
        elif img.shape[2] == 1:
            img = img[:, :, 0]
    if max_pixels and header is None and img.shape[0] * img.shape[1] > max_pixels:
        raise InputError(f"image is {img.shape[1]}x{img.shape[0]} pixels, over the limit of {max_pixels}",
                         "raise --max-pixels if this is intended")
    return img


def check_memory(memory: MemoryBudget | None, img: np.ndarray) -> None:
    """The budget check of an image already decoded (video frames; formats whose header
    featx cannot read): refuses it before the extractor spends its working memory."""
    if memory is not None:
        memory.check(img.shape[1], img.shape[0], img.shape[2] if img.ndim == 3 else 1, img.itemsize)
