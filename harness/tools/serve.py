"""``bakeoff serve``: an OpenAI-compatible streaming server over any bakeoff backend's ``llm``.

It serves ``/v1/completions`` and ``/v1/chat/completions`` (with and without
``stream``, SSE as OpenAI sends it, ``stream_options.include_usage``) and
``/v1/models`` on aiohttp, driving the workload's prefill and decode graphs
through the chosen backend. It exists so that:

* tests have a real server to drive with the ``openai-http`` backend, and
* users can compare a bare runtime with the same runtime behind HTTP, and see
  what the HTTP layer costs.

What it does **not** do, so nobody mistakes it for a serving engine: no
continuous batching (requests run one at a time, in arrival order; others
queue), no paged KV cache, no sampling (greedy only), no EOS (a request always
generates ``max_tokens``, so ``ignore_eos`` holds trivially), no real text
tokenizer. Text is split on whitespace; a word ``t123`` is token 123 and any
other word maps to a token by hash, so a prompt of N words is exactly N prompt
tokens and a reply of M tokens is M words. ``usage`` reports those counts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from harness.contract.capabilities import Generation, ModelFacts, capability
from harness.contract.errors import Unsupported, UserError

WORD_TOKEN = re.compile(r"^t(\d+)$")
#: Prompt plus generated tokens a request may ask for.
MAX_CONTEXT = 4096


@dataclass(frozen=True)
class WordTokenizer:
    """Whitespace words to token ids and back (see the module docstring)."""

    vocab_size: int

    def encode(self, text: str) -> list[int]:
        ids = []
        for word in text.split():
            match = WORD_TOKEN.match(word)
            if match and int(match.group(1)) < self.vocab_size:
                ids.append(int(match.group(1)))
            else:
                ids.append(int.from_bytes(hashlib.blake2b(word.encode(), digest_size=4).digest(), "big")
                           % self.vocab_size)
        return ids

    @staticmethod
    def decode_one(token: int) -> str:
        return f" t{token}"


class ServedModel:
    """The ``llm`` workload prepared on a backend, generating one request at a time."""

    def __init__(self, backend_name: str, device: str | None, preset: str, dtype: str = "float32",
                 threads: int | None = None) -> None:
        from harness.engine.plugins import Registry
        from harness.engine.spec import BenchmarkSpec

        registry = Registry()
        backend = registry.backend(backend_name)
        availability = backend.probe()
        if not availability.available:
            raise UserError(f"backend {backend_name!r} is unavailable here: {availability.reason}")
        devices = [row.device for row in backend.devices() if row.available]
        device = device or (devices[0] if devices else None)
        if device not in devices:
            raise UserError(f"device {device!r} of {backend_name!r} is not available (available: {', '.join(devices)})")
        self.workload = registry.workload("llm", {"preset": preset})
        spec = BenchmarkSpec.create(backend=backend_name, device=device, workload="llm",
                                    params=self.workload.values, dtype=dtype, threads=threads)
        started = time.perf_counter()
        try:
            self.prepared = backend.prepare(self.workload, spec)
        except Unsupported as exc:
            raise UserError(f"{backend_name} on {device} cannot serve llm at {dtype}: {exc}") from None
        self.prepare_s = time.perf_counter() - started
        generator = capability(self.prepared, Generation)
        if generator is None:
            self.prepared.close()
            raise UserError(f"backend {backend_name!r} cannot generate from arbitrary prompts")
        self.generator = generator
        self.tokenizer = WordTokenizer(self.workload.vocab_size)
        self.name = f"bakeoff-llm-{preset}"
        facts = capability(self.workload, ModelFacts)
        self.identity = {"backend": backend_name, "backend_version": availability.version, "device": device,
                         "dtype": dtype, "preset": preset, "engine": "bakeoff serve",
                         "parameters": facts.parameter_count() if facts is not None else None,
                         "batching": "none (one request at a time)"}
        self.lock = threading.Lock()

    def generate(self, prompt: list[int], max_tokens: int, on_token: Callable[[int], None]) -> None:
        """Blocking: prefill then greedy decode, ``on_token`` after each token (in this thread)."""
        import numpy as np

        with self.lock:  # one request at a time: no continuous batching
            self.generator.generate(np.asarray([prompt], dtype=np.int64), max_tokens, on_token)

    def close(self) -> None:
        self.prepared.close()


def _error(status: int, message: str, kind: str = "invalid_request_error"):
    from aiohttp import web

    return web.json_response({"error": {"message": message, "type": kind}}, status=status)


def _parse_request(body: Any, chat: bool, tokenizer: WordTokenizer) -> tuple[list[int], int, bool, bool]:
    """(prompt ids, max_tokens, stream, include_usage), or ``ValueError`` with the message for a 400."""
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages or not all(
                isinstance(m, dict) and isinstance(m.get("content"), str) for m in messages):
            raise ValueError("messages must be a non-empty list of {role, content} objects")
        prompt_text = " ".join(m["content"] for m in messages)
    else:
        prompt_text = body.get("prompt")
        if not isinstance(prompt_text, str):
            raise ValueError("prompt must be a string")
    prompt = tokenizer.encode(prompt_text)
    if not prompt:
        raise ValueError("the prompt has no tokens")
    max_tokens = body.get("max_tokens", body.get("max_completion_tokens", 16))
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        raise ValueError(f"max_tokens must be an integer >= 1, got {max_tokens!r}")
    if len(prompt) + max_tokens > MAX_CONTEXT:
        raise ValueError(f"prompt ({len(prompt)}) + max_tokens ({max_tokens}) exceeds the context of {MAX_CONTEXT}")
    stream = bool(body.get("stream", False))
    include_usage = bool((body.get("stream_options") or {}).get("include_usage", False))
    return prompt, max_tokens, stream, include_usage


def make_app(model: ServedModel):
    """The aiohttp application serving ``model``."""
    from aiohttp import web

    async def models(request):
        return web.json_response({"object": "list", "data": [
            {"id": model.name, "object": "model", "owned_by": "bakeoff", "bakeoff": model.identity}]})

    async def health(request):
        return web.json_response({"status": "ok"})

    async def tokenize(request):
        """vLLM's ``/tokenize`` (``prompt`` or chat ``messages``; ``count``, ``tokens``), which is
        llama.cpp's too (``content``): clients count prompt tokens exactly as this server does."""
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON")
        if not isinstance(body, dict):
            return _error(400, "the request body must be a JSON object")
        text = body.get("prompt", body.get("content"))
        if text is None and isinstance(body.get("messages"), list):
            text = " ".join(str(m.get("content", "")) for m in body["messages"] if isinstance(m, dict))
        if not isinstance(text, str):
            return _error(400, "tokenize needs a prompt (or content, or messages)")
        tokens = model.tokenizer.encode(text)
        return web.json_response({"count": len(tokens), "max_model_len": MAX_CONTEXT, "tokens": tokens})

    async def completions(request, chat: bool):
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "the request body is not JSON")
        try:
            prompt, max_tokens, stream, include_usage = _parse_request(body, chat, model.tokenizer)
        except ValueError as exc:
            return _error(400, str(exc))
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        def produce():
            try:
                model.generate(prompt, max_tokens, lambda token: loop.call_soon_threadsafe(queue.put_nowait, token))
            except Exception as exc:  # noqa: BLE001 - reported to the client as a 500
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            loop.call_soon_threadsafe(queue.put_nowait, done)

        worker = loop.run_in_executor(None, produce)
        ident = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        kind = "chat.completion" if chat else "text_completion"
        usage = {"prompt_tokens": len(prompt), "completion_tokens": 0, "total_tokens": len(prompt)}

        def choice(text: str | None, finish: str | None) -> dict:
            if chat:
                return {"index": 0, "delta": {"content": text} if text is not None else {}, "finish_reason": finish}
            return {"index": 0, "text": text or "", "finish_reason": finish}

        if not stream:
            tokens = []
            while (item := await queue.get()) is not done:
                if isinstance(item, Exception):
                    await worker
                    return _error(500, f"generation failed: {item}", "server_error")
                tokens.append(item)
            await worker
            text = "".join(WordTokenizer.decode_one(t) for t in tokens)
            usage.update(completion_tokens=len(tokens), total_tokens=len(prompt) + len(tokens))
            message = ({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "length"}
                       if chat else {"index": 0, "text": text, "finish_reason": "length"})
            return web.json_response({"id": ident, "object": kind, "created": created, "model": model.name,
                                      "choices": [message], "usage": usage})

        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"

        async def send(payload: dict) -> None:
            await response.write(f"data: {json.dumps(payload)}\n\n".encode())

        count = 0
        while (item := await queue.get()) is not done:
            if isinstance(item, Exception):
                await send({"error": {"message": f"generation failed: {item}", "type": "server_error"}})
                break
            count += 1
            # As vLLM: the last token's chunk carries the finish reason (generation always runs
            # to max_tokens here), so every chunk is one token and none only closes the stream.
            finish = "length" if count == max_tokens else None
            await send({"id": ident, "object": chunk_kind, "created": created, "model": model.name,
                        "choices": [choice(WordTokenizer.decode_one(item), finish)]})
        await worker
        if count < max_tokens:  # generation failed or stopped early: close the choice on its own
            await send({"id": ident, "object": chunk_kind, "created": created, "model": model.name,
                        "choices": [choice(None, "length")]})
        if include_usage:
            usage.update(completion_tokens=count, total_tokens=len(prompt) + count)
            await send({"id": ident, "object": chunk_kind, "created": created, "model": model.name,
                        "choices": [], "usage": usage})
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/v1/models", models)
    app.router.add_get("/health", health)
    app.router.add_post("/tokenize", tokenize)
    app.router.add_post("/v1/completions", lambda request: completions(request, chat=False))
    app.router.add_post("/v1/chat/completions", lambda request: completions(request, chat=True))
    return app


def serve(model: ServedModel, host: str, port: int, on_ready: Callable[[str], None] | None = None) -> None:
    """Run the server until interrupted."""
    from aiohttp import web

    async def main() -> None:
        runner = web.AppRunner(make_app(model), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise UserError(f"--host {host} --port {port}: cannot listen ({exc.strerror or exc})") from None
        bound = runner.addresses[0]
        if on_ready is not None:
            on_ready(f"http://{bound[0]}:{bound[1]}")
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    finally:
        model.close()
