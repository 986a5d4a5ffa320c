"""Durable, atomic file writes: a reader sees the old file or the complete new one, never a part.

One way to write, for every file bakeoff keeps (run manifests, records, worker
outcomes, cache entries): a temporary file in the same directory (so the rename
never crosses a file system), flushed and fsync'd, ``os.replace``d over the
target, and then the directory fsync'd so the rename itself survives a power
loss. An exception while writing deletes the temporary file and leaves the old
target untouched. Temporary names are ``.<name>.<random>.tmp``, which is what
``RunStore.remove_stale_temporaries`` sweeps up after a killed writer.

The backends' caches (ONNX exports, int8 models, OpenVINO IR) are written by
libraries that do not fsync, staged under a private name (a folder or a file)
and renamed into place; they call :func:`fsync_tree` on what they staged before
the rename and :func:`fsync_dir` on the parent after it.

This module imports only the standard library, so anything may import it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable


def fsync_dir(path: Path | str) -> None:
    """fsync a directory, making a rename or creation in it durable. Best effort: some file
    systems (and platforms) refuse to fsync a directory, and that is not an error."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(path: Path | str) -> None:
    """fsync a file, or every file and folder under a folder (a staged cache entry written by a
    library, such as ``torch.onnx.export`` or ``openvino.save_model``, that does not fsync)."""
    path = Path(path)
    if not path.is_dir():
        _fsync_file(path)
        return
    for folder, _dirs, files in os.walk(path):
        for name in files:
            _fsync_file(Path(folder) / name)
        fsync_dir(folder)


def atomic_write(path: Path | str, write: Callable[[IO[Any]], None], binary: bool = False) -> None:
    """Call ``write(fh)`` on a temporary file beside ``path`` and move it into place atomically.

    ``fh`` is opened ``"wb"`` when ``binary``, else ``"w"`` in UTF-8. Parent folders are
    created. If ``write`` (or anything before the rename) raises, the temporary file is
    removed, ``path`` keeps its old contents, and the exception propagates.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_json(path: Path | str, data: Any) -> None:
    """Write ``data`` as JSON (indented, NaN and infinity refused) with :func:`atomic_write`."""

    def write(fh: IO[str]) -> None:
        json.dump(data, fh, indent=1, allow_nan=False)
        fh.write("\n")

    atomic_write(path, write)
