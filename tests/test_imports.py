"""The core reads in one direction: the harness modules never import the command line (click)."""
from __future__ import annotations

import subprocess
import sys

CORE = ["bench", "bench.train", "bench.runner", "bench.grid", "bench.ablate", "bench.checkpoint", "bench.profile"]


def loaded_after(statement: str) -> set[str]:
    done = subprocess.run([sys.executable, "-c", f"{statement}; import sys; print(' '.join(sys.modules))"],
                          capture_output=True, text=True, check=True)
    return set(done.stdout.split())


def test_the_core_does_not_import_click():
    modules = loaded_after("import " + ", ".join(CORE))
    assert "click" not in modules
    assert "bench.cli" not in modules and not any(name.startswith("bench.commands") for name in modules)


def test_import_bench_stays_light():
    """``import bench`` loads no torch, numpy or compiled kernels: they come with the first use."""
    assert not {"torch", "numpy", "numba", "click"} & loaded_after("import bench")
    modules = loaded_after("import bench; bench.metrics; bench.Method")
    assert {"bench.metrics", "bench.method", "torch"} <= modules
