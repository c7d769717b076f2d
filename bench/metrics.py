"""Per-frame quality metrics, exactly as the fRNN evaluation defines them.

All functions take ``pred`` and ``target`` batches ``(B, T, C, H, W)`` of frames in [0, 1] (any
float dtype, any device) and return ``(B, T)`` float64 tensors on that device:

* **MSE**: mean squared error over C, H, W of one frame.
* **PSNR**: ``10 log10(1 / MSE)`` of each frame; ``inf`` where MSE = 0. Aggregation drops the
  infinite values from the means and counts them (:func:`finite_mean`).
* **DSSIM**: ``(1 - SSIM) / 2``. SSIM uses an 11x11 Gaussian window (sigma 1.5, normalised to sum 1),
  the "valid" region only (a 54x54 map for 64x64 frames), K1 = 0.01, K2 = 0.03, data range 1 and
  population (not sample) variances; each channel is scored as a grayscale image, the map is
  averaged over space, then over channels. This equals scikit-image's
  ``structural_similarity(..., data_range=1, gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)``.

Everything is accumulated in float64 (float32 frames are read as they are). :func:`score_frames`
makes one pass over a batch that also yields what the runner checks and records (non-finite
values, range, intensity means, lit fraction): on the CPU a fused loop compiled by numba (on first
use, then cached on disk) that runs over the images in worker threads, about 10x faster than a
per-frame scikit-image loop (``benchmarks/bench_metrics.py``); on other devices batched tensor
ops. :data:`CONVENTIONS` is written into every result's metadata.
"""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numba
import numpy as np
import torch

from .errors import BenchError

WINDOW, SIGMA, K1, K2, DATA_RANGE = 11, 1.5, 0.01, 0.03, 1.0
C1, C2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2

CONVENTIONS = {
    "frame_range": "float [0, 1], no 8-bit quantisation",
    "mse": "mean over C, H, W of one frame",
    "psnr": "10*log10(1/MSE) per frame, then averaged; infinite values (MSE = 0) dropped and counted",
    "dssim": (
        f"(1 - SSIM)/2; SSIM with a {WINDOW}x{WINDOW} Gaussian window (sigma {SIGMA}), valid region only, "
        f"K1 = {K1}, K2 = {K2}, data range {DATA_RANGE}, population variances, per channel then channel mean"
    ),
    "aggregation": "per step: mean over test sequences (standard error over sequences); "
    "10-step value: mean of the per-step means",
}


def _check(pred: torch.Tensor, target: torch.Tensor) -> None:
    if pred.shape != target.shape or pred.dim() != 5:
        raise BenchError(
            f"metrics need two (B, T, C, H, W) batches of equal shape, got {tuple(pred.shape)} and {tuple(target.shape)}"
        )


def mse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    _check(pred, target)
    diff = pred.double() - target.double()
    return diff.square().mean(dim=(2, 3, 4))


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return psnr_from_mse(mse(pred, target))


def psnr_from_mse(frame_mse: torch.Tensor) -> torch.Tensor:
    """``10 log10(1 / MSE)``, ``inf`` where MSE is 0."""
    return 10 * torch.log10(DATA_RANGE**2 / frame_mse)


