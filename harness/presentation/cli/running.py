"""``bakeoff run``: parse the sweep (flags, a config, or both) and show its progress; the sweep
itself is harness/orchestration/sweep.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from harness.contract.errors import UserError
from harness.contract.limits import MAX_CONCURRENCY, MAX_QUERIES, MAX_STEPS, MAX_THREADS
from harness.contract.precisions import canonical_dtype

from harness.presentation.cli.base import _console, _echo_json, cli

# -- run -----------------------------------------------------------------------

class _ProgressObserver:
    """Draws a rich progress bar on stderr and prints one line per finished benchmark."""

    def __init__(self, total: int, quiet: bool) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_console(stderr=True),
            transient=True,
            disable=quiet,
        )
        self.task = self.progress.add_task("starting", total=total)

    def __enter__(self):
        self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self.progress.__exit__(*exc)

    def started(self, index, total, spec) -> None:
        from harness.contract.options import backend_label

        self.progress.update(self.task, description=f"{backend_label(spec.to_dict())}/{spec.device} "
                                                    f"{spec.workload} {spec.dtype} b{spec.batch_size}")

    def finished(self, index, total, spec, record) -> None:
        from rich.markup import escape

        from harness.presentation.tables import record_cells

        self.progress.advance(self.task)
        if self.quiet:
            return
        cells = record_cells(record)
        status = cells["status"]
        mark = {"ok": "[green]✓[/]", "failed": "[red]✗[/]"}.get(status, "[yellow]-[/]")
        detail = cells["median"] if status == "ok" else f"{status}: {cells['notes']}"
        self.progress.console.print(
            f"{mark} {escape(cells['backend'])}/{spec.device} {cells['workload']} {escape(cells['params'])} "
            f"{spec.dtype} b{spec.batch_size}: {detail}",
            highlight=False,
            markup=True,
        )


def _sweep_request(ctx: click.Context, config: Path | None, options: dict[str, Any]):
    """The request from ``--config`` (if any) with explicitly given CLI options on top."""
    from dataclasses import replace

    from harness.contract.units import parse_bytes
    from harness.orchestration.sweep import SweepRequest, parse_param_assignments

    if config is not None:
        from harness.orchestration.config import load_config

        request = load_config(config)
    else:
        request = SweepRequest()

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) not in (None, click.core.ParameterSource.DEFAULT)

    changes: dict[str, Any] = {}
    for option, field in (("backend_names", "backends"), ("device_names", "devices"),
                          ("workload_names", "workloads"), ("dtypes", "dtypes"),
                          ("batch_sizes", "batch_sizes"), ("scenarios", "scenarios")):
        if options[option]:
            changes[field] = tuple(options[option])
    if "dtypes" in changes:
        changes["dtypes"] = tuple(canonical_dtype(name) for name in changes["dtypes"])
    extra_params = list(parse_param_assignments(options["param_items"]))
    if options["preset"]:
        extra_params.append(("preset", options["preset"]))
    workloads = list(changes.get("workloads", request.workloads))
    if options["model"] or options["model_factory"]:
        if not options["model_inputs"]:
            raise UserError("--model and --model-factory need --input NAME:SHAPE:DTYPE for each model input")
        inputs = ";".join(options["model_inputs"])
        if options["model"]:
            workloads.append("onnx-model")
            extra_params += [("onnx-model.path", str(options["model"])), ("onnx-model.inputs", inputs)]
        if options["model_factory"]:
            workloads.append("torch-model")
            extra_params += [("torch-model.factory", options["model_factory"]), ("torch-model.inputs", inputs)]
        changes["workloads"] = tuple(workloads)
    elif options["model_inputs"]:
        raise UserError("--input describes the inputs of --model or --model-factory; give one of them")
    if extra_params:
        # Given on the command line, a parameter replaces the config's value for the same key.
        overridden = {key for key, _ in extra_params}
        changes["params"] = tuple((k, v) for k, v in request.params if k not in overridden) + tuple(extra_params)
    if options["backend_option_items"]:
        from harness.contract.options import parse_assignments

        merged = {k: dict(v) for k, v in request.backend_options.items()}
        for backend, table in parse_assignments(options["backend_option_items"]).items():
            merged.setdefault(backend, {}).update(table)
        changes["backend_options"] = merged
    if options["scenario_option_items"]:
        from harness.contract.options import parse_assignments

        merged = {k: dict(v) for k, v in request.scenario_options.items()}
        for scenario, table in parse_assignments(options["scenario_option_items"], "--scenario-option",
                                                 "SCENARIO.KEY=VALUE (e.g. burst.size=8)").items():
            merged.setdefault(scenario, {}).update(table)
        changes["scenario_options"] = merged
    for option in ("threads", "timeout_s", "sweep"):
        if given(option):
            changes[option] = options[option]
    if given("memory_limit"):
        try:
            changes["memory_limit_bytes"] = parse_bytes(options["memory_limit"])
        except ValueError as exc:
            raise UserError(f"--memory-limit: {exc}") from None

    stopping = request.stopping
    for option, field in (("warmup", "warmup"), ("min_iterations", "min_iterations"),
                          ("min_duration", "min_duration_s"), ("max_duration", "max_duration_s"),
                          ("target_ci", "target_ci")):
        if given(option):
            stopping = replace(stopping, **{field: options[option]})
    if given("iterations"):
        explicit_duration = stopping.min_duration_s if given("min_duration") else None
        stopping = stopping.with_fixed_iterations(options["iterations"])
        if explicit_duration is not None:
            stopping = replace(stopping, min_duration_s=explicit_duration)
    changes["stopping"] = stopping

    server = request.server
    if given("qps"):
        server = replace(server, target_qps=options["qps"][0])
    if given("latency_slo_ms"):
        server = replace(server, latency_slo_s=options["latency_slo_ms"] / 1e3)
    if given("find_max_qps"):
        server = replace(server, find_max_qps=options["find_max_qps"])
    if given("concurrency"):
        server = replace(server, concurrency=options["concurrency"][0])
    if given("find_max_concurrency"):
        server = replace(server, find_max_concurrency=options["find_max_concurrency"])
    if given("min_queries"):
        server = replace(server, min_queries=options["min_queries"])
    for option in ("arrival", "burstiness", "ramp_up_s", "arrival_trace", "wake_up"):
        if given(option):
            server = replace(server, **{option: options[option]})
    if given("min_duration"):  # one minimum duration, as LoadGen has: sampling's and the load's
        server = replace(server, min_duration_s=options["min_duration"])
    if given("ttft_bound_ms"):
        server = replace(server, ttft_bound_s=options["ttft_bound_ms"] / 1e3)
    if given("tpot_bound_ms"):
        server = replace(server, tpot_bound_s=options["tpot_bound_ms"] / 1e3)
    changes["server"] = server
    changes["explicit"] = (request.explicit | {name for flag, name in _EXPLICIT_FLAGS.items() if given(flag)}
                           | ({"stopping.min_duration_s", "server.min_duration_s"} if given("min_duration") else set()))
    # Repeated --qps or --concurrency: one benchmark per point (their product where both repeat).
    # Single flags set every point a config file listed, as they set its one server setting.
    qps = options["qps"] if given("qps") else (server.target_qps,)
    concurrency = options["concurrency"] if given("concurrency") else (server.concurrency,)
    if len(qps) > 1 or len(concurrency) > 1:
        changes["server_points"] = tuple(replace(server, target_qps=q, concurrency=c) for q in qps for c in concurrency)
    elif request.server_points:
        flagged = {name: getattr(server, name) for name, flag in _FLAG_FIELDS.items() if given(flag)}
        changes["server_points"] = tuple(replace(point, **flagged) for point in request.server_points)
    return replace(request, **changes)


#: ServerSettings fields and the flags that set them, for carrying flags onto a config's points.
_FLAG_FIELDS = {"target_qps": "qps", "concurrency": "concurrency", "latency_slo_s": "latency_slo_ms",
                "min_queries": "min_queries", "min_duration_s": "min_duration", "ttft_bound_s": "ttft_bound_ms",
                "tpot_bound_s": "tpot_bound_ms", "arrival": "arrival", "burstiness": "burstiness",
                "ramp_up_s": "ramp_up_s", "arrival_trace": "arrival_trace",
                "wake_up": "wake_up"}


def _reference_costs(records) -> dict:
    """Cost per 1M units of every record the built-in catalog prices (cloud list or reference
    prices), for the run's table; labelled as a reference where it is one."""
    from harness.hardware.catalog import load_catalog
    from harness.procurement.rank import rank

    ranking = rank(records, load_catalog())
    costs = {}
    for candidate in [*ranking.ranked, *ranking.alternatives]:
        cost = candidate["cost"]
        reference = (cost["inputs"].get("price") or {}).get("reference")
        costs[(candidate["run_id"], candidate["record_key"])] = (
            f"${cost['value']:.3g}/{cost['per'].replace('1M tokens', 'Mtok')}" + (" (ref.)" if reference else ""))
    return costs


