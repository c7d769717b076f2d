"""``bench list``: the registered methods (with presets) and datasets (with options)."""
from __future__ import annotations

import json

import click

from .. import registry


@click.command("list", short_help="List methods with their presets and datasets with their options.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(as_json: bool) -> None:
    """List methods, their presets, and datasets, their frame shapes and options."""
    methods = {
        name: {"presets": list(cls.presets), "trainable": cls.trainable, "doc": _summary(cls)}
        for name in registry.methods.names()
        for cls in [registry.methods.get(name)]
    }
    datasets = {
        name: {
            "frame_shape": list(cls.frame_shape),
            "options": {key: {"default": str(default) if default is not None else None, "help": text}
                        for key, (_, default, text) in cls.options.items()},
            "doc": _summary(cls),
        }
        for name in registry.datasets.names()
        for cls in [registry.datasets.get(name)]
    }
    if as_json:
        click.echo(json.dumps({"methods": methods, "datasets": datasets}, indent=2))
        return
    click.echo("Methods:")
    for name, info in methods.items():
        click.echo(f"  {name:<12} presets: {', '.join(info['presets']):<20} {info['doc']}")
    click.echo("Datasets:")
    for name, info in datasets.items():
        shape = "x".join(map(str, info["frame_shape"]))
        click.echo(f"  {name:<12} frames {shape:<10} {info['doc']}")
        for key, option in info["options"].items():
            click.echo(f"      -o {key}=...  {option['help']} (default: {option['default']})")


def _summary(cls) -> str:
    """The docstring's first paragraph on one line: a summary wrapped over lines stays whole."""
    module = __import__(cls.__module__, fromlist=["_"])
    doc = (cls.__doc__ or module.__doc__ or "").strip()
    return " ".join(doc.split("\n\n")[0].split())
