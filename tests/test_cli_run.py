"""`bench list` and `bench run` end to end through click's test runner."""
from __future__ import annotations

import csv
import gzip
import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import bench
from bench.cli import main
from bench.method import Method
from bench.registry import register_method

PAPER_BASELINE = {"mse": 0.06989, "psnr": 11.745, "dssim": 0.20718}  # Table 2, Moving MNIST


@register_method("test-nan")
class PredictsNaN(Method):
    """A broken method for tests: predicts NaN on the third sequence of each batch."""

    presets = {"paper": {}, "small": {}, "tiny": {}}
    trainable = False

    def predict(self, context, horizon):
        out = context[:, -1:].repeat(1, horizon, 1, 1, 1)
        out[2:3] = float("nan")
        return out


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def read_summary(path):
    with open(path) as handle:
        return {(row["dataset"], row["method"]): row for row in csv.DictReader(handle)}


def test_list_shows_methods_presets_and_datasets():
    result = run("list", "--json")
    listing = json.loads(result.output)
    assert result.exit_code == 0
    assert "baseline" in listing["methods"] and listing["methods"]["baseline"]["presets"] == ["paper", "small", "tiny"]
    assert listing["datasets"]["mmnist"]["frame_shape"] == [1, 64, 64]
    assert "test_file" in listing["datasets"]["mmnist"]["options"]
    assert "baseline" in run("list").output


def test_list_shows_every_plugin_summary_whole():
    """A summary wrapped over two docstring lines is shown whole, not cut at the line break."""
    listing = json.loads(run("list", "--json").output)
    docs = {name: info["doc"] for kind in ("methods", "datasets") for name, info in listing[kind].items()}
    assert {"convlstm", "predrnn", "simvp", "bouncing_balls"} <= set(docs)
    assert all(doc.endswith(".") and "\n" not in doc for doc in docs.values()), docs
    assert docs["convlstm"].endswith("NeurIPS 2015), as the paper describes it.")


def test_run_baseline_writes_every_result_file(mnist_dir, tmp_path):
    out = tmp_path / "results"
    result = run("run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir", str(mnist_dir),
                 "--limit", "200", "--results-dir", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    assert "preset 'small'" in result.output or "preset 'paper'" in result.output
    with open(out / "mmnist" / "baseline" / "steps.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, 11))
    assert list(rows[0]) == ["step", "mse", "mse_se", "psnr", "psnr_se", "dssim", "dssim_se", "n", "psnr_inf"]
    assert all(int(r["n"]) == 200 for r in rows)
    assert float(rows[0]["mse"]) < float(rows[-1]["mse"])  # copy-last degrades with the horizon
    arrays = np.load(out / "mmnist" / "baseline" / "sequences.npz")
    assert arrays["mse"].shape == (200, 10) and arrays["examples_pred"].dtype == np.uint8
    np.testing.assert_allclose(arrays["mse"].mean(0), [float(r["mse"]) for r in rows])
    meta = json.loads((out / "mmnist" / "baseline" / "meta.json").read_text())
    assert meta["method"] == "baseline" and meta["test"]["n_sequences"] == 200
    assert "population variances" in meta["conventions"]["dssim"]
    assert meta["dataset"]["test_digits"] == "mnist-test[1::2]"
    summary = read_summary(out / "summary.csv")[("mmnist", "baseline")]
    assert float(summary["mse"]) == pytest.approx(np.mean([float(r["mse"]) for r in rows]))
    # A second identical run is skipped; --force redoes it.
    again = run("run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir", str(mnist_dir),
                "--limit", "200", "--results-dir", str(out), "--quiet")
    assert "skipping baseline/small on mmnist" in again.output


def test_baseline_close_to_the_paper_on_a_subset(mnist_dir, tmp_path):
    result = run("run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir", str(mnist_dir),
                 "--limit", "1000", "--results-dir", str(tmp_path), "--quiet")
    assert result.exit_code == 0, result.output
    row = read_summary(tmp_path / "summary.csv")[("mmnist", "baseline")]
    for metric, paper in PAPER_BASELINE.items():
        assert float(row[metric]) == pytest.approx(paper, rel=0.03), metric


@pytest.mark.slow
def test_baseline_within_one_percent_of_the_paper(mnist_dir, tmp_path):
    result = run("run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir", str(mnist_dir),
                 "--results-dir", str(tmp_path), "--quiet")
    assert result.exit_code == 0, result.output
    row = read_summary(tmp_path / "summary.csv")[("mmnist", "baseline")]
    assert int(json.loads((tmp_path / "mmnist" / "baseline" / "meta.json").read_text())["test"]["n_sequences"]) == 10_000
    for metric, paper in PAPER_BASELINE.items():
        assert float(row[metric]) == pytest.approx(paper, rel=0.01), metric


@pytest.mark.parametrize(
    "args, message",
    [
        (["--methods", "baselin", "--dataset", "mmnist"], "unknown method 'baselin'; did you mean 'baseline'?"),
        (["--methods", "baseline", "--dataset", "mnist"], "unknown dataset 'mnist'; did you mean 'mmnist'?"),
        (["--methods", "baseline", "--dataset", "mmnist", "--limit", "0"], "--limit"),
        (["--methods", "baseline", "--dataset", "mmnist", "--limit", "-3"], "--limit"),
        (["--methods", "baseline", "--dataset", "mmnist", "-o", "nokey"], "KEY=VALUE"),
        (["--methods", "baseline", "--dataset", "mmnist", "--preset", "huge"], "no preset 'huge'"),
    ],
)
def test_bad_input_is_one_clear_sentence(mnist_dir, tmp_path, args, message):
    result = CliRunner().invoke(main, ["run", *args, "--data-dir", str(mnist_dir), "--results-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_an_empty_data_folder_uses_the_shipped_test_digits(mnist_dir, tmp_path):
    shipped = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir",
                                        str(tmp_path), "--limit", "20", "--results-dir", str(tmp_path / "a")])
    given = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir",
                                      str(mnist_dir), "--limit", "20", "--results-dir", str(tmp_path / "b")])
    assert shipped.exit_code == given.exit_code == 0, shipped.output + given.output
    assert (tmp_path / "a/mmnist/baseline/steps.csv").read_text() == (tmp_path / "b/mmnist/baseline/steps.csv").read_text()


