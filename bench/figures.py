"""The report's figures: Fig. 2 of the fRNN paper, cost versus quality, and qualitative strips.

* :func:`fig2`: rows = the datasets present (each titled with its n, the test sequences scored),
  columns = MSE, PSNR, DSSIM (the y labels); x = predicted step; one seaborn line per method with a band
  and error bars of one standard error, both computed from the per-sequence values (:func:`fig2_table`;
  infinite PSNRs left out, their count in the panel's title), the baseline in black; a dotted vertical
  line in the method's colour, labelled "<method> blank", from the step at which a method predicts blank
  frames (so a flat tail is not read as a prediction); ``paper=True`` adds the paper's curves dashed in the same colour (note: for
  mathieu and prednet the paper's curves predate its Table 2 and do not average to it).
* :func:`cost_scatter`: PSNR (10-step mean, SE bars) against FLOPs of one ``predict(10 -> 10)`` (top
  row) and against peak memory of predict (bottom row), one column per dataset; labels kept inside the axes.
* :func:`strip_canvas` / :func:`qualitative_strip`: the style of the paper's Figs. 3-6: the last 5
  context frames and the 10 targets, then one row per method with its 10 predictions framed in yellow.

Figures are built on :class:`matplotlib.figure.Figure` directly (no pyplot state, no GUI backend); seaborn
draws into its axes.
"""
from __future__ import annotations

import io
import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from .errors import BenchError
from .longform import labelled, sequence_table
from .paper import METHOD_ORDER, dataset_label, paper_curves
from .protocol import HORIZON, METRIC_LABELS, METRICS
from .stats import Cell, blank_step, datasets_of, methods_of, sequence_counts
from .storage import atomic_write

if TYPE_CHECKING:
    import pandas as pd

YELLOW = (255, 221, 0)
WHITE = 255
CONTEXT_SHOWN = 5
_PALETTE = ("black", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:blue",
            "tab:pink", "tab:olive", "tab:cyan", "tab:gray")


def method_colors(methods: list[str]) -> dict[str, str]:
    """A fixed colour per method: the baseline black, the paper's methods always the same colour."""
    extra = iter(_PALETTE[len(METHOD_ORDER):] * (1 + len(methods)))
    return {m: _PALETTE[METHOD_ORDER.index(m)] if m in METHOD_ORDER else next(extra) for m in methods}




Y_LABELS = {"mse": "MSE (lower is better)", "psnr": "PSNR in dB (higher is better)",
            "dssim": "DSSIM (lower is better)"}


def fig2_table(cells: list[Cell]) -> pd.DataFrame:
    """Fig. 2's data: the per-sequence long table of ``cells`` (:func:`bench.longform.sequence_table`),
    one row per (dataset, method, sequence, step, metric) with its ``value``; infinite values (PSNRs of
    identical frames) are NaN, so they are left out of the means and standard errors, as in ``steps.csv``."""
    import pandas as pd

    table = pd.concat([labelled(sequence_table(c.per_sequence), dataset=c.dataset, method=c.method) for c in cells],
                      ignore_index=True)
    table = table.melt(id_vars=["dataset", "method", "sequence", "step"], value_vars=list(METRICS),
                       var_name="metric", value_name="value")
    return table.assign(value=table["value"].where(np.isfinite(table["value"])))


def fig2(cells: list[Cell], paper: bool = False) -> Figure:
    """Per dataset (rows) and metric (columns), seaborn line plots of :func:`fig2_table`: each method's mean
    per step with a band and error bars of one standard error over test sequences."""
    import seaborn as sns

    datasets, methods, colors = datasets_of(cells), methods_of(cells), method_colors(methods_of(cells))
    counts = sequence_counts(cells)
    reference = paper_curves() if paper else {}
    table = fig2_table(cells)
    fig = Figure(figsize=(12, 1.2 + 3 * len(datasets)), layout="constrained")
    axes = fig.subplots(len(datasets), len(METRICS), squeeze=False)
    for (row, dataset), (col, metric) in itertools.product(enumerate(datasets), enumerate(METRICS)):
        ax, panel = axes[row, col], table[(table["dataset"] == dataset) & (table["metric"] == metric)]
        for method in (m for m in methods if (dataset, m) in {(c.dataset, c.method) for c in cells}):
            data, color = panel[panel["method"] == method], colors[method]
            sns.lineplot(data=data, x="step", y="value", errorbar="se", err_style="band", color=color, marker="o",
                         markersize=4, markeredgewidth=0, label=method, legend=False, ax=ax)
            # error bars too, so the standard error stays visible where the band is thin
            sns.lineplot(data=data, x="step", y="value", errorbar="se", err_style="bars", color=color, linestyle="",
                         err_kws={"capsize": 3, "elinewidth": 1}, legend=False, ax=ax)
            curve = reference.get((dataset, method, metric))
            if curve is not None:
                ax.plot(np.arange(1, len(curve) + 1), curve, color=color, linestyle="--", label=f"{method} (paper)")
        _mark_blank_steps(ax, [c for c in cells if c.dataset == dataset], colors)
        dropped = int(panel["value"].isna().sum())
        ax.set_title(f"{dataset_label(dataset)} (n = {counts[dataset]}): {METRIC_LABELS[metric]}"
                     + (f" ({dropped} infinite left out)" if dropped else ""))
        ax.set_ylabel(Y_LABELS[metric])
        ax.set_xlabel("predicted step" if row == len(datasets) - 1 else "")
        ax.set_xticks(range(1, 11))
        ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.flat:
        for handle, text in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(text, handle)
    # One column per method (its paper curve below it), at most 7 columns.
    fig.legend(handles.values(), handles.keys(), loc="outside lower center", ncol=min(len(colors), 7),
               fontsize="small")
    return fig


