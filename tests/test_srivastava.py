"""Srivastava's composite LSTM autoencoder (methods/srivastava.py): cell, targets, feedback, losses, optimiser."""
from __future__ import annotations

import json
import math

import pytest
import torch
from click.testing import CliRunner

from method_helpers import SHAPES, count, frames, seeded
from bench.cli import main
from bench.errors import BenchError
from bench.methods.srivastava import CONTEXT, PeepholeLSTMCell
from bench.optim import ClippedMomentumSGD

def make(shape=(1, 64, 64), preset="tiny", seed=0, **overrides):
    return seeded("srivastava", shape, preset, seed, **overrides)


def clips(shape=(1, 64, 64), batch=2, length=2 * CONTEXT, seed=1):
    return frames(batch, length, shape, seed)


def record_inputs(cell, store):
    """Keep the projected input term of every step of ``cell``."""
    return cell.register_forward_hook(lambda mod, args, out: store.append(args[0]))


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def test_peephole_cell_against_hand_computed_values():
    cell = PeepholeLSTMCell(1, 1)
    with torch.no_grad():
        cell.weight_x.copy_(torch.tensor([[0.5], [-0.5], [1.0], [0.25]]))  # rows i, f, g, o
        cell.weight_h.copy_(torch.tensor([[0.1], [0.2], [-0.3], [0.4]]))
        cell.bias.copy_(torch.tensor([0.0, 1.0, 0.0, -0.5]))
        cell.peephole.copy_(torch.tensor([[0.3], [-0.2], [0.6]]))  # p_i, p_f, p_o
        h, c = cell(cell.project(torch.tensor([[2.0]])), (torch.tensor([[0.5]]), torch.tensor([[-1.0]])))
    # i = s(0.5*2 + 0.1*0.5 + 0.3*(-1)) = s(0.75); f = s(-0.5*2 + 0.2*0.5 + 1 - 0.2*(-1)) = s(0.3)
    # g = tanh(2 - 0.15) = tanh(1.85); c' = -f + i*g; o = s(0.25*2 + 0.4*0.5 - 0.5 + 0.6*c') (peephole on c')
    c_new = -sigmoid(0.3) + sigmoid(0.75) * math.tanh(1.85)
    h_new = sigmoid(0.2 + 0.6 * c_new) * math.tanh(c_new)
    assert c_new == pytest.approx(0.071963, abs=1e-6) and h_new == pytest.approx(0.040266, abs=1e-6)
    assert c.item() == pytest.approx(c_new, abs=1e-6)
    assert h.item() == pytest.approx(h_new, abs=1e-6)


def test_peepholes_are_diagonal_and_inputless_layers_have_no_input_weights():
    cell = PeepholeLSTMCell(0, 2)
    assert cell.weight_x is None and count(cell) == 4 * 2 * 2 + 4 * 2 + 3 * 2
    with torch.no_grad():
        cell.weight_h.zero_()
        cell.peephole.copy_(torch.tensor([[1.0, 2.0], [0.5, -1.0], [-1.0, 3.0]]))
        h, c = cell(None, (torch.zeros(1, 2), torch.tensor([[1.0, -2.0]])))
    # All pre-activations 0, g = tanh(0) = 0: each unit's c' = s(p_f c) c uses its own peephole only.
    expected_c = [sigmoid(0.5) * 1.0, sigmoid(-1.0 * -2.0) * -2.0]
    expected_h = [sigmoid(-1.0 * expected_c[0]) * math.tanh(expected_c[0]),
                  sigmoid(3.0 * expected_c[1]) * math.tanh(expected_c[1])]
    assert c[0].tolist() == pytest.approx(expected_c, abs=1e-6)
    assert h[0].tolist() == pytest.approx(expected_h, abs=1e-6)


@pytest.mark.parametrize("shape, params", [
    # 3 LSTMs x (4H*D + 4H*H + 4H biases + 3H peepholes) + 2 read-outs x (H*D + D), H = 2048
    ((1, 64, 64), 3 * (4 * 2048 * 4096 + 4 * 2048**2 + 7 * 2048) + 2 * (2048 * 4096 + 4096)),
    ((1, 64, 80), 3 * (4 * 2048 * 5120 + 4 * 2048**2 + 7 * 2048) + 2 * (2048 * 5120 + 5120)),
    ((3, 64, 80), 3 * (4 * 2048 * 15360 + 4 * 2048**2 + 7 * 2048) + 2 * (2048 * 15360 + 15360)),
])
def test_paper_parameter_counts(shape, params):
    with torch.device("meta"):  # counts only: no 0.7-2 GB of weights
        method = make(shape, preset="paper")
    assert count(method) == params


def test_small_preset_parameter_count():
    # three LSTMs of 128 units on 4,096 inputs (4 gates: input and recurrent weights, biases, 3 peepholes)
    # and two read-outs back to 4,096 pixels
    assert count(make(preset="small")) == 3 * (4 * 128 * 4096 + 4 * 128**2 + 7 * 128) + 2 * (128 * 4096 + 4096)
    assert count(make(preset="small")) == 7_547_520


