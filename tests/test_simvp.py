"""SimVP (Gao et al., CVPR 2022): parameter counts by hand, the one-cycle schedule against PyTorch's,
shapes through encoder, translator and decoder, ten frames per pass, the loss and bad input."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import bench
from method_helpers import count, frames, seeded
from bench.errors import BenchError
from bench.methods.simvp import KERNELS, one_cycle

SMALL = (1, 32, 32)  # where the frame size does not matter: faster


def block(c_in, c_out):
    """3x3 conv (or transposed conv) with bias + GroupNorm's scale and shift."""
    return 9 * c_in * c_out + c_out + 2 * c_out


def inception(c_in, c_hid, c_out, groups):
    reduce = c_in * c_hid + c_hid
    return reduce + sum(k * k * (c_hid // groups) * c_out + c_out + 2 * c_out for k in KERNELS)


def simvp_params(channels, hid_s, hid_t, n_s, n_t, groups, frames=10):
    encoder = block(channels, hid_s) + (n_s - 1) * block(hid_s, hid_s)
    decoder = (n_s - 1) * block(hid_s, hid_s) + block(2 * hid_s, hid_s) + hid_s * channels + channels
    half, stacked = hid_t // 2, frames * hid_s
    down = inception(stacked, half, hid_t, groups) + (n_t - 1) * inception(hid_t, half, hid_t, groups)
    up = (inception(hid_t, half, hid_t, groups) + (n_t - 2) * inception(2 * hid_t, half, hid_t, groups)
          + inception(2 * hid_t, half, stacked, groups))
    return encoder + down + up + decoder


def test_parameter_counts_by_hand():
    with torch.device("meta"):
        paper = bench.get_method("simvp", (1, 64, 64), preset="paper")
        wide = bench.get_method("simvp", (1, 64, 64), preset="paper", hid_t=512)
    assert count(paper) == simvp_params(1, 64, 256, 4, 8, 8) == 15_778_433
    # OpenSTL's configuration (hid_t 512); its 58.0M has pixel-shuffle upsamplers (+221,568) instead
    assert count(wide) == simvp_params(1, 64, 512, 4, 8, 8) == 57_761_409
    assert count(bench.get_method("simvp", (1, 64, 64), preset="small")) == simvp_params(1, 16, 64, 4, 4, 8)
    assert count(bench.get_method("simvp", (3, 64, 80), preset="tiny")) == simvp_params(3, 8, 32, 2, 2, 4)


def test_one_cycle_matches_pytorchs_one_cycle_lr():
    total, peak = 40, 0.01
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peak, total_steps=total)
    for step in range(total):
        group = optimizer.param_groups[0]
        assert one_cycle(step, total, peak) == pytest.approx((group["lr"], group["betas"][0]), rel=1e-9)
        optimizer.step()
        scheduler.step()
    assert one_cycle(total + 5, total, peak) == pytest.approx((peak / 25e4, 0.95))  # after the cycle: its end


def test_shapes_through_encoder_translator_and_decoder():
    model = seeded("simvp", (1, 64, 64), preset="small").eval()
    seen = {}
    model.translator.register_forward_hook(lambda module, args, output: seen.update(into=args[0], out=output))
    with torch.no_grad():
        out = model(frames(batch=2, length=10))
    assert seen["into"].shape == seen["out"].shape == (2, 10 * 16, 16, 16)  # 10 frames' codes stacked, 64/4
    assert out.shape == (2, 10, 1, 64, 64)


def test_one_pass_predicts_all_ten_frames_from_all_ten_context_frames():
    model = seeded("simvp", SMALL).eval()
    context = frames(batch=1, length=12, shape=SMALL)
    passes = []
    model.translator.register_forward_hook(lambda *_: passes.append(1))
    with torch.no_grad():
        predicted = model.predict(context, 10)
        assert len(passes) == 1
        assert torch.equal(predicted, model(context[:, 2:]).clamp(0, 1))  # the last 10 frames are read
        for t in (0, 9):
            changed = context.clone()
            changed[:, 2 + t] = 1 - changed[:, 2 + t]
            assert (model.predict(changed, 10) - predicted).abs().amax(dim=(2, 3, 4)).min() > 0  # every output moves
        changed = context.clone()
        changed[:, :2] = 1 - changed[:, :2]
        assert torch.equal(model.predict(changed, 10), predicted)  # frames before the last 10 are ignored


def test_a_longer_horizon_feeds_the_newest_ten_frames_back():
    model = seeded("simvp", SMALL).eval()
    context = frames(batch=2, length=10, shape=SMALL)
    with torch.no_grad():
        first = model(context)
        long = model.predict(context, 15)
        short = model.predict(context, 3)
        assert torch.equal(long[:, 10:], model(first)[:, :5].clamp(0, 1))
    assert torch.equal(short, long[:, :3])


def test_the_loss_is_the_mse_of_the_ten_future_frames_at_the_one_cycle_lr():
    model = seeded("simvp", SMALL, steps=10)
    clip = frames(length=20, shape=SMALL)
    with torch.no_grad():
        want = F.mse_loss(model(clip[:, :10]), clip[:, 10:]).item()
    logs = [model.training_step(clip) for _ in range(3)]
    assert logs[0]["mse"] == pytest.approx(want, rel=1e-5)
    assert [log["lr"] for log in logs] == pytest.approx([one_cycle(s, 10, 0.01)[0] for s in range(3)])
    assert model.optimizers["adam"].param_groups[0]["betas"][0] == pytest.approx(one_cycle(2, 10, 0.01)[1])
    resumed = seeded("simvp", SMALL, steps=10)
    resumed.load_state_dict(model.state_dict())
    assert int(resumed.step_count) == 3
    assert resumed.training_step(clip)["lr"] == pytest.approx(one_cycle(3, 10, 0.01)[0])


def test_bad_settings_raise_clear_errors():
    with pytest.raises(BenchError, match="n_s = 4 needs frame height and width divisible by 4, got 64x66"):
        seeded("simvp", (1, 64, 66), preset="small")
    with pytest.raises(BenchError, match="even hid_s"):
        seeded("simvp", hid_s=7)
