"""Comparing runs: matched benchmarks, median ratios with confidence intervals, significance.

Benchmarks match across runs on their identity key (backend, device,
workload and parameters, dtype, batch size, scenario). For each match the
ratio NEW/BASE of median latency gets a 95% bootstrap confidence interval
(2,000 seeded draws from each side's bootstrap median distribution, computed
exactly from order statistics rather than by resampling), and the raw samples get a two-sided
**Mann-Whitney U test** (normal approximation with tie correction), so a
verdict never rests on two medians alone:

* ``regressed`` / ``improved``: p < 0.05 and the median moved by more than
  the threshold (latency up is a regression);
* ``unchanged``: the change is within the threshold, or it is not
  significant and the confidence interval stays inside the threshold band;
* ``inconclusive``: not significant, and the interval is too wide to rule
  out a change beyond the threshold (too noisy to tell).

Pure functions over records; numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from harness.results.record import Record, as_record, benchmark_label, comparison_problem

if TYPE_CHECKING:  # pragma: no cover
    import numpy

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
TEST_NAME = "Mann-Whitney U (two-sided, normal approximation with tie correction)"
CI_NAME = ("bootstrap of the median ratio (2,000 seeded draws from each side's exact bootstrap "
           "median distribution, percentile interval)")


def mann_whitney_u(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """(U statistic of ``a``, two-sided p-value), normal approximation with tie correction."""
    import numpy as np

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(x), len(y)
    combined = np.concatenate([x, y])
    order = combined.argsort(kind="mergesort")
    ranks = np.empty(len(combined))
    ranks[order] = np.arange(1, len(combined) + 1)
    values, inverse, counts = np.unique(combined, return_inverse=True, return_counts=True)
    mean_ranks = np.bincount(inverse, weights=ranks) / counts  # average ranks for ties
    ranks = mean_ranks[inverse]
    u1 = ranks[:n1].sum() - n1 * (n1 + 1) / 2
    n = n1 + n2
    tie_term = ((counts**3 - counts).sum()) / (n * (n - 1)) if n > 1 else 0.0
    sigma = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term))
    if sigma == 0:
        return float(u1), 1.0
    z = (abs(u1 - n1 * n2 / 2) - 0.5) / sigma  # continuity correction
    p = math.erfc(max(z, 0.0) / math.sqrt(2))
    return float(u1), min(1.0, p)


#: Above this many samples the binomial tails use the normal approximation (with
#: continuity correction), whose error there is far below the bootstrap's own noise.
EXACT_TAIL_MAX_N = 300


def _normal_upper_tail(z):
    """``P(Z >= z)`` for a standard normal, numpy-only (Abramowitz & Stegun 7.1.26, error < 1.5e-7)."""
    import numpy as np

    x = np.abs(z) / math.sqrt(2)
    t = 1 / (1 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erfc = poly * np.exp(-x * x)
    return np.where(z >= 0, erfc / 2, 1 - erfc / 2)


@functools.lru_cache(maxsize=256)
def _binomial_upper_tails(n: int, k: int):
    """``P(Binomial(n, j/n) >= k)`` for j = 1..n. It depends on n and k alone, so it is cached."""
    import numpy as np

    p = np.arange(1, n + 1) / n
    tails = np.ones(n)  # j = n: every draw is at or below the maximum
    q = p[:-1]
    if n > EXACT_TAIL_MAX_N:
        tails[:-1] = _normal_upper_tail((k - 0.5 - n * q) / np.sqrt(n * q * (1 - q)))
    else:
        counts = np.arange(k, n + 1)
        log_factorial = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])
        log_choose = log_factorial[n] - log_factorial[counts] - log_factorial[n - counts]
        terms = (log_choose[None, :] + counts[None, :] * np.log(q)[:, None]
                 + (n - counts)[None, :] * np.log1p(-q)[:, None])
        top = terms.max(axis=1, keepdims=True)
        tails[:-1] = np.exp(top[:, 0]) * np.exp(terms - top).sum(axis=1)
    tails = np.clip(tails, 0.0, 1.0)
    tails.flags.writeable = False  # shared through the cache
    return tails


@functools.lru_cache(maxsize=256)
def _upper_above_lower(n: int):
    """For even n: ``P(upper middle statistic > lower | lower = x_(i))`` for i = 1..n (cached per n).

    The upper exceeds the lower exactly when exactly k = n/2 draws fell at or below
    x_(i) and at least one of them at x_(i): ``P(N_i = k) (1 - ((i-1)/i)^k)``.
    """
    import numpy as np

    k = n // 2
    i = np.arange(1, n + 1)
    log_choose = math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
    q = np.minimum(i, n - 1) / n
    pmf = np.where(i == n, 0.0, np.exp(log_choose + k * np.log(q) + (n - k) * np.log1p(-q)))
    split = pmf * (1 - ((i - 1) / i) ** k)
    mass = np.diff(np.concatenate([[0.0], _binomial_upper_tails(n, (n + 1) // 2)]))
    ratio = np.divide(split, mass, out=np.zeros(n), where=mass > 0)
    ratio.flags.writeable = False
    return ratio


def bootstrap_median_indices(n: int, uniforms: "numpy.ndarray") -> tuple["numpy.ndarray", "numpy.ndarray"]:
    """Indices (lower, upper) into a sorted sample of size ``n`` whose averages are draws from the
    bootstrap distribution of its median, driven by ``uniforms`` of shape ``(3, draws)``.

    A resample's k-th order statistic is at most x_(j) exactly when at least k of
    its n draws fall at or below x_(j), which is Binomial(n, j/n); so its CDF over
    the sorted sample is a binomial tail, sampled by inverting it. For even n the
    median averages the two middle order statistics: given the lower one is
    x_(i), the upper is also x_(i) unless exactly k draws fell at or below x_(i),
    and then it is the least of the other n - k draws, uniform above i. This costs
    O(n^2) once per sample size (cached) instead of O(draws x n) resampling, and
    gives the resampling bootstrap's distribution (tests/test_compare_stats.py).
    The indices depend only on n and the uniforms, so every sample of size n can
    share them: comparing thousands of benchmarks is a few array lookups.
    """
    import numpy as np

    k = (n + 1) // 2
    lower = np.minimum(np.searchsorted(_binomial_upper_tails(n, k), uniforms[0]), n - 1)
    if n % 2:
        return lower, lower
    above = uniforms[1] < _upper_above_lower(n)[lower]
    room = n - 1 - lower  # points above x_(lower)
    step = np.ceil(room * (1 - (1 - uniforms[2]) ** (1 / (n - k)))).astype(int)
    upper = np.where(above & (room > 0), lower + np.clip(step, 1, np.maximum(room, 1)), lower)
    return lower, upper


def median_ratio_cis(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], seed: int = 0,
                     resamples: int = BOOTSTRAP_RESAMPLES) -> list[tuple[float, float]]:
    """:func:`median_ratio_ci` for many (base, new) pairs at once; each result equals the single call.

    Every pair uses the same seeded uniforms (common random numbers), so a
    pair's interval never depends on which other pairs are compared with it.
    Pairs with equal sample sizes are computed together as one array operation.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    new_uniforms, base_uniforms = rng.random((3, resamples)), rng.random((3, resamples))
    groups: dict[tuple[int, int], list[int]] = {}
    for index, (base, new) in enumerate(pairs):
        groups.setdefault((len(base), len(new)), []).append(index)
    results: list[tuple[float, float]] = [(math.nan, math.nan)] * len(pairs)
    for (n_base, n_new), members in groups.items():
        bases = np.sort(np.asarray([pairs[i][0] for i in members], dtype=float), axis=1)
        news = np.sort(np.asarray([pairs[i][1] for i in members], dtype=float), axis=1)
        nl, nu = bootstrap_median_indices(n_new, new_uniforms)
        bl, bu = bootstrap_median_indices(n_base, base_uniforms)
        ratios = (news[:, nl] + news[:, nu]) / (bases[:, bl] + bases[:, bu])
        lows, highs = np.percentile(ratios, (2.5, 97.5), axis=1)
        for position, index in enumerate(members):
            results[index] = (float(lows[position]), float(highs[position]))
    return results


