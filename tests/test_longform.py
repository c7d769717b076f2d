"""`bench.load_results`: the results as a long pandas table, per step or per test sequence."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import bench
from bench import results
from bench.errors import BenchError
from bench.results import read_cell
from synthetic_results import per_sequence, write_cell


@pytest.fixture
def two_cells(tmp_path):
    frnn = per_sequence(2.0, n=6, seed=1)
    frnn["psnr"][2, 4] = math.inf  # a perfect frame: left out of the PSNR mean and its n
    write_cell(tmp_path, "mmnist", "frnn", frnn, preset="small")
    write_cell(tmp_path, "kth", "baseline", per_sequence(1.0, n=4))
    return tmp_path, frnn


def test_long_table_per_step_and_metric(two_cells):
    root, frnn = two_cells
    table = bench.load_results(root)
    assert list(table.columns) == ["dataset", "method", "preset", "step", "metric", "mean", "se", "n"]
    assert len(table) == 2 * 10 * 3
    mse = table.query("dataset == 'mmnist' and metric == 'mse'").sort_values("step")
    assert list(mse["step"]) == list(range(1, 11)) and set(mse["preset"]) == {"small"}
    assert np.allclose(mse["mean"], frnn["mse"].mean(axis=0))
    assert np.allclose(mse["se"], frnn["mse"].std(axis=0, ddof=1) / math.sqrt(6))
    psnr = table.query("dataset == 'mmnist' and metric == 'psnr' and step == 5").iloc[0]
    assert psnr["n"] == 5 and psnr["mean"] == pytest.approx(np.delete(frnn["psnr"][:, 4], 2).mean())
    assert set(table.query("method == 'baseline'")["n"]) == {4}
    stored = read_cell(root / "mmnist" / "frnn").curves  # the same numbers as the cell's steps.csv
    assert np.allclose(table.query("method == 'frnn' and metric == 'dssim'")["mean"], stored["dssim"])
    ten_step = table.groupby(["dataset", "method", "metric"])["mean"].mean()
    assert ten_step["kth", "baseline", "mse"] == pytest.approx(per_sequence(1.0, n=4)["mse"].mean())


def test_per_sequence_table(two_cells):
    root, frnn = two_cells
    table = bench.load_results(root, per_sequence=True)
    assert list(table.columns) == ["dataset", "method", "preset", "sequence", "step", "mse", "psnr", "dssim"]
    assert len(table) == (6 + 4) * 10
    row = table.query("method == 'frnn' and sequence == 3 and step == 7").iloc[0]
    assert row["mse"] == frnn["mse"][3, 6] and row["dssim"] == frnn["dssim"][3, 6]
    assert math.isinf(table.query("method == 'frnn' and sequence == 2 and step == 5")["psnr"].iloc[0])


def test_empty_and_missing_folders(tmp_path):
    assert bench.load_results(tmp_path).empty
    with pytest.raises(BenchError, match="does not exist"):
        bench.load_results(tmp_path / "none")


def test_import_bench_does_not_import_pandas():
    code = "import sys, bench; print('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"


def test_summary_csv_holds_the_long_tables_ten_step_values(two_cells):
    root, frnn = two_cells
    frnn["psnr"][:, 7] = math.inf  # a step without a finite PSNR: no 10-step PSNR, as in Table 2
    write_cell(root, "mmnist", "frnn", frnn, preset="small")
    summary = pd.read_csv(results.write_summary(root)).set_index(["dataset", "method"])
    means = bench.load_results(root).groupby(["dataset", "method", "metric"])["mean"].mean().unstack("metric")
    assert summary.loc[("kth", "baseline"), "psnr"] == pytest.approx(means.loc[("kth", "baseline"), "psnr"])
    assert summary.loc[("mmnist", "frnn"), "mse"] == pytest.approx(frnn["mse"].mean())
    assert math.isnan(summary.loc[("mmnist", "frnn"), "psnr"])
    sequences = np.where(np.isfinite(frnn["dssim"]), frnn["dssim"], np.nan).mean(axis=1)
    assert summary.loc[("mmnist", "frnn"), "dssim_se"] == pytest.approx(sequences.std(ddof=1) / math.sqrt(6))
