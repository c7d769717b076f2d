"""The decoded-frame cache: hits, invalidation by parameter and by file, atomic writes, corrupt entries."""
from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from bench import framecache
from bench.errors import BenchError
from bench.framecache import FrameCache


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "clip.avi"
    path.write_bytes(b"raw video bytes")
    return path


def builder(value: int, calls: list):
    def build(path):
        calls.append(path)
        return np.full((3, 1, 4, 5), value, np.uint8)

    return build


def test_built_once_then_memory_mapped(tmp_path, source):
    cache, calls = FrameCache(tmp_path / "cache", "kth", {"size": [64, 80]}), []
    first = cache.load(source, builder(7, calls))
    second = cache.load(source, builder(9, calls))
    assert len(calls) == 1 and isinstance(second, np.memmap) and not second.flags.writeable
    assert cache.frames(source) == 3
    assert second.shape == (3, 1, 4, 5) and second.dtype == np.uint8 and int(second.max()) == 7
    assert np.array_equal(first, second)
    entry = cache.path(source)
    assert entry.parent == tmp_path / "cache" / "frames" / "kth" and entry.name.startswith("clip-")
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]  # no temporary files left


def test_changed_parameters_or_file_miss(tmp_path, source):
    calls = []
    FrameCache(tmp_path, "kth", {"size": [64, 80]}).load(source, builder(1, calls))
    assert FrameCache(tmp_path, "kth", {"size": [64, 80]}).get(source) is not None
    assert FrameCache(tmp_path, "kth", {"size": [64, 64]}).get(source) is None
    assert FrameCache(tmp_path, "ucf101", {"size": [64, 80]}).get(source) is None
    os.utime(source, ns=(1_000_000_000, 1_000_000_000))  # same bytes, new mtime
    assert FrameCache(tmp_path, "kth", {"size": [64, 80]}).get(source) is None
    source.write_bytes(b"other bytes, longer")
    cache = FrameCache(tmp_path, "kth", {"size": [64, 80]})
    assert int(cache.load(source, builder(2, calls)).max()) == 2 and len(calls) == 2


def test_failed_build_or_write_leaves_old_entries_and_no_partial_file(tmp_path, source, monkeypatch):
    cache, calls = FrameCache(tmp_path, "kth", {}), []
    cache.load(source, builder(3, calls))
    other = tmp_path / "other.avi"
    other.write_bytes(b"x")

    def broken(path):
        raise BenchError(f"video file {path} is truncated")

    with pytest.raises(BenchError, match="other.avi is truncated"):
        cache.load(other, broken)

    def save_half(file, array):  # a crash in the middle of writing
        file.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(framecache.np, "save", save_half)
    with pytest.raises(OSError, match="disk full"):
        cache.load(other, builder(4, calls))
    monkeypatch.undo()
    assert [p.name for p in cache.folder.iterdir()] == [cache.path(source).name]
    assert int(cache.get(source).max()) == 3 and cache.get(other) is None


def test_corrupt_entry_is_rebuilt(tmp_path, source):
    cache, calls = FrameCache(tmp_path, "kth", {}), []
    cache.load(source, builder(5, calls))
    entry = cache.path(source)
    entry.write_bytes(entry.read_bytes()[:150])  # cut by hand
    assert cache.get(source) is None and cache.frames(source) is None
    assert int(cache.load(source, builder(6, calls)).max()) == 6 and len(calls) == 2


def test_concurrent_writers_never_expose_a_partial_entry(tmp_path, source):
    cache = FrameCache(tmp_path, "kth", {})
    big = np.arange(2_000_000, dtype=np.int64).astype(np.uint8).reshape(20, 1, 100, 1000)
    seen = []

    def write():
        for _ in range(5):
            cache.put(cache.path(source), big)

    def read(writers):
        while any(w.is_alive() for w in writers) or not seen:
            array = cache.get(source)
            if array is not None:
                seen.append(bool(np.array_equal(array[-1], big[-1])))

    writers = [threading.Thread(target=write) for _ in range(3)]
    reader = threading.Thread(target=read, args=(writers,))
    for thread in writers:
        thread.start()
    reader.start()
    for thread in [*writers, reader]:
        thread.join()
    assert seen and all(seen)
    assert [p.name for p in cache.folder.iterdir()] == [cache.path(source).name]
