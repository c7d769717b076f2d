"""Drift check: every (dataset, method, step, metric) of a results directory against a committed reference.

Both sides are read as long tables (:func:`bench.longform.long_steps`) and merged on (dataset, method,
step, metric); each merged row is one :class:`Difference`.

The reference (``results/reference/<dataset>/<method>.csv``) holds one per-step results CSV per cell: a
cell's ``steps.csv``, and beside it ``<method>.json``: what that result was made from (:func:`made_from`:
preset, training steps, test sequences scored). (It keeps these flat names rather than the cells' folder
layout, so ``git diff`` names the method.)

**Like with like.** Before any value is compared, each result's origin is compared with the reference's:
a result made from another preset, another number of training steps or another number of test
sequences is *not comparable*, reported as such (saying what each was made from), and its values are
not compared; it is not drift. (A reference without its ``.json`` records only its sequence count.)
A value of a comparable result drifts when ``|current - reference| > abs + rel * |reference|`` for its
metric's tolerances (``rel``, ``abs``; defaults in :data:`DEFAULT_TOLERANCES`, overridable per metric).
A changed number of infinite PSNRs dropped, a result without a reference, a reference without a result
and a damaged cell (:func:`bench.results.scan`) are failures too, each named; so are a missing results
folder and a check with nothing to compare. :func:`update_reference` copies the current CSVs and origins
into the reference: the deliberate refresh.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import results, storage
from .errors import BenchError
from .longform import KEYS, labelled, long_steps
from .protocol import METRICS
from .results import read_curves

DEFAULT_TOLERANCES: dict[str, tuple[float, float]] = {  # metric -> (relative, absolute)
    "mse": (0.01, 1e-6),
    "psnr": (0.0, 0.05),
    "dssim": (0.01, 1e-5),
}


def parse_tolerance(text: str) -> tuple[str, tuple[float, float]]:
    """``"mse=0.02,1e-6"`` -> ``("mse", (0.02, 1e-6))``: relative then absolute tolerance."""
    metric, _, values = text.partition("=")
    metric = metric.strip().lower()
    if metric not in METRICS:
        raise BenchError(f"--tolerance {text!r}: the metric must be one of {', '.join(METRICS)}")
    try:
        rel, abs_ = (float(v) for v in values.split(","))
    except ValueError:
        raise BenchError(f"--tolerance {text!r}: write METRIC=REL,ABS, e.g. mse=0.01,1e-6") from None
    if rel < 0 or abs_ < 0 or math.isnan(rel) or math.isnan(abs_):
        raise BenchError(f"--tolerance {text!r}: tolerances must be non-negative numbers")
    return metric, (rel, abs_)


@dataclass
class Difference:
    """One (dataset, method, metric, step) compared with its reference."""

    dataset: str
    method: str
    metric: str
    step: int
    reference: float
    current: float
    allowed: float

    @property
    def diff(self) -> float:
        return self.current - self.reference

    @property
    def ok(self) -> bool:
        if math.isnan(self.reference) or math.isnan(self.current):
            return math.isnan(self.reference) and math.isnan(self.current)
        return abs(self.diff) <= self.allowed


ORIGIN_KEYS = ("preset", "trained_steps", "n_sequences")  # what a result is made from, in the order told


def comparable(reference: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether two results were made alike: same preset, training steps and sequence count (those the
    reference records). The preset of an untrained method (the copy-last baseline) changes nothing."""
    untrained = reference.get("trained_steps", 0) is None and current.get("trained_steps") is None
    return all(current[key] == reference[key] for key in ORIGIN_KEYS
               if key in reference and not (key == "preset" and untrained))


def made_from(meta: dict[str, Any], curves: dict[str, np.ndarray]) -> dict[str, Any]:
    """What a result was made from: method, preset, training steps (``None``: untrained) and the number
    of test sequences scored, from its metadata and per-step CSV."""
    return {"method": meta.get("method"), "preset": meta.get("preset"), "trained_steps": meta.get("trained_steps"),
            "n_sequences": int(curves["n"].max())}


