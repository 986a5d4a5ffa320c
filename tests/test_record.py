"""One label and one definition each of a rankable, chartable and comparable record
(harness/results/record.py), shared by every reader."""

from __future__ import annotations

import pytest

from harness.presentation import report
from harness.procurement import compare, rank
from harness.results import roofline
from harness.results import frame
from harness.results.record import (benchmark_label, candidate_label, comparison_problem, measurement_problem, rankable,
                            workload_label)


def record(**changes):
    base = {"status": "ok", "reason": None, "key": "k", "run_id": "r",
            "spec": {"backend": "torch", "device": "cpu", "workload": "gemm", "params": {"size": 64},
                     "dtype": "float32", "batch_size": 1, "scenario": "single-stream", "options": {}},
            "parity": {"passed": True}, "scenario": {"name": "single-stream", "valid": True},
            "plausibility": {"verdict": "ok"}}
    base.update(changes)
    return base


def test_labels():
    r = record()
    assert candidate_label(r) == "torch/cpu float32 b1"
    assert workload_label(r) == "gemm size=64 single-stream"
    assert benchmark_label(r) == "torch/cpu float32 b1 gemm size=64 single-stream"
    burst = record(spec={**r["spec"], "scenario": "burst", "scenario_options": {"size": 3}, "params": {}})
    assert workload_label(burst) == "gemm burst[size=3]"  # a scenario's settings tell benchmarks apart


@pytest.mark.parametrize("changes, measurement, comparison", [
    ({}, None, None),
    ({"status": "failed", "reason": "boom"}, "status failed: boom", "failed"),
    ({"parity": {"passed": False, "reason": "cosine 0.5"}}, "parity failed: cosine 0.5", "ok (parity failed)"),
    ({"plausibility": {"verdict": "implausible", "reason": "too fast"}}, "implausible: too fast", "ok (implausible)"),
    ({"scenario": {"name": "server", "valid": False, "validity_reason": "p99 over SLO"}},
     "invalid server result: p99 over SLO", None),  # an invalid result still compares
])
def test_one_definition_of_a_usable_record(changes, measurement, comparison):
    r = record(**changes)
    assert measurement_problem(r) == measurement
    assert comparison_problem(r) == comparison
    assert rankable(r) is (measurement is None) is frame.rankable(r)


def test_every_reader_uses_the_shared_definitions():
    assert rank.label is candidate_label and rank.workload_label is workload_label
    assert report.measurement_problem is measurement_problem and report.workload_label is workload_label
    assert compare.comparison_problem is comparison_problem and compare.benchmark_label is benchmark_label
    assert roofline.rankable is rankable and frame.rankable is rankable


# -- the typed record -------------------------------------------------------------------------

import json  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

from click.testing import CliRunner  # noqa: E402

from harness.presentation.cli import cli  # noqa: E402
from harness.results.record import SCHEMA_VERSION, Record, RecordError, fields_markdown  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "runs-2026-12-01"


def _fixture_records():
    return sorted(FIXTURES.glob("*/records/*.json"))


def test_records_written_before_the_typed_form_round_trip_exactly():
    paths = _fixture_records()
    assert len(paths) >= 12
    for path in paths:
        data = json.loads(path.read_text())
        typed = Record.from_json(data, str(path))
        assert typed.to_json() == data and list(typed.to_json()) == list(data)
    server = next(Record.from_json(json.loads(p.read_text())) for p in paths if "-server-" in p.name)
    assert server.stats.p99_s > 0 and server.throughput.unit.endswith("/s")


def test_a_record_from_a_newer_bakeoff_keeps_the_keys_it_does_not_know():
    data = json.loads(_fixture_records()[0].read_text())
    data["carbon"] = {"grams": 3}
    data["stats"] = {**data["stats"], "p999_s": 1.0}
    again = Record.from_json(data).to_json()
    assert again["carbon"] == {"grams": 3} and again["stats"]["p999_s"] == 1.0


@pytest.mark.parametrize("change, message", [
    ({"stats": [1, 2]}, "stats must be a table"),
    ({"warnings": "slow"}, "warnings must be a list of strings"),
    ({"schema_version": SCHEMA_VERSION + 1}, f"written with schema_version {SCHEMA_VERSION + 1}"),
    ({"status": "great"}, "status 'great' is not one of ok, failed, unsupported, unavailable"),
    ({"kind": "bakeoff.run"}, "not a bakeoff record"),
])
def test_a_record_of_the_wrong_shape_is_refused_naming_the_key(change, message):
    data = {**json.loads(_fixture_records()[0].read_text()), **change}
    with pytest.raises(RecordError, match=message.replace("(", r"\(")):
        Record.from_json(data, "r.json")


