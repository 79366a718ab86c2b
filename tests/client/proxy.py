"""A TCP proxy on 127.0.0.1 that drops the first answers: the request reaches the coordinator,
which acts on it, and the connection is closed before any byte of its answer gets back."""

from __future__ import annotations

import asyncio
import contextlib
import threading


class AnswerDroppingProxy:
    """Forwards connections to ``upstream_port``; the first ``drops`` lose their answer."""

    def __init__(self, upstream_port: int, drops: int = 1) -> None:
        self.upstream_port = upstream_port
        self.drops_left = drops
        self.dropped = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AnswerDroppingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        stop = self._stop
        if stop is not None:
            self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stop.wait()
        for handler in self._handlers:
            handler.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        drop = self.drops_left > 0
        if drop:
            self.drops_left -= 1
        upstream_r, upstream_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        to_server = asyncio.create_task(self._pipe(client_r, upstream_w))
        try:
            if drop:
                # The first bytes of the answer mean the coordinator has acted on the request.
                await upstream_r.read(1)
                self.dropped += 1
            else:
                await self._pipe(upstream_r, client_w)
        finally:
            to_server.cancel()
            for writer in (client_w, upstream_w):
                writer.close()
                with contextlib.suppress(OSError, ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()
            self._handlers.discard(handler)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
