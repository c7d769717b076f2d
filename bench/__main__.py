"""``python -m bench`` runs the command line (and is what ``torchrun ... -m bench train`` starts)."""
from .cli import main

main()
