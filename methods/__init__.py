"""Built-in method plugins, one file each, imported as ``bench.methods.<name>``."""
