"""AuditService over real gRPC servers on 127.0.0.1 with real certificates and real SQLite
stores: who may call it (auditors; a peer TraceMessage only; never a developer), what an
auditor may not call (send, forward, acknowledge), queries, following, checkpoints, exports
that verify offline, and a trace across two gateways whose peer part is verified against the
peer's pinned audit key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from protos.interop.v1 import (
    audit_pb2,
    audit_pb2_grpc,
    interop_pb2,
    interop_pb2_grpc,
    relay_pb2,
    relay_pb2_grpc,
)
from relay.audit import AuditKey, AuditLog, CheckpointPolicy, verify_export
from relay.grpc.audit_service import AuditServicer, PeerAudit
from relay.grpc.auth import (
    AUDIT_SERVICE,
    SERVICE_KINDS,
    AuthPolicy,
    CertificateBinding,
    Principal,
    PrincipalKind,
    TokenBinding,
    token_sha256,
)
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.grpc.server import GatewayServer, ServerTls, start_server
from relay.sqlite_store import SqliteStore
from relay.store import Hop, RejectedAttempt, Role, State, Transition
from relay.tls import fingerprint
from tests.integration.grpc.env import LIMITS, FakeHandler, FakeInterop, Material, _free_port
from verifier.messages import Message

pytestmark = pytest.mark.integration

TIMEOUT = 20.0
ID = (7).to_bytes(32, "big")
OTHER = (8).to_bytes(32, "big")


def _msg(nonce: int) -> Message:
    return Message(
        src_chain="chain-a",
        src_gateway=b"\x01" * 20,
        dst_chain="chain-b",
        nonce=nonce,
        sender=b"\x02" * 20,
        receiver=b"\x03" * 20,
        payload=b"x",
        timeout=10_000,
    )


@dataclass
class Gateway:
    name: str
    store: SqliteStore
    key: AuditKey
    servicer: AuditServicer
    server: GatewayServer
    target: str
    token_target: str


@dataclass
class Pair:
    a: Gateway
    """gateway-a: source of chain-a, certificate material.peer; its auditor calls it."""
    b: Gateway
    """gateway-b: destination (chain-b), certificate material.server; pins gateway-a as peer."""
    link: GrpcPeerLink
    material: Material


async def _gateway(
    name: str,
    tmp: Path,
    material: Material,
    *,
    cert: tuple[bytes, bytes],
    peer_cert: bytes,
    peer_name: str,
    peers: list[PeerAudit],
    key: AuditKey,
) -> Gateway:
    store = SqliteStore(tmp / name, audit_log=AuditLog(name, key, CheckpointPolicy(1000, 3600)))
    await store.open()
    servicer = AuditServicer(store, gateway=name, key=key, peers=peers, follow_poll=0.05)
    auth = AuthPolicy(
        certificates=[
            CertificateBinding(fingerprint(peer_cert), Principal(PrincipalKind.PEER, peer_name)),
            CertificateBinding(
                fingerprint(material.developer[0]), Principal(PrincipalKind.DEVELOPER, "alice")
            ),
        ],
        tokens=[
            TokenBinding(token_sha256(material.token), Principal(PrincipalKind.DEVELOPER, "bob")),
            TokenBinding(
                token_sha256(material.auditor_token), Principal(PrincipalKind.AUDITOR, "carol")
            ),
        ],
        client_ca_pems=[material.ca[0], material.peer_ca[0]],
        limits=LIMITS,
        service_kinds={
            **SERVICE_KINDS,
            AUDIT_SERVICE: frozenset({PrincipalKind.AUDITOR, PrincipalKind.PEER}),
        },
    )
    port, token_port = _free_port(), _free_port()
    server = await start_server(
        listen=f"127.0.0.1:{port}",
        token_listen=f"127.0.0.1:{token_port}",
        tls=ServerTls(cert[0], cert[1], [material.ca[0], material.peer_ca[0]]),
        auth=auth,
        relay_handler=FakeHandler(),
        interop_servicer=FakeInterop(),  # type: ignore[abstract]
        audit_servicer=servicer,
        max_concurrent_rpcs=64,
    )
    return Gateway(
        name, store, key, servicer, server, f"127.0.0.1:{port}", f"127.0.0.1:{token_port}"
    )


async def _stop(g: Gateway) -> None:
    g.servicer.close()
    await g.server.stop(None)
    await g.store.close()


async def _no_channel() -> grpc.aio.Channel:
    raise AssertionError("gateway-b never traces on gateway-a in these tests")


@pytest_asyncio.fixture(name="pair")
async def _pair(material: Material, tmp_path: Path) -> AsyncIterator[Pair]:
    key_a, key_b = AuditKey.generate(), AuditKey.generate()
    b = await _gateway(
        "gateway-b",
        tmp_path,
        material,
        cert=material.server,
        peer_cert=material.peer[0],
        peer_name="gateway-a",
        peers=[PeerAudit("gateway-a", ("chain-a",), None, _no_channel)],
        key=key_b,
    )
    link = GrpcPeerLink(
        "gateway-b",
        b.target,
        PeerTls(
            client_cert_pem=material.peer[0],
            client_key_pem=material.peer[1],
            server_ca_pem=material.ca[0],
            server_name="localhost",
            server_sha256=fingerprint(material.server[0]),
        ),
    )
    a = await _gateway(
        "gateway-a",
        tmp_path,
        material,
        cert=material.peer,
        peer_cert=material.server[0],
        peer_name="gateway-b",
        peers=[PeerAudit("gateway-b", ("chain-b",), key_b.public_key, link.channel)],
        key=key_a,
    )
    # One message's life: observed, verified, forwarded at A; accepted, delivered at B.
    await a.store.transition(
        Transition(ID, Role.SOURCE, State.OBSERVED, None, 100.0, message=_msg(7))
    )
    await a.store.transition(Transition(OTHER, Role.SOURCE, State.OBSERVED, None, 100.5, _msg(8)))
    await a.store.transition(
        Transition(ID, Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), 101.0)
    )
    await a.store.transition(
        Transition(ID, Role.SOURCE, State.FORWARDED, frozenset({State.VERIFIED}), 102.0)
    )
    await b.store.record_rejected(
        RejectedAttempt(ID, Role.DESTINATION, Hop.MESSAGE_SENT, "sig", "bad", "gateway-x", 101.5)
    )
    await b.store.transition(
        Transition(ID, Role.DESTINATION, State.VERIFIED, None, 102.0, message=_msg(7))
    )
    await b.store.transition(
        Transition(
            ID, Role.DESTINATION, State.DELIVERY_SUBMITTED, frozenset({State.VERIFIED}), 103.0
        )
    )
    try:
        yield Pair(a, b, link, material)
    finally:
        await link.close()
        await _stop(a)
        await _stop(b)


def _channel(
    g: Gateway, material: Material, cert: tuple[bytes, bytes] | None = None
) -> grpc.aio.Channel:
    ca = material.peer_ca[0] if g.name == "gateway-a" else material.ca[0]
    key, chain = (cert[1], cert[0]) if cert else (None, None)
    return grpc.aio.secure_channel(
        g.target if cert else g.token_target,
        grpc.ssl_channel_credentials(
            root_certificates=ca, private_key=key, certificate_chain=chain
        ),
        options=[("grpc.ssl_target_name_override", "localhost")],
    )


def _bearer(token: str) -> tuple[tuple[str, str]]:
    return (("authorization", f"Bearer {token}"),)


async def _code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    code: grpc.StatusCode = caught.value.code()
    return code


async def test_an_auditor_queries_by_message_kind_and_page(pair: Pair) -> None:
    m = pair.material
    async with _channel(pair.a, m) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        auth = _bearer(m.auditor_token)
        mine = await stub.QueryRecords(
            audit_pb2.QueryRecordsRequest(message_id=ID), metadata=auth, timeout=TIMEOUT
        )
        assert [r.kind for r in mine.records] == [
            audit_pb2.AUDIT_KIND_FACT_OBSERVED,
            audit_pb2.AUDIT_KIND_EVIDENCE_VERIFIED,
            audit_pb2.AUDIT_KIND_FORWARDED,
        ]
        assert [r.seq for r in mine.records] == [1, 3, 4]
        assert all(r.message_id == ID for r in mine.records)
        assert mine.records[0].state == interop_pb2.MESSAGE_STATE_OBSERVED
        assert not mine.HasField("checkpoint")  # 4 records, checkpoint_every 1000
        page = await stub.QueryRecords(
            audit_pb2.QueryRecordsRequest(page_size=3), metadata=auth, timeout=TIMEOUT
        )
        assert [r.seq for r in page.records] == [1, 2, 3]
        rest = await stub.QueryRecords(
            audit_pb2.QueryRecordsRequest(page_size=3, page_token=page.next_page_token),
            metadata=auth,
            timeout=TIMEOUT,
        )
        assert ([r.seq for r in rest.records], rest.next_page_token) == ([4], "")
        kind = await stub.QueryRecords(
            audit_pb2.QueryRecordsRequest(kind=audit_pb2.AUDIT_KIND_FORWARDED),
            metadata=auth,
            timeout=TIMEOUT,
        )
        assert [r.seq for r in kind.records] == [4]
        bad = stub.QueryRecords(
            audit_pb2.QueryRecordsRequest(message_id=b"short"), metadata=auth, timeout=TIMEOUT
        )
        assert await _code(bad) is grpc.StatusCode.INVALID_ARGUMENT


async def test_a_developer_cannot_read_the_audit_trail(pair: Pair) -> None:
    m = pair.material
    async with _channel(pair.a, m) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        for call in (
            stub.QueryRecords(audit_pb2.QueryRecordsRequest(), metadata=_bearer(m.token)),
            stub.TraceMessage(audit_pb2.TraceMessageRequest(id=ID), metadata=_bearer(m.token)),
        ):
            assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED
        follow = stub.FollowRecords(audit_pb2.FollowRecordsRequest(), metadata=_bearer(m.token))
        assert await _code(follow.read()) is grpc.StatusCode.PERMISSION_DENIED
    async with _channel(pair.a, m, m.developer) as ch:  # a pinned developer certificate
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        call = stub.QueryRecords(audit_pb2.QueryRecordsRequest(), timeout=TIMEOUT)
        assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED


async def test_an_auditor_cannot_send_forward_or_acknowledge(pair: Pair) -> None:
    m = pair.material
    auth = _bearer(m.auditor_token)
    async with _channel(pair.a, m) as ch:
        api = interop_pb2_grpc.InteropServiceStub(ch)
        relay = relay_pb2_grpc.RelayServiceStub(ch)
        for call in (
            api.SendMessage(interop_pb2.SendMessageRequest(), metadata=auth, timeout=TIMEOUT),
            api.ListChains(interop_pb2.ListChainsRequest(), metadata=auth, timeout=TIMEOUT),
            relay.Forward(relay_pb2.ForwardRequest(), metadata=auth, timeout=TIMEOUT),
            relay.Acknowledge(relay_pb2.AcknowledgeRequest(), metadata=auth, timeout=TIMEOUT),
        ):
            assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED
    # On the peers' port too, with a peer's certificate: the auditor token decides.
    async with _channel(pair.b, m, m.peer) as ch:
        relay = relay_pb2_grpc.RelayServiceStub(ch)
        for call in (
            relay.Forward(relay_pb2.ForwardRequest(), metadata=auth, timeout=TIMEOUT),
            relay.Acknowledge(relay_pb2.AcknowledgeRequest(), metadata=auth, timeout=TIMEOUT),
        ):
            assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED


async def test_a_peer_may_trace_only_and_gets_the_local_part_alone(pair: Pair) -> None:
    m = pair.material
    async with _channel(pair.b, m, m.peer) as ch:  # gateway-a's certificate at gateway-b
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        for call in (
            stub.QueryRecords(audit_pb2.QueryRecordsRequest(), timeout=TIMEOUT),
            stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), timeout=TIMEOUT),
        ):
            assert await _code(call) is grpc.StatusCode.PERMISSION_DENIED
        export = stub.ExportRecords(audit_pb2.ExportRecordsRequest(), timeout=TIMEOUT)
        assert await _code(export.read()) is grpc.StatusCode.PERMISSION_DENIED
        trace = await stub.TraceMessage(audit_pb2.TraceMessageRequest(id=ID), timeout=TIMEOUT)
        other = (5).to_bytes(32, "big")
        await pair.b.store.transition(
            Transition(
                other,
                Role.DESTINATION,
                State.VERIFIED,
                None,
                104.0,
                message=Message(
                    "chain-c", b"\x01" * 20, "chain-b", 1, b"\x02" * 20, b"\x03" * 20, b"", 9
                ),
            )
        )
        foreign = stub.TraceMessage(audit_pb2.TraceMessageRequest(id=other), timeout=TIMEOUT)
        assert await _code(foreign) is grpc.StatusCode.NOT_FOUND  # not a chain gateway-a serves
    [part] = trace.parts
    assert (part.gateway, part.local, part.verified) == ("gateway-b", True, True)
    assert [r.kind for r in part.records] == [
        audit_pb2.AUDIT_KIND_ATTEMPT_REJECTED,
        audit_pb2.AUDIT_KIND_ACCEPTED_FROM_PEER,
        audit_pb2.AUDIT_KIND_DELIVERY_SUBMITTED,
    ]


async def test_a_trace_shows_both_gateways_verified(pair: Pair) -> None:
    m = pair.material
    async with _channel(pair.a, m) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        trace = await stub.TraceMessage(
            audit_pb2.TraceMessageRequest(id=ID), metadata=_bearer(m.auditor_token), timeout=TIMEOUT
        )
        missing = stub.TraceMessage(
            audit_pb2.TraceMessageRequest(id=(9).to_bytes(32, "big")),
            metadata=_bearer(m.auditor_token),
            timeout=TIMEOUT,
        )
        assert await _code(missing) is grpc.StatusCode.NOT_FOUND
    own, peer = trace.parts
    assert (own.gateway, own.local, own.verified, own.problem) == ("gateway-a", True, True, "")
    assert (peer.gateway, peer.local, peer.verified, peer.problem) == (
        "gateway-b",
        False,
        True,
        "",
    )
    assert [r.kind for r in own.records] == [
        audit_pb2.AUDIT_KIND_FACT_OBSERVED,
        audit_pb2.AUDIT_KIND_EVIDENCE_VERIFIED,
        audit_pb2.AUDIT_KIND_FORWARDED,
    ]
    assert len(peer.records) == 3
    # A's segment runs through the other message's record (seq 2) to the signed head.
    assert len(own.segment_json) == 4
    assert own.checkpoint.seq == 4
    assert peer.public_key == bytes.fromhex(pair.b.key.public_hex)


async def test_a_peer_part_signed_by_another_key_is_not_verified(
    pair: Pair, material: Material
) -> None:
    """gateway-a pins a different key for gateway-b: B's checkpoint does not verify."""
    wrong = AuditKey.generate()
    pair.a.servicer._peers = (  # the configured pin, swapped for this test
        PeerAudit("gateway-b", ("chain-b",), wrong.public_key, pair.link.channel),
    )
    async with _channel(pair.a, material) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        trace = await stub.TraceMessage(
            audit_pb2.TraceMessageRequest(id=ID),
            metadata=_bearer(material.auditor_token),
            timeout=TIMEOUT,
        )
    peer = trace.parts[1]
    assert not peer.verified
    assert "signature" in peer.problem
    assert peer.public_key == bytes.fromhex(wrong.public_hex)


