"""Loading a prepared dataset's test clips from the frame cache vs decoding the videos, side by side.

Writes test videos to a temporary folder (KTH-like: 160x120 gray; UCF101-like: 320x240 colour;
MPEG-4 AVI with a moving square), prepares the cache, then times two ways of producing every
20-frame test window, in batches of 32:

* decode: decode and preprocess each video (what happens without a cache), then cut its windows;
* cache:  ``test_clips(20)`` on the prepared cache (memory-mapped arrays), then ``batch()``.

Both produce the same clips (checked). Prints the best of ``--repeat`` timings and the ratio.

    python benchmarks/bench_cache.py [--dataset kth|ucf101] [--videos 8] [--frames 300] [--repeat 3]

or with pytest-benchmark (KTH-like, 4 videos; the group's table shows each timing's ratio to the fastest):

    pytest benchmarks/bench_cache.py --benchmark-enable
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import bench
from bench import video

LENGTH, BATCH = 20, 32


def write_videos(folder: Path, dataset: str, count: int, frames: int) -> list[Path]:
    """``count`` test videos in ``dataset``'s naming scheme (for UCF101 with one-class split lists)."""
    height, width = (120, 160) if dataset == "kth" else (240, 320)
    paths = []
    for i in range(count):
        rgb = np.full((frames, height, width, 3), 40, np.uint8)
        for t in range(frames):
            x = (7 * i + 2 * t) % (width - 20)
            rgb[t, 40:56, x:x + 16] = (220, 220, 220) if dataset == "kth" else (230, 30, 30)
        if dataset == "kth":
            paths.append(folder / f"person{17 + i % 9:02d}_boxing_d{1 + i // 9}_uncomp.avi")
        else:
            paths.append(folder / "Knitting" / f"v_Knitting_g{i + 1:02d}_c01.avi")
            paths[-1].parent.mkdir(exist_ok=True)
        video.write(paths[-1], rgb)
    if dataset == "ucf101":
        lists = folder / "ucfTrainTestlist"
        lists.mkdir()
        (lists / "classInd.txt").write_text("1 Knitting\n")
        (lists / "trainlist01.txt").write_text("")
        (lists / "testlist01.txt").write_text("".join(f"Knitting/{p.name}\n" for p in paths))
    return paths


def batches(clip_source, total: int):
    for start in range(0, total, BATCH):
        yield clip_source(np.arange(start, min(start + BATCH, total)))


def by_decoding(data, paths: list[Path]) -> int:
    count, span = 0, (LENGTH - 1) * data.sample_every + 1
    crop = slice(data.test_crop, data.test_crop + data.frame_shape[2])
    for path in paths:
        frames = data.build(path)
        windows = len(frames) - span + 1
        clip = lambda idx: np.stack([frames[s:s + span:data.sample_every, ..., crop] for s in idx])  # noqa: E731
        count += sum(len(batch) for batch in batches(clip, windows))
    return count


def from_cache(data) -> int:
    clips = data.test_clips(LENGTH)
    return sum(len(batch) for batch in batches(clips.batch, len(clips)))


def best(call, repeat: int) -> tuple[float, float, int]:
    """Best wall and best CPU (process) seconds of ``repeat`` calls, and the call's result. CPU time
    is the steadier figure on a machine whose cores are shared with other work."""
    walls, cpus, result = [], [], 0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = call()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus), result


def prepared(folder: Path, dataset: str, videos: int, frames: int):
    """(dataset with its cache prepared from freshly written videos, the video paths); checks that the cache
    gives the clips that decoding gives."""
    warnings.simplefilter("ignore")  # "n of the 216 test videos are missing": a small folder on purpose
    paths = sorted(write_videos(folder, dataset, videos, frames))
    data = bench.get_dataset(dataset, data_dir=folder, cache_dir=folder / "cache")
    data.progress = False
    sample = data.test_clips(LENGTH)  # prepares the cache
    expected = data.build(paths[0])[5:5 + (LENGTH - 1) * data.sample_every + 1:data.sample_every]
    assert np.array_equal(sample[5], expected[..., data.test_crop:data.test_crop + data.frame_shape[2]])
    return data, paths


@pytest.fixture(scope="module")
def kth_videos(tmp_path_factory):
    return prepared(tmp_path_factory.mktemp("videos"), "kth", videos=4, frames=200)


@pytest.mark.parametrize("way", ["decode", "cache"])
def test_test_clips(benchmark, kth_videos, way):
    data, paths = kth_videos
    benchmark.group = "every 20-frame test clip of 4 KTH-like videos"
    count = benchmark(by_decoding, data, paths) if way == "decode" else benchmark(from_cache, data)
    assert count == len(data.test_clips(LENGTH))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=("kth", "ucf101"), default="kth")
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, paths = prepared(Path(tmp), args.dataset, args.videos, args.frames)
        decode_wall, decode_cpu, n_decoded = best(lambda: by_decoding(data, paths), args.repeat)
        cache_wall, cache_cpu, n_cached = best(lambda: from_cache(data), args.repeat)
        assert n_decoded == n_cached
    size = "x".join(map(str, data.frame_shape))
    print(f"{args.videos} {args.dataset}-like videos x {args.frames} frames -> {n_cached} test clips "
          f"of {LENGTH} frames ({size}); best of {args.repeat}")
    print(f"{'':8}{'wall s':>10}{'cpu s':>10}{'clips/s (wall)':>16}")
    print(f"{'decode':8}{decode_wall:10.3f}{decode_cpu:10.3f}{n_decoded / decode_wall:16.0f}")
    print(f"{'cache':8}{cache_wall:10.3f}{cache_cpu:10.3f}{n_cached / cache_wall:16.0f}")
    print(f"cache is {decode_wall / cache_wall:.1f}x (wall) / {decode_cpu / cache_cpu:.1f}x (cpu) faster than decoding")


if __name__ == "__main__":
    main()
