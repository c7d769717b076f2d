"""``bench ablate``: the layer-removal analysis (fRNN paper, Fig. 7), made quantitative.

A trained model is evaluated again and again, keeping only its first k recurrent layers (k from the
full depth down to 0), with no fine-tuning. Works for any method whose ``predict`` takes a
``depth=k`` keyword and that lists the depths it accepts in a ``depths`` attribute. Writes, under
``<results-dir>/<dataset>/ablation/``:

* ``<method>.csv``: per depth and predicted step, the columns of ``bench run``'s CSV after ``depth``;
* ``<method>.json``: the method, preset, checkpoint, depths and their 10-step means;
* ``<method>.png``: one test sequence, its targets, then one row of predicted frames per depth.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import click
import torch

from ..errors import BenchError
from ..figures import qualitative_strip, save
from ..grid import Cell, load_cell
from ..registry import methods
from ..results import STEP_COLUMNS, step_rows, ten_step_summary
from ..runner import choose_preset, evaluate
from ..storage import atomic_write, ensure_writable
from ._options import data_dir_option, dataset_options_option, device_option, parse_pairs, preset_option


class AtDepth(torch.nn.Module):
    """``method`` as the runner sees it when only its first ``depth`` recurrent layers are kept
    (inference only: the cut model is never trained, so only its prediction costs are measured)."""

    trainable = False

    def __init__(self, method, depth: int):
        super().__init__()
        self.method, self.depth = method, depth
        self.name, self.frame_shape = method.name, method.frame_shape
        self.config = {**method.config, "depth": depth}

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.method.predict(context, horizon, depth=self.depth)


def ablate(cell: Cell, results_dir: Path, progress: bool = True, echo=print) -> dict[str, Path]:
    """Evaluate ``cell``'s trained method at every depth it declares; write the CSV, JSON and figure."""
    torch.manual_seed(cell.seed)
    if not hasattr(methods.get(cell.method), "depths"):
        raise BenchError(
            f"method {cell.method!r} does not support layer removal: it declares no `depths` "
            "(and no predict(..., depth=k))"
        )
    base = Path(results_dir) / cell.dataset / "ablation" / cell.method
    ensure_writable(base.parent, "results folder", "--results-dir")
    dataset, method, weights = load_cell(cell, progress)
    depths = list(method.depths)
    rows, summary, strips = [], {}, {}
    for depth in depths:
        echo(f"Depth {depth}: {cell.method} with its first {depth} recurrent layer(s).")
        result = evaluate(AtDepth(method, depth), dataset, limit=cell.limit, batch_size=cell.batch_size,
                          device=cell.device, progress=progress)
        rows += [{"depth": depth, **row} for row in step_rows(result.per_sequence)]
        summary[depth] = ten_step_summary(result.per_sequence)
        strips[f"depth {depth}"] = result.examples["examples_pred"][0]
        examples = result.examples
    paths = {ext: base.with_suffix(f".{ext}") for ext in ("csv", "json", "png")}
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=["depth", *STEP_COLUMNS], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write(paths["csv"], text.getvalue().encode())
    meta = {"method": cell.method, "preset": cell.preset, "request": cell.request(), "depths": depths,
            "ten_step_means": {str(d): means for d, means in summary.items()},
            "n_sequences": rows[0]["n"], **weights}
    atomic_write(paths["json"], (json.dumps(meta, indent=2, sort_keys=True) + "\n").encode())
    index = int(examples["examples_index"][0])
    fig = qualitative_strip(cell.dataset, index, examples["examples_context"][0], examples["examples_target"][0], strips)
    fig.suptitle(f"{cell.method} ({cell.preset}): layer removal, one row per number of recurrent layers kept", fontsize=9)
    save(fig, paths["png"])
    for depth, means in summary.items():
        echo(f"  depth {depth}: MSE {means['mse']:.5f}  PSNR {means['psnr']:.3f}  DSSIM {means['dssim']:.5f}")
    return paths


@click.command("ablate", short_help="Layer-removal analysis: evaluate METHOD at every depth.")
@click.option("--method", required=True, help="A method that supports predict(..., depth=k), e.g. frnn.")
@click.option("--dataset", required=True, help="Dataset name, e.g. mmnist.")
@preset_option
@device_option
@data_dir_option
@dataset_options_option
@click.option("--test-file", type=click.Path(dir_okay=False), default=None,
              help="A fixed test-set file (Moving MNIST: Srivastava's mnist_test_seq.npy).")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N test sequences.")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation and training.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False), default=None,
              help="Where checkpoints live (default: checkpoints/).")
@click.option("--no-train", is_flag=True, help="Refuse to train a missing checkpoint instead of training it.")
@click.option("--results-dir", type=click.Path(file_okay=False), default="results", show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bars.")
def command(method, dataset, preset, device, data_dir, dataset_options, test_file, limit, batch_size, seed,
            checkpoint_dir, no_train, results_dir, quiet):
    """Evaluate METHOD at every depth (recurrent layers kept) on DATASET: the layer-removal analysis.

    Writes <results-dir>/<dataset>/ablation/<method>.csv (per depth and step), .json and .png.
    """
    preset, why = choose_preset(preset)
    click.echo(f"Using {why}.", err=True)
    options = parse_pairs(dataset_options, "-o/--option")
    if test_file:
        options["test_file"] = test_file
    cell = Cell(method=method, dataset=dataset, preset=preset, data_dir=data_dir, dataset_options=options,
                limit=limit, seed=seed, batch_size=batch_size, device=device, checkpoint_dir=checkpoint_dir,
                train=not no_train)
    paths = ablate(cell, Path(results_dir), progress=not quiet, echo=lambda line: click.echo(line, err=True))
    click.echo(f"Wrote {paths['csv']}, {paths['json']} and {paths['png']}.")
