"""Why MCnet predicts black on bouncing balls: its tanh output saturates, and a gray background cures it.

Trains MCnet (``villegas``) from scratch for ``--steps`` iterations twice, from the same seed and
the same training clips: once on bouncing balls as they are (black background, -1 on MCnet's
[-1, 1] scale, tanh's asymptote), once on the same clips mapped to [0.25, 0.75] (a gray
background, inside tanh's range). Every ``--every`` iterations it records the L_p term, the
predicted and target mean intensity and the extremes of the pre-tanh map of the last prediction.
Writes ``<out>/bouncing_balls-villegas-<preset>-saturation.csv`` and prints it.

    python benchmarks/mcnet_saturation.py --steps 120 --every 5

Measured with the ``small`` preset, 150 iterations (2-core CPU, about 7 min): on black backgrounds
the pre-tanh minimum passes -60 by iteration 45 (-212 by 105) and the predicted mean intensity
falls to 1e-5 (target 0.136); on gray backgrounds the pre-tanh map stays within [-1.3, 0.4] and
the predicted mean tracks the target's (0.30-0.36 against 0.32).
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch

import bench

FIELDS = ["background", "step", "reconstruction", "pred_mean", "target_mean", "pre_tanh_min", "pre_tanh_max"]


def run(background: str, preset: str, steps: int, every: int, seed: int) -> list[dict]:
    """One training run; ``background`` is "black" (the dataset as is) or "gray" (mapped to [0.25, 0.75])."""
    torch.manual_seed(seed)
    method = bench.get_method("villegas", frame_shape=(1, 64, 64), preset=preset)
    clips = bench.get_dataset("bouncing_balls").train_clips(20, seed)
    batch_size = int(method.config["batch_size"])
    extremes = {}
    output_conv = method.generator.decoder[-1][-2]  # the convolution whose output enters the tanh
    output_conv.register_forward_hook(lambda module, inputs, out: extremes.update(low=out.min().item(), high=out.max().item()))
    rows = []
    for step in range(1, steps + 1):
        batch = torch.from_numpy(np.stack([next(clips) for _ in range(batch_size)])).float() / 255
        if background == "gray":
            batch = 0.25 + 0.5 * batch
        logs = method.training_step(batch)
        if step % every == 0:
            rows.append({"background": background, "step": step, "reconstruction": logs["reconstruction"],
                         "pred_mean": logs["pred_mean"], "target_mean": logs["target_mean"],
                         "pre_tanh_min": extremes["low"], "pre_tanh_max": extremes["high"]})
            print(" ".join(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}"
                           for key, value in rows[-1].items()), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=120)
    parser.add_argument("--every", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default="benchmarks/curves")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [row for background in ("black", "gray") for row in run(background, args.preset, args.steps, args.every, args.seed)]
    path = Path(args.out) / f"bouncing_balls-villegas-{args.preset}-saturation.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
