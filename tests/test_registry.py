"""The plugin registry: discovery, entry points, $BENCH_PLUGINS and helpful misses."""
from __future__ import annotations

import sys
import types

import pytest

import bench
from bench import registry
from bench.errors import BenchError
from bench.method import Method


def test_builtin_plugins_are_discovered():
    assert "baseline" in bench.list_methods() and "mmnist" in bench.list_datasets()
    assert bench.list_methods() == sorted(bench.list_methods())
    for name in bench.list_methods():
        presets = registry.methods.get(name).presets
        assert {"paper", "small", "tiny"} <= set(presets), name
        if registry.methods.get(name).trainable:
            assert all({"steps", "batch_size"} <= set(presets[p]) for p in presets), name


def test_a_miss_lists_the_names_and_suggests_the_closest():
    with pytest.raises(registry.UnknownNameError) as caught:
        bench.get_method("basline", frame_shape=(1, 64, 64))
    message = str(caught.value)
    assert "unknown method 'basline'; did you mean 'baseline'?" in message
    assert "Known methods:" in message and "baseline" in message.split("Known methods:")[1]
    with pytest.raises(registry.UnknownNameError, match=r"unknown dataset 'zzz'\. Known datasets: .*mmnist"):
        bench.get_dataset("zzz")


def fresh(kind="method"):
    return registry.Registry(kind, "bench.methods", "vpbench.tests.none")


def test_entry_points_register_third_party_classes(monkeypatch):
    class External(Method):
        presets = {"paper": {}, "small": {}, "tiny": {}}

    class FakeEntry:
        name = "external"

        def load(self):
            return External

    monkeypatch.setattr(registry, "entry_points", lambda group: [FakeEntry()])
    reg = fresh()
    assert reg.get("external") is External and External.name == "external"


def test_bench_plugins_imports_local_modules(monkeypatch):
    sys.modules["my_local_plugin"] = types.ModuleType("my_local_plugin")
    reg = fresh()
    monkeypatch.setenv("BENCH_PLUGINS", "my_local_plugin, ")
    imported = []
    real_import = registry.importlib.import_module

    def spy(name):
        imported.append(name)
        return real_import(name)

    monkeypatch.setattr(registry.importlib, "import_module", spy)
    reg.names()
    assert "my_local_plugin" in imported
    monkeypatch.setenv("BENCH_PLUGINS", "no_such_module_xyz")
    with pytest.raises(BenchError, match="no_such_module_xyz.*BENCH_PLUGINS"):
        fresh().names()
    del sys.modules["my_local_plugin"]


def test_two_classes_under_one_name_are_refused():
    reg = fresh()

    class A(Method):
        pass

    class B(Method):
        pass

    reg.register("twin")(A)
    with pytest.raises(BenchError, match="two methods are registered as 'twin'"):
        reg.register("twin")(B)


def test_preset_and_setting_errors_name_the_culprit():
    cls = registry.methods.get("baseline")
    with pytest.raises(BenchError, match="no preset 'huge'; its presets are: paper, small, tiny"):
        cls.resolve_config("huge")
    with pytest.raises(BenchError, match="has no setting 'lr'"):
        cls.resolve_config("tiny", {"lr": 1})


def test_settings_keep_the_type_of_the_preset():
    cls = registry.methods.get("frnn")
    assert cls.resolve_config("tiny", {"lr": 1})["lr"] == 1.0
    with pytest.raises(BenchError, match="setting 'lr' must be float like its preset value"):
        cls.resolve_config("tiny", {"lr": "abc"})
    with pytest.raises(BenchError, match="setting 'steps' must be int"):
        cls.resolve_config("tiny", {"steps": 2.5})
