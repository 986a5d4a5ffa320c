"""LLM decode against the memory-bandwidth roofline, per backend, at batch 1.

Goal (issue 4): the decode tokens/s of the largest preset that fits reaches at
least 50% of the read bandwidth ``membw`` measures on the same machine, on the
best backend. The fraction per backend lands in ``extra_info`` (and in the
saved pytest-benchmark JSON) and is printed.

Preset: ``BAKEOFF_ROOFLINE_PRESET`` (default ``qwen2.5-0.5b``; ``llama-3.2-1b``
also fits in 24 GiB, but its first ONNX export takes several minutes).
"""

from __future__ import annotations

import os

import pytest

from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping
from harness.orchestration.launchers import SubprocessLauncher
from harness.results.roofline import read_ceilings, roofline_fraction
from harness.results.store import build_record

pytestmark = pytest.mark.roofline

PRESET = os.environ.get("BAKEOFF_ROOFLINE_PRESET", "qwen2.5-0.5b")
TARGETS = [("torch", "cpu"), ("onnxruntime", "CPUExecutionProvider"), ("openvino", "CPU")]
STOPPING = Stopping(warmup=1, min_iterations=5, min_duration_s=5.0, max_duration_s=30.0)


def run(spec: BenchmarkSpec) -> dict:
    record = build_record("roofline", spec, SubprocessLauncher().launch(spec))
    record["host"] = "this-machine"
    return record


@pytest.fixture(scope="module")
def ceilings():
    records = [run(BenchmarkSpec.create(backend=b, device=d, workload="membw",
                                        params={"size_mib": 1024, "mode": "read"}, stopping=STOPPING, threads=None))
               for b, d in TARGETS]
    found = read_ceilings(records)
    assert found, [r.get("reason") for r in records]
    return found


@pytest.mark.benchmark(min_rounds=1, warmup=False)
def test_decode_roofline_fraction(benchmark, ceilings):
    fractions = {}

    def measure_all():
        for backend, device in TARGETS:
            spec = BenchmarkSpec.create(backend=backend, device=device, workload="llm",
                                        params={"preset": PRESET, "prompt_tokens": 32, "new_tokens": 16},
                                        dtype="float32", batch_size=1, stopping=STOPPING, timeout_s=1800)
            record = run(spec)
            assert record["status"] == "ok", record.get("reason")
            roofline = roofline_fraction(record, ceilings)
            fractions[backend] = {
                "roofline_fraction": roofline[0] if roofline else None,
                "read_bandwidth_GBps": roofline[1] / 1e9 if roofline else None,
                "decode_tokens_per_s": record["tokens"]["decode_tokens_per_s"]["value"],
                "decode_GBps": record["tokens"]["decode_bytes_per_s"] / 1e9,
                "parity_passed": record["parity"]["passed"],
            }

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    benchmark.extra_info.update(preset=PRESET, fractions=fractions)
    for backend, facts in fractions.items():
        print(f"{PRESET} {backend}: {facts['decode_tokens_per_s']:.3g} token/s, {facts['decode_GBps']:.3g} GB/s, "
              f"{facts['roofline_fraction']:.0%} of {facts['read_bandwidth_GBps']:.3g} GB/s read bandwidth")
    best = max(f["roofline_fraction"] for f in fractions.values())
    assert best >= 0.5, f"best backend reached {best:.0%} of the read-bandwidth roofline (goal: 50%)"


#: The runtimes buyers deploy for efficiency, at each precision they run here (issue 20). The
#: float32 reference row of each runtime is there to read its deviation and speed-up against.
EFFICIENCY_TARGETS = [
    ("llama-cpp", "cpu", "float32"), ("llama-cpp", "cpu", "float16"), ("llama-cpp", "cpu", "q8_0"),
    ("llama-cpp", "cpu", "q4_k_m"), ("llama-cpp", "cpu", "q4_0"),
    ("onnxruntime-genai", "cpu", "float32"), ("onnxruntime-genai", "cpu", "int4"),
    ("openvino-genai", "cpu", "float32"), ("openvino-genai", "cpu", "int8"), ("openvino-genai", "cpu", "int4"),
    ("onnxruntime", "CPUExecutionProvider", "float32"), ("torch", "cpu", "float32"),
]
EFFICIENCY_PARAMS = {"preset": PRESET, "prompt_tokens": 64, "new_tokens": 32}


