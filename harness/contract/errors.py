"""Error types that decide how a failure reaches the user.

A :class:`UserError` is bad input (a CLI argument, a config, a results file, a
model file): the CLI prints its message as one line and exits with code 2, no
traceback. Everything else is a bug or a benchmark failure and is handled
where it happens (benchmark failures become failed records, never crashes).
"""

from __future__ import annotations

#: A benchmark's status, one per way it can end. Only "ok" records carry a measurement and
#: can be ranked; ``unsupported`` comes from :class:`Unsupported`, ``unavailable`` from a
#: backend that cannot run here (``Availability``).
OK, FAILED, UNSUPPORTED, UNAVAILABLE = "ok", "failed", "unsupported", "unavailable"
STATUSES = (OK, FAILED, UNSUPPORTED, UNAVAILABLE)


class UserError(Exception):
    """Bad input. The message names the file, key or value and what is allowed."""

    exit_code = 2


class ResultsError(UserError):
    """A results file that is missing, corrupt, foreign or from a newer bakeoff."""


class Unsupported(Exception):
    """Raised by a backend's ``prepare`` when it cannot run this combination.

    It becomes a record with status ``unsupported`` and this message as the
    reason, e.g. "bfloat16 MatMul is not implemented by CPUExecutionProvider".
    It is not a failure of the hardware and is never ranked.
    """
