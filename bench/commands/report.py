"""``bench report``: Table 2 (csv, md, tex), significance, Fig. 2, cost scatter and strips from results/."""
from __future__ import annotations

from pathlib import Path

import click

from ..report import write_report


@click.command("report", short_help="Write Table 2, Fig. 2, the cost-quality plot and example strips.")
@click.option("--results-dir", "--results", "results_dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="Where `bench run` wrote its <dataset>/<method>/ folders.")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), default=None,
              help="Output folder  [default: RESULTS_DIR/report].")
@click.option("--paper", is_flag=True, help="Overlay the paper's Table 2 and Fig. 2 numbers.")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Qualitative strips per dataset (test sequences whose predictions `bench run` saved).")
def command(results_dir: Path, out_dir: Path | None, paper: bool, examples: int) -> None:
    """Write the paper's Table 2 and Fig. 2, a cost-vs-quality scatter and qualitative strips."""
    written = write_report(results_dir, out_dir, paper=paper, examples=examples)
    folder = written[0].parent
    click.echo(f"wrote {len(written)} files to {folder}:")
    for path in written:
        click.echo(f"  {path.relative_to(folder)}")
