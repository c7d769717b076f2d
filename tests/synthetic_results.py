"""Synthetic result files in the layout `bench run` writes, for the report and check tests."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from bench.metrics import finite_mean

FRAME_SHAPES = {"mmnist": (1, 64, 64), "kth": (1, 64, 80), "ucf101": (3, 64, 80)}


def per_sequence(quality: float, n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """(n, 10) metric arrays that worsen with the step; higher ``quality`` gives lower errors."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 11)
    mse = (0.01 + 0.004 * steps) / quality * rng.uniform(0.7, 1.3, size=(n, 10))
    dssim = (0.05 + 0.01 * steps) / quality * rng.uniform(0.8, 1.2, size=(n, 10))
    return {"mse": mse, "psnr": 10 * np.log10(1 / mse), "dssim": dssim}


def write_cell(root: Path, dataset: str, method: str, arrays: dict[str, np.ndarray], costs: dict | None = None,
               examples: int = 2, preset: str = "tiny", npz: bool = True) -> None:
    """``root/<dataset>/<method>.csv|.json|.npz`` from per-sequence arrays (and example frames)."""
    folder = root / dataset
    folder.mkdir(parents=True, exist_ok=True)
    stats = {m: finite_mean(arrays[m]) for m in ("mse", "psnr", "dssim")}
    with open(folder / f"{method}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "mse", "mse_se", "psnr", "psnr_se", "dssim", "dssim_se", "n"])
        for k in range(arrays["mse"].shape[1]):
            writer.writerow([k + 1, *(repr(float(stats[m][i][k])) for m in ("mse", "psnr", "dssim") for i in (0, 1)),
                             int(stats["mse"][2][k])])
    meta = {"method": method, "preset": preset, "costs": costs or {}}
    (folder / f"{method}.json").write_text(json.dumps(meta))
    if npz:
        c, h, w = FRAME_SHAPES.get(dataset, (1, 64, 64))
        rng = np.random.default_rng(7)  # the same context and targets for every method
        index = np.array([3, 11, 29][:examples])
        context = rng.integers(0, 256, size=(examples, 10, c, h, w), dtype=np.uint8)
        target = rng.integers(0, 256, size=(examples, 10, c, h, w), dtype=np.uint8)
        pred = np.full_like(target, sum(map(ord, method)) % 256)
        np.savez(folder / f"{method}.npz", **arrays, examples_index=index, examples_context=context,
                 examples_target=target, examples_pred=pred)


def write_grid(root: Path, datasets=("mmnist", "kth", "ucf101"),
               methods=("baseline", "rladder", "prednet", "srivastava", "mathieu", "villegas", "frnn")) -> None:
    """A full grid: quality rises along ``methods`` (the last is best), costs rise with it."""
    for d, dataset in enumerate(datasets):
        for m, method in enumerate(methods):
            costs = {"params": 1e5 * m, "flops_predict": 2e8 * m, "peak_memory_predict_bytes": 2**20 * (1 + m)}
            write_cell(root, dataset, method, per_sequence(1 + 0.3 * m, seed=10 * d + m), costs)