def _interval(estimate: dict | None, scale: float = 1.0, digits: str = ".3g") -> str:
    if not estimate or estimate.get("value") is None:
        return "-"
    low, high = estimate.get("ci_low"), estimate.get("ci_high")
    value = format(estimate["value"] * scale, digits)
    return f"{value} [{format(low * scale, digits)}, {format(high * scale, digits)}]" if low is not None else value


def _seconds(stats: dict | None) -> dict | None:
    """A token-timing summary (``median_s``, ``median_ci_low_s``...) as an estimate with its interval."""
    if not stats:
        return None
    return {"value": stats["median_s"], "ci_low": stats.get("median_ci_low_s"), "ci_high": stats.get("median_ci_high_s")}


@pytest.mark.benchmark(min_rounds=1, warmup=False)
def test_quantized_decode_against_the_roofline_at_real_bytes(benchmark, ceilings):
    """Decode at batch 1 for every runtime x precision that runs here: token/s with its CI, TTFT,
    the weight bytes the runtime stored, the roofline fraction at those bytes, and the deviation
    from the torch float32 reference. Prints the README's table (markdown)."""
    rows = []

    def measure_all():
        for backend, device, dtype in EFFICIENCY_TARGETS:
            spec = BenchmarkSpec.create(backend=backend, device=device, workload="llm", params=EFFICIENCY_PARAMS,
                                        dtype=dtype, batch_size=1, stopping=STOPPING, timeout_s=3600)
            record = run(spec)
            rows.append(record)

    benchmark.pedantic(measure_all, rounds=1, iterations=1)
    lines = ["| runtime | precision | decode token/s [95% CI] | TTFT ms [95% CI] | weight bytes | roofline "
             "| parity (cosine, tokens differing) |", "|---|---|---|---|---|---|---|"]
    summary = {}
    for record in rows:
        spec = record["spec"]
        if record["status"] != "ok":
            lines.append(f"| {spec['backend']} | {spec['dtype']} | {record['status']}: {record.get('reason')} "
                         "| | | | |")
            continue
        tokens, parity = record["tokens"], record["parity"] or {}
        roofline = roofline_fraction(record, ceilings)
        weights = record["memory"]["weight_bytes"]
        summary[f"{spec['backend']}/{spec['dtype']}"] = {
            "decode_tokens_per_s": tokens["decode_tokens_per_s"]["value"],
            "roofline_fraction": roofline[0] if roofline else None, "weight_bytes": weights,
            "cosine": parity.get("cosine"), "parity_passed": parity.get("passed")}
        lines.append(
            f"| {spec['backend']} | {spec['dtype']} | {_interval(tokens['decode_tokens_per_s'])} "
            f"| {_interval(_seconds(tokens['ttft']), 1e3)} "
            f"| {weights / 1e6:.0f} MB | {f'{roofline[0]:.0%}' if roofline else '-'} "
            f"| {parity.get('cosine', float('nan')):.4f}, {parity.get('mismatched_ids', '-')} of "
            f"{EFFICIENCY_PARAMS['new_tokens']}{'' if parity.get('passed') else ' (fails parity)'} |")
    benchmark.extra_info.update(preset=PRESET, params=EFFICIENCY_PARAMS, runs=summary)
    print("\n".join(lines))
    failed = [f"{r['spec']['backend']}/{r['spec']['dtype']}: {r.get('reason')}" for r in rows if r["status"] != "ok"]
    assert not failed, failed
    q4 = [v for k, v in summary.items() if k.endswith(("/q4_0", "/int4"))]
    assert q4 and all(v["roofline_fraction"] is not None for v in q4)