def gaussian_window() -> list[float]:
    """The normalised 1-D Gaussian (11 taps, sigma 1.5) whose outer product is the SSIM window."""
    taps = [math.exp(-((k - WINDOW // 2) ** 2) / (2 * SIGMA**2)) for k in range(WINDOW)]
    return [tap / sum(taps) for tap in taps]


def ssim_from_stats(mu_x, mu_y, e_sq, e_xy):
    """SSIM from the four local statistics: means, E[x^2 + y^2], E[xy] (floats, arrays or tensors).

    Four statistics suffice: the denominator needs only var_x + var_y.
    """
    mu_xy = mu_x * mu_y
    mu_sq = mu_x * mu_x + mu_y * mu_y
    return (2 * mu_xy + C1) * (2 * (e_xy - mu_xy) + C2) / ((mu_sq + C1) * (e_sq - mu_sq + C2))


def ssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean SSIM per frame, ``(B, T)``."""
    return score_frames(pred, target).ssim


def dssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - ssim(pred, target)) / 2


def frame_metrics(pred: torch.Tensor, target: torch.Tensor, threads: int = 1) -> dict[str, torch.Tensor]:
    """``{"mse", "psnr", "dssim"}``, each ``(B, T)`` float64, for frames in [0, 1]."""
    return score_frames(pred, target, threads).metrics()


@dataclass
class FrameScores:
    """What one pass over a batch yields, per frame ``(B, T)`` on the batch's device.

    ``mse``, ``ssim``: the metrics (float64). The prediction's checks and intensity statistics:
    ``pred_mean`` and ``target_mean`` (mean over C, H, W), ``pred_bright`` (the fraction of pixels
    above :data:`BRIGHT`, compared in the frames' own dtype), ``pred_min`` and ``pred_max``
    (float64), ``pred_finite`` (bool: no NaN or infinity in the predicted frame).
    """

    mse: torch.Tensor
    ssim: torch.Tensor
    pred_mean: torch.Tensor
    target_mean: torch.Tensor
    pred_bright: torch.Tensor
    pred_min: torch.Tensor
    pred_max: torch.Tensor
    pred_finite: torch.Tensor

    def metrics(self) -> dict[str, torch.Tensor]:
        return {"mse": self.mse, "psnr": psnr_from_mse(self.mse), "dssim": (1 - self.ssim) / 2}


BRIGHT = 0.1  # a predicted pixel above this counts as lit (the blank-frame statistics)
# The columns of the per-image scores: metrics, then the predicted image's sum, the target's sum,
# the count of lit pixels, min, max, and a check that is 0 exactly when every value is finite.
MSE, SSIM, SUM_X, SUM_Y, LIT, LOW, HIGH, CHECK = range(8)
GPU_CHUNK_PIXELS = 2**22  # pixels per batched tensor op on other devices (130 MB of float64 statistics)


def score_frames(pred: torch.Tensor, target: torch.Tensor, threads: int = 1) -> FrameScores:
    """Metrics, checks and statistics of every frame in one pass over the batch.

    On the CPU the fused numba kernel runs over the images in ``threads`` worker threads (chunks
    handed out as workers free up, so a core taken by another process delays only its own chunk);
    elsewhere batched tensor ops compute the same columns. The results never depend on ``threads``.
    """
    _check(pred, target)
    b, t, c, h, w = pred.shape
    if h < WINDOW or w < WINDOW:
        raise BenchError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {h}x{w}")
    bright = float(torch.tensor(BRIGHT, dtype=pred.dtype))  # the threshold as the frames' dtype rounds it
    xs, ys = (_images(frames, h, w) for frames in (pred, target))
    if pred.device.type == "cpu":
        per_image = torch.from_numpy(_score_cpu(xs.numpy(), ys.numpy(), bright, threads))
    else:
        step = max(1, GPU_CHUNK_PIXELS // (h * w))
        per_image = torch.cat([_score_tensor(xs[i : i + step], ys[i : i + step], bright) for i in range(0, len(xs), step)])
    scores = per_image.view(b, t, c, -1)
    pixels = c * h * w
    return FrameScores(
        mse=scores[..., MSE].mean(dim=2),  # channel means
        ssim=scores[..., SSIM].mean(dim=2),
        pred_mean=scores[..., SUM_X].sum(dim=2) / pixels,
        target_mean=scores[..., SUM_Y].sum(dim=2) / pixels,
        pred_bright=scores[..., LIT].sum(dim=2) / pixels,
        pred_min=scores[..., LOW].amin(dim=2),
        pred_max=scores[..., HIGH].amax(dim=2),
        pred_finite=scores[..., CHECK].sum(dim=2) == 0,
    )


def _images(frames: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, H, W)`` contiguous single-channel images; float32 stays (the kernels accumulate in float64)."""
    frames = frames.detach().reshape(-1, h, w)
    if frames.dtype not in (torch.float32, torch.float64):
        frames = frames.double()
    return frames.contiguous()


def _score_cpu(xs: np.ndarray, ys: np.ndarray, bright: float, threads: int) -> np.ndarray:
    """``(N, 8)`` per-image scores from the numba kernel, the images split among ``threads`` workers."""
    taps = np.array(gaussian_window())
    scores = np.empty((len(xs), CHECK + 1))
    if threads <= 1 or len(xs) < 2:
        _score_images(xs, ys, taps, bright, scores)
        return scores
    bounds = np.linspace(0, len(xs), min(len(xs), 4 * threads) + 1).astype(int)
    pool = _worker_pool(threads)
    jobs = [pool.submit(_score_images, xs[a:z], ys[a:z], taps, bright, scores[a:z]) for a, z in zip(bounds, bounds[1:])]
    for job in jobs:
        job.result()
    return scores


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _worker_pool(threads: int) -> ThreadPoolExecutor:
    """The metric kernel's ``threads`` worker threads, kept between batches and shared by callers.

    They sleep while idle, unlike OpenMP threads, which spin and steal time from a busy machine.
    """
    with _pools_lock:
        if threads not in _pools:
            _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="bench-metrics")
        return _pools[threads]


_pixel_ssim = numba.njit(cache=True)(ssim_from_stats)


@numba.njit(cache=True, nogil=True)
def _score_images(xs, ys, taps, bright, scores):
    """Fill ``scores[i]`` (columns ``MSE`` ... ``CHECK``) for each ``(H, W)`` image pair, in float64.

    One pass per image: each pixel adds to the squared error and the prediction's statistics, and
    the four SSIM products of each row are filtered along the row; then each output row adds up
    ``taps``-weighted filtered rows and sums its SSIM values. The buffers stay in cache and the
    filter loops run along contiguous rows, which the compiler vectorises.
    """
    n, h, w = xs.shape
    width = taps.size
    out_h, out_w = h - width + 1, w - width + 1
    products = np.empty((4, w))
    rows = np.empty((4, h, out_w))  # row-filtered statistics
    window = np.empty((4, out_w))
    for i in range(n):
        squared_error = sum_x = sum_y = lit = check = 0.0
        low, high = np.inf, -np.inf
        for r in range(h):
            for col in range(w):
                a, b = np.float64(xs[i, r, col]), np.float64(ys[i, r, col])
                squared_error += (a - b) * (a - b)
                sum_x += a
                sum_y += b
                lit += 1.0 if a > bright else 0.0
                low, high = min(low, a), max(high, a)
                check += a - a  # NaN from the first NaN or infinity on
                products[0, col], products[1, col] = a, b
                products[2, col], products[3, col] = a * a + b * b, a * b
            for s in range(4):
                _filter_row(products[s], taps, rows[s, r])
        total = 0.0
        for r in range(out_h):
            mu_x, mu_y, e_sq, e_xy = window[0], window[1], window[2], window[3]
            window[:] = 0.0
            for k in range(width):
                tap, x, y, sq, xy = taps[k], rows[0, r + k], rows[1, r + k], rows[2, r + k], rows[3, r + k]
                for col in range(out_w):
                    mu_x[col] += tap * x[col]
                    mu_y[col] += tap * y[col]
                    e_sq[col] += tap * sq[col]
                    e_xy[col] += tap * xy[col]
            for col in range(out_w):
                total += _pixel_ssim(mu_x[col], mu_y[col], e_sq[col], e_xy[col])
        scores[i, MSE], scores[i, SSIM] = squared_error / (h * w), total / (out_h * out_w)
        scores[i, SUM_X], scores[i, SUM_Y], scores[i, LIT] = sum_x, sum_y, lit
        scores[i, LOW], scores[i, HIGH], scores[i, CHECK] = low, high, check


@numba.njit(cache=True, inline="always")
def _filter_row(source, taps, out):
    """``out[j] = sum_k taps[k] * source[j + k]``: the "valid" 1-D filter of one row."""
    out[:] = 0.0
    for k in range(taps.size):
        _add_scaled(out, taps[k], source[k : k + out.size])


@numba.njit(cache=True, inline="always")
def _add_scaled(out, weight, source):
    for j in range(out.size):
        out[j] += weight * source[j]


def _score_tensor(xs: torch.Tensor, ys: torch.Tensor, bright: float) -> torch.Tensor:
    """The kernel's ``(N, 8)`` per-image scores with batched tensor ops (GPU and other devices)."""
    x, y = xs.double(), ys.double()
    finite = torch.isfinite(xs).all(dim=(1, 2))
    columns = [
        (x - y).square().mean(dim=(1, 2)), _ssim_tensor(x, y), x.sum(dim=(1, 2)), y.sum(dim=(1, 2)),
        (xs > bright).sum(dim=(1, 2)).double(), x.amin(dim=(1, 2)), x.amax(dim=(1, 2)),
        torch.where(finite, 0.0, math.nan).double(),
    ]
    return torch.stack(columns, dim=1)


def _ssim_tensor(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of each ``(H, W)`` frame pair with tensor ops (GPU and other devices)."""
    stats = torch.stack([x, y, x * x + y * y, x * y], dim=1)
    taps, r = gaussian_window(), WINDOW // 2
    for dim in (-1, -2):  # separable "valid" filter, symmetric taps paired
        n = stats.shape[dim] - 2 * r
        out = stats.narrow(dim, r, n) * taps[r]
        for k in range(r):
            out.add_(stats.narrow(dim, k, n), alpha=taps[k]).add_(stats.narrow(dim, WINDOW - 1 - k, n), alpha=taps[k])
        stats = out
    return ssim_from_stats(*stats.unbind(1)).mean(dim=(1, 2))


def finite_mean(values, axis=0):
    """Mean, standard error and count over ``axis`` of the finite entries (numpy arrays).

    Infinite PSNRs are dropped, as the fRNN evaluation does; the count says how many remained.
    """
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n = finite.sum(axis=axis)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=axis) / n
        sq = np.where(finite, (values - np.expand_dims(mean, axis)) ** 2, 0.0).sum(axis=axis)
        se = np.sqrt(sq / (n - 1)) / np.sqrt(n)
    return mean, np.where(n > 1, se, math.nan), n
