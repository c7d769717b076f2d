"""Bouncing balls (Sutskever, Hinton & Taylor, "The Recurrent Temporal Restricted Boltzmann
Machine", NeurIPS 2008/2009): N equal balls moving at constant speed in a box, colliding
elastically with each other and with the walls, rendered in gray. Generated from a seed: no
download, no data folder.

It is the harness's sanity set: the motion is deterministic, smooth and fully visible in the
context, so a predictor that works must beat copy-last on it (see the learnability tests).

Physics (exact, event-driven): between events every ball moves in a straight line; the next event
is the earliest wall contact (the ball's rim touches the box) or ball-ball contact (centres
``2 r`` apart while approaching), found in closed form and resolved there. A wall contact negates
the velocity component normal to the wall; a ball-ball contact exchanges the two balls' velocity
components along the line of centres (the elastic collision of equal masses), which conserves
momentum and kinetic energy. Balls never overlap, so no position is ever corrected.

Geometry (the original's, in units of the frame side): radius 0.12 (1.2 in a 10-unit box), every
ball's initial speed 0.025 of the side per frame (the original's speed 0.5 at time step 0.5 in a
10-unit box; 1.6 pixels per frame at 64x64), uniformly random directions, non-overlapping uniform
initial positions. ``size`` changes the frame side (default 64, the protocol's), keeping these
proportions.

Rendering: each ball is a disc of intensity 1 whose edge is anti-aliased by a one-pixel linear ramp
(a pixel's value is ``clip(r - d + 1/2, 0, 1)`` for its centre's distance ``d`` from the ball's
centre), so a disc's intensity centroid is its centre; balls are combined with a pixel-wise max.

* Test: a fixed set of ``test_size`` (1,000) sequences from a fixed seed; trajectories are
  simulated once, frames rendered per batch.
* Training: an endless stream from the training seed (disjoint from the test seed's stream).
"""
from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from bench.dataset import ClipSet, Dataset
from bench.errors import BenchError
from bench.registry import register_dataset

RADIUS, SPEED = 0.12, 0.025  # fractions of the frame side; speed per frame
TEST_SEED = 20090607  # fixed: the test set never changes
EPS = 1e-12


