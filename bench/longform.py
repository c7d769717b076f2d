"""The results under a results folder as one long pandas table, for notebooks and plotting libraries.

:func:`load_results` reads the complete cells (:func:`bench.results.scan`; damaged ones are left out
with a warning naming them). pandas is imported here only, on first use, so ``import bench`` stays light.
"""
from __future__ import annotations

import os

import numpy as np

from . import results
from .protocol import METRICS

LONG_COLUMNS = ["dataset", "method", "preset", "step", "metric", "mean", "se", "n"]
SEQUENCE_COLUMNS = ["dataset", "method", "preset", "sequence", "step", *METRICS]


def load_results(results_dir: str | os.PathLike = "results", per_sequence: bool = False):
    """Every complete result under ``results_dir`` as a :class:`pandas.DataFrame`.

    By default one row per (dataset, method, step, metric): columns ``dataset, method, preset, step,
    metric, mean, se, n``, where ``mean`` and ``se`` are the mean and standard error over test sequences
    (as in each result's ``steps.csv``) and ``n`` the sequences averaged (for PSNR, those with a finite
    value: identical frames give an infinite PSNR, which is left out of the mean). With ``per_sequence``,
    one row per (dataset, method, test sequence, step): columns ``dataset, method, preset, sequence,
    step, mse, psnr, dssim``, the values as scored (infinite PSNRs kept as ``inf``).

    Example, the Table 2 values (the mean of the 10 per-step means) of a ``bench run``::

        table = bench.load_results("results")
        table.groupby(["dataset", "method", "metric"])["mean"].mean().unstack("metric")
    """
    import pandas as pd

    frames = [(_sequence_rows if per_sequence else _step_rows)(cell) for cell in results.complete_cells(results_dir)]
    columns = SEQUENCE_COLUMNS if per_sequence else LONG_COLUMNS
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.DataFrame({name: np.concatenate([frame[name] for frame in frames]) for name in columns})


def _label(cell: results.StoredCell, rows: int) -> dict[str, np.ndarray]:
    preset = str(cell.meta.get("preset", ""))
    return {"dataset": np.repeat(cell.dataset, rows), "method": np.repeat(cell.method, rows),
            "preset": np.repeat(preset, rows)}


def _step_rows(cell: results.StoredCell) -> dict[str, np.ndarray]:
    curves = cell.curves
    steps = curves["step"].astype(int)
    dropped = curves.get("psnr_inf", np.zeros_like(curves["n"]))
    parts = {"step": [], "metric": [], "mean": [], "se": [], "n": []}
    for metric in METRICS:
        parts["step"].append(steps)
        parts["metric"].append(np.repeat(metric, len(steps)))
        parts["mean"].append(curves[metric])
        parts["se"].append(curves[f"{metric}_se"])
        parts["n"].append((curves["n"] - (dropped if metric == "psnr" else 0)).astype(int))
    out = {name: np.concatenate(values) for name, values in parts.items()}
    return {**_label(cell, len(out["step"])), **out}


def _sequence_rows(cell: results.StoredCell) -> dict[str, np.ndarray]:
    arrays = cell.per_sequence
    n_seq, horizon = arrays["mse"].shape
    out = {"sequence": np.repeat(np.arange(n_seq), horizon), "step": np.tile(np.arange(1, horizon + 1), n_seq)}
    out.update({metric: np.asarray(arrays[metric], dtype=np.float64).reshape(-1) for metric in METRICS})
    return {**_label(cell, n_seq * horizon), **out}
