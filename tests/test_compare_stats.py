"""compare's statistics against scipy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from harness.procurement.compare import mann_whitney_u, median_ratio_ci, parse_threshold, verdict


@pytest.mark.parametrize("seed", range(4))
def test_mann_whitney_matches_scipy(seed):
    rng = np.random.default_rng(seed)
    a = rng.lognormal(0, 0.2, size=int(rng.integers(8, 200))).round(2)  # rounding makes ties
    b = rng.lognormal(0.05 * seed, 0.2, size=int(rng.integers(8, 200))).round(2)
    u, p = mann_whitney_u(a, b)
    expected = scipy.stats.mannwhitneyu(a, b, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert u == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue, rel=1e-6)


def test_median_ratio_ci_brackets_a_planted_shift():
    rng = np.random.default_rng(1)
    base = rng.normal(1.0, 0.02, 300)
    low, high = median_ratio_ci(base, base * 1.2)
    assert low < 1.2 < high and high - low < 0.02


@pytest.mark.parametrize("ratio, ci, p, expected", [
    (1.20, (1.18, 1.22), 1e-9, "regressed"),
    (0.80, (0.78, 0.82), 1e-9, "improved"),
    (1.01, (1.005, 1.015), 1e-9, "unchanged"),   # significant but inside 5%
    (1.00, (0.99, 1.01), 0.6, "unchanged"),
    (1.02, (0.85, 1.25), 0.4, "inconclusive"),   # too noisy to tell
])
def test_verdicts(ratio, ci, p, expected):
    assert verdict(ratio, ci, p, threshold=0.05) == expected


def test_parse_threshold():
    assert parse_threshold("5%") == 0.05 and parse_threshold("0.1") == 0.1
    with pytest.raises(ValueError):
        parse_threshold("fast")


def test_compare_warns_when_environment_fingerprints_differ():
    from harness.procurement.compare import compare

    def record(fingerprint, threads, latencies):
        return {"key": "k", "run_id": fingerprint, "status": "ok", "parity": {"passed": True},
                "spec": {"backend": "torch", "device": "cpu", "workload": "gemm", "params": {}, "dtype": "float32",
                         "batch_size": 1, "scenario": "single-stream"},
                "measurement": {"latencies_ns": latencies}, "fingerprint": fingerprint,
                "fingerprint_inputs": {"threads": threads, "cpu_model": "X"}}

    same = compare([record("a", 2, [100, 101, 102] * 5)], [record("a", 2, [100, 101, 102] * 5)])
    assert same.fingerprint_warnings == []
    differ = compare([record("a", 2, [100, 101, 102] * 5)], [record("b", 4, [100, 101, 102] * 5)])
    assert differ.fingerprint_warnings == ["torch/cpu float32 b1 gemm single-stream: environments differ (threads)"]


@pytest.mark.parametrize("n", [5, 8, 51, 200, 301, 2000])
def test_exact_bootstrap_median_distribution_matches_resampling(n):
    """The order-statistic shortcut gives the resampling bootstrap's interval (odd and even n,
    the exact binomial tails and the normal approximation above EXACT_TAIL_MAX_N)."""
    rng = np.random.default_rng(n)
    base = rng.lognormal(0, 0.1, n)
    new = base * 1.1 * rng.lognormal(0, 0.05, n)
    low, high = median_ratio_ci(base, new, resamples=20_000)
    brute = np.random.default_rng(7)
    ratios = (np.median(brute.choice(new, (20_000, n)), axis=1) / np.median(brute.choice(base, (20_000, n)), axis=1))
    width = np.percentile(ratios, 97.5) - np.percentile(ratios, 2.5)
    assert low == pytest.approx(np.percentile(ratios, 2.5), abs=0.05 * width)
    assert high == pytest.approx(np.percentile(ratios, 97.5), abs=0.05 * width)


def test_batched_intervals_equal_single_ones_whatever_else_is_compared():
    from harness.procurement.compare import median_ratio_cis

    rng = np.random.default_rng(3)
    pairs = [(rng.lognormal(0, 0.1, n), rng.lognormal(0.05, 0.1, m)) for n, m in ((50, 50), (51, 40), (50, 50))]
    together = median_ratio_cis(pairs)
    for pair, interval in zip(pairs, together):
        assert interval == median_ratio_ci(*pair)
    assert median_ratio_cis(pairs[:1]) == together[:1]
