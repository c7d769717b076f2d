"""fRNN: parameter counts, one dGRU step by hand, the encode/predict schedule, layer removal, the
shared building blocks (bench.layers) and TF1 RMSProp (bench.optim)."""
from __future__ import annotations

import math

import pytest
import torch

import bench
from method_helpers import SHAPES, frames, seeded
from bench.errors import BenchError
from bench.layers import PAPER_TOPOLOGY, GateSet, Pool2x, TiedConv, depth_cut, parse_topology, scaled_orthogonal_
from bench.methods.frnn import DGRU
from bench.optim import TFRMSprop

# Table 1's dGRUs as (a, b, k).
PAPER_DGRUS = [(64, 128, 5), (128, 128, 5), (128, 256, 5), (256, 256, 5),
               (256, 512, 3), (512, 512, 3), (512, 256, 3), (256, 256, 3)]


def tiny(frame_shape=(1, 64, 64), seed=0):
    return seeded("frnn", frame_shape, seed=seed).eval()


def context(batch=2, frame_shape=(1, 64, 64), length=10, seed=1):
    return frames(batch, length, frame_shape, seed)


# --- parameter counts -------------------------------------------------------------------------

def test_paper_preset_has_105_707_617_parameters_decomposed_as_the_spec_says():
    with torch.device("meta"):  # shapes only: no init work
        model = bench.get_method("frnn", (1, 64, 64), preset="paper")
    count = lambda modules: sum(p.numel() for m in modules for p in m.parameters())  # noqa: E731
    convs = [m for m in model.layers if isinstance(m, TiedConv)]
    dgrus = [m for m in model.layers if isinstance(m, DGRU)]
    # conv0: 1*32*25 + 32 + 1 (decoder bias); conv1: 32*64*25 + 64 + 32
    assert count(convs) == 833 + 51_296 == 52_129
    assert [(m.bwd.weight_c.shape[0], m.fwd.weight_c.shape[0], m.fwd.weight_c.shape[-1]) for m in dgrus] == PAPER_DGRUS
    for module, (a, b, k) in zip(dgrus, PAPER_DGRUS):
        weights = 3 * k * k * (a * a + b * b + 2 * a * b)
        assert count([module]) == weights + 3 * a + 3 * b + b
    assert count(dgrus) == 105_655_488
    assert count(model.layers) == sum(p.numel() for p in model.parameters()) == 105_707_617


def test_small_preset_parameters_by_hand():
    model = bench.get_method("frnn", (1, 64, 64), preset="small")
    conv = 1 * 8 * 25 + 8 + 1  # encoder kernel and bias, decoder bias
    dgrus = [27 * (a + b) ** 2 + 3 * a + 3 * b + b for a, b in [(8, 16), (16, 32), (32, 32), (32, 32)]]
    assert sum(p.numel() for p in model.parameters()) == conv + sum(dgrus) == 299_865


@pytest.mark.parametrize("frame_shape", SHAPES)
def test_paper_preset_output_shapes_on_every_dataset(frame_shape):
    with torch.device("meta"):
        model = bench.get_method("frnn", frame_shape, preset="paper")
        out = model.predict(torch.empty(2, 3, *frame_shape), 4)
    assert out.shape == (2, 4, *frame_shape)


# --- one dGRU step by hand --------------------------------------------------------------------

def _one_by_one_dgru(kernel=1):
    """a = b = 1: every gate is two weights (first, second concatenated tensor) and a bias."""
    torch.manual_seed(0)
    layer = DGRU(1, 1, kernel)
    centre = kernel // 2
    with torch.no_grad():
        for gates, (wr, wz, wc, br, bz, bc) in (
            (layer.fwd, ([1.0, 2.0], [-1.0, 0.5], [2.0, -1.0], 0.1, 0.0, 0.0)),
            (layer.bwd, ([0.5, -1.5], [1.0, 1.0], [-2.0, 0.7], 0.0, -0.2, 0.05)),
        ):
            gates.weight_rz.zero_()
            gates.weight_c.zero_()
            gates.weight_rz[0, :, centre, centre] = torch.tensor(wr)
            gates.weight_rz[1, :, centre, centre] = torch.tensor(wz)
            gates.weight_c[0, :, centre, centre] = torch.tensor(wc)
            gates.bias_rz.copy_(torch.tensor([br, bz]))
            gates.bias_c.fill_(bc)
    return layer