async def test_follow_streams_old_records_then_new_ones(pair: Pair) -> None:
    m = pair.material
    async with _channel(pair.a, m) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        call = stub.FollowRecords(
            audit_pb2.FollowRecordsRequest(from_seq=3), metadata=_bearer(m.auditor_token)
        )
        first: list[Any] = [await call.read(), await call.read()]
        assert [r.seq for r in first] == [3, 4]
        await pair.a.store.transition(
            Transition(OTHER, Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), 103.0)
        )
        live: Any = await asyncio.wait_for(call.read(), TIMEOUT)
        assert (live.seq, live.message_id) == (5, OTHER)
        call.cancel()


async def test_checkpoint_and_export_verify_offline(pair: Pair) -> None:
    m = pair.material
    auth = _bearer(m.auditor_token)
    async with _channel(pair.b, m) as ch:
        stub = audit_pb2_grpc.AuditServiceStub(ch)
        none = stub.GetCheckpoint(audit_pb2.GetCheckpointRequest(), metadata=auth)
        assert await _code(none) is grpc.StatusCode.NOT_FOUND
        assert await pair.b.store.audit_checkpoint_due(100_000.0) is not None  # the timer's
        cp = await stub.GetCheckpoint(
            audit_pb2.GetCheckpointRequest(), metadata=auth, timeout=TIMEOUT
        )
        assert (cp.gateway, cp.seq, cp.public_key) == (
            "gateway-b",
            3,
            bytes.fromhex(pair.b.key.public_hex),
        )
        lines = [
            line.line
            async for line in stub.ExportRecords(
                audit_pb2.ExportRecordsRequest(), metadata=auth, timeout=TIMEOUT
            )
        ]
    report = verify_export(lines, pair.b.key.public_key)
    assert report.ok, report.detail
    assert (report.records, report.checkpoints) == (3, 1)
