"""Decoding a video ahead of its reader, on a thread of its own.

:func:`featx.video.iter_video`'s ``ahead``: a worker with a lone video while a core
idles decodes it a few frames ahead (:data:`AHEAD`), so that decoding overlaps with
the extraction of the frame before.  The frames, their order and the error at the
end are the same whoever decodes; :func:`decoded_ahead` is that machinery, for any
iterator of frames.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

T = TypeVar("T")


#: Frames a video's decoding thread may hold ready (see :func:`featx.video.iter_video`'s ``ahead``):
#: enough to even out frames that take longer, few enough that memory stays bounded (the
#: thread holds at most this many, plus the one it is decoding; 2.7 MB each at 720p).
AHEAD = 2
#: Seconds an ``ahead`` callable must keep saying True before decoding moves to a thread
#: (a worker between two chunks looks idle for a moment).
AHEAD_AFTER = 0.02


def decoded_ahead(frames: Iterator[T], ahead: bool | Callable[[T | None], bool]) -> Iterator[T]:
    """``frames``, decoded on a thread ``AHEAD`` frames ahead once ``ahead`` says so.

    One generator, resumed by one thread at a time: by the caller's until the switch, by
    the decoding thread after it, so the frames and the error at the end are those of
    ``frames`` whoever decodes.  The thread is a daemon (it never keeps a process alive)
    and stops when the caller stops: closing this generator (an exception in the caller,
    ``break``) sets ``stop``, empties the queue and waits for it; it then closes
    ``frames``, which releases the capture."""
    import queue
    import threading
    import time

    it = iter(frames)
    try:
        if ahead is not True:
            since = frame = None
            while True:
                if ahead(frame):
                    now = time.monotonic()
                    if since is None:
                        since = now
                    elif now - since >= AHEAD_AFTER:
                        break
                else:
                    since = None
                try:
                    frame = next(it)
                except StopIteration:
                    return
                yield frame
        q: queue.Queue = queue.Queue(AHEAD)
        stop = threading.Event()
        done = object()

        def decode() -> None:
            try:
                for fr in it:
                    while True:
                        if stop.is_set():
                            return
                        try:
                            q.put((fr, None), timeout=0.05)
                            break
                        except queue.Full:
                            pass
                    del fr
                item = (done, None)
            except BaseException as exc:  # (noqa: handed over, raised by the caller)
                item = (None, exc)
            finally:
                if stop.is_set():
                    frames.close()
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return
                except queue.Full:
                    pass

        thread = threading.Thread(target=decode, name="featx-video-decode", daemon=True)
        thread.start()
        try:
            while True:
                fr, exc = q.get()
                if exc is not None:
                    raise exc
                if fr is done:
                    return
                yield fr
                del fr
        finally:
            stop.set()
            while thread.is_alive():
                try:
                    while True:
                        q.get_nowait()
                except queue.Empty:
                    pass
                thread.join(0.05)
    finally:
        frames.close()
