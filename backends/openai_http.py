"""``openai-http``: benchmark a running OpenAI-compatible server (vLLM, vllm-ascend, SGLang,
llama.cpp's server, MindIE's OpenAI front end, ``bakeoff serve``) like any other backend.

Each benchmark step is one streamed request (SSE) for the ``llm`` workload: a
seeded synthetic prompt of exactly ``prompt_tokens`` words and ``max_tokens =
new_tokens`` with ``ignore_eos``. The runner timestamps every content chunk
through ``mark()``, so TTFT, TPOT, ITL and E2E use the same definitions and the
same clock as a bare runtime (docs/measurement.md). One chunk is one mark: a
server that packs several tokens into a chunk shows fewer, larger gaps, and
the record's token counts come from the server's ``usage`` where it sends one
(``token_count_source`` says which).

A failed request (an HTTP 4xx/5xx, a dropped connection, a malformed SSE
stream, a timeout) raises :class:`harness.engine.timing.QueryFailed` with its cause:
it is counted, never timed, and the run goes on; a run whose failure rate
exceeds ``max_failed_percent`` is marked invalid. A reply whose length differs
from ``max_tokens`` is counted in ``output_length_mismatches``.

Only the standard library is used on this side (``http.client``), with a
socket timeout on every request, so every request loop is bounded in time.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import socket
import threading
import urllib.parse
from typing import Any, Callable

from harness.contract.capabilities import Generative, capability
from harness.contract.errors import Unsupported
from harness.contract.interface import Availability, DeviceInfo, Prepared
from harness.contract.options import Option
from harness.engine.timing import QueryFailed


class OpenAiHttpBackend:
    name = "openai-http"
    #: A bake-off that names no backends skips this one: it needs an endpoint.
    default_sweep = False
    required_options = ("url",)
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
        prepared = OpenAiPrepared(client, options.get("api", "completions"), model,
                                  generative.prompt_tokens, generative.new_tokens,
                                  seed=workload.seed, max_failed_percent=options.get("max_failed_percent", 1),
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
        # "model" describes what ran; a remote model's size is unknown here, so the local preset's
        # parameter counts (and a decode roofline from them) must not be attached to it.
        prepared.details = {"url": options["url"], "api": options.get("api", "completions"),
                            "model": {"served_name": model, "parameters": "unknown (remote)"},
                            "engine": engine or "not reported by the server (set -O openai-http.engine=...)",
                            "server_reports": reported or None,
                            "prompt": f"{generative.prompt_tokens} seeded synthetic words, max_tokens "
                                      f"{generative.new_tokens}, ignore_eos"}
        return prepared


class Client:
    """A minimal, bounded HTTP client for the OpenAI API (stdlib ``http.client``)."""

    def __init__(self, url: str, timeout_s: float, api_key: str | None) -> None:
        parsed = urllib.parse.urlparse(url.rstrip("/"))
        self.https = parsed.scheme == "https"
        self.host, self.port = parsed.hostname, parsed.port or (443 if self.https else 80)
        self.base = parsed.path.rstrip("/")
        if not self.base.endswith("/v1"):
            self.base += "/v1"
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

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

    def stream(self, path: str, payload: dict[str, Any], on_chunk: Callable[[dict[str, Any]], None]) -> None:
        """POST with ``stream: true`` and call ``on_chunk`` per SSE event; :class:`QueryFailed` on any fault."""
        connection = self._connection()
        try:
            connection.request("POST", f"{self.base}{path}", body=json.dumps(payload), headers=self.headers)
            response = connection.getresponse()
            if response.status >= 400:
                detail = response.read(300)
                raise QueryFailed(f"http {response.status}", detail.decode(errors="replace"))
            finished = False
            for raw in response:
                line = raw.decode(errors="replace").strip()
                if not line or line.startswith(":"):
                    continue
                if not line.startswith("data:"):
                    raise QueryFailed("malformed sse", f"unexpected line {line[:80]!r}")
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                try:
                    event = json.loads(data)
                except json.JSONDecodeError:
                    raise QueryFailed("malformed sse", f"not JSON: {data[:80]!r}") from None
                if isinstance(event, dict) and "error" in event:
                    raise QueryFailed("server error in stream", str(event["error"])[:200])
                on_chunk(event)
            if not finished:
                raise QueryFailed("dropped stream", "the stream ended without data: [DONE]")
        except socket.timeout:
            raise QueryFailed("timeout", f"no complete answer within {self.timeout_s:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise QueryFailed("connection", f"{type(exc).__name__}: {exc}") from None
        finally:
            connection.close()


class OpenAiPrepared(Prepared):
    """One streamed request per step; the runner's ``mark`` timestamps every content chunk."""

    #: Requests are independent, so concurrent load is allowed (several in flight).
    concurrent_safe = True

    def __init__(self, client: Client, api: str, model: str, prompt_tokens: int, new_tokens: int, seed: int,
                 max_failed_percent: int, ignore_eos: bool = True, include_usage: bool = True) -> None:
        super().__init__()
        self.ignore_eos, self.include_usage = ignore_eos, include_usage
        self.client, self.api, self.model = client, api, model
        self.new_tokens = new_tokens
        self.max_failure_rate = max_failed_percent / 100
        #: What the endpoint says stands behind it; filled in by ``prepare`` (capability RemoteIdentity).
        self.device_overrides: dict[str, Any] = {}
        rng = random.Random(seed)
        # Distinct seeded prompts, so no server-side prefix cache turns prefill into a lookup.
        self.prompts = [" ".join(f"w{rng.randrange(1 << 30)}" for _ in range(prompt_tokens)) for _ in range(64)]
        self.sent = 0
        # Distinct values only, so the accounting after each request stays O(1) and tiny next to
        # the request it follows (it runs inside the request's timed span).
        self.usage_prompt_tokens: set[int] = set()
        self.usage_completion_tokens: set[int] = set()
        self.chunk_counts: set[int] = set()
        self.mismatches = 0
        self._accounting = threading.Lock()  # the concurrent scenario calls step_streaming from many threads

    def energy_meters(self) -> list[Any]:
        """None: the work runs on the server, and this host's power is not the candidate's."""
        return []

    def _payload(self, prompt: str) -> tuple[str, dict[str, Any]]:
        common: dict[str, Any] = {"model": self.model, "max_tokens": self.new_tokens, "stream": True,
                                  "temperature": 0}
        if self.ignore_eos:
            common["ignore_eos"] = True
        if self.include_usage:
            common["stream_options"] = {"include_usage": True}
        if self.api == "chat":
            return "/chat/completions", {**common, "messages": [{"role": "user", "content": prompt}]}
        return "/completions", {**common, "prompt": prompt}

    def step_streaming(self, mark: Callable[[], None]) -> None:
        prompt = self.prompts[self.sent % len(self.prompts)]
        self.sent += 1
        path, payload = self._payload(prompt)
        chunks = 0
        usage: dict[str, Any] = {}

        def on_chunk(event: dict[str, Any]) -> None:
            nonlocal chunks
            for choice in event.get("choices") or []:
                text = choice.get("text") if self.api == "completions" else (choice.get("delta") or {}).get("content")
                if text:
                    chunks += 1
                    mark()
            if event.get("usage"):
                usage.update(event["usage"])

        self.client.stream(path, payload, on_chunk)
        if chunks == 0:
            raise QueryFailed("empty reply", "the stream carried no content")
        completion = usage.get("completion_tokens", chunks)
        with self._accounting:
            self.chunk_counts.add(chunks)
            if usage:
                self.usage_prompt_tokens.add(int(usage.get("prompt_tokens", -1)))
                self.usage_completion_tokens.add(int(completion))
            if completion != self.new_tokens:
                self.mismatches += 1
            self._refresh_details()

    def step(self) -> None:
        self.step_streaming(lambda: None)

    def outputs(self):
        return None  # a remote server's outputs are not compared with the local reference

    def _refresh_details(self) -> None:
        """The request accounting, kept current in ``details`` (the runner reads it after the run)."""
        self.details.update(
            requests_sent=self.sent,
            token_count_source=("server usage (stream_options.include_usage)" if self.usage_completion_tokens
                                else "counted SSE content chunks (the server sent no usage)"),
            usage_prompt_tokens=sorted(self.usage_prompt_tokens) or None,
            usage_completion_tokens=sorted(self.usage_completion_tokens) or None,
            content_chunks=sorted(self.chunk_counts) or None,
            output_length_mismatches=self.mismatches,
            max_failure_rate=self.max_failure_rate,
        )
