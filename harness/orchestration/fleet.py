"""Fleet runs on Ray: each benchmark of a sweep becomes a Ray task on the node that holds its device.

A procurement bake-off spans machines: a GPU server, an Ascend server, a CPU
box. ``bakeoff run --executor ray --ray-address HEAD`` plans the sweep from
what the cluster's nodes report, sends each benchmark to a node that offers
the resources it needs, runs it there with the same isolation as a local run
(a fresh worker process with its time and memory limits), and writes each
record to the driver's run folder as it arrives.

**Requirements** are decided in one place, :func:`requirements_for`:

1. the backend's own declaration, ``backend.ray_requirements(device)``
   (built-ins: torch ``cuda:N`` asks for one ``GPU``, ``npu:N`` one ``NPU``;
   ONNX Runtime's CUDA and TensorRT providers one ``GPU``, CANN one ``NPU``);
2. otherwise ``spec.threads`` CPUs, so concurrent CPU benchmarks on a node
   never share cores;
3. plus the user's custom resources, ``--ray-resource SELECTOR=NAME[:AMOUNT]``
   where SELECTOR is a backend (``torch``) or a backend and device
   (``torch/npu:0``), matching what ``ray start --resources`` gave a node,
   e.g. ``--ray-resource torch/npu:0=ascend910b``.

**Failures.** A benchmark no alive node can satisfy is recorded
``unavailable`` as unschedulable, naming what it asked for, without being
submitted. A task whose worker or node dies is retried ``--ray-retries``
times, then recorded ``failed`` (cause ``lost``). A task that neither runs
nor finishes within its time limit plus :data:`QUEUE_GRACE_S` is cancelled
and recorded as a timeout, so a sweep never hangs.

Ray is imported only here, only when used (``pip install 'bakeoff[fleet]'``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

from harness.contract.capabilities import RayPlacement, capability
from harness.contract.errors import UserError
from harness.engine.runner import UNAVAILABLE, Outcome
from harness.engine.spec import BenchmarkSpec

#: Seconds a task may wait for a node beyond its own time limit before it is cancelled.
QUEUE_GRACE_S = 120.0
#: Ray's own resource names (everything else is a custom resource).
NATIVE_RESOURCES = ("CPU", "GPU", "memory", "object_store_memory")


@dataclass(frozen=True)
class Requirements:
    """What one benchmark asks of a node, in Ray's terms."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    resources: Mapping[str, float] = field(default_factory=dict)
    accelerator_type: str | None = None

    def as_resources(self) -> dict[str, float]:
        """Every requirement as one resource dict, the way a node advertises them."""
        wanted = {"CPU": self.num_cpus, **dict(self.resources)}
        if self.num_gpus:
            wanted["GPU"] = self.num_gpus
        if self.accelerator_type:
            wanted[f"accelerator_type:{self.accelerator_type}"] = 0.001
        return {k: v for k, v in wanted.items() if v}

    def ray_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"num_cpus": self.num_cpus, "num_gpus": self.num_gpus}
        if self.resources:
            options["resources"] = dict(self.resources)
        if self.accelerator_type:
            options["accelerator_type"] = self.accelerator_type
        return options

    def describe(self) -> str:
        return ", ".join(f"{k}={v:g}" for k, v in sorted(self.as_resources().items()))


def parse_resource_selectors(items: Sequence[str]) -> list[tuple[str, str | None, str, float]]:
    """``["torch/npu:0=ascend910b", "onnxruntime=lab_b:2"]`` to (backend, device, resource, amount)."""
    parsed = []
    for item in items:
        selector, sep, resource = item.partition("=")
        name, _, amount_text = resource.partition(":")
        backend, _, device = selector.partition("/")
        try:
            amount = float(amount_text) if amount_text else 1.0
        except ValueError:
            amount = -1.0
        if not sep or not backend or not name or amount <= 0:
            raise UserError(f"--ray-resource {item!r}: expected BACKEND[/DEVICE]=RESOURCE[:AMOUNT], "
                            "e.g. torch/npu:0=ascend910b or onnxruntime=lab_b:1")
        parsed.append((backend, device or None, name, amount))
    return parsed


