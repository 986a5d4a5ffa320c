"""The server scenario's arrival processes: Poisson (unchanged for a seed), gamma with a
burstiness factor, constant rate, and a linear ramp-up; each asks for exactly its rate."""

from __future__ import annotations

import json
import random
import statistics

import pytest

from harness.engine.scenarios import ServerSettings, arrivals_ns


def _gaps(offsets):
    return [b - a for a, b in zip([0, *offsets], offsets)]


def _cv(values):
    return statistics.pstdev(values) / statistics.fmean(values)


def test_poisson_is_the_schedule_a_seed_always_gave():
    settings = ServerSettings(min_queries=500, min_duration_s=0, seed=11)
    rng, t, raw = random.Random(11), 0.0, []
    for _ in range(500):
        t += rng.expovariate(50.0)
        raw.append(t)
    scale = 500 / 50.0 / t * 1e9  # the arithmetic of the code before gamma and ramps existed
    assert arrivals_ns(50.0, settings) == [int(offset * scale) for offset in raw]  # exactly, to the nanosecond


@pytest.mark.parametrize("arrival, burstiness, low, high", [
    ("poisson", 1.0, 0.9, 1.1),   # exponential gaps: CV 1
    ("gamma", 0.25, 1.8, 2.2),    # shape k: CV 1/sqrt(k) = 2
    ("gamma", 4.0, 0.45, 0.55),   # CV 0.5
    ("constant", 1.0, 0.0, 1e-6),
])
def test_every_process_asks_for_exactly_the_rate_with_its_own_burstiness(arrival, burstiness, low, high):
    settings = ServerSettings(min_queries=4000, min_duration_s=0, seed=3, arrival=arrival, burstiness=burstiness)
    offsets = arrivals_ns(100.0, settings)
    assert len(offsets) == 4000
    assert offsets[-1] == pytest.approx(40e9, rel=1e-9)  # n / qps: exactly the target rate
    assert low <= _cv(_gaps(offsets)) <= high


def test_a_ramp_rises_linearly_then_holds_the_rate():
    settings = ServerSettings(min_queries=300, min_duration_s=0, arrival="constant", ramp_up_s=10.0)
    offsets = [o / 1e9 for o in arrivals_ns(10.0, settings)]
    # The expected count by time t under the ramp is 10 t^2 / 20 for t < 10 s: 5 by 1 s... 50 by 10 s.
    assert sum(o <= 10.0 + 1e-9 for o in offsets) == 50
    assert sum(o <= 5.0 + 1e-9 for o in offsets) == 12  # 10 * 25 / 20 = 12.5
    after = _gaps(offsets)[60:]
    assert max(after) == pytest.approx(0.1) and min(after) == pytest.approx(0.1)  # then 10/s held
    # The minimums hold after the ramp: its 50 arrivals come on top of the 300 asked for.
    assert len(offsets) == 350 and sum(o > 10.0 + 1e-9 for o in offsets) == 300
    assert offsets[-1] == pytest.approx(350 / 10.0 + 5.0)  # the ramp costs R/2 seconds


@pytest.mark.slow
def test_gamma_arrivals_with_a_ramp_from_the_cli_are_recorded_and_judged_against_the_schedule(tmp_path,
                                                                                              test_plugins):
    from click.testing import CliRunner

    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "-s", "server", "--qps", "200",
                                      "--arrival", "gamma", "--burstiness", "0.5", "--ramp-up", "0.5",
                                      "--min-queries", "300", "--min-duration", "0", "--launcher", "inline",
                                      "--json", "-q", "--out", str(tmp_path)], prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)["records"][0]
    assert record["spec"]["server"]["arrival"] == "gamma" and record["spec"]["server"]["ramp_up_s"] == 0.5
    assert record["scenario"]["arrivals"] == "gamma (burstiness 0.5) and a 0.5 s ramp-up"
    # The ramp asks for less than 200/s while it rises; the bar is the schedule's own mean rate.
    assert record["scenario"]["valid"], record["scenario"]["validity_reason"]
    assert "ramp to 200" in record["scenario"]["validity_reason"]


@pytest.mark.parametrize("args, message", [
    (["--burstiness", "0.5"], "shapes gamma arrivals; add --arrival gamma"),
    (["--arrival", "uniform"], "Invalid value for '--arrival'"),
    (["--arrival-trace", "t.csv"], "it is replayed only with --arrival trace"),
])
def test_bad_arrival_settings_are_one_line_exit_2(args, message, tmp_path, test_plugins):
    from click.testing import CliRunner

    from harness.presentation.cli import cli

    result = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "-s", "server", "--qps", "10", *args,
                                      "--out", str(tmp_path)], prog_name="bakeoff")
    assert result.exit_code == 2 and message in result.output, result.output


