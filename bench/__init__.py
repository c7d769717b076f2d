"""vpbench: compare future-video predictors on equal terms (10 frames in, 10 out).

Python API::

    import bench
    bench.list_methods(), bench.list_datasets()
    method = bench.get_method("baseline", frame_shape=(1, 64, 64), preset="tiny")
    data = bench.get_dataset("mmnist", data_dir="...")
    bench.metrics.frame_metrics(pred, target)    # {"mse", "psnr", "dssim"}: (B, T)
    bench.evaluate(method, data, limit=100)       # what `bench run` writes
    bench.load_results("results")                 # the results as a long pandas DataFrame
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import BenchError
from .registry import datasets as _datasets
from .registry import methods as _methods
from .registry import register_dataset, register_method

if TYPE_CHECKING:
    from . import metrics
    from .dataset import ClipSet, Dataset
    from .method import Method

# Loaded on first use, so ``import bench`` (and the command line's start) does not pay for torch,
# numpy and the compiled metric kernels: name -> the module that defines it.
_LAZY = {"metrics": ".metrics", "ClipSet": ".dataset", "Dataset": ".dataset", "Method": ".method"}

__version__ = "0.1.0"
__all__ = [
    "BenchError", "ClipSet", "Dataset", "Method", "evaluate", "get_dataset", "get_method",
    "list_datasets", "list_methods", "load_results", "metrics", "register_dataset", "register_method",
]


def list_methods() -> list[str]:
    return _methods.names()


def list_datasets() -> list[str]:
    return _datasets.names()


def get_method(name: str, frame_shape, preset: str = "small", **overrides: Any) -> Method:
    """A new, untrained method ``name`` built for ``frame_shape`` (C, H, W) with ``preset``'s config."""
    cls = _methods.get(name)
    return cls(tuple(frame_shape), cls.resolve_config(preset, overrides))


def get_dataset(name: str, **kwargs: Any) -> Dataset:
    """Dataset ``name``; kwargs: ``data_dir``, ``cache_dir``, ``skip_bad`` and its own options."""
    return _datasets.get(name)(**kwargs)


def evaluate(method: Method, dataset: Dataset, **kwargs: Any):
    """Score ``method`` on ``dataset``'s test clips; see :func:`bench.runner.evaluate`."""
    from .runner import evaluate as _evaluate

    return _evaluate(method, dataset, **kwargs)


def load_results(results_dir: str = "results", per_sequence: bool = False):
    """The results under ``results_dir`` as a long pandas DataFrame; see :func:`bench.results.load_results`."""
    from .results import load_results as _load_results

    return _load_results(results_dir, per_sequence)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_LAZY[name], __name__)
    value = module if name == "metrics" else getattr(module, name)
    globals()[name] = value
    return value
