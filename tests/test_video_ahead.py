"""A lone video at -j N: its worker decodes on a thread of its own while a core idles.

The pool marks each chunk slot busy from hand-out to end (``ProcessPool.busy``); a worker
whose video runs while fewer chunks than cores are in flight decodes it a few frames ahead
(featx.video.iter_video's ``ahead``).  Same rows, same order, whatever decodes.
"""
from __future__ import annotations


import numpy as np

from featx import registry
from featx.engine.executors import InProcess, ProcessPool
from featx.engine.worker import Job, Task
from featx.extractor import params_to_dict
from featx.extractors.hog import HOG
from featx.inputs import Input
from featx.output.sinkbase import RawEncoder

from test_video import make_frames, write_video


def _job():
    ext = HOG.create()
    return Job(tasks=(Task(target=registry.target_of(HOG), params=params_to_dict(ext.params),
                           resize=(64, 64), encoder=RawEncoder()),),
               source_options={}), ext


def _rows(results, spooled):
    out = []
    for inputs, recs, payloads in results:
        data = open(payloads[0], "rb").read() if spooled else payloads[0]
        out.append(([(r.key, r.shape, r.error) for rs in recs[0] for r in rs], data))
    return out


def test_a_lone_video_in_a_pool_gives_the_rows_of_one_process_and_frees_its_slot(tmp_path, sample):
    video = write_video(tmp_path / "v.avi", make_frames(sample, 30), 10.0, "FFV1")
    broken = tmp_path / "cut.avi"
    data = video.read_bytes()
    broken.write_bytes(data[:int(len(data) * 0.6)])
    inputs = [Input(str(video), kind="video", mirror="v"), Input(str(broken), kind="video", mirror="c")]
    job, ext = _job()
    want = _rows(InProcess(job, [ext]).results(inputs), False)
    spool = tmp_path / "spool"
    spool.mkdir()
    pool = ProcessPool(job, 2, 1, str(spool), None)
    try:
        got = _rows(pool.results(inputs), True)
        assert not any(pool.busy)   # each worker cleared its slot as its chunk ended
    finally:
        pool.close()
    assert got == want
    assert "video ends early" in got[1][0][-1][2]


def test_a_worker_decodes_ahead_only_while_a_core_idles_and_the_frames_fit_its_budget():
    from featx.engine.worker import _ahead
    from featx.memory import MemoryBudget
    from featx.video import Frame
    from featx.videoahead import AHEAD

    frame = Frame(0, 0.0, np.zeros((720, 1280, 3), np.uint8), "v.mp4")
    busy = bytearray(7)
    ask = _ahead(busy, 2, None)
    busy[0] = 1
    assert ask(frame) and not ask(None)          # one chunk in flight, two cores
    busy[3] = 1
    assert not ask(frame)                        # both cores have work
    busy[3] = 0
    memory = MemoryBudget.for_extractor(0, HOG.create(), (64, 64))
    need = memory.cost(1280, 720)
    tight = MemoryBudget.for_extractor(need + AHEAD * frame.image.nbytes, HOG.create(), (64, 64))
    roomy = MemoryBudget.for_extractor(need + (AHEAD + 1) * frame.image.nbytes, HOG.create(), (64, 64))
    assert not _ahead(busy, 2, tight)(frame)
    assert _ahead(busy, 2, roomy)(frame)
