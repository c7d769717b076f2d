"""The training loop, `bench train`, resumption after SIGKILL, torchrun (gloo), and `bench run`'s checkpoints."""
from __future__ import annotations

import csv
import json
import functools
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import train_plugins
from bench import checkpoint as ckpt
from bench import get_dataset
from bench.cli import main
from bench.errors import BenchError
from bench.train import trained_method, train

METHOD, DATASET = "train-test-net", "train-test-squares"
only_test_digits = pytest.mark.filterwarnings("ignore:MNIST training images not found")


def run_train(tmp_path, **kwargs):
    kwargs = {"preset": "tiny", "checkpoint_dir": tmp_path, "progress": False, "echo": lambda _: None, **kwargs}
    return train(METHOD, get_dataset(DATASET), **kwargs)


def log_rows(directory, preset="tiny", dataset=DATASET, method=METHOD):
    with open(ckpt.log_path(ckpt.checkpoint_path(dataset, method, preset, directory)), newline="") as handle:
        return list(csv.DictReader(handle))


def final_weights(directory, preset="tiny", dataset=DATASET, method=METHOD):
    return ckpt.load(ckpt.checkpoint_path(dataset, method, preset, directory))["model"]


def test_same_seed_gives_the_same_loss_curve(tmp_path):
    runs = {name: run_train(tmp_path / name, seed=seed, log_every=1) for name, seed in (("a", 3), ("b", 3), ("c", 4))}
    curves = {name: [float(row["l1"]) for row in log_rows(tmp_path / name)] for name in runs}
    assert len(curves["a"]) == 12 and curves["a"] == curves["b"]
    assert curves["a"][-1] < 0.8 * curves["a"][0]  # it learns
    assert curves["c"] != curves["a"]
    weights_a, weights_b = final_weights(tmp_path / "a"), final_weights(tmp_path / "b")
    assert all(torch.equal(weights_a[key], weights_b[key]) for key in weights_a)


@only_test_digits
def test_frnn_tiny_same_seed_gives_the_same_loss_curve_on_moving_mnist(tmp_path, mnist_dir):
    mmnist = get_dataset("mmnist", data_dir=mnist_dir)
    for run in ("a", "b"):
        train("frnn", mmnist, preset="tiny", steps=3, seed=5, log_every=1, checkpoint_dir=tmp_path / run,
              progress=False, echo=lambda _: None)
    a, b = (log_rows(tmp_path / run, dataset="mmnist", method="frnn") for run in ("a", "b"))
    assert [row["step"] for row in a] == ["1", "2", "3"]
    assert [(row["l1"], row["mse_signed"]) for row in a] == [(row["l1"], row["mse_signed"]) for row in b]


def test_log_rows_hold_interval_means_and_throughput(tmp_path):
    summary = run_train(tmp_path, steps=7, log_every=3)
    rows = log_rows(tmp_path)
    assert list(rows[0]) == ["step", "l1", "seconds", "steps_per_s", "sequences_per_s"]
    assert [int(row["step"]) for row in rows] == [3, 6, 7]
    for row, count in zip(rows, (3, 3, 1)):
        assert float(row["sequences_per_s"]) == pytest.approx(4 * float(row["steps_per_s"]), rel=1e-3)
        assert float(row["steps_per_s"]) == pytest.approx(count / float(row["seconds"]), rel=1e-2)
    assert (summary.start_step, summary.step, summary.batch_size) == (0, 7, 4)
    assert summary.sequences_per_s == pytest.approx(4 * summary.steps_per_s)
    assert summary.last_losses["l1"] == pytest.approx(float(rows[-1]["l1"]))


