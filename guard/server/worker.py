"""The gunicorn worker of ``guard serve``: gevent, with a bounded body read and RFC 9457
answers for the errors gunicorn itself answers.

Why gevent: a lease request may wait up to 30 s for a slot, and a client may send its body
slowly. With threads (``gthread``) each of those holds a pool thread — 20 waiters or 30 slow
bodies starved /healthz and the holder's release on a default server. Here each connection
is a greenlet: a waiter is parked on its Redis subscription, a slow client on its socket, and
neither holds anything another request needs. What bounds them:

- **headers**: read within ``keepalive`` seconds (gunicorn's gevent timeout around the
  parser, which also bounds an idle keep-alive connection); size limits are gunicorn's
  (request line 4094 bytes, 100 header fields of 8190 bytes);
- **body**: read completely, before the app runs, within ``GUARD_BODY_TIMEOUT`` seconds
  (default 10; then 408) and up to `guard.server.MAX_BODY` bytes (then 413);
- **connections**: ``worker_connections`` per worker (``GUARD_WORKER_CONNECTIONS``).

gunicorn writes its own protocol errors (400, 414, 431, …) as HTML through
``gunicorn.util.write_error``; this worker process swaps that function for one writing
``application/problem+json``; and it swaps gunicorn's response writer for `OneWriteResponse`,
which puts a response's header block on the wire together with its body."""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from typing import Any

import gevent
from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.http.body import Body
from gunicorn.workers.ggevent import GeventWorker

from .. import problems
from ..settings import Settings
from . import MAX_BODY

TOO_LARGE = f"the body exceeds {MAX_BODY} bytes"


def problem_bytes(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP response carrying the problem document for `status` (`guard.problems`;
    a status without a type of its own is ``about:blank`` titled by its reason phrase)."""
    known = problems.BY_STATUS.get(status)
    if known is not None:
        doc = problems.document(known.slug, detail)
    else:
        doc = {"type": "about:blank", "title": reason, "status": status, "detail": detail}
    body = json.dumps(doc).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
        f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def write_problem(sock: Any, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for ``gunicorn.util.write_error``."""
    util.write_nonblock(sock, problem_bytes(status_int, reason, mesg))


class GuardWorker(GeventWorker):  # type: ignore[misc]
    """gunicorn's gevent worker, reading each request body whole and in bounded time."""

    def patch(self) -> None:
        # The master imported redis (and so ssl) before forking; gevent warns that ssl is
        # patched late. The app, its Redis clients and their SSL contexts are all created in
        # this worker after patching, and only redis.asyncio (unused) holds direct imports.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl")
            super().patch()

    def init_process(self) -> None:
        self.body_timeout = Settings.from_env().body_timeout
        util.write_error = write_problem  # this worker process only
        wsgi.Response = OneWriteResponse  # what `gunicorn.http.wsgi.create` builds, here only
        super().init_process()

    def handle_request(self, listener_name: Any, req: Any, sock: Any, addr: Any) -> Any:
        if not self._read_body(req, sock):
            raise StopIteration()  # the connection is closed: its framing is unknown now
        return super().handle_request(listener_name, req, sock, addr)

    def _read_body(self, req: Any, sock: Any) -> bool:
        """Replace the request's socket-backed body with the bytes, read within the deadline;
        False (after answering 408 or 413) when it cannot be."""
        length = next((v for k, v in req.headers if k == "CONTENT-LENGTH"), None)
        if length is not None and length.isdigit() and int(length) > MAX_BODY:
            send(sock, problem_bytes(413, "Request Entity Too Large", TOO_LARGE))
            return False
        if req._expected_100_continue:  # the client waits for this before sending the body
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            req._expected_100_continue = False
        data = None
        with gevent.Timeout(self.body_timeout, False):
            data = req.body.read(MAX_BODY + 1)
        if data is None:
            self.log.info("body not received within %ss from %s", self.body_timeout, addr_of(req))
            detail = f"the request body did not arrive within {self.body_timeout:g} s"
            send(sock, problem_bytes(408, "Request Timeout", detail))
            return False
        if len(data) > MAX_BODY:
            send(sock, problem_bytes(413, "Request Entity Too Large", TOO_LARGE))
            return False
        req.body = Body(io.BytesIO(data))
        return True


class OneWriteResponse(wsgi.Response):  # type: ignore[misc]
    """gunicorn's response, sending the header block with the first body bytes.

    gunicorn writes the headers and then the body in two sends. Every guard answer is one
    small JSON body, so that is two syscalls where one does, and a keep-alive client that
    reads the headers wakes up a second time for the body — measurable per request in
    ``bench/bench_http.py``. Here the header block is held until the first body bytes (or
    `close`, for a response without a body) and goes out with them. Chunked framing is
    unchanged (the header block is flushed first), and sendfile is not used: guard serves no
    files, and it would write the body past the held headers."""

    _held: bytes = b""
    headers_sent: bool

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        tosend = self.default_headers()
        tosend.extend([f"{k}: {v}\r\n" for k, v in self.headers])
        self._held = util.to_bytestring("".join(tosend) + "\r\n", "latin-1")
        self.headers_sent = True

    def _flush_headers(self) -> None:
        held, self._held = self._held, b""
        if held:
            util.write(self.sock, held)

    def _emit_body(self, data: bytes) -> None:
        if self._held and not self.chunked:
            held, self._held = self._held, b""
            util.write(self.sock, held + data)
        else:
            self._flush_headers()
            super()._emit_body(data)

    def sendfile(self, respiter: Any) -> bool:
        return False  # write_file then writes through `_emit_body`

    def close(self) -> None:
        self.send_headers()
        self._flush_headers()
        super().close()


def addr_of(req: Any) -> str:
    return str(getattr(req, "peer_addr", "") or "-")


def send(sock: Any, data: bytes) -> None:
    with contextlib.suppress(OSError):  # the client is gone; the connection closes next anyway
        sock.sendall(data)
