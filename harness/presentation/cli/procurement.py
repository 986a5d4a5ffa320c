"""``bakeoff rank``, ``plan`` and ``report``: the buyer's answer from measured runs, a catalog and a policy."""

from __future__ import annotations

from pathlib import Path

import click

from harness.contract.errors import UserError
from harness.presentation.cli.base import _console, _echo_json, _writable_target, cli

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
        click.option("--slo-ttft-p99-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
                     help="LLM serving: exclude load points whose p99 time to first token exceeds this."),
        click.option("--slo-tpot-p99-ms", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MS",
                     help="LLM serving: exclude load points whose p99 time per output token exceeds this."),
        click.option("--min-user-tokens-per-s", type=click.FloatRange(min=0, min_open=True), default=None,
                     metavar="N", help="LLM serving: exclude load points where a user gets fewer output tokens/s "
                                       "than this (1 / median TPOT). Each candidate is ranked at its cheapest "
                                       "point that qualifies."),
        click.option("--pricing", type=click.Choice(["cloud", "owned"]), default="cloud", show_default=True),
        click.option("--years", type=click.FloatRange(min=0, min_open=True), default=4.0, show_default=True,
                     help="Owned: amortisation period."),
        click.option("--utilisation", type=click.FloatRange(0, 1, min_open=True), default=0.6, show_default=True,
                     help="Owned: share of hours the device serves."),
        click.option("--usd-per-kwh", type=click.FloatRange(min=0), default=0.12, show_default=True),
        click.option("--pue", type=click.FloatRange(min=1), default=1.3, show_default=True),
        click.option("--hosting-usd-per-year", type=click.FloatRange(min=0), default=0.0, show_default=True),
        click.option("--import-duty", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="FRACTION",
                     help="Owned: import duty on the purchase price (0.25 = 25%)."),
        click.option("--grey-market-premium", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     metavar="FRACTION", help="Owned: premium over list for a part bought through a third country."),
        click.option("--lead-time-months", type=click.FloatRange(min=0), default=0.0, show_default=True,
                     metavar="MONTHS", help="Owned: months until the capacity serves (amortised over the rest)."),
        click.option("--host-overhead-w", type=click.FloatRange(min=0), default=0.0, show_default=True, metavar="W",
                     help="Host power per device (CPUs, NICs, fans), added to energy and facility power."),
        click.option("--devices-per-host", type=click.IntRange(min=1), default=8, show_default=True, metavar="N",
                     help="Devices per server, for the host count of a fleet plan."),
        click.option("--power-cap-mw", type=click.FloatRange(min=0, min_open=True), default=None, metavar="MW",
                     help="The facility's power cap: a plan above it says so and what it can serve under it."),
        click.option("--json", "as_json", is_flag=True, help="Print JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _ranking(runs, results_dir, policy_path, catalog_paths, slo_p99_ms, slo_ttft_p99_ms, slo_tpot_p99_ms,
             min_user_tokens_per_s, pricing, years, utilisation, usd_per_kwh, pue, hosting_usd_per_year,
             import_duty, grey_market_premium, lead_time_months, host_overhead_w, devices_per_host, power_cap_mw):
    from harness.hardware.catalog import load_catalog
    from harness.procurement.policy import load_policy
    from harness.procurement.rank import OwnedSettings, ServingTargets, rank
    from harness.results.frame import load_records
    from harness.results.store import resolve_run

    records = load_records(*[resolve_run(run, results_dir) for run in runs])
    if lead_time_months >= years * 12:
        raise UserError(f"--lead-time-months {lead_time_months:g}: must be shorter than --years {years:g} "
                        f"({years * 12:g} months), or the capacity never serves")
    owned = OwnedSettings(years, utilisation, usd_per_kwh, pue, hosting_usd_per_year, import_duty,
                          grey_market_premium, lead_time_months, host_overhead_w, devices_per_host, power_cap_mw)
    policy = load_policy(policy_path) if policy_path else None
    targets = ServingTargets(slo_ttft_p99_ms / 1e3 if slo_ttft_p99_ms is not None else None,
                             slo_tpot_p99_ms / 1e3 if slo_tpot_p99_ms is not None else None, min_user_tokens_per_s)
    result = rank(records, load_catalog(catalog_paths), policy,
                  slo_p99_ms / 1e3 if slo_p99_ms is not None else None, pricing, owned, targets)
    return result, owned, policy


