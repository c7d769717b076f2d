"""``bench check``: fail (exit 1) when a result drifts from the committed reference."""
from __future__ import annotations

from pathlib import Path

import click

from ..check import DEFAULT_TOLERANCES, compare, format_table, parse_tolerance, update_reference

_DEFAULTS = ", ".join(f"{m}={rel:g},{abs_:g}" for m, (rel, abs_) in DEFAULT_TOLERANCES.items())


@click.command("check", short_help="Compare results with the committed reference; exit 1 on drift.")
@click.option("--results-dir", "--results", "results_dir", type=click.Path(path_type=Path), default=Path("results"),
              show_default=True, help="The results to check.")
@click.option("--reference", "reference_dir", type=click.Path(path_type=Path), default=Path("results/reference"),
              show_default=True, help="The committed reference results.")
@click.option("--tolerance", "tolerances", multiple=True, metavar="METRIC=REL,ABS",
              help=f"Allowed |current - reference| <= ABS + REL*|reference| (repeatable; defaults {_DEFAULTS}).")
@click.option("--all-steps", is_flag=True, help="List every step, not only each metric's worst one.")
@click.option("--update", is_flag=True,
              help="Replace the reference with the current results (a deliberate refresh; review and commit it).")
def command(results_dir: Path, reference_dir: Path, tolerances: tuple[str, ...], all_steps: bool, update: bool) -> None:
    """Compare every (dataset, method, step, metric) with the reference; exit 1 on drift.

    A result made otherwise than the reference (preset, training steps, test sequences) is named as not
    comparable, and its values are not compared."""
    if update:
        written, removed = update_reference(results_dir, reference_dir)
        click.echo(f"reference {reference_dir} now holds {len(written)} results" +
                   (f"; removed {', '.join(str(p) for p in removed)}" if removed else ""))
        return
    result = compare(results_dir, reference_dir, dict(parse_tolerance(t) for t in tolerances))
    click.echo(format_table(result, all_steps))
    if not result.ok:
        drifted = {(d.dataset, d.method) for d in result.failures}
        verdict = [f"{len(result.failures)} values drifted in {len(drifted)} results"]
        if result.mismatches:
            verdict.insert(0, f"{len(result.mismatches)} results not comparable with the reference (made from "
                              "another preset, number of training steps or of test sequences; their values were "
                              "not compared: check results made the way the reference was, or make a reference "
                              "of your own with --update --reference DIR)")
        verdict.append(f"{len(result.problems)} other problems")
        click.echo("FAILED: " + ", ".join(verdict), err=True)
        raise SystemExit(1)
    click.echo(f"ok: {len(result.differences)} values within tolerance")
