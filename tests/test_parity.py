"""Output parity: deviations, tolerances, and a wrong-but-fast backend is never ranked."""

from __future__ import annotations

import numpy as np
import pytest

from harness.engine.parity import TOLERANCES, compare
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.results import load
from harness.results.record import rankable
from harness.results.store import RunStore, build_record, read_records


def test_identical_outputs_pass_with_zero_error():
    ref = [np.arange(12, dtype=np.float32).reshape(3, 4)]
    verdict = compare([ref[0].copy()], ref, "float32")
    assert verdict["passed"] and verdict["max_abs_error"] == 0 and verdict["cosine"] == pytest.approx(1.0)


def test_deviation_by_hand():
    ref = [np.array([3.0, 4.0])]
    out = [np.array([3.0, 4.5])]
    verdict = compare(out, ref, "bfloat16")
    assert verdict["max_abs_error"] == pytest.approx(0.5)
    assert verdict["max_rel_error"] == pytest.approx(0.5 / 4.0)
    assert verdict["cosine"] == pytest.approx((9 + 18) / (5 * np.hypot(3, 4.5)))
    assert not verdict["passed"] and "relative error 0.125 > 0.06" in verdict["reason"]


def test_tolerances_loosen_with_precision():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal((64, 64)).astype(np.float32)
    noisy = ref + 1e-2 * rng.standard_normal(ref.shape).astype(np.float32)
    assert not compare([noisy], [ref], "float32")["passed"]
    assert compare([noisy], [ref], "bfloat16")["passed"]
    assert TOLERANCES["float32"].min_cosine > TOLERANCES["float16"].min_cosine > TOLERANCES["int8"].min_cosine


def test_shape_count_and_non_finite_mismatches_fail():
    ref = [np.zeros((2, 2))]
    assert not compare([np.zeros((2, 3))], ref, "float32")["passed"]
    assert not compare([], ref, "float32")["passed"]
    assert "non-finite" in compare([np.full((2, 2), np.nan)], ref, "float32")["reason"]


def test_token_ids_must_match_exactly_at_float32_only():
    ref = [np.array([[1, 2, 3]])]
    assert compare([np.array([[1, 2, 3]])], ref, "float32")["passed"]
    assert not compare([np.array([[1, 2, 4]])], ref, "float32")["passed"]
    assert compare([np.array([[1, 2, 4]])], ref, "bfloat16")["passed"]  # greedy paths may diverge


def test_wrong_backend_fails_parity_and_is_never_rankable(test_plugins, tmp_path):
    registry = Registry()
    store = RunStore.create(tmp_path)
    for backend in ("parrot", "liar", "null"):
        spec = BenchmarkSpec.create(backend=backend, device="fake", workload="echo", batch_size=2, iterations=5)
        store.write(spec, execute(spec, registry))
    frame = load(store.path).set_index("backend")
    assert frame.loc["parrot", "parity_passed"] == True  # noqa: E712
    assert frame.loc["liar", "parity_passed"] == False  # noqa: E712
    assert frame.loc["liar", "parity_max_rel_error"] == pytest.approx(0.5)
    assert pd_isna(frame.loc["null", "parity_passed"])  # no outputs exposed: unchecked, shown as such
    assert dict(frame.rankable.items()) == {"parrot": True, "liar": False, "null": True}
    liar = next(r for r in read_records(store.path) if r["spec"]["backend"] == "liar")
    assert liar["warnings"][0].startswith("parity FAILED")
    assert not rankable(liar)


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))


def test_real_backends_record_parity(tmp_path):
    spec = BenchmarkSpec.create(backend="onnxruntime", device="CPUExecutionProvider", workload="mlp",
                                params={"hidden": 32}, dtype="float16", iterations=3)
    record = build_record("r", spec, execute(spec, Registry()))
    assert record["parity"]["passed"] is True
    assert 0 < record["parity"]["max_rel_error"] < TOLERANCES["float16"].max_rel_error
