"""``openai-http``: benchmark a running OpenAI-compatible server (vLLM, vllm-ascend, SGLang,
llama.cpp's server, MindIE's OpenAI front end, ``bakeoff serve``) like any other backend.

Each benchmark step is one streamed request (SSE) for the ``llm`` workload: a
fresh synthetic prompt of ``prompt_tokens`` tokens of the served model's
tokenizer (backends/_prompts.py says how they are counted) and ``max_tokens =
new_tokens`` with ``ignore_eos``. Prompts are drawn from a seed that is new for
every benchmark (recorded as ``prompt_seed``; ``-O openai-http.prompt_seed=N``
repeats it), so no prefix cache serves them from an earlier run.

The runner timestamps every streamed chunk that carries generated output
through ``mark()``, an empty one included (a byte-level token that completes no
character is still a token), so TTFT, TPOT, ITL and E2E use the same
definitions and the same clock as a bare runtime (docs/measurement.md). The
step returns the server's ``usage.completion_tokens``, so TPOT divides by
tokens even where a server packs several into one chunk; ITL stays the gap
between chunks, as vLLM's ``bench serve`` has it.

A failed request (an HTTP 4xx/5xx, a dropped connection, a malformed SSE
stream, a timeout) raises :class:`harness.engine.timing.QueryFailed` with its cause:
it is counted, never timed, and the run goes on; a run whose failure rate
exceeds ``max_failed_percent`` is marked invalid. A reply whose length differs
from ``max_tokens`` is counted in ``output_length_mismatches``.

By default only the standard library is used on this side (``http.client``),
with a socket timeout on every request, so every request loop is bounded in
time; each client thread keeps one keep-alive connection, opened again after a
fault. ``client = asyncio`` streams every request through one event loop and
one aiohttp connection pool instead (:class:`AsyncStreamer`).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import secrets
import socket
import threading
import urllib.parse
from typing import Any, Callable

from backends._prompts import PromptBuilder, local_tokenizer

from harness.contract.capabilities import Generative, StreamedReply, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.load import SERVING_LOAD_DEFAULTS
from harness.contract.options import Option
from harness.engine.mix import RequestMix, parse_mix, trace_mismatch
from harness.engine.timing import QueryFailed


class OpenAiHttpBackend:
    name = "openai-http"
    #: A bake-off that names no backends skips this one: it needs an endpoint.
    default_sweep = False
    required_options = ("url",)
    #: Its steps are LLM requests that take seconds: SLOs, query counts and durations to fit.
    load_defaults = SERVING_LOAD_DEFAULTS
    OPTIONS = {
        "url": Option("str", None, (), "the server's base URL, e.g. http://10.0.0.5:8000 (…/v1 is added)"),
        "api": Option("str", "completions", ("completions", "chat"), "/v1/completions or /v1/chat/completions"),
        "model": Option("str", None, (), "the model name to request; default: the first of /v1/models"),
        "device_label": Option("str", None, (), "what stands behind the endpoint, e.g. '8x Ascend 910B'; "
                                                "records match the catalog by it, for cost and policy"),
        "engine": Option("str", None, (), "serving engine and version, e.g. 'vllm-ascend 0.9.1'; default: "
                                          "what the server reports, where it does"),
        "api_key_env": Option("str", None, (), "environment variable holding the API key (never recorded)"),
        "request_timeout_s": Option("int", 120, (), "seconds a request may take, start to last byte"),
        "max_failed_percent": Option("int", 1, (), "failed requests above this share make the run invalid"),
        "ignore_eos": Option("bool", True, (), "send ignore_eos so replies run to max_tokens (vLLM, SGLang, "
                                               "llama.cpp); false for servers that reject unknown fields"),
        "include_usage": Option("bool", True, (), "ask for usage in the stream (stream_options); false for "
                                                  "servers that reject it (tokens are then counted from chunks)"),
        "tokenizer": Option("str", None, (), "tokenizer.json (or a folder holding one) of the served model, for "
                                             "exact prompt lengths where the server has no /tokenize"),
        "prompt_seed": Option("int", None, (), "seed of the synthetic prompts; default: a fresh one per benchmark "
                                               "(recorded), so no prefix cache serves a repeated prompt"),
        "prefix_tokens": Option("int", 0, (), "prefix-cache mode: every prompt starts with one of prefix_groups "
                                              "shared prefixes of this many tokens (0: every prompt fresh)"),
        "prefix_groups": Option("int", 1, (), "prefix-cache mode: how many distinct shared prefixes"),
        "turns": Option("int", 1, (), "multi-turn conversations of this many requests: each turn sends the "
                                      "conversation so far (prompts and replies) plus a new user turn"),
        "client": Option("str", "threads", ("threads", "asyncio"),
                         "threads: one http.client keep-alive connection per client thread; asyncio: one event "
                         "loop and one aiohttp keep-alive pool for every request (needs bakeoff[serve])"),
        "request_mix": Option("str", "fixed", (), "request lengths: fixed, uniform:R (range ratio), normal:CV, "
                                                  "lognormal:CV, or trace:FILE (CSV/JSONL of input_tokens, "
                                                  "output_tokens); means are the workload's lengths"),
    }

    def probe(self) -> Availability:
        import platform

        return Availability.yes(version=f"http.client (Python {platform.python_version()})")

    def devices(self) -> list[DeviceInfo]:
        return [DeviceInfo(backend=self.name, device="endpoint",
                           extra={"note": "the server named by -O openai-http.url=URL"})]

    def check_options(self, device: str, options) -> None:
        url = options.get("url")
        if not url:
            raise ValueError("url is required: -O openai-http.url=http://HOST:PORT")
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise ValueError(f"url {url!r}: expected http://HOST:PORT or https://HOST:PORT")
        tokenizer = options.get("tokenizer")
        if tokenizer and not (os.path.isfile(tokenizer) or os.path.isfile(os.path.join(tokenizer, "tokenizer.json"))):
            raise ValueError(f"tokenizer {tokenizer!r}: no such tokenizer.json (a file, or a folder holding one)")
        parse_mix(options.get("request_mix", "fixed"))  # a bad mix or trace file: one line before anything runs
        if options.get("client") == "asyncio":
            import importlib.util

            if importlib.util.find_spec("aiohttp") is None:
                raise ValueError("client = asyncio needs aiohttp: pip install 'bakeoff[serve]'")
        for key, least in (("prefix_tokens", 0), ("prefix_groups", 1), ("turns", 1)):
            if key in options and options[key] < least:
                raise ValueError(f"{key} = {options[key]}: must be >= {least}")
        for key in ("request_timeout_s", "max_failed_percent"):
            if key in options and options[key] < (1 if key == "request_timeout_s" else 0):
                raise ValueError(f"{key} = {options[key]}: must be >= {1 if key == 'request_timeout_s' else 0}")

    def prepare(self, workload, spec) -> Prepared:
        generative = capability(workload, Generative)
        if generative is None:
            raise Unsupported("openai-http serves text generation: run it with the llm workload")
        if spec.batch_size != 1:
            raise Unsupported("openai-http sends one request per step; use batch size 1 (load comes from the scenario)")
        options = spec.options_dict
        client = Client(options["url"], options.get("request_timeout_s", 120),
                        os.environ.get(options["api_key_env"]) if options.get("api_key_env") else None)
        served = client.models()
        model = options.get("model") or (served[0]["id"] if served else None)
        if model is None:
            raise RuntimeError(f"{options['url']}/v1/models lists no model; pass -O openai-http.model=NAME")
        entry = next((m for m in served if m.get("id") == model), {})
        reported = entry.get("bakeoff") or {}
        api = options.get("api", "completions")
        builder, prompt_check = prompt_builder(client, model, api, options.get("tokenizer"),
                                               generative.prompt_tokens)
        seed = options.get("prompt_seed")
        seed = secrets.randbits(32) if seed is None else seed
        mix = parse_mix(options.get("request_mix", "fixed"))
        if mix.kind == "trace" and (mismatch := trace_mismatch(mix.trace, generative.prompt_tokens,
                                                                 generative.new_tokens)):
            raise Unsupported(mismatch)
        reuse = PromptReuse(options.get("prefix_tokens", 0), options.get("prefix_groups", 1), options.get("turns", 1))
        if options.get("client") == "asyncio":  # the requests stream through one event loop; probes stay plain
            client.streamer = AsyncStreamer(client.origin, client.timeout_s, client.headers)
        prepared = OpenAiPrepared(client, api, model, generative.prompt_tokens, generative.new_tokens,
                                  builder=builder, seed=seed, mix=mix, reuse=reuse,
                                  max_failed_percent=options.get("max_failed_percent", 1),
                                  ignore_eos=options.get("ignore_eos", True),
                                  include_usage=options.get("include_usage", True))
        engine = options.get("engine") or reported.get("engine") or client.engine(entry.get("owned_by"))
        from harness.hardware.catalog import device_count

        label = options.get("device_label")
        prepared.device_overrides = {k: v for k, v in {
            "model": label,
            "count": device_count({"model": label}) if label else None,
            "runtime_version": engine,
        }.items() if v}
        prepared.details = {"url": options["url"], "api": options.get("api", "completions"),
                            "model": served_model(model, entry, reported),
                            "engine": engine or "not reported by the server (set -O openai-http.engine=...)",
                            "server_reports": reported or None,
                            "prompt": {"tokens_requested": generative.prompt_tokens,
                                       "token_source": builder.source, "exact": prompt_check["exact"],
                                       "checked_prompts": prompt_check["counts"], "prompt_seed": seed,
                                       "distinct_prompts": len(prepared.requests),
                                       "mix": mix.describe(), "lengths": prepared.length_summary(),
                                       "reuse": reuse.describe(),
                                       "max_tokens": generative.new_tokens,
                                       "ignore_eos": options.get("ignore_eos", True)}}
        return prepared


class _Conversation(threading.local):
    """One client thread's conversation: the turn it is on and the text so far."""

    turn = 0
    history = ""


