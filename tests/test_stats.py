"""Statistics against hand-computed values and against numpy/scipy."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import scipy.stats

from harness.analysis.stats import (
    MAX_STABLE_SPREAD,
    median_ci_ranks,
    percentile,
    stability_warnings,
    summarize,
)


def test_summary_of_hand_computed_samples():
    s = summarize([4, 1, 3, 2, 100])  # unsorted on purpose
    assert s.count == 5
    assert s.mean == 22
    assert s.median == 3 and s.p50 == 3
    assert s.min == 1 and s.max == 100
    # sample stdev: deviations -21,-20,-19,-18,78 -> (441+400+361+324+6084)/4
    assert s.stdev == pytest.approx(math.sqrt(7610 / 4))
    assert s.cv == pytest.approx(s.stdev / 22)
    # quartiles 2 and 4, fences at -1 and 7: 100 is the one outlier
    assert s.outliers == 1 and s.iqr == 2
    # p90 by linear interpolation: position 3.6 between 4 and 100
    assert s.p90 == pytest.approx(4 + 0.6 * 96)
    # five samples cannot give a 95% interval of the median
    assert s.median_ci_low is None and s.median_ci_high is None


def test_even_count_median_interpolates():
    assert summarize([1, 2, 3, 4]).median == 2.5


def test_single_sample_has_zero_spread():
    s = summarize([7])
    assert (s.mean, s.median, s.stdev, s.p99) == (7, 7, 0, 7)


def test_empty_samples_raise():
    with pytest.raises(ValueError):
        summarize([])


@pytest.mark.parametrize("seed", range(5))
def test_percentiles_and_moments_match_numpy(seed):
    rng = np.random.default_rng(seed)
    samples = rng.lognormal(mean=-6, sigma=0.4, size=int(rng.integers(2, 500)))
    s = summarize(samples.tolist())
    ordered = sorted(samples.tolist())
    for q in (0, 25, 50, 90, 95, 99, 100):
        assert percentile(ordered, q) == pytest.approx(np.percentile(samples, q), rel=1e-12)
    assert s.mean == pytest.approx(np.mean(samples), rel=1e-12)
    assert s.stdev == pytest.approx(np.std(samples, ddof=1), rel=1e-9)
    assert s.p99 == pytest.approx(np.percentile(samples, 99), rel=1e-12)


@pytest.mark.parametrize("n", [6, 7, 10, 11, 20, 50, 99, 100, 101, 1000, 4999, 20000])
def test_median_ci_matches_scipy_quantile_test(n):
    rng = np.random.default_rng(n)
    samples = rng.exponential(size=n)
    s = summarize(samples.tolist())
    expected = scipy.stats.quantile_test(samples, q=np.median(samples), p=0.5).confidence_interval(0.95)
    assert s.median_ci_low == pytest.approx(expected.low)
    assert s.median_ci_high == pytest.approx(expected.high)


def test_median_ci_ranks_are_the_tightest_with_95_percent_coverage():
    for n in range(6, 300):
        lo, hi = median_ci_ranks(n)
        assert hi == n - 1 - lo
        coverage = 1 - 2 * scipy.stats.binom.cdf(lo, n, 0.5)
        assert coverage >= 0.95
        tighter = 1 - 2 * scipy.stats.binom.cdf(lo + 1, n, 0.5)
        assert tighter < 0.95
    assert median_ci_ranks(5) is None


def test_median_ci_covers_true_median_in_simulation():
    rng = random.Random(1234)
    true_median = math.log(2)  # of Exp(1)
    trials, hits = 2000, 0
    for _ in range(trials):
        s = summarize([rng.expovariate(1.0) for _ in range(25)])
        hits += s.median_ci_low <= true_median <= s.median_ci_high
    assert hits / trials >= 0.94


def test_stability_warnings():
    steady = summarize([1.0 + 0.001 * (i % 3) for i in range(50)])
    assert stability_warnings(steady, timer_resolution=1e-9) == []

    noisy = summarize([1.0, 2.0] * 25)
    assert noisy.iqr / noisy.median > MAX_STABLE_SPREAD
    assert any(w.startswith("high spread") for w in stability_warnings(noisy))

    few = summarize([1.0, 1.0, 1.0])
    messages = stability_warnings(few)
    assert any(w.startswith("few samples") for w in messages)
    assert any(w.startswith("no 95% CI") for w in messages)

    short = summarize([100.0] * 20)  # 100 ns samples with a 1 ns timer
    assert any(w.startswith("short samples") for w in stability_warnings(short, timer_resolution=1.0))


def test_spread_warning_uses_iqr_not_a_tail_inflated_cv():
    """One slow sample in a thousand inflates the stdev, not the IQR: no spread warning."""
    samples = [1.0 + 0.001 * (i % 7) for i in range(999)] + [50.0]
    s = summarize(samples)
    assert s.cv > 0.10
    assert not any(w.startswith("high spread") for w in stability_warnings(s))
    assert s.outliers == 1
