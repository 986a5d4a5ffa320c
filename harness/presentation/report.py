"""A self-contained HTML report for a procurement committee.

One file, no JavaScript, no CDN, nothing fetched at view time: charts are
matplotlib SVG embedded inline (text drawn as paths), tables are plain HTML.
Every string that comes from a run, a catalog or a plugin goes through
``html.escape``, so a workload or device name with markup in it is shown, not
executed.

Contents, the answer first: **Decision** (per workload, the ranked candidates with cost per
1M units, throughput per device, p99, energy per unit and the policy verdict, the recommended
one marked, then the excluded with their reasons); the **capability probes** (gemm, membw:
achieved FLOP/s and bandwidth against the device's peak, never priced); the serving frontier;
one cost-versus-latency chart per workload (a chart never mixes units); then the detail: every
benchmark, the records left out of the charts, throughput by backend and dtype (engineering
units), latency distributions, the decode roofline and the environment of every run.

The charts show only records whose measurement can be trusted
(:func:`harness.results.record.measurement_problem` is None): a bar for a run that failed
parity, is implausible or is invalid for its scenario looks exactly like a good
one, so such records are listed under "Not charted" with their reason instead.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
import io
from collections import defaultdict
from typing import Any, Mapping, Sequence

from harness.contract.units import format_bytes, format_rate, format_seconds
from harness.procurement.frontier import OperatingPoint, operating_points, pareto_frontier
from harness.procurement.rank import PROBE_UNITS, Ranking
from harness.results.record import candidate_label as label
from harness.results.record import Record, as_record, measurement_problem, workload_label
from harness.results.roofline import read_ceilings, roofline_fraction

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f3f3f3; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.chart { margin: 1em 0; } .note { color: #666; font-size: 0.9em; }
.bad { color: #b00; } .good { color: #070; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _svg(figure) -> str:
    buffer = io.StringIO()
    figure.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    import matplotlib.pyplot as plt

    plt.close(figure)
    text = buffer.getvalue()
    return f'<div class="chart">{text[text.index("<svg"):]}</div>'


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.fonttype"] = "path"  # text as shapes: no fonts, nothing to inject
    import matplotlib.pyplot as plt

    return plt


def chart_problem(record: Record | Mapping[str, Any]) -> str | None:
    """Why the record is left out of the charts, or None when it is charted.

    The rank's measurement checks (:func:`measurement_problem`: ok, parity, plausibility,
    scenario validity), so that a chart never shows a number the ranking would not trust, plus
    timing statistics, without which there is nothing to draw.
    """
    problem = measurement_problem(record)
    if problem is None and as_record(record).stats is None:
        return "no timing statistics recorded"
    return problem


def _charted(records: Sequence[Record | Mapping[str, Any]]) -> list[Record]:
    """The records the charts may show (see :func:`chart_problem`), typed."""
    return [as_record(r) for r in records if chart_problem(r) is None]


def not_charted_rows(records: Sequence[Record | Mapping[str, Any]]) -> list[list[Any]]:
    """[workload, candidate, run, reason] for every record the charts leave out."""
    return [[workload_label(r), label(r), as_record(r).run_id, problem]
            for r in records if (problem := chart_problem(r)) is not None]


def not_charted_section(records: Sequence[Record | Mapping[str, Any]]) -> str:
    """The records left out of the charts, each with its reason, so that a missing bar is explained."""
    rows = not_charted_rows(records)
    if not rows:
        return ('<p class="note">Every record is charted: all ran, passed parity, are plausible and have '
                "valid scenario results.</p>")
    return (f'<p class="note">{len(rows)} of {len(records)} records are left out of the charts below, each for '
            "the reason given: a chart shows only numbers that can be trusted.</p>"
            + _table(["workload", "candidate", "run", "reason"], rows))


def throughput_charts(records: Sequence[Record | Mapping[str, Any]]) -> list[str]:
    plt = _pyplot()
    charts = []
    by_workload: dict[str, list] = defaultdict(list)
    for record in _charted(records):
        if record.throughput is not None and record.throughput.value is not None:
            by_workload[workload_label(record)].append(record)
    for workload, group in sorted(by_workload.items())[:8]:
        group.sort(key=lambda r: r.throughput.value)
        unit = group[0].throughput.unit
        values = [r.throughput.value for r in group]
        low = [max(0.0, v - (r.throughput.ci_low or v)) for v, r in zip(values, group)]
        high = [max(0.0, (r.throughput.ci_high or v) - v) for v, r in zip(values, group)]
        dtypes = sorted({r.spec["dtype"] for r in group})
        colours = [COLOURS[dtypes.index(r.spec["dtype"]) % len(COLOURS)] for r in group]
        figure, axis = plt.subplots(figsize=(8, 0.45 * len(group) + 1.4))
        axis.barh([label(r) for r in group], values, xerr=[low, high], color=colours, capsize=3)
        from matplotlib.ticker import EngFormatter

        axis.xaxis.set_major_formatter(EngFormatter(unit=unit))  # 12 GFLOP/s, not "1e10" under the axis
        axis.set_xlabel("throughput, bars: 95% CI")
        axis.set_title(f"Throughput: {workload}")
        for dtype in dtypes:
            axis.bar(0, 0, color=COLOURS[dtypes.index(dtype) % len(COLOURS)], label=dtype)
        axis.legend(title="dtype", loc="lower right")
        charts.append(_svg(figure))
    return charts


def latency_charts(records: Sequence[Record | Mapping[str, Any]]) -> list[str]:
    plt = _pyplot()
    charts = []
    by_workload: dict[str, list] = defaultdict(list)
    for record in _charted(records):
        by_workload[workload_label(record)].append(record)
    for workload, group in sorted(by_workload.items())[:8]:
        samples = [[v / 1e6 for v in r.measurement["latencies_ns"]] for r in group]
        figure, axis = plt.subplots(figsize=(8, 0.45 * len(group) + 1.4))
        axis.boxplot(samples, orientation="horizontal", showfliers=False)
        axis.set_yticks(range(1, len(group) + 1), [label(r) for r in group])
        axis.set_xlabel("latency per step (ms); box: quartiles, whiskers: 1.5 IQR")
        axis.set_title(f"Latency distribution: {workload}")
        charts.append(_svg(figure))
    return charts


def pareto_charts(ranking: Ranking | None) -> list[str]:
    """One cost-versus-latency chart per workload (one unit of cost per chart), each with its
    Pareto line: the candidates no other beats on both cost and p99."""
    if ranking is None or not ranking.ranked:
        return ['<p class="note">No priced candidates: every candidate was excluded (see Decision), or the '
                "catalog has no price for its device (give one with --catalog).</p>"]
    plt = _pyplot()
    charts = []
    for workload in sorted({c["workload"] for c in ranking.ranked})[:8]:
        group = [c for c in [*ranking.ranked, *ranking.alternatives] if c["workload"] == workload and c["p99_s"]]
        if not group:
            continue
        points = sorted((c["p99_s"] * 1e3, c["cost"]["value"], c) for c in group)
        frontier, best = [], float("inf")
        for latency, cost, _ in points:
            if cost < best:
                frontier.append((latency, cost))
                best = cost
        figure, axis = plt.subplots(figsize=(8, 4.5))
        for index, candidate in enumerate(sorted({c["candidate"] for c in group})):
            mine = [(x, y) for x, y, c in points if c["candidate"] == candidate]
            axis.scatter([x for x, _ in mine], [y for _, y in mine], color=COLOURS[index % len(COLOURS)],
                         label=candidate[:70])
        axis.plot([f[0] for f in frontier], [f[1] for f in frontier], "k--", linewidth=1, label="Pareto frontier")
        axis.set_xlabel("p99 latency (ms)")
        axis.set_ylabel(f"USD per {group[0]['cost']['per']}")
        axis.set_title(f"Cost versus latency: {workload}"[:100], fontsize=10)
        axis.legend(fontsize=8)
        charts.append(_svg(figure))
    return charts


def _tied(winner: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Whether ``other`` is within noise of ``winner``: the same $ per device-hour and throughput
    intervals that overlap, so the cheaper cost rests on a margin the measurement cannot tell apart."""
    if winner["cost"]["usd_per_device_hour"] != other["cost"]["usd_per_device_hour"]:
        return False
    a, b = winner.get("throughput_ci"), other.get("throughput_ci")
    return bool(a and b) and a[0] <= b[1] and b[0] <= a[1]