class PromptReuse:
    """How prompts repeat on purpose, to measure a prefix cache: ``prefix_tokens`` shared by
    ``prefix_groups`` prefixes, and conversations of ``turns`` requests each sending the whole
    conversation so far. The default (0, 1, 1) is every prompt fresh."""

    def __init__(self, prefix_tokens: int = 0, prefix_groups: int = 1, turns: int = 1) -> None:
        self.prefix_tokens, self.prefix_groups, self.turns = prefix_tokens, prefix_groups, turns

    def describe(self) -> str:
        if not self.prefix_tokens and self.turns == 1:
            return "none: every prompt fresh"
        parts = []
        if self.prefix_tokens:
            parts.append(f"{self.prefix_groups} shared prefix(es) of {self.prefix_tokens} tokens")
        if self.turns > 1:
            parts.append(f"conversations of {self.turns} turns, each resending the conversation so far")
        return "; ".join(parts)


def served_model(name: str, entry: dict[str, Any], reported: dict[str, Any]) -> dict[str, Any]:
    """What the server says of the model it serves: its ``/v1/models`` entry (vLLM adds
    ``root`` and ``max_model_len``) and what ``bakeoff serve`` reports under ``bakeoff``. A
    figure it does not report is ``unknown``, never the local preset's: the ``llm`` workload's
    shape describes a model built here, not the one behind the endpoint, so its parameter
    count (and a decode roofline from it) must not be attached to the record."""
    unknown = "unknown (not reported by the server)"
    return {"served_name": name, "root": entry.get("root"), "max_model_len": entry.get("max_model_len"),
            "dtype": reported.get("dtype") or unknown, "parameters": reported.get("parameters") or unknown}