def test_corrupt_mnist_file_is_named(mnist_dir, tmp_path):
    raw = bytearray(gzip.decompress((mnist_dir / "t10k-images-idx3-ubyte.gz").read_bytes()))
    raw[5000] ^= 0xFF
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(bytes(raw))
    result = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir",
                                       str(tmp_path), "--results-dir", str(tmp_path / "r")])
    assert result.exit_code == 1
    assert "t10k-images-idx3-ubyte is corrupt" in result.output


def test_nan_predictions_are_refused_and_finished_results_kept(mnist_dir, tmp_path):
    ok = run("run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir", str(mnist_dir),
             "--limit", "20", "--results-dir", str(tmp_path), "--quiet")
    assert ok.exit_code == 0
    before = (tmp_path / "mmnist" / "baseline" / "steps.csv").read_bytes()
    bad = CliRunner().invoke(main, ["run", "--methods", "test-nan", "--dataset", "mmnist", "--data-dir",
                                    str(mnist_dir), "--limit", "20", "--results-dir", str(tmp_path), "--quiet"])
    assert bad.exit_code == 1
    assert "method 'test-nan' predicted non-finite values" in bad.output and "test sequence 2" in bad.output
    assert (tmp_path / "mmnist" / "baseline" / "steps.csv").read_bytes() == before
    assert sorted(p.name for p in (tmp_path / "mmnist").iterdir()) == [".baseline.lock", ".test-nan.lock", "baseline"]


def test_python_api_evaluate(mmnist):
    method = bench.get_method("baseline", frame_shape=mmnist.frame_shape, preset="tiny")
    result = bench.evaluate(method, mmnist, limit=8, progress=False)
    assert result.per_sequence["dssim"].shape == (8, 10)
    assert result.metadata["intensity"]["collapsed"] is False
    assert result.metadata["intensity"]["blank_from_step"] is None
    context = torch.rand(2, 10, 1, 64, 64)
    assert torch.equal(method.predict(context, 3), context[:, -1:].expand(-1, 3, -1, -1, -1))


@pytest.mark.parametrize("lit_steps, collapsed, blank_from", [(0, True, 1), (3, False, 4), (10, False, None)])
def test_predictions_fading_to_black_are_flagged_per_step(mmnist, lit_steps, collapsed, blank_from):
    method = bench.get_method("baseline", frame_shape=mmnist.frame_shape, preset="tiny")
    copy_last = method.predict
    method.predict = lambda context, horizon: copy_last(context, horizon) * (torch.arange(horizon) < lit_steps).view(1, -1, 1, 1, 1)
    intensity = bench.evaluate(method, mmnist, limit=4, progress=False).metadata["intensity"]
    assert (intensity["collapsed"], intensity["blank_from_step"]) == (collapsed, blank_from)
