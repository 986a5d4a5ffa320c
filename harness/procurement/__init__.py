"""Procurement: pure functions of records, a catalog and a policy. ``rank`` (policy, cost per
token), ``compare`` (runs against runs, with significance), ``cost``, ``policy``.
Reads records only, never the engine (tests/test_layers.py)."""
