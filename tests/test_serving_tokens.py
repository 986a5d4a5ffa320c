"""Serving against engines that count tokens their own way: exact prompt lengths from the
server's tokenizer, fresh prompts per benchmark, every generated chunk timed (empty ones
included) and TPOT divided by tokens, not by chunks (issue 18)."""

from __future__ import annotations

import pytest

from harness.analysis.tokens import token_metrics
from harness.engine.plugins import Registry
from harness.engine.runner import execute
from harness.engine.spec import BenchmarkSpec
from harness.engine.timing import Stopping

pytest.importorskip("aiohttp")

PROMPT, NEW = 128, 12


@pytest.fixture
def server_factory():
    from tests.servers.token_server import TokenServer

    started = []

    def make(**kwargs):
        server = TokenServer(**kwargs).start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


def spec(url: str, iterations: int = 6, **options) -> BenchmarkSpec:
    return BenchmarkSpec.create(
        backend="openai-http", device="endpoint", workload="llm",
        params={"preset": "tiny", "prompt_tokens": PROMPT, "new_tokens": NEW},
        options={"url": url, "request_timeout_s": 30, **options},
        stopping=Stopping(warmup=1).with_fixed_iterations(iterations))


def _check_exact(outcome, server):
    assert outcome.status == "ok", outcome.failure
    prompt = outcome.details["prompt"]
    assert prompt["exact"] is True and prompt["tokens_requested"] == PROMPT
    # The server counted every prompt it was sent as exactly the tokens asked for, not words.
    assert {server.count(p) for p in server.prompts} == {PROMPT}
    assert any(len(p.split()) != PROMPT for p in server.prompts)  # ... which are not the words
    assert outcome.details["prompt_tokens"]["server_counted"] == [PROMPT, PROMPT]
    assert outcome.details["prompt_tokens"]["max_deviation"] == 0


def test_prompt_tokens_are_the_servers_tokens_counted_by_its_tokenize(server_factory):
    server = server_factory()
    outcome = execute(spec(server.url), Registry())
    _check_exact(outcome, server)
    assert outcome.details["prompt"]["token_source"] == "the server's /tokenize"
    # A server that reports nothing of its model leaves it unknown, not the local preset's.
    model = outcome.details["model"]
    assert model["served_name"] == "counted" and model["dtype"].startswith("unknown")
    assert model["parameters"].startswith("unknown") and outcome.memory["weight_bytes"] is None


