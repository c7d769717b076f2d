"""Table 2 of the fRNN paper from the files under ``results/``, with standard errors, significance and costs.

Reads the complete cells ``results/<dataset>/<method>/`` (:mod:`bench.results`; damaged ones are skipped
with a warning naming them): ``steps.csv`` (per-step means and standard errors), ``sequences.npz``
(per-sequence x step arrays, for standard errors of the 10-step means and for the paired tests) and
``meta.json`` (metadata, ``costs``). Writes ``table2.csv``, ``table2.md``, ``table2.tex``, ``significance.csv`` and, through
:mod:`bench.figures`, Fig. 2, the cost-versus-quality scatter and the qualitative strips.

* **10-step value**: the mean of the 10 per-step means (as the fRNN evaluation does); its standard error
  is that of the per-sequence 10-step means (infinite PSNRs dropped), so correlation across steps counts
  (both from :func:`bench.results.ten_step_summary`, as in ``summary.csv``).
* **Significance**: per dataset and metric, a Wilcoxon signed-rank test over test sequences of the
  per-sequence 10-step values, between the best method and each other one, Holm-corrected within the
  (dataset, metric) family. A dagger marks a method not significantly different from the best
  (corrected p >= :data:`ALPHA`). Both methods must be scored on the same test sequences.
* **--paper**: the paper's Table 2 (shipped as ``bench/reference/table2_paper.csv``, with the paper's
  "lotter" renamed ``prednet``) as an extra row under each method it reports. Methods and datasets
  are listed in that table's order (the paper's), others after them alphabetically.
"""
from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from . import results, storage
from .errors import BenchError
from .protocol import DECIMALS, LOWER_IS_BETTER, METRIC_LABELS, METRICS

DATASET_LABELS = {"mmnist": "Moving MNIST", "kth": "KTH", "ucf101": "UCF101"}
COSTS = (  # key in the metadata's "costs", column title, prefix base, unit
    ("params", "Params", 1000, ""),
    ("predict_flops", "FLOPs", 1000, ""),
    ("predict_peak_bytes", "Peak mem.", 1024, "B"),
)
ALPHA = 0.05


@dataclass
class Cell(results.StoredCell):
    """One complete (dataset, method) result, with the statistics the tables and figures need."""

    @cached_property
    def summary(self) -> dict[str, float]:
        """10-step values (mean of the per-step means) and their standard errors over sequences."""
        return results.ten_step_summary(self.per_sequence)

    def mean(self, metric: str) -> float:
        return self.summary[metric]

    def se(self, metric: str) -> float:
        return self.summary[f"{metric}_se"]

    def sequence_means(self, metric: str) -> np.ndarray:
        """Per-sequence means over the steps, infinite values dropped (NaN where all are infinite)."""
        values = self.per_sequence[metric]
        finite = np.isfinite(values)
        counts = finite.sum(axis=1)
        return np.where(counts > 0, np.where(finite, values, 0).sum(axis=1) / np.maximum(counts, 1), np.nan)

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


def load_results(results_dir: str | Path) -> list[Cell]:
    """Every complete cell (``<dataset>/<method>/``) under ``results_dir``, in the paper's order; a warning
    names each damaged cell, which is left out."""
    root = Path(results_dir)
    if not root.is_dir():
        raise BenchError(f"results directory {root} does not exist; run `bench run` first or pass --results-dir")
    complete, damaged = results.scan(root)
    for error in damaged:
        warnings.warn(f"{error}; left out of the report until `bench run` redoes it", stacklevel=2)
    found = [Cell(**vars(cell)) for cell in complete]
    if not found:
        raise BenchError(
            f"no complete results under {root}: expected <dataset>/<method>/ folders written by `bench run`"
        )
    return sorted(found, key=lambda c: (order_key(c.dataset, DATASET_ORDER), order_key(c.method, METHOD_ORDER)))


def order_key(name: str, order: tuple[str, ...]) -> tuple[int, str]:
    """Known names in the paper's order first, then the others alphabetically."""
    return (order.index(name) if name in order else len(order), name)


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


# --- significance -----------------------------------------------------------------------------------


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


# --- tables -----------------------------------------------------------------------------------------


