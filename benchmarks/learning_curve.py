"""Learning curve: a method's test quality as its training goes on, to choose a budget from evidence.

Trains ``--method`` on ``--dataset`` with ``--preset`` (resuming its checkpoint, as ``bench train``
does) and, every ``--every`` steps, scores the saved checkpoint on the first ``--limit`` test
sequences: 10-step MSE, PSNR and DSSIM, and how many predicted steps are blank (mean intensity
under 10% of the target's, the harness's collapse rule). Copy-last and an all-black frame on the
same sequences are the reference lines. Writes ``<out>/<dataset>-<method>-<preset>.csv`` (one row
per point, rewritten as the run goes, so an interrupted run keeps its points and a resumed one
adds to them) and ``.png``. Evaluation time is not counted as training time.

    python benchmarks/learning_curve.py --method frnn --dataset bouncing_balls --every 500 --steps 6000

The final checkpoint is the one ``bench run`` then uses (same checkpoint folder and preset).
"""
from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import bench  # noqa: E402
from bench import checkpoint as ckpt  # noqa: E402
from bench.commands._options import parse_pairs  # noqa: E402
from bench.registry import methods  # noqa: E402
from bench.train import train  # noqa: E402

FIELDS = ["step", "train_minutes", "mse", "psnr", "dssim", "blank_steps", "blank_from_step", "pred_intensity_ratio"]


def score(method, data, limit: int) -> dict:
    result = bench.evaluate(method, data, limit=limit, progress=False, device="cpu")
    intensity = result.metadata["intensity"]
    ratio = np.asarray(intensity["pred_mean"]) / np.maximum(intensity["target_mean"], 1e-12)
    return {
        **{name: float(np.mean(values[np.isfinite(values)])) for name, values in result.per_sequence.items()},
        "blank_steps": int((ratio < 0.1).sum()),
        "blank_from_step": intensity["blank_from_step"] or "",
        "pred_intensity_ratio": " ".join(f"{r:.2f}" for r in ratio),
    }


def load_rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def write_rows(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def plot(path: Path, rows: list[dict], refs: dict[str, dict], title: str) -> None:
    steps = [int(row["step"]) for row in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, metric in zip(axes, ("mse", "dssim", "blank_steps")):
        ax.plot(steps, [float(row[metric]) for row in rows], "o-", color="C0", label=title.split(" ")[0])
        if metric != "blank_steps":
            for (name, ref), color in zip(refs.items(), ("k", "0.6")):
                ax.axhline(ref[metric], color=color, ls="--", label=name)
        ax.set_xlabel("training step")
        ax.set_ylabel(metric if metric != "blank_steps" else "blank predicted steps (of 10)")
        ax.grid(alpha=0.3)
    axes[2].set_ylim(-0.5, 10.5)
    axes[0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--method", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--steps", type=int, default=None, help="train up to this step (default: the preset's)")
    parser.add_argument("--every", type=int, default=500, help="steps between points")
    parser.add_argument("--limit", type=int, default=200, help="test sequences scored per point")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE", help="dataset option")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--init-from", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=int, default=1000, help="checkpoint snapshots kept (default: all)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--out", default="results/curves")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    cls = methods.get(args.method)
    overrides = parse_pairs(tuple(args.overrides), "--set")
    options = parse_pairs(tuple(args.option), "-o/--option")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the MNIST training-digits note
        data = bench.get_dataset(args.dataset, data_dir=args.data_dir, **options)
        data.test_clips(20)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{args.dataset}-{args.method}-{args.preset}"
    rows = load_rows(stem.with_suffix(".csv"))
    refs = {name: score(bench.get_method(name, data.frame_shape, preset="small"), data, args.limit)
            for name in ("baseline",)}
    refs["blank frame"] = score(_BlankFrame(data.frame_shape, {}), data, args.limit)
    print("references:", {k: {m: round(v[m], 5) for m in ("mse", "psnr", "dssim")} for k, v in refs.items()})

    def point(path: Path, step: int) -> None:
        found = ckpt.load(path)
        method = cls(tuple(found["frame_shape"]), found["config"])
        ckpt.restore(method, found, path, rng=False)
        row = {"step": step, "train_minutes": f"{found.get('train_seconds', 0) / 60:.2f}", **score(method, data, args.limit)}
        rows[:] = [r for r in rows if int(r["step"]) != step] + [row]
        rows.sort(key=lambda r: int(r["step"]))
        write_rows(stem.with_suffix(".csv"), rows)
        plot(stem.with_suffix(".png"), rows, refs, f"{args.method} ({args.preset}) on {args.dataset}: "
             f"first {args.limit} test sequences")
        print(f"step {step}: mse {row['mse']:.5f} psnr {row['psnr']:.3f} dssim {row['dssim']:.5f} "
              f"blank steps {row['blank_steps']} ({row['train_minutes']} min)", flush=True)

    summary = train(args.method, data, preset=args.preset, overrides=overrides, steps=args.steps, seed=args.seed,
                    checkpoint_dir=args.checkpoint_dir, init_from=args.init_from, every=args.every, keep=args.keep,
                    progress=False, on_save=point)
    print(summary.describe())


class _BlankFrame(bench.Method):
    """The all-black prediction: what a collapsed method scores."""

    name = "blank"
    trainable = False

    def predict(self, context: torch.Tensor, horizon: int) -> torch.Tensor:
        return torch.zeros(context.shape[0], horizon, *context.shape[2:])


if __name__ == "__main__":
    main()
