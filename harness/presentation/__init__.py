"""Presentation: what users see. ``cli`` (one module per command group; parses and renders),
``tables``, the HTML ``report`` and ``interop`` (pyperf, pytest-benchmark files)."""
