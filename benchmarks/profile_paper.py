"""RLadder / fRNN cost ratios with the ``paper`` presets, next to the paper's claims (Sec. 3.2).

Profiles both methods on 64x64 gray frames (Moving MNIST) at each ``--batch`` and prints their
parameters, FLOPs, peak memory and the ratios. On ``--device meta`` (the default) nothing is
computed: FLOPs, parameters and tracked memory follow from the shapes alone, so it runs on any
laptop; on ``cuda`` it also times them and takes the peaks from the CUDA allocator.

    python benchmarks/profile_paper.py [--device meta] [--batch 1 12]
"""
from __future__ import annotations

import argparse

import torch

import bench
from bench.profile import measure_costs

CLAIMS = {  # paper Sec. 3.2 (RLadder relative to fRNN)
    "params": "1.44-1.5x (weights formula)",
    "predict_flops": "2.88-3x",
    "train_flops": "2.88-3x",
    "predict_peak_bytes": "-",
    "train_peak_bytes": "about 2x ('memory usage is doubled')",
    "latency_ms_median": "-",
}
UNITS = {"params": 1e6, "predict_flops": 1e9, "train_flops": 1e9, "predict_peak_bytes": 2**20,
         "train_peak_bytes": 2**20, "latency_ms_median": 1}
LABELS = {"params": "params (M)", "predict_flops": "predict GFLOPs", "train_flops": "train GFLOPs",
          "predict_peak_bytes": "predict peak MiB", "train_peak_bytes": "train peak MiB",
          "latency_ms_median": "latency ms"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="meta")
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 12])
    args = parser.parse_args()
    methods = {}
    for name in ("frnn", "rladder"):
        torch.manual_seed(0)
        with torch.device(args.device):
            methods[name] = bench.get_method(name, (1, 64, 64), "paper")
    for batch in args.batch:
        frnn, rladder = (measure_costs(methods[name], batch, args.device, repeats=5, train_steps=2)
                         for name in ("frnn", "rladder"))
        print(f"\npaper presets, 1x64x64, batch {batch}, device {frnn['device']}, memory: {frnn['memory_source']}")
        print(f"{'':18}{'fRNN':>12}{'RLadder':>12}{'ratio':>8}  paper")
        for key, claim in CLAIMS.items():
            if frnn[key] is None:
                continue
            ratio = rladder[key] / frnn[key]
            print(f"{LABELS[key]:18}{frnn[key] / UNITS[key]:12.2f}{rladder[key] / UNITS[key]:12.2f}{ratio:8.3f}  {claim}")


if __name__ == "__main__":
    main()
