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

#: The layers (docs/architecture.md), importable as attributes without importing them up front.
_SUBMODULES = {"contract", "files", "hardware", "engine", "results", "orchestration", "procurement",
               "presentation", "tools", "testing"}


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
    batch_sizes: Iterable[int] = (),
    scenarios: Iterable[str] = ("single-stream",),
    stopping: Any = None,
    server: Any = None,
    threads: int | None = None,
    timeout_s: float | None = None,
    memory_limit_bytes: int | None = None,
    backend_options: Mapping[str, Mapping[str, Any]] | None = None,
    scenario_options: Mapping[str, Mapping[str, Any]] | None = None,
    sweep: str | None = None,
    explicit: Iterable[str] = (),
    config: str | Path | None = None,
    launcher: str = "subprocess",
    executor: str = "local",
    ray_address: str | None = None,
    ray_retries: int = 1,
    ray_resources: Iterable[str] = (),
    out: str | Path = "results",
    observer: Any = None,
) -> Path:
    """Run a bake-off and return its run folder (``results/<run-id>/``).

    Empty ``backends`` or ``workloads`` mean every available one; empty
    ``batch_sizes`` mean 1 (1, 8, 32 for ``offline``). ``stopping`` is a
    :class:`harness.engine.timing.Stopping` and ``server`` a
    :class:`harness.engine.scenarios.ServerSettings`, or a list of them: one benchmark per load
    point, as repeated ``--qps`` or ``--concurrency`` give; a field left at its general default
    takes the backend's load defaults where it declares them (an endpoint's serving profile,
    docs/serving.md), unless ``explicit`` names it (``{"server.latency_slo_s"}``), as a CLI
    flag given at the general default's value does. ``backend_options`` are ``-O``'s
    (``{"torch": {"graph": "compile"}}``, a list sweeps) and ``scenario_options``
    ``--scenario-option``'s (``{"burst": {"size": 8}}``); ``sweep="auto"`` chooses the
    concurrent scenario's load points from one client to saturation, as ``--sweep auto``. With ``config`` (a sweep TOML),
    the other arguments are ignored. ``executor="ray"`` (with ``ray_address``,
    ``ray_retries``, ``ray_resources``) runs each benchmark on a Ray cluster node, as
    ``bakeoff run --executor ray`` does: both go through harness/orchestration/session.py.
    Raises :class:`harness.contract.errors.UserError` for bad input before anything runs.
    """
    from harness.contract.precisions import canonical_dtype
    from harness.engine.scenarios import ServerSettings
    from harness.engine.spec import DEFAULT_TIMEOUT_S
    from harness.engine.timing import Stopping
    from harness.orchestration import session as orchestration
    from harness.orchestration.sweep import SweepRequest

    fleet = orchestration.FleetSettings(executor=executor, ray_address=ray_address, ray_retries=ray_retries,
                                        ray_resources=tuple(ray_resources))
    if config is not None:
        from harness.orchestration.config import load_config

        session = orchestration.start(load_config(config), out=out, launcher=launcher, fleet=fleet, config=config)
    else:
        # One ServerSettings, or a list of them: one benchmark per load point.
        loads = tuple(server) if isinstance(server, (list, tuple)) and server else (server or ServerSettings(),)
        request = SweepRequest(
            backends=tuple(backends),
            devices=tuple(devices),
            workloads=tuple(workloads),
            params=tuple((params or {}).items()),
            dtypes=tuple(canonical_dtype(name) for name in dtypes),
            batch_sizes=tuple(batch_sizes),
            scenarios=tuple(scenarios),
            stopping=stopping or Stopping(),
            server=loads[0],
            server_points=loads if len(loads) > 1 else (),
            threads=threads,
            timeout_s=DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s,
            memory_limit_bytes=memory_limit_bytes,
            backend_options=dict(backend_options or {}),
            scenario_options=dict(scenario_options or {}),
            sweep=sweep,
            explicit=frozenset(explicit),
        )
        session = orchestration.start(request, out=out, launcher=launcher, fleet=fleet)
    session.run(observer)
    return session.store.path


def resume(run_dir: str | Path, *, observer: Any = None) -> Path:
    """Finish an interrupted run with its own launcher and executor: run only the benchmarks
    whose records are missing."""
    from harness.orchestration import session as orchestration

    session = orchestration.resume(run_dir)
    session.run(observer)
    return session.store.path
