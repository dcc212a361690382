"""Attacks from the gRPC layer's review (issue 8), each performed against a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.interop.v1 import relay_pb2, relay_pb2_grpc
from relay.grpc.auth import UNPARSABLE_REQUEST
from relay.grpc.client import PeerPinMismatch
from relay.links import LinkUnavailable, VerdictKind
from relay.tls import fingerprint, issue_cert
from tests.integration.grpc.env import Material, Running, serve
from tests.integration.grpc.test_relay import fwd

pytestmark = pytest.mark.integration

TIMEOUT = 20.0
SMALL_LIMIT = 64 * 1024
"""The receive limit of the `small` server: a body the server read would exceed it."""
LIST_CHAINS = "/interop.v1.InteropService/ListChains"
FORWARD = "/interop.v1.RelayService/Forward"


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def raw_call(
    channel: grpc.aio.Channel, method: str, body: bytes, **kwargs: Any
) -> grpc.aio.AioRpcError:
    """Send ``body`` as the request bytes, unparsed; the call must fail."""
    call = channel.unary_unary(method, None, None)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call(body, timeout=TIMEOUT, **kwargs)
    return caught.value


@pytest_asyncio.fixture(scope="module")
async def small(material: Material) -> AsyncIterator[Running]:
    """A server whose receive limit is 64 KiB: a refusal that comes before the body is read
    says UNAUTHENTICATED; one that comes after says RESOURCE_EXHAUSTED (message too large)."""
    r = await serve(material, max_message_bytes=SMALL_LIMIT)
    yield r
    await r.server.stop(None)


# --- finding 1: nothing is read or parsed for a caller without credentials -----------------


async def test_no_credentials_on_the_token_port_is_refused_before_the_body_is_read(
    small: Running,
) -> None:
    big = b"\x0a" + b"\xff" * (4 * SMALL_LIMIT)
    async with small.channel() as channel:
        for method in (LIST_CHAINS, FORWARD):
            error = await raw_call(channel, method, big)
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED, error.details()
            assert "no credentials" in (error.details() or "")


async def test_a_wrong_token_is_refused_before_the_body_is_read(small: Running) -> None:
    big = b"\xff" * (4 * SMALL_LIMIT)
    async with small.channel() as channel:
        error = await raw_call(channel, LIST_CHAINS, big, metadata=bearer("not-a-token"))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED
        assert error.details() == "unknown bearer token"
    # On the mutual-TLS port a token decides too, so it is checked before the body as well.
    async with small.channel(small.material.peer) as channel:
        error = await raw_call(channel, FORWARD, big, metadata=bearer("not-a-token"))
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_a_known_token_for_the_wrong_service_is_refused_before_the_body_is_read(
    small: Running,
) -> None:
    big = b"\xff" * (4 * SMALL_LIMIT)
    async with small.channel(small.material.developer) as channel:
        error = await raw_call(channel, FORWARD, big, metadata=bearer(small.material.token))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert small.handler.calls == []


async def test_an_unpinned_certificate_is_refused_before_the_body_is_read(small: Running) -> None:
    """The mutual-TLS port without a token: the certificate decides, also before the body."""
    big = b"\xff" * (4 * SMALL_LIMIT)
    async with small.channel(small.material.stranger) as channel:
        error = await raw_call(channel, FORWARD, big)
        assert error.code() is grpc.StatusCode.UNAUTHENTICATED, error.details()
        assert "not configured" in (error.details() or "")
    async with small.channel(small.material.developer) as channel:
        error = await raw_call(channel, FORWARD, big)
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error.details()
    async with small.channel(small.material.peer) as channel:
        error = await raw_call(channel, LIST_CHAINS, big)
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert small.handler.calls == []


async def test_garbage_without_credentials_leaks_no_parser_error(running: Running) -> None:
    """The reviewer's proof: this answered UNKNOWN with ``DecodeError: Error parsing ...``."""
    async with running.channel() as channel:
        for method in (LIST_CHAINS, FORWARD):
            error = await raw_call(channel, method, b"\xff\xff\xff\xff")
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "rror" not in (error.details() or "")