def simulate(rng: np.random.Generator, balls: int, length: int, radius: float = RADIUS, speed: float = SPEED,
             events: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centres and velocities ``(length, balls, 2)`` (y, x in units of the box side) at frames 1..length.

    Frame ``t`` shows the balls at time ``t`` (one time unit per frame; the first frame is at time 1,
    one step after the random start). ``events``, when given, collects every resolved contact as
    ``(time, kind, i, j, velocities before, velocities after)`` (``kind`` "wall" or "ball"; ``j`` is
    the axis for walls).
    """
    if not 0 < radius < 0.5 or balls * (2 * radius) ** 2 > 0.5:
        raise BenchError(f"bouncing_balls: {balls} balls of radius {radius} do not fit in the box")
    pos = _start_positions(rng, balls, radius)
    theta = rng.random(balls) * 2 * np.pi
    vel = np.stack([np.sin(theta), np.cos(theta)], axis=1) * speed
    positions, velocities = np.empty((length, balls, 2)), np.empty((length, balls, 2))
    now = 0.0
    for frame in range(length):
        target = frame + 1.0
        while True:
            when, kind, i, j = _next_event(pos, vel, radius)
            if now + when >= target:
                pos += vel * (target - now)
                now = target
                break
            pos += vel * when
            now += when
            before = vel.copy()
            _resolve(pos, vel, kind, i, j)
            if events is not None:
                events.append((now, kind, i, j, before, vel.copy()))
        positions[frame], velocities[frame] = pos, vel
    return positions, velocities


def _start_positions(rng: np.random.Generator, balls: int, radius: float) -> np.ndarray:
    """Uniform positions inside the box with no two discs overlapping (rejection sampling)."""
    pos = np.empty((balls, 2))
    placed = 0
    while placed < balls:
        candidate = radius + rng.random(2) * (1 - 2 * radius)
        if all(np.hypot(*(candidate - pos[k])) >= 2 * radius for k in range(placed)):
            pos[placed] = candidate
            placed += 1
    return pos


def _next_event(pos: np.ndarray, vel: np.ndarray, radius: float) -> tuple[float, str, int, int]:
    """Time until the next contact and what it is: ("wall", ball, axis) or ("ball", i, j)."""
    best = (math.inf, "", -1, -1)
    for i in range(len(pos)):
        for axis in (0, 1):
            v = vel[i, axis]
            if v > EPS:
                when = (1 - radius - pos[i, axis]) / v
            elif v < -EPS:
                when = (radius - pos[i, axis]) / v
            else:
                continue
            if when < best[0]:
                best = (max(when, 0.0), "wall", i, axis)
        for j in range(i + 1, len(pos)):
            dp, dv = pos[j] - pos[i], vel[j] - vel[i]
            approach = dp @ dv
            if approach >= 0:
                continue
            a = dv @ dv
            disc = approach * approach - a * (dp @ dp - 4 * radius * radius)
            if disc < 0:
                continue
            when = (-approach - math.sqrt(disc)) / a
            if when < best[0]:
                best = (max(when, 0.0), "ball", i, j)
    return best


def _resolve(pos: np.ndarray, vel: np.ndarray, kind: str, i: int, j: int) -> None:
    if kind == "wall":
        vel[i, j] = -vel[i, j]
        return
    normal = pos[j] - pos[i]
    normal /= np.hypot(*normal)
    exchange = (vel[i] - vel[j]) @ normal
    vel[i] -= exchange * normal
    vel[j] += exchange * normal


def render(centres: np.ndarray, size: int, radius: float = RADIUS) -> np.ndarray:
    """uint8 frames ``(..., 1, size, size)`` of balls at ``centres`` ``(..., balls, 2)`` (box units)."""
    grid = (np.arange(size) + 0.5) / size  # pixel centres in box units
    pixels = centres * size
    r = radius * size
    dy = grid[:, None] * size - pixels[..., 0, None, None]
    dx = grid[None, :] * size - pixels[..., 1, None, None]
    coverage = np.clip(r - np.sqrt(dy * dy + dx * dx) + 0.5, 0, 1).max(axis=-3)
    return np.round(coverage * 255).astype(np.uint8)[..., None, :, :]


class SimulatedTestSet(ClipSet):
    """The fixed test set: ``size`` trajectories simulated once from ``TEST_SEED``, rendered per batch."""

    def __init__(self, sequences: int, length: int, balls: int, size: int):
        rng = np.random.default_rng(TEST_SEED)
        self.centres = np.stack([simulate(rng, balls, length)[0] for _ in range(sequences)])
        self.size = size

    def __len__(self) -> int:
        return len(self.centres)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.batch([index])[0]

    def batch(self, indices) -> np.ndarray:
        return render(self.centres[np.asarray(indices)], self.size)


@register_dataset("bouncing_balls")
class BouncingBalls(Dataset):
    label = "Bouncing balls"
    options = {
        "balls": (int, 3, "number of balls"),
        "size": (int, 64, "frame side in pixels (square frames)"),
        "test_size": (int, 1_000, "number of test sequences"),
    }

    def __init__(self, *args, **options):
        super().__init__(*args, **options)
        balls, size, test_size = (self.settings[key] for key in ("balls", "size", "test_size"))
        if balls < 1 or size < 8 or test_size < 1:
            raise BenchError(
                f"bouncing_balls: need balls >= 1, size >= 8 and test_size >= 1; got {balls}, {size}, {test_size}"
            )
        simulate(np.random.default_rng(0), balls, 1)  # refuses more balls than the box holds, now
        self.frame_shape = (1, size, size)

    def train_clips(self, length: int, seed: int) -> Iterator[np.ndarray]:
        rng = np.random.default_rng([seed, 1])  # a stream of its own, never the test set's
        balls, size = self.settings["balls"], self.settings["size"]
        while True:
            centres = np.stack([simulate(rng, balls, length)[0] for _ in range(16)])
            yield from render(centres, size)

    def test_clips(self, length: int, stride: int = 1) -> ClipSet:
        if stride != 1:
            raise BenchError("bouncing_balls test sequences are independent clips: --test-stride does not apply")
        return SimulatedTestSet(self.settings["test_size"], length, self.settings["balls"], self.settings["size"])

    def verify(self, echo, jobs: int = 1) -> str | None:
        echo("bouncing_balls is generated from a seed: there is no raw data to verify")
        return None

    def params(self) -> dict:
        return {**super().params(), "test_seed": TEST_SEED, "radius": RADIUS, "speed": SPEED,
                "generator": "event-driven elastic collisions of equal balls; anti-aliased discs, max-combined"}
