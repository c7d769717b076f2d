"""Shipped weights: export of a checkpoint's inference state (training-only state left out), manifest lookup,
loading, SHA-256 refusal."""
from __future__ import annotations

import dataclasses
import json
import runpy
import sys
from pathlib import Path

import pytest
import torch

import bench
from bench import checkpoint as ckpt
from bench import weights
from bench.errors import BenchError
from bench.registry import methods
from method_helpers import frames, seeded


def export_tiny(method, root, **extra):
    """Ship ``method`` (a ``tiny`` run of 4 steps on bouncing balls) into ``root``: (method, entry, root)."""
    state = ckpt.pack(method, preset="tiny", dataset="bouncing_balls", step=4, seed=0, **extra)
    entry = weights.export(state, dtype=torch.float16, command=f"bench train --method {method.name} ...",
                           commit="abc", root=root)
    return method, entry, root


@pytest.fixture()
def exported(tmp_path):
    torch.manual_seed(0)
    return export_tiny(bench.get_method("frnn", (1, 16, 16), preset="tiny"), tmp_path, train_seconds=90.0)


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
        expected = original.half().float() if original.is_floating_point() else original
        torch.testing.assert_close(loaded, expected, rtol=0, atol=0, msg=name)


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


def training_only_keys(method) -> list[str]:
    return [key for key in method.state_dict() if method.is_training_only(key)]


WITH_TRAINING_ONLY = [name for name in bench.list_methods()
                      if training_only_keys(bench.get_method(name, (1, 64, 64), preset="tiny"))]


def test_the_gan_and_composite_methods_declare_training_only_parts():
    assert {"mathieu", "villegas", "srivastava"} <= set(WITH_TRAINING_ONLY)


@pytest.mark.parametrize("name", WITH_TRAINING_ONLY)
def test_training_only_state_does_not_change_predictions(name):
    """Every declared prefix names state, and garbage in all of it leaves predict's output bit for bit."""
    method = seeded(name).eval()
    keys = training_only_keys(method)
    for prefix in type(method).training_only:
        assert any(key == prefix or key.startswith(prefix + ".") for key in keys), prefix
    context = frames(batch=2, length=10)
    with torch.no_grad():
        before = method.predict(context, 3)
        for key in keys:
            tensor = method.state_dict()[key]
            tensor.copy_(~tensor if tensor.dtype == torch.bool else
                         torch.full_like(tensor, float("nan") if tensor.is_floating_point() else 12345))
        after = method.predict(context, 3)
    assert torch.isnan(before).sum() == 0 and torch.equal(before, after)


@pytest.mark.parametrize("entry", weights.manifest(), ids=lambda entry: entry.file)
def test_every_shipped_file_fits_its_method_and_holds_inference_state_only(entry):
    payload = weights.load(entry)  # its SHA-256 matches the manifest's
    method = methods.get(entry.method)(tuple(entry.frame_shape), payload["config"])
    assert not [key for key in payload["model"] if method.is_training_only(key)]
    weights.fit(method, payload, entry)


@pytest.fixture()
def exported_gan(tmp_path):
    return export_tiny(seeded("mathieu", (1, 32, 32)), tmp_path)


def test_export_leaves_out_training_only_state_and_loading_keeps_it_fresh(exported_gan):
    method, entry, root = exported_gan
    payload = torch.load(entry.path(root), weights_only=True)
    inference = [key for key in method.state_dict() if not method.is_training_only(key)]
    assert list(payload["model"]) == inference and any(key.startswith("generator.") for key in inference)
    fresh = seeded("mathieu", (1, 32, 32), seed=1)
    initial = {key: value.clone() for key, value in fresh.state_dict().items()}
    weights.restore(fresh, entry, root=root)
    for key, value in fresh.state_dict().items():
        expected = initial[key] if method.is_training_only(key) else method.state_dict()[key].half().float()
        torch.testing.assert_close(value, expected.to(value.dtype), rtol=0, atol=0, msg=key)


def test_init_from_a_shipped_file_keeps_its_weights_and_starts_training_only_parts_fresh(exported_gan):
    method, entry, root = exported_gan
    fresh = seeded("mathieu", (1, 32, 32), seed=1)
    initial = {key: value.clone() for key, value in fresh.state_dict().items()}
    ckpt.load_weights(fresh, entry.path(root))
    for key, value in fresh.state_dict().items():
        expected = initial[key] if method.is_training_only(key) else method.state_dict()[key].half().float()
        torch.testing.assert_close(value, expected.to(value.dtype), rtol=0, atol=0, msg=key)
    with pytest.raises(BenchError, match=r"hold method 'mathieu', not 'villegas'; pass another --init-from file$"):
        ckpt.load_weights(seeded("villegas", (1, 32, 32)), entry.path(root))