def median_ratio_ci(base: Sequence[float], new: Sequence[float], seed: int = 0,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """95% percentile interval of NEW/BASE from the two sides' bootstrap median distributions."""
    return median_ratio_cis([(base, new)], seed, resamples)[0]


def verdict(ratio: float, ci: tuple[float, float], p_value: float, threshold: float) -> str:
    beyond = abs(ratio - 1) > threshold
    if p_value < ALPHA:
        if not beyond:
            return "unchanged"
        return "regressed" if ratio > 1 else "improved"
    if ci[0] >= 1 - threshold and ci[1] <= 1 + threshold:
        return "unchanged"
    return "inconclusive"


@dataclass
class Comparison:
    key: str
    label: str
    base_run: str
    new_run: str
    base_median_s: float
    new_median_s: float
    ratio: float
    ratio_ci: tuple[float, float]
    p_value: float
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio_ci"] = list(self.ratio_ci)
        return data


@dataclass
class CompareResult:
    comparisons: list[Comparison] = field(default_factory=list)
    only_base: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)
    not_comparable: list[dict[str, str]] = field(default_factory=list)
    fingerprint_warnings: list[str] = field(default_factory=list)
    #: Benchmarks measured while other processes used the machine, on either side.
    interference_warnings: list[str] = field(default_factory=list)

    def regressions(self, threshold: float) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "regressed" and c.ratio - 1 > threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": TEST_NAME, "ci": CI_NAME, "alpha": ALPHA,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "only_base": self.only_base, "only_new": self.only_new,
            "not_comparable": self.not_comparable, "fingerprint_warnings": self.fingerprint_warnings,
            "interference_warnings": self.interference_warnings,
        }


