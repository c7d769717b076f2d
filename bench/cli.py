"""The ``bench`` command line.

Each command lives in its own module of ``bench.commands`` (an attribute ``command``), so commands
are added without touching this file; modules starting with ``_`` hold shared helpers. Errors of the user's making (:class:`BenchError`) print as
one sentence with exit status 1; anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import importlib
import os
import pkgutil
import shlex
import sys
import warnings

import click

from . import commands
from .errors import BenchError


def _short_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as one line for users ("Warning: ..."), not Python's source-line format."""
    return f"Warning: {message}\n"


warnings.formatwarning = _short_warning


class BenchGroup(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BenchError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=BenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vpbench")
def main() -> None:
    """Benchmark future-video predictors: 10 frames in, 10 predicted, scored per step."""
    # How lock holders describe themselves to a refused process (inherited by --jobs workers).
    os.environ["BENCH_COMMAND"] = shlex.join(["bench", *sys.argv[1:]])


for _module in pkgutil.iter_modules(commands.__path__):
    if not _module.name.startswith("_"):  # _options.py and other shared helpers
        main.add_command(importlib.import_module(f"{commands.__name__}.{_module.name}").command)
