"""The ``bakeoff`` command line.

User errors (unknown backend or workload, bad dtype, missing run, corrupt
results file) print one line and exit with code 2, never a traceback. Tables
and progress go to the terminal through rich; ``--json`` prints plain JSON on
stdout for scripts, with progress kept on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from harness.errors import UserError
from harness.limits import MAX_CONCURRENCY, MAX_QUERIES, MAX_STEPS, MAX_THREADS

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _console(stderr: bool = False):
    """A rich console; when output is not a terminal, tables get 160 columns, not 80."""
    import os

    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    width = None if stream.isatty() or os.environ.get("COLUMNS") else 240
    return Console(stderr=stderr, soft_wrap=stderr, width=width)


def _writable_target(path: Path | None) -> None:
    """An output file's folder must exist: one clear line instead of a traceback later."""
    if path is not None and not path.parent.exists():
        raise UserError(f"{path}: folder {path.parent} does not exist")


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


class BakeoffGroup(click.Group):
    """A click group whose errors are one line and exit 2 (usage) without a traceback."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            # Without standalone mode click *returns* the code of a ctx.exit()/Exit.
            returned = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            click.echo("bakeoff: interrupted", err=True)
            sys.exit(130)
        except click.ClickException as exc:
            click.echo(f"bakeoff: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(2 if isinstance(exc, click.UsageError) else exc.exit_code)
        except UserError as exc:
            click.echo(f"bakeoff: error: {_one_line(str(exc))}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("bakeoff: interrupted; finished records are saved", err=True)
            sys.exit(130)
        sys.exit(returned if isinstance(returned, int) else 0)


def _one_line(message: str) -> str:
    return " ".join(message.split())


@click.group(cls=BakeoffGroup, context_settings=CONTEXT_SETTINGS, invoke_without_command=True)
@click.version_option(package_name="bakeoff", prog_name="bakeoff")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """bakeoff: benchmark inference hardware on your workloads.

    Throughput, latency and their confidence intervals for each backend
    (PyTorch, ONNX Runtime, OpenVINO, ...) on each device, written to
    results/<run-id>/ for pandas.

    \b
    Examples:
      bakeoff backends                      # what can run here
      bakeoff run                           # default bake-off, every available backend
      bakeoff run -b torch -b onnxruntime -w gemm -p size=2048
      bakeoff show latest
    """
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())
        ctx.exit(0)


# -- backends ----------------------------------------------------------------

@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--catalog", "catalog_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Your catalog file(s) layered over the built-in one.")
@click.option("--options", "show_options", is_flag=True,
              help="List each backend's options (for -O BACKEND.KEY=VALUE and [backend.NAME] in configs).")
def backends(as_json: bool, catalog_paths: tuple[Path, ...], show_options: bool) -> None:
    """List backends and their devices, with availability and versions.

    A backend that cannot run here (missing runtime, no device, broken plugin)
    is listed as unavailable with the reason.

    \b
    Example:
      bakeoff backends --json | jq '.[] | select(.available)'
    """
    from harness.plugins import Registry

    from harness.catalog import load_catalog

    if show_options:
        _print_backend_options(Registry(), as_json)
        return
    catalog = load_catalog(catalog_paths)
    rows = Registry().all_backend_status()
    matches = {id(row): catalog.match(row.info.model if row.info else None) for row in rows}
    if as_json:
        _echo_json([{**row.to_dict(), "catalog": (matches[id(row)] or {}).get("id")} for row in rows])
        return
    from harness.tables import backends_table

    _console().print(backends_table(rows, {id(r): (m or {}).get("id") for r, m in
                                           ((row, matches[id(row)]) for row in rows)}))


def _print_backend_options(registry, as_json: bool) -> None:
    from harness.capabilities import DeclaresOptions, capability

    rows = []
    for name in registry.backend_names():
        try:
            declares = capability(registry.backend(name), DeclaresOptions)
        except RuntimeError:
            continue  # a broken plugin declares nothing; `bakeoff backends` shows why
        rows.extend({"backend": name, "option": key, **option.to_dict(), "allowed": option.describe()}
                    for key, option in (declares.OPTIONS if declares is not None else {}).items())
    if as_json:
        _echo_json(rows)
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="Backend options (-O BACKEND.KEY=VALUE; part of each record's identity)")
    for column in ("backend", "option", "allowed", "meaning"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(row["backend"], row["option"], Text(row["allowed"]), Text(row["help"]))
    _console().print(table)


# -- new-backend -------------------------------------------------------------

@cli.command("new-backend")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder to create the package in.")
def new_backend(name: str, parent: Path) -> None:
    """Generate a pip-installable backend plugin package, bakeoff-NAME.

    It is a working CPU example (PyTorch eager) that installs, appears in
    `bakeoff backends`, and passes bakeoff's conformance suite unchanged.
    Replace the parts marked ACCELERATOR with your runtime's calls; the guide
    is docs/writing-a-backend.md.

    \b
    Example:
      bakeoff new-backend acme --dir plugins
      pip install -e plugins/bakeoff-acme
      bakeoff run -b acme -w gemm
      pytest plugins/bakeoff-acme/tests
    """
    from harness.plugins import Registry
    from harness.scaffold import new_backend as scaffold

    target = scaffold(name, parent, Registry().backend_names())
    click.echo(f"created {target}")
    click.echo(f"next: pip install -e {target}  &&  bakeoff run -b {name} -w gemm  &&  pytest {target / 'tests'}")


# -- serve -------------------------------------------------------------------

@cli.command("serve")
@click.option("-b", "--backend", "backend_name", required=True, metavar="NAME", help="The backend that runs the model.")
@click.option("-d", "--device", default=None, metavar="DEVICE", help="Default: the backend's first available device.")
@click.option("-w", "--workload", type=click.Choice(["llm"]), default="llm", show_default=True)
@click.option("--preset", default="tiny", show_default=True, metavar="NAME", help="The llm preset (model shape).")
@click.option("--dtype", type=click.Choice(["float32", "float16", "bfloat16", "int8"]), default="float32",
              show_default=True)
@click.option("--threads", type=click.IntRange(1, MAX_THREADS), default=None)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="0: any free port.")
def serve_command(backend_name: str, device: str | None, workload: str, preset: str, dtype: str,
                  threads: int | None, host: str, port: int) -> None:
    """Serve the llm workload through a backend as an OpenAI-compatible streaming server.

    /v1/completions and /v1/chat/completions (SSE streaming, usage), /v1/models.
    No continuous batching: requests run one at a time. Benchmark it, or any
    vLLM / vllm-ascend / SGLang server, with the openai-http backend
    (docs/serving.md).

    \b
    Example:
      bakeoff serve -b onnxruntime --preset 100m --port 8000 &
      bakeoff run -b openai-http -O openai-http.url=http://127.0.0.1:8000 -w llm --preset 100m
    """
    import importlib.util

    if importlib.util.find_spec("aiohttp") is None:
        raise UserError("bakeoff serve needs aiohttp: pip install 'bakeoff[serve]'")
    from harness.serve import ServedModel, serve

    model = ServedModel(backend_name, device, preset, dtype, threads)

    def ready(url: str) -> None:
        click.echo(f"listening on {url}", err=False)
        sys.stdout.flush()
        click.echo(f"serving {model.name} ({model.identity['backend']}/{model.identity['device']}, {dtype}); "
                   f"prepared in {model.prepare_s:.1f} s; Ctrl-C stops", err=True)

    serve(model, host, port, on_ready=ready)


# -- workloads ---------------------------------------------------------------

def _workload_listing() -> list[dict[str, Any]]:
    from harness.plugins import Registry

    registry = Registry()
    listing = []
    for name in registry.workload_names():
        try:
            cls = registry.workload_class(name)
        except RuntimeError as exc:
            listing.append({"name": name, "error": str(exc)})
            continue
        listing.append(
            {
                "name": name,
                "unit": cls.unit,
                "description": cls.description,
                "params": [
                    {"name": p.name, "type": p.type.__name__, "default": p.default, "help": p.help,
                     "minimum": p.minimum, "maximum": p.maximum}
                    for p in cls.params
                ],
            }
        )
    return listing


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def workloads(as_json: bool) -> None:
    """List workloads, their unit of work and parameters.

    \b
    Example:
      bakeoff workloads
      bakeoff run -w mlp -p hidden=1024
    """
    listing = _workload_listing()
    if as_json:
        _echo_json(listing)
        return
    from harness.tables import workloads_table

    _console().print(workloads_table(listing))


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def scenarios(as_json: bool) -> None:
    """List load scenarios (built-in and plugins) and their settings.

    \b
    Example:
      bakeoff scenarios
      bakeoff run -s server --qps 50
      bakeoff run -s burst --scenario-option burst.size=8   (a plugin's scenario)
    """
    from harness.plugins import Registry

    listing = Registry().scenario_listing()
    if as_json:
        _echo_json(listing)
        return
    from harness.tables import scenarios_table

    _console().print(scenarios_table(listing))


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
        from harness.options import backend_label

        self.progress.update(self.task, description=f"{backend_label(spec.to_dict())}/{spec.device} "
                                                    f"{spec.workload} {spec.dtype} b{spec.batch_size}")

    def finished(self, index, total, spec, record) -> None:
        from rich.markup import escape

        from harness.tables import record_cells

        self.progress.advance(self.task)
        if self.quiet:
            return
        cells = record_cells(record)
        mark = {"ok": "[green]✓[/]", "failed": "[red]✗[/]"}.get(record["status"], "[yellow]-[/]")
        detail = cells["median"] if record["status"] == "ok" else f"{record['status']}: {cells['notes']}"
        self.progress.console.print(
            f"{mark} {escape(cells['backend'])}/{spec.device} {cells['workload']} {escape(cells['params'])} "
            f"{spec.dtype} b{spec.batch_size}: {detail}",
            highlight=False,
            markup=True,
        )


def _sweep_request(ctx: click.Context, config: Path | None, options: dict[str, Any]):
    """The request from ``--config`` (if any) with explicitly given CLI options on top."""
    from dataclasses import replace

    from harness.sweep import SweepRequest, parse_param_assignments
    from harness.units import parse_bytes

    if config is not None:
        from harness.config import load_config

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
        from harness.options import parse_assignments

        merged = {k: dict(v) for k, v in request.backend_options.items()}
        for backend, table in parse_assignments(options["backend_option_items"]).items():
            merged.setdefault(backend, {}).update(table)
        changes["backend_options"] = merged
    if options["scenario_option_items"]:
        from harness.options import parse_assignments

        merged = {k: dict(v) for k, v in request.scenario_options.items()}
        for scenario, table in parse_assignments(options["scenario_option_items"], "--scenario-option",
                                                 "SCENARIO.KEY=VALUE (e.g. burst.size=8)").items():
            merged.setdefault(scenario, {}).update(table)
        changes["scenario_options"] = merged
    for option in ("threads", "timeout_s"):
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
        server = replace(server, target_qps=options["qps"])
    if given("latency_slo_ms"):
        server = replace(server, latency_slo_s=options["latency_slo_ms"] / 1e3)
    if given("find_max_qps"):
        server = replace(server, find_max_qps=options["find_max_qps"])
    if given("concurrency"):
        server = replace(server, concurrency=options["concurrency"])
    if given("find_max_concurrency"):
        server = replace(server, find_max_concurrency=options["find_max_concurrency"])
    if given("min_queries"):
        server = replace(server, min_queries=options["min_queries"])
    if given("ttft_bound_ms"):
        server = replace(server, ttft_bound_s=options["ttft_bound_ms"] / 1e3)
    if given("tpot_bound_ms"):
        server = replace(server, tpot_bound_s=options["tpot_bound_ms"] / 1e3)
    changes["server"] = server
    return replace(request, **changes)


SWEEP_OPTIONS = ("backend_names", "workload_names", "device_names", "param_items", "backend_option_items",
                 "scenario_option_items",
                 "preset", "model",
                 "model_factory", "model_inputs", "dtypes", "batch_sizes",
                 "scenarios", "warmup", "iterations", "min_iterations", "min_duration", "max_duration",
                 "target_ci", "qps", "latency_slo_ms", "find_max_qps", "concurrency", "find_max_concurrency", "min_queries", "ttft_bound_ms",
                 "tpot_bound_ms", "threads",
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
              help="float32 (default), float16, bfloat16 or int8 (repeatable).")
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
@click.option("--min-duration", type=click.FloatRange(min=0), default=1.0, metavar="SECONDS", help="Default: 1.")
@click.option("--max-duration", type=click.FloatRange(min=0, min_open=True), default=10.0, metavar="SECONDS",
              help="Stop sampling here even if the CI target is not reached. Default: 10.")
@click.option("--qps", type=click.FloatRange(min=0, min_open=True), default=None, metavar="QPS",
              help="Server scenario: target queries per second (Poisson arrivals).")
@click.option("--latency-slo-ms", type=click.FloatRange(min=0, min_open=True), default=100.0, metavar="MS",
              help="Server scenario: p99 latency bound. Default: 100.")
@click.option("--find-max-qps", is_flag=True, help="Server scenario: search the highest QPS that meets the SLO.")
@click.option("--concurrency", type=click.IntRange(1, MAX_CONCURRENCY), default=4, metavar="N",
              help="Concurrent scenario: clients in the closed loop. Default: 4.")
@click.option("--find-max-concurrency", is_flag=True,
              help="Concurrent scenario: double the clients from 1 until the SLO fails; report the highest valid.")
@click.option("--min-queries", type=click.IntRange(1, MAX_QUERIES), default=1000, metavar="N",
              help="Server scenario: minimum query count. Default: 1000.")
@click.option("--ttft-bound-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Server scenario, LLM workloads: p99 time-to-first-token bound.")
@click.option("--tpot-bound-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
              help="Server scenario, LLM workloads: p99 time-per-output-token bound.")
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

    \b
    Examples:
      bakeoff run                                       # default bake-off
      bakeoff run -b torch -b onnxruntime -b openvino -w gemm
      bakeoff run -w mlp --dtype float32 --dtype bfloat16 -s offline
      bakeoff run -b onnxruntime -w mlp -s server --find-max-qps --latency-slo-ms 5
      bakeoff run -w llm --preset qwen2.5-0.5b -b torch --dtype bfloat16
      bakeoff run --model my.onnx --input input_ids:1x128:int64 --input attention_mask:1x128:int64
      bakeoff run --config docs/sweep.example.toml
      bakeoff run --resume 20261130-101500-ab12
      bakeoff run --executor ray --ray-address head:6379 -w llm --ray-resource torch/npu:0=ascend910b
    """
    from harness.launchers import get_launcher
    from harness.results import RunStore, resolve_run
    from harness.sweep import plan, resume, run_sweep

    err = _console(stderr=True)
    fleet = {"executor": executor, "ray_address": ray_address, "ray_retries": ray_retries,
             "ray_resources": list(ray_resources)}
    if resume_ref is not None:
        given = [param.opts[-1] for param in ctx.command.params if param.name in SWEEP_OPTIONS
                 and ctx.get_parameter_source(param.name) not in (None, click.core.ParameterSource.DEFAULT)]
        if given:
            raise UserError(f"--resume reruns the run's stored plan; drop {given[0]}")
        store = RunStore.open(resolve_run(resume_ref, out))
        specs = resume(store)
        stored = store.manifest.get("settings", {})
        launcher = stored.get("launcher", launcher)
        for key in fleet:  # the run's own executor settings, unless given again now
            if key in stored and ctx.get_parameter_source(key) in (None, click.core.ParameterSource.DEFAULT):
                fleet[key] = stored[key]
        ray_executor = _ray_executor(fleet)
        if not quiet:
            err.print(f"resuming run [bold]{store.run_id}[/]: {len(specs)} of "
                      f"{len(store.manifest.get('plan', []))} benchmarks missing", highlight=False)
    else:
        request = _sweep_request(ctx, options["config"], options)
        ray_executor = _ray_executor(fleet)
        backend_rows = None
        if ray_executor is not None:
            from harness.fleet import cluster_rows

            if launcher != "subprocess":
                raise UserError(f"--launcher {launcher}: fleet benchmarks always run in a worker process")
            backend_rows = cluster_rows(ray_executor.probe(request.backends))
        if options["config"] is not None:
            from harness.config import plan_config

            the_plan = plan_config(options["config"], request, backend_rows=backend_rows)
        else:
            the_plan = plan(request, backend_rows=backend_rows)
        for note in the_plan.notes:
            err.print(f"[yellow]note:[/] {note}", highlight=False)
        specs = the_plan.specs
        store = RunStore.create(out, settings={**request.settings(), "launcher": launcher, **fleet}, plan=specs,
                                devices=the_plan.devices)
        if not quiet:
            err.print(f"run [bold]{store.run_id}[/]: {len(specs)} benchmarks -> {store.path}", highlight=False)
    with _ProgressObserver(len(specs), quiet or as_json) as observer:
        try:
            if ray_executor is not None:
                from harness.fleet import run_fleet_sweep
                from harness.plugins import Registry

                run_fleet_sweep(specs, ray_executor, Registry(), store, observer)
            else:
                run_sweep(specs, get_launcher(launcher), store, observer)
        except KeyboardInterrupt:
            click.echo(f"bakeoff: interrupted; finished records are saved. Resume with: "
                       f"bakeoff run --resume {store.run_id} --out {out}", err=True)
            raise click.exceptions.Exit(130) from None
        finally:
            if ray_executor is not None:
                ray_executor.shutdown()
    from harness.results import read_records

    records = read_records(store.path)
    if as_json:
        _echo_json({"run_id": store.run_id, "run_dir": str(store.path), "records": records})
        return
    from harness.tables import results_table

    _console().print(results_table(records, title=f"Run {store.run_id}"))
    click.echo(f"records: {store.path}  (harness.results.load('{store.path}') gives a DataFrame)")


def _ray_executor(fleet: dict[str, Any]):
    """A connected :class:`harness.fleet.RayExecutor` for ``--executor ray``, else ``None``."""
    if fleet["executor"] != "ray":
        if fleet["ray_address"] or fleet["ray_resources"]:
            raise UserError("--ray-address and --ray-resource need --executor ray")
        return None
    from harness.fleet import RayExecutor, parse_resource_selectors

    executor = RayExecutor(address=fleet["ray_address"], retries=fleet["ray_retries"],
                           selectors=parse_resource_selectors(fleet["ray_resources"]))
    executor.connect()
    return executor


# -- show ----------------------------------------------------------------------

@cli.command()
@click.argument("run_ref", metavar="RUN", default="latest")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where run ids are looked up.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest and records as JSON.")
def show(run_ref: str, results_dir: Path, as_json: bool) -> None:
    """Show a finished (or interrupted) run: its environment and results table.

    RUN is a run id, a unique prefix of one, a path to a run folder, or
    "latest" (the default).

    \b
    Examples:
      bakeoff show latest
      bakeoff show 20261130-101500-ab12 --json
    """
    from harness.results import read_manifest, read_records, resolve_run

    run_dir = resolve_run(run_ref, results_dir)
    manifest = read_manifest(run_dir)
    records = read_records(run_dir)
    if as_json:
        _echo_json({"manifest": manifest, "records": records})
        return
    from harness.tables import results_table

    host = manifest.get("host", {})
    cpu = host.get("cpu", {})
    console = _console()
    console.print(
        f"[bold]run {manifest['run_id']}[/] ({manifest.get('status')})  started {manifest.get('started_at')}\n"
        f"host {host.get('hostname')}: {cpu.get('model')}, {cpu.get('logical_cores')} logical cores, "
        f"{host.get('os')}, Python {host.get('python')}\n"
        f"bakeoff {manifest.get('bakeoff_version')}"
        + (f", commit {manifest['git']['commit'][:12]}" if manifest.get("git") else ""),
        highlight=False,
    )
    console.print(results_table(records, title=f"Run {manifest['run_id']}"))


# -- compare and export -------------------------------------------------------------

@cli.command(name="compare")
@click.argument("runs", nargs=-1, required=True, metavar="BASE NEW [MORE...]")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where run ids are looked up.")
@click.option("--threshold", default="5%", show_default=True, metavar="PERCENT",
              help="Smallest change that counts as a regression or improvement.")
@click.option("--fail-on-regression", is_flag=True, help="Exit 1 if any significant regression exceeds the threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def compare_command(runs, results_dir, threshold, fail_on_regression, as_json) -> None:
    """Compare runs benchmark by benchmark, with significance.

    Each later run is compared with the first: median latency ratio with a
    95% bootstrap interval, a Mann-Whitney U test on the raw samples, and a
    verdict (improved, regressed, unchanged, inconclusive). Benchmarks on one
    side only, and differing environment fingerprints, are listed.

    \b
    Examples:
      bakeoff compare 20261130-101500-ab12 latest
      bakeoff compare base new --threshold 3% --fail-on-regression   # a CI gate
    """
    from harness.compare import compare, parse_threshold
    from harness.results import read_records, resolve_run

    if len(runs) < 2:
        raise UserError("compare needs at least two runs: BASE NEW [MORE...]")
    try:
        limit = parse_threshold(threshold)
    except ValueError:
        raise UserError(f"--threshold {threshold!r}: expected a percentage such as 5% or a fraction such as 0.05") from None
    run_dirs = [resolve_run(run, results_dir) for run in runs]
    runs = [run_dir.name for run_dir in run_dirs]  # run ids label the columns, not long paths
    record_sets = [read_records(run_dir) for run_dir in run_dirs]
    results = [compare(record_sets[0], later, limit) for later in record_sets[1:]]
    if as_json:
        _echo_json({"threshold": limit, "results": [r.to_dict() for r in results]})
    elif len(results) == 1:
        _print_comparison(runs[0], runs[1], results[0])
    else:
        _print_multi_comparison(runs, results)
    if fail_on_regression:
        regressions = [c for r in results for c in r.regressions(limit)]
        if regressions:
            click.echo(f"bakeoff: {len(regressions)} significant regression(s) beyond {threshold}", err=True)
            raise click.exceptions.Exit(1)


_VERDICT_STYLE = {"regressed": "bold red", "improved": "green", "inconclusive": "yellow"}


def _styled(verdict: str) -> str:
    return f"[{_VERDICT_STYLE[verdict]}]{verdict}[/]" if verdict in _VERDICT_STYLE else verdict


def _print_notes(console, base: str, run: str, result) -> None:
    for label in result.only_base:
        console.print(f"only in {base}: {label}", highlight=False)
    for label in result.only_new:
        console.print(f"only in {run}: {label}", highlight=False)
    for item in result.not_comparable:
        console.print(f"not compared ({run}): {item['benchmark']}: {item['reason']}", highlight=False)
    for warning in [*result.fingerprint_warnings, *result.interference_warnings]:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)


def _print_comparison(base: str, run: str, result) -> None:
    from rich.table import Table
    from rich.text import Text

    from harness.compare import CI_NAME, TEST_NAME
    from harness.units import format_seconds

    console = _console()
    table = Table(title=f"{base} -> {run}  ({TEST_NAME}; CI: {CI_NAME})", title_justify="left")
    for column in ("benchmark", "base median", "new median", "ratio [95% CI]", "p", "verdict"):
        table.add_column(column, justify="left" if column in ("benchmark", "verdict") else "right")
    for c in result.comparisons:
        table.add_row(Text(c.label), format_seconds(c.base_median_s), format_seconds(c.new_median_s),
                      f"{c.ratio:.3f} [{c.ratio_ci[0]:.3f}, {c.ratio_ci[1]:.3f}]", f"{c.p_value:.2g}", _styled(c.verdict))
    console.print(table)
    _print_notes(console, base, run, result)


def _print_multi_comparison(runs, results) -> None:
    """One row per benchmark, one column per run: median, and for later runs the ratio and verdict."""
    from rich.table import Table
    from rich.text import Text

    from harness.compare import TEST_NAME
    from harness.units import format_seconds

    console = _console()
    rows: dict[str, dict[int, str]] = {}
    base_medians: dict[str, float] = {}
    for index, result in enumerate(results, start=1):
        for c in result.comparisons:
            base_medians[c.label] = c.base_median_s
            rows.setdefault(c.label, {})[index] = f"{format_seconds(c.new_median_s)} x{c.ratio:.3f} {_styled(c.verdict)}"
    table = Table(title=f"median latency per run, ratio to {runs[0]} and verdict ({TEST_NAME})", title_justify="left")
    table.add_column("benchmark")
    for run in runs:
        table.add_column(run, justify="right")
    for label in sorted(rows):
        table.add_row(Text(label), format_seconds(base_medians[label]),
                      *(rows[label].get(i, "-") for i in range(1, len(runs))))
    console.print(table)
    for run, result in zip(runs[1:], results):
        _print_notes(console, runs[0], run, result)


@cli.command(name="export")
@click.argument("runs", nargs=-1, required=True, metavar="RUN...")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
              show_default=True, help="Where run ids are looked up.")
