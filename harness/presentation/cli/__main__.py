"""``python -m harness.presentation.cli``: the same as the ``bakeoff`` script."""

from harness.presentation.cli import main

main()