def _energy_per_unit(candidate: Mapping[str, Any]) -> str:
    """Joules per unit at the candidate's throughput, measured or estimated from TDP (labelled)."""
    watts, rate = candidate.get("watts"), candidate.get("throughput")
    if not watts or not rate:
        return "-"
    unit = (candidate.get("throughput_unit") or "unit/s").removesuffix("/s")
    value = watts / rate
    text = f"{value * 1e3:.3g} mJ/{unit}" if value < 1 else f"{value:.3g} J/{unit}"
    return text + (" (estimated from TDP)" if candidate.get("watts_estimated") else " (measured)")


@dataclass(frozen=True)
class WorkloadDecision:
    """One workload's answer: its ranked candidates (cheapest first) and the excluded, with reasons."""

    workload: str
    ranked: list[dict[str, Any]]
    excluded: list[dict[str, Any]]

    @property
    def tied(self) -> list[dict[str, Any]]:
        """Runners-up within noise of the recommended candidate (:func:`_tied`)."""
        return [c for c in self.ranked[1:] if _tied(self.ranked[0], c)]


def decisions(ranking: Ranking) -> list[WorkloadDecision]:
    """Per workload, what the Decision sections show (HTML and markdown alike). Probes are
    capabilities, shown in their own section: never a decision between candidates."""
    decided = [e for e in ranking.excluded if not e.get("probe")]
    workloads = sorted({c["workload"] for c in ranking.ranked} | {e.get("workload_group", e["workload"])
                                                                  for e in decided})
    return [WorkloadDecision(w, [c for c in ranking.ranked if c["workload"] == w],
                             [e for e in decided if e.get("workload_group", e["workload"]) == w]) for w in workloads]


