"""Grid parallelism: the same 4-cell grid with ``--jobs 1`` and ``--jobs 2``, timed side by side.

Cells: fRNN, PredNet, MCnet and Srivastava (``tiny`` presets, trained first and untimed) on
Moving MNIST, each evaluated on ``--limit`` test sequences. Prints both wall times and the ratio.
Usage: ``python benchmarks/bench_grid.py --data-dir MNIST_DIR [--limit 400]`` (MNIST_DIR: the MNIST files).
"""
from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

from bench.grid import EvalRequest, run_grid

METHODS = ("frnn", "prednet", "villegas", "srivastava")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--limit", type=int, default=400)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as tmp:
        cells = [
            EvalRequest(method=m, dataset="mmnist", preset="tiny", data_dir=args.data_dir, limit=args.limit,
                 device="cpu", checkpoint_dir=str(Path(tmp) / "ckpt"))
            for m in METHODS
        ]
        quiet = dict(progress=False, echo=lambda _: None)
        run_grid([EvalRequest(**{**c.__dict__, "limit": 1}) for c in cells], Path(tmp) / "warm", **quiet)  # trains
        seconds = {}
        for jobs in (1, 2, 1, 2):
            start = time.perf_counter()
            run_grid(cells, Path(tmp) / f"jobs{jobs}", jobs=jobs, force=True, **quiet)
            seconds.setdefault(jobs, []).append(time.perf_counter() - start)
        one, two = min(seconds[1]), min(seconds[2])
        print(f"4 cells, {args.limit} sequences each: --jobs 1 {one:.1f} s, --jobs 2 {two:.1f} s, "
              f"speed-up {one / two:.2f}x (best of 2 each, interleaved)")


if __name__ == "__main__":
    main()
