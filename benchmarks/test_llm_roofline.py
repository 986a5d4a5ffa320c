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
