"""A tampering JSON-RPC proxy in front of the devnode, and endpoints that fail in set ways."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp import web

Tamper = Callable[[str, list[Any], Any], Any]
"""(method, params, result) -> the result to answer with."""


@asynccontextmanager
async def serve(handler: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/{tail:.*}", handler)  # any path: URLs may carry a key in theirs
    runner = web.AppRunner(app, shutdown_timeout=0.2)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def tampering_proxy(upstream: str, tamper: Tamper) -> AsyncIterator[str]:
    async with aiohttp.ClientSession() as session:

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            async with session.post(upstream, data=body) as response:
                answer = json.loads(await response.read())
            call = json.loads(body)
            if "result" in answer:
                answer["result"] = tamper(call["method"], call["params"], answer["result"])
            return web.json_response(answer)

        async with serve(handle) as url:
            yield url


@asynccontextmanager
async def garbage_endpoint() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        return web.Response(body=b"{not json", content_type="application/json")

    async with serve(handle) as url:
        yield url


@asynccontextmanager
async def echoing_404_endpoint() -> AsyncIterator[str]:
    """HTTP 404 whose text quotes the request's path and query (as some gateways do)."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(status=404, text=f"no route {request.path_qs}")

    async with serve(handle) as url:
        yield url


@asynccontextmanager
async def hanging_endpoint() -> AsyncIterator[str]:
    async def handle(request: web.Request) -> web.Response:
        await asyncio.sleep(3600)
        raise AssertionError

    async with serve(handle) as url:
        yield url


def refused_url() -> str:
    """A local port with nothing listening."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
