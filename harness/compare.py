"""Comparing runs: matched benchmarks, median ratios with confidence intervals, significance.

Benchmarks match across runs on their identity key (backend, device,
workload and parameters, dtype, batch size, scenario). For each match the
ratio NEW/BASE of median latency gets a 95% bootstrap confidence interval
(2,000 seeded resamples of both sides), and the raw samples get a two-sided
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

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Sequence

from harness.options import backend_label

ALPHA = 0.05
BOOTSTRAP_RESAMPLES = 2000
TEST_NAME = "Mann-Whitney U (two-sided, normal approximation with tie correction)"
CI_NAME = "bootstrap of the median ratio (2,000 seeded resamples, percentile interval)"


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


def median_ratio_ci(base: Sequence[float], new: Sequence[float], seed: int = 0,
                    resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    import numpy as np

    rng = np.random.default_rng(seed)
    b, n = np.asarray(base, dtype=float), np.asarray(new, dtype=float)
    b_medians = np.median(rng.choice(b, size=(resamples, len(b)), replace=True), axis=1)
    n_medians = np.median(rng.choice(n, size=(resamples, len(n)), replace=True), axis=1)
    ratios = n_medians / b_medians
    return float(np.percentile(ratios, 2.5)), float(np.percentile(ratios, 97.5))


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

    def regressions(self, threshold: float) -> list[Comparison]:
        return [c for c in self.comparisons if c.verdict == "regressed" and c.ratio - 1 > threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": TEST_NAME, "ci": CI_NAME, "alpha": ALPHA,
            "comparisons": [c.to_dict() for c in self.comparisons],
            "only_base": self.only_base, "only_new": self.only_new,
            "not_comparable": self.not_comparable, "fingerprint_warnings": self.fingerprint_warnings,
        }


def _label(record: Mapping[str, Any]) -> str:
    spec = record["spec"]
    params = ",".join(f"{k}={v}" for k, v in sorted((spec.get("params") or {}).items()))
    return (f"{backend_label(spec)}/{spec['device']} {spec['workload']} {params} {spec['dtype']} "
            f"b{spec['batch_size']} {spec.get('scenario', 'single-stream')}").replace("  ", " ")


def compare(base: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]], threshold: float = 0.05) -> CompareResult:
    """Compare two runs' records (each a list of records of one run)."""
    result = CompareResult()
    base_by_key = {r["key"]: r for r in base}
    new_by_key = {r["key"]: r for r in new}
    result.only_base = sorted(_label(base_by_key[k]) for k in base_by_key.keys() - new_by_key.keys())
    result.only_new = sorted(_label(new_by_key[k]) for k in new_by_key.keys() - base_by_key.keys())
    for key in sorted(base_by_key.keys() & new_by_key.keys()):
        old, cur = base_by_key[key], new_by_key[key]
        label = _label(old)
        problems = [f"{side}: {r.get('status')}" + (" (parity failed)" if (r.get("parity") or {}).get("passed") is False else "")
                    for side, r in (("base", old), ("new", cur))
                    if r.get("status") != "ok" or (r.get("parity") or {}).get("passed") is False]
        if problems:
            result.not_comparable.append({"benchmark": label, "reason": "; ".join(problems)})
            continue
        a = old["measurement"]["latencies_ns"]
        b = cur["measurement"]["latencies_ns"]
        if len(a) < 2 or len(b) < 2:
            result.not_comparable.append({"benchmark": label, "reason": "fewer than 2 samples"})
            continue
        import numpy as np

        base_median, new_median = float(np.median(a)) / 1e9, float(np.median(b)) / 1e9
        ratio = new_median / base_median
        ci = median_ratio_ci(a, b)
        _, p = mann_whitney_u(a, b)
        result.comparisons.append(Comparison(key, label, old.get("run_id", ""), cur.get("run_id", ""),
                                             base_median, new_median, ratio, ci, p, verdict(ratio, ci, p, threshold)))
        if old.get("fingerprint") and cur.get("fingerprint") and old["fingerprint"] != cur["fingerprint"]:
            changed = sorted(k for k, v in (old.get("fingerprint_inputs") or {}).items()
                             if (cur.get("fingerprint_inputs") or {}).get(k) != v)
            result.fingerprint_warnings.append(f"{label}: environments differ ({', '.join(changed) or 'fingerprint'})")
    return result


def parse_threshold(text: str) -> float:
    """``"5%"`` or ``"0.05"`` to 0.05; ``ValueError`` otherwise."""
    value = float(text[:-1]) / 100 if text.strip().endswith("%") else float(text)
    if not 0 <= value < 10:
        raise ValueError(text)
    return value