def recommendation(decision: WorkloadDecision) -> tuple[str, str]:
    """(candidate, the rest of the sentence) naming the recommended candidate and its price."""
    winner, ranked = decision.ranked[0], decision.ranked
    reference = " (reference price)" if (winner["cost"]["inputs"].get("price") or {}).get("reference") else ""
    return winner["candidate"], (f" on {winner['catalog_id']}" + (f" at {winner['load']}" if winner["load"] else "")
                                 + f": ${winner['cost']['value']:.4g} per {winner['cost']['per']}{reference}"
                                 + (f", {len(ranked) - 1} other candidate(s) cost more" if len(ranked) > 1 else "")
                                 + ".")


DECISION_HEADERS = ["rank", "candidate", "device", "load point", "cost", "throughput per device", "p99",
                    "energy per unit", "parity vs float32 reference", "policy"]
TIED_NOTE = ("Not a clear win: on the same price, {names} measured a throughput whose 95% interval overlaps the "
             "recommended one's, so the margin may be noise; decide on other grounds or measure longer.")


def decision_rows(decision: WorkloadDecision, policy_name: str | None) -> list[list[Any]]:
    """The ranked table of one workload (:data:`DECISION_HEADERS`); the recommended one starred,
    a rank within noise of the one above it marked."""
    verdict = f"passes {policy_name!r}" if policy_name else "no policy given"
    ranked, rows = decision.ranked, []
    for index, c in enumerate(ranked):
        price = c["cost"]["inputs"].get("price") or {}
        tie = f" (≈ rank {ranked[index - 1]['rank']})" if index and _tied(ranked[index - 1], c) else ""
        rows.append([("★ " if index == 0 else "") + str(c["rank"]) + tie,
                     c["candidate"] + (" (noisy: interference)" if c.get("noisy") else ""), c["catalog_id"],
                     c["load"] or "-",
                     f"${c['cost']['value']:.4g} per {c['cost']['per']}" + (" (reference)" if price.get("reference")
                                                                            else "")
                     + (" (estimated energy)" if c["cost"]["estimated"] else ""),
                     format_rate(c["throughput"], c["throughput_unit"]), format_seconds(c["p99_s"]),
                     _energy_per_unit(c), c["parity"], verdict])
    return rows