def prompt_builder(client: "Client", model: str, api: str, tokenizer: str | None,
                   target: int) -> tuple[PromptBuilder, dict[str, Any]]:
    """A prompt builder counting with the server's /tokenize, else the tokenizer file, else the
    server's usage on probe requests; and the check of whole prompts against that count."""
    count, source, slow = None, None, False
    if client.tokenize(model, " the") is not None:
        count, source = (lambda text: client.tokenize(model, text)), "the server's /tokenize"
    elif tokenizer:
        try:
            count, source = local_tokenizer(tokenizer), f"tokenizer file {tokenizer}"
        except ValueError as exc:
            raise Unsupported(str(exc)) from None
    else:
        count, source, slow = (lambda text: client.usage_prompt_tokens(model, api, text),
                               "the server's usage on probe requests (no /tokenize, no tokenizer option)", True)
    builder = PromptBuilder(count, source, slow=slow)
    counts = builder.verify(count, target, random.Random(0), prompts=1 if slow else 3)
    exact = builder.exact and all(c == target for c in counts)
    if not exact:
        builder.source += " (an estimate: whole prompts counted " + ", ".join(map(str, counts)) + f" for {target})"
    return builder, {"exact": exact, "counts": counts}


class Client:
    """A minimal, bounded HTTP client for the OpenAI API (stdlib ``http.client``)."""

    def __init__(self, url: str, timeout_s: float, api_key: str | None) -> None:
        parsed = urllib.parse.urlparse(url.rstrip("/"))
        self.https = parsed.scheme == "https"
        self.host, self.port = parsed.hostname, parsed.port or (443 if self.https else 80)
        self.base = parsed.path.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        #: ``http://host:port``: where the paths below (``/v1/...``) are requested.
        self.origin = f"{'https' if self.https else 'http'}://{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()  # one keep-alive connection per client thread

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

    def _kept(self) -> http.client.HTTPConnection:
        """This thread's keep-alive connection (a new TCP connection per request would time the
        handshake too, and exhaust ports under load)."""
        if self._local.__dict__.get("connection") is None:
            self._local.connection, self._local.used = self._connection(), False
        return self._local.connection

    def _drop(self) -> None:
        connection = self._local.__dict__.get("connection")
        if connection is not None:
            connection.close()
            self._local.connection = None

    def _post_json(self, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        connection = self._connection()
        try:
            connection.request("POST", path, body=json.dumps(payload), headers=self.headers)
            response = connection.getresponse()
            body = response.read(1 << 22)
            try:
                return response.status, json.loads(body)
            except ValueError:
                return response.status, None
        finally:
            connection.close()

    def tokenize(self, model: str, text: str) -> int | None:
        """Tokens of ``text`` as the server counts them (``/tokenize``: vLLM and SGLang take
        ``prompt``, llama.cpp ``content``), or ``None`` where the server has no such endpoint."""
        root = self.base[: -len("/v1")]
        try:
            status, data = self._post_json(f"{root}/tokenize", {"model": model, "prompt": text})
            if status == 200 and isinstance(data, dict):
                if isinstance(data.get("count"), int):
                    return data["count"]
                if isinstance(data.get("tokens"), list):
                    return len(data["tokens"])
            status, data = self._post_json(f"{root}/tokenize", {"content": text, "add_special": True})
            if status == 200 and isinstance(data, dict) and isinstance(data.get("tokens"), list):
                return len(data["tokens"])
        except (OSError, http.client.HTTPException):
            return None
        return None

    def usage_prompt_tokens(self, model: str, api: str, text: str) -> int:
        """Prompt tokens of ``text`` from the server's usage on a one-token request (the count of
        last resort: each call is a real request)."""
        path = "/chat/completions" if api == "chat" else "/completions"
        payload: dict[str, Any] = {"model": model, "max_tokens": 1, "stream": False, "temperature": 0}
        payload.update({"messages": [{"role": "user", "content": text}]} if api == "chat" else {"prompt": text})
        status, data = self._post_json(f"{self.base}{path}", payload)
        usage = (data or {}).get("usage") if isinstance(data, dict) else None
        if status != 200 or not isinstance(usage, dict) or not isinstance(usage.get("prompt_tokens"), int):
            raise Unsupported(f"cannot count prompt tokens: {self.base}{path} answered HTTP {status} without "
                              "usage, and the server has no /tokenize; pass -O openai-http.tokenizer=PATH")
        return usage["prompt_tokens"]

    def models(self) -> list[dict[str, Any]]:
        connection = self._connection()
        try:
            connection.request("GET", f"{self.base}/models", headers=self.headers)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {self.base}/models answered HTTP {response.status}: {body[:200]!r}")
            return list(json.loads(body).get("data") or [])
        except (OSError, ValueError) as exc:
            raise RuntimeError(f"cannot reach {self.host}:{self.port}{self.base}/models ({exc})") from exc
        finally:
            connection.close()

    def engine(self, owned_by: str | None) -> str | None:
        """What the server says it is, where it says: vLLM and SGLang answer ``GET /version``."""
        connection = self._connection()
        root = self.base[: -len("/v1")]
        try:
            connection.request("GET", f"{root}/version", headers=self.headers)
            response = connection.getresponse()
            body = response.read(2000)
            version = json.loads(body).get("version") if response.status == 200 else None
        except (OSError, ValueError, AttributeError, http.client.HTTPException):
            version = None
        finally:
            connection.close()
        if version is None:
            return None
        return f"{owned_by or 'server'} {version}"

    def _send(self, path: str, body: str) -> http.client.HTTPResponse:
        """POST on this thread's kept connection. A kept connection the server has closed while
        idle fails before any byte of an answer; that request is sent once more on a fresh one
        (it never reached the server), so an idle timeout is not counted as a failed query."""
        for attempt in (1, 2):
            connection = self._kept()
            reused = self._local.used
            try:
                connection.request("POST", path, body=body, headers=self.headers)
                self._local.used = True
                return connection.getresponse()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self._drop()
                if not reused or attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    #: Where requests stream instead of this client's own connections (``client = asyncio``).
    streamer: "AsyncStreamer | None" = None

    def close(self) -> None:
        if self.streamer is not None:
            self.streamer.close()

    def stream(self, path: str, payload: dict[str, Any], on_chunk: Callable[[dict[str, Any]], None]) -> None:
        """POST with ``stream: true`` and call ``on_chunk`` per SSE event; :class:`QueryFailed` on any fault."""
        if self.streamer is not None:
            return self.streamer.stream(f"{self.base}{path}", json.dumps(payload), on_chunk)
        ok = False
        try:
            response = self._send(f"{self.base}{path}", json.dumps(payload))
            if response.status >= 400:
                detail = response.read(300)
                raise QueryFailed(f"http {response.status}", detail.decode(errors="replace"))
            finished = False
            for raw in response:
                if feed_sse_line(raw, on_chunk):
                    finished = True
                    break
            if not finished:
                raise QueryFailed("dropped stream", "the stream ended without data: [DONE]")
            response.read()  # the end of the chunked body, so the connection can carry the next request
            ok = not response.will_close
        except socket.timeout:
            raise QueryFailed("timeout", f"no complete answer within {self.timeout_s:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise QueryFailed("connection", f"{type(exc).__name__}: {exc}") from None
        finally:
            if not ok:
                self._drop()


def feed_sse_line(raw: bytes, on_chunk: Callable[[dict[str, Any]], None]) -> bool:
    """Pass one raw SSE line's event to ``on_chunk``; True when it is the closing ``[DONE]``."""
    line = raw.decode(errors="replace").strip()
    if line.startswith("data:") and line[5:].strip() == "[DONE]":
        return True
    event = sse_event(line)
    if event is not None:
        on_chunk(event)
    return False


def sse_event(line: str) -> dict[str, Any] | None:
    """One SSE line's event; ``None`` for a blank line, a comment or ``[DONE]`` (whose arrival the
    caller notes); :class:`QueryFailed` for a malformed line or an error event."""
    if not line or line.startswith(":"):
        return None
    if not line.startswith("data:"):
        raise QueryFailed("malformed sse", f"unexpected line {line[:80]!r}")
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        event = json.loads(data)
    except json.JSONDecodeError:
        raise QueryFailed("malformed sse", f"not JSON: {data[:80]!r}") from None
    if isinstance(event, dict) and "error" in event:
        raise QueryFailed("server error in stream", str(event["error"])[:200])
    return event


class AsyncStreamer:
    """Streams every request through one asyncio event loop on its own thread, with one aiohttp
    session whose keep-alive pool grows with the load (no cap: the scenario bounds the load).

    The scenario's client threads hand a request to the loop and wait; each chunk is parsed
    and ``on_chunk`` called (so each mark stamped) on the loop's thread as the chunk arrives.
    The threads hold no socket and no parser, so they do not compete for the interpreter
    while the loop reads.
    """

    def __init__(self, origin: str, timeout_s: float, headers: dict[str, str]) -> None:
        import asyncio
        import concurrent.futures

        import aiohttp

        # Bound once here: nothing is imported on a request's path, which is timed.
        self._asyncio, self._aiohttp, self._futures = asyncio, aiohttp, concurrent.futures
        self.origin = origin
        self.headers, self.timeout_s = dict(headers), timeout_s
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="openai-http-asyncio", daemon=True)
        self.thread.start()

        async def session():
            # No cap on connections (the scenario bounds what is in flight), so no request waits for
            # one inside its timed span; the timeout is per socket operation, as the threaded client's.
            return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                         timeout=aiohttp.ClientTimeout(total=None, sock_connect=timeout_s,
                                                                       sock_read=timeout_s))

        self.session = asyncio.run_coroutine_threadsafe(session(), self.loop).result(30)

    def stream(self, path: str, body: str, on_chunk: Callable[[dict[str, Any]], None]) -> None:
        """POST ``body`` to ``path`` on the loop and wait; :class:`QueryFailed` on any fault."""
        future = self._asyncio.run_coroutine_threadsafe(self._stream(self.origin + path, body, on_chunk), self.loop)
        try:
            # Bounded per socket operation inside; this bound only guards against a stuck loop.
            return future.result(self.timeout_s * 10 + 30)
        except self._futures.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            future.cancel()
            raise QueryFailed("timeout", f"no complete answer within {self.timeout_s * 10 + 30:g} s") from None

    async def _stream(self, url: str, body: str, on_chunk: Callable[[dict[str, Any]], None]) -> None:
        asyncio, aiohttp = self._asyncio, self._aiohttp
        try:
            async with self.session.post(url, data=body, headers=self.headers) as response:
                if response.status >= 400:
                    detail = await response.content.read(300)
                    raise QueryFailed(f"http {response.status}", detail.decode(errors="replace"))
                finished = False
                async for raw in response.content:
                    if feed_sse_line(raw, on_chunk):
                        finished = True
                        break
                if not finished:
                    raise QueryFailed("dropped stream", "the stream ended without data: [DONE]")
        except asyncio.TimeoutError:
            raise QueryFailed("timeout", f"no complete answer within {self.timeout_s:g} s") from None
        except aiohttp.ClientPayloadError as exc:  # closed mid-body: what the threaded client calls a dropped stream
            raise QueryFailed("dropped stream", f"{type(exc).__name__}: {exc}") from None
        except aiohttp.ClientError as exc:
            raise QueryFailed("connection", f"{type(exc).__name__}: {exc}") from None

    def close(self) -> None:
        try:
            self._asyncio.run_coroutine_threadsafe(self.session.close(), self.loop).result(10)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


