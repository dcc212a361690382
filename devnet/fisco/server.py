"""HTTP/1.1 on aiohttp's server: every request body goes to the JSON-RPC dispatcher.

Like the node's ``HttpSession``, the path is ignored and every answer is ``200`` with
``application/json`` (``OPTIONS`` gets an empty one). aiohttp parses the request strictly
(one plain decimal ``Content-Length``, no ``Transfer-Encoding`` beside it, ``chunked`` only as
the last coding) and answers a malformed one with ``400``; its keep-alive timer also closes a
connection that never sends a request. On top of it:

- at most ``max_connections`` at once, fewer if the process's file limit is lower: at the cap a
  new connection displaces the longest-open idle one, or, when every one is busy, gets ``503``
  and is closed, so a flood neither exhausts file descriptors nor fills the log;
- bodies up to ``max_body_bytes`` (``413`` beyond), read within ``body_timeout_s`` (``408``).
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

Handler = Callable[[bytes], Awaitable[bytes]]

FD_RESERVE = 32  # descriptors kept for the listener, the store, logs and worker threads
_HEADERS = {"Access-Control-Allow-Origin": "*"}
_REFUSED_BODY = b'{"error":"too many connections"}'
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_REFUSED_BODY), _REFUSED_BODY)
)


@dataclass(frozen=True)
class HttpLimits:
    max_connections: int = 256
    max_body_bytes: int = 16 * 1024 * 1024
    idle_timeout_s: float = 15.0  # keep-alive, and the wait for a first request
    body_timeout_s: float = 30.0


def connection_cap(requested: int) -> int:
    """``requested``, lowered so that open connections stay below the soft file limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return requested
    return max(1, min(requested, soft - FD_RESERVE))


class _ClientErrors(logging.Filter):
    """aiohttp logs every malformed request with a traceback; that is the client's fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


_http_log = logging.getLogger("devnet.fisco.http")
_http_log.addFilter(_ClientErrors())


class _Refused(asyncio.Protocol):
    """Answers ``503`` and closes: the connection cap is reached and no connection is idle."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(_REFUSED)
        transport.close()


class HttpServer:
    def __init__(self, handler: Handler, limits: HttpLimits | None = None) -> None:
        self._handler = handler
        self.limits = limits or HttpLimits()
        self.max_connections = connection_cap(self.limits.max_connections)
        self._web: web.Server | None = None
        self._listener: asyncio.Server | None = None
        self._busy: set[RequestHandler] = set()
        self.refused = 0
        self.displaced = 0

    async def start(self, host: str, port: int) -> int:
        self._web = web.Server(
            self._serve,
            request_factory=self._request,
            access_log=None,
            logger=_http_log,
            keepalive_timeout=self.limits.idle_timeout_s,
            lingering_time=1.0,
        )
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(self._connection, host, port, backlog=128)
        bound: int = self._listener.sockets[0].getsockname()[1]
        return bound

    async def stop(self, grace_s: float = 1.0) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._web is not None:
            await self._web.shutdown(grace_s)
        if self._listener is not None:
            await self._listener.wait_closed()
        self._listener = self._web = None

    @property
    def open_connections(self) -> int:
        return 0 if self._web is None else len(self._live())

    def _live(self) -> list[RequestHandler]:
        assert self._web is not None
        return [c for c in self._web.connections if c.transport is not None]

    def _connection(self) -> asyncio.BaseProtocol:
        """Protocol factory: one call per accepted connection, oldest connections first."""
        assert self._web is not None
        live = self._live()
        if len(live) >= self.max_connections:
            idle = next((c for c in live if c not in self._busy), None)
            if idle is None:
                self.refused += 1
                return _Refused()
            self.displaced += 1
            idle.force_close()
        return self._web()

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        loop = asyncio.get_running_loop()
        limit = self.limits.max_body_bytes
        return web.BaseRequest(
            message, payload, protocol, writer, task, loop, client_max_size=limit
        )

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        protocol = request.protocol
        self._busy.add(protocol)
        try:
            if request.method == "OPTIONS":
                return web.Response(content_type="application/json", headers=_HEADERS)
            length = request.content_length
            if length is not None and length > self.limits.max_body_bytes:
                raise web.HTTPRequestEntityTooLarge(self.limits.max_body_bytes, length)
            try:
                async with asyncio.timeout(self.limits.body_timeout_s):
                    body = await request.read()
            except TimeoutError:
                raise web.HTTPRequestTimeout() from None
            answer = await self._handler(body)
            return web.Response(body=answer, content_type="application/json", headers=_HEADERS)
        finally:
            self._busy.discard(protocol)