@pytest.mark.parametrize("kernel", [1, 3])  # k = 3 on a 1x1 image: only the centre tap sees data ("same", zeros)
def test_one_dgru_step_matches_hand_computed_values(kernel):
    layer = _one_by_one_dgru(kernel)
    x, h = torch.full((1, 1, 1, 1), 0.5), torch.full((1, 1, 1, 1), -0.2)
    # forward, over [x ; h]: r = s(1*.5 + 2*-.2 + .1) = s(.2) = .549834; z = s(-.5 + .5*-.2) = s(-.6) = .354344
    # c = tanh(2*.5 - 1*(r*h)) = tanh(1.109967) = .804051; h' = z*c + (1-z)*h = .155779
    assert layer.encode_step(x, h).item() == pytest.approx(0.1557790179, abs=1e-6)
    u, v = torch.full((1, 1, 1, 1), 0.3), torch.full((1, 1, 1, 1), -0.6)
    # backward, over [u ; v]: r = s(.5*.3 - 1.5*-.6) = s(1.05) = .740775; z = s(.3 - .6 - .2) = s(-.5) = .377541
    # c = tanh(-2*(r*u) + .7*v + .05) = tanh(-.814465) = -.672046; u' = z*c + (1-z)*u = -.066987
    assert layer.decode_step(u, v).item() == pytest.approx(-0.0669868895, abs=1e-6)


def test_dgru_starts_from_its_learnable_initial_state():
    layer = _one_by_one_dgru()
    with torch.no_grad():
        layer.state_init.fill_(-0.2)
    x = torch.full((3, 1, 2, 2), 0.5)
    assert torch.allclose(layer.encode_step(x, None), torch.full((3, 1, 2, 2), 0.1557790179))


# --- the schedule -----------------------------------------------------------------------------

def _log_calls(model):
    """Record ("enc"|"dec"|"fwd"|"bwd", layer index) for every call, in order."""
    log = []
    for i, layer in enumerate(model.layers):
        if isinstance(layer, DGRU):
            layer.fwd.register_forward_hook(lambda *_, i=i: log.append(("fwd", i)))
            layer.bwd.register_forward_hook(lambda *_, i=i: log.append(("bwd", i)))
        else:
            for kind in ("encode", "decode"):
                original = getattr(layer, kind)
                setattr(layer, kind, lambda x, f=original, e=(kind[:3], i): (log.append(e), f(x))[1])
    return log


def test_gate_calls_follow_the_schedule_exactly():
    model = tiny()  # c4k3 c4k3 p g4k3 g4k3 p g6k3 g6k3: layers 0..7, dGRUs at 3, 4, 6, 7
    log = _log_calls(model)
    with torch.no_grad():
        model.predict(context(), 10)
    encode_frame = [("enc", 0), ("enc", 1), ("enc", 2), ("fwd", 3), ("fwd", 4), ("enc", 5), ("fwd", 6), ("fwd", 7)]
    decode_frame = [("bwd", 7), ("bwd", 6), ("dec", 5), ("bwd", 4), ("bwd", 3), ("dec", 2), ("dec", 1), ("dec", 0)]
    # encode: forward gates only; predict: decode first, then advance the top state (not after the last frame)
    expected = encode_frame * 10 + decode_frame + ([("fwd", 7)] + decode_frame) * 9
    assert log == expected
    phase = {"encoding": log[:80], "prediction": log[80:]}
    assert sum(e == ("fwd", i) for e in phase["prediction"] for i in (3, 4, 6)) == 0
    assert sum(e[0] == "bwd" for e in phase["encoding"]) == 0


def _after_encoding(model, action):
    """Run ``action(context)`` right after ``model.encode`` returns (the start of the prediction phase)."""
    original = model.encode

    def encode(ctx, cut):
        result = original(ctx, cut)
        action(ctx)
        return result

    model.encode = encode


def test_first_prediction_is_decoded_from_the_state_after_the_last_context_frame():
    model = tiny()
    ctx = context()
    with torch.no_grad():
        reference = model.predict(ctx, 10)
        # the first frame is a top-down decode of the state right after frame 10 ...
        inputs, states = model.encode(ctx * 2 - 1, len(model.layers))
        assert torch.allclose(reference[:, 0], (model.decode(inputs, states[7], len(model.layers)) + 1) / 2)
        # ... so corrupting the top layer's forward gates from the prediction phase on spares it alone
        predicting = []
        _after_encoding(model, lambda _: predicting.append(True))
        model.layers[7].fwd.register_forward_hook(lambda _m, _a, out: -out if predicting else None)
        perturbed = model.predict(ctx, 10)
    assert torch.equal(perturbed[:, 0], reference[:, 0])
    assert not torch.allclose(perturbed[:, 1], reference[:, 1], atol=1e-4)


