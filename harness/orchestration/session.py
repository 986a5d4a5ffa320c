"""A bake-off from request to records: the one path the CLI, configs and the Python API share.

``bakeoff run`` (flags or ``--config``), ``bakeoff run --resume`` and
:func:`harness.run` all come here, so they accept the same things (backend and
scenario options, the Ray executor, the launcher) and cannot drift apart. The
CLI only parses its flags into a :class:`harness.orchestration.sweep.SweepRequest` and
renders what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.contract.errors import UserError
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.sweep import SweepRequest
from harness.results.store import RunStore

LOCAL, RAY = "local", "ray"


@dataclass(frozen=True)
class FleetSettings:
    """Where the benchmarks run: this machine (``local``), or a Ray cluster (docs/fleet.md)."""

    executor: str = LOCAL
    ray_address: str | None = None
    ray_retries: int = 1
    #: ``BACKEND[/DEVICE]=RESOURCE[:N]`` selectors (``--ray-resource``).
    ray_resources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"executor": self.executor, "ray_address": self.ray_address, "ray_retries": self.ray_retries,
                "ray_resources": list(self.ray_resources)}

    def connect(self):
        """A connected :class:`harness.orchestration.fleet.RayExecutor` for ``ray``, else ``None``."""
        if self.executor not in (LOCAL, RAY):
            raise UserError(f"executor {self.executor!r}: allowed: {LOCAL}, {RAY}")
        if self.executor != RAY:
            if self.ray_address or self.ray_resources:
                raise UserError("--ray-address and --ray-resource need --executor ray")
            return None
        from harness.orchestration.fleet import RayExecutor, parse_resource_selectors

        executor = RayExecutor(address=self.ray_address, retries=self.ray_retries,
                               selectors=parse_resource_selectors(self.ray_resources))
        executor.connect()
        return executor


@dataclass
class Session:
    """A planned (or resumed) run: its store, the specs still to run and where they run."""

    store: RunStore
    specs: list[BenchmarkSpec]
    launcher: str
    ray_executor: Any = None
    notes: list[str] = field(default_factory=list)
    #: For a resumed run: how many benchmarks its plan holds in all.
    planned: int | None = None
    #: ``--sweep auto``: the concurrent benchmarks' next load points are decided as records come.
    auto_sweep: bool = False

    def run(self, observer: Any = None) -> list[dict[str, Any]]:
        """Run every spec (one sweep loop, locally or on the fleet) and write the records.
        ``KeyboardInterrupt`` propagates after the run is marked interrupted."""
        from harness.orchestration.launchers import get_launcher
        from harness.orchestration.sweep import run_sweep

        try:  # one sweep loop, whether one benchmark at a time here or many at once on a fleet
            launcher = self.ray_executor if self.ray_executor is not None else get_launcher(self.launcher)
            grow = None
            if self.auto_sweep:
                from harness.orchestration.autosweep import AutoSweep
                from harness.results.store import read_records

                grow = AutoSweep(read_records(self.store.path))  # a resumed run's points so far
            return run_sweep(self.specs, launcher, self.store, observer, grow)
        finally:
            if self.ray_executor is not None:
                self.ray_executor.shutdown()


def start(request: SweepRequest, *, out: Path | str = "results", launcher: str = "subprocess",
          fleet: FleetSettings = FleetSettings(), config: Path | str | None = None) -> Session:
    """Plan ``request`` (from ``config`` when given, so its notes name the file), create the run
    folder and return the session. Bad input raises :class:`UserError` before anything runs."""
    from harness.orchestration.sweep import plan

    ray_executor = fleet.connect()
    try:
        backend_rows = None
        if ray_executor is not None:
            from harness.orchestration.fleet import cluster_rows

            if launcher != "subprocess":
                raise UserError(f"--launcher {launcher}: fleet benchmarks always run in a worker process")
            if request.sweep == "auto":
                raise UserError("--sweep auto decides each point from the last, one at a time: run it locally "
                                "(without --executor ray)")
            backend_rows = cluster_rows(ray_executor.probe(request.backends))
        if config is not None:
            from harness.orchestration.config import plan_config

            the_plan = plan_config(config, request, backend_rows=backend_rows)
        else:
            the_plan = plan(request, backend_rows=backend_rows)
        store = RunStore.create(out, settings={**request.settings(), "launcher": launcher, **fleet.to_dict()},
                                plan=the_plan.specs, devices=the_plan.devices)
    except BaseException:
        if ray_executor is not None:
            ray_executor.shutdown()
        raise
    return Session(store, list(the_plan.specs), launcher, ray_executor, list(the_plan.notes),
                   auto_sweep=request.sweep == "auto")


def resume(run_dir: Path | str, *, fleet_overrides: dict[str, Any] | None = None) -> Session:
    """Reopen an interrupted run with the launcher and executor settings it was started with
    (``fleet_overrides``: the ones given again now) and the specs whose records are missing;
    refuses while a process of the run still lives."""
    from harness.orchestration.sweep import resume as missing_specs

    store = RunStore.open(run_dir)
    specs = missing_specs(store)
    stored = store.manifest.get("settings", {})
    values = {**FleetSettings().to_dict(), **{k: stored[k] for k in FleetSettings().to_dict() if k in stored},
              **(fleet_overrides or {})}
    fleet = FleetSettings(executor=values["executor"], ray_address=values["ray_address"],
                          ray_retries=values["ray_retries"], ray_resources=tuple(values["ray_resources"] or ()))
    if stored.get("sweep") == "auto" and fleet.executor != LOCAL:
        raise UserError("--sweep auto decides each point from the last, one at a time: resume it locally "
                        "(without --executor ray)")
    return Session(store, specs, stored.get("launcher", "subprocess"), fleet.connect(),
                   planned=len(store.manifest.get("plan", [])), auto_sweep=stored.get("sweep") == "auto")
