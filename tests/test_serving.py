"""Serving: `bakeoff serve` on loopback driven by the openai-http backend, a fault-injecting server,
and ranking a served candidate next to a bare runtime."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping
from harness.presentation.cli import cli

REPO = Path(__file__).resolve().parent.parent
PROMPT, NEW = 16, 8

pytest.importorskip("aiohttp")


@pytest.fixture(scope="module")
def served():
    """`bakeoff serve -b torch --preset tiny --port 0` as a real process; yields its URL."""
    process = subprocess.Popen([sys.executable, "-m", "harness.presentation.cli", "serve", "-b", "torch", "--preset", "tiny",
                                "--threads", "1", "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, cwd=REPO)
    try:
        ready, _, _ = select.select([process.stdout], [], [], 120)
        assert ready, "bakeoff serve did not start within 120 s"
        line = process.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:"), line + process.stderr.read()
        yield line.split()[-1]
    finally:
        process.terminate()
        process.wait(30)


def http_spec(url: str, scenario: str = "single-stream", **options) -> BenchmarkSpec:
    return BenchmarkSpec.create(
        backend="openai-http", device="endpoint", workload="llm", scenario=scenario,
        params={"preset": "tiny", "prompt_tokens": PROMPT, "new_tokens": NEW},
        options={"url": url, "request_timeout_s": 30, **options},
        stopping=Stopping(warmup=2, min_iterations=15, min_duration_s=0.5, max_duration_s=10, target_ci=0.05))


@pytest.mark.slow
def test_served_tokens_and_timings_match_the_bare_backend(served):
    registry = Registry()
    bare_spec = BenchmarkSpec.create(backend="torch", device="cpu", workload="llm", threads=1,
                                     params={"preset": "tiny", "prompt_tokens": PROMPT, "new_tokens": NEW},
                                     stopping=http_spec(served).stopping)
    # The bare backend runs before and after the HTTP run, and each bound below takes the bare figure
    # that leans its way: a change of load between runs widens the band instead of failing the test.
    # On a quiet machine the two figures agree and the bounds are the single-run ones.
    bare_before = execute(bare_spec, registry)
    over_http = execute(http_spec(served), registry)
    bare_after = execute(bare_spec, registry)
    assert over_http.status == "ok", over_http.failure or over_http.reason
    details = over_http.details
    # Token counts are the server's own usage, and match what was asked.
    assert details["token_count_source"].startswith("server usage")
    assert details["usage_prompt_tokens"] == [PROMPT] and details["usage_completion_tokens"] == [NEW]
    assert details["content_chunks"] == [NEW] and details["output_length_mismatches"] == 0
    assert details["server_reports"]["backend"] == "torch" and details["engine"] == "bakeoff serve"
    # What the server reports of its model, never the local preset's size attached to a remote model.
    assert details["model"]["dtype"] == "float32"
    assert details["model"]["parameters"] == bare_before.details["model"]["parameters"]
    assert over_http.memory["weight_bytes"] is None and "remote" in over_http.memory["weight_bytes_source"]

    for bare in (bare_before, bare_after):
        assert bare.status == "ok", bare.failure or bare.reason
    from harness.analysis.tokens import token_metrics

    def medians(outcome):
        metrics = token_metrics([list(m) for m in outcome.measurement.token_offsets_ns], 1)
        return metrics["ttft"]["median_s"], metrics["tpot"]["median_s"]

    http_ttft, http_tpot = medians(over_http)
    (ttft_1, tpot_1), (ttft_2, tpot_2) = medians(bare_before), medians(bare_after)
    print(f"\nHTTP overhead on loopback: TTFT {ttft_1 * 1e3:.2f} / {ttft_2 * 1e3:.2f} ms bare (before / after) -> "
          f"{http_ttft * 1e3:.2f} ms served, TPOT {tpot_1 * 1e3:.3f} / {tpot_2 * 1e3:.3f} -> {http_tpot * 1e3:.3f} ms")
    # The served timings are the backend's prefill and decode plus a bounded HTTP/SSE overhead.
    assert 0 < http_ttft < max(ttft_1, ttft_2) + 0.050
    assert 0 < http_tpot < max(tpot_1, tpot_2) + 0.010
    assert http_ttft > 0.5 * min(ttft_1, ttft_2)  # not faster than the model itself can be


@pytest.mark.slow
def test_chat_api_and_poisson_rate(served):
    chat = execute(http_spec(served, api="chat"), Registry())
    assert chat.status == "ok" and chat.details["usage_completion_tokens"] == [NEW]
    plain = execute(http_spec(served, ignore_eos=False, include_usage=False), Registry())
    assert plain.status == "ok" and plain.details["token_count_source"].startswith("counted SSE chunks")
    assert plain.details["content_chunks"] == [NEW] and plain.details["usage_completion_tokens"] is None
    spec = http_spec(served, scenario="server")
    from dataclasses import replace

    from harness.engine.scenarios import ServerSettings

    # Poisson arrivals at a quarter of what the one-at-a-time server sustains now (the E2E just
    # measured, at most 20 QPS): a busy machine slows the server without making it fall behind.
    import statistics

    qps = min(20.0, 0.25e9 / statistics.median(plain.measurement.latencies_ns))
    spec = replace(spec, server=ServerSettings(target_qps=qps, latency_slo_s=2.0, min_queries=30, min_duration_s=1.0))
    poisson = execute(spec, Registry())
    assert poisson.status == "ok", poisson.failure or poisson.reason
    assert poisson.scenario["valid"], poisson.scenario
    assert len(poisson.measurement.token_offsets_ns) >= 30
    assert poisson.scenario["goodput"]["fraction"] > 0.9 and poisson.scenario["goodput"]["requests_per_s"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_faults_are_counted_with_causes_and_the_run_completes(client):
    from tests.servers.fault_server import FaultServer

    server = FaultServer(tokens=NEW, stall_s=3.0).start()
    try:
        spec = BenchmarkSpec.create(
            backend="openai-http", device="endpoint", workload="llm",
            params={"preset": "tiny", "prompt_tokens": 4, "new_tokens": NEW},
            options={"url": server.url, "request_timeout_s": 1, "max_failed_percent": 10, "client": client},
            stopping=Stopping(warmup=0).with_fixed_iterations(8))
        outcome = execute(spec, Registry())
    finally:
        server.stop()
    assert outcome.status == "ok", outcome.failure
    failures = outcome.details["request_failures"]
    assert failures == {"http 500": 2, "dropped stream": 2, "malformed sse": 2, "timeout": 2} or \
        set(failures) == {"http 500", "dropped stream", "malformed sse", "timeout"}
    assert len(outcome.measurement.latencies_ns) == 8  # only completed requests are timed
    assert outcome.scenario["valid"] is False and "failed" in outcome.scenario["validity_reason"]


def test_openai_http_needs_its_url_and_skips_default_sweeps():
    runner = CliRunner()
    missing = runner.invoke(cli, ["run", "-b", "openai-http", "-w", "llm"])
    assert missing.exit_code == 2 and "openai-http.url" in missing.output
    bad = runner.invoke(cli, ["run", "-b", "openai-http", "-w", "llm", "-O", "openai-http.url=ftp://x"])
    assert bad.exit_code == 2 and "expected http://HOST:PORT" in bad.output
    from harness.orchestration.sweep import SweepRequest, plan

    default = plan(SweepRequest(workloads=("gemm",)), Registry())
    assert "openai-http" not in {s.backend for s in default.specs}


@pytest.mark.slow
def test_rank_treats_a_served_candidate_like_a_bare_runtime(served, tmp_path):
    runner = CliRunner()
    label = json.loads(runner.invoke(cli, ["backends", "--json"]).output)
    cpu_model = next(r["model"] for r in label if r["backend"] == "torch" and r["device"] == "cpu")
    common = ["-w", "llm", "--preset", "tiny", "-p", f"prompt_tokens={PROMPT}", "-p", f"new_tokens={NEW}",
              "--threads", "1", "--max-duration", "3", "--launcher", "inline", "--out", str(tmp_path), "--json", "-q"]
    served_run = runner.invoke(cli, ["run", "-b", "openai-http", "-O", f"openai-http.url={served}",
                                     "-O", f"openai-http.device_label={cpu_model}", *common])
    bare_run = runner.invoke(cli, ["run", "-b", "torch", "-d", "cpu", *common])
    assert served_run.exit_code == 0 and bare_run.exit_code == 0, served_run.output + bare_run.output
    runs = [json.loads(r.output)["run_dir"] for r in (served_run, bare_run)]
    # The example catalog prices this VM's CPU; both candidates run on it.
    ranked = runner.invoke(cli, ["rank", *runs, "--catalog", str(REPO / "docs" / "catalog.example.toml"), "--json"])
    assert ranked.exit_code == 0, ranked.output
    candidates = {c["candidate"]: c for c in json.loads(ranked.output)["ranked"]}
    assert any(name.startswith("openai-http") for name in candidates), candidates
    assert any(name.startswith("torch/cpu") for name in candidates), candidates
    for candidate in candidates.values():
        assert "token" in candidate["cost"]["per"] and candidate["cost"]["value"] > 0, candidate["cost"]



def concurrent_spec(url: str, **load) -> BenchmarkSpec:
    from dataclasses import replace

    from harness.engine.scenarios import ServerSettings

    settings = ServerSettings(latency_slo_s=5.0, min_queries=20, min_duration_s=0.5, ttft_bound_s=5.0,
                              tpot_bound_s=1.0, **load)
    return replace(http_spec(url, scenario="concurrent"), server=settings)


@pytest.mark.slow
def test_fixed_concurrency_four_with_goodput(served):
    single = execute(http_spec(served), Registry())
    outcome = execute(concurrent_spec(served, concurrency=4), Registry())
    single_after = execute(http_spec(served), Registry())  # brackets the concurrent run in time
    assert outcome.status == "ok", outcome.failure or outcome.reason
    scenario = outcome.scenario
    assert scenario["concurrency"] == 4 and scenario["valid"], scenario
    assert len(outcome.measurement.latencies_ns) >= 20
    assert 0 < scenario["goodput"]["fraction"] <= 1 and scenario["goodput"]["requests_per_s"] > 0
    assert outcome.throughput["unit"] == "token/s" and outcome.details["usage_completion_tokens"] == [NEW]
    # bakeoff serve runs one request at a time, so four in flight queue behind each other: E2E grows
    # with the queue while throughput stays about what one client gets.
    import statistics

    # Against the faster of two single-client runs bracketing it, so a change of load between runs
    # cannot hide the queueing.
    single_e2e = min(statistics.median(s.measurement.latencies_ns) for s in (single, single_after))
    factor = statistics.median(outcome.measurement.latencies_ns) / single_e2e
    print(f"\nconcurrency 4 vs 1 on a server without batching: median E2E x{factor:.2f}, "
          f"{outcome.throughput['value']:.0f} token/s")
    assert factor > 1.5


@pytest.mark.slow
def test_find_max_concurrency_doubles_until_the_cap(served):
    outcome = execute(concurrent_spec(served, find_max_concurrency=True, max_concurrency=4), Registry())
    assert outcome.status == "ok", outcome.failure or outcome.reason
    assert [t["concurrency"] for t in outcome.scenario["trials"]] == [1, 2, 4]
    assert outcome.scenario["metric"] == {"name": "max_valid_concurrency", "value": 4, "unit": "clients"}


def test_concurrent_scenario_needs_overlapping_queries():
    from dataclasses import replace

    from harness.engine.scenarios import ServerSettings

    spec = replace(BenchmarkSpec.create(backend="torch", device="cpu", workload="gemm", params={"size": 8},
                                        scenario="concurrent", iterations=2), server=ServerSettings())
    outcome = execute(spec, Registry())
    assert outcome.status == "unsupported" and "queries may overlap" in outcome.reason


def test_engine_is_read_from_a_version_endpoint():
    """vLLM and SGLang answer GET /version; the record names the engine without being told."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from backends.openai_http import Client

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"version": "0.9.1"}).encode() if self.path == "/version" else b"{}"
            self.send_response(200 if self.path == "/version" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client(f"http://127.0.0.1:{server.server_port}", 5, None)
        assert client.engine("vllm") == "vllm 0.9.1"
        assert Client(f"http://127.0.0.1:{server.server_port}/v1", 5, None).engine(None) == "server 0.9.1"
    finally:
        server.shutdown()


@pytest.mark.slow
def test_non_streaming_answers_and_the_same_tokens_from_another_runtime(served):
    """A plain (non-stream) completion from the torch server equals greedy generation on ONNX Runtime."""
    import urllib.request

    from harness.tools.serve import ServedModel

    prompt = "t1 t2 t3 hello world"
    request = urllib.request.Request(f"{served}/v1/completions", method="POST",
                                     data=json.dumps({"prompt": prompt, "max_tokens": 6}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert answer["usage"] == {"prompt_tokens": 5, "completion_tokens": 6, "total_tokens": 11}
    served_tokens = [int(word[1:]) for word in answer["choices"][0]["text"].split()]

    model = ServedModel("onnxruntime", None, "tiny", threads=1)
    try:
        tokens: list[int] = []
        model.generate(model.tokenizer.encode(prompt), 6, tokens.append)
    finally:
        model.close()
    assert tokens == served_tokens


def test_bad_requests_get_a_400_with_the_reason():
    from harness.tools.serve import WordTokenizer, _parse_request

    tokenizer = WordTokenizer(100)
    assert _parse_request({"prompt": "t5 t99 t100 x", "max_tokens": 2}, False, tokenizer)[0][:2] == [5, 99]
    for body, message in (([], "JSON object"), ({"prompt": 3}, "prompt must be a string"),
                          ({"prompt": ""}, "no tokens"), ({"prompt": "a", "max_tokens": 0}, "max_tokens"),
                          ({"messages": "hi"}, "messages must be")):
        with pytest.raises(ValueError, match=message):
            _parse_request(body, "messages" in body if isinstance(body, dict) else False, tokenizer)


def test_serve_bad_input_is_one_line_exit_2():
    import socket

    runner = CliRunner()
    refused = runner.invoke(cli, ["serve", "-b", "onnxruntime", "--dtype", "bfloat16", "--port", "0"])
    assert refused.exit_code == 2 and "cannot serve llm at bfloat16" in refused.output
    assert refused.output.count("\n") == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = runner.invoke(cli, ["serve", "-b", "torch", "--threads", "1", "--port", str(port)])
    assert busy.exit_code == 2 and "cannot listen" in busy.output and busy.output.count("\n") == 1
