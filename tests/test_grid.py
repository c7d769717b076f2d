"""Grids: parallel processes, a Dask cluster, and resuming an interrupted grid."""
from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.grid import EvalRequest, is_done, run_grid

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PLUGIN_ENV = {"BENCH_PLUGINS": "train_plugins", "PYTHONPATH": os.pathsep.join([str(TESTS), str(ROOT)])}


def cells(checkpoints: Path, data_dir: Path | None = None, **settings) -> list[EvalRequest]:
    common = {"preset": "tiny", "limit": 8, "checkpoint_dir": str(checkpoints), "device": "cpu", "data_dir": data_dir}
    return [
        EvalRequest(method=m, dataset=d, method_options=settings if m == "train-test-net" else {}, **common)
        for d in ("train-test-squares", "mmnist") if d != "mmnist" or data_dir
        for m in ("baseline", "train-test-net")
    ]


def arrays(results: Path) -> dict[str, np.ndarray]:
    out = {}
    for path in sorted(results.glob("*/*/sequences.npz")):
        with np.load(path) as data:
            for key in ("mse", "psnr", "dssim", "examples_pred"):
                out[f"{path.parent.parent.name}/{path.parent.name}/{key}"] = data[key]
    return out


def assert_same(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.fixture
def plugins(monkeypatch):
    for key, value in PLUGIN_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(TESTS))
    import train_plugins  # noqa: F401  (registers the test method and dataset here too)


def test_parallel_processes_write_what_a_serial_run_writes(plugins, tmp_path):
    grid = cells(tmp_path / "ckpt")
    run_grid(grid, tmp_path / "serial", progress=False, echo=lambda _: None)
    done = run_grid(grid, tmp_path / "jobs", jobs=2, progress=False, echo=lambda _: None)
    assert len(done) == 2 and all(is_done(cell, tmp_path / "jobs") for cell in grid)
    assert_same(arrays(tmp_path / "serial"), arrays(tmp_path / "jobs"))
    assert quality(tmp_path / "jobs") == quality(tmp_path / "serial")


def quality(results: Path) -> list[dict[str, str]]:
    """summary.csv without its timing columns (latency and throughput differ from run to run)."""
    with open(results / "summary.csv") as handle:
        keep = ("dataset", "method", "preset", "mse", "psnr", "dssim", "mse_se", "psnr_se", "dssim_se", "params")
        return [{key: row[key] for key in keep} for row in csv.DictReader(handle)]


def test_dask_cluster_gives_the_serial_results(plugins, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    grid = cells(tmp_path / "ckpt")
    run_grid(grid, tmp_path / "serial", progress=False, echo=lambda _: None)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None) as cluster:
        lines = []
        run_grid(grid, tmp_path / "dask", scheduler=cluster.scheduler_address, progress=False, echo=lines.append)
    assert len(lines) == 2 and all("MSE" in line for line in lines)
    assert_same(arrays(tmp_path / "serial"), arrays(tmp_path / "dask"))


def test_unreachable_scheduler_is_one_sentence(plugins, tmp_path):
    from bench.errors import BenchError

    with pytest.raises(BenchError, match="cannot reach the Dask scheduler at tcp://127.0.0.1:9"):
        run_grid(cells(tmp_path / "ckpt"), tmp_path / "r", scheduler="tcp://127.0.0.1:9", progress=False,
                 echo=lambda _: None)


def bench_run(results: Path, checkpoints: Path, mnist_dir: Path) -> subprocess.Popen:
    command = [
        sys.executable, "-c", "import bench.cli; bench.cli.main()", "run", "--methods", "baseline,train-test-net",
        "--dataset", "train-test-squares,mmnist", "--data-dir", str(mnist_dir), "--preset", "tiny", "--limit", "8",
        "--set", "delay=0.4", "--results-dir", str(results), "--checkpoint-dir", str(checkpoints), "--quiet",
        "--device", "cpu",
    ]
    env = {**os.environ, **PLUGIN_ENV}
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_an_interrupted_grid_finishes_only_what_is_missing(plugins, mnist_dir, tmp_path):
    """Kill `bench run` after two of four cells; the re-run skips them and ends where a clean run does."""
    results, checkpoints = tmp_path / "results", tmp_path / "ckpt"
    proc = bench_run(results, checkpoints, mnist_dir)
    deadline = time.time() + 240
    while len(list(results.glob("*/*/meta.json"))) < 2 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = sorted(results.glob("*/*/meta.json"))
    assert len(finished) in (2, 3), [str(p) for p in finished]
    stamps = {path: path.stat().st_mtime_ns for path in results.glob("*/*/*")}
    rerun = bench_run(results, checkpoints, mnist_dir)
    output = rerun.communicate(timeout=300)[0]
    assert rerun.returncode == 0, output
    assert output.count("skipping") == len(finished)
    for path, stamp in stamps.items():  # finished cells were not recomputed
        assert path.stat().st_mtime_ns == stamp, path
    assert len(list(results.glob("*/*/meta.json"))) == 4
    assert not [p for p in results.glob("*/.*") if not p.name.endswith(".lock")]  # no leftover of the killed run
    clean = bench_run(tmp_path / "clean", tmp_path / "clean-ckpt", mnist_dir)
    assert clean.wait(timeout=300) == 0
    assert_same(arrays(results), arrays(tmp_path / "clean"))
