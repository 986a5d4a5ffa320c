"""``bakeoff backends``, ``workloads``, ``scenarios``, ``new-backend`` and ``serve``: what is
installed, and the tools around it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from harness.contract.errors import UserError
from harness.contract.limits import MAX_THREADS

from harness.presentation.cli.base import _console, _echo_json, cli

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
    from harness.engine.plugins import Registry

    from harness.hardware.catalog import load_catalog

    if show_options:
        _print_backend_options(Registry(), as_json)
        return
    catalog = load_catalog(catalog_paths)
    rows = Registry().all_backend_status()
    matches = {id(row): catalog.match(row.info.model if row.info else None) for row in rows}
    if as_json:
        _echo_json([{**row.to_dict(), "catalog": (matches[id(row)] or {}).get("id")} for row in rows])
        return
    from harness.presentation.tables import backends_table

    _console().print(backends_table(rows, {id(r): (m or {}).get("id") for r, m in
                                           ((row, matches[id(row)]) for row in rows)}))


def _print_backend_options(registry, as_json: bool) -> None:
    from harness.contract.capabilities import DeclaresOptions, capability

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
    from harness.engine.plugins import Registry
    from harness.tools.scaffold import new_backend as scaffold

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
    from harness.tools.serve import ServedModel, serve

    model = ServedModel(backend_name, device, preset, dtype, threads)

    def ready(url: str) -> None:
        click.echo(f"listening on {url}", err=False)
        sys.stdout.flush()
        click.echo(f"serving {model.name} ({model.identity['backend']}/{model.identity['device']}, {dtype}); "
                   f"prepared in {model.prepare_s:.1f} s; Ctrl-C stops", err=True)

    serve(model, host, port, on_ready=ready)


# -- workloads ---------------------------------------------------------------

def _workload_listing() -> list[dict[str, Any]]:
    from harness.engine.plugins import Registry

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
    from harness.presentation.tables import workloads_table

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
    from harness.engine.plugins import Registry

    listing = Registry().scenario_listing()
    if as_json:
        _echo_json(listing)
        return
    from harness.presentation.tables import scenarios_table

    _console().print(scenarios_table(listing))




@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def dtypes(as_json: bool) -> None:
    """List precisions: bits per weight (scales included), layout, parity tolerance, and which
    installed backends run each.

    \b
    Example:
      bakeoff dtypes
      bakeoff run -w llm -b llama-cpp --dtype q4_0 --dtype q8_0
    """
    from dataclasses import asdict

    from harness.contract.precisions import PRECISIONS
    from harness.engine.parity import TOLERANCES
    from harness.engine.plugins import Registry
    from harness.engine.runner import backend_precisions

    registry, runs_on = Registry(), {name: [] for name in PRECISIONS}
    for name in registry.backend_names():
        try:
            backend = registry.backend(name)
        except RuntimeError:
            continue  # a broken plugin runs nothing; `bakeoff backends` shows why
        for dtype in backend_precisions(backend):
            runs_on.setdefault(dtype, []).append(name)
    listing = [{**asdict(p), "parity": asdict(TOLERANCES[p.name]), "backends": runs_on[p.name]}
               for p in PRECISIONS.values()]
    if as_json:
        _echo_json(listing)
        return
    from rich.table import Table

    table = Table(title="precisions (bits per weight include scales)")
    for column in ("dtype", "bits/weight", "kind", "layout", "parity (max rel. error, min cosine)", "backends"):
        table.add_column(column, overflow="fold")
    for row in listing:
        table.add_row(row["name"], f"{row['bits_per_weight']:g}", row["kind"], row["layout"],
                      f"{row['parity']['max_rel_error']:g}, {row['parity']['min_cosine']:g}",
                      ", ".join(row["backends"]) or "-")
    _console().print(table)
