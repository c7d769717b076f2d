"""Click options, parsers and the message channel shared by several commands."""
from __future__ import annotations

import functools
import json

import click

from ..errors import BenchError


def parse_pairs(pairs: tuple[str, ...], what: str) -> dict[str, object]:
    """``("a=1", "b=x")`` -> ``{"a": 1, "b": "x"}`` (values parsed as JSON where they can be)."""
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise BenchError(f"{what} must look like KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


say = functools.partial(click.echo, err=True)  # progress messages: standard error, so stdout stays the result


def dataset_settings(pairs: tuple[str, ...], test_file: str | None) -> dict[str, object]:
    """The ``-o KEY=VALUE`` dataset options, with ``--test-file`` as the ``test_file`` option."""
    options = parse_pairs(pairs, "-o/--option")
    if test_file:
        options["test_file"] = test_file
    return options


def split_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise BenchError("give at least one name, e.g. --methods baseline")
    return names


data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=str), default=None,
    help="Raw data folder of the dataset (default: $BENCH_DATA_DIR/<folder>, else the download cache).",
)
dataset_options_option = click.option(
    "-o", "--option", "dataset_options", multiple=True, metavar="KEY=VALUE",
    help="A dataset option (see `bench list`), e.g. -o split=paper. Repeatable.",
)
method_settings_option = click.option(
    "--set", "method_settings", multiple=True, metavar="KEY=VALUE",
    help="Override a setting of the method's preset, e.g. --set steps=500. Repeatable.",
)
preset_option = click.option(
    "--preset", default=None,
    help="Method preset: paper, small or tiny (default: paper with a GPU, small without).",
)
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "bf16", "fp16"]), default=None,
    help="Training precision: autocast to bf16/fp16 (fp16 with loss scaling). Default: fp32, or the "
         "checkpoint's when resuming.",
)
compile_option = click.option(
    "--compile", "compile_step", is_flag=True,
    help="Train through torch.compile (slow first steps; eager with a message where unavailable).",
)
device_option = click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")


def evaluation_options(command):
    """The options of the commands that evaluate trained methods (``run``, ``ablate``): test data,
    checkpoints and outputs."""
    options = [
        preset_option, device_option, data_dir_option, dataset_options_option,
        click.option("--test-file", type=click.Path(dir_okay=False), default=None,
                     help="A fixed test-set file (Moving MNIST: Srivastava's mnist_test_seq.npy)."),
        click.option("--limit", type=click.IntRange(min=1), default=None,
                     help="Evaluate only the first N test sequences."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation and training."),
        click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
                     help="Where checkpoints live (default: $BENCH_CHECKPOINT_DIR, else checkpoints/)."),
        click.option("--no-train", is_flag=True, help="Refuse to train a missing checkpoint instead of training it."),
        click.option("--results-dir", type=click.Path(file_okay=False), default="results", show_default=True),
        click.option("--quiet", is_flag=True, help="No progress bars."),
    ]
    for option in reversed(options):  # decorators apply bottom-up; keep the listed order in --help
        command = option(command)
    return command