#: Flags and the settings they set: a given flag is the user's, whatever a backend's load defaults say.
_EXPLICIT_FLAGS = {"warmup": "stopping.warmup", "iterations": "stopping.iterations",
                   "min_iterations": "stopping.min_iterations",
                   "max_duration": "stopping.max_duration_s", "target_ci": "stopping.target_ci",
                   "latency_slo_ms": "server.latency_slo_s", "min_queries": "server.min_queries",
                   "ttft_bound_ms": "server.ttft_bound_s", "tpot_bound_ms": "server.tpot_bound_s"}

SWEEP_OPTIONS = ("backend_names", "workload_names", "device_names", "param_items", "backend_option_items",
                 "scenario_option_items",
                 "preset", "model",
                 "model_factory", "model_inputs", "dtypes", "batch_sizes",
                 "scenarios", "warmup", "iterations", "min_iterations", "min_duration", "max_duration",
                 "target_ci", "qps", "arrival", "arrival_trace", "burstiness", "ramp_up_s", "wake_up", "latency_slo_ms", "find_max_qps",
                 "concurrency", "sweep", "find_max_concurrency", "min_queries", "ttft_bound_ms", "tpot_bound_ms", "threads",
                 "timeout_s", "memory_limit", "config")


@cli.command()
@click.option("-b", "--backend", "backend_names", multiple=True, metavar="NAME",
              help="Backend to run (repeatable). Default: every available backend.")