def test_predictions_ignore_the_context_once_it_is_encoded():
    model = tiny()
    ctx = context()
    with torch.no_grad():
        reference = model.predict(ctx, 10)
        _after_encoding(model, lambda signed: signed.uniform_(-1, 1))  # alter every context frame in place
        assert torch.equal(model.predict(ctx, 10), reference)
        # while before encoding, the same alteration does change the predictions (the test can fail)
        assert not torch.allclose(model.predict(context(seed=7), 10), reference, atol=1e-4)


def test_first_context_frames_reach_the_prediction_through_the_state():
    model = tiny()
    ctx = context()
    altered = ctx.clone()
    altered[:, 0] = 1 - altered[:, 0]
    with torch.no_grad():
        assert not torch.allclose(model.predict(ctx, 3), model.predict(altered, 3), atol=1e-6)


# --- layer removal ----------------------------------------------------------------------------

def test_depth_cut_reproduces_the_papers_truncations():
    entries = parse_topology(PAPER_TOPOLOGY, (1, 64, 64))
    assert [depth_cut(entries, d) for d in range(8, 0, -1)] == [14, 13, 11, 10, 8, 7, 5, 4]
    assert depth_cut(entries, 0) == 2  # the two convs: Fig. 7's last row
    with pytest.raises(BenchError, match="depth must be between 0 and 8"):
        depth_cut(entries, 9)


def test_removed_layers_never_run_and_the_new_top_takes_the_top_role():
    model = tiny()
    assert model.depths == [4, 3, 2, 1, 0]
    ctx = context()
    with torch.no_grad():
        full = model.predict(ctx, 4)
        assert torch.equal(model.predict(ctx, 4, depth=4), full)
        log = _log_calls(model)
        cut = model.predict(ctx, 4, depth=2)  # keeps conv, conv, pool, g, g
    assert {i for _, i in log} == {0, 1, 2, 3, 4}
    assert log.count(("fwd", 4)) == 10 + 3  # encoding + the top advances between the 4 predictions
    assert log.count(("bwd", 4)) == 4
    assert cut.shape == full.shape and not torch.allclose(cut, full, atol=1e-4)


def test_depth_zero_repeats_the_conv_autoencoding_of_the_last_frame():
    model = tiny()
    ctx = context()
    with torch.no_grad():
        out = model.predict(ctx, 5, depth=0)
        last = ctx[:, -1] * 2 - 1
        expected = model.layers[0].decode(model.layers[1].decode(model.layers[1].encode(model.layers[0].encode(last))))
    assert out.shape == (2, 5, 1, 64, 64)
    for k in range(5):
        assert torch.allclose(out[:, k], (expected + 1) / 2)


# --- training ----------------------------------------------------------------------------------

def test_the_loss_is_the_l1_of_the_ten_predictions_in_signed_range_and_every_parameter_learns():
    model = tiny((1, 64, 64))
    clip = context(length=20, seed=3)
    before = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        pred = model.rollout(clip[:, :10] * 2 - 1, 10, len(model.layers))
        l1 = (pred - (clip[:, 10:] * 2 - 1)).abs().mean().item()
    losses = model.training_step(clip)
    assert losses["l1"] == pytest.approx(l1, rel=1e-5)  # L1 in [-1, 1] on the 10 predicted frames only
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()))  # every parameter learns
    assert isinstance(model.optimizers["model"], TFRMSprop)


def test_learning_rate_steps_down_at_lr_late_from_and_survives_a_checkpoint():
    model = bench.get_method("frnn", (1, 16, 16), preset="tiny", lr=1e-3, lr_late=1e-4, lr_late_from=2)
    clip = context(frame_shape=(1, 16, 16), length=20, seed=3)
    assert [model.training_step(clip)["lr"] for _ in range(2)] == [1e-3, 1e-3]
    resumed = bench.get_method("frnn", (1, 16, 16), preset="tiny", lr=1e-3, lr_late=1e-4, lr_late_from=2)
    resumed.load_state_dict(model.state_dict())
    assert resumed.training_step(clip)["lr"] == 1e-4
    assert resumed.optimizers["model"].param_groups[0]["lr"] == 1e-4
    constant = tiny((1, 16, 16))
    assert [constant.training_step(clip)["lr"] for _ in range(3)] == [1e-4] * 3  # the paper: no schedule


def test_same_seed_gives_the_same_initial_model():
    a, b = tiny(seed=5), tiny(seed=5)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not all(torch.equal(p, q) for p, q in zip(a.parameters(), tiny(seed=6).parameters()))


