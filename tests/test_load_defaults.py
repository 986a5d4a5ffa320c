"""Load defaults that fit a backend's request latencies (capability ``LoadDefaults``): an endpoint's
benchmarks get serving SLOs, query counts and durations wherever the user set none, and a
value the user gave, by flag, config key or argument, always wins."""

from __future__ import annotations

import pytest

from harness.contract.load import SERVING_LOAD_DEFAULTS, describe, load_default_problem
from harness.engine.scenarios import ServerSettings
from harness.engine.timing import Stopping
from harness.orchestration.sweep import SweepRequest, plan, with_load_defaults

ENDPOINT = {"openai-http": {"url": "http://127.0.0.1:9"}}


def _endpoint_request(**changes) -> SweepRequest:
    return SweepRequest(backends=("openai-http",), workloads=("llm",), scenarios=("single-stream", "concurrent"),
                        backend_options=ENDPOINT, **changes)


def _by_scenario(request: SweepRequest) -> dict:
    return {spec.scenario: spec for spec in plan(request).specs}


def test_an_endpoint_gets_the_serving_profile_where_the_user_set_nothing():
    specs = _by_scenario(_endpoint_request())
    concurrent, single = specs["concurrent"], specs["single-stream"]
    assert concurrent.server.latency_slo_s == SERVING_LOAD_DEFAULTS["server.latency_slo_s"]
    assert concurrent.server.min_queries == SERVING_LOAD_DEFAULTS["server.min_queries"]
    assert concurrent.server.ttft_bound_s == SERVING_LOAD_DEFAULTS["server.ttft_bound_s"]
    assert concurrent.server.tpot_bound_s == SERVING_LOAD_DEFAULTS["server.tpot_bound_s"]
    assert single.stopping.max_duration_s == SERVING_LOAD_DEFAULTS["stopping.max_duration_s"]
    assert single.server is None  # single-stream takes no load settings


def test_a_backend_without_the_capability_keeps_the_general_defaults():
    specs = plan(SweepRequest(backends=("torch",), workloads=("gemm",), scenarios=("concurrent",),
                              params=(("size", 64),))).specs
    assert specs[0].server.latency_slo_s == ServerSettings.latency_slo_s
    assert specs[0].stopping.max_duration_s == Stopping.max_duration_s


def test_a_value_the_user_named_wins_even_where_it_equals_the_general_default():
    request = _endpoint_request(server=ServerSettings(latency_slo_s=0.1, min_queries=7),
                                explicit=frozenset({"server.latency_slo_s", "stopping.max_duration_s"}))
    concurrent = _by_scenario(request)["concurrent"]
    assert concurrent.server.latency_slo_s == 0.1           # named, though equal to the general default
    assert concurrent.server.min_queries == 7                # differs from the general default: the user's
    assert concurrent.stopping.max_duration_s == Stopping.max_duration_s  # named
    assert concurrent.server.ttft_bound_s == 2.0             # neither: the profile's


def test_flags_and_config_keys_count_as_given(tmp_path):
    from click.testing import CliRunner

    from harness.orchestration.config import load_config
    from harness.presentation.cli import cli

    config = tmp_path / "endpoint.toml"
    config.write_text('schema_version = 1\n[sweep]\nbackends = ["openai-http"]\nworkloads = ["llm"]\n'
                      'scenarios = ["concurrent"]\n[backend.openai-http]\nurl = "http://127.0.0.1:9"\n'
                      '[server]\nlatency_slo_ms = 100.0\n')
    request = load_config(config)
    assert "server.latency_slo_s" in request.explicit
    concurrent = plan(request).specs[0]
    assert concurrent.server.latency_slo_s == 0.1 and concurrent.server.min_queries == 50

    # The CLI: a flag given at its default value is still the user's. An unreachable URL fails
    # in prepare, after planning, so the record shows the settings the benchmark was planned with.
    import json

    result = CliRunner().invoke(cli, ["run", "-b", "openai-http", "-O", "openai-http.url=http://127.0.0.1:9",
                                      "-w", "llm", "-s", "concurrent", "--min-queries", "1000", "--launcher",
                                      "inline", "--json", "-q", "--out", str(tmp_path / "out")], prog_name="bakeoff")
    record = json.loads(result.output)["records"][0]
    assert record["spec"]["server"]["min_queries"] == 1000
    assert record["spec"]["server"]["latency_slo_s"] == 60.0


def test_a_longer_minimum_duration_than_the_profiles_maximum_is_kept_consistent():
    stopping, _ = with_load_defaults(Stopping(min_duration_s=90.0), None, SERVING_LOAD_DEFAULTS)
    assert stopping.max_duration_s == 90.0


@pytest.mark.parametrize("defaults, message", [
    ({"server.latency_slo": 1.0}, "unknown load default 'server.latency_slo'"),
    ({"stopping.max_duration_s": -1}, "stopping.max_duration_s = -1 must be a number > 0"),
    ({"server.min_queries": True}, "must be a number > 0"),
])
def test_a_malformed_profile_is_named(defaults, message):
    from dataclasses import fields

    problem = load_default_problem(defaults, {"stopping": {f.name for f in fields(Stopping)},
                                              "server": {f.name for f in fields(ServerSettings)}})
    assert message in problem


def test_run_help_states_the_serving_profile():
    from click.testing import CliRunner

    from harness.presentation.cli import cli

    text = " ".join(CliRunner().invoke(cli, ["run", "--help"]).output.split())
    assert "p99 TTFT 2 s and TPOT 100 ms" in text and "at least 50 queries over 10 s" in text
    assert "60 s p99 latency bound" in text and "most 60 s per benchmark" in text
    # The profile the help describes is the one the code applies.
    assert describe(SERVING_LOAD_DEFAULTS) == ("p99 TTFT 2 s, p99 TPOT 100 ms, p99 latency SLO 60 s, at least 50 "
                                               "queries, load runs at least 10 s, every run ends by 60 s")
