"""Ranking and fleet planning: hand-computed cases, exclusions with their reasons, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.contract.errors import UserError
from harness.hardware.catalog import load_catalog
from harness.presentation.cli import cli
from harness.procurement.policy import load_policy
from harness.procurement.rank import OwnedSettings, plan_fleet, rank

DOCS = Path(__file__).resolve().parent.parent / "docs"


def record(backend, tokens_per_s, *, model="AMD EPYC", p99=0.05, parity=True, valid=True, status="ok"):
    return {
        "run_id": "r", "key": backend, "status": status, "reason": None if status == "ok" else "boom",
        "spec": {"backend": backend, "device": "cpu", "workload": "llm", "params": {"preset": "tiny"},
                 "dtype": "float32", "batch_size": 1, "scenario": "single-stream"},
        "unit": "token", "device_info": {"model": model},
        "stats": {"p99_s": p99}, "throughput": {"value": tokens_per_s, "unit": "token/s"},
        "parity": {"passed": parity, "reason": "cosine 0.5 < 0.99999"},
        "scenario": {"name": "single-stream", "valid": valid, "validity_reason": "too short"},
        "energy": {"joules": None},
    }


@pytest.fixture
def catalog():
    return load_catalog([DOCS / "catalog.example.toml"])


def test_rank_orders_by_cost_and_lists_every_exclusion(catalog):
    records = [record("torch", 100.0), record("onnxruntime", 400.0), record("liar", 9000.0, parity=False),
               record("slow", 50.0, p99=0.5), record("short", 80.0, valid=False), record("dead", 0, status="failed"),
               record("alien", 100.0, model="Acme X1")]
    result = rank(records, catalog, slo_p99_s=0.1)
    # $0.08/h at 400 token/s = 1.44M tokens/h -> $0.0556 per 1M tokens
    assert [c["candidate"].split("/")[0] for c in result.ranked] == ["onnxruntime", "torch"]
    assert result.ranked[0]["cost"]["value"] == pytest.approx(0.08 / 1.44)
    assert result.ranked[1]["rank"] == 2
    reasons = {e["candidate"].split("/")[0]: e["excluded_by"][0] for e in result.excluded}
    assert reasons["liar"].startswith("parity failed")
    assert reasons["slow"] == "SLO: p99 500 ms > 100 ms"
    assert reasons["short"].startswith("invalid single-stream result")
    assert reasons["dead"].startswith("status failed")
    assert reasons["alien"] == "device not in the catalog"


def test_policy_exclusion_names_the_rule(catalog):
    policy = load_policy(DOCS / "policies" / "exclude-us-designed.toml")
    result = rank([record("torch", 100.0)], catalog, policy)
    assert not result.ranked
    assert result.excluded[0]["excluded_by"] == [
        "policy rule 'designer-not-us' (supply risk from future US export controls): designer_country = 'US'",
        "policy rule 'vendor-not-us' (no vendor headquartered under US jurisdiction): vendor_hq_country = 'US'"]


def test_owned_pricing_uses_tdp_as_an_estimate(catalog):
    owned = OwnedSettings(years=3, utilisation=0.5, usd_per_kwh=0.2, pue=1.5, hosting_usd_per_year=0)
    [candidate] = rank([record("torch", 100.0)], catalog, pricing="owned", owned=owned).ranked
    hourly = 900 / (3 * 8760 * 0.5) + 0.030 * 1.5 * 0.2
    assert candidate["cost"]["usd_per_device_hour"] == pytest.approx(hourly)
    assert candidate["cost"]["value"] == pytest.approx(hourly / 0.36)  # 360k tokens per hour
    assert candidate["cost"]["estimated"] is True and candidate["watts_estimated"] is True


def test_plan_fleet_by_hand(catalog):
    result = rank([record("torch", 120.0)], catalog)
    [plan] = plan_fleet(result, target_units_per_s=1000.0, owned=OwnedSettings())
    assert plan["devices"] == 9  # ceil(1000 / 120)
    assert plan["yearly_cost_usd"] == pytest.approx(9 * 0.08 * 8760)
    assert plan["power_w"] == 9 * 30 and plan["power_estimated"] is True


@pytest.mark.parametrize("text, message", [
    ("schema_version = 1\n", r"needs at least one \[\[rules\]\]"),
    ("schema_version = 2\n[[rules]]\nfield='tdp_w'\nmax=1\n", "schema_version = 2"),
    ("schema_version = 1\n[[rules]]\nid='r'\nfield='colour'\nin=['red']\n", "field 'colour' is not a catalog field"),
    ("schema_version = 1\n[[rules]]\nid='r'\nfield='tdp_w'\nmax=1\nmin=0\n", "needs exactly one test"),
    ("schema_version = 1\n[[rules]]\nid='r'\nfield='tdp_w'\nmax='lots'\n", "max = 'lots' has the wrong type"),
    ("schema_version = 1\n[[rules]\n", "invalid TOML"),
])
def test_invalid_policies_are_one_line_exit_2(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        load_policy(path)
    result = CliRunner().invoke(cli, ["rank", "x", "--policy", str(path)], prog_name="bakeoff")
    # the run lookup or the policy fails first, either way: one line, exit 2
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1


def test_shipped_policies_load():
    for path in (DOCS / "policies").glob("*.toml"):
        assert load_policy(path).rules


def test_rank_and_plan_cli_over_a_real_three_backend_run(tmp_path, test_plugins):
    runner = CliRunner()
    run = runner.invoke(cli, ["run", "-b", "torch", "-b", "onnxruntime", "-b", "openvino", "-w", "llm",
                              "--preset", "tiny", "--iterations", "12", "--warmup", "1", "--launcher", "inline",
                              "--out", str(tmp_path), "--json"], prog_name="bakeoff")
    assert run.exit_code == 0, run.output
    run_dir = json.loads(run.stdout)["run_dir"]
    catalog = str(DOCS / "catalog.example.toml")
    ranked = runner.invoke(cli, ["rank", run_dir, "--catalog", catalog, "--json"], prog_name="bakeoff")
    assert ranked.exit_code == 0, ranked.output
    payload = json.loads(ranked.stdout)
    assert len(payload["ranked"]) == 3 and [c["rank"] for c in payload["ranked"]] == [1, 2, 3]
    costs = [c["cost"]["value"] for c in payload["ranked"]]
    assert costs == sorted(costs)

    table = runner.invoke(cli, ["rank", run_dir, "--catalog", catalog, "--policy",
                                str(DOCS / "policies" / "exclude-us-designed.toml")], prog_name="bakeoff")
    assert table.exit_code == 0 and "designer-not-us" in table.stdout and "Excluded" in table.stdout

    plan = runner.invoke(cli, ["plan", run_dir, "--catalog", catalog, "--target-tokens-per-s", "10000", "--json"],
                         prog_name="bakeoff")
    assert plan.exit_code == 0, plan.output
    plans = json.loads(plan.stdout)["plans"]
    assert all(p["devices"] >= 1 for p in plans)


def test_a_run_with_a_parity_failure_shows_it_excluded_for_parity(tmp_path, test_plugins):
    catalog = tmp_path / "fake.toml"
    catalog.write_text(
        'schema_version = 1\n[sources]\nT = "test fixture"\n'
        '[[hardware]]\nid = "fake"\nname = "Fake device"\nkind = "npu"\nmatch = ["Fake device"]\n'
        '[[hardware.prices]]\nusd_per_device_hour = 1.0\ninstance = "test"\nregion = "test"\n'
        'source_url = "internal://test"\nretrieved = "2026-11-30"\n')
    runner = CliRunner()
    run = runner.invoke(cli, ["run", "-b", "parrot", "-b", "liar", "-w", "echo", "--iterations", "10",
                              "--launcher", "inline", "--out", str(tmp_path / "r"), "--json"], prog_name="bakeoff")
    assert run.exit_code == 0, run.output
    ranked = runner.invoke(cli, ["rank", json.loads(run.stdout)["run_dir"], "--catalog", str(catalog), "--json"],
                           prog_name="bakeoff")
    payload = json.loads(ranked.stdout)
    assert [c["candidate"].split("/")[0] for c in payload["ranked"]] == ["parrot"]
    [excluded] = payload["excluded"]
    assert excluded["candidate"].startswith("liar/") and excluded["excluded_by"][0].startswith("parity failed")


def test_a_multi_device_candidate_is_priced_per_device(catalog):
    """An endpoint labelled "2x AMD EPYC" delivers its throughput with two priced devices."""
    single, double = record("one", 400.0), record("two", 400.0, model="2x AMD EPYC")
    result = rank([single, double], catalog)
    by_name = {c["candidate"].split("/")[0]: c for c in result.ranked}
    assert by_name["two"]["devices_per_candidate"] == 2 and by_name["one"]["devices_per_candidate"] == 1
    assert by_name["two"]["throughput"] == pytest.approx(200.0)  # per device
    assert by_name["two"]["cost"]["value"] == pytest.approx(2 * by_name["one"]["cost"]["value"])
    plans = {p["candidate"].split("/")[0]: p for p in plan_fleet(result, 4000.0, OwnedSettings())}
    assert plans["two"]["devices"] == 2 * plans["one"]["devices"]


def _gemm_record(model: str, flop_per_s: float) -> dict:
    gemm = record("torch", flop_per_s, model=model)
    gemm.update(unit="FLOP", work_per_step=2e9, flops_per_step=2e9,
                throughput={"value": flop_per_s, "unit": "FLOP/s"})
    gemm["spec"].update(workload="gemm", params={"size": 1000})
    return gemm


def _catalog_with(tmp_path, entry: str):
    path = tmp_path / "mine.toml"
    path.write_text('schema_version = 1\n[sources]\nQUOTE = "test"\n' + entry)
    return load_catalog([DOCS / "catalog.example.toml", path])


def test_rank_checks_plausibility_against_the_users_own_catalog(tmp_path):
    """The run's record passed (the built-in catalog did not know the device); the user's
    --catalog knows its peak, and 5 PFLOP/s on a 100 TFLOP/s part is a broken measurement."""
    catalog = _catalog_with(tmp_path, '''
[[hardware]]
id = "acme-x1"
name = "Acme X1"
kind = "accelerator"
match = ["Acme X1"]
fp16_dense_tflops = { value = 100, source = "QUOTE", as_of = "2026-11-30" }
[[hardware.prices]]
usd_per_device_hour = 1.0
instance = "x1"
region = "r"
source_url = "internal://q"
retrieved = "2026-11-30"
''')
    honest, broken = _gemm_record("Acme X1", 50e12), _gemm_record("Acme X1", 5e15)
    broken["key"] = "broken"
    result = rank([honest, broken], catalog)
    # gemm is a capability probe, never ranked; the broken one is excluded before that, as implausible.
    assert result.ranked == []
    probe, implausible = result.excluded
    assert probe["excluded_by"][0].startswith("a capability probe (FLOP/s)") and probe["probe"]
    assert implausible["excluded_by"][0].startswith("implausible: ") and implausible["probe"]
    assert "catalog acme-x1" in implausible["excluded_by"][0]


def test_a_device_the_catalog_lacks_is_not_priced_as_a_shorter_model_number(catalog):
    """"H20" is a substring of "NVIDIA H200": an H200 must not inherit the H20's price or policy."""
    assert load_catalog().match("NVIDIA H20")["id"] == "nvidia-h20"
    assert load_catalog().match("NVIDIA H200")["id"] == "nvidia-h200-sxm"  # its own entry, not the H20's
    assert load_catalog().match("NVIDIA H2000") is None  # neither H20 nor H200 takes a longer number
    result = rank([record("torch", 100.0, model="NVIDIA H2000")], load_catalog())
    assert result.excluded[0]["excluded_by"] == ["device not in the catalog"]


