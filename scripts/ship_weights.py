"""Ship a finished training checkpoint as package weights (a maintainer's step, see ``bench.weights``).

    python scripts/ship_weights.py checkpoints/mmnist/frnn-small.pt --commit 7f81f37 \
        --command "bench train --method frnn --dataset mmnist --preset small --seed 0"

Scores the checkpoint as trained (float32) and its half-precision copy on the first ``--limit`` test
sequences, keeps half precision only when every per-step mean of every metric is within ``bench
check``'s default tolerances of the float32 one (else ships float32), and writes
``bench/weights/<dataset>/<method>-<preset>.pt`` (inference state only) with its manifest entry:
``--commit`` is the code that trained it, ``--command`` the ``bench train`` line that reproduces it.
Training-only tensors (a GAN's discriminator, ...: ``Method.training_only``) are left out.

    python scripts/ship_weights.py --strip-existing

rewrites every shipped file without the training-only tensors it still holds (files shipped before
they were left out), keeping the tensors' dtype and every manifest field but the SHA-256; the
predictions do not change (``bench check`` against ``results/reference-shipped`` confirms it).
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import bench
from bench import checkpoint as ckpt
from bench import weights
from bench.check import DEFAULT_TOLERANCES
from bench.metrics import finite_mean
from bench.registry import methods


def per_step_means(method, data, limit: int) -> dict[str, np.ndarray]:
    result = bench.evaluate(method, data, limit=limit, progress=False, device="cpu")
    return {name: finite_mean(scores, axis=0)[0]  # per step, infinite PSNRs dropped as everywhere
            for name, scores in result.per_sequence.items() if name in DEFAULT_TOLERANCES}


def drift(reference: dict[str, np.ndarray], other: dict[str, np.ndarray]) -> list[str]:
    """The (metric, step) means of ``other`` outside the drift tolerances around ``reference``."""
    out = []
    for name, (rel, abs_) in DEFAULT_TOLERANCES.items():
        for step, (want, got) in enumerate(zip(reference[name], other[name]), start=1):
            if abs(got - want) > abs_ + rel * abs(want):
                out.append(f"{name} step {step}: {want:.6g} -> {got:.6g}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", nargs="?")
    parser.add_argument("--command", help="the bench train command that reproduces it")
    parser.add_argument("--commit", help="the git commit of the code that trained it")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--strip-existing", action="store_true",
                        help="rewrite the shipped files without their training-only tensors, and exit")
    args = parser.parse_args()
    if args.strip_existing:
        if args.checkpoint:
            parser.error("--strip-existing takes no checkpoint")
        for old in weights.manifest():
            size = old.path().stat().st_size
            new = weights.strip(old)
            print(f"{new.file}: {size / 1e6:.2f} MB -> {new.path().stat().st_size / 1e6:.2f} MB, "
                  f"sha256 {new.sha256[:16]}...")
        return
    if not (args.checkpoint and args.command and args.commit):
        parser.error("a checkpoint, --command and --commit are required (or --strip-existing)")

    checkpoint = ckpt.load(args.checkpoint)
    cls = methods.get(checkpoint["method"])
    differences = weights.config_differences({**checkpoint["config"], "steps": checkpoint["step"]},
                                             cls.resolve_config(checkpoint["preset"]))
    if differences:  # bench run would pass over such weights and train its own
        parser.error(f"{args.checkpoint} was not trained as preset {checkpoint['preset']!r} says "
                     f"({'; '.join(differences)}): bench run would never use it; train it to the preset's "
                     "settings, or change the preset, first")
    data = bench.get_dataset(checkpoint["dataset"])
    full = cls(tuple(checkpoint["frame_shape"]), checkpoint["config"])
    full.load_state_dict(checkpoint["model"])
    half = cls(tuple(checkpoint["frame_shape"]), checkpoint["config"])
    half.load_state_dict({key: value.half().float() if value.is_floating_point() else value
                          for key, value in checkpoint["model"].items()})
    drifted = drift(per_step_means(full, data, args.limit), per_step_means(half, data, args.limit))
    dtype = torch.float32 if drifted else torch.float16
    entry = weights.export(checkpoint, dtype=dtype, command=args.command, commit=args.commit)
    why = f"half precision drifts ({'; '.join(drifted[:3])})" if drifted else "half precision within tolerance"
    print(f"shipped {entry.file}: {entry.dtype} ({why}), {weights.SHIPPED_DIR / entry.file}, sha256 {entry.sha256[:16]}...")


if __name__ == "__main__":
    main()
