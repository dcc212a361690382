"""Who may call what: credentials, services, limits, and what stays out of logs and errors."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from structlog.testing import capture_logs

from protos.interop.v1 import interop_pb2, interop_pb2_grpc, relay_pb2, relay_pb2_grpc
from relay.grpc.auth import Limits
from tests.integration.grpc.env import Material, Running, serve

pytestmark = pytest.mark.integration

TIMEOUT = 20.0


def bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def forward(channel: grpc.aio.Channel, **kwargs: Any) -> relay_pb2.ForwardResponse:
    stub = relay_pb2_grpc.RelayServiceStub(channel)
    return await stub.Forward(relay_pb2.ForwardRequest(), timeout=TIMEOUT, **kwargs)


async def list_chains(channel: grpc.aio.Channel, **kwargs: Any) -> interop_pb2.ListChainsResponse:
    stub = interop_pb2_grpc.InteropServiceStub(channel)
    return await stub.ListChains(interop_pb2.ListChainsRequest(), timeout=TIMEOUT, **kwargs)


async def refused(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


async def test_no_credentials_is_unauthenticated(running: Running) -> None:
    async with running.channel() as channel:
        for call in (forward(channel), list_chains(channel)):
            error = await refused(call)
            assert error.code() is grpc.StatusCode.UNAUTHENTICATED
            assert "no credentials" in (error.details() or "")


async def test_no_certificate_on_the_mutual_tls_port_fails_the_handshake(
    running: Running,
) -> None:
    async with running.channel(target=running.target) as channel:
        error = await refused(forward(channel))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert running.handler.calls == []


async def test_peer_certificate_on_the_token_port_is_not_asked_for(running: Running) -> None:
    """The token port requests no certificate, so a peer there has no credentials."""
    async with running.channel(running.material.peer, target=running.token_target) as channel:
        error = await refused(forward(channel))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_wrong_token_is_unauthenticated_and_never_logged(material: Material) -> None:
    """On a fresh server, so that its first refusal is logged (refusal logs are rate-bounded)."""
    r = await serve(material)
    wrong = "not-the-token-" + material.token[::-1]
    try:
        async with r.channel() as channel:
            with capture_logs() as logs:
                error = await refused(list_chains(channel, metadata=bearer(wrong)))
                await list_chains(channel, metadata=bearer(material.token))
    finally:
        await r.server.stop(None)
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert error.details() == "unknown bearer token"
    assert [e["event"] for e in logs if e["event"] == "grpc_call_refused"] == ["grpc_call_refused"]
    assert wrong not in repr(logs)
    assert material.token not in repr(logs)


async def test_malformed_authorization_is_unauthenticated(running: Running) -> None:
    async with running.channel() as channel:
        error = await refused(
            list_chains(channel, metadata=(("authorization", running.material.token),))
        )
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in (error.details() or "")


async def test_developer_token_reaches_the_developer_api(running: Running) -> None:
    async with running.channel() as channel:
        answer = await list_chains(channel, metadata=bearer(running.material.token))
    assert [c.chain for c in answer.chains] == ["anvil-local"]


async def test_streaming_calls_are_guarded_too(running: Running) -> None:
    request = interop_pb2.WatchMessagesRequest(from_sequence=41)
    async with running.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        changes = [
            c
            async for c in stub.WatchMessages(
                request, timeout=TIMEOUT, metadata=bearer(running.material.token)
            )
        ]
        assert [(c.sequence, c.src_chain) for c in changes] == [(42, "bob"), (43, "bob")]
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.WatchMessages(request, timeout=TIMEOUT):
                pass
        assert caught.value.code() is grpc.StatusCode.UNAUTHENTICATED
    async with running.channel(running.material.peer) as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.WatchMessages(request, timeout=TIMEOUT):
                pass
        assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED


async def test_unhandled_servicer_errors_become_fixed_messages(running: Running) -> None:
    """An exception a servicer lets escape never reaches the caller: no type, text or trace."""
    async with running.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        answers = {}
        for chain in ("anvil-local", "busy"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.GetChainStatus(
                    interop_pb2.GetChainStatusRequest(chain=chain),
                    timeout=TIMEOUT,
                    metadata=bearer(running.material.token),
                )
            answers[chain] = (caught.value.code(), caught.value.details() or "")
    assert answers["anvil-local"] == (
        grpc.StatusCode.INTERNAL,
        "internal error (logged by the gateway)",
    )
    assert answers["busy"] == (grpc.StatusCode.UNAVAILABLE, "temporarily unavailable; retry later")
    # The slot was released: the same principal can still call.
    async with running.channel() as channel:
        assert (await list_chains(channel, metadata=bearer(running.material.token))).chains


async def test_developer_certificate_reaches_the_developer_api(running: Running) -> None:
    async with running.channel(running.material.developer) as channel:
        answer = await list_chains(channel)
    assert answer.chains[0].family == "evm"


async def test_unknown_peer_certificate_is_unauthenticated(running: Running) -> None:
    """Issued by a CA the server trusts, but pinned for no one."""
    async with running.channel(running.material.stranger) as channel:
        error = await refused(forward(channel))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "not configured" in (error.details() or "")
    assert running.handler.calls == []


async def test_pinned_certificate_from_an_untrusted_ca_fails_the_handshake(
    running: Running,
) -> None:
    """Pinning is not enough: the certificate must also chain to a configured CA."""
    async with running.channel(running.material.rogue) as channel:
        error = await refused(forward(channel))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    assert running.handler.calls == []


async def test_peer_calling_the_developer_api_is_permission_denied(running: Running) -> None:
    async with running.channel(running.material.peer) as channel:
        error = await refused(list_chains(channel))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "a peer may not call interop.v1.InteropService"


async def test_developer_calling_relay_service_is_permission_denied(running: Running) -> None:
    async with running.channel() as channel:
        error = await refused(forward(channel, metadata=bearer(running.material.token)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert error.details() == "a developer may not call interop.v1.RelayService"
    async with running.channel(running.material.developer) as channel:
        error = await refused(forward(channel))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    async with running.channel() as channel:
        error = await refused(forward(channel, metadata=bearer(running.material.auditor_token)))
    assert error.code() is grpc.StatusCode.PERMISSION_DENIED
    assert running.handler.calls == []


async def test_a_token_decides_over_a_certificate(running: Running) -> None:
    """A peer certificate with a wrong token is refused: the caller claimed the token's identity."""
    async with running.channel(running.material.peer) as channel:
        error = await refused(forward(channel, metadata=bearer("wrong")))
    assert error.code() is grpc.StatusCode.UNAUTHENTICATED


