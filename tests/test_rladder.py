"""RLadder: parameter count against fRNN, bridges, the feed-back schedule, shapes and pre-training weights."""
from __future__ import annotations

import math

import pytest
import torch

import bench
from method_helpers import SHAPES, frames, seeded
from bench import checkpoint as ckpt
from bench.errors import BenchError
from bench.layers import TiedConv
from bench.methods.rladder import LadderGRU

PAPER_LAYERS = [(64, 128, 5), (128, 128, 5), (128, 256, 5), (256, 256, 5),
                (256, 512, 3), (512, 512, 3), (512, 256, 3), (256, 256, 3)]


def tiny(frame_shape=(1, 64, 64), seed=0):
    return seeded("rladder", frame_shape, seed=seed).eval()


def context(batch=2, frame_shape=(1, 64, 64), length=10, seed=1):
    return frames(batch, length, frame_shape, seed)


def test_paper_preset_parameter_count_follows_the_bridge_formula():
    with torch.device("meta"):
        model = bench.get_method("rladder", (1, 64, 64), preset="paper")
    count = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    ladders = [m for m in model.layers if isinstance(m, LadderGRU)]
    expected = 0
    for module, (a, b, k) in zip(ladders, PAPER_LAYERS, strict=True):
        per_layer = 3 * k * k * (a * a + b * b + 4 * a * b) + 3 * a + 3 * b + b + a  # weights, biases, 2 initial states
        assert count([module]) == per_layer
        expected += per_layer
    assert count([m for m in model.layers if isinstance(m, TiedConv)]) == 52_129
    assert expected == 155_940_096
    total = sum(p.numel() for p in model.parameters())
    assert total == 52_129 + 155_940_096 == 155_992_225  # ~156.0 M
    assert total / 105_707_617 == pytest.approx(1.4757, abs=1e-4)  # fRNN's count: bridges cost +48 %


def test_bridges_concatenate_in_the_authors_order():
    torch.manual_seed(0)
    layer = LadderGRU(1, 1, 1)
    with torch.no_grad():
        for gates in (layer.fwd, layer.bwd):
            gates.weight_rz.zero_()
            gates.bias_rz.copy_(torch.tensor([-50.0, 50.0]))  # r = 0, z = 1: the new state is the candidate
            gates.weight_c.copy_(torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1))
            gates.bias_c.zero_()
    one = lambda v: torch.full((1, 1, 1, 1), v)  # noqa: E731
    # forward over [x ; d ; s], s reset to 0: tanh(x + 10 d)
    d, s = layer.encode_step(one(0.001), one(0.002), one(0.003))
    assert d.item() == pytest.approx(0.002) and s.item() == pytest.approx(math.tanh(0.001 + 0.02), abs=1e-6)
    # backward over [v ; s ; d], d reset to 0: tanh(v + 10 s)
    assert layer.decode_step(one(0.004), one(0.005), one(0.006)).item() == pytest.approx(math.tanh(0.004 + 0.05), abs=1e-6)
    # both states start from their own learnable vectors
    with torch.no_grad():
        layer.state_init.fill_(0.3)
        layer.back_state_init.fill_(-0.7)
    d, _ = layer.encode_step(torch.zeros(2, 1, 3, 3), None, None)
    assert torch.equal(d, torch.full((2, 1, 3, 3), -0.7))


def _log_steps(model):
    """Record each call of ``model.step`` as (input frame, output frame)."""
    calls = []
    original = model.step

    def step(frame, enc, dec, cut):
        out = original(frame, enc, dec, cut)
        calls.append((frame, out))
        return out

    model.step = step
    return calls


def test_every_step_runs_the_whole_encoder_then_the_whole_decoder():
    model = tiny()  # c4k3 c4k3 p g4k3 g4k3 p g6k3 g6k3: recurrent layers 3, 4, 6, 7
    log = []
    for i in (3, 4, 6, 7):
        model.layers[i].fwd.register_forward_hook(lambda *_, i=i: log.append(("fwd", i)))
        model.layers[i].bwd.register_forward_hook(lambda *_, i=i: log.append(("bwd", i)))
    with torch.no_grad():
        model.predict(context(), 10)
    one_step = [("fwd", 3), ("fwd", 4), ("fwd", 6), ("fwd", 7), ("bwd", 7), ("bwd", 6), ("bwd", 4), ("bwd", 3)]
    assert log == one_step * 19  # 9 context-only steps, then frame 10 and 9 fed-back predictions


def test_predictions_are_fed_back_so_the_second_depends_on_the_first():
    model = tiny()
    ctx = context()
    with torch.no_grad():
        calls = _log_steps(model)
        reference = model.predict(ctx, 4)
        assert len(calls) == 9 + 4
        for t in range(10):
            assert torch.equal(calls[t][0], ctx[:, t] * 2 - 1)  # the observed frames, in order
        for k in range(10, 13):
            assert calls[k][0] is calls[k - 1][1]  # the input is the previous prediction itself
        # altering the first prediction (and only it) changes the second one
        original = model.step
        count = []

        def corrupt_first_prediction(frame, enc, dec, cut):
            out = original(frame, enc, dec, cut)
            count.append(1)
            return -out if len(count) == 10 else out

        model.step = corrupt_first_prediction
        altered = model.predict(ctx, 4)
    assert torch.allclose(altered[:, 0], 1 - reference[:, 0], atol=1e-6)
    assert not torch.allclose(altered[:, 1], reference[:, 1], atol=1e-4)


def test_training_logs_the_l1_loss_its_signed_mse_and_the_learning_rate():
    losses = tiny((1, 64, 64)).training_step(context(length=20, seed=3))
    assert set(losses) == {"l1", "mse_signed", "lr"}


@pytest.mark.parametrize("frame_shape", SHAPES)
def test_paper_preset_output_shapes(frame_shape):
    with torch.device("meta"):
        model = bench.get_method("rladder", frame_shape, preset="paper")
        assert model.predict(torch.empty(1, 2, *frame_shape), 3).shape == (1, 3, *frame_shape)


def test_presets_keep_the_papers_batch_ratio_and_frnns_topology():
    frnn, rladder = bench.registry.methods.get("frnn").presets, bench.registry.methods.get("rladder").presets
    assert rladder["paper"]["batch_size"] == 6 and frnn["paper"]["batch_size"] == 12
    assert rladder["small"]["batch_size"] * 2 == frnn["small"]["batch_size"]
    assert all(rladder[p]["topology"] == frnn[p]["topology"] for p in ("paper", "small", "tiny"))


def test_depth_removal_and_bad_input():
    model = tiny()
    with torch.no_grad():
        assert model.predict(context(), 3, depth=2).shape == (2, 3, 1, 64, 64)
    with pytest.raises(BenchError, match="depth must be between 0 and 4"):
        model.predict(context(), 3, depth=5)
    with pytest.raises(BenchError, match=r"rladder: the context must be"):
        model.predict(torch.rand(2, 10, 3, 64, 64), 3)


def test_kth_weights_initialise_a_moving_mnist_model(tmp_path):
    """The pre-training route of the docstring: KTH (64x80) weights fit the 64x64 model unchanged."""
    kth = tiny((1, 64, 80), seed=3)
    path = tmp_path / "kth" / "rladder-tiny.pt"
    ckpt.save(path, ckpt.pack(kth, preset="tiny", dataset="kth", step=1))
    mmnist = tiny((1, 64, 64), seed=4)
    ckpt.load_weights(mmnist, path)
    assert all(torch.equal(p, q) for p, q in zip(kth.parameters(), mmnist.parameters()))
