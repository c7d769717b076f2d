"""One module per ``bench`` subcommand, each exposing a click ``command``; ``_*.py`` are helpers."""