def requirements_for(spec: BenchmarkSpec, backend: Any | None,
                     selectors: Iterable[tuple[str, str | None, str, float]] = ()) -> Requirements:
    """The resources ``spec`` needs on a node: the backend's declaration, else CPUs, plus user resources."""
    declared: Mapping[str, Any] = {}
    placement = capability(backend, RayPlacement)
    if placement is not None:
        declared = placement.ray_requirements(spec.device) or {}
    resources = dict(declared.get("resources") or {})
    for backend_name, device, name, amount in selectors:
        if backend_name == spec.backend and device in (None, spec.device):
            resources[name] = amount
    accelerated = bool(declared.get("num_gpus") or declared.get("resources"))
    return Requirements(
        num_cpus=float(declared.get("num_cpus", 1.0 if accelerated else (spec.threads or 1))),
        num_gpus=float(declared.get("num_gpus", 0.0)),
        resources=resources,
        accelerator_type=declared.get("accelerator_type"),
    )


def unschedulable_reason(requirements: Requirements, nodes: Sequence[Mapping[str, Any]]) -> str | None:
    """Why no alive node can ever run this, or ``None`` if one can (by total resources)."""
    wanted = requirements.as_resources()
    for node in nodes:
        if node.get("Alive", True) and all(node.get("Resources", {}).get(k, 0) >= v for k, v in wanted.items()):
            return None
    offered = "; ".join(
        ", ".join(f"{k}={v:g}" for k, v in sorted(n.get("Resources", {}).items())
                  if not k.startswith("node:") and k not in ("memory", "object_store_memory"))
        for n in nodes if n.get("Alive", True)) or "no alive nodes"
    return f"unschedulable: no node offers {requirements.describe()} (nodes offer: {offered})"


# -- the Ray side ----------------------------------------------------------------------

def _import_ray():
    try:
        import ray
    except ImportError as exc:
        raise UserError("--executor ray needs Ray: pip install 'bakeoff[fleet]' "
                        f"(on the driver and on every node) ({exc})") from None
    return ray


def node_facts() -> dict[str, Any]:
    """The environment of the node a task runs on: host facts plus its Ray identity."""
    import ray

    from harness.engine.telemetry.environment import collect_host

    context = ray.get_runtime_context()
    return {**collect_host(), "ray_node_id": context.get_node_id(),
            "accelerator_ids": {k: list(v) for k, v in context.get_accelerator_ids().items() if v}}


def _probe_node(backends: Sequence[str] = ()) -> dict[str, Any]:
    """Runs on each node: which backends (all, or those named) and devices it can run, and its environment."""
    from harness.engine.plugins import Registry

    registry = Registry()
    names = [n for n in backends if n in registry.backend_entries] if backends else registry.backend_names()
    return {"node": node_facts(), "backends": [row.to_dict() for n in names for row in registry.backend_status(n)]}


def _run_benchmark(spec_data: Mapping[str, Any]) -> dict[str, Any]:
    """Runs on the chosen node: the benchmark in a fresh worker process, as locally."""
    from harness.orchestration.launchers.process import SubprocessLauncher

    spec = BenchmarkSpec.from_dict(spec_data)
    outcome = SubprocessLauncher().launch(spec)
    outcome.node = node_facts()
    return outcome.to_dict()