def excluded_rows(decision: WorkloadDecision) -> list[list[Any]]:
    return [[e["candidate"], e["workload"], "; ".join(e["excluded_by"])] for e in decision.excluded]


EXCLUDED_HEADERS = ["excluded candidate", "workload", "why"]


def decision_section(ranking: Ranking | None, policy_name: str | None = None) -> list[str]:
    """Per workload: the ranked candidates (cost, throughput per device, p99, energy per unit,
    policy), the recommended one first and marked, then the excluded with their reasons."""
    if ranking is None:
        return ['<p class="note">Not ranked: no catalog was loaded.</p>']
    answers = decisions(ranking)
    if not answers:
        return ['<p class="note">Nothing to decide: no benchmark in these runs.</p>']
    parts = ['<p class="note">For each workload, the candidates that ran, passed parity, were valid for their '
             "scenario, met the SLOs and the policy, and have a price, cheapest first. Prices marked "
             "<em>reference</em> are sourced cloud list prices (a CPU: per vCPU-hour x the vCPUs it used), not "
             "your quote; give yours with --catalog.</p>"]
    for decision in answers:
        parts.append(f"<h3>{esc(decision.workload)}</h3>")
        if decision.ranked:
            name, rest = recommendation(decision)
            parts.append(f'<p class="good"><strong>Recommended: {esc(name)}</strong>{esc(rest)}</p>')
            if decision.tied:
                names = ", ".join(c["candidate"] for c in decision.tied)
                parts.append(f'<p class="note">{esc(TIED_NOTE.format(names=names))}</p>')
            parts.append(_table(DECISION_HEADERS, decision_rows(decision, policy_name), numeric={0, 4, 5, 6}))
        else:
            parts.append('<p class="bad">No candidate qualifies for this workload: see the reasons below.</p>')
        if decision.excluded:
            parts.append(_table(EXCLUDED_HEADERS, excluded_rows(decision)))
    return parts


def capability_rows(records: Sequence[Record | Mapping[str, Any]]) -> list[list[Any]]:
    """[probe, candidate, achieved, peak, share, peak's basis] for the roofline probes (gemm,
    membw): what the device can do, against its peak, never priced per FLOP or byte."""
    rows = []
    for record in _charted(records):
        # A probe's capacity is what it sustains back to back; at an offered load it reads the load.
        if (record.unit not in PROBE_UNITS or record.throughput is None
                or record.spec.get("scenario", "single-stream") not in ("single-stream", "offline")):
            continue
        checks = [c for c in (record.plausibility.checks if record.plausibility else None) or []
                  if c.get("check") in ("compute", "bandwidth") and c.get("peak")]
        peak = checks[0] if checks else None
        rows.append([workload_label(record), label(record),
                     format_rate(record.throughput.value, record.throughput.unit),
                     format_rate(peak["peak"], peak["unit"]) if peak else "-",
                     f"{record.throughput.value / peak['peak']:.1%}" if peak else "-",
                     peak["basis"] if peak else "no declared or catalog peak"])
    return rows


def _point_costs(ranking: Ranking | None) -> dict[tuple, dict[str, Any]]:
    """Cost of every priced load point (ranked or an alternative), by (run id, record key)."""
    if ranking is None:
        return {}
    return {(c["run_id"], c["record_key"]): c["cost"] for c in [*ranking.ranked, *ranking.alternatives]}


