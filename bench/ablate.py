"""The layer-removal analysis (fRNN paper, Sec. 4.5 and Fig. 7), made quantitative (``bench ablate``).

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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .errors import BenchError
from .figures import qualitative_strip, save
from .grid import EvalRequest, check_data, load_request
from .longform import step_rows, ten_step_summary
from .method import Method
from .protocol import STEP_COLUMNS
from .registry import methods
from .runner import evaluate
from .storage import atomic_write, ensure_writable


class AtDepth(Method):
    """``method`` as the runner sees it when only its first ``depth`` recurrent layers are kept
    (inference only: the cut model is never trained, so only its prediction costs are measured)."""

    trainable = False

    def __init__(self, method: Method, depth: int):
        super().__init__(method.frame_shape, {**method.config, "depth": depth})
        self.method, self.depth, self.name = method, depth, method.name

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        return self.method.predict(context, horizon, depth=self.depth)


def ablate(cell: EvalRequest, results_dir: Path, progress: bool = True,
           echo: Callable[[str], Any] = print) -> dict[str, Path]:
    """Evaluate ``cell``'s trained method at every depth it declares; write the CSV, JSON and figure."""
    torch.manual_seed(cell.seed)
    if not hasattr(methods.get(cell.method), "depths"):
        raise BenchError(
            f"method {cell.method!r} does not support layer removal: it declares no `depths` "
            "(and no predict(..., depth=k))"
        )
    base = Path(results_dir) / cell.dataset / "ablation" / cell.method
    check_data(cell)
    ensure_writable(base.parent, "results folder", "--results-dir")
    dataset, method, weights = load_request(cell, progress)
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
    meta = {"method": cell.method, "preset": cell.preset, "request": cell.key(), "depths": depths,
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