def test_tco_for_a_constrained_market_by_hand(catalog):
    """Duty and a grey-market premium on the purchase, a year's lead time, host power and a
    facility cap: the plan gives devices, hosts, MW, tokens per dollar and per MWh."""
    owned = OwnedSettings(years=4, utilisation=0.5, usd_per_kwh=0.1, pue=1.5, import_duty=0.25,
                          grey_market_premium=0.1, lead_time_months=12, host_overhead_w=10, devices_per_host=4,
                          power_cap_mw=0.0001)
    result = rank([record("torch", 400.0)], catalog, pricing="owned", owned=owned)
    (candidate,) = result.ranked
    landed = 900 * 1.25 * 1.1                          # the example catalog's EPYC: $900, 30 W TDP
    hourly = landed / (3 * 8760 * 0.5) + 40 / 1000 * 1.5 * 0.1  # 3 serving years after a 12-month lead time
    assert candidate["cost"]["value"] == pytest.approx(hourly / (400 * 3600) * 1e6)
    (plan,) = plan_fleet(result, 4000.0, owned)
    assert (plan["devices"], plan["hosts"]) == (10, 3)
    assert plan["facility_mw"] == pytest.approx(10 * 40 * 1.5 / 1e6)  # device + host watts x PUE
    assert plan["fits_power_cap"] is False and plan["max_units_per_s_under_cap"] == pytest.approx(400.0)
    assert plan["units_per_mwh"] == pytest.approx(400 * 3600 / (40 * 1.5 / 1e6))
    assert plan["units_per_usd"] == pytest.approx(1e6 / candidate["cost"]["value"])
    assert plan["serving_from_month"] == 12