def test_bad_input_gives_clear_errors():
    model = tiny()
    with pytest.raises(BenchError, match=r"frnn: the context must be \(B, T>=1, 1, 64, 64\), got \(2, 10, 1, 64, 80\)"):
        model.predict(torch.rand(2, 10, 1, 64, 80), 10)
    with pytest.raises(BenchError, match="horizon must be at least 1"):
        model.predict(context(), 0)
    with pytest.raises(BenchError, match="a training clip must be"):
        model.training_step(context(length=10))
    with pytest.raises(BenchError, match="token 'g4k4'"):
        bench.get_method("frnn", (1, 64, 64), "tiny", topology="c4k3 g4k4")
    with pytest.raises(BenchError, match="must end with a recurrent layer"):
        bench.get_method("frnn", (1, 64, 64), "tiny", topology="c4k3 g4k3 p")


# --- building blocks ---------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(512, 1024, 3, 3), (32, 1, 5, 5), (8, 8, 1, 1)])
def test_scaled_orthogonal_init(shape):
    torch.manual_seed(0)
    weight = scaled_orthogonal_(torch.empty(shape))
    matrix = weight.reshape(shape[0], -1).T.double()  # R x C
    rows, cols = matrix.shape
    assert torch.allclose(matrix.std(0, correction=0), torch.full((cols,), 2 / math.sqrt(rows + cols), dtype=torch.float64))
    if rows > cols:  # U's columns stay orthogonal under the column scaling
        unit = matrix / matrix.norm(dim=0)
        assert torch.allclose(unit.T @ unit, torch.eye(cols, dtype=torch.float64), atol=1e-5)


def test_gate_set_concatenates_in_order_and_resets_the_updated_tensor():
    torch.manual_seed(0)
    gates = GateSet(3, 1, 1)
    with torch.no_grad():
        gates.weight_rz.zero_()
        gates.bias_rz.copy_(torch.tensor([-50.0, 50.0]))  # r = 0, z = 1: new state = candidate
        gates.weight_c.copy_(torch.tensor([1.0, 10.0, 100.0]).view(1, 3, 1, 1))
        gates.bias_c.zero_()
    parts = [torch.full((1, 1, 1, 1), v) for v in (0.001, 0.002, 0.003)]
    # the reset gate zeroes parts[index]; the others enter with weights 1, 10, 100 in list order
    assert gates(parts, 2).item() == pytest.approx(math.tanh(0.001 + 0.02), abs=1e-6)
    assert gates(parts, 0).item() == pytest.approx(math.tanh(0.02 + 0.3), abs=1e-6)


def test_pooling_rounds_up_and_unpooling_copies_each_value_into_a_block():
    pool = Pool2x((5, 5))
    x = torch.arange(25.0).view(1, 1, 5, 5)
    pooled = pool.encode(x)
    assert pooled.squeeze().tolist() == [[6, 8, 9], [16, 18, 19], [21, 23, 24]]
    up = pool.decode(pooled)
    assert up.shape == (1, 1, 5, 5) and up[0, 0, 1, 1] == 6 and up[0, 0, 4, 4] == 24 and up[0, 0, 2, 3] == 18


def test_topology_sizes_on_kth_frames():
    entries = parse_topology(PAPER_TOPOLOGY, (1, 64, 80))
    assert [e.size for e in entries if e.kind == "rnn"] == [(32, 40)] * 2 + [(16, 20)] * 2 + [(8, 10)] * 2 + [(4, 5)] * 2
    assert [(e.in_channels, e.out_channels) for e in entries[:2]] == [(1, 32), (32, 64)]


def test_tf_rmsprop_matches_hand_computed_steps_and_starts_the_accumulator_at_one():
    param = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    opt = TFRMSprop([param], lr=1e-4)
    param.grad = torch.tensor([2.0], dtype=torch.float64)
    opt.step()  # ms = .9*1 + .1*4 = 1.3; p = 1 - 1e-4*2/sqrt(1.3 + 1e-10)
    assert param.item() == pytest.approx(0.9998245884, abs=1e-9)
    param.grad = torch.tensor([-1.0], dtype=torch.float64)
    opt.step()  # ms = .9*1.3 + .1*1 = 1.27; p += 1e-4/sqrt(1.27)
    assert param.item() == pytest.approx(0.9998245884 + 1e-4 / math.sqrt(1.27), abs=1e-9)
    assert opt.state[param]["ms"].item() == pytest.approx(1.27)
    # equals torch's RMSprop only once its zero-initialised square average is set to ones
    ref = torch.nn.Parameter(torch.tensor([1.0], dtype=torch.float64))
    torch_opt = torch.optim.RMSprop([ref], lr=1e-4, alpha=0.9, eps=0)
    ref.grad = torch.tensor([2.0], dtype=torch.float64)
    torch_opt.step()
    assert ref.item() != pytest.approx(0.9998245884, abs=1e-7)