@dataclass
class RayExecutor:
    """Runs specs as Ray tasks and streams outcomes back in completion order."""

    address: str | None = None
    retries: int = 1
    selectors: Sequence[tuple[str, str | None, str, float]] = ()
    queue_grace_s: float = QUEUE_GRACE_S
    clock: Callable[[], float] = time.monotonic
    #: Set by connect(): the ray module, and the stdout that Ray's chatter is kept off.
    _ray: Any = field(default=None, init=False, repr=False)
    _saved_stdout: Any = field(default=None, init=False, repr=False)

    def connect(self) -> None:
        ray = _import_ray()
        if self.address is None:
            # A local instance listens on loopback only (Ray otherwise binds the host's address).
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
        # Ray's driver prints cluster events ("A worker died ...") to stdout from its own
        # threads; stdout is bakeoff's (--json), so they go to stderr until shutdown().
        self._saved_stdout, sys.stdout = sys.stdout, sys.stderr
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False,
                         logging_level="ERROR", configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise UserError(f"--ray-address {self.address!r}: cannot connect to a Ray cluster ({exc})") from None
        self._ray = ray

    def nodes(self) -> list[dict[str, Any]]:
        return [n for n in self._ray.nodes() if n.get("Alive")]

    def probe(self, backends: Sequence[str] = ()) -> list[dict[str, Any]]:
        """Each alive node's backend listing (all backends, or those named), probed on the node itself."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = self._ray.remote(_probe_node)
        refs = [remote.options(num_cpus=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            node["NodeID"], soft=False)).remote(list(backends)) for node in self.nodes()]
        return self._ray.get(refs)

    #: As a launcher (harness.orchestration.launchers.BatchLauncher): the sweep loop of
    #: harness/orchestration/sweep.py drives it.
    name = "ray"

    def launch_all(self, specs: Sequence[BenchmarkSpec], on_outcome: Callable[[BenchmarkSpec, Outcome], None],
                   *, keep_alive: Sequence[int] = ()) -> None:
        """Every spec as a Ray task; ``on_outcome`` as each returns. (``keep_alive`` descriptors
        cannot cross to another node; Ray ends a dead driver's tasks, and ours follow.)"""
        from harness.engine.plugins import Registry

        self.run(specs, Registry(), on_outcome)

    def run(self, specs: Sequence[BenchmarkSpec], registry: Any,
            on_outcome: Callable[[BenchmarkSpec, Outcome], None]) -> None:
        """Submit every schedulable spec; call ``on_outcome`` as each finishes (driver-side)."""
        ray = self._ray
        remote = ray.remote(_run_benchmark)
        nodes = self.nodes()
        pending: dict[Any, tuple[BenchmarkSpec, float]] = {}
        for spec in specs:
            try:
                backend = registry.backend(spec.backend)
            except Exception:  # noqa: BLE001 - the node may have a plugin the driver lacks
                backend = None
            requirements = requirements_for(spec, backend, self.selectors)
            reason = unschedulable_reason(requirements, nodes)
            if reason is not None:
                on_outcome(spec, Outcome(status=UNAVAILABLE, reason=reason,
                                         details={"ray_requirements": requirements.as_resources()}))
                continue
            ref = remote.options(max_retries=self.retries, retry_exceptions=False,
                                 **requirements.ray_options()).remote(spec.to_dict())
            pending[ref] = (spec, self.clock() + spec.timeout_s + self.queue_grace_s)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                spec, _ = pending.pop(ref)
                on_outcome(spec, self._collect(ref, spec))
            now = self.clock()
            for ref, (spec, deadline) in list(pending.items()):
                if now > deadline:
                    ray.cancel(ref, force=True)
                    pending.pop(ref)
                    on_outcome(spec, Outcome.failed(
                        "timeout", f"not finished within {spec.timeout_s + self.queue_grace_s:g} s on the "
                                   "cluster (queued behind other tasks, or the node stopped answering)"))

    def _collect(self, ref: Any, spec: BenchmarkSpec) -> Outcome:
        ray = self._ray
        try:
            return Outcome.from_dict(ray.get(ref))
        except ray.exceptions.RayError as exc:
            kind = type(exc).__name__
            lost = isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                                    ray.exceptions.ObjectLostError))
            message = " ".join(str(exc).split())[:600]
            return Outcome.failed("lost" if lost else "error",
                                  f"Ray task failed after {self.retries} retries ({kind}): {message}")

    def shutdown(self) -> None:
        if self._ray is not None and self._ray.is_initialized():
            self._ray.shutdown()
        if self._saved_stdout is not None:
            sys.stdout, self._saved_stdout = self._saved_stdout, None


def cluster_rows(probes: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """Per backend, the union of the nodes' device rows: available where any node can run it."""
    from harness.engine.plugins import BackendStatus

    rows: dict[tuple[str, str | None], Any] = {}
    for probe in probes:
        for data in probe["backends"]:
            status = BackendStatus.from_dict(data)
            key = (status.backend, status.device)
            if key not in rows or (status.available and not rows[key].available):
                rows[key] = status
    per_backend: dict[str, list[Any]] = {}
    for (backend, _), status in rows.items():
        per_backend.setdefault(backend, []).append(status)
    return per_backend
