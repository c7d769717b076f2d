"""The fRNN paper's published numbers, shipped inside the package, and the paper's order of datasets and methods.

* :func:`paper_table`: its Table 2 (``bench/reference/table2_paper.csv``, with the paper's "lotter" renamed
  ``prednet``); :func:`paper_curves`: its Fig. 2 curves (``bench/reference/fig2_curves.csv``).
* :data:`DATASET_ORDER`, :data:`METHOD_ORDER`: Table 2's order, used to sort tables, figures and colours
  (:func:`order_key`: known names in that order first, then the others alphabetically).
"""
from __future__ import annotations

import csv
import io
from importlib import resources

import numpy as np

from .protocol import METRICS



def dataset_label(name: str) -> str:
    """How tables and figures name dataset ``name``: its plugin's ``label``, else the name itself."""
    from .registry import UnknownNameError, datasets

    try:
        return datasets.get(name).label or name
    except UnknownNameError:  # results of a plugin that is not installed here
        return name


def paper_table() -> dict[tuple[str, str], dict[str, float]]:
    """The paper's Table 2: (dataset, method) -> {metric: value}, in the paper's order."""
    text = resources.files("bench").joinpath("reference/table2_paper.csv").read_text()
    return {
        (row["dataset"], row["method"]): {m: float(row[m]) for m in METRICS}
        for row in csv.DictReader(io.StringIO(text))
    }


def paper_curves() -> dict[tuple[str, str, str], np.ndarray]:
    """The paper's Fig. 2 curves: (dataset, method, metric) -> values at steps 1..10."""
    text = resources.files("bench").joinpath("reference/fig2_curves.csv").read_text()
    points: dict[tuple[str, str, str], dict[int, float]] = {}
    for row in csv.DictReader(io.StringIO(text)):
        key = (row["dataset"], row["method"], row["metric"])
        points.setdefault(key, {})[int(row["step"])] = float(row["value"])
    return {key: np.array([steps[s] for s in sorted(steps)]) for key, steps in points.items()}


def order_key(name: str, order: tuple[str, ...]) -> tuple[int, str]:
    """Known names in the paper's order first, then the others alphabetically."""
    return (order.index(name) if name in order else len(order), name)


#: The paper's order of datasets and methods (Table 2's rows), used to sort tables, figures and colours.
DATASET_ORDER = tuple(dict.fromkeys(dataset for dataset, _ in paper_table()))
METHOD_ORDER = tuple(dict.fromkeys(method for _, method in paper_table()))
