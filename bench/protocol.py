"""The evaluation protocol, in one place: every module that needs these numbers or names imports them.

The paper (Sec. 4) observes 10 frames and scores the next 10 with MSE, PSNR and DSSIM; training clips
hold both, so a method sees during training exactly the split it is scored on.
"""
CONTEXT = 10  # observed frames
HORIZON = 10  # predicted frames, each scored
CLIP_LENGTH = CONTEXT + HORIZON  # frames per training clip

METRICS = ("mse", "psnr", "dssim")
LOWER_IS_BETTER = {"mse": True, "psnr": False, "dssim": True}
METRIC_LABELS = {"mse": "MSE", "psnr": "PSNR", "dssim": "DSSIM"}
DECIMALS = {"mse": 5, "psnr": 3, "dssim": 5}

# Per-step CSV of one result: a metric's mean and standard error over sequences, the sequence count, and
# how many sequences had an infinite PSNR (a perfect prediction) left out of the PSNR mean.
STEP_COLUMNS = ["step", "mse", "mse_se", "psnr", "psnr_se", "dssim", "dssim_se", "n", "psnr_inf"]
