"""``bench ablate``: per-depth metrics of a trained model, and its figure."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import bench
from bench.cli import main
from bench.ablate import AtDepth
from bench.longform import step_rows

DATA = Path(__file__).parents[1] / ".." / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (DATA / "t10k-images-idx3-ubyte.gz").exists(), reason="no MNIST data in ../shared/data")


def test_at_depth_passes_the_depth_to_predict():
    torch.manual_seed(0)
    model = bench.get_method("frnn", (1, 64, 64), preset="tiny").eval()
    context = torch.rand(1, 10, 1, 64, 64)
    wrapped = AtDepth(model, 1)
    assert wrapped.name == "frnn" and wrapped.config["depth"] == 1
    with torch.no_grad():
        assert torch.equal(wrapped.predict(context, 3), model.predict(context, 3, depth=1))


def test_a_method_without_depths_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["ablate", "--method", "baseline", "--dataset", "mmnist", "--preset", "small",
                                       "--data-dir", str(DATA), "--results-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "method 'baseline' does not support layer removal" in result.output


@needs_mnist
def test_ablate_writes_per_depth_metrics_and_a_figure(tmp_path):
    checkpoints, results = tmp_path / "ckpt", tmp_path / "results"
    args = ["--method", "frnn", "--dataset", "mmnist", "--preset", "tiny", "--data-dir", str(DATA),
            "--checkpoint-dir", str(checkpoints), "--device", "cpu"]
    runner = CliRunner()
    trained = runner.invoke(main, ["train", *args, "--quiet"])
    assert trained.exit_code == 0, trained.output
    no_train = runner.invoke(main, ["ablate", *args[:6], "--checkpoint-dir", str(tmp_path / "none"), "--no-train",
                                    "--results-dir", str(results), "--limit", "2"])
    assert no_train.exit_code == 1 and "--no-train" in no_train.output
    out = runner.invoke(main, ["ablate", *args, "--results-dir", str(results), "--limit", "3", "--quiet"])
    assert out.exit_code == 0, out.output
    folder = results / "mmnist" / "ablation"
    with open(folder / "frnn.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["depth"]) for r in rows] == [d for d in (4, 3, 2, 1, 0) for _ in range(10)]
    assert [int(r["step"]) for r in rows[:10]] == list(range(1, 11))
    assert all(int(r["n"]) == 3 for r in rows)
    meta = json.loads((folder / "frnn.json").read_text())
    assert meta["depths"] == [4, 3, 2, 1, 0] and meta["trained_steps"] == 4

    # the full-depth rows are the trained model's ordinary scores; depth 0 repeats one frame
    method = bench.train.trained_method("frnn", bench.get_dataset("mmnist", data_dir=str(DATA)), "tiny",
                                        checkpoint_dir=checkpoints, train_missing=False, progress=False).method
    full = bench.evaluate(method, bench.get_dataset("mmnist", data_dir=str(DATA)), limit=3, progress=False)
    expected = step_rows(full.per_sequence)
    for row, want in zip(rows[:10], expected):
        assert float(row["mse"]) == pytest.approx(want["mse"], rel=1e-6)
        assert float(row["dssim"]) == pytest.approx(want["dssim"], rel=1e-6)
    depth0 = [float(r["mse"]) for r in rows if r["depth"] == "0"]
    assert not np.allclose(depth0, [float(r["mse"]) for r in rows[:10]])

    image = Image.open(folder / "frnn.png")
    assert image.size[0] > image.size[1] > 0  # a wide strip: truth + 5 depth rows of 15 frames