def frontier_rows(points: Sequence[OperatingPoint], ranking: Ranking | None) -> list[list[Any]]:
    """[candidate, load, tokens/s/device, tokens/s/user, p99 TTFT, p99 TPOT, cost, frontier] for
    the load points of one workload."""
    costs = _point_costs(ranking)
    on_frontier = {id(p) for p in pareto_frontier(points)}
    rows = []
    for point in sorted(points, key=lambda p: (p.candidate, -p.user_tokens_per_s)):
        cost = costs.get((point.run_id, point.record_key))
        rows.append([point.candidate, point.load or "-", format_rate(point.tokens_per_s_per_device, "token/s"),
                     format_rate(point.user_tokens_per_s, "token/s"), format_seconds(point.ttft_p99_s),
                     format_seconds(point.tpot_p99_s), f"${cost['value']:.4g} per {cost['per']}" if cost else "-",
                     "yes" if id(point) in on_frontier else ""])
    return rows


def _series(points: Sequence[OperatingPoint]) -> list[tuple[str, list[OperatingPoint]]]:
    """The points of each candidate in each run (a line joins one sweep's points, never two runs'),
    labelled with the run where the points come from more than one."""
    runs = {p.run_id for p in points}
    keys = sorted({(p.candidate, p.run_id or "") for p in points})
    return [(candidate + (f" (run {run})" if len(runs) > 1 else ""),
             sorted((p for p in points if (p.candidate, p.run_id or "") == (candidate, run)),
                    key=lambda p: p.user_tokens_per_s)) for candidate, run in keys]


def _frontier_chart(workload: str, points: Sequence[OperatingPoint], ranking: Ranking | None) -> str:
    plt = _pyplot()
    costs = _point_costs(ranking)
    figure, axis = plt.subplots(figsize=(8, 5))
    for index, (name, mine) in enumerate(_series(points)):
        colour = COLOURS[index % len(COLOURS)]
        axis.plot([p.user_tokens_per_s for p in mine], [p.tokens_per_s_per_device for p in mine], "o-",
                  color=colour, label=name[:80])
        for p in mine:
            cost = costs.get((p.run_id, p.record_key))
            text = (p.load or "") + (f"\n${cost['value']:.3g}/{cost['per']}" if cost else "")
            axis.annotate(text, (p.user_tokens_per_s, p.tokens_per_s_per_device), textcoords="offset points",
                          xytext=(5, 4), fontsize=7, color=colour)
    frontier = pareto_frontier(points)
    axis.plot([p.user_tokens_per_s for p in frontier], [p.tokens_per_s_per_device for p in frontier], "k--",
              linewidth=1, label="Pareto frontier")
    axis.set_xlabel("interactivity: output tokens/s per user (1 / median TPOT)")
    axis.set_ylabel("output tokens/s per device")
    axis.set_title(f"Throughput versus interactivity: {workload}"[:100], fontsize=10)
    # Room above and right of the highest and rightmost points for their labels.
    axis.set_xlim(0, max(p.user_tokens_per_s for p in points) * 1.25)
    axis.set_ylim(0, max(p.tokens_per_s_per_device for p in points) * 1.2)
    axis.legend(fontsize=8, loc="lower left")
    return _svg(figure)


def frontier_section(records: Sequence[Record | Mapping[str, Any]], ranking: Ranking | None) -> list[str]:
    """Per workload: output tokens/s per device against tokens/s per user, one line per
    candidate through its load points, the Pareto frontier dashed, the cost per 1M tokens at
    each priced point; and the points as a table."""
    points = operating_points(_charted(records))
    if not points:
        return ['<p class="note">No throughput-versus-interactivity chart: it needs LLM records with per-token '
                "timing (the llm workload; sweep load points with repeated --concurrency or --qps).</p>"]
    parts = ['<p class="note">Each LLM load point: output tokens per second per device (what the hardware '
             "earns) against tokens per second each user sees (1 / median TPOT). More load moves a candidate "
             "down and to the left along its line; a point is on the frontier when no other beats it on both. "
             "Costs are per 1M output tokens at the point.</p>"]
    for workload in sorted({p.workload for p in points})[:8]:
        group = [p for p in points if p.workload == workload]
        parts += [f"<h3>{esc(workload)}</h3>", _frontier_chart(workload, group, ranking),
                  _table(["candidate", "load point", "per device", "per user", "p99 TTFT", "p99 TPOT", "cost",
                          "frontier"], frontier_rows(group, ranking), numeric={2, 3, 4, 5, 6})]
    return parts


