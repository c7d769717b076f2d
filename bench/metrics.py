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

Everything is computed in float64. On the CPU, SSIM runs as one fused loop compiled by numba
(compiled on first use, then cached on disk), about 20x faster than a per-frame scikit-image loop
(``benchmarks/bench_metrics.py``); on other devices as batched tensor ops. :data:`CONVENTIONS` is written into every result's metadata.
"""
from __future__ import annotations

import math

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
    return _mse_and_ssim(pred, target)[1]


def dssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - ssim(pred, target)) / 2


def frame_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"mse", "psnr", "dssim"}``, each ``(B, T)`` float64, for frames in [0, 1]."""
    frame_mse, frame_ssim = _mse_and_ssim(pred, target)
    return {"mse": frame_mse, "psnr": psnr_from_mse(frame_mse), "dssim": (1 - frame_ssim) / 2}


def _mse_and_ssim(pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frame MSE and mean SSIM: one fused loop on the CPU, batched tensor ops elsewhere."""
    _check(pred, target)
    b, t, c, h, w = pred.shape
    if h < WINDOW or w < WINDOW:
        raise BenchError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {h}x{w}")
    xs, ys = (_images(frames, h, w) for frames in (pred, target))
    if pred.device.type == "cpu":
        per_image = torch.from_numpy(_mse_and_ssim_cpu(xs.numpy(), ys.numpy(), np.array(gaussian_window())))
        return per_image.view(b, t, c, 2).mean(dim=2).unbind(-1)  # channel means of MSE and SSIM
    per_image = [_ssim_tensor(xs[i : i + 8].double(), ys[i : i + 8].double()) for i in range(0, len(xs), 8)]
    return mse(pred, target), torch.cat(per_image).view(b, t, c).mean(dim=2)


def _images(frames: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``(N, H, W)`` contiguous single-channel images; float32 stays (the kernels accumulate in float64)."""
    frames = frames.detach().reshape(-1, h, w)
    if frames.dtype not in (torch.float32, torch.float64):
        frames = frames.double()
    return frames.contiguous()


_pixel_ssim = numba.njit(cache=True)(ssim_from_stats)


@numba.njit(cache=True)
def _mse_and_ssim_cpu(xs, ys, taps):
    """``(N, 2)``: MSE and mean SSIM of each ``(H, W)`` image pair, one image at a time, in float64.

    The four products of each row are filtered along the row, then each output row adds up
    ``taps``-weighted filtered rows and sums its SSIM values: the buffers stay in cache and the inner
    loops run along contiguous rows, which the compiler vectorises.
    """
    n, h, w = xs.shape
    width = taps.size
    out_h, out_w = h - width + 1, w - width + 1
    products = np.empty((4, w))
    rows = np.empty((4, h, out_w))  # row-filtered statistics
    window = np.empty((4, out_w))
    scores = np.empty((n, 2))
    for i in range(n):
        squared_error = 0.0
        for r in range(h):
            for col in range(w):
                a, b = np.float64(xs[i, r, col]), np.float64(ys[i, r, col])
                squared_error += (a - b) * (a - b)
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
        scores[i, 0] = squared_error / (h * w)
        scores[i, 1] = total / (out_h * out_w)
    return scores


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