def test_plan_cli_reports_megawatts_tokens_per_mwh_and_the_cap(tmp_path, test_plugins):
    result = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "--iterations", "5", "--launcher", "inline",
                                      "--out", str(tmp_path), "-q"], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    fake = tmp_path / "fake.toml"  # the test plugin's device, with a purchase price and a TDP
    fake.write_text('schema_version = 1\n[sources]\nQ = "a planted quote"\n[[hardware]]\nid = "fake"\n'
                    'name = "Fake device"\nkind = "cpu"\nmatch = ["Fake device"]\n'
                    'tdp_w = { value = 200, source = "Q", as_of = "2026-12-01" }\n'
                    'purchase_usd = { value = 5000, source = "Q", as_of = "2026-12-01" }\n')
    planned = CliRunner().invoke(cli, ["plan", "latest", "--results-dir", str(tmp_path), "--target-tokens-per-s",
                                       "1e6", "--pricing", "owned", "--catalog", str(fake),
                                       "--import-duty", "0.25", "--lead-time-months", "6", "--power-cap-mw", "0.001",
                                       "--json"], prog_name="bakeoff")
    assert planned.exit_code == 0, planned.output
    plans = json.loads(planned.output)["plans"]
    assert plans, json.loads(planned.output)["excluded"]
    for plan in plans:
        assert plan["facility_mw"] > 0 and plan["units_per_mwh"] > 0 and plan["serving_from_month"] == 6
        assert plan["fits_power_cap"] is (plan["facility_mw"] <= 0.001)
    bad = CliRunner().invoke(cli, ["plan", "latest", "--results-dir", str(tmp_path), "--target-tokens-per-s", "1",
                                   "--lead-time-months", "48"], prog_name="bakeoff")
    assert bad.exit_code == 2 and "--lead-time-months 48: must be shorter than --years 4" in bad.output


def test_rank_sorts_by_tokens_per_dollar_or_per_mwh(catalog):
    from harness.procurement.rank import sort_ranking

    result = rank([record("torch", 100.0), record("onnxruntime", 400.0)], catalog)
    sort_ranking(result, "p99", OwnedSettings())
    assert [c["rank"] for c in result.ranked] == [1, 2]
    sort_ranking(result, "tokens-per-mwh", OwnedSettings())
    assert [c["candidate"].split("/")[0] for c in result.ranked] == ["onnxruntime", "torch"]
    assert result.ranked[0]["units_per_mwh"] > result.ranked[1]["units_per_mwh"]