async def test_garbage_from_an_authenticated_caller_is_invalid_argument_fixed_text(
    running: Running,
) -> None:
    garbage = b"\xff\xff\xff\xff"
    async with running.channel() as channel:
        error = await raw_call(
            channel, LIST_CHAINS, garbage, metadata=bearer(running.material.token)
        )
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            UNPARSABLE_REQUEST,
        )
    async with running.channel(running.material.peer) as channel:
        error = await raw_call(channel, FORWARD, garbage)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            UNPARSABLE_REQUEST,
        )
    assert running.handler.calls == []
    # Public services parse through the same guard.
    async with running.channel() as channel:
        error = await raw_call(channel, "/grpc.health.v1.Health/Check", garbage)
        assert (error.code(), error.details()) == (
            grpc.StatusCode.INVALID_ARGUMENT,
            UNPARSABLE_REQUEST,
        )


async def test_small_methods_refuse_large_requests_before_parsing(running: Running) -> None:
    """gRPC's receive limit is per server and must fit a bundle; other methods get 128 KiB."""
    body = b"\x0a\x80\x80\x10" + b"a" * (256 * 1024)  # field 1, 256 KiB: would parse
    async with running.channel() as channel:
        error = await raw_call(channel, LIST_CHAINS, body, metadata=bearer(running.material.token))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "at most 131072 bytes" in (error.details() or "")


async def test_relay_service_is_not_served_on_the_token_port(running: Running) -> None:
    async with running.channel() as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        answers = [a async for a in stub.ServerReflectionInfo(iter([request]), timeout=TIMEOUT)]
        names = {s.name for s in answers[0].list_services_response.service}
        assert "interop.v1.InteropService" in names
        assert "interop.v1.RelayService" not in names
        # Even a principal the policy would let in finds no RelayService there.
        error = await raw_call(channel, FORWARD, b"", metadata=bearer(running.material.token))
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert running.handler.calls == []


async def test_the_server_bounds_calls_in_flight(material: Material) -> None:
    """maximum_concurrent_rpcs: beyond it gRPC refuses at once, whoever calls."""
    r = await serve(material, max_concurrent_rpcs=1)
    r.handler.block = asyncio.Event()
    try:
        async with r.channel(material.peer) as channel:
            stub = relay_pb2_grpc.RelayServiceStub(channel)
            first = asyncio.ensure_future(
                stub.Forward(relay_pb2.ForwardRequest(items=[_good_item()]), timeout=TIMEOUT)
            )
            await r.handler.entered.wait()
            async with r.channel(material.developer) as other:
                error = await raw_call(other, LIST_CHAINS, b"")
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            r.handler.block.set()
            assert len((await first).verdicts) == 1
    finally:
        await r.server.stop(None)


# --- finding 2: outbound links accept only the pinned certificate -------------------------


@pytest.fixture(scope="module")
def impostor_pair(material: Material) -> tuple[bytes, bytes]:
    """Same CA and names (localhost, 127.0.0.1) as gateway-b's: TLS alone would accept it."""
    return issue_cert(*material.ca, "gateway-b")


async def test_an_impostor_with_a_certificate_from_the_same_ca_is_refused(
    material: Material, impostor_pair: tuple[bytes, bytes]
) -> None:
    impostor = await serve(material, server_pair=impostor_pair)
    link = impostor.link()  # pinned to the real gateway-b certificate
    try:
        with pytest.raises(LinkUnavailable) as caught:
            await link.forward([fwd(3)])
    finally:
        await link.close()
        await impostor.server.stop(None)
    assert isinstance(caught.value, PeerPinMismatch)
    assert "pin mismatch" in str(caught.value)
    assert caught.value.presented == fingerprint(impostor_pair[0])
    assert impostor.handler.calls == []


async def test_a_reconnection_to_an_impostor_is_refused_by_the_channel(
    material: Material, impostor_pair: tuple[bytes, bytes]
) -> None:
    """The pin is checked once, then gRPC trusts only that certificate: when the peer's
    address is taken over after the link connected, gRPC's own handshake refuses."""
    real = await serve(material)
    port = int(real.target.rpartition(":")[2])
    link = real.link()
    impostor: Running | None = None
    try:
        first = await link.forward([fwd(3)])
        assert first[0].kind is VerdictKind.ACCEPTED
        await real.server.stop(None)
        impostor = await serve(material, server_pair=impostor_pair, port=port)
        with pytest.raises(LinkUnavailable):
            await link.forward([fwd(3)])
    finally:
        await link.close()
        await real.server.stop(None)
        if impostor is not None:
            await impostor.server.stop(None)
    assert impostor is not None
    assert impostor.handler.calls == []


def _good_item() -> relay_pb2.ForwardItem:
    from tests.integration.grpc.test_relay import forward_item  # noqa: PLC0415

    return forward_item(3)
