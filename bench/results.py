"""Result files, written atomically (temp file in the same folder, then rename).

Per (dataset, method) cell, under ``results/<dataset>/``:

* ``<method>.csv``: one row per predicted step: ``step, mse, mse_se, psnr, psnr_se, dssim, dssim_se,
  n`` (se = standard error over test sequences), then ``psnr_inf``, the number of infinite PSNRs
  (identical frames) dropped from that step's PSNR mean.
* ``<method>.npz``: per-sequence x step arrays ``mse``, ``psnr``, ``dssim`` (N, 10), plus the
  qualitative examples ``examples_index``, ``examples_context``, ``examples_target``,
  ``examples_pred`` (uint8 frames).
* ``<method>.json``: metadata (method, preset, config, dataset, conventions, costs, ...).

``results/summary.csv`` (Table 2 style) is rebuilt from all cells after every write. Its 10-step
value is the mean of the per-step means (the paper's Table 2); its standard error is taken over
sequences of each sequence's 10-step mean.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BenchError
from .metrics import finite_mean

METRICS = ("mse", "psnr", "dssim")
STEP_COLUMNS = ["step", "mse", "mse_se", "psnr", "psnr_se", "dssim", "dssim_se", "n", "psnr_inf"]


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def step_rows(per_sequence: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """The per-step table: means and standard errors over sequences, infinite PSNRs dropped."""
    stats = {name: finite_mean(per_sequence[name], axis=0) for name in METRICS}
    n_seq, steps = per_sequence["mse"].shape
    rows = []
    for step in range(steps):
        row: dict[str, Any] = {"step": step + 1}
        for name in METRICS:
            mean, se, _ = stats[name]
            row[name], row[f"{name}_se"] = float(mean[step]), float(se[step])
        row["n"] = n_seq
        row["psnr_inf"] = int(n_seq - stats["psnr"][2][step])
        rows.append(row)
    return rows


def ten_step_summary(per_sequence: dict[str, np.ndarray]) -> dict[str, float]:
    """Table 2 values: mean of per-step means, with the standard error of per-sequence means."""
    out: dict[str, float] = {}
    for name in METRICS:
        values = np.asarray(per_sequence[name], dtype=np.float64)
        step_means = finite_mean(values, axis=0)[0]
        finite = np.where(np.isfinite(values), values, np.nan)
        with warnings.catch_warnings():  # a sequence whose 10 PSNRs are all infinite gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            per_seq = np.nanmean(finite, axis=1)
        out[name] = float(np.mean(step_means))
        out[f"{name}_se"] = float(finite_mean(per_seq, axis=0)[1])
    return out


def cell_paths(results_dir: Path, dataset: str, method: str) -> dict[str, Path]:
    base = Path(results_dir) / dataset / method
    return {ext: base.with_suffix(f".{ext}") for ext in ("csv", "npz", "json")}


def write_cell(results_dir: Path, dataset: str, method: str, per_sequence: dict[str, np.ndarray],
               examples: dict[str, np.ndarray], metadata: dict[str, Any]) -> dict[str, Path]:
    """Write one cell's three files (the JSON last: its presence marks the cell complete)."""
    paths = cell_paths(results_dir, dataset, method)
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=STEP_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(step_rows(per_sequence))
    atomic_write(paths["csv"], text.getvalue().encode())
    arrays = io.BytesIO()
    np.savez_compressed(arrays, **per_sequence, **examples)
    atomic_write(paths["npz"], arrays.getvalue())
    atomic_write(paths["json"], (json.dumps(metadata, indent=2, sort_keys=True, default=str) + "\n").encode())
    write_summary(results_dir)
    return paths


def read_metadata(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BenchError(f"cannot read result metadata {path}: {error}") from None


def read_per_sequence(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path) as data:
            return {name: data[name] for name in METRICS}
    except (OSError, ValueError, KeyError) as error:
        raise BenchError(f"cannot read per-sequence results {path}: {error}") from None


def cells(results_dir: Path) -> list[tuple[str, str]]:
    """(dataset, method) of every complete cell under ``results_dir``, sorted."""
    found = []
    for meta in sorted(Path(results_dir).glob("*/*.json")):
        if meta.with_suffix(".npz").is_file() and meta.parent.name != "reference":
            found.append((meta.parent.name, meta.stem))
    return found


def write_summary(results_dir: Path) -> Path:
    """Rebuild ``summary.csv``: one row per (dataset, method), 10-step means, SEs, then costs."""
    rows, cost_keys = [], []
    for dataset, method in cells(results_dir):
        paths = cell_paths(results_dir, dataset, method)
        meta = read_metadata(paths["json"])
        row = {"dataset": dataset, "method": method, "preset": meta.get("preset", "")}
        row.update(ten_step_summary(read_per_sequence(paths["npz"])))
        costs = meta.get("costs", {})
        for key in costs:
            if key not in cost_keys and not isinstance(costs[key], (dict, list)):
                cost_keys.append(key)
        rows.append((row, costs))
    columns = ["dataset", "method", "preset", *METRICS, *(f"{m}_se" for m in METRICS), *cost_keys]
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row, costs in rows:
        writer.writerow({**row, **{key: costs.get(key, "") for key in cost_keys}})
    target = Path(results_dir) / "summary.csv"
    atomic_write(target, text.getvalue().encode())
    return target
