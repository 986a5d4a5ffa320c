"""An OpenAI-compatible test server that counts tokens as a real engine does, in a background
thread on loopback.

Its tokenizer is not words: a word costs ``len(word) // 4 + 1`` tokens and every prompt
gets one BOS, so a client that sends N words does not send N tokens. Streams behave like
vLLM's: one chunk per token with ``"text": ""`` for some (``empty_every``: a byte-level
token that completes no character), or ``per_chunk`` tokens packed into one chunk; usage
at the end. ``tokenize=False`` drops the ``/tokenize`` endpoint; ``tokenizer_file`` makes
the server count with that ``tokenizer.json`` instead; ``reasoning=N`` makes its chat stream
reason for N tokens before it answers. Every prompt received is kept.
"""

from __future__ import annotations

import asyncio
import json

from tests.servers.loopback import LoopbackServer


def word_cost(word: str) -> int:
    return len(word) // 4 + 1


class TokenServer(LoopbackServer):
    def __init__(self, *, tokenize: bool = True, empty_every: int = 0, all_empty: bool = False,
                 per_chunk: int = 1, tokenizer_file: str | None = None, reasoning: int = 0) -> None:
        self.tokenize, self.empty_every, self.all_empty, self.per_chunk = tokenize, empty_every, all_empty, per_chunk
        self.reasoning = reasoning
        #: ``prefix_cache=True``: report as cached the tokens of the longest word prefix a prompt
        #: shares with any earlier one (as vLLM reports ``cached_tokens``, at word granularity).
        self.prefix_cache = False
        super().__init__()
        self.prompts: list[str] = []
        self._count = self._own_count
        if tokenizer_file:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(tokenizer_file)
            self._count = lambda text: len(tokenizer.encode(text).ids)

    @staticmethod
    def _own_count(text: str) -> int:
        return 1 + sum(word_cost(word) for word in text.split())

    def count(self, text: str) -> int:
        return self._count(text)

    def cached(self, prompt: str) -> int:
        """Tokens of the longest word prefix ``prompt`` shares with an earlier prompt (0 unless
        ``prefix_cache``)."""
        if not self.prefix_cache:
            return 0
        words, best = prompt.split(), 0
        for earlier in self.prompts:
            shared = 0
            for a, b in zip(words, earlier.split()):
                if a != b:
                    break
                shared += 1
            best = max(best, shared)
        return sum(word_cost(word) for word in words[:best])

    def routes(self, app, web) -> None:
        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "counted", "object": "model"}]})

        async def tokenize(request):
            body = await request.json()
            text = body.get("prompt", body.get("content", ""))
            return web.json_response({"count": self.count(text), "tokens": list(range(self.count(text)))})

        async def stream(request, choices, usage):
            """One SSE chunk per choice, 1 ms apart, then the usage and ``[DONE]``."""
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for choice in choices:
                await response.write(f"data: {json.dumps({'choices': [choice]})}\n\n".encode())
                await asyncio.sleep(0.001)
            await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response

        async def completions(request):
            body = await request.json()
            prompt = body["prompt"]
            count = body.get("max_tokens", 16)
            usage = {"prompt_tokens": self.count(prompt), "completion_tokens": count,
                     "total_tokens": self.count(prompt) + count,
                     "prompt_tokens_details": {"cached_tokens": self.cached(prompt)}}
            if not body.get("stream"):
                return web.json_response({"choices": [{"text": " x", "index": 0}], "usage": usage})
            self.prompts.append(prompt)
            choices = []
            for first in range(0, count, self.per_chunk):
                empty = self.all_empty or (self.empty_every and first % self.empty_every == 0)
                text = "" if empty else "".join(f" t{i}" for i in range(first, min(count, first + self.per_chunk)))
                choices.append({"index": 0, "text": text, "finish_reason": None})
            return await stream(request, choices, usage)

        async def chat(request):
            """A reasoning model's chat stream, as vLLM's reasoning parsers send it: the role, then
            ``reasoning`` tokens as ``reasoning_content`` deltas, then the answer as ``content``."""
            body = await request.json()
            prompt = body["messages"][-1]["content"]
            count = body.get("max_tokens", 16)
            self.prompts.append(prompt)
            usage = {"prompt_tokens": self.count(prompt), "completion_tokens": count}
            deltas = [{"role": "assistant", "content": ""}]
            deltas += [{"reasoning_content": f" r{i}"} for i in range(min(self.reasoning, count))]
            deltas += [{"content": f" a{i}"} for i in range(count - min(self.reasoning, count))]
            return await stream(request, [{"index": 0, "delta": d, "finish_reason": None} for d in deltas], usage)

        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/v1/chat/completions", chat)
        if self.tokenize:
            app.router.add_post("/tokenize", tokenize)
