"""A small asyncio HTTP/1.1 server: every request body goes to the JSON-RPC dispatcher.

Like the node's ``HttpSession``, the path is ignored and every answer is ``200`` with
``application/json``; connections stay open (keep-alive) until the client closes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

_log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024
HEADER_TIMEOUT_S = 300.0
BODY_TIMEOUT_S = 60.0

Handler = Callable[[bytes], Awaitable[bytes]]


class _BadRequest(Exception):
    pass


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    async with asyncio.timeout(HEADER_TIMEOUT_S):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError as exc:
            raise _BadRequest("headers too large") from exc
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise _BadRequest("bad request line")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        async with asyncio.timeout(BODY_TIMEOUT_S):
            return parts[0].upper(), headers, await _read_chunked(reader)
    try:
        length = int(headers.get("content-length", "0"))
    except ValueError as exc:
        raise _BadRequest("bad content-length") from exc
    if not 0 <= length <= MAX_BODY:
        raise _BadRequest("body too large")
    async with asyncio.timeout(BODY_TIMEOUT_S):
        body = await reader.readexactly(length)
    return parts[0].upper(), headers, body


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    """A ``Transfer-Encoding: chunked`` body (boost.beast accepts it), at most MAX_BODY bytes."""
    body = bytearray()
    while True:
        line = await _read_line(reader)
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as exc:
            raise _BadRequest("bad chunk size") from exc
        if size < 0 or len(body) + size > MAX_BODY:
            raise _BadRequest("body too large")
        if size == 0:
            break
        body += await reader.readexactly(size)
        if await reader.readexactly(2) != b"\r\n":
            raise _BadRequest("bad chunk terminator")
    while await _read_line(reader):  # trailer fields, up to the empty line
        pass
    return bytes(body)


async def _read_line(reader: asyncio.StreamReader) -> bytes:
    try:
        line = await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError as exc:
        raise _BadRequest("chunk line too long") from exc
    return line[:-2]


def _response(status: str, body: bytes, keep_alive: bool, content_type: str) -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {'keep-alive' if keep_alive else 'close'}\r\n"
        "Access-Control-Allow-Origin: *\r\n\r\n"
    )
    return head.encode() + body


class HttpServer:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port, limit=1 << 16)
        bound: int = self._server.sockets[0].getsockname()[1]
        return bound

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        for task in list(self._connections):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await _read_request(reader)
                except (_BadRequest, TimeoutError, asyncio.IncompleteReadError) as exc:
                    body = f'{{"error":"{type(exc).__name__}"}}'.encode()
                    writer.write(_response("400 Bad Request", body, False, "application/json"))
                    break
                if request is None:
                    break
                method, headers, body = request
                keep_alive = headers.get("connection", "").lower() != "close"
                if method == "OPTIONS":
                    writer.write(_response("200 OK", b"", keep_alive, "application/json"))
                else:
                    answer = await self._handler(body)
                    writer.write(_response("200 OK", answer, keep_alive, "application/json"))
                await writer.drain()
                if not keep_alive:
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