@click.option("--format", "fmt", type=click.Choice(["csv", "parquet", "json", "markdown", "pytest-benchmark"]), default="csv",
              show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Output file (default: stdout for csv, json and markdown).")
def export_command(runs, results_dir, fmt, output) -> None:
    """Write the flat results table (the same frame as harness.results.load).

    \b
    Examples:
      bakeoff export latest --format parquet -o results.parquet
      bakeoff export run1 run2 --format markdown > results.md
      bakeoff export latest --format pytest-benchmark -o run.json   # then: pytest-benchmark compare run.json
    """
    from harness.results import export_frame, load, resolve_run

    _writable_target(output)
    if fmt == "pytest-benchmark":
        from harness.interop import to_pytest_benchmark
        from harness.results import read_manifest, read_records

        dirs = [resolve_run(run, results_dir) for run in runs]
        text = json.dumps(to_pytest_benchmark([(read_manifest(d), read_records(d)) for d in dirs]), indent=1)
        if output is None:
            click.echo(text)
        else:
            output.write_text(text + "\n", encoding="utf-8")
        return
    frame = load(*[resolve_run(run, results_dir) for run in runs])
    if fmt == "parquet" and output is None:
        raise UserError("--format parquet needs -o FILE (it is binary)")
    text = export_frame(frame, fmt, output)
    if text is not None:
        click.echo(text)


# -- rank and plan --------------------------------------------------------------

def _procurement_options(command):
    options = [
        click.argument("runs", nargs=-1, required=True, metavar="RUN..."),
        click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("results"),
                     show_default=True, help="Where run ids are looked up."),
        click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Procurement policy (TOML); see docs/policies/."),
        click.option("--catalog", "catalog_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="Your catalog file(s) layered over the built-in one (prices, internal hardware)."),
        click.option("--slo-p99-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
                     help="Exclude candidates whose p99 latency exceeds this."),
        click.option("--pricing", type=click.Choice(["cloud", "owned"]), default="cloud", show_default=True),
        click.option("--years", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
                     help="Owned: amortisation period."),
        click.option("--utilisation", type=click.FloatRange(0, 1, min_open=True), default=0.6, show_default=True,
                     help="Owned: share of hours the device serves."),
        click.option("--usd-per-kwh", type=click.FloatRange(min=0), default=0.12, show_default=True),
        click.option("--pue", type=click.FloatRange(min=1), default=1.3, show_default=True),
        click.option("--hosting-usd-per-year", type=click.FloatRange(min=0), default=0.0, show_default=True),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _ranking(runs, results_dir, policy_path, catalog_paths, slo_p99_ms, pricing, years, utilisation,
             usd_per_kwh, pue, hosting_usd_per_year):
    from harness.catalog import load_catalog
    from harness.policy import load_policy
    from harness.rank import OwnedSettings, rank
    from harness.results import load_records, resolve_run

    records = load_records(*[resolve_run(run, results_dir) for run in runs])
    owned = OwnedSettings(years, utilisation, usd_per_kwh, pue, hosting_usd_per_year)
    policy = load_policy(policy_path) if policy_path else None
    result = rank(records, load_catalog(catalog_paths), policy,
                  slo_p99_ms / 1e3 if slo_p99_ms is not None else None, pricing, owned)
    return result, owned, policy


@cli.command(name="rank")
@_procurement_options
def rank_command(runs, as_json, **options) -> None:
    """Rank measured candidates by cost per 1M tokens under a policy and an SLO.

    A candidate must have run, pass parity, be valid for its scenario, meet the
    p99 SLO, match a catalog entry, pass the policy and have a price. Excluded
    candidates are listed with the check or rule that excluded them.

    \b
    Examples:
      bakeoff rank latest --catalog my-prices.toml
      bakeoff rank latest --catalog my-prices.toml --policy docs/policies/exclude-us-designed.toml
      bakeoff rank run1 run2 --pricing owned --utilisation 0.5 --slo-p99-ms 50
    """
    from rich.table import Table
    from rich.text import Text

    from harness.units import format_rate, format_seconds

    result, _, policy = _ranking(runs, **options)
    if as_json:
        _echo_json({"ranked": result.ranked, "excluded": result.excluded})
        return
    title = f"Ranking ({options['pricing']} pricing" + (f", policy {policy.name!r}" if policy else "") + ")"
    table = Table(title=title, title_justify="left")
    for column in ("rank", "workload", "candidate", "catalog", "cost", "throughput per device", "p99"):
        table.add_column(column, justify="left" if column in ("workload", "candidate", "catalog") else "right")
    for c in result.ranked:
        cost = c["cost"]
        table.add_row(str(c["rank"]), Text(c["workload"]),
                      Text(c["candidate"] + (" (noisy: interference)" if c.get("noisy") else "")), c["catalog_id"],
                      f"${cost['value']:.4g} per {cost['per']}" + (" (estimated energy)" if cost["estimated"] else ""),
                      format_rate(c["throughput"], c["throughput_unit"])
                      + (f" (x{c['devices_per_candidate']} devices)" if c.get("devices_per_candidate", 1) > 1 else ""),
                      format_seconds(c["p99_s"]))
    console = _console()
    console.print(table)
    for c in result.ranked:
        if c.get("noisy"):
            console.print(f"[yellow]noisy:[/] {c['candidate']} ({c['workload']}): interference while measured: "
                          f"{'; '.join(c['noisy_reasons'])}; rerun on a quiet machine before deciding",
                          highlight=False)
    if result.excluded:
        excluded = Table(title="Excluded", title_justify="left")
        for column in ("workload", "candidate", "excluded by"):
            excluded.add_column(column, overflow="fold")
        for e in result.excluded:
            excluded.add_row(Text(e["workload"]), Text(e["candidate"]), Text("; ".join(e["excluded_by"])))
        console.print(excluded)


@cli.command(name="plan")
@_procurement_options
@click.option("--target-tokens-per-s", "target", type=click.FloatRange(min=0, min_open=True), required=True,
              metavar="N", help="Throughput to serve, in the workload's unit per second (tokens for LLMs).")
def plan_command(runs, as_json, target, **options) -> None:
    """Size a fleet: devices needed per candidate for a target rate, yearly cost and power.

    Uses each rankable candidate's measured throughput at the SLO.

    \b
    Example:
      bakeoff plan latest --target-tokens-per-s 5000 --slo-p99-ms 200 --catalog my-prices.toml
    """
    from rich.table import Table
    from rich.text import Text

    from harness.rank import plan_fleet
    from harness.units import format_rate

    result, owned, _ = _ranking(runs, **options)
    plans = plan_fleet(result, target, owned)
    if as_json:
        _echo_json({"target_per_s": target, "plans": plans, "excluded": result.excluded})
        return
    table = Table(title=f"Fleet plan for {target:g}/s", title_justify="left")
    for column in ("workload", "candidate", "per device", "devices", "yearly cost", "power"):
        table.add_column(column, justify="right" if column in ("per device", "devices", "yearly cost", "power")
                         else "left")
    for p in plans:
        power = "-" if p["power_w"] is None else f"{p['power_w'] / 1000:.3g} kW" + (" (est.)" if p["power_estimated"] else "")
        table.add_row(Text(p["workload"]), Text(p["candidate"]), format_rate(p["throughput"], p["throughput_unit"]),
                      str(p["devices"]), f"${p['yearly_cost_usd']:,.0f} ({p['pricing']})", power)
    _console().print(table)
    if result.excluded:
        click.echo(f"{len(result.excluded)} candidates excluded; `bakeoff rank` lists why.")


@cli.command(name="report")
@_procurement_options
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=Path("report.html"),
              show_default=True, help="Output file.")
@click.option("--format", "fmt", type=click.Choice(["html", "markdown"]), default="html", show_default=True)
def report_command(runs, as_json, output, fmt, **options) -> None:
    """Write a self-contained report: ranking, cost-vs-latency, throughput, latency, roofline, environment.

    The HTML file opens offline (no scripts, no network); --format markdown
    gives the same tables for procurement documents.

    \b
    Examples:
      bakeoff report latest -o report.html --catalog my-prices.toml --policy docs/policies/open-stack-64gb.toml
      bakeoff report run1 run2 --format markdown -o report.md
    """
    from harness.report import build_report, summary_rows
    from harness.results import read_manifest, read_records, resolve_run

    _writable_target(output)
    run_dirs = [resolve_run(run, options["results_dir"]) for run in runs]
    records = [r for d in run_dirs for r in read_records(d)]
    manifests = [read_manifest(d) for d in run_dirs]
    ranking, _, _ = _ranking(runs, **options)
    if fmt == "html":
        output.write_text(build_report(records, manifests, ranking), encoding="utf-8")
    else:
        headers = ["workload", "candidate", "cost", "throughput", "p99", "parity", "status / policy"]
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        for row in summary_rows(records, ranking):
            lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
        output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if as_json:
        _echo_json({"report": str(output), "format": fmt, "runs": [str(d) for d in run_dirs]})
    else:
        click.echo(f"report: {output}")


def main() -> None:
    cli(prog_name="bakeoff")


if __name__ == "__main__":
    main()