@dataclass
class Entry:
    """One table cell: value, standard error, best flag and significance marker."""

    value: float
    se: float = math.nan
    best: bool = False
    tied: bool = False  # not significantly different from the best


@dataclass
class Row:
    method: str
    source: str  # "ours" or "paper"
    preset: str
    entries: dict[tuple[str, str], Entry]  # (dataset, metric) -> Entry
    costs: dict[tuple[str, str], float]  # (dataset, cost key) -> value
    p: dict[tuple[str, str], float] = field(default_factory=dict)
    blank: list[str] = field(default_factory=list)  # "D" or "D from step k": predictions collapsed to black
    n: dict[str, int] = field(default_factory=dict)  # dataset -> test sequences scored (ours only)


def table_rows(cells: list[Cell], comparisons: list[Comparison], paper: bool = False) -> list[Row]:
    """Rows of Table 2: one per method (and one per paper row under it with ``paper``)."""
    by_key = {(c.dataset, c.method): c for c in cells}
    tests = {(c.dataset, c.metric, c.method): c for c in comparisons}
    datasets = datasets_of(cells)
    best = {(d, m): best_method([c for c in cells if c.dataset == d], m) for d in datasets for m in METRICS}
    reference = paper_table() if paper else {}
    rows = []
    for method in methods_of(cells):
        mine = [by_key[d, method] for d in datasets if (d, method) in by_key]
        entries, p = {}, {}
        for cell in mine:
            for metric in METRICS:
                test = tests.get((cell.dataset, metric, method))
                tied = test is not None and not math.isnan(test.p_holm) and not test.significant
                entries[cell.dataset, metric] = Entry(
                    cell.mean(metric), cell.se(metric), best[cell.dataset, metric].method == method, tied
                )
                p[cell.dataset, metric] = test.p_holm if test else math.nan
        costs = {(c.dataset, key): c.cost(key) for c in mine for key, *_ in COSTS}
        presets = "/".join(dict.fromkeys(c.preset for c in mine if c.preset))
        blank = [note for c in mine if (note := _blank(c))]
        rows.append(Row(method, "ours", presets, entries, costs, p, blank, {c.dataset: c.n for c in mine}))
        published = {}
        for d in (d for d in datasets if (d, method) in reference):
            for metric in METRICS:  # bold where the paper's value beats the best of ours
                value = reference[d, method][metric]
                published[d, metric] = Entry(value, best=_better(value, best[d, metric].mean(metric), metric))
        if published:
            rows.append(Row(method, "paper", "", published, {}))
    return rows


def _better(value: float, than: float, metric: str) -> bool:
    return value < than if LOWER_IS_BETTER[metric] else value > than


def table_csv(rows: list[Row], datasets: list[str]) -> str:
    """Machine-readable Table 2: per dataset, the test sequences scored, each metric's value, SE and
    Holm-corrected p, then costs."""
    header = ["method", "source", "preset", "blank_on"]
    for d in datasets:
        header += [f"{d}_n"] + [f"{d}_{m}{suffix}" for m in METRICS for suffix in ("", "_se", "_p")]
        header += [f"{d}_{key}" for key, *_ in COSTS]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        line = [row.method, row.source, row.preset, " ".join(row.blank)]
        for d in datasets:
            line.append(row.n.get(d, ""))
            for m in METRICS:
                entry = row.entries.get((d, m))
                line += [_num(entry.value if entry else math.nan), _num(entry.se if entry else math.nan),
                         _num(row.p.get((d, m), math.nan))]
            line += [_num(row.costs.get((d, key), math.nan)) for key, *_ in COSTS]
        writer.writerow(line)
    return out.getvalue()


def _num(value: float) -> str:
    return "" if math.isnan(value) else repr(float(value))


def _value(entry: Entry | None, metric: str) -> tuple[str, str]:
    """(value, "± se") as text; dashes when absent."""
    if entry is None or math.isnan(entry.value):
        return "–", ""
    text = f"{entry.value:.{DECIMALS[metric]}f}"
    return text, "" if math.isnan(entry.se) else f"{entry.se:.{DECIMALS[metric]}f}"


