"""Table 2 of the fRNN paper as text: CSV, Markdown and LaTeX, and the significance CSV.

Rows come from :func:`table_rows`: one per method (and, with ``paper``, the paper's row under each method
it reports, italic, bold where it beats the best of ours). Each cell is the 10-step mean ± its standard
error, the best of ours per column in bold, a dagger where a method is not significantly different from
the best (:mod:`bench.stats`), then the costs; the footnote states the test sequences scored per dataset.
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field

from .paper import dataset_label, paper_table
from .protocol import DECIMALS, LOWER_IS_BETTER, METRIC_LABELS, METRICS
from .stats import ALPHA, Cell, Comparison, best_method, blank_step, datasets_of, methods_of

COSTS = (  # key in the metadata's "costs", column title, prefix base, unit
    ("params", "Params", 1000, ""),
    ("predict_flops", "FLOPs", 1000, ""),
    ("predict_peak_bytes", "Peak mem.", 1024, "B"),
)


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
    scored = "; ".join(f"{dataset_label(d)} n = {n}" for d, n in counts.items())
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
        [f"{dataset_label(d)} {METRIC_LABELS[m]}" for m in METRICS]
        + [f"{dataset_label(d)} {title}" for _, title, *_ in COSTS]
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
    groups = " & ".join(f"\\multicolumn{{{width}}}{{c}}{{{_tex(dataset_label(d))} ($n = {counts[d]}$)}}"
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