@click.option("-w", "--workload", "workload_names", multiple=True, metavar="NAME",
              help="Workload to run (repeatable). Default: every workload.")
@click.option("-d", "--device", "device_names", multiple=True, metavar="DEVICE",
              help="Only these devices (repeatable), e.g. cpu, cuda:0, CPUExecutionProvider.")
@click.option("-p", "--param", "param_items", multiple=True, metavar="KEY=VALUE",
              help="Workload parameter (repeatable); WORKLOAD.KEY=VALUE targets one workload.")
@click.option("-O", "--backend-option", "backend_option_items", multiple=True, metavar="BACKEND.KEY=VALUE",
              help="Backend option (repeatable; a key given twice sweeps both values), e.g. "
                   "torch.graph=compile, onnxruntime.provider_options.device_id=0. See `bakeoff backends --options`.")
@click.option("--preset", default=None, metavar="NAME",
              help="Model preset, e.g. qwen2.5-0.5b (same as -p preset=NAME).")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Benchmark your own ONNX file on the ONNX-capable backends (needs --input).")
@click.option("--model-factory", default=None, metavar="MODULE:FUNCTION",
              help="Benchmark the torch module FUNCTION() returns, on every backend (needs --input).")
@click.option("--input", "model_inputs", multiple=True, metavar="NAME:SHAPE:DTYPE",
              help="An input of --model/--model-factory, e.g. input_ids:1x128:int64 (repeatable).")
@click.option("--dtype", "dtypes", multiple=True, metavar="DTYPE",
              help="float32 (default), float16, bfloat16, int8; weight-only int4, fp8 and llama.cpp's "
                   "q8_0, q4_0, q4_k_m, each on the backends that run it (repeatable; `bakeoff dtypes`).")
@click.option("--batch-size", "batch_sizes", multiple=True, type=int, metavar="N",
              help="Batch size (repeatable). Default: 1; offline: 1, 8, 32.")
@click.option("-s", "--scenario", "scenarios", multiple=True, metavar="NAME",
              help="Scenario (repeatable): MLPerf's single-stream, offline, server; concurrent (N clients in a "
                   "closed loop, for endpoints); or a plugin's (`bakeoff scenarios` lists them). "
                   "Default: single-stream.")
@click.option("--scenario-option", "scenario_option_items", multiple=True, metavar="SCENARIO.KEY=VALUE",
              help="A scenario's own setting (repeatable), e.g. burst.size=8. See `bakeoff scenarios`.")
@click.option("--config", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Sweep config (TOML); options given here override it. See docs/sweep.example.toml.")
@click.option("--warmup", type=click.IntRange(0, MAX_STEPS), default=5, metavar="N", help="Untimed warm-up steps. Default: 5.")
@click.option("--iterations", type=click.IntRange(1, MAX_STEPS), default=None, metavar="N",
              help="Fixed number of timed steps (turns adaptive stopping off).")
@click.option("--target-ci", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.02,
              metavar="FRACTION", help="Adaptive stopping: median's 95%-CI half-width target. Default: 0.02.")
@click.option("--min-iterations", type=click.IntRange(1, MAX_STEPS), default=10, metavar="N", help="Default: 10.")
@click.option("--min-duration", type=click.FloatRange(min=0), default=1.0, metavar="SECONDS",
              help="Least time to sample, and to offer load in the server and concurrent scenarios. "
                   "Default: 1 (load: 5; 10 for endpoints).")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), default=10.0, metavar="SECONDS",
              help="Stop sampling here even if the CI target is not reached. Default: 10 (60 for endpoints).")
