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
import threading


class FaultServer:
    def __init__(self, pattern=("ok", "500", "ok", "drop", "ok", "malformed", "ok", "stall"), tokens=4,
                 stall_s=3.0):
        self.pattern, self.tokens, self.stall_s = pattern, tokens, stall_s
        self.counter = itertools.count()
        self.served: list[str] = []
        self.url = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "FaultServer":
        self._thread.start()
        assert self._ready.wait(10), "fault server did not start"
        return self

    def _run(self) -> None:
        from aiohttp import web

        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "faulty", "object": "model"}]})

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

        async def main():
            app = web.Application()
            app.router.add_get("/v1/models", models)
            app.router.add_post("/v1/completions", completions)
            self._runner = web.AppRunner(app)
            await self._runner.setup()
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            await site.start()
            host, port = self._runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()
            await self._runner.cleanup()

        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(main())

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
