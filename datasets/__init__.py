"""Built-in dataset plugins, one file each, imported as ``bench.datasets.<name>``."""
