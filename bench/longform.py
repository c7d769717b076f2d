"""Results as long pandas tables, the one source of every number the harness writes or plots.

From a cell's per-sequence x step arrays (``mse``, ``psnr``, ``dssim``, each ``(N, 10)``):

* :func:`step_table`: one row per (step, metric): ``step, metric, mean, se, n``, the mean and standard
  error over test sequences of the finite values and their count (identical frames give an infinite PSNR,
  which is left out of the mean, as the fRNN evaluation does). Its wide form (:func:`wide_steps`, the
  columns of :data:`bench.protocol.STEP_COLUMNS`) is a cell's ``steps.csv``; :func:`long_steps` reads that
  form back, as ``bench check`` and :func:`bench.results.load_results` do.
* :func:`sequence_table`: one row per (test sequence, step): ``sequence, step, mse, psnr, dssim``.
* :func:`ten_step`: Table 2's values from both: the mean of the 10 per-step means, and the standard error
  over sequences of each sequence's 10-step mean (infinite values dropped), so correlation across steps counts.

pandas is imported on first use, so ``import bench`` stays light.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from .metrics import finite_mean
from .protocol import METRICS, STEP_COLUMNS

if TYPE_CHECKING:
    import pandas as pd

KEYS = ["dataset", "method", "step", "metric"]  # what identifies one row of the long per-step table
LONG_COLUMNS = ["dataset", "method", "preset", "step", "metric", "mean", "se", "n"]
SEQUENCE_COLUMNS = ["dataset", "method", "preset", "sequence", "step", *METRICS]


def step_table(per_sequence: dict[str, np.ndarray]) -> pd.DataFrame:
    """Per (step, metric): mean, standard error and count of the finite per-sequence values."""
    import pandas as pd

    parts = []
    for metric in METRICS:
        mean, se, n = finite_mean(per_sequence[metric], axis=0)
        parts.append(pd.DataFrame({"step": np.arange(1, len(mean) + 1), "metric": metric, "mean": mean, "se": se,
                                   "n": n.astype(int)}))
    return pd.concat(parts, ignore_index=True)


def wide_steps(steps: pd.DataFrame) -> pd.DataFrame:
    """The per-step CSV's columns: each metric's mean and SE, the sequences scored (``n``: every sequence
    has a finite MSE, the runner refuses non-finite predictions) and the infinite PSNRs dropped."""
    wide = steps.pivot(index="step", columns="metric", values=["mean", "se", "n"])
    out = {"step": wide.index.to_numpy()}
    for metric in METRICS:
        out[metric], out[f"{metric}_se"] = wide["mean", metric].to_numpy(), wide["se", metric].to_numpy()
    out["n"] = wide["n"].max(axis=1).to_numpy().astype(int)
    out["psnr_inf"] = out["n"] - wide["n", "psnr"].to_numpy().astype(int)
    return type(steps)(out)[STEP_COLUMNS]


def long_steps(curves: dict[str, np.ndarray]) -> pd.DataFrame:
    """A per-step CSV (as :func:`bench.results.read_curves` gives it) back in the long form of
    :func:`step_table`; a CSV without ``psnr_inf`` (written before it existed) counts no infinite PSNR."""
    import pandas as pd

    steps = curves["step"].astype(int)
    dropped = curves.get("psnr_inf", np.zeros_like(curves["n"]))
    return pd.concat([pd.DataFrame({
        "step": steps, "metric": metric, "mean": curves[metric], "se": curves[f"{metric}_se"],
        "n": (curves["n"] - (dropped if metric == "psnr" else 0)).astype(int)}) for metric in METRICS],
        ignore_index=True)


def sequence_table(per_sequence: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per (test sequence, step) with each metric's value as scored (infinite PSNRs kept)."""
    import pandas as pd

    n_seq, horizon = np.shape(per_sequence[METRICS[0]])
    table = {"sequence": np.repeat(np.arange(n_seq), horizon), "step": np.tile(np.arange(1, horizon + 1), n_seq)}
    table.update({m: np.asarray(per_sequence[m], dtype=np.float64).reshape(-1) for m in METRICS})
    return pd.DataFrame(table)


def labelled(table: pd.DataFrame, **labels: str) -> pd.DataFrame:
    """``table`` with constant columns ``labels`` (e.g. dataset, method, preset) put first."""
    return table.assign(**labels)[[*labels, *table.columns]]


def ten_step(steps: pd.DataFrame, sequences: pd.DataFrame, keys: Sequence[str] = ("dataset", "method")) -> pd.DataFrame:
    """Per ``keys`` (no keys: the whole table is one cell): each metric's 10-step value (the mean of its
    per-step means; NaN when a step has none) and ``<metric>_se``, the standard error of the per-sequence
    means of its finite values."""
    def groups(table):
        return [table[key] for key in keys] or [np.zeros(len(table), dtype=int)]

    means = (steps.groupby([*groups(steps), steps["metric"]])["mean"]  # NaN when a step has no finite value
             .apply(lambda values: values.mean(skipna=False)).unstack("metric")[list(METRICS)])
    finite = sequences[list(METRICS)].where(np.isfinite(sequences[list(METRICS)]))
    per_sequence = finite.groupby([*groups(sequences), sequences["sequence"]]).mean()  # NaN: none finite
    se = per_sequence.groupby(level=list(range(len(groups(sequences))))).sem()
    return means.join(se.add_suffix("_se"))


def step_rows(per_sequence: dict[str, np.ndarray]) -> list[dict]:
    """The rows of a cell's ``steps.csv``, as dicts keyed by :data:`bench.protocol.STEP_COLUMNS`."""
    return wide_steps(step_table(per_sequence)).to_dict("records")


def ten_step_summary(per_sequence: dict[str, np.ndarray]) -> dict[str, float]:
    """One cell's Table 2 values (:func:`ten_step`): ``mse, psnr, dssim`` and ``<metric>_se``."""
    row = ten_step(step_table(per_sequence), sequence_table(per_sequence), keys=()).iloc[0]
    return {key: float(value) for key, value in row.items()}
