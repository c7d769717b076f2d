"""``bench ablate``: the layer-removal analysis of :mod:`bench.ablate`."""
from __future__ import annotations

from pathlib import Path

import click

from ..ablate import ablate
from ..grid import EvalRequest
from ..runner import choose_preset
from ._options import dataset_settings, evaluation_options, say


@click.command("ablate", short_help="Layer-removal analysis: evaluate METHOD at every depth.")
@click.option("--method", required=True, help="A method that supports predict(..., depth=k), e.g. frnn.")
@click.option("--dataset", required=True, help="Dataset name, e.g. mmnist.")
@evaluation_options
def command(method, dataset, preset, device, data_dir, dataset_options, test_file, limit, batch_size, seed,
            checkpoint_dir, no_train, results_dir, quiet):
    """Evaluate METHOD at every depth (recurrent layers kept) on DATASET: the layer-removal analysis.

    Writes <results-dir>/<dataset>/ablation/<method>.csv (per depth and step), .json and .png.
    """
    preset, why = choose_preset(preset)
    say(f"Using {why}.")
    cell = EvalRequest(method=method, dataset=dataset, preset=preset, data_dir=data_dir,
                dataset_options=dataset_settings(dataset_options, test_file), limit=limit, seed=seed,
                batch_size=batch_size, device=device, checkpoint_dir=checkpoint_dir, train=not no_train)
    paths = ablate(cell, Path(results_dir), progress=not quiet, echo=say)
    click.echo(f"Wrote {paths['csv']}, {paths['json']} and {paths['png']}.")
