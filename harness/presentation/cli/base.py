"""The ``bakeoff`` command group and what every command shares: one-line errors, consoles, JSON.

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

from harness.contract.errors import UserError

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


def main() -> None:
    cli(prog_name="bakeoff")
