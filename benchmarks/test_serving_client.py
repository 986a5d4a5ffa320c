"""The openai-http client against servers whose timing is known (tests/servers/delay_server.py,
each in its own process): what it reads back from a known TTFT and inter-chunk gap, and what
it can sustain against a no-op server. docs/performance.md records the figures.
"""

from __future__ import annotations

import subprocess
import sys
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.scenarios import ServerSettings
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("aiohttp")


@contextmanager
def delay_server(ttft_ms: float, itl_ms: float):
    process = subprocess.Popen([sys.executable, "-m", "tests.servers.delay_server", "--ttft-ms", str(ttft_ms),
                                "--itl-ms", str(itl_ms)], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        line = process.stdout.readline().strip()
        assert line.startswith("listening on "), line
        yield line.split()[-1]
    finally:
        process.stdin.close()
        process.wait(20)


def _spec(url: str, new_tokens: int, client: str = "threads", **kwargs) -> BenchmarkSpec:
    return BenchmarkSpec.create(backend="openai-http", device="endpoint", workload="llm",
                                params={"preset": "tiny", "prompt_tokens": 16, "new_tokens": new_tokens},
                                options={"url": url, "request_timeout_s": 30, "client": client}, **kwargs)


@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_known_ttft_and_gap_read_back(figures, client):
    """TTFT 50 ms and 10 ms between chunks: the client reads back what the server itself took
    (goal: within 1 ms and 5%); how far the server was from the asked delays is shown too."""
    import json
    import urllib.request

    with delay_server(50, 10) as url:
        outcome = execute(_spec(url, 16, client, stopping=Stopping(warmup=2).with_fixed_iterations(30)), Registry())
        with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
            server = json.loads(response.read())
    assert outcome.status == "ok", outcome.failure
    from harness.analysis.tokens import token_metrics

    tokens = token_metrics([list(m) for m in outcome.measurement.token_offsets_ns], 1,
                           outcome.measurement.token_counts, outcome.measurement.elapsed_ns)
    ttft, tpot = tokens["ttft"]["median_s"], tokens["tpot"]["median_s"]
    for name, read, took, asked in (("TTFT", ttft, server["ttft_s"], 0.050), ("TPOT", tpot, server["gap_s"], 0.010)):
        error = read - took
        figures.add(f"client={client}, known-delay server: {name} read / the server's own ({asked * 1e3:g} ms asked, "
                    f"{took * 1e3:.2f} ms taken)", read * 1e3, "ms", "within 1 ms and 5%",
                    abs(error) <= 1e-3 and abs(error) / took <= 0.05)


@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_client_capacity_against_a_no_op_server(figures, client):
    """Requests/s and chunks/s the client sustains when the server costs nothing (goal: 1,000
    requests/s and 20,000 chunks/s on one core), and its cost per chunk in single-stream."""
    with delay_server(0, 0) as url:
        single = execute(_spec(url, 64, client, stopping=Stopping(warmup=5).with_fixed_iterations(200)), Registry())
        load = _spec(url, 16, client, scenario="concurrent",
                     stopping=Stopping(warmup=5, max_duration_s=10))
        load = replace(load, server=ServerSettings(concurrency=16, min_queries=2000, min_duration_s=3.0,
                                                   latency_slo_s=10.0))
        concurrent = execute(load, Registry())
    assert single.status == "ok" and concurrent.status == "ok", (single.failure, concurrent.failure)
    gaps = [b - a for marks in single.measurement.token_offsets_ns for a, b in zip(marks, marks[1:])]
    per_chunk_us = sorted(gaps)[len(gaps) // 2] / 1e3
    requests_per_s = concurrent.scenario["requests_per_s"]
    chunks_per_s = requests_per_s * 16
    figures.add(f"client={client}: median time per chunk against a no-op server (single stream)", per_chunk_us,
                "µs", "< 50 µs", per_chunk_us < 50)
    figures.add(f"client={client}: requests/s at concurrency 16, no-op server", requests_per_s, "requests/s",
                ">= 1,000", requests_per_s >= 1000)
    figures.add(f"client={client}: chunks/s at concurrency 16, no-op server", chunks_per_s, "chunks/s",
                ">= 20,000", chunks_per_s >= 20000)
