"""Request mixes: per-request input and output lengths drawn from a distribution or a trace,
sent exactly as drawn and accounted per request (issue 18, item 6)."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.engine.mix import parse_mix, read_trace, trace_mismatch
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping

pytest.importorskip("aiohttp")
EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "request-mix.example.jsonl"


@pytest.mark.parametrize("text, spread_low, spread_high", [
    ("uniform:0.5", 0.25, 0.33),     # uniform on [L/2, 3L/2]: CV 0.5 / sqrt(3) = 0.29
    ("normal:0.3", 0.27, 0.33),
    ("lognormal:0.8", 0.65, 0.95),   # a long tail: the sample CV of a lognormal runs a little low
])
def test_a_synthetic_mix_keeps_the_mean_exactly_and_spreads_as_asked(text, spread_low, spread_high):
    pairs = parse_mix(text).lengths(200, 100, 4096, random.Random(5))
    inputs, outputs = [i for i, _ in pairs], [o for _, o in pairs]
    assert statistics.fmean(inputs) == 200 and statistics.fmean(outputs) == 100  # priced at the workload's means
    assert min(inputs) >= 1 and min(outputs) >= 1
    assert spread_low <= statistics.pstdev(inputs) / 200 <= spread_high
    if text.startswith("uniform"):
        assert 99 <= min(inputs) and max(inputs) <= 301


@pytest.mark.parametrize("text, message", [
    ("gaussian:0.2", "allowed fixed, uniform:R, normal:CV, lognormal:CV, trace:FILE"),
    ("uniform:1.5", "the range ratio must be >= 0 and < 1"),
    ("normal:x", "normal needs a number"),
    ("trace:/nonexistent.jsonl", "no such file"),
])
def test_a_bad_mix_is_named(text, message):
    with pytest.raises(ValueError, match=message):
        parse_mix(text)


def test_a_trace_reads_csv_and_jsonl_and_names_a_bad_line(tmp_path):
    csv_file = tmp_path / "t.csv"
    csv_file.write_text("input_tokens,output_tokens,arrival_s\n10,5,0.0\n30,7,0.5\n")
    assert read_trace(str(csv_file)) == [(10, 5), (30, 7)]
    jsonl = tmp_path / "t.jsonl"
    jsonl.write_text('{"input_tokens": 10, "output_tokens": 5}\n\n{"input_tokens": 12, "output_tokens": 0}\n')
    with pytest.raises(ValueError, match=r"t.jsonl:3: output_tokens = 0: must be a whole number of tokens >= 1"):
        read_trace(str(jsonl))
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,completion\n1,2\n")
    with pytest.raises(ValueError, match="the header lacks input_tokens, output_tokens"):
        read_trace(str(bad))
    assert "run it with -p prompt_tokens=20 -p new_tokens=6" in trace_mismatch([(10, 5), (30, 7)], 128, 64)


def test_the_shipped_example_mix_is_a_valid_trace():
    trace = read_trace(str(EXAMPLE))
    assert len(trace) >= 50
    inputs, outputs = [i for i, _ in trace], [o for _, o in trace]
    assert trace_mismatch(trace, round(statistics.fmean(inputs)), round(statistics.fmean(outputs))) is None


@pytest.fixture
def server():
    from tests.servers.token_server import TokenServer

    server = TokenServer().start()
    yield server
    server.stop()


def _spec(url: str, mix: str, prompt_tokens: int = 64, new_tokens: int = 8) -> BenchmarkSpec:
    return BenchmarkSpec.create(
        backend="openai-http", device="endpoint", workload="llm",
        params={"preset": "tiny", "prompt_tokens": prompt_tokens, "new_tokens": new_tokens},
        options={"url": url, "request_mix": mix, "prompt_seed": 7},
        stopping=Stopping(warmup=0).with_fixed_iterations(40))


def test_an_endpoint_sends_each_request_at_its_own_drawn_lengths(server):
    outcome = execute(_spec(server.url, "uniform:0.5"), Registry())
    assert outcome.status == "ok", outcome.failure or outcome.reason
    counted = [server.count(p) for p in server.prompts]
    assert len(set(counted)) > 5 and 32 <= min(counted) and max(counted) <= 96  # each its own length
    details = outcome.details
    assert details["prompt"]["mix"] == "uniform lengths, range ratio 0.5"
    assert details["prompt"]["lengths"]["input_tokens"]["mean"] == 64
    assert details["prompt_tokens"]["max_deviation"] == 0  # each request exactly its own requested length
    assert details["output_length_mismatches"] == 0  # each reply as long as its own max_tokens
    assert len(details["usage_completion_tokens"]) > 3  # output lengths vary too
    assert set(outcome.measurement.token_counts) == set(details["usage_completion_tokens"])
    # The record's throughput counts the tokens served, not requests x the workload's mean length.
    from harness.results.derive import derive

    benchmark = _spec(server.url, "uniform:0.5")
    record = derive("r", benchmark.key(), benchmark.to_dict(), outcome.to_dict())
    served = sum(outcome.measurement.token_counts) / (outcome.measurement.elapsed_ns / 1e9)
    assert record.throughput.value == pytest.approx(served) and "request mix" in record.throughput.basis


def test_an_endpoint_replays_a_trace_and_refuses_one_that_does_not_fit_the_workload(server, tmp_path):
    trace = tmp_path / "mix.jsonl"
    trace.write_text("".join(json.dumps({"input_tokens": i, "output_tokens": o}) + "\n"
                             for i, o in [(40, 4), (88, 12)] * 10))
    outcome = execute(_spec(server.url, f"trace:{trace}"), Registry())
    assert outcome.status == "ok", outcome.failure or outcome.reason
    assert sorted({server.count(p) for p in server.prompts}) == [40, 88]
    assert sorted(outcome.details["usage_completion_tokens"]) == [4, 12]
    wrong = execute(_spec(server.url, f"trace:{trace}", prompt_tokens=128), Registry())
    assert wrong.status == "unsupported" and "-p prompt_tokens=64 -p new_tokens=8" in wrong.reason


def test_a_bad_mix_on_the_command_line_is_one_line_exit_2(tmp_path):
    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "-b", "openai-http", "-O", "openai-http.url=http://127.0.0.1:9",
                                      "-O", "openai-http.request_mix=trace:nope.csv", "-w", "llm",
                                      "--out", str(tmp_path)], prog_name="bakeoff")
    assert result.exit_code == 2 and "no such file" in result.output and "Traceback" not in result.output