def _mark_blank_steps(ax, cells: list[Cell], colors: dict[str, str]) -> None:
    """A dotted vertical line, labelled "<method> blank", at the step from which each method of ``cells``
    predicts blank frames; the labels stack down from the top of the axes, right of the line, or left of
    it for a step in the second half (so that the label stays inside the axes)."""
    marked = [(cell, step) for cell in cells if (step := blank_step(cell)) is not None]
    for row, (cell, step) in enumerate(marked):
        color, late = colors[cell.method], step > HORIZON / 2
        ax.axvline(step, color=color, linestyle=":", linewidth=1.5)
        ax.annotate(f"{cell.method} blank →", (step, 1), xycoords=("data", "axes fraction"),
                    xytext=(-3 if late else 3, -4 - 11 * row), textcoords="offset points",
                    ha="right" if late else "left", va="top", fontsize=7, color=color)


def cost_scatter(cells: list[Cell]) -> Figure | None:
    """PSNR against predict FLOPs and peak memory; None when no result carries costs."""
    axes_spec = (("predict_flops", 1e9, "GFLOPs of predict(10 → 10)"),
                 ("predict_peak_bytes", 2**20, "peak memory of predict (MiB)"))
    if not any(math.isfinite(c.cost(key)) for c in cells for key, *_ in axes_spec):
        return None
    datasets, colors = datasets_of(cells), method_colors(methods_of(cells))
    fig = Figure(figsize=(4.5 * len(datasets), 7.5), layout="constrained")
    axes = fig.subplots(len(axes_spec), len(datasets), squeeze=False)
    for col, dataset in enumerate(datasets):
        for row, (key, scale, title) in enumerate(axes_spec):
            ax = axes[row, col]
            points = [(c, c.cost(key) / scale) for c in cells if c.dataset == dataset and math.isfinite(c.cost(key))]
            for cell, x in points:
                se = cell.se("psnr")
                ax.errorbar(x, cell.mean("psnr"), yerr=None if math.isnan(se) else se, fmt="o",
                            color=colors[cell.method], label=cell.method, capsize=3)
            positive = [x for _, x in points if x > 0]
            if positive and max(positive) / min(positive) > 100:  # log, with room for a zero (copy-last)
                # a decade as the linear range, so its ticks (0, 10^k) sit a decade apart, not on each other
                ax.set_xscale("symlog", linthresh=10.0 ** math.floor(math.log10(min(positive))))
            ax.margins(x=0.08, y=0.12)
            _label_points(ax, [(cell.method, x, cell.mean("psnr")) for cell, x in points])
            ax.set_title(f"{dataset_label(dataset)}: PSNR vs {'FLOPs' if row == 0 else 'memory'}")
            ax.set_xlabel(title)
            ax.set_ylabel("PSNR (dB, 10-step mean)")
            ax.grid(alpha=0.3)
    return fig


def _label_points(ax, points: list[tuple[str, float, float]]) -> None:
    """Name each point beside it, on its left in the right half of the axes, so labels stay inside."""
    ax.autoscale_view()
    to_axes = ax.transData + ax.transAxes.inverted()
    for text, x, y in points:
        right = to_axes.transform((x, y))[0] > 0.5
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(-5 if right else 5, 4),
                    ha="right" if right else "left", fontsize=8)