def test_resume_continues_at_the_checkpoint_step_and_rewrites_lost_log_rows(tmp_path):
    run_train(tmp_path, steps=6, every=4, log_every=1)
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path)
    assert [int(p.name.split("step")[1][:9]) for p in ckpt.snapshots(path)] == [4, 6]
    with open(ckpt.log_path(path), "a") as handle:  # rows a killed run wrote after its last checkpoint
        handle.write("7,0.5,0.1,10,40\n8,0.4")
    messages = []
    summary = run_train(tmp_path, steps=10, log_every=1, echo=messages.append)
    assert messages == [f"Resuming {METHOD} (tiny) from {path} at step 6: training 4 more steps to 10."]
    assert (summary.start_step, summary.step) == (6, 10)
    assert [int(row["step"]) for row in log_rows(tmp_path)] == list(range(1, 11))
    assert ckpt.load(path)["step"] == 10
    assert run_train(tmp_path, steps=10).describe() == f"Already trained to step 10: {path}"


def test_resume_refuses_contradicting_settings(tmp_path):
    run_train(tmp_path, steps=2, batch_size=2)
    with pytest.raises(BenchError, match=r"was trained with batch_size=2, not 8; drop that setting to resume"):
        run_train(tmp_path, steps=4, batch_size=8)
    assert run_train(tmp_path, steps=4).batch_size == 2  # not given again: taken from the checkpoint


def test_init_from_loads_another_run_s_weights_only(tmp_path):
    run_train(tmp_path / "pre", steps=3)
    source = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "pre")
    messages = []
    run_train(tmp_path / "fine", preset="small", steps=1, overrides={"lr": 0.0}, init_from=source, echo=messages.append)
    assert messages == [f"Initialised {METHOD} from the weights in {source}."]
    tuned = ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "small", tmp_path / "fine"))
    assert tuned["step"] == 1 and tuned["init_from"] == str(source)
    pre = final_weights(tmp_path / "pre")
    assert all(torch.equal(tuned["model"][key], pre[key]) for key in pre)  # lr 0: still the source's weights
    other = ckpt.load(source)
    other["method"] = "frnn"
    torch.save(other, tmp_path / "frnn.pt")
    with pytest.raises(BenchError, match=r"frnn.pt holds method 'frnn', not 'train-test-net'"):
        run_train(tmp_path / "x", init_from=tmp_path / "frnn.pt")


