"""HTTP/1.1 on aiohttp's server: every request body goes to the JSON-RPC dispatcher.

Like the node's ``HttpSession``, the path is ignored and every well-framed request is answered
``200`` with ``application/json`` (``OPTIONS`` gets an empty one). aiohttp parses requests
strictly (one plain decimal ``Content-Length``, no ``Transfer-Encoding`` beside it, ``chunked``
only as the last coding) and answers a malformed one with ``400``; its keep-alive timer also
closes a connection that never sends a request. On top of it:

- at most ``max_connections`` at once, fewer if the process's file limit is lower: at the cap a
  new connection displaces the longest-open idle one, or, when every one is busy, gets ``503``
  and is closed. Running out of descriptors must not happen: asyncio (3.11) then logs a
  traceback per pending connection and schedules one more retry for each, so the log grows
  without bound. The cap leaves room for the descriptors the process already holds plus two
  accept batches (accepted before the cap is looked at, and displaced but not yet closed);
- bodies up to ``max_body_bytes`` (``413`` beyond), read within ``body_timeout_s`` (``408``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import resource
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

Handler = Callable[[bytes], Awaitable[bytes]]
ExceptionHandler = Callable[[asyncio.AbstractEventLoop, dict[str, Any]], object]
_log = logging.getLogger(__name__)

ACCEPT_BATCH = 16  # what asyncio accepts per loop iteration (its ``backlog``)
LISTEN_BACKLOG = 1024
FD_MARGIN = 16  # descriptors for the store, logs and whatever opens later
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
    try:
        held = len(os.listdir("/proc/self/fd"))
    except OSError:
        held = 32
    return max(1, min(requested, soft - held - 2 * ACCEPT_BATCH - FD_MARGIN))


class _ClientErrors(logging.Filter):
    """aiohttp logs every malformed request with a traceback; that is the client's fault."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, HttpProcessingError)


_http_log = logging.getLogger("devnet.fisco.http")
_http_log.addFilter(_ClientErrors())


class _TrackedServer(web.Server):
    """aiohttp's server, telling the connection cap when a connection is gone."""

    def __init__(self, gone: Callable[[RequestHandler], None], *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gone = gone

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        super().connection_lost(handler, exc)
        self._gone(handler)


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
        self._open: dict[RequestHandler, None] = {}  # oldest first
        self._busy: set[RequestHandler] = set()
        self._last_accept_error = -math.inf
        self._previous_handler: ExceptionHandler | None = None
        self.refused = 0
        self.displaced = 0

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self._previous_handler = loop.get_exception_handler()
        loop.set_exception_handler(self._loop_error)
        self._web = _TrackedServer(
            lambda handler: self._open.pop(handler, None),
            self._serve,
            request_factory=self._request,
            access_log=None,
            logger=_http_log,
            keepalive_timeout=self.limits.idle_timeout_s,
            lingering_time=1.0,
        )
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        sock = socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)
        sock.setblocking(False)
        self._listener = await loop.create_server(self._connection, sock=sock, backlog=ACCEPT_BATCH)
        # asyncio listens with the batch size; waiting connections belong in the kernel's queue,
        # which costs this process no descriptor.
        sock.listen(LISTEN_BACKLOG)
        bound: int = self._listener.sockets[0].getsockname()[1]
        return bound

    async def stop(self, grace_s: float = 1.0) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._web is not None:
            await self._web.shutdown(grace_s)
        if self._listener is not None:
            await self._listener.wait_closed()
            asyncio.get_running_loop().set_exception_handler(self._previous_handler)
        self._listener = self._web = None

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def _connection(self) -> asyncio.BaseProtocol:
        """Protocol factory: one call per accepted connection, before it is set up."""
        assert self._web is not None
        if len(self._open) >= self.max_connections:
            idle = next((c for c in self._open if self._is_idle(c)), None)
            if idle is None:
                self.refused += 1
                return _Refused()
            self.displaced += 1
            del self._open[idle]
            idle.force_close()
        handler = self._web()
        self._open[handler] = None
        return handler

    def _is_idle(self, handler: RequestHandler) -> bool:
        """Set up (it has its socket) and not inside a request."""
        return handler.transport is not None and handler not in self._busy

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """Should descriptors run out after all, one line per 10 s instead of a flood."""
        if str(context.get("message", "")).startswith("socket.accept() out of system resource"):
            now = time.monotonic()
            if now - self._last_accept_error >= 10:
                self._last_accept_error = now
                _log.warning("accept_failed reason=%s", context.get("exception"))
            return
        if self._previous_handler is not None:
            self._previous_handler(loop, context)
        else:
            loop.default_exception_handler(context)

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
            except ConnectionError:  # the client left mid-body: nobody to answer, nothing to log
                raise web.HTTPBadRequest() from None
            answer = await self._handler(body)
            return web.Response(body=answer, content_type="application/json", headers=_HEADERS)
        finally:
            self._busy.discard(protocol)
