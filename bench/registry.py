"""A generic name -> class registry for method and dataset plugins.

Built-in plugins are the modules of a package (``bench.methods``, ``bench.datasets``); they are
imported lazily on the first lookup, so adding a plugin is one new file. Third-party packages
register through an entry-point group (``bench.methods``, ``bench.datasets``) whose entries point
at plugin classes (or at modules that register on import). Local, uninstalled plugin modules are
named in ``$BENCH_PLUGINS`` (comma-separated module names, importable from ``sys.path``); being an
environment variable, it reaches worker processes and Dask workers too.
"""
from __future__ import annotations

import difflib
import importlib
import os
import pkgutil
import re
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from .errors import BenchError

T = TypeVar("T")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")  # names become folder and file names of results and checkpoints


class UnknownNameError(BenchError, KeyError):
    """A lookup miss; the message lists the known names and suggests the closest."""

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class Registry(Generic[T]):
    """Plugins of one kind (``kind`` = "method" or "dataset")."""

    def __init__(self, kind: str, package: str, group: str):
        self.kind, self.package, self.group = kind, package, group
        self._classes: dict[str, type[T]] = {}
        self._loaded = False

    def register(self, name: str):
        """Class decorator: ``@register_method("mymethod")`` sets ``cls.name`` and records the class."""
        if not isinstance(name, str) or not SAFE_NAME.fullmatch(name):
            raise BenchError(
                f"cannot register {self.kind} {name!r}: a name must be letters, digits, '_' and '-', starting "
                "with a letter or digit (it names result and checkpoint files)"
            )

        def decorate(cls: type[T]) -> type[T]:
            known = self._classes.get(name)
            if known is not None and known is not cls and known.__qualname__ != cls.__qualname__:
                raise BenchError(f"two {self.kind}s are registered as {name!r}: {known} and {cls}")
            cls.name = name
            self._classes[name] = cls
            return cls

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")
        for entry in entry_points(group=self.group):
            loaded = entry.load()
            if isinstance(loaded, type) and entry.name not in self._classes:
                self.register(entry.name)(loaded)
        for name in filter(None, (part.strip() for part in os.environ.get("BENCH_PLUGINS", "").split(","))):
            try:
                importlib.import_module(name)
            except ImportError as error:
                raise BenchError(f"cannot import plugin module {name!r} named in $BENCH_PLUGINS: {error}") from None

    def names(self) -> list[str]:
        self._load()
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        self._load()
        if name in self._classes:
            return self._classes[name]
        names = self.names()
        close = difflib.get_close_matches(name, names, n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "."
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{hint} Known {self.kind}s: {', '.join(names) or 'none'}"
        )


methods: Registry = Registry("method", "bench.methods", "bench.methods")
datasets: Registry = Registry("dataset", "bench.datasets", "bench.datasets")
register_method = methods.register
register_dataset = datasets.register
