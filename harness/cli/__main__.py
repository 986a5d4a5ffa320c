"""``python -m harness.cli``: the same as the ``bakeoff`` script."""

from harness.cli import main

main()