@cli.command(name="rank")
@_procurement_options
@click.option("--sort-by", type=click.Choice(["cost", "tokens-per-dollar", "tokens-per-mwh", "throughput", "p99"]),
              default="cost", show_default=True, help="Order within each workload (units per $ and per MWh: "
                                                      "the workload's unit, tokens for LLMs).")
def rank_command(runs, as_json, sort_by, **options) -> None:
    """Rank measured candidates by cost per 1M tokens under a policy and an SLO.

    A candidate must have run, pass parity, be valid for its scenario, meet the
    p99 SLO, match a catalog entry, pass the policy and have a price. Excluded
    candidates are listed with the check or rule that excluded them. A sweep
    of load points (--concurrency 1 4 16) ranks each candidate once, at its
    cheapest point that meets the SLOs and --min-user-tokens-per-s.

    \b
    Examples:
      bakeoff rank latest --catalog my-prices.toml
      bakeoff rank latest --catalog my-prices.toml --policy docs/policies/exclude-us-designed.toml
      bakeoff rank run1 run2 --pricing owned --utilisation 0.5 --slo-p99-ms 50
      bakeoff rank latest --min-user-tokens-per-s 20 --slo-ttft-p99-ms 2000 --catalog my-prices.toml
    """
    from rich.table import Table
    from rich.text import Text

    from harness.contract.units import format_rate, format_seconds

    from harness.procurement.rank import sort_ranking

    result, owned, policy = _ranking(runs, **options)
    sort_ranking(result, sort_by, owned)
    if as_json:
        _echo_json({"ranked": result.ranked, "excluded": result.excluded, "alternatives": result.alternatives})
        return
    title = (f"Ranking ({options['pricing']} pricing" + (f", policy {policy.name!r}" if policy else "")
             + (f", by {sort_by}" if sort_by != "cost" else "") + ")")
    table = Table(title=title, title_justify="left")
    serving = any(c["load"] or c["user_tokens_per_s"] for c in result.ranked)
    columns = ["rank", "workload", "candidate", "catalog", "cost", "throughput per device", "p99"]
    columns += ["load point", "per user"] if serving else []
    for column in columns:
        table.add_column(column, justify="left" if column in ("workload", "candidate", "catalog", "load point")
                         else "right")
    for c in result.ranked:
        cost = c["cost"]
        row = [str(c["rank"]), Text(c["workload"]),
               Text(c["candidate"] + (" (noisy: interference)" if c.get("noisy") else "")), c["catalog_id"],
               f"${cost['value']:.4g} per {cost['per']}" + (" (estimated energy)" if cost["estimated"] else "")
               + (" (reference price)" if (cost["inputs"].get("price") or {}).get("reference") else ""),
               format_rate(c["throughput"], c["throughput_unit"])
               + (f" (x{c['devices_per_candidate']} devices)" if c.get("devices_per_candidate", 1) > 1 else ""),
               format_seconds(c["p99_s"])]
        if serving:
            row += [Text(c["load"] or "-"), format_rate(c["user_tokens_per_s"], "token/s")
                    if c["user_tokens_per_s"] else "-"]
        table.add_row(*row)
    console = _console()
    console.print(table)
    shown = set()
    for c in result.ranked:  # where each reference price came from, once per catalog entry
        price = c["cost"]["inputs"].get("price") or {}
        if price.get("reference") and c["catalog_id"] not in shown:
            shown.add(c["catalog_id"])
            console.print(f"[dim]{c['catalog_id']}: {price['basis']}; list price from {price['source_url']} "
                          f"({price.get('region')}, retrieved {price['retrieved']}); give your own with "
                          "--catalog[/]", highlight=False)
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
    """Size a fleet: devices, hosts and facility MW per candidate for a target rate, yearly
    cost, units per dollar and per MWh; with a power cap, whether it fits.

    Uses each rankable candidate's measured throughput at the SLO: for a sweep
    of load points, at the cheapest point that meets the SLOs and
    --min-user-tokens-per-s.

    \b
    Examples:
      bakeoff plan latest --target-tokens-per-s 5000 --slo-p99-ms 200 --catalog my-prices.toml
      bakeoff plan latest --target-tokens-per-s 1e6 --pricing owned --import-duty 0.25 \\
          --lead-time-months 6 --host-overhead-w 150 --power-cap-mw 2
    """
    from rich.table import Table
    from rich.text import Text

    from harness.contract.units import format_rate
    from harness.procurement.rank import plan_fleet

    result, owned, _ = _ranking(runs, **options)
    plans = plan_fleet(result, target, owned)
    if as_json:
        _echo_json({"target_per_s": target, "plans": plans, "excluded": result.excluded})
        return
    table = Table(title=f"Fleet plan for {target:g}/s", title_justify="left")
    numeric = ("per device", "devices", "hosts", "facility", "yearly cost", "per $", "per MWh")
    for column in ("workload", "candidate", "load point", *numeric):
        table.add_column(column, justify="right" if column in numeric else "left")
    unit = "token" if plans and plans[0]["throughput_unit"] == "token/s" else "unit"
    for p in plans:
        facility = "-" if p["facility_mw"] is None else (
            f"{p['facility_mw']:.3g} MW" + (" (est.)" if p["power_estimated"] else "")
            + (" OVER CAP" if p["fits_power_cap"] is False else ""))
        table.add_row(Text(p["workload"]), Text(p["candidate"]), Text(p["load"] or "-"),
                      format_rate(p["throughput"], p["throughput_unit"]), str(p["devices"]), str(p["hosts"]),
                      facility, f"${p['yearly_cost_usd']:,.0f} ({p['pricing']})",
                      f"{p['units_per_usd']:,.4g} {unit}s" if p["units_per_usd"] else "-",
                      f"{p['units_per_mwh']:,.4g} {unit}s" if p["units_per_mwh"] else "-")
    console = _console()
    console.print(table)
    for p in plans:
        if p["fits_power_cap"] is False:
            console.print(f"[yellow]over the power cap:[/] {p['candidate']} needs {p['facility_mw']:.3g} MW of the "
                          f"{p['power_cap_mw']:g} MW cap; under it, it serves "
                          f"{format_rate(p['max_units_per_s_under_cap'], p['throughput_unit'])}", highlight=False)
    if owned.lead_time_months:
        console.print(f"serving from month {owned.lead_time_months:g} (lead time); owned costs amortise over the "
                      f"{owned.years - owned.lead_time_months / 12:g} years left of the {owned.years:g}-year horizon",
                      highlight=False)
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
    from harness.presentation.report import build_report, markdown_report
    from harness.results.store import read_manifest, read_records, resolve_run

    _writable_target(output)
    run_dirs = [resolve_run(run, options["results_dir"]) for run in runs]
    records = [r for d in run_dirs for r in read_records(d)]
    manifests = [read_manifest(d) for d in run_dirs]
    ranking, _, policy = _ranking(runs, **options)
    if fmt == "html":
        output.write_text(build_report(records, manifests, ranking, policy_name=policy.name if policy else None),
                          encoding="utf-8")
    else:
        output.write_text(markdown_report(records, ranking, policy.name if policy else None), encoding="utf-8")
    if as_json:
        _echo_json({"report": str(output), "format": fmt, "runs": [str(d) for d in run_dirs]})
    else:
        click.echo(f"report: {output}")




