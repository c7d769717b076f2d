"""Checkpoints: contents, atomic saving, last-K rotation, weights-only loading, clear refusals."""
from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

import train_plugins  # noqa: F401  (registers train-test-net)
from bench import checkpoint as ckpt
from bench import get_method
from bench.errors import BenchError

SHAPE = (1, 16, 16)


def trained_net(steps: int = 2, seed: int = 0, **settings):
    torch.manual_seed(seed)
    net = get_method("train-test-net", SHAPE, preset="tiny", **settings)
    clip = torch.rand(4, 20, *SHAPE, generator=torch.Generator().manual_seed(seed))
    for _ in range(steps):
        net.training_step(clip)
    return net, clip


def save_net(path, net, step=2, keep=5, preset="tiny"):
    ckpt.save(path, ckpt.pack(net, preset=preset, dataset="squares", step=step, seed=0), keep=keep)


def test_round_trip_restores_weights_optimizer_step_and_rng(tmp_path):
    net, clip = trained_net()
    path = ckpt.checkpoint_path("squares", "train-test-net", "tiny", tmp_path)
    assert path == tmp_path / "squares" / "train-test-net-tiny.pt"
    save_net(path, net, step=2)
    expected_draws = (torch.rand(3), np.random.rand(), random.random())
    expected_loss = net.training_step(clip)["l1"]

    torch.manual_seed(99), np.random.seed(99), random.seed(99)
    loaded = ckpt.load(path, method="train-test-net", preset="tiny", frame_shape=SHAPE)
    assert (loaded["step"], loaded["preset"], loaded["dataset"], loaded["frame_shape"]) == (2, "tiny", "squares", [1, 16, 16])
    assert loaded["config"] == net.config and set(loaded["optimizers"]) == {"adam"}
    fresh = get_method("train-test-net", SHAPE, preset="tiny")
    ckpt.restore(fresh, loaded, path)
    draws = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(draws[0], expected_draws[0]) and draws[1:] == expected_draws[1:]
    assert fresh.optimizers["adam"].state_dict()["state"][0]["step"] == 2  # Adam's own step counter came back
    assert fresh.training_step(clip)["l1"] == expected_loss  # same weights and optimizer moments


def test_load_uses_weights_only(tmp_path, monkeypatch):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net)
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    ckpt.load(path)
    assert calls and all(call.get("weights_only") is True for call in calls)


class Payload:
    """Any class: a weights-only load must refuse to unpickle it."""


def test_pickled_objects_are_refused(tmp_path):
    net, _ = trained_net(steps=1)
    payload = ckpt.pack(net, preset="tiny", dataset="squares", step=1)
    payload["extra"] = Payload()
    path = tmp_path / "evil.pt"
    torch.save(payload, path)
    with pytest.raises(BenchError, match=rf"checkpoint {path} is corrupt or not a vpbench checkpoint .*Unsupported global"):
        ckpt.load(path)
    with pytest.raises(Exception):  # and save() never commits a file that would not load so
        ckpt.save(tmp_path / "x.pt", payload)
    assert not any(tmp_path.glob("x*")) and not any(tmp_path.glob(".x*"))


