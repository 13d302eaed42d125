"""guard's gunicorn worker writes each response in one send (headers with the body).

Two sends per response (gunicorn's default: the header block, then the body) cost a second
syscall on the server and a second wakeup of a keep-alive client that reads the headers and
then blocks for the body; the HTTP benchmark pays both on every request. These tests drive
`guard.server.worker.OneWriteResponse` with a recording socket (no network needed: what is
checked is which bytes go to which send call)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gunicorn.config import Config

from guard.server.worker import OneWriteResponse


class RecordingSocket:
    def __init__(self) -> None:
        self.sends: list[bytes] = []

    def sendall(self, data: bytes) -> None:
        self.sends.append(bytes(data))


def respond(method: str, status: str, headers: list[tuple[str, str]],
            body: list[bytes]) -> list[bytes]:  # fmt: skip
    req: Any = SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False,
                               headers=[], uri="/", path="/", query="", fragment="")  # fmt: skip
    sock = RecordingSocket()
    resp = OneWriteResponse(req, sock, Config())
    resp.start_response(status, headers)
    for chunk in body:
        resp.write(chunk)
    resp.close()
    return sock.sends


def test_headers_and_body_go_out_in_one_send() -> None:
    body = b'{"fence": 1}'
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
    sends = respond("POST", "201 CREATED", headers, [body])
    assert len(sends) == 1
    head, _, rest = sends[0].partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201 CREATED\r\n")
    assert b"Content-Length: 12" in head
    assert rest == body


def test_a_response_without_body_still_sends_its_headers() -> None:
    sends = respond("DELETE", "204 NO CONTENT", [], [b""])
    assert len(sends) == 1 and sends[0].startswith(b"HTTP/1.1 204 NO CONTENT\r\n")
    assert sends[0].endswith(b"\r\n\r\n")
    head = respond("HEAD", "200 OK", [("Content-Length", "5")], [b"hello"])
    assert len(head) == 1 and head[0].endswith(b"\r\n\r\n")  # HEAD: headers, no body bytes


def test_later_chunks_follow_in_order() -> None:
    sends = respond("GET", "200 OK", [("Content-Length", "6")], [b"abc", b"def"])
    assert b"".join(sends).endswith(b"\r\n\r\nabcdef")
    assert sends[0].endswith(b"abc")  # the first chunk rides with the headers


def test_chunked_responses_keep_their_framing() -> None:
    sends = respond("GET", "200 OK", [], [b"abc", b"de"])
    wire = b"".join(sends)
    assert b"Transfer-Encoding: chunked" in wire
    assert wire.endswith(b"\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
