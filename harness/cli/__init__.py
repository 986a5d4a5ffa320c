"""The ``bakeoff`` command line: one module per command group, each only parsing and rendering.

* :mod:`harness.cli.base`: the group, one-line errors, consoles, JSON output;
* :mod:`harness.cli.listing`: ``backends``, ``workloads``, ``scenarios``, ``new-backend``, ``serve``;
* :mod:`harness.cli.running`: ``run``;
* :mod:`harness.cli.runs`: ``show``, ``compare``, ``export``;
* :mod:`harness.cli.procurement`: ``rank``, ``plan``, ``report``.

Importing this package registers every command on :data:`cli`.
"""

from harness.cli import listing, procurement, running, runs  # noqa: F401 - registers the commands
from harness.cli.base import cli, main

__all__ = ["cli", "main"]
