"""bakeoff's on-disk cache: exported graphs, converted models, reference outputs.

Every benchmark runs in a fresh worker process, so anything a worker computes
that does not depend on the backend (a workload's float32 CPU reference
outputs, its weight count) or that is expensive to redo (an ONNX export, an
OpenVINO IR conversion) is kept on disk, keyed by everything that could
change it: the workload's class, the hash of the source file that defines it,
its parameters, the batch size and the torch version. A code change, a new
parameter or a new torch never reuses a stale entry.

Entries are written atomically and durably (a temporary file, fsync'd, renamed
into place, then the folder fsync'd: harness/files/atomic.py) and read
with ``numpy.load(allow_pickle=False)`` or JSON: nothing is ever unpickled.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import inspect
import json
import os
import sys
from pathlib import Path
from typing import Any

from harness.files.atomic import atomic_write

#: Bump to invalidate every cached reference.
REFERENCE_FORMAT_VERSION = 1


def cache_dir() -> Path:
    """``$BAKEOFF_CACHE_DIR``, else ``$XDG_CACHE_HOME/bakeoff``, else ``~/.cache/bakeoff``."""
    if os.environ.get("BAKEOFF_CACHE_DIR"):
        return Path(os.environ["BAKEOFF_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bakeoff"


def source_digest(obj: Any) -> str:
    """Hash of the code that defines ``obj``: the modules of its class and base classes, and every
    loaded module of the same top-level package (helpers such as seeding). ``unknown-source``
    when some of it cannot be read."""
    cls = type(obj)
    names = {c.__module__ for c in cls.__mro__} - {"builtins", "abc", "typing"}
    package = cls.__module__.split(".")[0]
    names |= {name for name in list(sys.modules) if name == package or name.startswith(package + ".")}
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(names):
        try:
            source = inspect.getsource(sys.modules[name])
        except (OSError, TypeError, KeyError):
            if name == cls.__module__:
                return "unknown-source"
            continue  # e.g. a namespace package without a file
        digest.update(name.encode())
        digest.update(source.encode())
    return digest.hexdigest()


def _torch_version() -> str:
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return "none"


def workload_key(workload: Any, **extra: Any) -> str | None:
    """A cache key for a workload's backend-independent facts, or ``None`` if it must not be cached.

    Only workloads that say ``reference_cacheable = True`` are cached: their
    answer is a function of their own source file and parameters. A user's model
    file or factory (the custom workloads) can change behind the same parameters.
    """
    if not workload.reference_cacheable:
        return None
    digest = source_digest(workload)
    if digest == "unknown-source":
        return None
    identity = {"format": REFERENCE_FORMAT_VERSION, "class": f"{type(workload).__module__}.{type(workload).__qualname__}",
                "source": digest, "params": workload.values, "seed": workload.seed,
                "torch": _torch_version(), **workload.cache_identity(), **extra}
    return hashlib.blake2b(json.dumps(identity, sort_keys=True, default=str).encode(), digest_size=16).hexdigest()


def cached_reference(workload: Any, batch_size: int) -> tuple[list[Any] | None, bool]:
    """``(workload.reference_outputs(batch_size), cache_hit)``, computed once per key."""
    import numpy as np

    key = workload_key(workload, batch_size=batch_size, kind="reference")
    if key is None:
        return workload.reference_outputs(batch_size), False
    path = cache_dir() / "references" / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                if "none" in stored.files:
                    return None, True
                return [stored[f"arr_{i}"] for i in range(len(stored.files))], True
        except (OSError, ValueError):
            pass  # a damaged entry is recomputed and replaced
    reference = workload.reference_outputs(batch_size)
    if reference is None:
        atomic_write(path, lambda fh: np.savez(fh, none=np.zeros(0)), binary=True)
    else:
        arrays = [np.asarray(a) for a in reference]
        atomic_write(path, lambda fh: np.savez(fh, *arrays), binary=True)
    return reference, False


def cached_weight_bytes(workload: Any, dtype: str) -> tuple[int, str]:
    """``workload.weight_bytes_with_source(dtype)``, computed once per key (it builds the module)."""
    key = workload_key(workload, dtype=dtype, kind="weight-bytes")
    if key is None:
        return workload.weight_bytes_with_source(dtype)
    path = cache_dir() / "references" / f"{key}.json"
    try:
        stored = json.loads(path.read_text())
        return int(stored["bytes"]), str(stored["source"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    value, source = workload.weight_bytes_with_source(dtype)
    atomic_write(path, lambda fh: json.dump({"bytes": value, "source": source}, fh), binary=False)
    return value, source
