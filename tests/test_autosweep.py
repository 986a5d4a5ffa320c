"""``--sweep auto``: the concurrent scenario's load points from one client to saturation, each
its own record, decided from the record before it."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from harness.engine.scenarios import ServerSettings
from harness.engine.spec import BenchmarkSpec
from harness.orchestration.autosweep import SATURATION_GAIN, AutoSweep


def _spec(concurrency: int, **server) -> BenchmarkSpec:
    return BenchmarkSpec.create(backend="b", device="d", workload="llm", scenario="concurrent",
                                server=ServerSettings(concurrency=concurrency, **server))


def _record(spec: BenchmarkSpec, tokens_per_s: float, *, valid: bool = True, status: str = "ok") -> dict:
    return {"run_id": "r", "key": spec.key(), "status": status, "spec": spec.to_dict(),
            "throughput": {"value": tokens_per_s, "unit": "token/s"}, "stats": {"p99_s": 0.1},
            "scenario": {"name": "concurrent", "valid": valid, "validity_reason": "planted"},
            "parity": {"passed": None}}


def _walk(rates: dict[int, float], **record_kwargs) -> list[int]:
    """The points an auto sweep runs when each concurrency measures ``rates[c]``."""
    sweep, spec, ran = AutoSweep(), _spec(1), []
    while spec is not None:
        ran.append(spec.server.concurrency)
        grown = sweep.after(spec, _record(spec, rates[spec.server.concurrency], **record_kwargs))
        spec = grown[0] if grown else None
    return ran


def test_it_doubles_while_throughput_rises_and_stops_at_the_first_point_that_saturates():
    rates = {1: 100.0, 2: 190.0, 4: 350.0, 8: 380.0, 16: 390.0}
    assert _walk(rates) == [1, 2, 4, 8]  # 8 clients bought 8.6% more than 4: saturation, and the last point
    assert 380.0 < (1 + SATURATION_GAIN) * 350.0


def test_a_point_that_misses_its_slo_or_fails_is_the_last():
    assert _walk({1: 100.0}, valid=False) == [1]
    assert _walk({1: 100.0}, status="failed") == [1]


def test_it_stops_at_the_scenarios_cap():
    sweep = AutoSweep()
    spec = _spec(4, max_concurrency=4)
    assert sweep.after(spec, _record(spec, 100.0)) == []


def test_a_resumed_sweep_does_not_plan_a_point_it_already_measured():
    first, second = _spec(1), _spec(2)
    sweep = AutoSweep([_record(first, 100.0), _record(second, 190.0)])
    assert [s.server.concurrency for s in sweep.after(first, _record(first, 100.0))] == []
    assert [s.server.concurrency for s in sweep.after(second, _record(second, 190.0))] == [4]


@pytest.mark.slow
def test_sweep_auto_against_a_batching_server_records_every_point_and_grows_the_plan(tmp_path):
    pytest.importorskip("aiohttp")
    from harness.presentation.cli import cli
    from harness.results.store import read_manifest, read_records
    from tests.servers.delay_server import DelayServer

    server = DelayServer(ttft_s=0.005, itl_s=0.001, itl_per_stream_s=0.0005).start()
    try:
        result = CliRunner().invoke(cli, [
            "run", "-b", "openai-http", "-O", f"openai-http.url={server.url}", "-w", "llm", "-p", "prompt_tokens=8",
            "-p", "new_tokens=8", "-s", "concurrent", "--sweep", "auto", "--min-queries", "12",
            "--min-duration", "0.3", "--launcher", "inline", "--out", str(tmp_path), "--json", "-q"],
            prog_name="bakeoff")
    finally:
        server.stop()
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)["run_dir"]
    records = sorted(read_records(run), key=lambda r: r["spec"]["server"]["concurrency"])
    points = [r["spec"]["server"]["concurrency"] for r in records]
    assert points[:2] == [1, 2] and points == [2 ** i for i in range(len(points))]  # 2 clients: +55% planned
    rates = [r["throughput"]["value"] for r in records]
    # The rule held on what was measured: every doubling but the last bought at least 10% more.
    assert all(b >= (1 + SATURATION_GAIN) * a for a, b in zip(rates, rates[1:-1]))
    assert rates[-1] < (1 + SATURATION_GAIN) * rates[-2] or not records[-1]["scenario"]["valid"]
    assert len(read_manifest(run)["plan"]) == len(points)  # --resume knows every point decided


@pytest.mark.parametrize("args, message", [
    (["-s", "single-stream"], "add -s concurrent"),
    (["-s", "concurrent", "--concurrency", "1", "--concurrency", "2"], "chooses the concurrency points itself"),
])
def test_sweep_auto_misuse_is_one_line_exit_2(args, message, tmp_path):
    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "-b", "openai-http", "-O", "openai-http.url=http://127.0.0.1:9",
                                      "-w", "llm", "--sweep", "auto", *args, "--out", str(tmp_path)],
                                prog_name="bakeoff")
    assert result.exit_code == 2 and message in result.output, result.output
