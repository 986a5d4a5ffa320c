"""Ranking candidates and planning fleets, from measured records.

A candidate is one measured configuration (backend, device, workload, dtype,
batch size, scenario). To be ranked it must have run (``ok``), pass parity,
be plausible (harness/hardware/plausibility.py), have a valid scenario result, meet
the p99 SLO, match a catalog entry, pass the policy and have a price.
Everything else is listed as excluded with the check or rule that excluded
it. Ranking is by cost per 1M tokens (per 1k units for other workloads)
within each workload, cheapest first.

A sweep of load points (``--concurrency 1 2 4 8``) measures one candidate several
times. Each candidate is ranked once, at its cheapest point that qualifies: that meets
the p99 SLOs (E2E, and TTFT and TPOT where given) and gives every user at least
``min_user_tokens_per_s`` (``1 / median TPOT``, harness/procurement/frontier.py). Its
other qualifying points are kept as ``alternatives``, with their costs, for the report's
frontier; ``bakeoff plan`` sizes the fleet at the ranked point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from harness.hardware.catalog import Catalog, device_count, figure
from harness.procurement.cost import HOURS_PER_YEAR, OwnedInputs, cloud_cost, owned_cost
from harness.procurement.frontier import user_tokens_per_s
from harness.procurement.policy import Policy
from harness.results.record import (Record, as_record, candidate_label, load_label, measurement_problem,
                                    parity_summary, workload_label)


#: Units of the roofline probes (gemm: FLOP, membw: bytes). They measure what a device can do,
#: not work a buyer pays for, so a price per FLOP or per byte is never shown.
PROBE_UNITS = ("FLOP", "B")


@dataclass(frozen=True)
class OwnedSettings:
    """The buyer's ownership and facility inputs (harness/procurement/cost.py), each in its unit."""

    years: float = 4.0
    utilisation: float = 0.6
    usd_per_kwh: float = 0.12
    pue: float = 1.3
    hosting_usd_per_year: float = 0.0
    #: Fractions of the list price (0.25: 25%).
    import_duty: float = 0.0
    grey_market_premium: float = 0.0
    #: Months from order until the capacity serves.
    lead_time_months: float = 0.0
    #: The host's watts per device (CPUs, NICs, fans), and devices per host (a server, a node).
    host_overhead_w: float = 0.0
    devices_per_host: int = 8
    #: The facility's power cap in MW (None: no cap).
    power_cap_mw: float | None = None


@dataclass(frozen=True)
class ServingTargets:
    """What a buyer's users need: p99 TTFT and TPOT bounds and a least per-user token rate
    (tokens/s per user, ``1 / median TPOT``). ``None``: not asked."""

    ttft_p99_s: float | None = None
    tpot_p99_s: float | None = None
    min_user_tokens_per_s: float | None = None


@dataclass
class Ranking:
    ranked: list[dict[str, Any]] = field(default_factory=list)
    excluded: list[dict[str, Any]] = field(default_factory=list)
    #: Qualifying load points of a ranked candidate that cost more than its ranked point.
    alternatives: list[dict[str, Any]] = field(default_factory=list)


#: The candidate label of every table (harness/results/record.py), under its old name here.
label = candidate_label


def _watts(record: Record, entry: Mapping[str, Any]) -> tuple[float | None, bool]:
    """Measured average watts, else the catalog TDP (estimated)."""
    measured = record.energy.average_watts if record.energy is not None else None
    if measured:
        return float(measured), False
    tdp = figure(entry, "tdp_w")
    return (float(tdp), True) if tdp else (None, True)


def _serving_problem(record: Record, targets: ServingTargets) -> str | None:
    """Why the record misses the buyer's serving targets, or None."""
    tokens = record.tokens
    for name, bound, stats in (("TTFT", targets.ttft_p99_s, tokens.ttft if tokens else None),
                               ("TPOT", targets.tpot_p99_s, tokens.tpot if tokens else None)):
        if bound is None:
            continue
        p99 = (stats or {}).get("p99_s")
        if p99 is None:
            return f"SLO: no {name} measured (p99 {name} <= {bound * 1e3:.4g} ms asked)"
        if p99 > bound:
            return f"SLO: p99 {name} {p99 * 1e3:.4g} ms > {bound * 1e3:.4g} ms"
    if targets.min_user_tokens_per_s is not None:
        per_user = user_tokens_per_s(record)
        if per_user is None:
            return "no per-user token rate (no TPOT measured)"
        if per_user < targets.min_user_tokens_per_s:
            return (f"interactivity: {per_user:.4g} token/s per user < {targets.min_user_tokens_per_s:g} "
                    "(--min-user-tokens-per-s)")
    return None


