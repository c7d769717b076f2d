"""Metric throughput: the harness's metrics against a per-frame scikit-image loop.

Both score the same frames (MSE, PSNR, SSIM per frame); values must agree to 1e-6. Timings are
interleaved and the best of several rounds is kept, so the printed ratio is measured side by side
in one run. Usage: ``python benchmarks/bench_metrics.py [--rounds 5]``, or with pytest-benchmark (one
group per frame shape, its table showing each timing's ratio to the fastest):
``pytest benchmarks/bench_metrics.py --benchmark-enable``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import pytest
import torch
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

from bench.metrics import frame_metrics
from bench.runner import default_threads


def skimage_loop(pred: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    b, t, c = pred.shape[:3]
    out = {name: np.empty((b, t)) for name in ("mse", "psnr", "dssim")}
    for i in range(b):
        for j in range(t):
            p, y = pred[i, j], target[i, j]
            out["mse"][i, j] = mean_squared_error(y, p)
            out["psnr"][i, j] = peak_signal_noise_ratio(y, p, data_range=1)
            ssim = np.mean([
                structural_similarity(p[k], y[k], data_range=1, gaussian_weights=True, sigma=1.5,
                                      use_sample_covariance=False)
                for k in range(c)
            ])
            out["dssim"][i, j] = (1 - ssim) / 2
    return out


SHAPES = [(1, 64, 64), (3, 64, 80)]


def frame_pair(shape, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(predictions, targets) float32 ``(batch, 10, *shape)``: uniform targets, predictions off by noise."""
    rng = np.random.default_rng(seed)
    target = rng.random((batch, 10, *shape)).astype(np.float32)
    return np.clip(target + 0.1 * rng.standard_normal(target.shape), 0, 1).astype(np.float32), target


def agreement(ours: dict[str, torch.Tensor], ref: dict[str, np.ndarray]) -> float:
    """The largest difference between the harness's and scikit-image's scores."""
    return max(float(np.abs(ours[k].numpy() - ref[k]).max()) for k in ref)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda shape: "x".join(map(str, shape)))
@pytest.mark.parametrize("scorer", ["harness", "scikit-image loop"])
def test_metric_throughput(benchmark, scorer, shape):
    pred, target = frame_pair(shape, batch=16)
    benchmark.group = f"MSE, PSNR, DSSIM of 160 frames {'x'.join(map(str, shape))}"
    if scorer == "harness":
        ours = benchmark(frame_metrics, torch.from_numpy(pred), torch.from_numpy(target), default_threads())
        assert agreement(ours, skimage_loop(pred.astype(np.float64), target.astype(np.float64))) < 1e-6
    else:
        benchmark(skimage_loop, pred.astype(np.float64), target.astype(np.float64))


def best_time(fn, rounds: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(rounds):
        start = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - start)
    return min(times), value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None,
                        help="the metric kernel's threads (default: the cores, as `bench run` uses)")
    args = parser.parse_args()
    threads = args.threads or default_threads()
    print(f"harness on {threads} thread(s); the scikit-image loop on one")
    for shape in SHAPES:
        pred, target = frame_pair(shape, args.batch)
        tp, tt = torch.from_numpy(pred), torch.from_numpy(target)
        ours_s, ours = best_time(lambda: frame_metrics(tp, tt, threads), args.rounds)
        ref_s, ref = best_time(lambda: skimage_loop(pred.astype(np.float64), target.astype(np.float64)), args.rounds)
        worst = agreement(ours, ref)
        frames = args.batch * 10
        print(
            f"frames {'x'.join(map(str, shape))}: harness {frames / ours_s:9.0f} frames/s, "
            f"scikit-image loop {frames / ref_s:7.0f} frames/s, ratio {ref_s / ours_s:5.1f}x, "
            f"max |difference| {worst:.1e}"
        )


if __name__ == "__main__":
    main()