@click.option("--qps", type=click.FloatRange(min=0, min_open=True), multiple=True, metavar="QPS",
              help="Server scenario: target queries per second (Poisson arrivals). Repeat it for one "
                   "benchmark per rate.")
@click.option("--arrival", type=click.Choice(["poisson", "gamma", "constant", "trace"]), default="poisson",
              help="Server scenario: the arrival process; trace replays --arrival-trace. Default: poisson.")
@click.option("--arrival-trace", "arrival_trace", type=click.Path(dir_okay=False), default=None, metavar="FILE",
              help="Server scenario, --arrival trace: a CSV or JSONL file whose arrival_s gives each request's "
                   "arrival (seconds from the start).")
@click.option("--burstiness", type=click.FloatRange(min=0, min_open=True), default=1.0, metavar="SHAPE",
              help="Server scenario, --arrival gamma: the gamma shape; below 1 burstier, 1 is Poisson "
                   "(vllm bench serve's --burstiness). Default: 1.")
@click.option("--ramp-up", "ramp_up_s", type=click.FloatRange(min=0), default=0.0, metavar="SECONDS",
              help="Server scenario: raise the rate linearly from zero to --qps over this long, then hold it.")
@click.option("--wake-up", "wake_up", type=click.Choice(["spin", "sleep"]), default="spin",
              help="Server scenario: spin to each arrival (the harness starts queries µs late) or only sleep "
                   "(late by the OS's wake-up, as MLPerf LoadGen is). Default: spin.")
@click.option("--latency-slo-ms", type=click.FloatRange(min=0, min_open=True), default=100.0, metavar="MS",
              help="Server and concurrent scenarios: p99 latency bound. Default: 100 (60000 for endpoints).")
@click.option("--find-max-qps", is_flag=True, help="Server scenario: search the highest QPS that meets the SLO.")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), multiple=True, metavar="N",
              help="Concurrent scenario: clients in the closed loop. Default: 4. Repeat it (1, 2, 4, ...) for "
                   "one benchmark per point, from one user to saturation.")
@click.option("--sweep", "sweep", type=click.Choice(["auto"]), default=None,
              help="Concurrent scenario: from one client, double the clients after each point until throughput "
                   "rises less than 10% or a point misses its SLO; one record per point (the frontier's points).")
@click.option("--find-max-concurrency", is_flag=True,
              help="Concurrent scenario: double the clients from 1 until the SLO fails; report the highest valid.")
@click.option("--min-queries", type=click.IntRange(1, MAX_QUERIES), default=1000, metavar="N",
              help="Server and concurrent scenarios: minimum query count. Default: 1000 (50 for endpoints).")
@click.option("--ttft-bound-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Server and concurrent scenarios, LLM workloads: p99 time-to-first-token bound. Default: none "
                   "(2000 for endpoints).")
@click.option("--tpot-bound-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Server and concurrent scenarios, LLM workloads: p99 time-per-output-token bound. Default: none "
                   "(100 for endpoints).")
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None, metavar="N",
              help="Threads per benchmark. Default: every usable core.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=0, min_open=True), default=600.0,
              metavar="SECONDS", help="Time limit per benchmark; a worker past it is killed. Default: 600.")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="Memory limit per worker, e.g. 8GiB; a worker above it is killed (out-of-memory).")
@click.option("--launcher", type=click.Choice(["subprocess", "inline"]), default="subprocess",
              show_default=True, help="subprocess isolates each benchmark; inline is for debugging.")
@click.option("--resume", "resume_ref", default=None, metavar="RUN",
              help="Finish an interrupted run: run only its missing benchmarks.")
@click.option("--executor", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: one benchmark at a time on this machine. ray: each benchmark as a Ray task on a "
                   "cluster node that offers its device (pip install 'bakeoff[fleet]'; docs/fleet.md).")
@click.option("--ray-address", default=None, metavar="ADDRESS",
              help="Ray cluster to join (e.g. 10.0.0.1:6379, or 'auto'). Default: start a local Ray instance.")
@click.option("--ray-retries", type=click.IntRange(min=0), default=1, show_default=True,
              help="Times a benchmark is retried when its Ray worker or node dies.")
