"""Metrics against scikit-image and hand-computed values."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from bench import metrics
from bench.errors import BenchError
from bench.longform import step_rows, ten_step_summary


def skimage_dssim(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    b, t, c = pred.shape[:3]
    out = np.empty((b, t))
    for i in range(b):
        for j in range(t):
            ssim = [
                structural_similarity(pred[i, j, k], target[i, j, k], data_range=1, gaussian_weights=True,
                                      sigma=1.5, use_sample_covariance=False)
                for k in range(c)
            ]
            out[i, j] = (1 - np.mean(ssim)) / 2
    return out


@pytest.mark.parametrize("shape", [(1, 64, 64), (1, 64, 80), (3, 64, 80), (3, 17, 23)])
def test_dssim_matches_scikit_image(shape):
    rng = np.random.default_rng(sum(shape))
    target = rng.random((2, 3, *shape))
    pred = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1)
    ours = metrics.dssim(torch.tensor(pred), torch.tensor(target)).numpy()
    np.testing.assert_allclose(ours, skimage_dssim(pred, target), rtol=0, atol=1e-6)


def test_float32_inputs_are_scored_in_float64():
    rng = np.random.default_rng(1)
    target = rng.random((1, 2, 3, 64, 80)).astype(np.float32)
    pred = np.clip(target + 0.05 * rng.standard_normal(target.shape), 0, 1).astype(np.float32)
    ours = metrics.frame_metrics(torch.tensor(pred), torch.tensor(target))
    assert all(v.dtype == torch.float64 and v.shape == (1, 2) for v in ours.values())
    ref = skimage_dssim(pred.astype(np.float64), target.astype(np.float64))
    np.testing.assert_allclose(ours["dssim"].numpy(), ref, atol=1e-6)


def test_mse_and_psnr_by_hand():
    target = torch.zeros(1, 2, 1, 16, 16)
    pred = torch.zeros(1, 2, 1, 16, 16)
    pred[0, 0, 0, :4] = 1.0  # 64 of 256 pixels off by 1 -> MSE 0.25
    pred[0, 1] = 0.1  # every pixel off by 0.1 -> MSE 0.01, PSNR 20 dB
    fused = metrics.frame_metrics(pred, target)  # the CPU's fused kernel
    for out in ({"mse": metrics.mse(pred, target), "psnr": metrics.psnr(pred, target)}, fused):
        np.testing.assert_allclose(out["mse"].numpy(), [[0.25, 0.01]], rtol=1e-6)
        np.testing.assert_allclose(out["psnr"].numpy(), [[10 * math.log10(4), 20.0]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(1, 64, 64), (3, 17, 23)])
def test_tensor_path_for_other_devices_matches_scikit_image(shape):
    rng = np.random.default_rng(3)
    target = rng.random((2, 3, *shape))
    pred = np.clip(target + 0.2 * rng.standard_normal(target.shape), 0, 1)
    images = [torch.tensor(frames).reshape(-1, *shape[1:]) for frames in (pred, target)]
    ssim = metrics._ssim_tensor(*images).view(2, 3, shape[0]).mean(dim=2)
    np.testing.assert_allclose(((1 - ssim) / 2).numpy(), skimage_dssim(pred, target), rtol=0, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_metrics_equal_cpu_metrics():
    target = torch.rand(2, 3, 3, 64, 80)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1)
    pred[1, 2, 0, 5, 5] = float("nan")
    cpu = metrics.score_frames(pred, target, threads=2)
    gpu = metrics.score_frames(pred.cuda(), target.cuda())
    for name, values in vars(cpu).items():
        assert getattr(gpu, name).device.type == "cuda"
        np.testing.assert_allclose(getattr(gpu, name).cpu().numpy(), values.numpy(), rtol=1e-12, err_msg=name)


def quantised_frames(shape, seed):
    """Frames as the datasets make them (uint8 / 255 in float32), with pixels exactly at float32(0.1)."""
    rng = np.random.default_rng(seed)
    target = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)).float().div_(255)
    pred = torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)).float().div_(255)
    pred[:, :, :, :3] = metrics.BRIGHT  # on the threshold: not lit, as torch compares in float32
    return pred, target


@pytest.mark.parametrize("shape", [(3, 4, 1, 64, 64), (2, 3, 3, 64, 80)])
def test_one_pass_statistics_equal_the_tensor_reductions(shape):
    pred, target = quantised_frames(shape, sum(shape))
    pred[0, 1, 0, 7, 9], pred[1, 2, -1, 0, 0] = float("nan"), float("inf")
    pred[2 % shape[0], 0, 0, 1, 1] = -0.5
    scores = metrics.score_frames(pred, target, threads=2)
    expected = {
        "pred_mean": pred.double().mean(dim=(2, 3, 4)), "target_mean": target.double().mean(dim=(2, 3, 4)),
        "pred_bright": (pred > 0.1).double().mean(dim=(2, 3, 4)),
        "pred_finite": torch.isfinite(pred).flatten(2).all(dim=2),
    }
    for name, values in expected.items():  # bit for bit: the runner's collapse statistics depend on them
        torch.testing.assert_close(getattr(scores, name), values, rtol=0, atol=0, equal_nan=True, msg=name)
    finite = expected["pred_finite"]
    assert torch.equal(scores.pred_min[finite], pred.double().amin(dim=(2, 3, 4))[finite])
    assert torch.equal(scores.pred_max[finite], pred.double().amax(dim=(2, 3, 4))[finite])
    assert scores.pred_min.min() == -0.5 and int((~finite).sum()) == 2


def test_results_do_not_depend_on_threads():
    pred, target = quantised_frames((5, 7, 1, 32, 40), 4)
    one = metrics.score_frames(pred, target, threads=1)
    for threads in (2, 3, 7):
        many = metrics.score_frames(pred, target, threads=threads)
        for name, values in vars(one).items():
            assert torch.equal(getattr(many, name), values), (threads, name)


def test_tensor_path_computes_the_kernel_columns():
    pred, target = quantised_frames((2, 3, 1, 64, 64), 5)
    pred[1, 1, 0, 3, 3] = float("nan")
    xs, ys = pred.reshape(-1, 64, 64), target.reshape(-1, 64, 64)
    bright = float(torch.tensor(metrics.BRIGHT, dtype=torch.float32))
    kernel = torch.from_numpy(metrics._score_cpu(xs.numpy(), ys.numpy(), bright, threads=1))
    tensor = metrics._score_tensor(xs, ys, bright)
    finite = torch.isfinite(kernel[:, metrics.CHECK])
    assert finite.tolist() == torch.isfinite(tensor[:, metrics.CHECK]).tolist() == [True] * 4 + [False] + [True]
    np.testing.assert_allclose(tensor[finite].numpy(), kernel[finite].numpy(), rtol=1e-12)


def test_identical_frames_give_infinite_psnr_dropped_and_counted():
    rng = np.random.default_rng(2)
    target = torch.tensor(rng.random((3, 2, 1, 64, 64)))
    pred = target.clone()
    pred[1:] = (pred[1:] + 0.1).clamp(0, 1)  # sequence 0 is perfect, 1 and 2 are not
    scores = metrics.frame_metrics(pred, target)
    assert torch.isinf(scores["psnr"][0]).all() and torch.isfinite(scores["psnr"][1:]).all()
    assert float(scores["dssim"][0].abs().max()) < 1e-12 and float(scores["mse"][0].max()) == 0
    rows = step_rows({k: v.numpy() for k, v in scores.items()})
    assert [row["psnr_inf"] for row in rows] == [1, 1]
    expected = scores["psnr"][1:, 0].mean().item()
    assert rows[0]["psnr"] == pytest.approx(expected) and rows[0]["n"] == 3
    assert math.isfinite(ten_step_summary({k: v.numpy() for k, v in scores.items()})["psnr"])


def test_constant_frames():
    target = torch.full((1, 1, 1, 64, 80), 0.25)
    pred = torch.full((1, 1, 1, 64, 80), 0.75)
    scores = metrics.frame_metrics(pred, target)
    assert float(scores["mse"]) == pytest.approx(0.25)
    assert float(scores["psnr"]) == pytest.approx(10 * math.log10(4))
    # Constant frames: variances are 0, so SSIM is the luminance term alone.
    c1 = 0.01**2
    luminance = (2 * 0.25 * 0.75 + c1) / (0.25**2 + 0.75**2 + c1)
    assert float(scores["dssim"]) == pytest.approx((1 - luminance) / 2, abs=1e-12)
    ref = skimage_dssim(pred.double().numpy(), target.double().numpy())
    assert float(scores["dssim"]) == pytest.approx(ref[0, 0], abs=1e-9)


def test_standard_errors_over_sequences():
    values = np.array([[1.0, 2.0], [3.0, 2.0], [5.0, 2.0]])
    per_seq = {"mse": values, "psnr": values, "dssim": values}
    row = step_rows(per_seq)[0]
    assert row["mse"] == pytest.approx(3.0)
    assert row["mse_se"] == pytest.approx(2.0 / math.sqrt(3))  # sample sd 2 over sqrt(n)
    assert step_rows(per_seq)[1]["mse_se"] == 0
    summary = ten_step_summary(per_seq)
    assert summary["mse"] == pytest.approx(2.5)
    assert summary["mse_se"] == pytest.approx(np.std([1.5, 2.5, 3.5], ddof=1) / math.sqrt(3))


def test_bad_shapes_are_named():
    with pytest.raises(BenchError, match="equal shape"):
        metrics.frame_metrics(torch.zeros(1, 2, 1, 64, 64), torch.zeros(1, 2, 1, 64, 80))
    with pytest.raises(BenchError, match="at least 11x11"):
        metrics.frame_metrics(torch.zeros(1, 1, 1, 8, 8), torch.zeros(1, 1, 1, 8, 8))


def test_gaussian_window_is_normalised_and_symmetric():
    taps = metrics.gaussian_window()
    assert len(taps) == 11 and sum(taps) == pytest.approx(1.0)
    assert taps == taps[::-1] and max(taps) == taps[5]
