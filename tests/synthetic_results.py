"""Synthetic result files in the layout `bench run` writes, for the report and check tests."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import shutil
from pathlib import Path

import numpy as np

from bench import results

FRAME_SHAPES = {"mmnist": (1, 64, 64), "kth": (1, 64, 80), "ucf101": (3, 64, 80)}


def per_sequence(quality: float, n: int = 40, seed: int = 0) -> dict[str, np.ndarray]:
    """(n, 10) metric arrays that worsen with the step; higher ``quality`` gives lower errors."""
    rng = np.random.default_rng(seed)
    steps = np.arange(1, 11)
    mse = (0.01 + 0.004 * steps) / quality * rng.uniform(0.7, 1.3, size=(n, 10))
    dssim = (0.05 + 0.01 * steps) / quality * rng.uniform(0.8, 1.2, size=(n, 10))
    return {"mse": mse, "psnr": 10 * np.log10(1 / mse), "dssim": dssim}


def moving_square(shape: tuple[int, int, int], start: int, steps: int = 10, shift: int = 0) -> np.ndarray:
    """uint8 ``(steps, C, H, W)``: a bright 12-pixel square moving 3 pixels right per frame."""
    c, h, w = shape
    frames = np.full((steps, c, h, w), 20, np.uint8)
    for t in range(steps):
        left = (3 * (start + t) + shift) % (w - 12)
        frames[t, :, h // 2 - 6:h // 2 + 6, left:left + 12] = 230
    return frames


def write_cell(root: Path, dataset: str, method: str, arrays: dict[str, np.ndarray], costs: dict | None = None,
               examples: int = 2, preset: str = "tiny", meta: dict | None = None) -> None:
    """The cell ``root/<dataset>/<method>/`` through the harness's own writer (``meta``: more metadata)."""
    shape = FRAME_SHAPES.get(dataset, (1, 64, 64))
    index = np.array([3, 11, 29][:examples])
    shift = sum(map(ord, method)) % 5  # each method's prediction drifts from the truth by its own offset
    frames = {
        "examples_index": index,
        "examples_context": np.stack([moving_square(shape, i) for i in index]),
        "examples_target": np.stack([moving_square(shape, i + 10) for i in index]),
        "examples_pred": np.stack([moving_square(shape, i + 10, shift=shift) for i in index]),
    }
    meta = {"method": method, "preset": preset, "costs": costs or {}, **(meta or {})}
    results.write_cell(root, dataset, method, arrays, frames, meta)


def write_grid(root: Path, datasets=("mmnist", "kth", "ucf101"),
               methods=("baseline", "rladder", "prednet", "srivastava", "mathieu", "villegas", "frnn")) -> None:
    """A full grid: quality rises along ``methods`` (the last is best), costs rise with it."""
    for d, dataset in enumerate(datasets):
        for m, method in enumerate(methods):
            costs = {"params": 1e5 * m, "predict_flops": 2e8 * m, "predict_peak_bytes": 2**20 * (1 + m)}
            write_cell(root, dataset, method, per_sequence(1 + 0.3 * m, seed=10 * d + m), costs)


def cell_from_csv(root: Path, dataset: str, method: str, steps_csv: str, meta: dict | None = None) -> Path:
    """A complete cell whose ``steps.csv`` is ``steps_csv`` (e.g. a reference file) and whose arrays are
    zeros of the right shape, written by hand as the format says: ``meta.json`` (``meta`` and more) lists
    the size and SHA-256 of the two other files."""
    n = int(next(csv.DictReader(io.StringIO(steps_csv)))["n"])
    buffer = io.BytesIO()
    np.savez(buffer, **{metric: np.zeros((n, 10)) for metric in ("mse", "psnr", "dssim")})
    files = {"steps.csv": steps_csv.encode(), "sequences.npz": buffer.getvalue()}
    meta = {**(meta or {}), "method": method, "files": {name: {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
                                        for name, data in files.items()}}
    folder = root / dataset / method
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for name, data in {**files, "meta.json": json.dumps(meta).encode()}.items():
        (folder / name).write_bytes(data)
    return folder
