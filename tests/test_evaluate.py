"""The evaluation loop: fused checks and statistics, read-ahead, thread policy, `bench run --threads`."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

import bench
from bench.cli import main
from bench.dataset import ClipSet, Dataset
from bench.errors import BenchError
from bench.protocol import CONTEXT
from bench.runner import predict_threads


def baseline(dataset):
    return bench.get_method("baseline", frame_shape=dataset.frame_shape, preset="tiny")


def test_threads_change_nothing_in_the_results(mnist_dir, tmp_path):
    files = {}
    for threads in ("1", "2"):
        out = tmp_path / threads
        result = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir",
                                           str(mnist_dir), "--limit", "40", "--batch-size", "16", "--threads",
                                           threads, "--results-dir", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        cell = out / "mmnist" / "baseline"
        meta = json.loads((cell / "meta.json").read_text())
        assert meta["device"]["threads"] == int(threads) and meta["device"]["predict_threads"] == 1
        with np.load(cell / "sequences.npz") as arrays:
            files[threads] = ((cell / "steps.csv").read_bytes(), {k: arrays[k] for k in arrays.files})
    assert files["1"][0] == files["2"][0]
    for key, values in files["1"][1].items():
        np.testing.assert_array_equal(values, files["2"][1][key], err_msg=key)


def test_bad_thread_count_is_refused(mnist_dir, tmp_path, mmnist):
    result = CliRunner().invoke(main, ["run", "--methods", "baseline", "--dataset", "mmnist", "--data-dir",
                                       str(mnist_dir), "--threads", "0", "--results-dir", str(tmp_path)])
    assert result.exit_code == 2 and "Invalid value for '--threads'" in result.output
    with pytest.raises(BenchError, match="--threads must be positive, got 0"):
        bench.evaluate(baseline(mmnist), mmnist, limit=2, progress=False, threads=0)


def test_collapse_statistics_as_whole_tensor_reductions_give_them(mmnist):
    """Bit for bit what the loop computed before the statistics moved into the metric pass."""
    result = bench.evaluate(baseline(mmnist), mmnist, limit=40, batch_size=16, progress=False, threads=2)
    clips = mmnist.test_clips(20)
    sums = {"pred_mean": np.zeros(10), "target_mean": np.zeros(10), "pred_fraction_above_0.1": np.zeros(10)}
    for start in range(0, 40, 16):
        clip = torch.from_numpy(clips.batch(np.arange(start, min(start + 16, 40)))).float().div_(255)
        pred, target = clip[:, CONTEXT - 1 : CONTEXT].expand(-1, 10, -1, -1, -1), clip[:, CONTEXT:]
        sums["pred_mean"] += pred.double().mean(dim=(2, 3, 4)).sum(0).numpy()
        sums["target_mean"] += target.double().mean(dim=(2, 3, 4)).sum(0).numpy()
        sums["pred_fraction_above_0.1"] += (pred > 0.1).double().mean(dim=(2, 3, 4)).sum(0).numpy()
    for name, total in sums.items():
        assert result.metadata["intensity"][name] == (total / 40).tolist(), name


def test_wall_time_breakdown_and_threads_restored(mmnist):
    before = torch.get_num_threads()
    meta = bench.evaluate(baseline(mmnist), mmnist, limit=40, batch_size=16, progress=False).metadata
    assert torch.get_num_threads() == before
    seconds = meta["wall_seconds"]
    assert set(seconds) == {"evaluate", "data", "data_wait", "predict", "metrics", "checks"}
    assert min(seconds.values()) >= 0 and seconds["metrics"] > 0 and seconds["data"] > 0
    assert sum(seconds[k] for k in ("data_wait", "predict", "metrics", "checks")) <= seconds["evaluate"]


@pytest.mark.parametrize(
    "wrong, message",
    [
        (lambda pred: pred * 2, "predicted values in [0, 2], outside the frame range [0, 1]"),
        (lambda pred: pred[:, :5], "returned predictions of shape (8, 5, 1, 64, 64), expected (8, 10, 1, 64, 64)"),
    ],
)
def test_wrong_predictions_are_named(mmnist, wrong, message):
    method = baseline(mmnist)
    copy_last = method.predict
    method.predict = lambda context, horizon: wrong(copy_last(context, horizon))
    with pytest.raises(BenchError) as error:
        bench.evaluate(method, mmnist, limit=20, batch_size=8, progress=False)
    assert str(error.value) == f"method 'baseline' {message}"


def test_infinite_prediction_names_its_sequence(mmnist):
    method = baseline(mmnist)
    copy_last, batches = method.predict, []

    def predict(context, horizon):
        out = copy_last(context, horizon)
        batches.append(len(context))
        if batches.count(8) == 2:  # the second batch of the evaluation (costs predict one sequence first)
            out[5, 9, 0, 63, 63] = float("inf")
        return out

    method.predict = predict
    with pytest.raises(BenchError, match="non-finite values .* for test sequence 13$"):
        bench.evaluate(method, mmnist, limit=24, batch_size=8, progress=False)


class FailingClips(ClipSet):
    """Blank clips whose third batch cannot be read (as a damaged video would fail)."""

    def __len__(self):
        return 64

    def batch(self, indices):
        if indices[0] >= 16:
            raise BenchError(f"cannot read clip {indices[0]}")
        return np.zeros((len(indices), 20, 1, 16, 16), np.uint8)


class FailingData(Dataset):
    name = "failing"
    frame_shape = (1, 16, 16)

    def test_clips(self, length, stride=1):
        return FailingClips()


def test_a_failed_read_ahead_surfaces_as_its_own_error(tmp_path):
    data = FailingData(data_dir=tmp_path, cache_dir=tmp_path)
    with pytest.raises(BenchError, match="^cannot read clip 16$"):
        bench.evaluate(baseline(data), data, batch_size=8, progress=False)


def test_heavy_predictions_get_torch_threads_light_ones_one():
    assert predict_threads({"predict_flops": 0}, 32, threads=4) == 1
    assert predict_threads({"predict_flops": None}, 32, threads=4) == 1
    assert predict_threads({"predict_flops": 10**8}, 32, threads=4) == 4