def _cost(value: float | None, base: int, unit: str) -> str:
    """Three significant digits with a prefix: 10371 -> "10.4k", 3.3e9 -> "3.3G", 807436 B -> "789KiB"."""
    if value is None or math.isnan(value):
        return "–"
    prefixes = ("", "k", "M", "G", "T", "P")
    power = 0
    while abs(value) >= 999.5 * base**power and power < len(prefixes) - 1:
        power += 1
    prefix = prefixes[power].upper() + "i" if base == 1024 and power else prefixes[power]
    return f"{value / base**power:.3g}{prefix}{unit}"


def _blank(cell: Cell) -> str | None:
    """``"D"`` when the predictions on dataset D collapsed to black, ``"D from step k"`` when only from step k."""
    step = blank_step(cell)
    return None if step is None else cell.dataset if step == 1 else f"{cell.dataset} from step {step}"


def _label(row: Row) -> str:
    if row.source == "paper":
        return f"{row.method} (paper)"
    label = f"{row.method} [{row.preset}]" if row.preset else row.method
    return label + (f" (blank on {', '.join(row.blank)})" if row.blank else "")


NOTES = (
    "10-step means ± standard error over the n test sequences scored; best of ours per column in bold; "
    "† = not significantly different from the best (two-sided Wilcoxon signed-rank test over test "
    f"sequences, Holm-corrected, p ≥ {ALPHA}). Costs: parameters, FLOPs of one predict(10 → 10) "
    "for one sequence, peak memory of that call. \"blank on D\": the predictions on D collapsed to near-black "
    "frames (mean intensity under 10% of the targets'), so their scores are those of a blank frame; "
    "\"from step k\": every step from k on is blank."
)
PAPER_NOTE = "The paper's values (italic) are in bold where they beat the best of ours."


def notes(rows: list[Row], counts: dict[str, str]) -> str:
    """The table's footnote: how to read it, the test sequences per dataset, and the paper rows if any."""
    scored = "; ".join(f"{DATASET_LABELS.get(d, d)} n = {n}" for d, n in counts.items())
    paper = any(row.source == "paper" for row in rows)
    return f"Test sequences scored: {scored}. " + NOTES + (" " + PAPER_NOTE if paper else "")


@dataclass(frozen=True)
class Style:
    """How a table format writes a best value, a paper value, a standard error, a tie and a gap."""

    bold: str
    italic: str
    with_se: str
    dagger: str
    dash: str


MARKDOWN = Style("**{}**", "*{}*", "{} ± {}", "†", "–")
LATEX = Style("\\textbf{{{}}}", "\\textit{{{}}}", "{}\\,{{\\scriptsize$\\pm${}}}", "$^\\dagger$", "--")


def _cells(row: Row, datasets: list[str], style: Style) -> list[str]:
    """One table row's cells: per dataset, the metrics then the costs."""
    cells = []
    for d in datasets:
        for m in METRICS:
            entry = row.entries.get((d, m))
            value, se = _value(entry, m)
            value = value.replace("–", style.dash)
            if row.source == "paper" and entry is not None:
                value = style.italic.format(value)
            if entry is not None and entry.best:
                value = style.bold.format(value)
            if se:
                value = style.with_se.format(value, se)
            if entry is not None and entry.tied:
                value += style.dagger
            cells.append(value)
        cells += [_cost(row.costs.get((d, key)), base, unit).replace("–", style.dash) if row.source == "ours" else ""
                  for key, _, base, unit in COSTS]
    return cells


