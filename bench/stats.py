"""The results of a results folder with their statistics: 10-step means, standard errors, paired tests.

* :class:`Cell`: one complete (dataset, method) result (:class:`bench.results.StoredCell`) with its 10-step
  values (the mean of the 10 per-step means, as the fRNN evaluation does) and their standard errors (of the
  per-sequence 10-step means, infinite PSNRs dropped, so correlation across steps counts), both from
  :func:`bench.longform.ten_step_summary` as in ``summary.csv``; :func:`load_cells` reads them all.
* **Significance**: per dataset and metric, a Wilcoxon signed-rank test over test sequences of the
  per-sequence 10-step values, between the best method and each other one, Holm-corrected within the
  (dataset, metric) family (:func:`significance`). Both methods must be scored on the same test sequences.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import results
from .errors import BenchError
from .longform import ten_step_summary
from .metrics import finite_mean
from .paper import DATASET_ORDER, METHOD_ORDER, order_key
from .protocol import LOWER_IS_BETTER, METRICS

ALPHA = 0.05


@dataclass
class Cell(results.StoredCell):
    """One complete (dataset, method) result, with the statistics the tables and figures need."""

    @cached_property
    def summary(self) -> dict[str, float]:
        """10-step values (mean of the per-step means) and their standard errors over sequences."""
        return ten_step_summary(self.per_sequence)

    def mean(self, metric: str) -> float:
        return self.summary[metric]

    def se(self, metric: str) -> float:
        return self.summary[f"{metric}_se"]

    def sequence_means(self, metric: str) -> np.ndarray:
        """Per-sequence means over the steps, infinite values dropped (NaN where all are infinite)."""
        return finite_mean(self.per_sequence[metric], axis=1)[0]

    @property
    def preset(self) -> str:
        return str(self.meta.get("preset", ""))

    @property
    def n(self) -> int:
        """Test sequences scored."""
        return int(self.curves["n"].max())

    def cost(self, key: str) -> float:
        value = (self.meta.get("costs") or {}).get(key)
        return math.nan if value is None else float(value)


def load_cells(results_dir: str | Path) -> list[Cell]:
    """Every complete cell (``<dataset>/<method>/``) under ``results_dir``, in the paper's order; a warning
    names each damaged cell, which is left out."""
    found = [Cell(**vars(cell)) for cell in results.complete_cells(results_dir)]
    if not found:
        raise BenchError(
            f"no complete results under {results_dir}: expected <dataset>/<method>/ folders written by `bench run`"
        )
    return sorted(found, key=lambda c: (order_key(c.dataset, DATASET_ORDER), order_key(c.method, METHOD_ORDER)))


def datasets_of(cells: list[Cell]) -> list[str]:
    return list(dict.fromkeys(c.dataset for c in cells))


def sequence_counts(cells: list[Cell]) -> dict[str, str]:
    """Dataset -> the number of test sequences its results were scored on (``"200"``, or ``"200–1000"``
    when its methods were scored on different numbers)."""
    counts: dict[str, set[int]] = {}
    for cell in cells:
        counts.setdefault(cell.dataset, set()).add(cell.n)
    return {d: "–".join(str(n) for n in sorted({min(found), max(found)})) for d, found in counts.items()}


def blank_step(cell: Cell) -> int | None:
    """The first step from which ``cell``'s predictions are blank (near-black: mean intensity under 10% of
    the targets'), 1 when they collapsed over all steps, ``None`` when they did not."""
    intensity = cell.meta.get("intensity") or {}
    step = intensity.get("blank_from_step")
    return int(step) if step else 1 if intensity.get("collapsed") else None


def methods_of(cells: list[Cell]) -> list[str]:
    return sorted({c.method for c in cells}, key=lambda m: order_key(m, METHOD_ORDER))


@dataclass
class Comparison:
    """One paired test: ``method`` against the best method of (dataset, metric)."""

    dataset: str
    metric: str
    best: str
    method: str
    n: int
    p: float
    p_holm: float = math.nan

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def best_method(cells: list[Cell], metric: str) -> Cell:
    """The cell with the best 10-step value of ``metric`` (ties: the paper's method order)."""
    sign = 1 if LOWER_IS_BETTER[metric] else -1
    return min(cells, key=lambda c: (sign * c.mean(metric), order_key(c.method, METHOD_ORDER)))


def paired_p(best: np.ndarray, other: np.ndarray) -> tuple[int, float]:
    """(pairs used, two-sided Wilcoxon signed-rank p); NaN when the arrays are unpaired (different lengths)."""
    from scipy.stats import wilcoxon

    if best.shape != other.shape:
        return 0, math.nan
    keep = np.isfinite(best) & np.isfinite(other)
    diff = best[keep] - other[keep]
    if diff.size < 2:
        return int(diff.size), math.nan
    if not np.any(diff):
        return int(diff.size), 1.0
    return int(diff.size), float(wilcoxon(diff[diff != 0]).pvalue)


def holm(pvalues: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count)."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted, running = [math.nan] * len(pvalues), 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def significance(cells: list[Cell]) -> list[Comparison]:
    """Paired tests of the best method against each other one, per dataset and metric."""
    found = []
    for dataset in datasets_of(cells):
        group = [c for c in cells if c.dataset == dataset]
        for metric in METRICS:
            best = best_method(group, metric)
            family = []
            for other in group:
                if other is best:
                    continue
                n, p = paired_p(best.sequence_means(metric), other.sequence_means(metric))
                family.append(Comparison(dataset, metric, best.method, other.method, n, p))
            for comparison, adjusted in zip(family, holm([c.p for c in family])):
                comparison.p_holm = adjusted
            found.extend(family)
    return found