def test_paper_preset_is_the_original_optimiser():
    with torch.device("meta"):
        method = make(preset="paper")
    assert method.config["units"] == 2048 and method.config["batch_size"] == 80
    assert method.config["reduction"] == "sum"
    (group,) = method.optimizers["model"].param_groups
    assert isinstance(method.optimizers["model"], ClippedMomentumSGD)
    assert (group["lr"], group["momentum"], group["weight_decay"], group["clip"]) == (1e-4, 0.9, 1e-4, 1e-4)


def test_initialisation_ranges():
    method = make(preset="small")
    cell = method.encoder.cells[0]
    for weight in (cell.weight_x, cell.weight_h, method.predictor.readout.weight):
        assert weight.abs().max() <= 0.01 and weight.abs().max() > 0.0099
    assert cell.peephole.abs().max() <= 0.1 and cell.peephole.abs().max() > 0.099
    assert not cell.bias.any() and not method.predictor.readout.bias.any()


@pytest.mark.parametrize("shape, binary", [((1, 64, 64), True), ((1, 64, 80), False), ((3, 64, 80), False)])
def test_binary_output_is_chosen_by_frame_shape(shape, binary):
    assert make(shape).binary is binary and make(shape, binary="auto").binary is binary
    assert make(shape, binary=not binary).binary is not binary


def test_reconstruction_target_is_the_context_reversed(monkeypatch):
    method = make((1, 64, 80))  # linear output, 0.5 * squared error: a perfect read-out costs exactly 0
    clip = clips((1, 64, 80))
    frames = clip.flatten(2)
    context, future = frames[:, :CONTEXT], frames[:, CONTEXT:]
    monkeypatch.setattr(method, "forward", lambda _: (context.flip(1), future))
    terms = method.objective(clip)
    assert terms["reconstruction"].item() == 0 and terms["future"].item() == 0
    monkeypatch.setattr(method, "forward", lambda _: (context, future))  # in order: wrong
    assert method.objective(clip)["reconstruction"].item() > 0.01


def test_decoders_are_teacher_forced_in_training():
    method = make()
    clip = clips()
    frames = clip.flatten(2)
    seen = {"reconstructor": [], "predictor": []}
    for name, store in seen.items():
        record_inputs(getattr(method, name).stack.cells[0], store)
    method(clip)  # the teacher-forced pass of training_step
    # step k >= 1 reads x_{10-k} (reconstruction) or x_{9+k} (future); step 0 reads nothing
    for name, source in (("reconstructor", lambda k: CONTEXT - k), ("predictor", lambda k: CONTEXT - 1 + k)):
        inputs = seen[name]
        assert len(inputs) == CONTEXT and inputs[0] is None
        project = getattr(method, name).stack.cells[0].project
        for k in range(1, CONTEXT):
            assert torch.allclose(inputs[k], project(frames[:, source(k)]), atol=1e-6), (name, k)


def test_prediction_feeds_back_its_own_outputs_and_never_the_future():
    method = make().eval()
    clip = clips()
    inputs = []
    record_inputs(method.predictor.stack.cells[0], inputs)
    prediction = method.predict(clip[:, :CONTEXT], 4)  # with grad: the runner adds no_grad itself
    project = method.predictor.stack.cells[0].project
    assert len(inputs) == 4 and inputs[0] is None
    for k in range(1, 4):
        fed = project(prediction[:, k - 1].flatten(1))  # sigmoid outputs lie in (0, 1): clamping is a no-op
        assert torch.allclose(inputs[k], fed, atol=1e-6)
        assert not torch.allclose(inputs[k], project(clip[:, CONTEXT + k - 1].flatten(1)), atol=1e-3)
    (grad,) = torch.autograd.grad(prediction[:, 1].sum(), inputs[1])
    assert grad.abs().sum() > 0  # the second prediction depends on the first
    with torch.no_grad():
        other_future = torch.cat([clip[:, :CONTEXT], clips(seed=9)[:, CONTEXT:]], dim=1)
        assert torch.equal(method.predict(other_future[:, :CONTEXT], 4), prediction.detach())


def test_unconditioned_decoders_take_no_inputs():
    method = make(conditional=False)
    assert method.predictor.stack.cells[0].weight_x is None
    assert method.reconstructor.stack.cells[0].weight_x is None
    assert count(method) == count(make()) - 2 * 4 * 16 * 64 * 64
    inputs = []
    record_inputs(method.predictor.stack.cells[0], inputs)
    with torch.no_grad():
        method.predict(clips()[:, :CONTEXT], 3)
    assert inputs == [None, None, None]


@pytest.mark.parametrize("shape", SHAPES)
def test_predictions_are_clamped_and_take_any_horizon(shape):
    method = make(shape).eval()
    context = clips(shape)[:, :CONTEXT]
    with torch.no_grad():
        first = method.predict(context, 10)
        assert method.predict(context, 13).shape == (2, 13, *shape)
    if shape != (1, 64, 64):  # linear output around 0 at initialisation: clamped, not squashed
        assert first.min() == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_training_step_logs_and_learns(shape):
    method = make(shape)
    clip = clips(shape, batch=2)
    losses = [method.training_step(clip) for _ in range(3)]
    assert set(losses[0]) == {"loss", "reconstruction", "future", "pred_mean", "target_mean"}
    assert losses[0]["loss"] == pytest.approx(losses[0]["reconstruction"] + losses[0]["future"], rel=1e-6)
    assert losses[-1]["loss"] < losses[0]["loss"]