def table_markdown(rows: list[Row], datasets: list[str], counts: dict[str, str]) -> str:
    columns = [c for d in datasets for c in (
        [f"{DATASET_LABELS.get(d, d)} {METRIC_LABELS[m]}" for m in METRICS]
        + [f"{DATASET_LABELS.get(d, d)} {title}" for _, title, *_ in COSTS]
    )]
    lines = ["| Method | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in rows:
        lines.append(f"| {_label(row)} | " + " | ".join(_cells(row, datasets, MARKDOWN)) + " |")
    return "\n".join(lines) + "\n\n" + notes(rows, counts) + "\n"


def _tex(text: str) -> str:
    return text.replace("\\", "\\textbackslash{}").replace("_", "\\_").replace("&", "\\&").replace("%", "\\%")


def table_latex(rows: list[Row], datasets: list[str], counts: dict[str, str]) -> str:
    """A booktabs table (needs ``booktabs`` and ``graphicx``); each dataset's header states its n."""
    width = len(METRICS) + len(COSTS)
    spec = "l" + ("c" * width) * len(datasets)
    groups = " & ".join(f"\\multicolumn{{{width}}}{{c}}{{{_tex(DATASET_LABELS.get(d, d))} ($n = {counts[d]}$)}}"
                        for d in datasets)
    rules = " ".join(f"\\cmidrule(lr){{{2 + i * width}-{1 + (i + 1) * width}}}" for i in range(len(datasets)))
    names = [METRIC_LABELS[m] for m in METRICS] + [_tex(title) for _, title, *_ in COSTS]
    lines = [
        "% Table 2 (vpbench); needs \\usepackage{booktabs,graphicx}",
        "\\begin{table*}", "\\centering", "\\resizebox{\\textwidth}{!}{%", f"\\begin{{tabular}}{{{spec}}}",
        "\\toprule", f"Method & {groups} \\\\", rules, "& " + " & ".join(names * len(datasets)) + " \\\\", "\\midrule",
    ]
    for row in rows:
        lines.append(f"{_tex(_label(row))} & " + " & ".join(_cells(row, datasets, LATEX)) + " \\\\")
    caption = _tex(notes(rows, counts)).replace("±", "$\\pm$").replace("†", "$^\\dagger$").replace("≥", "$\\geq$")
    caption = caption.replace("→", "$\\to$")
    lines += ["\\bottomrule", "\\end{tabular}}", f"\\caption{{{caption}}}", "\\end{table*}"]
    return "\n".join(lines) + "\n"


def significance_csv(comparisons: list[Comparison]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["dataset", "metric", "best", "method", "n", "p", "p_holm", "significant"])
    for c in comparisons:
        significant = "" if math.isnan(c.p_holm) else str(c.significant).lower()
        writer.writerow([c.dataset, c.metric, c.best, c.method, c.n, _num(c.p), _num(c.p_holm), significant])
    return out.getvalue()


# --- the whole report --------------------------------------------------------------------------------


def write_report(results_dir: str | Path, out_dir: str | Path | None = None, paper: bool = False,
                 examples: int = 3, progress: bool = True) -> list[Path]:
    """Tables, significance, Fig. 2, the cost scatter and ``examples`` strips per dataset; the paths written."""
    from tqdm import tqdm

    from . import figures

    root = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else root / "report"
    cells = load_results(root)
    storage.ensure_writable(out, "report folder", "--out")
    datasets = datasets_of(cells)
    comparisons = significance(cells)
    rows = table_rows(cells, comparisons, paper)
    counts = sequence_counts(cells)
    written = []

    def text(name: str, content: str) -> None:
        written.append(out / name)
        storage.atomic_write(out / name, content.encode())

    with tqdm(total=3 + len(datasets), desc="report", unit="part", disable=not progress) as bar:
        text("table2.csv", table_csv(rows, datasets))
        text("table2.md", table_markdown(rows, datasets, counts))
        text("table2.tex", table_latex(rows, datasets, counts))
        text("significance.csv", significance_csv(comparisons))
        bar.update()
        written += figures.save(figures.fig2(cells, paper), out / "fig2.png", out / "fig2.pdf")
        bar.update()
        scatter = figures.cost_scatter(cells)
        if scatter is not None:
            written += figures.save(scatter, out / "cost_quality.png", out / "cost_quality.pdf")
        bar.update()
        for dataset in datasets:
            for index, fig in figures.example_strips(cells, dataset, examples):
                written += figures.save(fig, out / "strips" / f"{dataset}_{index}.png")
            bar.update()
    return written


#: The paper's order of datasets and methods (Table 2's rows), used to sort tables, figures and colours.
DATASET_ORDER = tuple(dict.fromkeys(dataset for dataset, _ in paper_table()))
METHOD_ORDER = tuple(dict.fromkeys(method for _, method in paper_table()))
