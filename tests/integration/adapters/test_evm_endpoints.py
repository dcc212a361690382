"""Endpoint faults against a real Anvil: refused, hanging, garbage and lying endpoints.

Each fault is a small local server: a port nobody listens on, a TCP server that never answers,
an HTTP server that answers garbage, and a proxy in front of Anvil that alters receipts (and,
in one variant, the header's receiptsRoot to match). The adapter must raise a typed error naming
the endpoint, or fail over to the next one; never crash or stall.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from adapters.base import (
    AdapterError,
    ChainTimeout,
    ChainUnavailable,
    FactKind,
    UnexpectedResponse,
)
from tests.integration.adapters.env import read_all
from tests.integration.adapters.env_evm import CHAIN, EvmChainEnv, evm_env
from verifier.evidence import verify_bundle
from verifier.evm.receipt import encode_receipt, receipt_key
from verifier.merkle.mpt import compute_mpt_root

pytestmark = pytest.mark.integration
TIMEOUT = 0.5


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    return sock


def refused_url() -> str:
    """A port that was free a moment ago and has nobody listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@asynccontextmanager
async def hanging_server() -> AsyncIterator[str]:
    """Accepts connections, reads, never answers."""
    writers: list[asyncio.StreamWriter] = []
    stop = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await stop.wait()

    sock = _listening_socket()
    server = await asyncio.start_server(handle, sock=sock)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        for writer in writers:
            writer.close()
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def http_server(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    sock = _listening_socket()
    await web.SockSite(runner, sock).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        await runner.cleanup()


async def garbage(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(
        text="<html>502 Bad Gateway, but with status 200{", content_type="text/html"
    )


async def wrong_shape(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": {"not": "a number"}})


@asynccontextmanager
async def tampering_proxy(upstream: str, *, fix_header: bool) -> AsyncIterator[str]:
    """Forwards to ``upstream``; alters the first receipt of every eth_getBlockReceipts answer.

    With ``fix_header`` it also rewrites the block's receiptsRoot to match the altered receipts,
    so only the block hash can tell.
    """
    async with aiohttp.ClientSession() as session:

        async def forward(method: str, params: Any) -> Any:
            request = {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}
            async with session.post(upstream, json=request) as response:
                return (await response.json())["result"]

        async def tampered_receipts(block_hash: str) -> list[dict[str, Any]]:
            receipts: list[dict[str, Any]] = await forward("eth_getBlockReceipts", [block_hash])
            if receipts:
                receipts[0]["cumulativeGasUsed"] = hex(
                    int(receipts[0]["cumulativeGasUsed"], 16) + 1
                )
            return receipts

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            method, params = body["method"], body.get("params", [])
            result = await forward(method, params)
            if method == "eth_getBlockReceipts" and result:
                result = await tampered_receipts(params[0])
            elif (
                fix_header
                and method == "eth_getBlockByNumber"
                and result
                and result["transactions"]
            ):
                receipts = await tampered_receipts(result["hash"])
                items = {receipt_key(i): encode_receipt(r) for i, r in enumerate(receipts)}
                result["receiptsRoot"] = "0x" + compute_mpt_root(items).hex()
            return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

        async with http_server(handle) as url:
            yield url


def run(test: Callable[[EvmChainEnv], Awaitable[None]]) -> None:
    async def main() -> None:
        async with evm_env(call_timeout=TIMEOUT) as env:
            await test(env)

    asyncio.run(main())


async def final_ping(env: EvmChainEnv) -> str:
    cursor = env.adapter.initial_cursor(await env.evm.head() + 1)
    timeout = await env.driver.timestamp() + 3600
    await env.driver.transact(
        env.ping_pong,
        "ping(string,address,bytes,uint64)",
        [CHAIN, env.ping_pong, b"p", timeout],
        account=0,
    )
    await env.driver.finalize()
    return cursor


def test_each_faulty_endpoint_alone_is_a_typed_error_naming_it() -> None:
    """Refused -> ChainUnavailable, hanging -> ChainTimeout within the deadline, garbage and a
    wrongly shaped result -> UnexpectedResponse; each names the endpoint."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with (
            hanging_server() as hang,
            http_server(garbage) as junk,
            http_server(wrong_shape) as shape,
        ):
            cases: list[tuple[str, type[AdapterError]]] = [
                (refused_url(), ChainUnavailable),
                (hang, ChainTimeout),
                (junk, UnexpectedResponse),
                (shape, UnexpectedResponse),
            ]
            for url, error in cases:
                adapter = env.adapter_with(endpoints=(url,))
                try:
                    began = time.monotonic()
                    with pytest.raises(error) as caught:
                        await adapter.facts(cursor)
                    assert time.monotonic() - began < TIMEOUT * 4
                    assert caught.value.endpoint == url
                    assert url in str(caught.value)
                    health = adapter.health()[0]
                    assert not health.healthy
                    assert health.last_error
                finally:
                    await adapter.close()

    run(body)


def test_failover_past_refusing_hanging_and_garbage_endpoints() -> None:
    """With three bad endpoints before Anvil, facts and submissions still go through; the bad
    ones are marked unhealthy and tried last afterwards (no second wait on the hanging one)."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with hanging_server() as hang, http_server(garbage) as junk:
            urls = (refused_url(), hang, junk, env.anvil.url)
            adapter = env.adapter_with(endpoints=urls)
            try:
                page = await adapter.facts(cursor)
                assert [f.kind for f in page.facts] == [FactKind.MESSAGE_SENT]
                assert page.facts[0].endpoint == env.anvil.url
                began = time.monotonic()
                status = await adapter.status()
                assert time.monotonic() - began < TIMEOUT  # the hanging endpoint is tried last
                assert [e.healthy for e in status.endpoints] == [False, False, False, True]
                fact = page.facts[0]
                assert fact.message is not None
                delivered = await adapter.deliver([(fact.id, fact.message)])
                assert delivered.endpoint == env.anvil.url
            finally:
                await adapter.close()

    run(body)


def test_tampered_receipts_fail_the_root_check_and_fail_over() -> None:
    """A proxy that alters a receipt: alone, the adapter's receiptsRoot check names it; in front
    of Anvil, the page is read again from Anvil and its bundle verifies."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with tampering_proxy(env.anvil.url, fix_header=False) as bad:
            alone = env.adapter_with(endpoints=(bad,))
            pooled = env.adapter_with(endpoints=(bad, env.anvil.url))
            try:
                with pytest.raises(UnexpectedResponse, match="receiptsRoot") as caught:
                    await alone.facts(cursor)
                assert caught.value.endpoint == bad
                page = await pooled.facts(cursor)
                (fact,) = page.facts
                assert fact.endpoint == env.anvil.url
                assert fact.evidence is not None
                verify_bundle(fact.evidence.bundle)
            finally:
                await alone.close()
                await pooled.close()

    run(body)


def test_consistently_forged_header_is_caught_by_the_adapter_and_fails_over() -> None:
    """A proxy that alters a receipt and the header's receiptsRoot to match passes the
    receiptsRoot check, but the header no longer hashes to its ``hash``: alone it is an
    UnexpectedResponse naming the proxy; in front of Anvil the page and refetch come from
    Anvil, whose bundle verifies against the chain's block hash."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with tampering_proxy(env.anvil.url, fix_header=True) as bad:
            alone = env.adapter_with(endpoints=(bad,))
            adapter = env.adapter_with(endpoints=(bad, env.anvil.url))
            try:
                with pytest.raises(UnexpectedResponse, match="fields hash to") as caught:
                    await alone.facts(cursor)
                assert caught.value.endpoint == bad
                (fact,) = (await adapter.facts(cursor)).facts
                assert fact.endpoint == env.anvil.url
                assert [h.healthy for h in adapter.health()] == [False, True]
                canonical = (await env.evm.block(fact.height))["hash"]
                good = await adapter.refetch(fact, avoid=frozenset())
                assert good.endpoint == env.anvil.url
                assert good.evidence is not None
                bundle = dict(good.evidence.bundle, trust={"block_hash": canonical})
                assert verify_bundle(bundle).block_number == fact.height
                with pytest.raises(UnexpectedResponse, match="fields hash to") as caught:
                    await adapter.refetch(fact, avoid=frozenset({env.anvil.url}))
                assert caught.value.endpoint == bad
            finally:
                await alone.close()
                await adapter.close()

    run(body)


@asynccontextmanager
async def passthrough_proxy(upstream: str) -> AsyncIterator[str]:
    """Forwards any path to ``upstream`` unchanged (a provider URL with a key in its path)."""
    async with aiohttp.ClientSession() as session:

        async def handle(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {"Content-Type": "application/json"}
            async with session.post(upstream, data=body, headers=headers) as response:
                return web.Response(body=await response.read(), content_type="application/json")

        app = web.Application()
        app.router.add_post("/{tail:.*}", handle)
        runner = web.AppRunner(app)
        await runner.setup()
        sock = _listening_socket()
        await web.SockSite(runner, sock).start()
        try:
            yield f"http://127.0.0.1:{sock.getsockname()[1]}"
        finally:
            await runner.cleanup()


def test_endpoint_credentials_never_show_in_facts_errors_health_or_logs() -> None:
    """Endpoints whose URLs carry a user, password, API key path and query are named by
    endpoint_names (scheme, host, port) in facts, evidence, submissions, health, errors and log
    lines; refetch(avoid=) takes those names."""
    secrets = ("alice", "s3cret", "KEY123", "apikey")

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with passthrough_proxy(env.anvil.url) as proxy:
            dead = refused_url().replace("http://", "http://alice:s3cret@") + "/v2/KEY123"
            good = proxy.replace("http://", "http://alice:s3cret@") + "/v2/KEY123?apikey=1"
            adapter = env.adapter_with(endpoints=(dead, good))
            dead_name, good_name = (e.url for e in adapter.health())
            try:
                with capture_logs() as logs:
                    (fact,) = (await adapter.facts(cursor)).facts
                    assert fact.message is not None
                    delivered = await adapter.deliver([(fact.id, fact.message)])
                    with pytest.raises(ChainUnavailable) as caught:
                        await adapter.refetch(fact, avoid=frozenset({good_name}))
                assert fact.endpoint == good_name == proxy + "/…"
                assert fact.evidence is not None
                assert fact.evidence.endpoint == good_name
                assert delivered.endpoint == good_name
                assert caught.value.endpoint == dead_name
                again = await adapter.refetch(fact, avoid=frozenset({dead_name}))
                assert again.endpoint == good_name
                shown = [
                    fact.endpoint,
                    str(caught.value),
                    repr(adapter.health()),
                    repr(logs),
                    repr(await adapter.status()),
                ]
                for text in shown:
                    for secret in secrets:
                        assert secret not in text, (secret, text)
            finally:
                await adapter.close()

    run(body)


def test_finality_tag_is_never_replaced_by_latest() -> None:
    """With finality_tag="finalized", Anvil's finalized block (head - 64, else genesis) bounds
    the page: a ping a few blocks deep is not reported; json of the cursor is unchanged."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        adapter = env.adapter_with(finality_tag="finalized")
        try:
            page = await adapter.facts(cursor)
            assert page.facts == ()
            assert json.loads(page.cursor) == json.loads(cursor)
            assert page.final_height < await env.evm.head() - 2
        finally:
            await adapter.close()

    run(body)


@asynccontextmanager
async def proxy_without_block_receipts(upstream: str) -> AsyncIterator[str]:
    """Forwards to ``upstream`` but answers eth_getBlockReceipts with "method not found"."""
    async with aiohttp.ClientSession() as session:

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if body["method"] == "eth_getBlockReceipts":
                error = {"code": -32601, "message": "the method does not exist"}
                return web.json_response({"jsonrpc": "2.0", "id": body["id"], "error": error})
            async with session.post(upstream, json=body) as response:
                return web.json_response(await response.json())

        async with http_server(handle) as url:
            yield url


def test_receipts_one_by_one_when_block_receipts_is_missing() -> None:
    """A node without eth_getBlockReceipts: receipts come from eth_getTransactionReceipt per
    transaction, and the bundle verifies the same way."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        async with proxy_without_block_receipts(env.anvil.url) as old:
            adapter = env.adapter_with(endpoints=(old,))
            try:
                (fact,) = (await adapter.facts(cursor)).facts
                assert fact.endpoint == old
                assert fact.evidence is not None
                canonical = (await env.evm.block(fact.height))["hash"]
                bundle = dict(fact.evidence.bundle, trust={"block_hash": canonical})
                assert verify_bundle(bundle).block_number == fact.height
            finally:
                await adapter.close()

    run(body)


def test_stuck_transaction_is_replaced_on_a_real_node() -> None:
    """Automine off: after half the receipt timeout the relayer's transaction is re-sent with the
    same nonce and higher fees; Anvil accepts the replacement and mines it."""

    async def body(env: EvmChainEnv) -> None:
        cursor = await final_ping(env)
        (fact,) = (await env.adapter.facts(cursor)).facts
        assert fact.message is not None
        adapter = env.adapter_with(receipt_timeout=1.0)
        try:
            await env.evm.rpc.call("evm_setAutomine", [False])
            with capture_logs() as logs:
                task = asyncio.create_task(adapter.deliver([(fact.id, fact.message)]))
                await asyncio.sleep(0.8)  # past half the timeout: the replacement is in the pool
                await env.evm.mine(1)
                submission = await task
            events = {entry["event"]: entry for entry in logs}
            replaced = events["transaction_replaced"]
            assert replaced["tx_hash"] == submission.tx_hash
            assert replaced["replaces"] != submission.tx_hash
            block = await env.evm.block(submission.height)
            assert block["transactions"] == [submission.tx_hash]
            assert await adapter.delivery_status(fact.id) is not None
        finally:
            await env.evm.rpc.call("evm_setAutomine", [True])
            await adapter.close()

    run(body)


@asynccontextmanager
async def receipt_hiding_proxy(upstream: str, hidden: dict[str, bool]) -> AsyncIterator[str]:
    """Forwards to ``upstream``; answers eth_getTransactionReceipt with null while
    ``hidden["receipts"]`` (an endpoint that has not indexed a mined transaction yet)."""
    async with aiohttp.ClientSession() as session:

        async def handle(request: web.Request) -> web.Response:
            body = await request.json()
            if body["method"] == "eth_getTransactionReceipt" and hidden["receipts"]:
                return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": None})
            async with session.post(upstream, json=body) as response:
                return web.json_response(await response.json())

        async with http_server(handle) as url:
            yield url


def test_refused_replacement_of_a_mined_message_is_not_sent_twice() -> None:
    """Two endpoints; the sender's transaction is mined at once but neither endpoint serves
    its receipt yet, so after half the receipt timeout the replacement goes out and both refuse
    it ("nonce too low"). send_message must still return the mined message (it used to raise a
    retryable UnexpectedResponse, and the relay sent the message again); both endpoints stay
    healthy, and the chain holds exactly one MessageSent."""

    async def body(env: EvmChainEnv) -> None:
        hidden = {"receipts": True}
        cursor = env.adapter.initial_cursor(await env.evm.head() + 1)
        timeout = await env.driver.timestamp() + 3600
        async with (
            receipt_hiding_proxy(env.anvil.url, hidden) as one,
            receipt_hiding_proxy(env.anvil.url, hidden) as two,
        ):
            adapter = env.adapter_with(endpoints=(one, two), receipt_timeout=3.0)
            try:
                with capture_logs() as logs:
                    task = asyncio.create_task(
                        adapter.send_message(CHAIN, env.ping_pong, b"once", timeout)
                    )
                    await asyncio.sleep(2.0)  # polls at 1.55 s (replacement), then 2.55 s
                    hidden["receipts"] = False
                    sent_id, submission = await task
                refused = [e for e in logs if e["event"] == "transaction_refused"]
                assert refused
                assert "nonce too low" in refused[0]["reason"].lower()
                assert [h.healthy for h in adapter.health()] == [True, True]
            finally:
                await adapter.close()
        await env.driver.finalize()
        facts, _ = await read_all(env.adapter, cursor)
        assert [(f.kind, f.id, f.tx_hash) for f in facts] == [
            (FactKind.MESSAGE_SENT, sent_id, submission.tx_hash)
        ]

    run(body)