def test_a_tokenizer_file_counts_where_the_server_has_no_tokenize(server_factory, tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordPiece
    from tokenizers.pre_tokenizers import Whitespace

    from backends._prompts import WORDS

    vocab = {"[UNK]": 0, **{w: i + 1 for i, w in enumerate(dict.fromkeys(WORDS))}}
    for word in list(vocab)[1:40]:  # some words in two pieces: a word is not a token
        vocab.pop(word)
        vocab.setdefault(word[:2], len(vocab) + 100)
        vocab.setdefault("##" + word[2:], len(vocab) + 100)
    tokenizer = Tokenizer(WordPiece({k: i for i, k in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    server = server_factory(tokenize=False, tokenizer_file=str(path))
    outcome = execute(spec(server.url, tokenizer=str(path)), Registry())
    _check_exact(outcome, server)
    assert outcome.details["prompt"]["token_source"] == f"tokenizer file {path}"


def test_without_tokenize_or_tokenizer_the_servers_usage_calibrates(server_factory):
    server = server_factory(tokenize=False)
    outcome = execute(spec(server.url), Registry())
    _check_exact(outcome, server)
    assert "usage on probe requests" in outcome.details["prompt"]["token_source"]


def test_every_benchmark_draws_fresh_prompts_and_a_seed_repeats_them(server_factory):
    server = server_factory()
    first = execute(spec(server.url, iterations=3), Registry())
    sent_first = list(server.prompts)
    second = execute(spec(server.url, iterations=3), Registry())
    sent_second = server.prompts[len(sent_first):]
    assert first.details["prompt"]["prompt_seed"] != second.details["prompt"]["prompt_seed"]
    assert not set(sent_first) & set(sent_second)  # nothing a prefix cache could serve
    assert len(set(sent_first)) == len(sent_first)  # no prompt repeats within a run either
    seed = first.details["prompt"]["prompt_seed"]
    again = execute(spec(server.url, iterations=3, prompt_seed=seed), Registry())
    assert server.prompts[-len(sent_first):] == sent_first and again.details["prompt"]["prompt_seed"] == seed


def test_empty_chunks_are_tokens_and_a_textless_reply_is_not_a_failure(server_factory):
    server = server_factory(empty_every=3)
    outcome = execute(spec(server.url), Registry())
    assert outcome.status == "ok" and not outcome.details.get("request_failures")
    assert {len(marks) for marks in outcome.measurement.token_offsets_ns} == {NEW}  # every chunk timed
    invisible = server_factory(all_empty=True)
    outcome = execute(spec(invisible.url), Registry())
    assert outcome.status == "ok" and not outcome.details.get("request_failures"), outcome.details
    assert outcome.details["usage_completion_tokens"] == [NEW]


def test_packed_chunks_divide_tpot_by_tokens_from_the_servers_usage(server_factory):
    server = server_factory(per_chunk=3)
    outcome = execute(spec(server.url), Registry())
    assert outcome.status == "ok"
    assert {len(marks) for marks in outcome.measurement.token_offsets_ns} == {NEW // 3}
    assert set(outcome.measurement.token_counts) == {NEW}
    record_tokens = token_metrics([list(m) for m in outcome.measurement.token_offsets_ns], 1,
                                  outcome.measurement.token_counts, outcome.measurement.elapsed_ns)
    assert record_tokens["output_tokens"]["total"] == NEW * len(outcome.measurement.latencies_ns)


def test_token_rates_from_planted_marks_count_tokens_and_aggregate_over_the_span():
    ms = 1_000_000
    # Two requests over a 100 ms span; each streams 3 chunks 10 ms apart carrying 7 tokens.
    offsets = [[20 * ms, 30 * ms, 40 * ms], [25 * ms, 35 * ms, 45 * ms]]
    metrics = token_metrics(offsets, 1, [7, 7], elapsed_ns=100 * ms)
    assert metrics["tpot"]["median_s"] == pytest.approx(20e-3 / 6)  # (E2E - TTFT) / (tokens - 1)
    assert metrics["itl"]["median_s"] == pytest.approx(10e-3)      # between chunks, as vllm bench
    assert metrics["output_tokens_per_s"]["value"] == pytest.approx(14 / 0.1)  # all requests, whole span
    assert metrics["requests_per_s"] == pytest.approx(20.0)
    # Without the server's counts, one chunk is one token (the definition before usage).
    plain = token_metrics(offsets, 1, None, elapsed_ns=100 * ms)
    assert plain["tpot"]["median_s"] == pytest.approx(10e-3)


def test_a_prompt_the_server_counts_differently_is_a_note_on_the_record():
    from harness.results.derive import derive

    outcome = {"status": "ok", "measurement": {"latencies_ns": [10**6] * 12, "timer_resolution_ns": 1},
               "details": {"prompt_tokens": {"requested": 128, "server_counted": [128, 140],
                                             "max_deviation": 12 / 128, "cached_tokens_reported": 0},
                           "prompts_repeated": True}, "work_per_step": 1.0, "unit": "token"}
    record = derive("r", "k", {"backend": "openai-http", "device": "endpoint", "dtype": "float32",
                               "batch_size": 1, "workload": "llm", "scenario": "single-stream"}, outcome)
    notes = " | ".join(record.warnings)
    assert "128 tokens asked, the server counted 128-140 (9.4% off" in notes
    assert "prompts repeated" in notes


def test_bakeoff_serve_answers_tokenize_as_vllm_does():
    from aiohttp.test_utils import TestClient, TestServer

    from harness.tools.serve import WordTokenizer, make_app

    class Model:  # make_app reads only these for /tokenize
        name, identity, tokenizer = "m", {}, WordTokenizer(vocab_size=1000)

    import asyncio

    async def ask():
        async with TestClient(TestServer(make_app(Model()))) as client:
            response = await client.post("/tokenize", json={"model": "m", "prompt": " the cat t12"})
            return response.status, await response.json()

    status, body = asyncio.run(ask())
    assert status == 200 and body["count"] == 3 and len(body["tokens"]) == 3 and body["tokens"][2] == 12


def test_poisson_load_on_an_endpoint_is_open_loop_and_overlaps(server_factory):
    """Above single-stream capacity (each reply streams NEW chunks 1 ms apart, so one stream
    serves under ~80 requests/s), requests are sent at their arrivals and overlap: the engine
    is offered a batch. Latency still counts from the scheduled arrival."""
    from dataclasses import replace

    from harness.engine.scenarios import ServerSettings

    server = server_factory()
    base = spec(server.url)
    load = replace(base, scenario="server", server=ServerSettings(target_qps=150, latency_slo_s=5.0,
                                                                   min_queries=60, min_duration_s=0.4))
    outcome = execute(load, Registry())
    assert outcome.status == "ok", outcome.failure
    facts = outcome.scenario
    assert facts["dispatch"].startswith("open loop")
    assert facts["peak_in_flight"] > 1 and facts["mean_in_flight"] > 0
    assert len(server.prompts) >= 60 and len(set(server.prompts)) == len(server.prompts)
    ttft = [marks[0] for marks in outcome.measurement.token_offsets_ns]
    assert min(ttft) > 0  # from the scheduled arrival
    print(f"\nopen loop at 150 requests/s: achieved {facts['achieved_qps']:.1f}, peak in flight "
          f"{facts['peak_in_flight']}, mean {facts['mean_in_flight']:.2f}, valid {facts['valid']}")


def test_a_reasoning_model_records_ttft_at_its_first_thought_and_ttfa_at_its_first_answer(server_factory):
    from harness.results.derive import derive

    server = server_factory(reasoning=8)
    outcome = execute(spec(server.url, api="chat"), Registry())
    assert outcome.status == "ok", outcome.failure or outcome.reason
    assert outcome.measurement.answer_marks == (8,) * 6  # the ninth streamed token is the first answer's
    chat = spec(server.url, api="chat")
    record = derive("r", chat.key(), chat.to_dict(), outcome.to_dict())
    ttft, ttfa = record.tokens.ttft["median_s"], record.tokens.ttfa["median_s"]
    assert ttfa > ttft + 0.006  # eight reasoning tokens, 1 ms apart, come between them
    # Without reasoning no answer mark is recorded and TTFA is not reported.
    plain = execute(spec(server_factory().url, api="chat"), Registry())
    assert plain.measurement.answer_marks is None


def _reuse_run(server, **options):
    from harness.results.derive import derive

    benchmark = spec(server.url, iterations=12, **options)
    outcome = execute(benchmark, Registry())
    assert outcome.status == "ok", outcome.failure or outcome.reason
    return outcome, derive("r", benchmark.key(), benchmark.to_dict(), outcome.to_dict())


def test_prefix_cache_mode_shares_prefixes_on_purpose_and_reports_the_servers_hits(server_factory):
    server = server_factory()
    server.prefix_cache = True
    # Fresh prompts: the server finds no shared prefix worth a token beyond chance.
    fresh, _ = _reuse_run(server)
    assert fresh.details["prompt_tokens"]["prefix_cache_hit_share"] < 0.05
    assert fresh.details["prompt"]["reuse"] == "none: every prompt fresh"
    # Two prefixes of 96 of the 128 tokens: every prompt after the first two begins with a cached prefix.
    shared, record = _reuse_run(server, prefix_tokens=96, prefix_groups=2)
    prompts = server.prompts[-12:]
    assert len({tuple(p.split()[:10]) for p in prompts}) == 2 and {server.count(p) for p in prompts} == {PROMPT}
    assert shared.details["prompt_tokens"]["max_deviation"] == 0  # prefix + fresh words: exactly 128 tokens
    share = shared.details["prompt_tokens"]["prefix_cache_hit_share"]
    assert 0.6 < share < 96 / 128
    assert any(w.startswith("prefix cache:") and "2 shared prefix(es) of 96 tokens" in w for w in record.warnings)


@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_multi_turn_conversations_resend_the_conversation_so_far(server_factory, client):
    server = server_factory()
    server.prefix_cache = True
    outcome, _ = _reuse_run(server, turns=3, client=client)
    prompts = server.prompts[:12]  # one warm-up request and 12 timed: conversations run on across them
    for first, second, third in zip(prompts[0::3], prompts[1::3], prompts[2::3]):
        assert second.startswith(first) and third.startswith(second)  # each turn carries the last and its reply
        assert " t0" in second[len(first):]  # ... the reply the server streamed
    assert outcome.details["prompt"]["reuse"] == "conversations of 3 turns, each resending the conversation so far"
    assert outcome.details["prompt_tokens"]["prefix_cache_hit_share"] > 0.3


def test_a_prefix_as_long_as_the_prompt_is_refused(server_factory):
    outcome = execute(spec(server_factory().url, prefix_tokens=PROMPT), Registry())
    assert outcome.status == "unsupported" and "prefix_tokens 128 must be below" in outcome.reason


@pytest.mark.parametrize("client", ["threads", "asyncio"])
def test_both_clients_count_every_chunk_and_token_alike(server_factory, client):
    server = server_factory(empty_every=3)
    outcome = execute(spec(server.url, client=client), Registry())
    _check_exact(outcome, server)
    assert outcome.details["usage_completion_tokens"] == [NEW] and outcome.details["content_chunks"] == [NEW]
    assert all(len(marks) == NEW for marks in outcome.measurement.token_offsets_ns)  # empty chunks timed too



def test_a_reply_that_only_reasons_has_no_time_to_first_answer():
    from harness.analysis.tokens import token_metrics

    # Two requests: one answers at its third mark, one reasons to its end (a mark past its last).
    metrics = token_metrics([[10, 20, 30, 40], [10, 20, 30]], 1, answer_marks=[2, 3])
    assert metrics["ttfa"]["count"] == 1 and metrics["ttfa"]["median_s"] == 30e-9