def compare(base: Sequence[Record | Mapping[str, Any]], new: Sequence[Record | Mapping[str, Any]],
            threshold: float = 0.05) -> CompareResult:
    """Compare two runs' records (each a list of records of one run)."""
    result = CompareResult()
    base_by_key = {r.key: r for r in map(as_record, base)}
    new_by_key = {r.key: r for r in map(as_record, new)}
    result.only_base = sorted(benchmark_label(base_by_key[k]) for k in base_by_key.keys() - new_by_key.keys())
    result.only_new = sorted(benchmark_label(new_by_key[k]) for k in new_by_key.keys() - base_by_key.keys())
    import numpy as np

    matched = []  # (key, label, old, cur, base samples, new samples)
    for key in sorted(base_by_key.keys() & new_by_key.keys()):
        old, cur = base_by_key[key], new_by_key[key]
        label = benchmark_label(old)
        problems = [f"{side}: {problem}" for side, r in (("base", old), ("new", cur))
                    if (problem := comparison_problem(r)) is not None]
        if problems:
            result.not_comparable.append({"benchmark": label, "reason": "; ".join(problems)})
            continue
        a = np.asarray(old.measurement["latencies_ns"], dtype=float)
        b = np.asarray(cur.measurement["latencies_ns"], dtype=float)
        if len(a) < 2 or len(b) < 2:
            result.not_comparable.append({"benchmark": label, "reason": "fewer than 2 samples"})
            continue
        matched.append((key, label, old, cur, a, b))
    intervals = median_ratio_cis([(a, b) for *_, a, b in matched])
    for (key, label, old, cur, a, b), ci in zip(matched, intervals):
        base_median, new_median = float(np.median(a)) / 1e9, float(np.median(b)) / 1e9
        ratio = new_median / base_median
        _, p = mann_whitney_u(a, b)
        result.comparisons.append(Comparison(key, label, old.run_id or "", cur.run_id or "",
                                             base_median, new_median, ratio, ci, p, verdict(ratio, ci, p, threshold)))
        if old.fingerprint and cur.fingerprint and old.fingerprint != cur.fingerprint:
            changed = sorted(k for k, v in (old.fingerprint_inputs or {}).items()
                             if (cur.fingerprint_inputs or {}).get(k) != v)
            result.fingerprint_warnings.append(f"{label}: environments differ ({', '.join(changed) or 'fingerprint'})")
        noisy = [side for side, r in (("base", old), ("new", cur)) if r.interference and r.interference.noisy]
        if noisy:
            reasons = "; ".join(f"{side}: {', '.join(r.interference.reasons or ['noisy'])}"
                                for side, r in (("base", old), ("new", cur)) if side in noisy)
            result.interference_warnings.append(
                f"{label}: interference on the {' and '.join(noisy)} side ({reasons}); the verdict may reflect "
                "the machine's other load rather than the change")
    return result


def parse_threshold(text: str) -> float:
    """``"5%"`` or ``"0.05"`` to 0.05; ``ValueError`` otherwise."""
    value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    if not 0 <= value < 10:
        raise ValueError(text)
    return value
