"""Loading a prepared dataset's test clips from the frame cache vs decoding the videos, side by side.

Writes KTH-like test videos (160x120 MPEG-4 AVI, a moving square on gray) to a temporary folder,
prepares the cache, then times two ways of producing every 20-frame test window, in batches of 32:

* decode: decode and preprocess each video (what happens without a cache), then cut its windows;
* cache:  ``KTH.test_clips(20)`` on the prepared cache (memory-mapped arrays), then ``batch()``.

Both produce the same clips (checked). Prints the best of ``--repeat`` timings and the ratio.

    python benchmarks/bench_cache.py [--videos 8] [--frames 300] [--repeat 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from bench import video
from bench.datasets.kth import KTH

LENGTH, BATCH = 20, 32


def write_videos(folder: Path, count: int, frames: int) -> list[Path]:
    paths = []
    for i in range(count):
        rgb = np.full((frames, 120, 160, 3), 40, np.uint8)
        for t in range(frames):
            x = (7 * i + 2 * t) % 140
            rgb[t, 40:56, x:x + 16] = 220
        paths.append(folder / f"person{17 + i % 9:02d}_boxing_d{1 + i // 9}_uncomp.avi")
        video.write(paths[-1], rgb)
    return paths


def batches(clip_source, total: int):
    for start in range(0, total, BATCH):
        yield clip_source(np.arange(start, min(start + BATCH, total)))


def by_decoding(data: KTH, paths: list[Path]) -> int:
    count = 0
    for path in paths:
        frames = data.build(path)
        windows = len(frames) - LENGTH + 1
        for batch in batches(lambda idx: np.stack([frames[s:s + LENGTH] for s in idx]), windows):
            count += len(batch)
    return count


def from_cache(data: KTH) -> int:
    clips = data.test_clips(LENGTH)
    return sum(len(batch) for batch in batches(clips.batch, len(clips)))


def best(call, repeat: int) -> tuple[float, int]:
    times, result = [], 0
    for _ in range(repeat):
        tic = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - tic)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=8)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # "n of the 216 test videos are missing": a small folder on purpose
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_videos(Path(tmp), args.videos, args.frames)
        data = KTH(data_dir=tmp, cache_dir=Path(tmp) / "cache")
        data.progress = False
        data.test_clips(LENGTH)  # prepare the cache
        sample = data.test_clips(LENGTH)
        first = data.build(sorted(paths)[0])
        assert np.array_equal(sample[5], first[5:5 + LENGTH]), "cache and decoding disagree"
        decode_s, n_decoded = best(lambda: by_decoding(data, paths), args.repeat)
        cache_s, n_cached = best(lambda: from_cache(data), args.repeat)
        assert n_decoded == n_cached
    print(f"{args.videos} KTH-like videos x {args.frames} frames -> {n_cached} test clips of {LENGTH} frames")
    print(f"{'':8}{'seconds':>10}{'clips/s':>12}")
    print(f"{'decode':8}{decode_s:10.3f}{n_decoded / decode_s:12.0f}")
    print(f"{'cache':8}{cache_s:10.3f}{n_cached / cache_s:12.0f}")
    print(f"cache is {decode_s / cache_s:.1f}x faster than decoding")


if __name__ == "__main__":
    main()
