"""``bench profile``: what each method costs (parameters, FLOPs, peak memory, latency), as a table and a CSV."""
from __future__ import annotations

import csv
import io
from pathlib import Path

import click
import torch
from tqdm import tqdm

from .. import get_method, registry
from ..errors import BenchError
from ..profile import measure_costs
from ..runner import choose_device, choose_preset
from ..storage import atomic_write, ensure_writable
from ._options import method_settings_option, parse_pairs, preset_option, split_names

# (header, cost key, scale, format) of the printed table; the CSV keeps the raw numbers.
TABLE = [
    ("params (M)", "params", 1e-6, "{:.3f}"),
    ("predict GFLOPs", "predict_flops", 1e-9, "{:.4g}"),
    ("predict GMACs", "predict_macs", 1e-9, "{:.4g}"),
    ("train GFLOPs", "train_flops", 1e-9, "{:.4g}"),
    ("predict peak MiB", "predict_peak_bytes", 2**-20, "{:.1f}"),
    ("train peak MiB", "train_peak_bytes", 2**-20, "{:.1f}"),
    ("latency ms", "latency_ms_median", 1, "{:.2f}"),
    ("IQR ms", "latency_ms_iqr", 1, "{:.2f}"),
    ("train steps/s", "train_steps_per_s", 1, "{:.3g}"),
]


@click.command("profile", short_help="Measure parameters, FLOPs, memory and latency of METHODS.")
@click.option("--methods", required=True, help="Comma-separated method names, e.g. frnn,rladder.")
@click.option("--dataset", required=True, help="Dataset whose frame shape to use (its data are not needed).")
@preset_option
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N, or meta (FLOPs, parameters and memory only, computed from shapes).")
@click.option("--batch-size", type=click.IntRange(min=1), default=1, show_default=True,
              help="Sequences per predict call (predict FLOPs are given per sequence).")
@click.option("--train-batch-size", type=click.IntRange(min=1), default=None,
              help="Clips per training step (default: --batch-size; Mathieu needs 2 or more).")
@click.option("--repeats", type=click.IntRange(min=1), default=10, show_default=True,
              help="Timed predict calls (after the measured one).")
@click.option("--train-steps", type=click.IntRange(min=0), default=3, show_default=True,
              help="Timed training steps (after the measured one; 0: training is not timed).")
@method_settings_option
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for initialisation and inputs.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="CSV to write (default: results/profile_<dataset>_<preset>.csv).")
def command(methods, dataset, preset, device, batch_size, train_batch_size, repeats, train_steps, method_settings,
            seed, out):
    """Measure what METHODS cost on DATASET's frame shape: parameters, FLOPs and MACs of one
    predict(10 -> 10) and one training step, peak memory, predict latency and training speed."""
    preset, why = choose_preset(preset)
    click.echo(f"Using {why}.", err=True)
    device = torch.device("meta") if device == "meta" else choose_device(device)
    frame_shape = tuple(registry.datasets.get(dataset).frame_shape)
    out = out or Path("results") / f"profile_{dataset}_{preset}.csv"
    if out.is_dir():
        raise BenchError(f"--out {out} is a folder; give the CSV file to write")
    ensure_writable(out.parent, "output folder", "--out")
    overrides = parse_pairs(method_settings, "--set")
    rows = []
    for name in tqdm(split_names(methods), desc="profiling", unit="method", leave=False):
        torch.manual_seed(seed)
        with torch.device(device):
            method = get_method(name, frame_shape, preset, **overrides)
        method.to(device)
        costs = measure_costs(method, batch_size, device, repeats=repeats, train_steps=train_steps,
                              train_batch_size=train_batch_size, seed=seed)
        rows.append({"dataset": dataset, "method": name, "preset": preset,
                     "frame_shape": "x".join(map(str, frame_shape)), **costs})
        del method
    first = rows[0]
    click.echo(
        f"{dataset} frames {first['frame_shape']}, preset {preset}, device {first['device']}, {first['dtype']}, "
        f"batch {batch_size}, training batch {first['train_batch_size']}. FLOPs: 2 per multiply-add of matmuls "
        f"and convs; predict: 10 -> 10 frames of one sequence; train: one step. Memory: {first['memory_source']}."
    )
    click.echo(format_table(rows))
    for row in rows:
        if row.get("meta_skipped"):
            click.echo(f"note: {row['method']}'s training was not measured on meta: {row['meta_skipped']}.")
    reads = ", ".join(f"{row['method']} {row['meta_value_reads']}" for row in rows if row.get("meta_value_reads"))
    if reads:
        click.echo(f"note: on meta every value read from a tensor (e.g. loss.item()) is 1 (reads: {reads}); "
                   "a method that branches on one (a GAN's switching rule) is measured on that branch.")
    atomic_write(out, _csv(rows).encode())  # after the table: a failure here still leaves the numbers shown
    click.echo(f"Wrote {out}", err=True)


def format_table(rows: list[dict]) -> str:
    """A fixed-width table of ``rows`` (cost dicts with a ``method``), '-' where a value is missing."""
    cells = [["method", *(header for header, *_ in TABLE)]]
    for row in rows:
        cells.append([row["method"], *(
            "-" if row.get(key) is None else fmt.format(row[key] * scale) for _, key, scale, fmt in TABLE
        )])
    widths = [max(len(line[i]) for line in cells) for i in range(len(cells[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
             for line in cells]
    return "\n".join([lines[0], "-" * len(lines[0]), *lines[1:]])


def _csv(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
