"""An OpenAI-compatible test server that injects faults, in a background thread on loopback.

Requests cycle through ``pattern``: ``ok`` (a correct stream of ``tokens``
chunks with usage), ``500``, ``drop`` (the connection closes mid-stream),
``malformed`` (an SSE event that is not JSON), ``stall`` (no byte for
``stall_s`` seconds, longer than the client's timeout). Every handler is
bounded in time; ``stop()`` closes everything.
"""

from __future__ import annotations

import asyncio
import itertools
import json

from tests.servers.loopback import LoopbackServer


class FaultServer(LoopbackServer):
    def __init__(self, pattern=("ok", "500", "ok", "drop", "ok", "malformed", "ok", "stall"), tokens=4,
                 stall_s=3.0):
        super().__init__()
        self.pattern, self.tokens, self.stall_s = pattern, tokens, stall_s
        self.counter = itertools.count()
        self.served: list[str] = []

    def routes(self, app, web) -> None:
        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "faulty", "object": "model"}]})

        async def tokenize(request):  # whitespace words, as its usage counts them
            body = await request.json()
            return web.json_response({"count": len(body.get("prompt", "").split())})

        async def completions(request):
            body = await request.json()
            behaviour = self.pattern[next(self.counter) % len(self.pattern)]
            self.served.append(behaviour)
            if behaviour == "500":
                return web.json_response({"error": {"message": "injected"}}, status=500)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            if behaviour == "stall":
                await asyncio.sleep(self.stall_s)
                return response
            count = body.get("max_tokens", self.tokens)
            for i in range(count):
                if behaviour == "drop" and i == 1:
                    request.transport.close()
                    return response
                if behaviour == "malformed" and i == 1:
                    await response.write(b"data: {this is not json\n\n")
                    continue
                chunk = {"choices": [{"index": 0, "text": f" t{i}", "finish_reason": None}]}
                await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            usage = {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": count,
                     "total_tokens": len(body["prompt"].split()) + count}
            await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            return response

        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/tokenize", tokenize)
