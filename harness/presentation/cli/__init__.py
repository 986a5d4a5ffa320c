"""The ``bakeoff`` command line: one module per command group, each only parsing and rendering.

* :mod:`harness.presentation.cli.base`: the group, one-line errors, consoles, JSON output;
* :mod:`harness.presentation.cli.listing`: ``backends``, ``workloads``, ``scenarios``, ``new-backend``, ``serve``;
* :mod:`harness.presentation.cli.running`: ``run``;
* :mod:`harness.presentation.cli.runs`: ``show``, ``compare``, ``export``;
* :mod:`harness.presentation.cli.procurement`: ``rank``, ``plan``, ``report``, ``catalog``.

Importing this package registers every command on :data:`cli`.
"""

from harness.presentation.cli import listing, procurement, running, runs  # noqa: F401 - registers the commands
from harness.presentation.cli.base import cli, main

__all__ = ["cli", "main"]
