"""``python -m vlaunch``: the CLI, where the console script is not installed."""

from .cli import main

main()
