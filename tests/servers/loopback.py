"""An aiohttp application served on loopback from a background thread: the shared body of the
test servers. A subclass builds its routes in ``routes(app, web)``; ``start()`` returns once it
listens (its URL in ``url``) and ``stop()`` closes everything, bounded in time."""

from __future__ import annotations

import asyncio
import threading


class LoopbackServer:
    def __init__(self) -> None:
        self.url = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def routes(self, app, web) -> None:  # pragma: no cover - each server overrides it
        raise NotImplementedError

    def start(self):
        self._thread.start()
        assert self._ready.wait(10), f"{type(self).__name__} did not start"
        return self

    def _run(self) -> None:
        from aiohttp import web

        async def main():
            app = web.Application()
            self.routes(app, web)
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
