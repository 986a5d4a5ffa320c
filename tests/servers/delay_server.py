"""An OpenAI-compatible streaming server with a known TTFT and inter-chunk gap (as GuideLLM's
mock server), for checking what the client reads back and what it can sustain. ``GET /stats``
gives what the server itself took (median request-to-first-chunk and chunk gap), so the
client's reading is checked against the server's own timing, not only against the asked delay
(asyncio's sleeps run late by a fraction of a millisecond).

Each streamed reply waits ``ttft_s``, then sends ``max_tokens`` one-token chunks ``itl_s``
apart, then usage. With both at zero it is a no-op server: what a client reads from it is
the client's own capacity. ``itl_per_stream_s`` lengthens every gap by that much for each
other request in flight, as a batching engine's decode step slows with its batch: more load
gives more tokens/s in all and fewer to each user (the frontier's trade-off).
``/tokenize`` counts whitespace words. Run it as its own process
(``python -m tests.servers.delay_server --ttft-ms 50 --itl-ms 10``; it prints its URL), so
the client measured does not share an interpreter with it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

from tests.servers.loopback import LoopbackServer


class DelayServer(LoopbackServer):
    def __init__(self, ttft_s: float = 0.0, itl_s: float = 0.0, itl_per_stream_s: float = 0.0) -> None:
        super().__init__()
        self.ttft_s, self.itl_s, self.itl_per_stream_s = ttft_s, itl_s, itl_per_stream_s
        self.in_flight = 0
        #: What the server itself took: request received to first chunk written, and between chunks.
        self.ttft_ns: list[int] = []
        self.gaps_ns: list[int] = []

    def routes(self, app, web) -> None:
        async def models(request):
            return web.json_response({"object": "list", "data": [{"id": "delay", "object": "model"}]})

        async def tokenize(request):
            body = await request.json()
            return web.json_response({"count": len(body.get("prompt", "").split())})

        async def stats(request):
            def median(values):
                return sorted(values)[len(values) // 2] / 1e9 if values else None

            return web.json_response({"ttft_s": median(self.ttft_ns), "gap_s": median(self.gaps_ns)})

        async def completions(request):
            received = time.perf_counter_ns()
            body = await request.json()
            count = body.get("max_tokens", 16)
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            if self.ttft_s:
                await asyncio.sleep(self.ttft_s)
            last = None
            self.in_flight += 1
            try:
                await self._stream(response, count, received, last)
            finally:
                self.in_flight -= 1
            usage = {"prompt_tokens": len(body["prompt"].split()), "completion_tokens": count}
            await response.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\ndata: [DONE]\n\n".encode())
            return response

        app.router.add_get("/v1/models", models)
        app.router.add_post("/v1/completions", completions)
        app.router.add_post("/tokenize", tokenize)
        app.router.add_get("/stats", stats)

    async def _stream(self, response, count: int, received: int, last: int | None) -> None:
        for i in range(count):
            gap = self.itl_s + self.itl_per_stream_s * (self.in_flight - 1)
            if i and gap:
                await asyncio.sleep(gap)
            await response.write(b'data: {"choices": [{"index": 0, "text": " t", "finish_reason": null}]}\n\n')
            written = time.perf_counter_ns()
            if last is None:
                self.ttft_ns.append(written - received)
            else:
                self.gaps_ns.append(written - last)
            last = written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ttft-ms", type=float, default=0.0)
    parser.add_argument("--itl-ms", type=float, default=0.0)
    parser.add_argument("--itl-per-stream-ms", type=float, default=0.0)
    args = parser.parse_args()
    server = DelayServer(args.ttft_ms / 1e3, args.itl_ms / 1e3, args.itl_per_stream_ms / 1e3).start()
    print(f"listening on {server.url}", flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.stop()


if __name__ == "__main__":
    main()
