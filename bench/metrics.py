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

Everything is computed in float64. :data:`CONVENTIONS` is written into every result's metadata.
"""
from __future__ import annotations

import math

import torch

from .errors import BenchError

WINDOW, SIGMA, K1, K2, DATA_RANGE = 11, 1.5, 0.01, 0.03, 1.0

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


def _valid_blur(stats: torch.Tensor) -> torch.Tensor:
    """Separable "valid" Gaussian filter over the last two dimensions (symmetric taps paired)."""
    taps, r = gaussian_window(), WINDOW // 2
    for dim in (-1, -2):
        n = stats.shape[dim] - 2 * r
        out = stats.narrow(dim, r, n) * taps[r]
        for k in range(r):
            out.add_(stats.narrow(dim, k, n), alpha=taps[k]).add_(stats.narrow(dim, WINDOW - 1 - k, n), alpha=taps[k])
        stats = out
    return stats


def ssim(pred: torch.Tensor, target: torch.Tensor, chunk: int = 8) -> torch.Tensor:
    """Mean SSIM per frame, ``(B, T)``; frames are filtered ``chunk`` at a time to stay in cache."""
    _check(pred, target)
    b, t, c, h, w = pred.shape
    if h < WINDOW or w < WINDOW:
        raise BenchError(f"SSIM needs frames of at least {WINDOW}x{WINDOW} pixels, got {h}x{w}")
    xs = pred.reshape(b * t * c, h, w)
    ys = target.reshape(b * t * c, h, w)
    c1, c2 = (K1 * DATA_RANGE) ** 2, (K2 * DATA_RANGE) ** 2
    means = []
    for start in range(0, len(xs), chunk):
        x, y = xs[start : start + chunk].double(), ys[start : start + chunk].double()
        # Four local statistics suffice: the denominator needs only var_x + var_y.
        mu_x, mu_y, e_sq, e_xy = _valid_blur(torch.stack([x, y, x * x + y * y, x * y], dim=1)).unbind(1)
        mu_xy = mu_x * mu_y
        mu_sq = mu_x * mu_x + mu_y * mu_y
        numerator = (2 * mu_xy + c1) * (2 * (e_xy - mu_xy) + c2)
        denominator = (mu_sq + c1) * (e_sq - mu_sq + c2)
        means.append((numerator / denominator).mean(dim=(1, 2)))
    return torch.cat(means).view(b, t, c).mean(dim=2)


def dssim(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return (1 - ssim(pred, target)) / 2


def frame_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"mse", "psnr", "dssim"}``, each ``(B, T)`` float64, for frames in [0, 1]."""
    frame_mse = mse(pred, target)
    return {"mse": frame_mse, "psnr": psnr_from_mse(frame_mse), "dssim": dssim(pred, target)}


def finite_mean(values, axis=0):
    """Mean, standard error and count over ``axis`` of the finite entries (numpy arrays).

    Infinite PSNRs are dropped, as the fRNN evaluation does; the count says how many remained.
    """
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    n = finite.sum(axis=axis)
    safe = np.where(finite, values, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = safe.sum(axis=axis) / n
        sq = np.where(finite, (values - np.expand_dims(mean, axis)) ** 2, 0.0).sum(axis=axis)
        se = np.sqrt(sq / (n - 1)) / np.sqrt(n)
    return mean, np.where(n > 1, se, math.nan), n