def test_refusals(tmp_path, monkeypatch):
    with pytest.raises(BenchError, match="method 'baseline' is not trainable"):
        train("baseline", get_dataset(DATASET), preset="tiny", checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(BenchError, match="--checkpoint-every and --log-every must be at least 1"):
        run_train(tmp_path, every=0)
    monkeypatch.setattr(train_plugins.NextFrameNet, "training_step", lambda self, clip: {"l1": float("nan")})
    with pytest.raises(BenchError, match=r"training train-test-net diverged at step 1 \(l1 = nan\)"):
        run_train(tmp_path)


def test_bench_train_reports_throughput_and_the_default_preset(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = CliRunner().invoke(main, ["train", "--method", METHOD, "--dataset", DATASET, "--steps", "3",
                                       "--checkpoint-dir", str(tmp_path), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "preset 'small' (no CUDA GPU" in result.output
    assert "Trained steps 0->3 in " in result.output and " steps/s, " in result.output and " sequences/s " in result.output
    assert ckpt.load(tmp_path / DATASET / f"{METHOD}-small.pt")["step"] == 3
    result = CliRunner().invoke(main, ["train", "--method", METHOD, "--dataset", DATASET, "--preset", "tiny",
                                       "--checkpoint-dir", str(tmp_path), "--set", "depth=3"])
    assert result.exit_code == 1 and "Error: method 'train-test-net' has no setting 'depth'" in result.output


def _with_env(target, env):
    os.environ.update(env or {})
    target()


def spawned(target, env=None):
    """``target()`` in a fresh child interpreter with ``env`` set there. Not forked: a fork of a
    process that already ran thread pools (torch, joblib, dask) can deadlock in the child."""
    process = multiprocessing.get_context("spawn").Process(target=_with_env, args=(target, env))
    process.start()
    return process


def test_sigkill_mid_run_then_resume(tmp_path):
    """Kill -9 while training; every look at the checkpoint finds a complete file; a new process resumes there."""
    settings = {"steps": 40, "every": 3, "log_every": 1, "overrides": {"delay": 0.01}}
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path)
    process = spawned(functools.partial(run_train, tmp_path, **settings))
    seen, deadline = [], time.monotonic() + 600  # generous: CI machines can be heavily loaded
    try:
        while time.monotonic() < deadline and process.is_alive():
            if path.exists():
                seen.append(ckpt.load(path)["step"])  # raises if ever half-written
                if seen[-1] >= 9:
                    break
            time.sleep(0.02)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.join()
    assert process.exitcode == -signal.SIGKILL and seen, "training finished (or never saved) before the kill"
    killed_at = ckpt.load(path)["step"]
    assert 9 <= killed_at < 40 and killed_at % 3 == 0
    assert all(ckpt.load(snapshot)["step"] % 3 == 0 for snapshot in ckpt.snapshots(path))
    assert seen == sorted(seen)

    messages = []
    summary = run_train(tmp_path, echo=messages.append, **settings)
    assert messages == [f"Resuming {METHOD} (tiny) from {path} at step {killed_at}: "
                        f"training {40 - killed_at} more steps to 40."]
    assert (summary.start_step, summary.step) == (killed_at, 40)
    assert ckpt.load(path)["step"] == 40
    assert [int(row["step"]) for row in log_rows(tmp_path)] == list(range(1, 41))
    assert not list(tmp_path.rglob(".*.tmp"))


def test_sigterm_saves_the_steps_since_the_last_checkpoint(tmp_path):
    stepping = tmp_path / "stepping"  # appears at the first step, once the data worker delivers
    settings = {"steps": 400, "every": 1000, "overrides": {"delay": 0.01, "touch": str(stepping)}}  # no periodic checkpoint
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path)
    process = spawned(functools.partial(run_train, tmp_path, **settings))
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.is_alive() and not stepping.exists():
        time.sleep(0.02)
    time.sleep(1.0)
    os.kill(process.pid, signal.SIGTERM)
    process.join()
    assert process.exitcode != 0, "training finished before SIGTERM"
    assert 0 < ckpt.load(path)["step"] < 400


def test_two_gloo_processes_match_one_process(tmp_path):
    """Global batch 4 as 2 x 2 over gloo (the environment torchrun sets): the same weights and loss
    curve as one process with batch 4; only rank 0 writes."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    ranks = [
        spawned(functools.partial(run_train, tmp_path / "ddp", steps=5, log_every=1),
                env={"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                     "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port})
        for rank in range(2)
    ]
    for process in ranks:
        process.join(timeout=300)
    for process in ranks:  # never leave a stuck rank behind: pytest would wait for it at exit
        if process.is_alive():
            process.kill()
    assert [process.exitcode for process in ranks] == [0, 0]
    run_train(tmp_path / "one", steps=5, log_every=1)
    ddp = ckpt.load(ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "ddp"))
    assert ddp["world_size"] == 2 and ddp["step"] == 5
    one = final_weights(tmp_path / "one")
    for key, value in one.items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=0, atol=1e-6)
    ddp_curve = [float(row["l1"]) for row in log_rows(tmp_path / "ddp")]
    assert ddp_curve == pytest.approx([float(row["l1"]) for row in log_rows(tmp_path / "one")], abs=1e-6)
    assert sorted(p.name for p in (tmp_path / "ddp" / DATASET).iterdir()) == sorted(
        [f"{METHOD}-tiny.pt", f"{METHOD}-tiny.csv", f"{METHOD}-tiny.step000000005.pt", f".{METHOD}-tiny.pt.lock"]
    )


def test_trained_method_loads_trains_missing_or_refuses(tmp_path):
    dataset = get_dataset(DATASET)
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path)
    with pytest.raises(BenchError, match=rf"checkpoint {path} is missing and --no-train is set; train it with "
                                         rf"`bench train --method {METHOD} --dataset {DATASET} --preset tiny`"):
        trained_method(METHOD, dataset, "tiny", checkpoint_dir=tmp_path, train_missing=False)
    messages = []
    got = trained_method(METHOD, dataset, "tiny", checkpoint_dir=tmp_path, progress=False, echo=messages.append)
    assert messages == [f"Checkpoint {path} is missing: training {METHOD} (tiny) on {DATASET} for 12 steps of batch 4 first."]
    assert (got.checkpoint, got.step, got.sha256) == (path, 12, ckpt.sha256(path))
    weights = final_weights(tmp_path)
    assert all(torch.equal(got.method.state_dict()[key], weights[key]) for key in weights)
    messages.clear()
    assert trained_method(METHOD, dataset, "tiny", checkpoint_dir=tmp_path, echo=messages.append).step == 12
    assert messages == []
    longer = {"steps": 14}
    with pytest.raises(BenchError, match=rf"checkpoint {path} is at step 12 of 14 and --no-train is set"):
        trained_method(METHOD, dataset, "tiny", overrides=longer, checkpoint_dir=tmp_path, train_missing=False)
    assert trained_method(METHOD, dataset, "tiny", overrides=longer, checkpoint_dir=tmp_path, progress=False,
                          echo=messages.append).step == 14
    assert messages == [f"Resuming {METHOD} (tiny) from {path} at step 12: training 2 more steps to 14."]
    assert trained_method("baseline", dataset, "tiny", checkpoint_dir=tmp_path).checkpoint is None


@pytest.mark.slow
@only_test_digits
def test_torchrun_module_entry_point_trains_frnn_with_two_gloo_processes(tmp_path, mnist_dir):
    """The real launcher: ``torchrun --standalone --nproc_per_node 2 -m bench train`` (fRNN tiny)."""
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "bench", "train", "--method", "frnn",
         "--dataset", "mmnist", "--preset", "tiny", "--data-dir", str(mnist_dir), "--log-every", "1", "--quiet",
         "--checkpoint-dir", str(tmp_path / "ddp")],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("Trained steps 0->4 in ") == 1
    train("frnn", get_dataset("mmnist", data_dir=mnist_dir), preset="tiny", log_every=1, checkpoint_dir=tmp_path / "one",
          progress=False, echo=lambda _: None)
    ddp = ckpt.load(ckpt.checkpoint_path("mmnist", "frnn", "tiny", tmp_path / "ddp"))
    one = final_weights(tmp_path / "one", dataset="mmnist", method="frnn")
    assert ddp["world_size"] == 2
    for key, value in one.items():
        torch.testing.assert_close(ddp["model"][key], value, rtol=0, atol=1e-6)


def test_bench_run_trains_a_missing_checkpoint_first_or_refuses_with_no_train(tmp_path):
    common = ["run", "--methods", METHOD, "--dataset", DATASET, "--preset", "tiny", "--quiet",
              "--checkpoint-dir", str(tmp_path / "ck"), "--results-dir", str(tmp_path / "results")]
    path = ckpt.checkpoint_path(DATASET, METHOD, "tiny", tmp_path / "ck")
    refused = CliRunner().invoke(main, [*common, "--no-train"])
    assert refused.exit_code == 1 and f"checkpoint {path} is missing and --no-train is set" in refused.output
    assert not path.exists()
    done = CliRunner().invoke(main, [*common, "--set", "steps=3"])
    assert done.exit_code == 0, done.output
    assert f"Checkpoint {path} is missing: training {METHOD} (tiny) on {DATASET} for 3 steps of batch 4 first." in done.output
    meta = json.loads((tmp_path / "results" / DATASET / METHOD / "meta.json").read_text())
    assert (meta["checkpoint"], meta["checkpoint_sha256"], meta["trained_steps"]) == (str(path), ckpt.sha256(path), 3)
    again = CliRunner().invoke(main, [*common, "--set", "steps=3", "--no-train", "--force"])
    assert again.exit_code == 0 and "training" not in again.output
