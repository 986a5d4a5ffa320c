"""One label and one definition each of a rankable, chartable and comparable record
(harness/record.py), shared by every reader."""

from __future__ import annotations

import pytest

from harness import compare, rank, report, results, roofline
from harness.record import (benchmark_label, candidate_label, comparison_problem, measurement_problem, rankable,
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
    assert rankable(r) is (measurement is None) is results.rankable(r)


def test_every_reader_uses_the_shared_definitions():
    assert rank.label is candidate_label and rank.workload_label is workload_label
    assert report.measurement_problem is measurement_problem and report.workload_label is workload_label
    assert compare.comparison_problem is comparison_problem and compare.benchmark_label is benchmark_label
    import inspect

    assert "harness.record import rankable" in inspect.getsource(roofline.read_ceilings)