def describe_origin(origin: dict[str, Any]) -> str:
    """``"frnn small, 10000 training steps, 200 sequences"``; the parts a reference does not record are left out."""
    parts = [" ".join(str(origin[key]) for key in ("method", "preset") if origin.get(key))]
    if "trained_steps" in origin:
        steps = origin["trained_steps"]
        parts.append("untrained" if steps is None else f"{steps} training steps")
    parts.append(f"{origin['n_sequences']} sequences")
    return ", ".join(part for part in parts if part)


@dataclass
class Mismatch:
    """A result made otherwise than its reference (preset, training steps or test sequences): not comparable."""

    dataset: str
    method: str
    reference: dict[str, Any]
    current: dict[str, Any]

    def __str__(self) -> str:
        return (f"{self.dataset}/{self.method}: not comparable: reference made from {describe_origin(self.reference)}; "
                f"yours from {describe_origin(self.current)}")


@dataclass
class CheckResult:
    differences: list[Difference] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # missing references/results, changed shapes
    mismatches: list[Mismatch] = field(default_factory=list)  # made otherwise than the reference: not compared

    @property
    def failures(self) -> list[Difference]:
        return [d for d in self.differences if not d.ok]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.failures and not self.mismatches


def _reference_cells(root: Path) -> dict[tuple[str, str], Path]:
    """(dataset, method) -> ``root/<dataset>/<method>.csv``."""
    return {(path.parent.name, path.stem): path for path in sorted(root.glob("*/*.csv"))}


def _reference_origin(path: Path, curves: dict[str, np.ndarray]) -> dict[str, Any]:
    """What the reference CSV ``path`` was made from: its ``.json`` beside it, else only its sequence count."""
    record = path.with_suffix(".json")
    if not record.exists():
        return {"method": path.stem, "n_sequences": int(curves["n"].max())}
    try:
        origin = json.loads(record.read_text())
    except (OSError, ValueError) as error:
        raise BenchError(f"cannot read the reference's origin {record}: {error}") from None
    if not isinstance(origin, dict) or "n_sequences" not in origin:
        raise BenchError(f"{record} does not say what the reference was made from (it needs n_sequences)")
    return origin


def _result_cells(root: Path) -> tuple[dict[tuple[str, str], results.StoredCell], list[results.DamagedCell]]:
    """(dataset, method) -> every complete cell under ``root``, and the damaged cells."""
    complete, damaged = results.scan(root)
    return {(cell.dataset, cell.method): cell for cell in complete}, damaged


def compare(results_dir: str | Path, reference_dir: str | Path,
            tolerances: dict[str, tuple[float, float]] | None = None) -> CheckResult:
    """Compare every cell of ``results_dir`` with ``reference_dir``."""
    results_dir, reference_dir = Path(results_dir), Path(reference_dir)
    if not reference_dir.is_dir():
        raise BenchError(f"reference directory {reference_dir} does not exist; create it with `bench check --update`")
    if not results_dir.is_dir():
        raise BenchError(f"results directory {results_dir} does not exist; run `bench run` (or `.ci/grid "
                         f"{results_dir}`) first, or pass another --results-dir")
    tolerances = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    (current, damaged), reference = _result_cells(results_dir), _reference_cells(reference_dir)
    result = CheckResult()
    result.problems += [str(error) for error in damaged]
    skipped = {(error.dataset, error.method) for error in damaged}
    if not current and not reference and not damaged:
        result.problems.append(f"nothing to compare: no results under {results_dir} and no reference files "
                               f"under {reference_dir}")
    compared = {}  # (dataset, method) -> (current curves, reference curves) of the comparable results
    for key in sorted(set(current) | set(reference)):
        name = f"{key[0]}/{key[1]}"
        if key in skipped:
            continue
        if key not in reference:
            result.problems.append(f"missing reference for {name}: no {reference_dir / key[0] / (key[1] + '.csv')}")
            continue
        if key not in current:
            result.problems.append(f"missing result for {name}: the reference has it, {results_dir} does not")
            continue
        now, ref = current[key].curves, read_curves(reference[key])
        if len(now["step"]) != len(ref["step"]):
            result.problems.append(f"{name}: {len(now['step'])} steps, the reference has {len(ref['step'])}")
            continue
        ref_origin, origin = _reference_origin(reference[key], ref), made_from(current[key].meta, now)
        if not comparable(ref_origin, origin):
            result.mismatches.append(Mismatch(*key, ref_origin, origin))
            continue
        if "psnr_inf" in now and "psnr_inf" in ref and not np.array_equal(now["psnr_inf"], ref["psnr_inf"]):
            result.problems.append(
                f"{name}: {int(now['psnr_inf'].sum())} infinite PSNRs dropped, "
                f"the reference {int(ref['psnr_inf'].sum())}"
            )
        compared[key] = now, ref
    result.differences = _differences(compared, tolerances)
    return result


