"""The method contract, for every registered method on several frame shapes (``tiny`` presets).

``predict`` returns ``(B, horizon, C, H, W)`` in [0, 1], the same twice in eval mode; a trainable method's
``training_step`` on a ``(B, 20, C, H, W)`` clip returns finite losses and changes its weights; a checkpoint
round trip (:mod:`bench.checkpoint`) gives a fresh model the same predictions. A method that cannot take a
frame shape refuses it with a :class:`~bench.errors.BenchError` when built; that case is skipped with its
message. What is specific to one method lives in its own test file.
"""
from __future__ import annotations

import math

import pytest
import torch

import bench
from bench import checkpoint as ckpt
from bench.errors import BenchError
from bench.protocol import CLIP_LENGTH, CONTEXT, HORIZON
from method_helpers import SHAPES, frames, seeded

CONTRACT_SHAPES = [*SHAPES, (1, 32, 48)]  # the three datasets' shapes, and a smaller one


@pytest.fixture(params=bench.list_methods())
def name(request):
    return request.param


@pytest.fixture(params=CONTRACT_SHAPES, ids=lambda shape: "x".join(map(str, shape)))
def shape(request):
    return request.param


def build(name, shape, seed=0):
    try:
        return seeded(name, shape, seed=seed)
    except BenchError as error:
        pytest.skip(f"{name} does not take {shape}: {error}")


def test_predict_shape_range_and_determinism(name, shape):
    model = build(name, shape).eval()
    context = frames(shape=shape, length=CONTEXT)
    with torch.no_grad():
        first, second = model.predict(context, HORIZON), model.predict(context, HORIZON)
    assert first.shape == (2, HORIZON, *shape) and first.dtype == torch.float32
    assert first.min() >= 0 and first.max() <= 1
    assert torch.equal(first, second)


def test_one_training_step_is_finite_and_learns(name, shape):
    model = build(name, shape)
    if not model.trainable:
        pytest.skip(f"{name} has nothing to train")
    before = [p.detach().clone() for p in model.parameters()]
    losses = model.train().training_step(frames(shape=shape, length=CLIP_LENGTH, seed=3))
    assert losses and all(math.isfinite(value) for value in losses.values()), losses
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


def test_checkpoint_round_trip_gives_the_same_predictions(name, shape, tmp_path):
    model = build(name, shape)
    if model.trainable:
        model.train().training_step(frames(shape=shape, length=CLIP_LENGTH, seed=3))  # optimizer state too
    path = ckpt.checkpoint_path("contract", name, "tiny", tmp_path)
    ckpt.save(path, ckpt.pack(model, preset="tiny", dataset="contract", step=1, seed=0))
    fresh = build(name, shape, seed=1)
    ckpt.restore(fresh, ckpt.load(path, method=name, preset="tiny", frame_shape=shape), path)
    context = frames(shape=shape, length=CONTEXT, seed=4)
    with torch.no_grad():
        assert torch.equal(fresh.eval().predict(context, HORIZON), model.eval().predict(context, HORIZON))