def _rgb(frames: np.ndarray) -> np.ndarray:
    """uint8 ``(T, C, H, W)`` with C = 1 or 3 -> ``(T, H, W, 3)``."""
    if frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise BenchError(f"qualitative examples must be (T, C, H, W) with 1 or 3 channels, got {frames.shape}")
    return np.repeat(frames, 3, axis=1).transpose(0, 2, 3, 1) if frames.shape[1] == 1 else frames.transpose(0, 2, 3, 1)


def strip_canvas(context: np.ndarray, target: np.ndarray, predictions: list[np.ndarray],
                 border: int = 2, gap: int = 2) -> np.ndarray:
    """One image ``(rows * (H + 2b + g) - g, cols * (W + 2b + g) - g, 3)`` uint8 on white.

    Row 0: the last :data:`CONTEXT_SHOWN` context frames then the targets; row ``1 + i``: blank under
    the context, then ``predictions[i]``'s frames, each inside a yellow ``border``.
    """
    shown = _rgb(context[-CONTEXT_SHOWN:])
    targets = _rgb(target)
    height, width = targets.shape[1:3]
    cell_h, cell_w = height + 2 * border + gap, width + 2 * border + gap
    rows, cols = 1 + len(predictions), len(shown) + len(targets)
    canvas = np.full((rows * cell_h - gap, cols * cell_w - gap, 3), WHITE, dtype=np.uint8)

    def put(row: int, col: int, frame: np.ndarray, framed: bool) -> None:
        top, left = row * cell_h, col * cell_w
        if framed:
            canvas[top:top + height + 2 * border, left:left + width + 2 * border] = YELLOW
        canvas[top + border:top + border + height, left + border:left + border + width] = frame

    for col, frame in enumerate(np.concatenate([shown, targets])):
        put(0, col, frame, framed=False)
    for row, predicted in enumerate(predictions, start=1):
        frames = _rgb(predicted)
        if frames.shape != targets.shape:
            raise BenchError(f"predictions of shape {predicted.shape} do not match the targets {target.shape}")
        for step, frame in enumerate(frames):
            put(row, len(shown) + step, frame, framed=True)
    return canvas


def qualitative_strip(dataset: str, index: int, context: np.ndarray, target: np.ndarray,
                      predictions: dict[str, np.ndarray]) -> Figure:
    """The strip of test sequence ``index`` with one row per method of ``predictions``."""
    canvas = strip_canvas(context, target, list(predictions.values()))
    rows, cols = 1 + len(predictions), min(CONTEXT_SHOWN, len(context)) + len(target)
    fig = Figure(figsize=(0.75 * cols + 1.5, 0.75 * rows + 0.6), layout="constrained")
    ax = fig.subplots()
    ax.imshow(canvas, interpolation="nearest")
    cell_h, cell_w = (canvas.shape[0] + 2) / rows, (canvas.shape[1] + 2) / cols
    ax.set_yticks([(r + 0.5) * cell_h for r in range(rows)], ["ground truth", *predictions])
    first = len(context) - min(CONTEXT_SHOWN, len(context)) + 1
    ax.set_xticks([(c + 0.5) * cell_w for c in range(cols)], [str(first + c) for c in range(cols)], fontsize=7)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"{dataset_label(dataset)}, test sequence {index}: context, targets, predictions (yellow)", fontsize=9)
    return fig


def example_strips(cells: list[Cell], dataset: str, count: int) -> list[tuple[int, Figure]]:
    """Strips for up to ``count`` test sequences whose examples every method of ``dataset`` saved."""
    group = [c for c in cells if c.dataset == dataset and "examples_index" in c.examples]
    if not group:
        return []
    common = set(group[0].examples["examples_index"].tolist())
    for cell in group[1:]:
        common &= set(cell.examples["examples_index"].tolist())
    chosen = [i for i in group[0].examples["examples_index"].tolist() if i in common][:count]
    strips = []
    for index in chosen:
        predictions = {}
        for cell in group:
            position = cell.examples["examples_index"].tolist().index(index)
            predictions[cell.method] = cell.examples["examples_pred"][position]
        position = group[0].examples["examples_index"].tolist().index(index)
        first = group[0].examples
        strips.append((index, qualitative_strip(
            dataset, index, first["examples_context"][position], first["examples_target"][position], predictions)))
    return strips


def save(fig: Figure, *paths: Path) -> list[Path]:
    """Write ``fig`` to each path (format from the suffix), atomically; the paths."""
    for path in paths:
        buffer = io.BytesIO()
        fig.savefig(buffer, format=path.suffix[1:], dpi=150)
        atomic_write(path, buffer.getvalue())
    return list(paths)
