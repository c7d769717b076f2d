"""Every registered trainable method (plugins included) fits a handful of sequences (bench.learnability),
and the probe fails a method whose gradient or prediction schedule is broken."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import bench
from bench import learnability
from bench.layers import GateSet
from bench.methods.frnn import FRNN
from bench.registry import methods

# Fixtures that other test modules register (tiny stand-ins for the training and fault tests) are
# not methods and are left out; every method of the package and of installed plugins is probed.
TRAINABLE = [name for name in bench.list_methods()
             if methods.get(name).trainable and not methods.get(name).__module__.startswith(("test_", "train_plugins"))]


def test_the_handful_is_fixed_and_moving():
    first, second = learnability.handful(), learnability.handful()
    assert first.shape == (4, 20, *learnability.FRAME_SHAPE)
    assert torch.equal(first, second)
    assert (first[:, 10:] - first[:, 9:10]).abs().mean() > 0.02  # copy-last is wrong: the balls move


@pytest.mark.parametrize("name", TRAINABLE)
def test_method_learns_a_handful_of_sequences(name):
    probe = learnability.probe(name)
    assert probe.failures == [], f"{name} does not learn: " + "; ".join(probe.failures)


def _candidate_without_gradient(self, parts, index):
    """GateSet.forward with the candidate's gradient cut: its weights never learn."""
    gates = F.conv2d(torch.cat(parts, 1), self.weight_rz, self.bias_rz, padding=self.padding)
    reset, update = torch.sigmoid(gates).chunk(2, 1)
    gated = list(parts)
    gated[index] = reset * parts[index]
    candidate = torch.tanh(F.conv2d(torch.cat(gated, 1), self.weight_c, self.bias_c, padding=self.padding))
    return torch.lerp(parts[index], candidate.detach(), update)


def _state_never_advances(self, context, horizon, cut):
    """fRNN's rollout with the top state frozen after the context: every step decodes the same state."""
    inputs, states = self.encode(context, cut)
    top = states[max(states)]
    return torch.stack([self.decode(dict(inputs), top, cut) for _ in range(horizon)], 1)


@pytest.mark.parametrize("owner, attribute, broken", [
    (GateSet, "forward", _candidate_without_gradient),
    (FRNN, "rollout", _state_never_advances),
], ids=["gate-gradient-cut", "prediction-schedule-broken"])
def test_the_probe_fails_a_broken_method(monkeypatch, owner, attribute, broken):
    monkeypatch.setattr(owner, attribute, broken)
    assert learnability.probe("frnn").failures
