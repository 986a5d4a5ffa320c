"""The serving frontier: load points as throughput per device against interactivity, the rank's
choice of each candidate's cheapest qualifying point, the fleet plan there, and the report's
chart of a real concurrency sweep rendered in Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.hardware.catalog import load_catalog
from harness.presentation.cli import cli
from harness.procurement.frontier import operating_point, operating_points, pareto_frontier
from harness.procurement.rank import OwnedSettings, ServingTargets, plan_fleet, rank

DOCS = Path(__file__).resolve().parent.parent / "docs"
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def point_record(backend: str, concurrency: int, tokens_per_s: float, tpot_s: float, *, ttft_p99_s: float = 0.1,
                 model: str = "AMD EPYC", run_id: str = "r") -> dict:
    """A planted concurrent-scenario LLM record at one load point."""
    return {
        "run_id": run_id, "key": f"{backend}-c{concurrency}", "status": "ok", "reason": None,
        "spec": {"backend": backend, "device": "endpoint", "workload": "llm", "params": {"preset": "tiny"},
                 "dtype": "float32", "batch_size": 1, "scenario": "concurrent",
                 "server": {"concurrency": concurrency, "find_max_concurrency": False}},
        "unit": "token", "device_info": {"model": model},
        "stats": {"p99_s": 1.0}, "throughput": {"value": tokens_per_s, "unit": "token/s"},
        "tokens": {"tpot": {"median_s": tpot_s, "p99_s": tpot_s * 1.2}, "ttft": {"median_s": ttft_p99_s / 2,
                                                                             "p99_s": ttft_p99_s}},
        "parity": {"passed": None}, "scenario": {"name": "concurrent", "valid": True, "validity_reason": "ok"},
        "energy": {"joules": None},
    }


# One candidate swept from 1 to 8 users: more load, more tokens/s in all, fewer to each user.
SWEEP = [point_record("vllm", 1, 100.0, 0.005), point_record("vllm", 2, 180.0, 0.008),
         point_record("vllm", 4, 300.0, 0.0125, ttft_p99_s=0.4), point_record("vllm", 8, 420.0, 0.02)]


@pytest.fixture
def catalog():
    return load_catalog([DOCS / "catalog.example.toml"])


def test_a_load_point_is_tokens_per_device_against_one_over_tpot():
    point = operating_point(point_record("vllm", 4, 300.0, 0.0125, model="2x AMD EPYC"))
    assert point.user_tokens_per_s == pytest.approx(80.0)
    assert point.tokens_per_s_per_device == pytest.approx(150.0)  # two devices share the rate
    assert point.load == "concurrency=4" and point.workload == "llm preset=tiny concurrent"


def test_the_frontier_keeps_only_points_no_other_beats_on_both():
    dominated = point_record("slow", 2, 150.0, 0.01)  # 100/user at 150/s: concurrency=2 of vllm beats it
    points = operating_points([*SWEEP, dominated])
    frontier = pareto_frontier(points)
    assert [(p.candidate.split("/")[0], p.load) for p in frontier] == [
        ("vllm", "concurrency=8"), ("vllm", "concurrency=4"), ("vllm", "concurrency=2"), ("vllm", "concurrency=1")]


def test_rank_picks_the_cheapest_point_that_gives_each_user_enough(catalog):
    # 100 token/s per user rules out concurrency 4 (80) and 8 (50); of 1 and 2, 2 earns more per device.
    result = rank(SWEEP, catalog, targets=ServingTargets(min_user_tokens_per_s=100.0))
    assert [(c["candidate"].split("/")[0], c["load"]) for c in result.ranked] == [("vllm", "concurrency=2")]
    assert result.ranked[0]["cost"]["value"] == pytest.approx(0.08 / (180.0 * 3600) * 1e6)
    assert [a["load"] for a in result.alternatives] == ["concurrency=1"]
    assert {e["workload"]: e["excluded_by"][0].split(":")[0] for e in result.excluded} == {
        "llm preset=tiny concurrent[concurrency=4]": "interactivity", "llm preset=tiny concurrent[concurrency=8]":
            "interactivity"}
    # Without the target every point qualifies and the most loaded is the cheapest; a TTFT SLO
    # that concurrency 4 misses leaves 8 (its TTFT is fine in this plant) ranked.
    assert [c["load"] for c in rank(SWEEP, catalog).ranked] == ["concurrency=8"]
    ttft = rank(SWEEP, catalog, targets=ServingTargets(ttft_p99_s=0.2))
    assert [c["load"] for c in ttft.ranked] == ["concurrency=8"]
    assert [e["excluded_by"] for e in ttft.excluded] == [["SLO: p99 TTFT 400 ms > 200 ms"]]
    assert rank(SWEEP, catalog, targets=ServingTargets(min_user_tokens_per_s=500.0)).ranked == []


def test_two_runs_of_one_candidate_are_ranked_apart_and_candidates_each_at_their_own_point(catalog):
    other = [point_record("sglang", 1, 120.0, 0.004), point_record("sglang", 4, 380.0, 0.009)]
    again = [point_record("vllm", 2, 170.0, 0.008, run_id="r2")]
    result = rank([*SWEEP, *other, *again], catalog, targets=ServingTargets(min_user_tokens_per_s=100.0))
    assert [(c["candidate"].split("/")[0], c["load"], c["run_id"]) for c in result.ranked] == [
        ("sglang", "concurrency=4", "r"), ("vllm", "concurrency=2", "r"), ("vllm", "concurrency=2", "r2")]
    assert [c["rank"] for c in result.ranked] == [1, 2, 3]


def test_plan_sizes_the_fleet_at_the_chosen_point(catalog):
    ranking = rank(SWEEP, catalog, targets=ServingTargets(min_user_tokens_per_s=100.0))
    plan = plan_fleet(ranking, 1800.0, OwnedSettings())
    assert [(p["load"], p["devices"]) for p in plan] == [("concurrency=2", 10)]  # 1800 / 180 per device


def test_records_without_token_timing_are_not_points():
    record = point_record("vllm", 1, 100.0, 0.005)
    del record["tokens"]
    assert operating_point(record) is None


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    """A real concurrency sweep, 1, 2 and 4 users, against a server whose decode slows with its batch."""
    from tests.servers.delay_server import DelayServer

    out = tmp_path_factory.mktemp("frontier")
    server = DelayServer(ttft_s=0.005, itl_s=0.001, itl_per_stream_s=0.001).start()
    try:
        result = CliRunner().invoke(cli, [
            "run", "-b", "openai-http", "-O", f"openai-http.url={server.url}", "-O", "openai-http.device_label=AMD EPYC",
            "-w", "llm", "-p", "prompt_tokens=8", "-p", "new_tokens=8", "-s", "concurrent", "--concurrency", "1",
            "--concurrency", "2", "--concurrency", "4", "--min-queries", "12", "--min-duration", "0.3",
            "--launcher", "inline", "--out", str(out), "--json", "-q"], prog_name="bakeoff")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.output)["run_dir"])


def test_a_concurrency_sweep_gives_one_record_per_point_and_rank_picks_the_cheapest_qualifying(sweep_run):
    from harness.results.store import read_records

    records = read_records(sweep_run)
    points = sorted(operating_points(records), key=lambda p: p.load)
    assert [p.load for p in points] == ["concurrency=1", "concurrency=2", "concurrency=4"]
    # The target sits between the points' per-user rates, so some qualify and some do not.
    target = sorted(p.user_tokens_per_s for p in points)[1]
    result = CliRunner().invoke(cli, ["rank", str(sweep_run), "--catalog", str(DOCS / "catalog.example.toml"),
                                      "--min-user-tokens-per-s", str(target), "--json"], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    ranking = json.loads(result.output)
    qualifying = [p for p in points if p.user_tokens_per_s >= target]
    best = max(qualifying, key=lambda p: p.tokens_per_s_per_device)  # one price: cheapest is the busiest
    assert [c["load"] for c in ranking["ranked"]] == [best.load]
    assert len(ranking["alternatives"]) == len(qualifying) - 1
    assert len(ranking["excluded"]) == len(points) - len(qualifying)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (.ci/run installs Debian's chromium)")
def test_the_report_draws_the_frontier_of_a_sweep_in_chromium(sweep_run, tmp_path):
    report = tmp_path / "frontier.html"
    result = CliRunner().invoke(cli, ["report", str(sweep_run), "-o", str(report), "--catalog",
                                      str(DOCS / "catalog.example.toml")], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'p'}"]
    dom = subprocess.run([*flags, "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    section = dom.stdout[dom.stdout.index("Throughput versus interactivity"):dom.stdout.index("Cost versus latency")]
    assert "<svg" in section  # the chart is in the rendered page
    rows = section.split("<tbody>")[1].split("</tbody>")[0].count("<tr>")
    assert rows == 3  # one row per load point
    assert section.count("per 1M tokens") >= 3  # every point is priced
    ARTIFACTS.mkdir(exist_ok=True)
    shot = subprocess.run([*flags, f"--screenshot={ARTIFACTS / 'frontier.png'}", "--window-size=1200,1600",
                           report.as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and (ARTIFACTS / "frontier.png").stat().st_size > 10_000


def test_an_endpoint_that_names_no_device_is_excluded_with_how_to_name_it(catalog):
    unnamed = point_record("openai-http", 1, 100.0, 0.005)
    unnamed["device_info"] = {"model": None}
    (excluded,) = rank([unnamed], catalog).excluded
    assert "device model unknown" in excluded["excluded_by"][0] and "device_label" in excluded["excluded_by"][0]
