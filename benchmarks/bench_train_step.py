"""Training-step speed, side by side: compiled against eager, and the data wait against the compute.

Builds ``--method`` (``--preset``, seed 0) twice on ``--device`` with identical weights and feeds both
from one stream of Moving MNIST batches (the digits shipped with the package) through the
background loader of :mod:`bench.batches`. One copy's ``training_step`` goes through
``torch.compile``. Both take their first step on the same batch (its time, the compilation's for
the compiled copy, and the losses, equal up to rounding, are printed), then ``--warmup`` - 1 more
untimed steps. Then the two copies
alternate, step for step, ``--steps`` times each, so both see the same machine load, and the
script prints the median seconds per step, the interquartile range and the compiled/eager ratio.
Last, ``--steps`` eager steps fed in-process (``--data-workers 0``) show what the background
worker saves: the time each step waits for its batch against the time it computes.

    python benchmarks/bench_train_step.py --method frnn --preset small [--steps 10] [--precision fp32]

Under pytest-benchmark (``pytest benchmarks/bench_train_step.py --benchmark-enable``): fRNN ``small``'s
eager and compiled training steps on one batch, in one group, so the table prints their ratio.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
import warnings
from pathlib import Path

import pytest
import torch

import bench
from bench.batches import training_batches
from bench.speedups import Speedups, compiled, time_steps

SHAPE = (1, 64, 64)


def digits():
    """Moving MNIST from the test digits shipped with the package (training draws from the even-indexed
    ones; the warning saying so is silenced, and the digits are loaded before any worker starts)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = bench.get_dataset("mmnist", data_dir=Path(bench.__file__).parent / "data" / "mnist")
        data.test_clips(20)
    return data


def describe(label: str, seconds: list[float]) -> str:
    quartiles = statistics.quantiles(seconds, n=4) if len(seconds) > 1 else [seconds[0]] * 3
    return f"{label:<28}{statistics.median(seconds):>10.4f}{quartiles[2] - quartiles[0]:>10.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="frnn")
    parser.add_argument("--preset", default="small")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=10, help="Timed steps of each kind.")
    parser.add_argument("--warmup", type=int, default=2, help="Untimed first steps, at least 1 (the compiled ones compile).")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice).")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    speed = Speedups(args.precision)
    torch.manual_seed(0)
    eager = bench.get_method(args.method, SHAPE, args.preset).to(device)
    other = copy.deepcopy(eager)
    for method in (eager, other):
        method.use_precision(args.precision)
        method.train()
    batch = eager.config["batch_size"]
    print(f"{args.method}/{args.preset}, batch {batch}, {device} ({torch.get_num_threads()} threads), "
          f"{args.precision}, torch {torch.__version__}")
    step, ok = compiled(other.training_step, device, print)
    data = digits()
    fed = training_batches(data, seed=0, batch_size=batch, device=device, frame_shape=SHAPE, workers=1)
    kinds = {"eager": eager.training_step, **({"compiled": step} if ok else {})}
    first = next(fed)
    for label, call in kinds.items():  # the same weights and batch: the same loss, up to rounding
        began = time.perf_counter()
        with speed.step_context(device):
            losses = call(first)
        print(f"first {label} step: {time.perf_counter() - began:.1f} s"
              f"{' (compilation)' if label == 'compiled' else ''}; losses {losses}")
    for call in kinds.values():
        time_steps(call, fed, device, speed, args.warmup - 1)
    times = {label: [] for label in kinds}
    waits = []
    for _ in range(args.steps):
        for label, call in kinds.items():
            seconds, waited = time_steps(call, fed, device, speed, 1)
            times[label] += seconds
            waits += waited
    fed.close()
    inline = training_batches(data, seed=1, batch_size=batch, device=device, frame_shape=SHAPE, workers=0)
    inline_compute, inline_waits = time_steps(eager.training_step, inline, device, speed, args.steps)
    inline.close()

    print(f"\n{'seconds per step':<28}{'median':>10}{'IQR':>10}")
    for label, seconds in times.items():
        print(describe(label, seconds))
    if ok:
        ratio = statistics.median(times["compiled"]) / statistics.median(times["eager"])
        print(f"{'compiled / eager':<28}{ratio:>10.3f}   ({1 / ratio:.2f}x the eager speed)")
    print(f"\n{'per step, milliseconds':<28}{'wait':>10}{'compute':>10}")
    print(f"{'1 background worker':<28}{statistics.median(waits) * 1e3:>10.2f}"
          f"{statistics.median(times['eager']) * 1e3:>10.1f}")
    print(f"{'in-process (0 workers)':<28}{statistics.median(inline_waits) * 1e3:>10.2f}"
          f"{statistics.median(inline_compute) * 1e3:>10.1f}")


@pytest.mark.parametrize("kind", ["eager", "compiled"])
def test_training_step(benchmark, kind):
    torch.manual_seed(0)
    method = bench.get_method("frnn", SHAPE, "small")
    method.train()
    step, ok = (compiled(method.training_step, torch.device("cpu"), lambda _: None) if kind == "compiled"
                else (method.training_step, True))
    if not ok:
        pytest.skip("torch.compile is not available here")
    fed = training_batches(digits(), seed=0, batch_size=method.config["batch_size"], device=torch.device("cpu"),
                           frame_shape=SHAPE, workers=0)
    batch = next(fed)
    fed.close()
    step(batch)  # the compiled copy compiles here, untimed
    benchmark.group = "fRNN small training step, one batch"
    benchmark(step, batch)


if __name__ == "__main__":
    main()
