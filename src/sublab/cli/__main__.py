"""``python -m sublab.cli``."""

from sublab.cli import main

main()