@pytest.mark.parametrize(
    "expect, message",
    [
        ({"method": "frnn"}, "holds method 'train-test-net', not 'frnn'"),
        ({"preset": "paper"}, "holds preset 'tiny', not 'paper'"),
        ({"frame_shape": (1, 64, 80)}, r"holds frame shape \[1, 16, 16\], not \[1, 64, 80\]"),
    ],
)
def test_refuses_another_method_preset_or_frame_shape(tmp_path, expect, message):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net)
    with pytest.raises(BenchError, match=rf"checkpoint {path} {message}; pass another --checkpoint-dir"):
        ckpt.load(path, **expect)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_file_gives_a_clear_error_naming_it(tmp_path, damage):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net)
    data = path.read_bytes()
    path.unlink()  # the main name is a hard link to the snapshot; write a new file
    path.write_bytes({"truncated": data[: len(data) // 2], "garbage": os.urandom(3000), "empty": b""}[damage])
    with pytest.raises(BenchError, match=rf"^checkpoint {path} is corrupt or not a vpbench checkpoint \(.+\); delete it"):
        ckpt.load(path)


def test_other_files_and_missing_files_are_named(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.ones(2)}, path)
    with pytest.raises(BenchError, match=rf"checkpoint {path} is not a vpbench checkpoint"):
        ckpt.load(path)
    with pytest.raises(BenchError, match=rf"checkpoint {tmp_path / 'none.pt'} does not exist"):
        ckpt.load(tmp_path / "none.pt")


def test_keeps_the_last_k_snapshots_and_points_the_main_name_at_the_newest(tmp_path):
    net, _ = trained_net(steps=1)
    path = tmp_path / "d" / "train-test-net-tiny.pt"
    for step in range(1, 8):
        save_net(path, net, step=step, keep=3)
    assert [p.name for p in ckpt.snapshots(path)] == [f"train-test-net-tiny.step{s:09d}.pt" for s in (5, 6, 7)]
    assert os.path.samefile(path, ckpt.snapshots(path)[-1])
    assert ckpt.load(path)["step"] == 7
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name] + [p.name for p in ckpt.snapshots(path)])


def test_a_failed_save_leaves_the_previous_checkpoint_and_no_temporary_file(tmp_path, monkeypatch):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net, step=1)

    def dies_half_way(obj, handle):
        handle.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(OSError, match="disk full"):
        save_net(path, net, step=2)
    monkeypatch.undo()
    assert ckpt.load(path)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.pt", "net.step000000001.pt"]
    stale = tmp_path / ".net.step000000003.pt.4242.tmp"  # what a SIGKILL mid-write leaves behind
    stale.write_bytes(b"partial")
    save_net(path, net, step=3)
    assert not stale.exists() and ckpt.load(path)["step"] == 3


def test_weights_that_do_not_fit_are_refused(tmp_path):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net)
    wider = get_method("train-test-net", SHAPE, preset="tiny", width=8)
    with pytest.raises(BenchError, match=rf"checkpoint {path} does not fit method 'train-test-net'"):
        ckpt.restore(wider, ckpt.load(path), path)
    with pytest.raises(BenchError, match=rf"weights in {path} do not fit method 'train-test-net' as configured"):
        ckpt.load_weights(wider, path)


def test_init_weights_from_another_frame_shape(tmp_path):
    net, _ = trained_net(steps=1)
    path = tmp_path / "net.pt"
    save_net(path, net, preset="small")
    other = get_method("train-test-net", (1, 64, 80), preset="tiny")  # a fully convolutional net fits any size
    ckpt.load_weights(other, path)
    assert all(torch.equal(a, b) for a, b in zip(other.state_dict().values(), net.state_dict().values()))
    assert other.optimizers["adam"].state_dict()["state"] == {}  # weights only: no optimizer state


def test_sha256_names_the_content(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    assert ckpt.sha256(path) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_init_from_keeps_the_weights_but_restarts_training_schedules(tmp_path):
    source = get_method("frnn", (1, 16, 16), preset="tiny", lr_late=1e-5, lr_late_from=2)
    with torch.no_grad():
        source.updates.fill_(5)
        next(source.parameters()).add_(1.0)
    path = tmp_path / "source.pt"
    ckpt.save(path, ckpt.pack(source, preset="tiny", dataset="d", step=5, seed=0))
    fresh = get_method("frnn", (1, 16, 16), preset="tiny", lr_late=1e-5, lr_late_from=2)
    ckpt.load_weights(fresh, path)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), source.parameters()))
    assert fresh.updates.item() == 0 and fresh.learning_rate() == 1e-4  # not the source's late rate
