"""A small asyncio TCP proxy for fault injection, run in a background thread.

Modes (switch at any time with `set_mode`):

- ``pass``       forward both ways (after `delay` seconds when `delay` > 0: added latency)
- ``blackhole``  accept and read, forward nothing either way (a silent partition)
- ``half_open``  forward client -> server only; replies are dropped (a one-way partition)
- ``reset``      reset every open connection and every new one at once (RST)

Data in flight when a connection closes is dropped, as a real network drops it: behind a
delayed proxy a replica loses the replication stream's last `delay` seconds when its
primary dies. The proxy stops by itself after `lifetime` seconds, so a failed test cannot
leave it running."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time

MODES = ("pass", "blackhole", "half_open", "reset")


class Proxy:
    def __init__(
        self, target_port: int, *, target_host: str = "127.0.0.1", lifetime: float = 300.0
    ) -> None:
        self.target = (target_host, target_port)
        self.lifetime = lifetime
        self.mode = "pass"
        self.delay = 0.0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()

    # -- control (any thread) -----------------------------------------------------------

    def start(self) -> Proxy:
        self._thread = threading.Thread(target=self._run, name="fault-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def set_mode(self, mode: str, delay: float | None = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.mode = mode
        if delay is not None:
            self.delay = delay
        if mode == "reset" and self._loop is not None:
            self._loop.call_soon_threadsafe(self._reset_all)

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    # -- the loop (proxy thread) --------------------------------------------------------

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), self.lifetime)
        server.close()
        self._reset_all()
        await server.wait_closed()

    def _reset_all(self) -> None:
        for w in list(self._conns):
            _rst(w)
        self._conns.clear()

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        # Every writer is closed in `finally`, also when the loop shuts down and cancels this
        # handler mid-way: a writer left open until after the loop closed warns from its
        # __del__ (an unraisable ResourceWarning in whichever test runs then).
        writers = [cw]
        tasks: list[asyncio.Task[None]] = []
        try:
            if self.mode == "reset":
                return
            try:
                sr, sw = await asyncio.wait_for(asyncio.open_connection(*self.target), 5)
            except (OSError, asyncio.TimeoutError):
                return
            writers.append(sw)
            self._conns.update((cw, sw))
            tasks = [
                asyncio.create_task(self._pipe(cr, sw, upstream=True)),
                asyncio.create_task(self._pipe(sr, cw, upstream=False)),
            ]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in tasks:
                t.cancel()
            for w in writers:
                self._conns.discard(w)
                _rst(w)

    async def _pipe(self, r: asyncio.StreamReader, w: asyncio.StreamWriter, upstream: bool) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def send() -> None:
            while True:
                due, data = await queue.get()
                if (left := due - time.monotonic()) > 0:
                    await asyncio.sleep(left)
                w.write(data)
                await w.drain()

        sender = asyncio.create_task(send())
        try:
            while data := await r.read(65536):
                if self.mode == "blackhole" or (self.mode == "half_open" and not upstream):
                    continue
                queue.put_nowait((time.monotonic() + self.delay, data))
                if sender.done():
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            sender.cancel()  # what is still queued is lost, like packets in flight


def _rst(w: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0) rather than FIN: the peer sees ECONNRESET."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()