def roofline_chart(records: Sequence[Record | Mapping[str, Any]]) -> str:
    ceilings = read_ceilings(records)
    rows = [(label(r) + " " + r.spec["workload"], r.tokens.decode_bytes_per_s / 1e9, fraction[1] / 1e9)
            for r in _charted(records) if (fraction := roofline_fraction(r, ceilings))]
    if not rows:
        return '<p class="note">No roofline: run the membw workload with an LLM workload on the same device.</p>'
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    axis.barh([name for name, _, _ in rows], [streamed for _, streamed, _ in rows], color=COLOURS[0],
              label="decode: bytes streamed")
    for index, (_, _, ceiling) in enumerate(rows):
        axis.plot([ceiling, ceiling], [index - 0.4, index + 0.4], color=COLOURS[3], linewidth=2,
                  label="measured read bandwidth (membw)" if index == 0 else None)
    axis.set_xlabel("GB/s")
    axis.set_title("LLM decode against the memory-bandwidth roofline")
    axis.legend(loc="lower right")
    return _svg(figure)


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td class="num">{esc(c)}</td>' if i in numeric else f"<td>{esc(c)}</td>"
                         for i, c in enumerate(row)) + "</tr>"
        for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def summary_rows(records: Sequence[Record | Mapping[str, Any]], ranking: Ranking | None) -> list[list[Any]]:
    ranked = {(c["run_id"], c["record_key"]): c for c in (ranking.ranked if ranking else [])}
    alternatives = {(c["run_id"], c["record_key"]): c for c in (ranking.alternatives if ranking else [])}
    excluded = {}
    if ranking:
        for e in ranking.excluded:
            excluded.setdefault(e["candidate"] + e["workload"], "; ".join(e["excluded_by"]))
    rows = []
    for record in map(as_record, records):
        candidate = ranked.get((record.run_id, record.key))
        alternative = alternatives.get((record.run_id, record.key))
        parity = record.parity.passed if record.parity is not None else None
        throughput, stats = record.throughput, record.stats
        if candidate:
            status = f"rank {candidate['rank']}" + (f" at {candidate['load']}" if candidate["load"] else "")
            cost = f"${candidate['cost']['value']:.4g} per {candidate['cost']['per']}"
        elif alternative:
            status = f"qualifies; ranked at its cheaper point {alternative['ranked_load']}"
            cost = f"${alternative['cost']['value']:.4g} per {alternative['cost']['per']}"
        else:
            status = excluded.get(label(record) + workload_label(record)) or (
                "not ranked (no catalog given)" if ranking is None else record.status)
            cost = "-"
        interference = record.interference
        if interference is not None and interference.noisy:  # marked, not dropped: not the benchmark's own machine
            status += " · noisy: " + "; ".join(interference.reasons or ["other load on the host"])
        rows.append([workload_label(record), label(record), cost,
                     format_rate(throughput.value, throughput.unit) if throughput is not None else "-",
                     format_seconds(stats.p99_s if stats is not None else None),
                     {True: "pass", False: "FAIL", None: "unchecked"}[parity], status])
    return rows


def _markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    cell = lambda value: str(value).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(cell(c) for c in row) + " |" for row in rows)]


