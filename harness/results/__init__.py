"""Results: the typed record (``record``), the run folder store (``store``), the flat
pandas table (``frame``) and the figures derived across a run's records (``roofline``).

``harness.results.load(run_dir)`` is the documented way into pandas.
"""

from typing import Any

#: The flat table's public names, importable from here without importing pandas up front.
_FRAME_NAMES = ("load", "load_records", "export_frame", "read_export", "record_to_row", "LIST_COLUMNS")


def __getattr__(name: str) -> Any:
    if name in _FRAME_NAMES:
        from harness.results import frame

        return getattr(frame, name)
    raise AttributeError(f"module 'harness.results' has no attribute {name!r}")