@cli.command(name="catalog")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Show what this procurement policy (TOML) excludes, and why, before anything is measured.")
@click.option("--catalog", "catalog_paths", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Your catalog file(s) layered over the built-in one.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: every entry with its derived figures.")
def catalog_command(policy_path, catalog_paths, as_json) -> None:
    """List the hardware catalog: countries, memory, bandwidth, peak, TPP and PD, export
    classification computed by rule, licence requirement and prices.

    Every figure carries a source in the catalog file; TPP, performance
    density and the 3A090.a verdict are computed from sourced figures
    (docs/catalog.md). With --policy, each device shows whether the policy
    admits it and which rule excludes it.

    \b
    Examples:
      bakeoff catalog
      bakeoff catalog --policy docs/policies/exclude-us-designed.toml
      bakeoff catalog --catalog my-prices.toml --json
    """
    from rich.table import Table
    from rich.text import Text

    from harness.hardware.catalog import figure, load_catalog
    from harness.procurement.policy import load_policy

    catalog = load_catalog(catalog_paths)
    policy = load_policy(policy_path) if policy_path else None
    verdicts = {entry_id: (policy.evaluate(entry) if policy else None) for entry_id, entry in catalog.entries.items()}
    if as_json:
        _echo_json({"entries": list(catalog.entries.values()), "warnings": catalog.warnings,
                    "policy": policy.name if policy else None,
                    "excluded": {k: v for k, v in verdicts.items() if v}, "rules": catalog.rules})
        return

    def number(entry, name, unit, digits=4):
        value = figure(entry, name)
        return "-" if value is None else f"{value:,.{digits}g}{unit}"

    def price(entry):
        prices = sorted(p["usd_per_device_hour"] for p in entry.get("prices", []))
        vcpu = sorted(p["usd_per_vcpu_hour"] for p in entry.get("vcpu_prices", []))
        return (f"${prices[0]:.3g}/h" if prices else "") + (f"${vcpu[0]:.3g}/vCPU-h (ref.)" if vcpu else "") or "-"

    table = Table(title=f"Hardware catalog ({len(catalog.entries)} devices)"
                  + (f", policy {policy.name!r}" if policy else ""), title_justify="left")
    columns = ["id", "vendor", "designer / foundry", "memory", "bandwidth", "FP16 dense", "TPP / PD", "3A090.a",
               "licence for CN", "price"] + (["policy"] if policy else [])
    for column in columns:
        table.add_column(column, overflow="fold")
    for entry_id, entry in catalog.entries.items():
        licence = entry.get("licence_required") or {}
        needs = "-" if "value" not in licence else ("yes" if licence["value"] and "CN" in licence.get("destinations", [])
                                                     else "no" if not licence["value"] else "not for CN")
        controlled = figure(entry, "eccn_3a090a")
        row = [entry_id, str(figure(entry, "vendor") or "-"),
               f"{figure(entry, 'designer_country') or '?'} / {figure(entry, 'foundry_country') or '?'}",
               number(entry, "memory_gb", " GB"), number(entry, "memory_bandwidth_gbps", " GB/s"),
               number(entry, "fp16_dense_tflops", " TFLOPS"),
               f"{number(entry, 'tpp', '', 5)} / {number(entry, 'performance_density', '', 3)}",
               {True: "yes", False: "below", None: "unknown"}[controlled], needs, price(entry)]
        if policy:
            failed = policy.failed_rules(entry)
            row.append(Text("admitted", "green") if not failed else
                       Text("excluded: " + "; ".join(f"{rule.id} ({shown})" for rule, shown in failed), "red"))
        table.add_row(*[Text(c) if isinstance(c, str) else c for c in row])
    console = _console()
    console.print(table)
    console.print("[dim]3A090.a and TPP/PD are computed by rule (docs/catalog.md); '-' and 'unknown': no sourced "
                  "figure. Every figure's source: --json, or harness/data/catalog.toml.[/]", highlight=False)
    for warning in catalog.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if policy:
        excluded = sum(1 for v in verdicts.values() if v)
        console.print(f"policy {policy.name!r} excludes {excluded} of {len(verdicts)} devices; its rules: "
                      + "; ".join(f"{rule.id}: {rule.why}" for rule in policy.rules), highlight=False)
