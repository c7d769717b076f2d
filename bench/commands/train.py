"""``bench train``: train a method on a dataset's training clips, resuming from its checkpoint."""
from __future__ import annotations

import click

from .. import registry
from ..distributed import world_from_env
from ..runner import choose_preset
from ..train import train
from ._options import (
    compile_option, data_dir_option, dataset_options_option, device_option, method_settings_option, parse_pairs,
    precision_option, preset_option, say,
)


@click.command("train", short_help="Train METHOD on DATASET, resuming from its last checkpoint.")
@click.option("--method", required=True, help="Method name, e.g. frnn.")
@click.option("--dataset", required=True, help="Dataset name, e.g. mmnist.")
@preset_option
@click.option("--steps", type=click.IntRange(min=1), default=None, help="Train up to this step (default: the preset's budget).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Clips per step, over all processes (default: the preset's).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation and the data stream.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Where checkpoints live (default: $BENCH_CHECKPOINT_DIR, else checkpoints/).")
@click.option("--init-from", type=click.Path(dir_okay=False), default=None,
              help="Start a new run from the weights of another checkpoint of the same method.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=100, show_default=True)
@click.option("--keep", type=click.IntRange(min=1), default=5, show_default=True, help="Step snapshots to keep.")
@click.option("--log-every", type=click.IntRange(min=1), default=10, show_default=True, help="Steps per log row.")
@device_option
@precision_option
@compile_option
@click.option("--data-workers", type=click.IntRange(min=0), default=1, show_default=True,
              help="Background processes drawing the training clips (0: in the training process; more than 1 "
                   "draws other, still repeatable, clips).")
@data_dir_option
@dataset_options_option
@method_settings_option
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(method, dataset, preset, steps, batch_size, seed, checkpoint_dir, init_from, checkpoint_every, keep,
            log_every, device, precision, compile_step, data_workers, data_dir, dataset_options, method_settings,
            quiet):
    """Train METHOD on DATASET up to --steps; resumes from the last checkpoint.

    Checkpoints: <checkpoint-dir>/<dataset>/<method>-<preset>.pt, with a CSV log beside them
    (losses, steps/s, sequences/s). Multi-GPU: torchrun --nproc_per_node N -m bench train ...
    """
    main = world_from_env().is_main
    preset, why = choose_preset(preset)
    if main:
        say(f"Using {why}.")
    data = registry.datasets.get(dataset)(data_dir=data_dir, **parse_pairs(dataset_options, "-o/--option"))
    summary = train(
        method, data, preset=preset, overrides=parse_pairs(method_settings, "--set"), steps=steps,
        batch_size=batch_size, seed=seed, checkpoint_dir=checkpoint_dir, init_from=init_from, device=device,
        every=checkpoint_every, keep=keep, log_every=log_every, progress=not quiet, precision=precision,
        compile=compile_step, data_workers=data_workers, echo=say,
    )
    if main:
        click.echo(summary.describe())
