"""``bench run``: evaluate methods on datasets and write results (training missing checkpoints first)."""
from __future__ import annotations

from pathlib import Path

import click

from .. import registry
from ..errors import BenchError
from ..grid import EvalRequest, run_grid
from ..runner import choose_preset
from ._options import (
    compile_option, dataset_settings, evaluation_options, method_settings_option, parse_pairs, precision_option, say,
    split_names,
)


@click.command("run", short_help="Evaluate METHODS on DATASET (training missing checkpoints first).")
@click.option("--methods", required=True, help="Comma-separated method names, e.g. baseline,frnn.")
@click.option("--dataset", "datasets", required=True, help="Dataset name (or several, comma-separated).")
@evaluation_options
@precision_option
@compile_option
@method_settings_option
@click.option("--test-stride", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start stride of the test windows of video datasets.")
@click.option("--skip-bad", is_flag=True, help="Warn about unreadable videos and evaluate the rest.")
@click.option("--retrain", is_flag=True,
              help="Do not use the weights shipped with vpbench: use or train your own checkpoint.")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run (method, dataset) cells in N parallel processes.")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="CPU threads per cell for training and evaluation (default: the cores, divided by --jobs).")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Run the cells on a Dask distributed cluster.")
@click.option("--force", is_flag=True, help="Redo cells whose results already exist with the same settings.")
def command(methods, datasets, preset, device, precision, compile_step, data_dir, dataset_options, method_settings, test_file,
            test_stride, skip_bad, limit, batch_size, seed, results_dir, checkpoint_dir, no_train, retrain, jobs,
            threads, scheduler, force, quiet):
    """Evaluate METHODS on DATASET: 10 context frames in, 10 predicted, scored per step.

    Writes one folder per cell, results/<dataset>/<method>/ (steps.csv, sequences.npz, meta.json), and
    results/summary.csv. --precision and --compile apply to training missing checkpoints; evaluation
    always runs in fp32.
    """
    preset, why = choose_preset(preset)
    say(f"Using {why}.")
    options = dataset_settings(dataset_options, test_file)
    names = split_names(methods)
    settings = settings_per_method(names, preset, parse_pairs(method_settings, "--set"))
    cells = [
        EvalRequest(
            method=method, dataset=dataset, preset=preset, data_dir=data_dir, dataset_options=options,
            method_options=settings[method], limit=limit, stride=test_stride, seed=seed,
            batch_size=batch_size, device=device, skip_bad=skip_bad, checkpoint_dir=checkpoint_dir,
            train=not no_train, retrain=retrain, threads=threads, precision=precision, compile=compile_step,
        )
        for dataset in split_names(datasets)
        for method in names
    ]
    run_grid(cells, Path(results_dir), jobs=jobs, scheduler=scheduler, force=force, progress=not quiet,
             echo=say)


def settings_per_method(names: list[str], preset: str, settings: dict) -> dict[str, dict]:
    """Give each method the ``--set`` overrides its preset declares (``steps`` means nothing to the
    baseline); a setting that no method declares is an error."""
    declared = {name: set(registry.methods.get(name).presets.get(preset, {})) for name in names}
    for key in settings:
        if not any(key in keys for keys in declared.values()):
            raise BenchError(f"--set {key}: none of the methods {', '.join(names)} has a setting {key!r}")
    return {name: {k: v for k, v in settings.items() if k in declared[name]} for name in names}
