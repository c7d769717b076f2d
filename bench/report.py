"""``bench report``: Table 2 of the fRNN paper, the significance tests and the figures, from the files under ``results/``.

Only orchestrates: :mod:`bench.stats` reads the complete cells (damaged ones are skipped with a warning
naming them) and computes the 10-step values, standard errors and paired tests; :mod:`bench.tables`
writes ``table2.csv``, ``table2.md``, ``table2.tex`` and ``significance.csv``; :mod:`bench.figures` draws
Fig. 2, the cost-versus-quality scatter and the qualitative strips. ``--paper`` adds the paper's Table 2
rows and Fig. 2 curves (:mod:`bench.paper`).
"""
from __future__ import annotations

from pathlib import Path

from . import storage
from .stats import datasets_of, load_cells, sequence_counts, significance
from .tables import significance_csv, table_csv, table_latex, table_markdown, table_rows


def write_report(results_dir: str | Path, out_dir: str | Path | None = None, paper: bool = False,
                 examples: int = 3, progress: bool = True) -> list[Path]:
    """Tables, significance, Fig. 2, the cost scatter and ``examples`` strips per dataset; the paths written."""
    from tqdm import tqdm

    from . import figures  # matplotlib loads when a report is written, not with the command line

    root = Path(results_dir)
    out = Path(out_dir) if out_dir is not None else root / "report"
    cells = load_cells(root)
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
