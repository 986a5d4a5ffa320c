"""bakeoff: an inference-hardware bake-off harness.

The public Python API mirrors the CLI::

    import harness
    run_dir = harness.run(backends=["torch", "onnxruntime"], workloads=["gemm"])
    df = harness.results.load(run_dir)      # one row per benchmark

Core imports nothing heavy: torch, onnxruntime and openvino are imported only
inside backends and workloads, when a benchmark needs them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

try:
    __version__ = importlib.metadata.version("bakeoff")
except importlib.metadata.PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

_SUBMODULES = {"results", "stats", "interface", "plugins", "runner", "sweep", "launchers", "spec", "errors"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"harness.{name}")
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def run(
    backends: Iterable[str] = (),
    workloads: Iterable[str] = (),
    *,
    devices: Iterable[str] = (),
    params: Mapping[str, Any] | None = None,
    dtypes: Iterable[str] = ("float32",),
    batch_sizes: Iterable[int] = (1,),
    warmup: int | None = None,
    iterations: int | None = None,
    threads: int | None = None,
    timeout_s: float | None = None,
    launcher: str = "subprocess",
    out: str | Path = "results",
    observer: Any = None,
) -> Path:
    """Run a bake-off and return its run folder (``results/<run-id>/``).

    Empty ``backends`` or ``workloads`` mean every available one. Raises
    :class:`harness.errors.UserError` for bad input before anything runs.
    """
    from harness.launchers import get_launcher
    from harness.results import RunStore
    from harness.spec import DEFAULT_TIMEOUT_S
    from harness.sweep import DEFAULT_ITERATIONS, DEFAULT_WARMUP, SweepRequest, plan, run_sweep

    request = SweepRequest(
        backends=tuple(backends),
        devices=tuple(devices),
        workloads=tuple(workloads),
        params=tuple((params or {}).items()),
        dtypes=tuple(dtypes),
        batch_sizes=tuple(batch_sizes),
        warmup=DEFAULT_WARMUP if warmup is None else warmup,
        iterations=DEFAULT_ITERATIONS if iterations is None else iterations,
        threads=threads,
        timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
    )
    the_plan = plan(request)
    chosen = get_launcher(launcher)
    store = RunStore.create(out, settings={**request.settings(), "launcher": launcher})
    run_sweep(the_plan.specs, chosen, store, observer)
    return store.path
