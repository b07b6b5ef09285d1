"""No idle core (issue 25, item 2): work is handed to ``-j N`` workers in chunks sized by
the work left (guided scheduling), the last ones single inputs, so that the workers
finish together; outputs are the same bytes whatever the chunking and ``-j``."""
from __future__ import annotations

import heapq
import sys
from pathlib import Path

import pytest

from featx.engine.executors import chunk_size, guided_chunks
from helpers import featx, featx_subprocess, ok, output_files, photo_crops, plugin_env


def sizes(n: int, most: int, workers: int) -> list[int]:
    return [len(c) for c in guided_chunks(range(n), most, workers)]


def finish_times(chunks: list[int], workers: int, cost: float = 1.0) -> list[float]:
    """When each worker is done if free workers take the next chunk in order (every input
    costing ``cost``): a list schedule, as the pool's shared queue hands chunks out."""
    free = [(0.0, w) for w in range(workers)]
    ends = [0.0] * workers
    for c in chunks:
        t, w = heapq.heappop(free)
        ends[w] = t + c * cost
        heapq.heappush(free, (ends[w], w))
    return ends


def test_chunk_size_rule():
    assert chunk_size(None, 2, 16) == 16           # more than counted: the largest
    assert chunk_size(1000, 2, 16) == 16
    assert chunk_size(40, 2, 16) == 10             # ceil(40 / (2 * 2))
    assert chunk_size(8, 2, 16) == 2
    assert chunk_size(3, 2, 16) == 1
    assert chunk_size(1, 8, 4) == 1
    assert chunk_size(5, 1, 4) == 3                # one worker (-j 1 --timeout): halves too
    assert chunk_size(7, 2, 0) == 1                # never an empty chunk


@pytest.mark.parametrize("n,most,workers", [(40, 16, 2), (200, 4, 2), (200, 16, 2), (8, 16, 2), (8, 4, 2),
                                            (1, 16, 2), (3, 4, 3), (1000, 16, 4), (17, 16, 2), (64, 16, 2)])
def test_chunks_cover_the_inputs_in_order(n, most, workers):
    chunks = list(guided_chunks(range(n), most, workers))
    assert [x for c in chunks for x in c] == list(range(n))
    assert all(1 <= len(c) <= most for c in chunks)
    # never growing: the tail is the smallest
    s = [len(c) for c in chunks]
    assert s == sorted(s, reverse=True)
    assert s[-1] == 1


@pytest.mark.parametrize("n,most,workers", [(40, 16, 2), (200, 4, 2), (200, 16, 2), (8, 16, 2), (9, 4, 2),
                                            (100, 16, 3), (1000, 16, 4), (33, 16, 2)])
def test_split_is_even(n, most, workers):
    """Equal inputs: no worker finishes more than one input's time after another, and
    every worker gets work when there are at least as many inputs as workers."""
    chunks = sizes(n, most, workers)
    ends = finish_times(chunks, workers)
    assert max(ends) - min(ends) <= 1.0, (chunks, ends)
    assert min(ends) > 0


def test_old_split_left_a_core_idle():
    """What the rule replaces: chunks of the batch size (16 + 16 + 8 for 40, one chunk of 8)."""
    assert finish_times([16, 16, 8], 2) == [24.0, 16.0]
    assert finish_times([8], 2) == [8.0, 0.0]
    assert sizes(8, 16, 2) == [2, 2, 1, 1, 1, 1]


def test_reads_only_so_far_ahead():
    """A stream is cut as it comes: the first chunk is handed out after at most
    most * TAIL * workers inputs were read, not after the stream ended."""
    read = []

    def stream():
        for i in range(10_000):
            read.append(i)
            yield i
    it = guided_chunks(stream(), 4, 2)
    assert next(it) == [0, 1, 2, 3]
    assert len(read) <= 4 * 2 * 2
    for _ in range(100):
        next(it)
    assert len(read) <= 100 * 4 + 4 * 2 * 2 + 4


def trace_lines(path: Path) -> list[tuple[int, int, float]]:
    out = []
    for line in path.read_text().splitlines():
        pid, n, cpu, _, _ = line.split()
        out.append((int(pid), int(n), float(cpu)))
    return out


@pytest.mark.slow   # 8 x 0.4 s of sleeping at -j 2
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forks test plugins")
def test_few_big_inputs_use_every_worker(tmp_path):
    """8 inputs, each long (the slow plugin, 0.4 s an input): both workers get some
    (before, one chunk of 8 went to one worker), and the outputs are those of -j 1."""
    src = photo_crops(tmp_path / "in", 8, (160, 120))
    env = dict(plugin_env(tmp_path), SLOW_MS="400")
    trace = tmp_path / "trace.txt"
    (tmp_path / "j1").mkdir()
    (tmp_path / "j2").mkdir()
    ok(featx_subprocess("extract", "slow", src, "-o", tmp_path / "j2" / "s.npy", "-q", "-j", "2",
                        env=dict(env, FEATX_TRACE_CHUNKS=str(trace))))
    per: dict[int, int] = {}
    for pid, n, _ in trace_lines(trace):
        per[pid] = per.get(pid, 0) + n
    assert sum(per.values()) == 8
    assert len(per) == 2 and min(per.values()) >= 2, per
    ok(featx_subprocess("extract", "slow", src, "-o", tmp_path / "j1" / "s.npy", "-q", "-j", "1",
                        env=dict(env, SLOW_MS="0")))
    assert output_files(tmp_path / "j1" / "s.npy") == output_files(tmp_path / "j2" / "s.npy")


@pytest.mark.slow   # three cnn runs over 41 images
def test_bytes_whatever_the_chunking(tmp_path):
    """hog and cnn in one pass over 41 inputs: -j 1, -j 2 (guided chunks) and -j 2 with
    --timeout (its chunks are cut the same way, the per-input clock runs) write the
    same bytes; cnn's batches are then 16 at -j 1, 10, 8, ... 1 at -j 2."""
    src = photo_crops(tmp_path / "in", 41, (160, 120))
    got = []
    for args in (["-j", "1"], ["-j", "2"], ["-j", "2", "--timeout", "60"]):
        out = tmp_path / ("o" + "".join(args).replace("-", ""))
        ok(featx("extract", "hog+cnn", src, "-o", f"{out}/", "--resize", "96x96", "-q", *args))
        got.append({**output_files(out / "hog.npy"), **output_files(out / "cnn.npy")})
    assert got[0] == got[1] == got[2]
    assert len(got[0]) == 4
