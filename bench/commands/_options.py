"""Click options and parsers shared by several commands."""
from __future__ import annotations

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