def test_show_refuses_a_malformed_record_in_one_line_naming_the_file(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(next(p for p in FIXTURES.iterdir() if (p / "run.json").exists()), run)
    victim = sorted((run / "records").glob("*.json"))[0]
    victim.write_text(json.dumps({**json.loads(victim.read_text()), "stats": "fast"}))
    result = CliRunner().invoke(cli, ["show", str(run)], prog_name="bakeoff")
    assert result.exit_code == 2 and "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert str(victim) in line and "stats must be a table" in line


def test_the_field_list_in_docs_is_generated_from_the_record():
    from harness.results.record import parts_markdown

    docs = (ROOT / "docs" / "results.md").read_text()
    assert fields_markdown() in docs, (
        "docs/results.md's record table differs from harness.results.record.fields_markdown(); paste the new table")
    assert parts_markdown() in docs, (
        "docs/results.md's table of typed parts differs from harness.results.record.parts_markdown(); paste it")


def test_every_part_of_the_record_is_typed():
    from harness.results.record import (Energy, Interference, Memory, Parity, Plausibility, Precision, Rate,
                                        ScenarioOutcome, Stats, TokenRates)

    llm = next(Record.from_json(json.loads(p.read_text())) for p in _fixture_records()
               if "-llm-" in p.name and "single-stream" in p.name)
    assert isinstance(llm.stats, Stats) and isinstance(llm.throughput, Rate)
    assert isinstance(llm.tokens, TokenRates) and isinstance(llm.tokens.decode_tokens_per_s, Rate)
    assert llm.tokens.decode_tokens_per_s.unit == "token/s" and llm.tokens.ttft["median_s"] > 0
    for name, part in (("parity", Parity), ("energy", Energy), ("memory", Memory), ("scenario", ScenarioOutcome),
                       ("interference", Interference), ("plausibility", Plausibility), ("precision", Precision)):
        assert isinstance(getattr(llm, name), part), name
    assert llm.parity.passed is True and llm.scenario.valid is True and llm.memory.weight_bytes > 0


@pytest.mark.parametrize("change, message", [
    ({"parity": "yes"}, "parity must be a table"),
    ({"tokens": {"decode_tokens_per_s": 3}}, "tokens.decode_tokens_per_s must be a table"),
])
def test_a_malformed_part_is_refused_naming_it(change, message):
    data = {**json.loads(_fixture_records()[0].read_text()), **change}
    with pytest.raises(RecordError, match=message):
        Record.from_json(data, "r.json")


#: The keys of a record that the worker reports (``Outcome.to_dict()``); the rest is derived.
_OUTCOME_KEYS = ("status", "measurement", "failure", "reason", "unit", "work_per_step", "flops_per_step",
                 "backend_version", "device_info", "peak_device_memory_bytes", "prepare_s", "details", "stopping",
                 "scenario", "throughput", "parity", "energy", "memory", "utilisation", "started_at", "finished_at",
                 "node", "interference")


def test_every_derived_figure_comes_from_the_derive_module_alone():
    """Re-deriving a record from its identity and the raw outcome (no engine, no store) gives
    the figures the run wrote: stats, throughput (a single-stream run's from the median),
    TTFT, TPOT, ITL, E2E and decode rate, warnings and precision."""
    from harness.results.derive import derive

    checked = 0
    for path in _fixture_records():
        data = json.loads(path.read_text())
        if data["status"] != "ok":
            continue
        outcome = {k: data.get(k) for k in _OUTCOME_KEYS}
        if data["spec"]["scenario"] == "single-stream":
            outcome["throughput"] = None  # single-stream declares no basis: the median rate is derived
        again = derive(data["run_id"], data["key"], data["spec"], outcome).to_json()
        for name in ("stats", "throughput", "precision", "warnings"):
            assert again[name] == data[name], (path.name, name)
        if data["tokens"]:  # the aggregate output rate was redefined since (docs/measurement.md); the rest holds
            for name in ("ttft", "tpot", "itl", "e2e", "decode_tokens_per_s"):
                assert again["tokens"][name] == data["tokens"][name], (path.name, name)
        checked += 1
    assert checked >= 6


def test_readers_take_typed_records_and_their_json_alike():
    from harness.hardware.catalog import load_catalog
    from harness.presentation.tables import record_cells

    data = [json.loads(p.read_text()) for p in _fixture_records()]
    typed = [Record.from_json(d) for d in data]
    catalog = load_catalog([ROOT / "docs" / "catalog.example.toml"])
    from_typed, from_json = rank.rank(typed, catalog), rank.rank(data, catalog)
    assert from_typed.ranked and from_typed.excluded  # both sides of the ranking are exercised
    assert (from_typed.ranked, from_typed.excluded) == (from_json.ranked, from_json.excluded)
    assert [record_cells(r) for r in typed] == [record_cells(r) for r in data]
    assert report.summary_rows(typed, None) == report.summary_rows(data, None)
    assert [frame.record_to_row(r) for r in typed] == [frame.record_to_row(r) for r in data]


def test_every_record_has_requests_per_s_from_its_tokens_or_its_timed_queries():
    from harness.results.record import Record

    base = {"run_id": "r", "key": "k", "status": "ok",
            "spec": {"backend": "b", "device": "cpu", "workload": "gemm", "dtype": "float32", "batch_size": 1}}
    plain = Record.of({**base, "measurement": {"latencies_ns": [1_000_000] * 40, "elapsed_ns": 2_000_000_000}})
    assert plain.requests_per_s == 20.0  # 40 queries in 2 s
    llm = Record.of({**base, "measurement": {"latencies_ns": [1] * 40, "elapsed_ns": 2_000_000_000},
                     "tokens": {"requests_per_s": 7.5}})
    assert llm.requests_per_s == 7.5  # the token scenario's own count wins
    assert Record.of({**base, "status": "failed"}).requests_per_s is None