async def test_health_answers_without_credentials(running: Running) -> None:
    """On each port for the services it serves (the mutual-TLS handshake still wants a
    certificate from a configured CA, pinned for no one here)."""
    ports = {
        running.token_target: ("", "interop.v1.InteropService"),
        running.target: ("", "interop.v1.RelayService", "interop.v1.InteropService"),
    }
    for target, services in ports.items():
        cert = running.material.stranger if target == running.target else None
        async with running.channel(cert, target=target) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for service in services:
                answer = await stub.Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT
                )
                assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_lists_the_services_without_credentials(running: Running) -> None:
    """On the mutual-TLS port, which serves both services (the token port serves no
    RelayService: test_hardening)."""
    async with running.channel(running.material.stranger) as channel:
        stub: Any = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(
                file_containing_symbol="interop.v1.RelayService"
            ),
        ]
        answers = [a async for a in stub.ServerReflectionInfo(iter(requests), timeout=TIMEOUT)]
    names = {s.name for s in answers[0].list_services_response.service}
    assert {
        "interop.v1.RelayService",
        "interop.v1.InteropService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    } <= names
    assert answers[1].file_descriptor_response.file_descriptor_proto


async def test_concurrency_limit_per_principal(material: Material) -> None:
    r = await serve(material, limits=Limits(max_concurrent=1, rate_per_second=1000, burst=1000))
    r.handler.block = asyncio.Event()
    try:
        async with r.channel(material.peer) as channel:
            stub = relay_pb2_grpc.RelayServiceStub(channel)
            item = relay_pb2.ForwardItem(id=b"\x00" * 32)  # rejected as malformed, never handled
            first = asyncio.ensure_future(
                stub.Forward(relay_pb2.ForwardRequest(items=[_good_item()]), timeout=TIMEOUT)
            )
            await r.handler.entered.wait()
            error = await refused(
                stub.Forward(relay_pb2.ForwardRequest(items=[item]), timeout=TIMEOUT)
            )
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "in flight" in (error.details() or "")
            # Another principal has its own slots.
            async with r.channel() as other:
                assert (await list_chains(other, metadata=bearer(material.token))).chains
            r.handler.block.set()
            answer = await first
            assert len(answer.verdicts) == 1
            # The slot is free again.
            assert (
                len((await stub.Forward(relay_pb2.ForwardRequest(), timeout=TIMEOUT)).verdicts) == 0
            )
    finally:
        await r.server.stop(None)


async def test_rate_limit_per_principal(material: Material) -> None:
    r = await serve(material, limits=Limits(max_concurrent=10, rate_per_second=0.001, burst=3))
    try:
        async with r.channel() as channel:
            for _ in range(3):
                await list_chains(channel, metadata=bearer(material.token))
            error = await refused(list_chains(channel, metadata=bearer(material.token)))
            assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rate limit" in (error.details() or "")
            # The peer is a different principal with its own bucket.
            async with r.channel(material.peer) as peer_channel:
                await forward(peer_channel)
    finally:
        await r.server.stop(None)


def _good_item() -> relay_pb2.ForwardItem:
    from tests.integration.grpc.test_relay import forward_item  # noqa: PLC0415

    return forward_item(3)