def test_a_trace_replays_its_own_arrival_times(tmp_path):
    from harness.engine.scenarios.server import scheduled_rate

    trace = tmp_path / "arrivals.csv"
    trace.write_text("input_tokens,output_tokens,arrival_s\n8,4,0.0\n8,4,0.25\n8,4,0.25\n8,4,1.0\n")
    offsets = arrivals_ns(0.0, ServerSettings(arrival="trace", arrival_trace=str(trace)))
    assert [b - a for a, b in zip(offsets, offsets[1:])] == [250_000_000, 0, 750_000_000]  # the trace's gaps
    assert scheduled_rate(offsets) == pytest.approx(3.0)  # its own rate: 3 gaps in 1 s
    backwards = tmp_path / "backwards.jsonl"
    backwards.write_text('{"arrival_s": 1.0}\n{"arrival_s": 0.5}\n')
    with pytest.raises(ValueError, match=r"backwards.jsonl:2: arrival_s = 0.5 is before the line above it"):
        arrivals_ns(0.0, ServerSettings(arrival="trace", arrival_trace=str(backwards)))


@pytest.mark.slow
def test_the_shipped_example_trace_replays_from_the_cli(tmp_path, test_plugins):
    from pathlib import Path

    from click.testing import CliRunner

    from harness.presentation.cli import cli

    shipped = Path(__file__).resolve().parent.parent / "docs" / "request-mix.example.jsonl"
    example = tmp_path / "fast.jsonl"  # the shipped trace 50 times faster: half a second, not 25
    example.write_text("".join(json.dumps({**row, "arrival_s": row["arrival_s"] / 50}) + "\n" for row in
                               map(json.loads, shipped.read_text().splitlines())))
    result = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "-s", "server", "--arrival", "trace",
                                      "--arrival-trace", str(example),  # the trace's 64 are the run, not --min-queries
                                      "--launcher", "inline", "--json", "-q", "--out", str(tmp_path)],
                                prog_name="bakeoff")
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)["records"][0]
    assert record["scenario"]["arrivals"] == f"replayed from {example}"
    assert len(record["measurement"]["latencies_ns"]) == 64
    assert record["scenario"]["valid"], record["scenario"]["validity_reason"]
    missing = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "-s", "server", "--arrival", "trace",
                                       "--out", str(tmp_path)], prog_name="bakeoff")
    assert missing.exit_code == 2 and "--arrival-trace FILE" in missing.output


def test_a_sleep_only_wake_up_from_the_cli_and_a_config_is_recorded_labelled_and_keyed(tmp_path, test_plugins):
    """``--wake-up sleep`` and ``[server] wake_up = "sleep"`` reach the scenario; a non-default
    wake-up is part of the identity (its own key) and the label; a bad value is one line, exit 2."""
    from click.testing import CliRunner

    from harness.presentation.cli import cli
    from harness.results.record import load_label

    def run(*args):
        result = CliRunner().invoke(cli, ["run", "-b", "null", "-w", "noop", "-s", "server", "--qps", "100",
                                          "--min-queries", "50", "--min-duration", "0", "--launcher", "inline",
                                          "--json", "-q", *args], prog_name="bakeoff")
        assert result.exit_code == 0, result.output
        return json.loads(result.output)["records"][0]

    spun = run("--out", str(tmp_path / "spin"))
    slept = run("--wake-up", "sleep", "--out", str(tmp_path / "sleep"))
    assert spun["scenario"]["wake_up"]["policy"] == "spin" and spun["spec"]["server"]["wake_up"] == "spin"
    assert slept["scenario"]["wake_up"]["policy"] == "sleep"
    assert slept["spec"]["server"]["wake_up"] == "sleep"
    assert slept["key"] != spun["key"]
    assert load_label(slept) == "qps=100 wake=sleep" and load_label(spun) == "qps=100"

    config = tmp_path / "sleep.toml"
    config.write_text('[sweep]\nbackends = ["null"]\nworkloads = ["noop"]\nscenarios = ["server"]\n'
                      '[server]\ntarget_qps = 100\nmin_queries = 50\nmin_duration_s = 0\nwake_up = "sleep"\n')
    from_config = run("--config", str(config), "--out", str(tmp_path / "config"))
    assert from_config["scenario"]["wake_up"]["policy"] == "sleep" and from_config["key"] == slept["key"]

    config.write_text(config.read_text().replace('"sleep"', '"nap"'))
    bad = CliRunner().invoke(cli, ["run", "--config", str(config), "--out", str(tmp_path / "bad")], prog_name="bakeoff")
    assert bad.exit_code == 2 and "wake_up" in bad.output and "spin or sleep" in bad.output, bad.output
    assert len(bad.output.strip().splitlines()) == 1 and "Traceback" not in bad.output