def cloud_price(entry: Mapping[str, Any], record: Record) -> tuple[float | None, dict[str, Any]]:
    """$ per device-hour and the price it came from: the instance the host reported (its DMI
    product name) where the catalog lists it, else the cheapest device price; for a CPU without
    a device price, its reference price per vCPU-hour times the vCPUs the benchmark used (its
    threads), labelled ``reference``."""
    instance = (record.device_info or {}).get("cloud_instance")

    def named(price: Mapping[str, Any]) -> bool:
        return bool(instance) and str(price.get("instance", "")).split(" ")[0] == instance

    prices = sorted(entry.get("prices", []), key=lambda p: p["usd_per_device_hour"])
    vcpu = sorted(entry.get("vcpu_prices", []), key=lambda p: p["usd_per_vcpu_hour"])
    threads = int(record.spec.get("threads") or 1)

    def device(price: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
        return price["usd_per_device_hour"], {**price, "basis": "device price" + (
            f" of the host's instance {instance}" if named(price) else "")}

    def per_vcpu(price: Mapping[str, Any]) -> tuple[float, dict[str, Any]]:
        # The host's own instance is rented whole, whatever the benchmark used of it; a reference
        # instance is sized to the vCPUs the benchmark used (its threads).
        vcpus = int(price["vcpus"]) if named(price) else threads
        why = "the host's own instance, rented whole" if named(price) else "the benchmark's threads"
        return vcpus * price["usd_per_vcpu_hour"], {
            **price, "reference": True, "vcpus_used": vcpus,
            "basis": (f"reference price: {price['instance']} at ${price['usd_per_vcpu_hour']:.4g} per vCPU-hour x "
                      f"{vcpus} vCPUs ({why})")}

    # The host's own instance first (device, then vCPU price), else the cheapest device price, else
    # the cheapest reference price per vCPU.
    for chosen in ([device(p) for p in prices if named(p)] + [per_vcpu(p) for p in vcpu if named(p)]
                   + [device(p) for p in prices[:1]] + [per_vcpu(p) for p in vcpu[:1]]):
        return chosen
    return None, {}


def evaluate(record: Record | Mapping[str, Any], catalog: Catalog, policy: Policy | None, slo_p99_s: float | None,
             pricing: str, owned: OwnedSettings,
             targets: ServingTargets = ServingTargets()) -> tuple[dict[str, Any] | None, list[str]]:
    """(candidate, []) when rankable; (None, reasons) when excluded."""
    problem = measurement_problem(record, catalog)
    if problem is not None:
        return None, [problem]
    record = as_record(record)
    if record.unit in PROBE_UNITS:
        return None, [f"a capability probe ({record.unit}/s): measured against the device's peak, never priced "
                      f"per {record.unit}"]
    p99 = record.stats.p99_s if record.stats is not None else None
    if slo_p99_s is not None and (p99 is None or p99 > slo_p99_s):
        return None, [f"SLO: p99 {p99 * 1e3:.4g} ms > {slo_p99_s * 1e3:.4g} ms"]
    problem = _serving_problem(record, targets)
    if problem is not None:
        return None, [problem]
    throughput = record.throughput
    if throughput is None or not throughput.value:
        return None, ["no throughput measured"]
    entry = catalog.match((record.device_info or {}).get("model"))
    if entry is None and not (record.device_info or {}).get("model"):
        # An endpoint does not say what serves it: the buyer names it (openai-http's device_label).
        return None, [f"device model unknown: name it ({record.spec['backend']}'s device_label option, e.g. "
                      f"-O {record.spec['backend']}.device_label='8x H100 SXM') to price it"]
    reasons = policy.evaluate(entry) if policy else ([] if entry else ["device not in the catalog"])
    if reasons:
        return None, reasons
    unit = record.unit or "unit"
    # A candidate of N devices (a server behind an endpoint) is priced per device: its throughput
    # and measured power are shared by N devices, each priced at the catalog's device price.
    devices = device_count(record.device_info)
    candidate_units_per_s = float(throughput.value)
    units_per_s = candidate_units_per_s / devices
    watts, estimated = _watts(record, entry)
    if watts is not None and not estimated:
        watts /= devices
    if pricing == "cloud":
        hourly, price = cloud_price(entry, record)
        if hourly is None:
            return None, [f"no cloud price for {entry['id']!r} in the catalog (add one with --catalog)"]
        cost = cloud_cost(units_per_s, unit, hourly, price)
    else:
        purchase = figure(entry, "purchase_usd")
        if purchase is None:
            return None, [f"no purchase_usd for {entry['id']!r} in the catalog (add one with --catalog)"]
        if watts is None:
            return None, [f"no measured energy and no tdp_w for {entry['id']!r}"]
        cost = owned_cost(units_per_s, unit, OwnedInputs(purchase, owned.years, owned.utilisation, watts,
                                                         estimated, owned.usd_per_kwh, owned.pue,
                                                         owned.hosting_usd_per_year, owned.import_duty,
                                                         owned.grey_market_premium, owned.lead_time_months,
                                                         owned.host_overhead_w))
    tokens = record.tokens
    return {
        "candidate": label(record),
        # Without its load point: the points of one sweep compete for one place (rank()).
        "workload": workload_label(record, load=False),
        "load": load_label(record),
        "user_tokens_per_s": user_tokens_per_s(record),
        "ttft_p99_s": (tokens.ttft or {}).get("p99_s") if tokens is not None else None,
        "tpot_p99_s": (tokens.tpot or {}).get("p99_s") if tokens is not None else None,
        "catalog_id": entry["id"],
        # The margin by which it passed parity (a 4-bit candidate passes with less than a float16 one).
        "parity": parity_summary(record),
        "throughput": units_per_s,
        # The 95% interval per device, where the scenario gives one: a margin inside it is no win.
        "throughput_ci": ([throughput.ci_low / devices, throughput.ci_high / devices]
                          if throughput.ci_low is not None and throughput.ci_high is not None else None),
        "throughput_unit": throughput.unit,
        "devices_per_candidate": devices,
        "candidate_throughput": candidate_units_per_s,
        "p99_s": p99,
        "watts": watts,
        "watts_estimated": estimated,
        "cost": cost.to_dict(),
        "record_key": record.key,
        "run_id": record.run_id,
        # Marked, not dropped: other processes used the machine while it was measured.
        "noisy": bool(record.interference is not None and record.interference.noisy),
        "noisy_reasons": list(record.interference.reasons or []) if record.interference is not None else [],
    }, []


def rank(records: Sequence[Record | Mapping[str, Any]], catalog: Catalog, policy: Policy | None = None,
         slo_p99_s: float | None = None, pricing: str = "cloud", owned: OwnedSettings = OwnedSettings(),
         targets: ServingTargets = ServingTargets()) -> Ranking:
    result = Ranking()
    qualifying = []
    for record in records:
        candidate, reasons = evaluate(record, catalog, policy, slo_p99_s, pricing, owned, targets)
        if candidate is None:
            result.excluded.append({"candidate": label(record), "workload": workload_label(record),
                                    "workload_group": workload_label(record, load=False),
                                    # A probe is a capability, never a decision, whatever excluded it.
                                    "probe": as_record(record).unit in PROBE_UNITS,
                                    "excluded_by": reasons, "run_id": as_record(record).run_id})
        else:
            qualifying.append(candidate)
    # One place per candidate: its cheapest qualifying load point of a run's sweep.
    qualifying.sort(key=lambda c: c["cost"]["value"])
    chosen: dict[tuple, dict[str, Any]] = {}
    for candidate in qualifying:
        key = (candidate["workload"], candidate["candidate"], candidate["catalog_id"], candidate["run_id"])
        if key in chosen:
            result.alternatives.append({**candidate, "ranked_load": chosen[key]["load"]})
        else:
            chosen[key] = candidate
            result.ranked.append(candidate)
    result.ranked.sort(key=lambda c: (c["workload"], c["cost"]["value"]))
    for position, candidate in enumerate(result.ranked):
        same = [c for c in result.ranked[:position] if c["workload"] == candidate["workload"]]
        candidate["rank"] = len(same) + 1
    return result


def efficiency(candidate: Mapping[str, Any], owned: OwnedSettings) -> dict[str, float | None]:
    """Units per dollar and per MWh (facility energy: device and host watts x PUE) of one device."""
    cost = candidate["cost"]["value"]
    scale = 1e6 if candidate["cost"]["per"] == "1M tokens" else 1e3
    watts = candidate.get("watts")
    facility_w = (watts + owned.host_overhead_w) * owned.pue if watts is not None else None
    return {"units_per_usd": scale / cost if cost else None,
            "units_per_mwh": candidate["throughput"] * 3600 / (facility_w / 1e6) if facility_w else None}


#: What ``bakeoff rank --sort-by`` may order by: the key and whether larger is better.
SORT_KEYS = {"cost": ("cost", False), "tokens-per-dollar": ("units_per_usd", True),
             "tokens-per-mwh": ("units_per_mwh", True), "throughput": ("throughput", True), "p99": ("p99_s", False)}


def sort_ranking(ranking: Ranking, by: str, owned: OwnedSettings) -> None:
    """Re-rank within each workload by ``by`` (:data:`SORT_KEYS`); unknown figures sort last."""
    key, larger = SORT_KEYS[by]
    for candidate in ranking.ranked:
        candidate.update(efficiency(candidate, owned))

    def value(candidate: Mapping[str, Any]) -> float:
        figure = candidate["cost"]["value"] if key == "cost" else candidate.get(key)
        if figure is None:
            return float("inf")
        return -figure if larger else figure

    ranking.ranked.sort(key=lambda c: (c["workload"], value(c)))
    for position, candidate in enumerate(ranking.ranked):
        candidate["rank"] = 1 + sum(1 for c in ranking.ranked[:position] if c["workload"] == candidate["workload"])


def plan_fleet(ranking: Ranking, target_units_per_s: float, owned: OwnedSettings) -> list[dict[str, Any]]:
    """Devices, hosts and facility MW per ranked candidate to serve the target rate, with its
    yearly cost, units per dollar and per MWh, when it starts serving (the lead time), and
    whether it fits the facility's power cap (else the most it can serve under it)."""
    plans = []
    for candidate in ranking.ranked:
        devices = math.ceil(target_units_per_s / candidate["throughput"])
        hourly = candidate["cost"]["usd_per_device_hour"]
        model = candidate["cost"]["model"]
        yearly = (devices * hourly * HOURS_PER_YEAR if model == "cloud"
                  else devices * hourly * HOURS_PER_YEAR * owned.utilisation)
        watts = candidate["watts"]
        facility_mw = (devices * (watts + owned.host_overhead_w) * owned.pue / 1e6) if watts is not None else None
        fits = None if owned.power_cap_mw is None or facility_mw is None else facility_mw <= owned.power_cap_mw
        under_cap = None
        if fits is False:
            per_device_mw = (watts + owned.host_overhead_w) * owned.pue / 1e6
            under_cap = math.floor(owned.power_cap_mw / per_device_mw) * candidate["throughput"]
        plans.append({
            **{k: candidate[k] for k in ("candidate", "workload", "load", "user_tokens_per_s", "catalog_id",
                                         "throughput", "throughput_unit")},
            "devices": devices,
            "hosts": math.ceil(devices / owned.devices_per_host),
            "pricing": model,
            "yearly_cost_usd": yearly,
            "power_w": devices * watts if watts is not None else None,
            "power_estimated": candidate["watts_estimated"],
            "facility_mw": facility_mw,
            "power_cap_mw": owned.power_cap_mw,
            "fits_power_cap": fits,
            "max_units_per_s_under_cap": under_cap,
            "serving_from_month": owned.lead_time_months,
            **efficiency(candidate, owned),
        })
    return plans