def test_loading_refuses_any_other_missing_or_foreign_key(exported_gan):
    method, entry, root = exported_gan
    payload = weights.load(entry, root=root)
    lacking = {**payload, "model": {k: v for k, v in payload["model"].items() if k != "generator.scales.0.net.0.bias"}}
    with pytest.raises(BenchError, match=r"mathieu-tiny\.pt do not fit method 'mathieu': it lacks "
                                         r"generator\.scales\.0\.net\.0\.bias$"):
        weights.fit(seeded("mathieu", (1, 32, 32)), lacking, entry, root=root)
    foreign = {**payload, "model": {**payload["model"], "critic.weight": torch.zeros(1)}}
    with pytest.raises(BenchError, match="the method has no critic.weight$"):
        weights.fit(seeded("mathieu", (1, 32, 32)), foreign, entry, root=root)
    whole = {**payload, "model": {key: value.half() if value.is_floating_point() else value
                                  for key, value in method.state_dict().items()}}
    weights.fit(seeded("mathieu", (1, 32, 32)), whole, entry, root=root)  # a file with them all still fits


def test_strip_rewrites_an_old_file_without_its_training_only_state(tmp_path, monkeypatch):
    method = seeded("srivastava", (1, 16, 16))
    state = ckpt.pack(method, preset="tiny", dataset="mmnist", step=3, seed=0, train_seconds=60.0)
    with monkeypatch.context() as patch:  # ship as before training-only state was left out
        patch.setattr(type(method), "training_only", ())
        old = weights.export(state, dtype=torch.float16, command="bench train ...", commit="abc", root=tmp_path)
    before = weights.load(old, root=tmp_path)
    assert any(key.startswith("reconstructor.") for key in before["model"])
    new = weights.strip(old, root=tmp_path)
    assert weights.manifest(tmp_path) == [new] and new == dataclasses.replace(old, sha256=new.sha256)
    assert new.sha256 == ckpt.sha256(new.path(tmp_path)) != old.sha256
    after = weights.load(new, root=tmp_path)
    assert list(after["model"]) == [key for key in before["model"] if not key.startswith("reconstructor.")]
    assert all(torch.equal(after["model"][key], before["model"][key]) for key in after["model"])
    assert {k: v for k, v in after.items() if k != "model"} == {k: v for k, v in before.items() if k != "model"}
    unstripped, stripped = seeded("srivastava", (1, 16, 16), seed=1), seeded("srivastava", (1, 16, 16), seed=2)
    weights.fit(unstripped, before, old, root=tmp_path)
    weights.restore(stripped, new, root=tmp_path)
    context = frames(length=10, shape=(1, 16, 16))
    with torch.no_grad():
        assert torch.equal(unstripped.eval().predict(context, 4), stripped.eval().predict(context, 4))
    assert weights.strip(new, root=tmp_path) == new  # nothing left to strip: the file stays


def test_config_differences_name_each_setting_and_ignore_tuple_versus_list():
    assert weights.config_differences({"hidden": [64, 32], "steps": 4000}, {"hidden": (64, 32), "steps": 4000}) == []
    assert weights.config_differences({"hidden": [64], "steps": 3000, "lr": 0.1}, {"hidden": (64,), "steps": 4000}) == [
        "lr: 0.1 vs None", "steps: 3000 vs 4000"]


def test_ship_script_refuses_weights_bench_run_would_never_use(tmp_path, monkeypatch, capsys):
    """A checkpoint trained to other steps than its preset's would be passed over by bench run: refused."""
    method = seeded("frnn", (1, 16, 16))
    path = tmp_path / "frnn-tiny.pt"
    steps = method.resolve_config("tiny")["steps"]
    ckpt.write(path, ckpt.pack(method, preset="tiny", dataset="bouncing_balls", step=steps + 1, seed=0))
    script = Path(__file__).parent.parent / "scripts" / "ship_weights.py"
    monkeypatch.setattr(sys, "argv", [str(script), str(path), "--commit", "abc", "--command", "bench train ..."])
    monkeypatch.setattr(weights, "SHIPPED_DIR", tmp_path / "shipped")
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(script), run_name="__main__")
    assert stop.value.code == 2
    assert f"steps: {steps + 1} vs {steps}" in capsys.readouterr().err
    assert not (tmp_path / "shipped").exists()
