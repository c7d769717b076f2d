"""Shipped weights: export of a checkpoint's inference state, manifest lookup, SHA-256 refusal."""
from __future__ import annotations

import json

import pytest
import torch

import bench
from bench import checkpoint as ckpt
from bench import weights
from bench.errors import BenchError


@pytest.fixture()
def exported(tmp_path):
    torch.manual_seed(0)
    method = bench.get_method("frnn", (1, 16, 16), preset="tiny")
    state = ckpt.pack(method, preset="tiny", dataset="bouncing_balls", step=4, seed=0, train_seconds=90.0)
    entry = weights.export(state, dtype=torch.float16, command="bench train --method frnn ...", commit="abc",
                           root=tmp_path)
    return method, entry, tmp_path


def test_export_writes_inference_state_and_a_manifest_entry(exported):
    method, entry, root = exported
    payload = torch.load(entry.path(root), weights_only=True)
    assert set(payload) == {"format", "method", "preset", "dataset", "frame_shape", "config", "step", "model"}
    assert all(v.dtype == torch.float16 for v in payload["model"].values() if v.is_floating_point())
    listed = json.loads((root / "manifest.json").read_text())["weights"]
    assert listed == [{**listed[0], "sha256": ckpt.sha256(entry.path(root))}]
    assert (entry.steps, entry.train_minutes, entry.dtype, entry.file) == (4, 1.5, "float16", "bouncing_balls/frnn-tiny.pt")


def test_find_matches_method_preset_dataset_and_frame_shape(exported):
    _, entry, root = exported
    assert weights.find("frnn", "tiny", "bouncing_balls", (1, 16, 16), root=root) == entry
    assert weights.find("frnn", "tiny", "bouncing_balls", (1, 32, 32), root=root) is None
    assert weights.find("frnn", "small", "bouncing_balls", (1, 16, 16), root=root) is None
    assert weights.manifest(root / "nowhere") == []


def test_restore_loads_half_precision_weights_into_a_float_model(exported):
    method, entry, root = exported
    fresh = bench.get_method("frnn", (1, 16, 16), preset="tiny")
    weights.restore(fresh, entry, root=root)
    for (name, original), loaded in zip(method.state_dict().items(), fresh.state_dict().values()):
        assert loaded.dtype == original.dtype
        torch.testing.assert_close(loaded, original.half().float(), rtol=0, atol=0, msg=name)


def test_a_tampered_file_is_refused(exported):
    _, entry, root = exported
    data = bytearray(entry.path(root).read_bytes())
    data[-100] ^= 1
    entry.path(root).write_bytes(bytes(data))
    with pytest.raises(BenchError, match="do not match their SHA-256 in the manifest.*--retrain"):
        weights.restore(bench.get_method("frnn", (1, 16, 16), preset="tiny"), entry, root=root)
    entry.path(root).unlink()
    with pytest.raises(BenchError, match="are missing"):
        weights.load(entry, root=root)


def test_a_damaged_manifest_is_named(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(BenchError, match="manifest.*is damaged"):
        weights.manifest(tmp_path)