class OpenAiPrepared(Prepared):
    """One streamed request per step; the runner's ``mark`` timestamps every generated chunk."""

    #: Requests are independent, so concurrent load is allowed (several in flight).
    concurrent_safe = True

    def __init__(self, client: Client, api: str, model: str, prompt_tokens: int, new_tokens: int, *,
                 builder: PromptBuilder, seed: int, max_failed_percent: int, ignore_eos: bool = True,
                 include_usage: bool = True, mix: RequestMix = RequestMix(),
                 reuse: "PromptReuse | None" = None) -> None:
        super().__init__()
        self.ignore_eos, self.include_usage = ignore_eos, include_usage
        self.client, self.api, self.model = client, api, model
        self.prompt_tokens, self.new_tokens = prompt_tokens, new_tokens
        self.max_failure_rate = max_failed_percent / 100
        #: What the endpoint says stands behind it; filled in by ``prepare`` (capability RemoteIdentity).
        self.device_overrides: dict[str, Any] = {}
        # Drawn here, not per request: nothing of ours runs inside a timed request but the client.
        # Each request is (prompt, its token count, max_tokens), its lengths from the mix.
        rng = random.Random(seed)
        pool = _prompt_pool_size(prompt_tokens)
        if mix.kind == "trace":
            pool = min(pool, len(mix.trace))
        lengths = mix.lengths(prompt_tokens, new_tokens, pool, rng)
        self.reuse = reuse or PromptReuse()
        shortest = min(inputs for inputs, _ in lengths)
        if self.reuse.prefix_tokens and self.reuse.prefix_tokens >= shortest:
            raise Unsupported(f"prefix_tokens {self.reuse.prefix_tokens} must be below every prompt's length "
                              f"(the shortest is {shortest} tokens)")
        if self.reuse.prefix_tokens:
            # Whole prompts of P tokens are the shared prefixes; each request adds fresh words worth
            # (its length - P) tokens, so prefix + suffix is its length (specials counted once).
            prefixes = [builder.build(self.reuse.prefix_tokens, rng) for _ in range(self.reuse.prefix_groups)]
            self.requests = [(prefixes[i % len(prefixes)] + builder.build(inputs - self.reuse.prefix_tokens
                                                                          + builder.specials, rng), inputs, outputs)
                             for i, (inputs, outputs) in enumerate(lengths)]
        else:
            self.requests = [(builder.build(inputs, rng), inputs, outputs) for inputs, outputs in lengths]
        #: Multi-turn: each client thread's conversation so far and its turn (harness threads are
        #: the scenario's clients, so one thread carries one conversation at a time).
        self._conversation = _Conversation()
        self.prompt_tokens_counted = 0
        self.worst_prompt_deviation: float | None = None
        self.sent = 0
        # Distinct values only, so the accounting after each request stays O(1) and tiny next to
        # the request it follows (it runs inside the request's timed span).
        self.usage_prompt_tokens: set[int] = set()
        self.usage_completion_tokens: set[int] = set()
        self.chunk_counts: set[int] = set()
        self.cached_prompt_tokens = 0
        self.mismatches = 0
        self._accounting = threading.Lock()  # the concurrent scenario calls step_streaming from many threads

    def energy_meters(self) -> list[Any]:
        """None: the work runs on the server, and this host's power is not the candidate's."""
        return []

    def length_summary(self) -> dict[str, Any]:
        """Min, mean and max of the drawn input and output lengths (tokens)."""
        def spread(values: list[int]) -> dict[str, float]:
            return {"min": min(values), "mean": sum(values) / len(values), "max": max(values)}

        return {"input_tokens": spread([r[1] for r in self.requests]),
                "output_tokens": spread([r[2] for r in self.requests])}

    def _payload(self, prompt: str, max_tokens: int) -> tuple[str, dict[str, Any]]:
        common: dict[str, Any] = {"model": self.model, "max_tokens": max_tokens, "stream": True,
                                  "temperature": 0}
        if self.ignore_eos:
            common["ignore_eos"] = True
        if self.include_usage:
            common["stream_options"] = {"include_usage": True}
        if self.api == "chat":
            return "/chat/completions", {**common, "messages": [{"role": "user", "content": prompt}]}
        return "/completions", {**common, "prompt": prompt}

    def _generated(self, choice: dict[str, Any]) -> bool:
        """Whether a streamed choice carries generated output: text (empty included: a byte-level
        token may complete no character; vLLM's last token often arrives as ``""`` with the finish
        reason), or a chat delta's content or reasoning, as ``vllm bench serve`` counts them. A chat
        delta that only announces the role carries no token."""
        if self.api == "completions":
            return "text" in choice
        delta = choice.get("delta") or {}
        if delta.get("reasoning_content") or delta.get("reasoning"):
            return True
        return "content" in delta and not (delta.get("role") and not delta.get("content"))

    def step_streaming(self, mark: Callable[[], None]) -> int | None:
        with self._accounting:
            prompt, prompt_tokens, max_tokens = self.requests[self.sent % len(self.requests)]
            self.sent += 1
        conversation = self._conversation
        turns = self.reuse.turns
        reply: list[str] = []  # bound here: with client = asyncio, chunks arrive on the loop's thread
        if turns > 1:
            turn = conversation.turn % turns
            if turn:  # the conversation so far, then this turn's fresh words: its length is the server's count
                prompt, prompt_tokens = conversation.history + prompt, None
            conversation.turn = turn + 1
        path, payload = self._payload(prompt, max_tokens)
        chunks = 0
        usage: dict[str, Any] = {}
        reasoned, first_answer = False, None

        def on_chunk(event: dict[str, Any]) -> None:
            nonlocal chunks, reasoned, first_answer
            for choice in event.get("choices") or []:
                if self._generated(choice):
                    mark()
                    if turns > 1:
                        reply.append(choice.get("text") or (choice.get("delta") or {}).get("content") or "")
                    if self.api == "chat":
                        delta = choice.get("delta") or {}
                        if delta.get("reasoning_content") or delta.get("reasoning"):
                            reasoned = True
                        elif reasoned and first_answer is None and delta.get("content"):
                            first_answer = chunks  # this mark: the first answer token after reasoning
                    chunks += 1
            if event.get("usage"):
                usage.update(event["usage"])

        self.client.stream(path, payload, on_chunk)
        if turns > 1:
            conversation.history = prompt + "".join(reply)
        completion = usage.get("completion_tokens")
        if chunks == 0 and not completion:
            raise QueryFailed("empty reply", "the stream carried no generated token")
        completion = completion if isinstance(completion, int) and completion > 0 else chunks
        with self._accounting:
            self.chunk_counts.add(chunks)
            if usage:
                counted = int(usage.get("prompt_tokens", -1))
                self.usage_prompt_tokens.add(counted)
                self.usage_completion_tokens.add(int(completion))
                if counted >= 0:
                    self.prompt_tokens_counted += counted
                if counted >= 0 and prompt_tokens is not None:
                    deviation = abs(counted - prompt_tokens) / prompt_tokens
                    if self.worst_prompt_deviation is None or deviation > self.worst_prompt_deviation:
                        self.worst_prompt_deviation = deviation
                cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens")
                if isinstance(cached, int):
                    self.cached_prompt_tokens += cached
            if completion != max_tokens:
                self.mismatches += 1
        counted = completion if usage.get("completion_tokens") else None
        if reasoned:  # a reasoning model: TTFT is the first token of any kind, TTFA the first answer's
            # A reply that only reasoned has no first answer: a mark past the last says so.
            return StreamedReply(counted, first_answer if first_answer is not None else chunks)
        return counted

    def step(self) -> None:
        self.step_streaming(lambda: None)

    def outputs(self):
        return None  # a remote server's outputs are not compared with the local reference

    def close(self) -> None:
        self.client.close()

    @property
    def details(self) -> dict[str, Any]:
        """What the backend did, with the request accounting as of now. Built when read (the
        runner reads it after the run), so a request pays only for counting itself, inside its
        timed span."""
        with self._accounting:
            self._details.update(self._accounting_facts())
        return self._details

    @details.setter
    def details(self, value: dict[str, Any]) -> None:
        self._details = value

    def _accounting_facts(self) -> dict[str, Any]:
        counted = sorted(c for c in self.usage_prompt_tokens if c >= 0)
        return dict(
            requests_sent=self.sent,
            token_count_source=("server usage (stream_options.include_usage)" if self.usage_completion_tokens
                                else "counted SSE chunks (the server sent no usage)"),
            usage_prompt_tokens=counted or None,
            usage_completion_tokens=sorted(self.usage_completion_tokens) or None,
            content_chunks=sorted(self.chunk_counts) or None,
            prompt_tokens=_prompt_accounting(self.prompt_tokens, counted, self.cached_prompt_tokens,
                                             self.worst_prompt_deviation, self.prompt_tokens_counted),
            prompts_repeated=self.sent > len(self.requests),
            output_length_mismatches=self.mismatches,
            max_failure_rate=self.max_failure_rate,
        )


def _prompt_pool_size(prompt_tokens: int) -> int:
    """Distinct prompts drawn up front: 4,096, or fewer for long prompts (about 16 MB of text)."""
    return max(256, min(4096, 16_000_000 // (6 * max(prompt_tokens, 1))))


def _prompt_accounting(requested: int, counted: list[int], cached: int, worst: float | None,
                       total: int = 0) -> dict[str, Any]:
    """Requested (the mean, for a mix) against server-counted prompt tokens: the range the server
    counted, the worst deviation of one request from its own requested length (later turns of a
    conversation have no requested length), and the prompt tokens the server reports it served
    from its prefix cache, with their share of all prompt tokens (``prefix_cache_hit_share``;
    ``None`` where the server reports none: vLLM needs ``--enable-prompt-tokens-details``)."""
    return {"requested": requested, "server_counted": [counted[0], counted[-1]] if counted else None,
            "max_deviation": worst, "cached_tokens_reported": cached,
            "prefix_cache_hit_share": cached / total if cached and total else (0.0 if total else None)}