def _differences(compared: dict[tuple[str, str], tuple[dict, dict]],
                 tolerances: dict[str, tuple[float, float]]) -> list[Difference]:
    """Every value of the compared results against its reference: their long tables merged on
    (dataset, method, step, metric), in the order dataset, method, metric, step."""
    if not compared:
        return []
    import pandas as pd

    def long(side: int):
        return pd.concat([labelled(long_steps(pair[side]), dataset=key[0], method=key[1])
                          for key, pair in compared.items()], ignore_index=True)

    merged = long(0).merge(long(1), on=KEYS, suffixes=("_current", "_reference"), validate="one_to_one")
    merged = merged.sort_values(["dataset", "method", "metric", "step"],
                                key=lambda column: column.map(METRICS.index) if column.name == "metric" else column)
    differences = []
    for row in merged.itertuples():
        rel, abs_ = tolerances[row.metric]
        reference, current = float(row.mean_reference), float(row.mean_current)
        differences.append(Difference(row.dataset, row.method, row.metric, int(row.step), reference, current,
                                      abs_ + rel * abs(reference)))
    return differences


def format_table(result: CheckResult, all_steps: bool = False) -> str:
    """The differences as a text table: per (dataset, method, metric) its worst step, or every step."""
    rows = result.differences
    if not all_steps:
        worst: dict[tuple[str, str, str], Difference] = {}
        for d in rows:
            key = (d.dataset, d.method, d.metric)
            if key not in worst or _excess(d) > _excess(worst[key]):
                worst[key] = d
        rows = list(worst.values())
    header = ("dataset", "method", "metric", "step", "reference", "current", "diff", "allowed", "status")
    lines = [header] + [
        (d.dataset, d.method, d.metric, str(d.step), f"{d.reference:.6g}", f"{d.current:.6g}", f"{d.diff:+.3g}",
         f"{d.allowed:.3g}", "ok" if d.ok else "DRIFT")
        for d in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines] if rows else []
    return "\n".join(text + [f"! {m}" for m in result.mismatches] + [f"! {problem}" for problem in result.problems])


def _excess(d: Difference) -> float:
    """How far past its tolerance a difference is (infinite for a NaN mismatch)."""
    if not d.ok and (math.isnan(d.reference) or math.isnan(d.current)):
        return math.inf
    return 0.0 if math.isnan(d.diff) else abs(d.diff) - d.allowed


def update_reference(results_dir: str | Path, reference_dir: str | Path) -> tuple[list[Path], list[Path]]:
    """Make ``reference_dir`` hold exactly the results CSVs of ``results_dir``, each with its origin
    (:func:`made_from`) beside it: (CSV paths written, CSV paths removed)."""
    results_dir, reference_dir = Path(results_dir), Path(reference_dir)
    cells, damaged = _result_cells(results_dir)
    if damaged:
        raise BenchError(f"cannot refresh the reference from damaged results: {damaged[0]}; redo it with `bench run`")
    if not cells:
        raise BenchError(f"no results under {results_dir} to make a reference from")
    written = []
    for (dataset, method), cell in cells.items():
        target = reference_dir / dataset / f"{method}.csv"
        storage.atomic_write(target, (cell.folder / results.FILES["csv"]).read_bytes())
        origin = json.dumps(made_from(cell.meta, cell.curves), indent=2, sort_keys=True) + "\n"
        storage.atomic_write(target.with_suffix(".json"), origin.encode())
        written.append(target)
    removed = [path for key, path in _reference_cells(reference_dir).items() if key not in cells]
    for path in removed:
        path.unlink()
        path.with_suffix(".json").unlink(missing_ok=True)
    return written, removed