@click.option("--ray-resource", "ray_resources", multiple=True, metavar="BACKEND[/DEVICE]=RESOURCE[:N]",
              help="A custom node resource the matching benchmarks need (repeatable), e.g. "
                   "torch/npu:0=ascend910b for nodes started with --resources '{\"ascend910b\": 1}'.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Folder that receives the run folder (and where --resume looks).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's records as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar or per-benchmark lines.")
@click.pass_context
def run(ctx: click.Context, launcher: str, resume_ref: str | None, out: Path, as_json: bool, quiet: bool,
        executor: str, ray_address: str | None, ray_retries: int, ray_resources: tuple[str, ...],
        **options: Any) -> None:
    """Run a bake-off: every backend x workload x scenario x dtype x batch size.

    Each benchmark runs in a fresh worker process and samples until the 95%
    confidence interval of its median latency is within --target-ci (or
    --max-duration passes). Its record is written to OUT/<run-id>/records/
    as soon as it finishes. A crash, signal, timeout or out-of-memory becomes
    a failed record with its cause, and the sweep goes on. Ctrl-C stops
    cleanly; --resume finishes the run later.

    Serving endpoints (openai-http, or any backend declaring load defaults)
    get defaults that fit LLM requests wherever a flag or config key does not
    say otherwise: p99 TTFT 2 s and TPOT 100 ms (MLPerf's llama3.1-8b Server
    bounds), a 60 s p99 latency bound, at least 50 queries over 10 s, and at
    most 60 s per benchmark. Records carry the settings each benchmark ran.

    \b
    Examples:
      bakeoff run                                       # default bake-off
      bakeoff run -b torch -b onnxruntime -b openvino -w gemm
      bakeoff run -w mlp --dtype float32 --dtype bfloat16 -s offline
      bakeoff run -b onnxruntime -w mlp -s server --find-max-qps --latency-slo-ms 5
      bakeoff run -w llm --preset qwen2.5-0.5b -b torch --dtype bfloat16
      bakeoff run --model my.onnx --input input_ids:1x128:int64 --input attention_mask:1x128:int64
      bakeoff run -b openai-http -O openai-http.url=http://10.0.0.5:8000 -w llm -s concurrent --concurrency 1 --concurrency 8
      bakeoff run --config docs/sweep.example.toml
      bakeoff run --resume 20261130-101500-ab12
      bakeoff run --executor ray --ray-address head:6379 -w llm --ray-resource torch/npu:0=ascend910b
    """
    from harness.orchestration import session as orchestration
    from harness.results.store import resolve_run

    err = _console(stderr=True)
    fleet = {"executor": executor, "ray_address": ray_address, "ray_retries": ray_retries,
             "ray_resources": list(ray_resources)}
    if resume_ref is not None:
        given = [param.opts[-1] for param in ctx.command.params if param.name in SWEEP_OPTIONS
                 and ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            raise UserError(f"--resume reruns the run's stored plan; drop {given[0]}")
        typed_again = {key: value for key, value in fleet.items()
                       if ctx.get_parameter_source(key) not in (None, click.core.ParameterSource.DEFAULT)}
        session = orchestration.resume(resolve_run(resume_ref, out), fleet_overrides=typed_again)
        if not quiet:
            err.print(f"resuming run [bold]{session.store.run_id}[/]: {len(session.specs)} of "
                      f"{session.planned} benchmarks missing", highlight=False)
    else:
        request = _sweep_request(ctx, options["config"], options)
        session = orchestration.start(request, out=out, launcher=launcher, config=options["config"],
                                      fleet=orchestration.FleetSettings(**{**fleet, "ray_resources": ray_resources}))
        for note in session.notes:
            err.print(f"[yellow]note:[/] {note}", highlight=False)
        if not quiet:
            err.print(f"run [bold]{session.store.run_id}[/]: {len(session.specs)} benchmarks -> "
                      f"{session.store.path}", highlight=False)
    store = session.store
    with _ProgressObserver(len(session.specs), quiet or as_json) as observer:
        try:
            session.run(observer)
        except KeyboardInterrupt:
            click.echo(f"bakeoff: interrupted; finished records are saved. Resume with: "
                       f"bakeoff run --resume {store.run_id} --out {out}", err=True)
            raise click.exceptions.Exit(130) from None
    from harness.results.store import read_records

    records = read_records(store.path)
    if as_json:
        _echo_json({"run_id": store.run_id, "run_dir": str(store.path), "records": records})
        return
    from harness.presentation.tables import results_table

    _console().print(results_table(records, title=f"Run {store.run_id}", costs=_reference_costs(records)))
    click.echo(f"records: {store.path}  (harness.results.load('{store.path}') gives a DataFrame)")