def test_training_is_repeatable():
    assert make().training_step(clips()) == make().training_step(clips())


def test_losses_by_hand():
    binary, linear = make(), make((1, 64, 80))
    raw, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    assert binary.frame_loss(raw, target).item() == pytest.approx(math.log(2), rel=1e-6)  # mean: -log s(0)
    assert linear.frame_loss(raw, target / 2).item() == pytest.approx(0.125, rel=1e-6)  # 0.5 * 0.5^2
    summed = make(reduction="sum")
    # summed over the 3 steps x 4 pixels of each sequence, averaged over the batch of 2
    assert summed.frame_loss(raw, target).item() == pytest.approx(12 * math.log(2), rel=1e-6)
    target[1] = 0  # the second sequence costs log 2 per element too: a batch mean, not a batch sum
    assert summed.frame_loss(raw, target).item() == pytest.approx(12 * math.log(2), rel=1e-6)


def test_clipped_momentum_sgd_by_hand():
    weight = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = ClippedMomentumSGD([weight], lr=1e-4, momentum=0.9, weight_decay=1e-4, clip=1e-4)
    weight.grad = torch.tensor([100.0, 0.5], dtype=torch.float64)
    optimizer.step()
    # v = -1e-4 * (g + 1e-4 * w): [-0.0100001 -> clipped to -1e-4, -4.998e-5]
    assert weight.tolist() == pytest.approx([1.0 - 1e-4, -2.0 - 4.998e-5], abs=1e-9)
    weight.grad = torch.zeros(2, dtype=torch.float64)
    optimizer.step()
    # v = 0.9 * v - 1e-8 * w: [-9.0e-5 - 0.9999e-8, -4.4982e-5 + 2.00005e-8]
    assert weight.tolist() == pytest.approx([1.0 - 1e-4 - 9.00099990e-5, -2.0 - 4.998e-5 - 4.49619995e-5], abs=1e-9)
    with pytest.raises(ValueError, match="clip > 0"):
        ClippedMomentumSGD([weight], lr=1e-4, momentum=0.9, weight_decay=0.0, clip=0.0)


def test_bad_input_and_settings_are_clear_errors():
    method = make()
    with pytest.raises(BenchError, match=r"srivastava: expected frames of shape \(B, T, 1, 64, 64\)"):
        method.predict(torch.rand(2, 10, 1, 64, 80), 3)
    with pytest.raises(BenchError, match="horizon must be at least 1 frame, got 0"):
        method.predict(clips()[:, :CONTEXT], 0)
    with pytest.raises(BenchError, match="more than 10 frames"):
        method.training_step(clips(length=CONTEXT))
    with pytest.raises(BenchError, match="'binary' must be true, false, null or 'auto'"):
        make(binary="yes")
    with pytest.raises(BenchError, match="'optimizer' must be 'sgd' or 'adam'"):
        make(optimizer="rmsprop")
    with pytest.raises(BenchError, match="srivastava: ClippedMomentumSGD: need .* clip > 0"):
        make(optimizer="sgd")  # the tiny preset has no update clip
    with pytest.raises(BenchError, match="'units' must be a positive integer"):
        make(units=0)


def test_two_layer_stacks_read_the_layer_below():
    method = make(layers=2)
    upper = method.encoder.cells[1]
    assert upper.weight_x.shape == (4 * 16, 16)
    assert count(method) == count(make()) + 3 * (4 * 16 * 16 + 4 * 16 * 16 + 7 * 16)
    with torch.no_grad():
        assert method.eval().predict(clips()[:, :CONTEXT], 2).shape == (2, 2, 1, 64, 64)


def test_bench_train_then_run_on_moving_mnist(mnist_dir, tmp_path):
    common = ["--dataset", "mmnist", "--preset", "tiny", "--data-dir", str(mnist_dir),
              "--checkpoint-dir", str(tmp_path / "ckpt")]
    runner = CliRunner()
    trained = runner.invoke(main, ["train", "--method", "srivastava", *common, "--quiet"])
    assert trained.exit_code == 0, trained.output
    assert (tmp_path / "ckpt" / "mmnist" / "srivastava-tiny.pt").is_file()
    ran = runner.invoke(main, ["run", "--methods", "srivastava", *common, "--no-train", "--limit", "4",
                               "--results-dir", str(tmp_path / "results"), "--quiet"])
    assert ran.exit_code == 0, ran.output
    meta = json.loads((tmp_path / "results" / "mmnist" / "srivastava" / "meta.json").read_text())
    assert meta["method"] == "srivastava" and meta["preset"] == "tiny"
    rows = (tmp_path / "results" / "mmnist" / "srivastava" / "steps.csv").read_text().splitlines()
    assert len(rows) == 1 + 10
