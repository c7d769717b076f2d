"""Grid parallelism: the same 4-cell grid with ``--jobs 1`` and ``--jobs 2``, timed side by side.

Cells: fRNN, PredNet, MCnet and Srivastava (``tiny`` presets, trained first and untimed) on
Moving MNIST, each evaluated on ``--limit`` test sequences. Prints both wall times and the ratio.
Usage: ``python benchmarks/bench_grid.py [--data-dir MNIST_DIR] [--limit 400]`` (default: the MNIST
test digits shipped with the package), or under pytest-benchmark, 100 sequences per cell, both
``--jobs`` in one group: ``pytest benchmarks/bench_grid.py --benchmark-enable``.
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import pytest

from bench.grid import EvalRequest, run_grid

METHODS = ("frnn", "prednet", "villegas", "srivastava")
QUIET = dict(progress=False, echo=lambda _: None)


def trained_requests(tmp: Path, data_dir: str | None, limit: int) -> list[EvalRequest]:
    """The four cells' evaluation requests, their ``tiny`` checkpoints trained in ``tmp`` (untimed)."""
    cells = [EvalRequest(method=m, dataset="mmnist", preset="tiny", data_dir=data_dir, limit=limit, device="cpu",
                         checkpoint_dir=str(tmp / "ckpt")) for m in METHODS]
    run_grid([EvalRequest(**{**c.__dict__, "limit": 1}) for c in cells], tmp / "warm", **QUIET)
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        cells = trained_requests(Path(tmp), args.data_dir, args.limit)
        seconds = {}
        for jobs in (1, 2, 1, 2):
            start = time.perf_counter()
            run_grid(cells, Path(tmp) / f"jobs{jobs}", jobs=jobs, force=True, **QUIET)
            seconds.setdefault(jobs, []).append(time.perf_counter() - start)
        one, two = min(seconds[1]), min(seconds[2])
        print(f"4 cells, {args.limit} sequences each: --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s, "
              f"speed-up {one / two:.2f}x (best of 2 each, interleaved)")


@pytest.fixture(scope="module")
def requests(tmp_path_factory):
    warnings.simplefilter("ignore")
    tmp = tmp_path_factory.mktemp("grid")
    return tmp, trained_requests(tmp, None, 100)


@pytest.mark.parametrize("jobs", [1, 2])
def test_grid_wall_time(benchmark, requests, jobs):
    tmp, cells = requests
    benchmark.group = "4-cell grid, 100 sequences each"
    benchmark.pedantic(run_grid, args=(cells, tmp / f"jobs{jobs}"), kwargs=dict(jobs=jobs, force=True, **QUIET),
                       rounds=2)


if __name__ == "__main__":
    main()