def markdown_report(records: Sequence[Record | Mapping[str, Any]], ranking: Ranking | None,
                    policy_name: str | None = None) -> str:
    """The report for procurement documents: the decision per workload first (ranked candidates,
    the recommended one, the excluded with reasons), then every benchmark."""
    records = [as_record(r) for r in records]
    lines = ["# bakeoff report", "", "## Decision", ""]
    if ranking is None:
        lines += ["Not ranked: no catalog was loaded.", ""]
    for decision in decisions(ranking) if ranking is not None else []:
        lines += [f"### {decision.workload}", ""]
        if decision.ranked:
            name, rest = recommendation(decision)
            lines += [f"Recommended: **{name}**{rest}", ""]
            if decision.tied:
                lines += [TIED_NOTE.format(names=", ".join(c["candidate"] for c in decision.tied)), ""]
            lines += _markdown_table(DECISION_HEADERS, decision_rows(decision, policy_name)) + [""]
        else:
            lines += ["No candidate qualifies for this workload.", ""]
        if decision.excluded:
            lines += _markdown_table(EXCLUDED_HEADERS, excluded_rows(decision)) + [""]
    lines += ["## Every benchmark", ""]
    lines += _markdown_table(["workload", "candidate", "cost", "throughput", "p99", "parity", "status / policy"],
                             sorted(summary_rows(records, ranking), key=lambda row: (row[0], row[1])))
    return "\n".join(lines) + "\n"


def build_report(records: Sequence[Record | Mapping[str, Any]], manifests: Sequence[Mapping[str, Any]],
                 ranking: Ranking | None = None, title: str = "bakeoff report", policy_name: str | None = None) -> str:
    records = [as_record(r) for r in records]
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{esc(title)}</title>",
             # An inline empty icon, so a browser does not even ask for /favicon.ico.
             '<link rel="icon" href="data:,">',
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>",
             f'<p class="note">{len(records)} benchmarks from {len(manifests)} run(s). Timings are medians with '
             "95% confidence intervals; every number carries its unit. Energy without a meter is estimated from "
             "the catalog's TDP and labelled so.</p>",
             "<h2>Decision</h2>", *decision_section(ranking, policy_name),
             "<h2>Capability probes</h2>",
             '<p class="note">What each device can do, against its peak (the device\'s declaration, else the '
             "catalog's): achieved FLOP/s and memory bandwidth. Probes are not work a buyer pays for, so they "
             "are never priced.</p>",
             *([_table(["probe", "candidate", "achieved", "peak", "share of peak", "peak from"], rows,
                       numeric={2, 3, 4})] if (rows := capability_rows(records)) else
               ['<p class="note">No gemm or membw probe in these runs.</p>']),
             "<h2>Throughput versus interactivity</h2>", *frontier_section(records, ranking),
             "<h2>Cost versus latency</h2>", *pareto_charts(ranking),
             "<h2>Detail</h2>",
             "<h3>Every benchmark</h3>",
             _table(["workload", "candidate", "cost", "throughput", "p99", "parity", "status / policy"],
                    sorted(summary_rows(records, ranking), key=lambda row: (row[0], row[1])), numeric={2, 3, 4}),
             "<h3>Not charted</h3>", not_charted_section(records),
             "<h3>Throughput by backend and dtype</h3>", *throughput_charts(records),
             "<h3>Latency distributions</h3>", *latency_charts(records),
             "<h3>Roofline</h3>", roofline_chart(records),
             "<h3>Environment</h3>"]
    for manifest in manifests:
        host = manifest.get("host") or {}
        cpu = host.get("cpu") or {}
        rows = [["run", manifest.get("run_id")], ["status", manifest.get("status")],
                ["started", manifest.get("started_at")], ["bakeoff", manifest.get("bakeoff_version")],
                ["git commit", (manifest.get("git") or {}).get("commit")],
                ["CPU", f"{cpu.get('model')} ({cpu.get('logical_cores')} logical cores)"],
                ["memory", format_bytes(host.get("memory_bytes"))], ["OS", host.get("os")],
                ["Python", host.get("python")],
                ["packages", ", ".join(f"{k} {v}" for k, v in sorted((host.get("packages") or {}).items()))],
                ["devices", "; ".join(f"{d.get('backend')}/{d.get('device')}: {d.get('model')}"
                                      for d in manifest.get("devices") or [])]]
        parts.append(_table(["field", "value"], rows))
    parts.append("</body></html>")
    return "\n".join(parts)
