"""The replica's small HTTP server: routes, errors, keep-alive, hostile input."""

import json

import trio

from node.observability.http import serve_http


async def _request(port: int, raw: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(raw)
        chunks = []
        with trio.move_on_after(2):
            while True:
                data = await stream.receive_some(65536)
                if not data:
                    break
                chunks.append(data)
        return b"".join(chunks)


async def test_routes_and_errors(nursery):
    def status():
        return 200, "application/json", json.dumps({"id": 0}).encode()

    def boom():
        raise RuntimeError("handler bug")

    port = await nursery.start(serve_http, "127.0.0.1", 0, {"/status": status, "/boom": boom})
    ok = await _request(port, b"GET /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200") and ok.endswith(b'{"id": 0}')
    missing = await _request(port, b"GET /nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert missing.startswith(b"HTTP/1.1 404")
    post = await _request(port, b"POST /status HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert post.startswith(b"HTTP/1.1 405")
    err = await _request(port, b"GET /boom HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert err.startswith(b"HTTP/1.1 500")
    garbage = await _request(port, b"\x00\x01 not http at all\r\n\r\n")
    assert garbage.startswith(b"HTTP/1.1 400")


async def test_keep_alive_serves_two_requests(nursery):
    port = await nursery.start(
        serve_http, "127.0.0.1", 0, {"/healthz": lambda: (200, "text/plain", b"ok\n")}
    )
    two = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\nGET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"
    out = await _request(port, two)
    assert out.count(b"HTTP/1.1 200") == 2


async def test_slow_client_is_dropped_and_server_keeps_serving(nursery, autojump_clock):
    port = await nursery.start(
        serve_http, "127.0.0.1", 0, {"/healthz": lambda: (200, "text/plain", b"ok\n")}
    )
    slow = await trio.open_tcp_stream("127.0.0.1", port)
    await slow.send_all(b"GET /hea")
    with trio.fail_after(30):
        assert await slow.receive_some(100) == b""  # server gave up on the idle request
    out = await _request(port, b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200")
