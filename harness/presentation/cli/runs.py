"""``bakeoff show``, ``compare`` and ``export``: reading runs back."""

from __future__ import annotations

import json
from pathlib import Path

import click

from harness.contract.errors import UserError

from harness.presentation.cli.base import _console, _echo_json, _writable_target, cli

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
    from harness.results.store import read_manifest, read_records, resolve_run

    run_dir = resolve_run(run_ref, results_dir)
    manifest = read_manifest(run_dir)
    records = read_records(run_dir)
    if as_json:
        _echo_json({"manifest": manifest, "records": records})
        return
    from harness.presentation.tables import results_table

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
    from harness.procurement.compare import compare, parse_threshold
    from harness.results.store import read_records, resolve_run

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

    from harness.contract.units import format_seconds
    from harness.procurement.compare import CI_NAME, TEST_NAME

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

    from harness.contract.units import format_seconds
    from harness.procurement.compare import TEST_NAME

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
    from harness.results.frame import export_frame, load
    from harness.results.store import resolve_run

    _writable_target(output)
    if fmt == "pytest-benchmark":
        from harness.presentation.interop import to_pytest_benchmark
        from harness.results.store import read_manifest, read_records

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

