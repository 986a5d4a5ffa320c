"""Statistics over raw latency samples, as pure functions.

Nothing here knows about backends, clocks or files: every function takes a
sequence of numbers and returns numbers, so each is tested against hand values
and against numpy/scipy.

Choices, and why:

* **Percentiles** use linear interpolation between closest ranks (Hyndman and
  Fan type 7), numpy's default, so a buyer re-computing from the raw samples in
  the record gets the same numbers.
* **The median's 95% confidence interval** is the distribution-free
  order-statistic interval: the ranks come from Binomial(n, 1/2), so the
  interval covers the true median with probability >= 95% whatever the shape
  of the latency distribution (latencies are skewed, so a normal-theory
  interval would lie). With fewer than 6 samples no such interval exists and
  the bounds are ``None``.
* **Outliers** are counted with Tukey's fences (1.5 IQR beyond the quartiles).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

CI_METHOD = "order-statistic (binomial, distribution-free)"
CI_LEVEL = 0.95

#: Stability thresholds, after pyperf's ``check`` and torch.utils.benchmark.
#: Spread is judged by IQR/median (as torch does): robust to the rare long
#: tail sample that inflates a stdev-based CV over thousands of samples.
MAX_STABLE_SPREAD = 0.10
MIN_SAMPLES = 10
#: A sample should be at least this many timer ticks long to be trustworthy.
MIN_TICKS_PER_SAMPLE = 1000


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of already sorted values, linear interpolation."""
    if not sorted_values:
        raise ValueError("percentile of no samples")
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q} outside 0..100")
    position = (len(sorted_values) - 1) * q / 100
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    return sorted_values[lower] + (sorted_values[upper] - sorted_values[lower]) * fraction


def median_ci_ranks(n: int, level: float = CI_LEVEL) -> tuple[int, int] | None:
    """0-based ranks ``(lo, hi)`` of the order-statistic CI for the median.

    The interval ``[x[lo], x[n-1-lo]]`` covers the median with probability
    ``1 - 2 * P(X <= lo)``, ``X ~ Binomial(n, 1/2)``; ``lo`` is the largest
    rank that keeps this >= ``level``. Returns ``None`` when even
    ``[min, max]`` falls short (n < 6 at 95%).
    """
    alpha_half = (1 - level) / 2
    if n < 1 or 0.5**n > alpha_half:
        return None
    # Walk the binomial CDF upwards in log space. Mass below n/2 - 4*sqrt(n) is
    # under 1e-15, so start there: O(sqrt(n)) terms instead of O(n).
    log_norm = math.lgamma(n + 1) - n * math.log(2)
    k = max(0, math.floor(n / 2 - 4 * math.sqrt(n)))
    cdf = 0.0
    while True:
        cdf += math.exp(log_norm - math.lgamma(k + 1) - math.lgamma(n - k + 1))
        if cdf > alpha_half:
            break
        k += 1
    # P(X <= k-1) <= alpha/2 < P(X <= k): rank k-1 is the last valid lower bound.
    lo = max(k - 1, 0)
    return lo, n - 1 - lo


@dataclass(frozen=True)
class Summary:
    """Descriptive statistics of one set of samples, in the samples' own unit."""

    count: int
    mean: float
    median: float
    stdev: float
    min: float
    max: float
    p50: float
    p90: float
    p95: float
    p99: float
    median_ci_low: float | None
    median_ci_high: float | None
    cv: float
    iqr: float
    outliers: int
    ci_method: str = CI_METHOD
    ci_level: float = CI_LEVEL

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(samples: Sequence[float]) -> Summary:
    """Summarize raw samples. Raises ``ValueError`` for an empty sequence."""
    values = sorted(float(v) for v in samples)
    n = len(values)
    if n == 0:
        raise ValueError("cannot summarize zero samples")
    mean = math.fsum(values) / n
    stdev = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    ranks = median_ci_ranks(n)
    q1, q3 = percentile(values, 25), percentile(values, 75)
    fence = 1.5 * (q3 - q1)
    outliers = sum(1 for v in values if v < q1 - fence or v > q3 + fence)
    return Summary(
        count=n,
        mean=mean,
        median=percentile(values, 50),
        stdev=stdev,
        min=values[0],
        max=values[-1],
        p50=percentile(values, 50),
        p90=percentile(values, 90),
        p95=percentile(values, 95),
        p99=percentile(values, 99),
        median_ci_low=values[ranks[0]] if ranks else None,
        median_ci_high=values[ranks[1]] if ranks else None,
        cv=stdev / mean if mean else 0.0,
        iqr=q3 - q1,
        outliers=outliers,
    )


def stability_warnings(summary: Summary, timer_resolution: float | None = None) -> list[str]:
    """Warnings a careful reader should see next to the numbers.

    ``timer_resolution`` is in the same unit as the samples.
    """
    warnings: list[str] = []
    if summary.count < MIN_SAMPLES:
        warnings.append(f"few samples: {summary.count} < {MIN_SAMPLES}")
    spread = summary.iqr / summary.median if summary.median else 0.0
    if spread > MAX_STABLE_SPREAD:
        warnings.append(f"high spread: IQR {spread:.1%} of median > {MAX_STABLE_SPREAD:.0%}")
    if timer_resolution and summary.min < MIN_TICKS_PER_SAMPLE * timer_resolution:
        warnings.append(f"short samples: under {MIN_TICKS_PER_SAMPLE} timer ticks")
    if summary.median_ci_low is None:
        warnings.append("no 95% CI: fewer than 6 samples")
    return warnings


def median_rate(latencies_ns: Sequence[float], work_per_step: float, unit: str) -> dict | None:
    """Throughput as work per step over the *median* step latency, with the 95% interval of
    the median's order statistics, so the rate carries the same spread as the latency it
    derives from. The basis of scenarios that declare none of their own (single-stream)."""
    if not latencies_ns or not work_per_step:
        return None
    summary = summarize(latencies_ns)
    if not summary.median or summary.median <= 0:
        return None
    return {
        "value": work_per_step / (summary.median / 1e9),
        "unit": f"{unit}/s",
        "ci_low": work_per_step / (summary.median_ci_high / 1e9) if summary.median_ci_high else None,
        "ci_high": work_per_step / (summary.median_ci_low / 1e9) if summary.median_ci_low else None,
        "basis": "work per step / median step latency",
    }
