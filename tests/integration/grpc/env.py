"""A real grpc.aio server on 127.0.0.1 with real certificates, and a fake InboundHandler."""

from __future__ import annotations

import asyncio
import secrets
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import grpc.aio
import pytest
import pytest_asyncio

from protos.interop.v1 import interop_pb2, interop_pb2_grpc
from relay.grpc.auth import (
    AuthPolicy,
    CertificateBinding,
    Limits,
    Principal,
    PrincipalKind,
    TokenBinding,
    current_principal,
    token_sha256,
)
from relay.grpc.client import GrpcPeerLink, PeerTls
from relay.grpc.server import GatewayServer, ServerTls, start_server
from relay.links import AckItem, ForwardItem, Verdict, VerdictKind
from relay.tls import fingerprint, issue_cert, make_ca

Pair = tuple[bytes, bytes]


@dataclass(frozen=True)
class Material:
    """Gateway B serves; gateway A is its peer with its own CA (as `gateway init` makes them)."""

    ca: Pair
    server: Pair
    peer_ca: Pair
    peer: Pair
    """Pinned as peer ``gateway-a``."""
    stranger: Pair
    """Issued by the peer's CA, trusted at the TLS level, pinned for no one."""
    developer: Pair
    """Pinned as developer ``alice-cert``."""
    rogue: Pair
    """Pinned as peer ``gateway-r`` but issued by a CA the server does not trust."""
    token: str
    auditor_token: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def material() -> Material:
    ca = make_ca("gateway-b CA")
    peer_ca = make_ca("gateway-a CA")
    rogue_ca = make_ca("rogue CA")
    return Material(
        ca=ca,
        server=issue_cert(*ca, "gateway-b"),
        peer_ca=peer_ca,
        peer=issue_cert(*peer_ca, "gateway-a"),
        stranger=issue_cert(*peer_ca, "gateway-x"),
        developer=issue_cert(*ca, "alice"),
        rogue=issue_cert(*rogue_ca, "gateway-r"),
        token=secrets.token_urlsafe(24),
        auditor_token=secrets.token_urlsafe(24),
    )


LIMITS = Limits(max_concurrent=32, rate_per_second=100.0, burst=200)


def policy(material: Material, limits: Limits | None = None) -> AuthPolicy:
    return AuthPolicy(
        certificates=[
            CertificateBinding(
                fingerprint(material.peer[0]), Principal(PrincipalKind.PEER, "gateway-a")
            ),
            CertificateBinding(
                fingerprint(material.developer[0]),
                Principal(PrincipalKind.DEVELOPER, "alice-cert"),
            ),
            CertificateBinding(
                fingerprint(material.rogue[0]), Principal(PrincipalKind.PEER, "gateway-r")
            ),
        ],
        tokens=[
            TokenBinding(token_sha256(material.token), Principal(PrincipalKind.DEVELOPER, "bob")),
            TokenBinding(
                token_sha256(material.auditor_token), Principal(PrincipalKind.AUDITOR, "carol")
            ),
        ],
        client_ca_pems=[material.ca[0], material.peer_ca[0]],
        limits=limits or LIMITS,
    )


class RetryableFailure(Exception):
    retryable = True


@dataclass
class FakeHandler:
    """Answers by the id's first byte mod 3 (accepted, rejected, retry) and records calls."""

    calls: list[tuple[str, str, list[Any]]] = field(default_factory=list)
    block: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    fail: Exception | None = None

    @staticmethod
    def verdict(item_id: bytes) -> Verdict:
        kind = [VerdictKind.ACCEPTED, VerdictKind.REJECTED, VerdictKind.RETRY][item_id[0] % 3]
        if kind is VerdictKind.REJECTED:
            return Verdict(item_id, kind, reason="receipt proof does not verify", check="proof")
        if kind is VerdictKind.RETRY:
            return Verdict(item_id, kind, reason="not yet final")
        return Verdict(item_id, kind)

    async def _handle(self, call: str, peer: str, items: Sequence[Any]) -> Sequence[Verdict]:
        self.calls.append((call, peer, list(items)))
        if self.fail is not None:
            raise self.fail
        if self.block is not None:
            self.entered.set()
            await self.block.wait()
        return [self.verdict(i.id) for i in items]

    async def handle_forward(self, peer: str, items: Sequence[ForwardItem]) -> Sequence[Verdict]:
        return await self._handle("forward", peer, items)

    async def handle_acknowledge(self, peer: str, items: Sequence[AckItem]) -> Sequence[Verdict]:
        return await self._handle("acknowledge", peer, items)


class FakeInterop(interop_pb2_grpc.InteropServiceServicer):
    """ListChains and WatchMessages: enough to tell whether a developer call got through, for a
    unary and a server-streaming method, and who the interceptor said was calling."""

    async def GetChainStatus(  # noqa: N802 - the gRPC method name
        self,
        request: interop_pb2.GetChainStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> interop_pb2.ChainStatus:
        """Fails the way a servicer bug or a busy store would, unhandled."""
        if request.chain == "busy":
            raise RetryableFailure("store locked at /var/lib/secret")
        raise RuntimeError("bug near /var/lib/secret")

    async def WatchMessages(  # noqa: N802 - the gRPC method name
        self,
        request: interop_pb2.WatchMessagesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[interop_pb2.StatusChange]:
        principal = current_principal.get()
        for sequence in range(request.from_sequence + 1, request.from_sequence + 3):
            yield interop_pb2.StatusChange(
                sequence=sequence,
                src_chain=principal.name if principal else "",
                state=interop_pb2.MESSAGE_STATE_OBSERVED,
            )

    async def ListChains(  # noqa: N802 - the gRPC method name
        self, request: interop_pb2.ListChainsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> interop_pb2.ListChainsResponse:
        return interop_pb2.ListChainsResponse(
            chains=[interop_pb2.ChainStatus(chain="anvil-local", family="evm", local=True)]
        )


@dataclass
class Running:
    server: GatewayServer
    target: str
    """The mutual-TLS port (client certificate required)."""
    token_target: str
    """The TLS port for bearer tokens (no client certificate asked for)."""
    handler: FakeHandler
    material: Material

    def channel(
        self,
        cert: Pair | None = None,
        *,
        max_bytes: int | None = None,
        target: str | None = None,
    ) -> grpc.aio.Channel:
        """To the mutual-TLS port when presenting a certificate, else to the token port."""
        key, chain = (cert[1], cert[0]) if cert else (None, None)
        options: list[tuple[str, Any]] = [("grpc.ssl_target_name_override", "localhost")]
        if max_bytes is not None:
            options += [
                ("grpc.max_send_message_length", max_bytes),
                ("grpc.max_receive_message_length", max_bytes),
            ]
        return grpc.aio.secure_channel(
            target or (self.target if cert else self.token_target),
            grpc.ssl_channel_credentials(
                root_certificates=self.material.ca[0], private_key=key, certificate_chain=chain
            ),
            options=options,
        )

    def link(self, **kwargs: Any) -> GrpcPeerLink:
        return GrpcPeerLink(
            "gateway-b",
            self.target,
            PeerTls(
                client_cert_pem=self.material.peer[0],
                client_key_pem=self.material.peer[1],
                server_ca_pem=self.material.ca[0],
                server_name="localhost",
                server_sha256=fingerprint(self.material.server[0]),
            ),
            **kwargs,
        )


async def serve(
    material: Material, *, server_pair: Pair | None = None, port: int | None = None, **kwargs: Any
) -> Running:
    """``server_pair`` replaces the server's certificate and key; ``port`` its mutual-TLS port."""
    handler = FakeHandler()
    cert, key = server_pair or material.server
    port, token_port = port or _free_port(), _free_port()
    server = await start_server(
        listen=f"127.0.0.1:{port}",
        token_listen=f"127.0.0.1:{token_port}",
        tls=ServerTls(
            cert_pem=cert,
            key_pem=key,
            client_ca_pems=[material.ca[0], material.peer_ca[0]],
        ),
        auth=policy(material, kwargs.pop("limits", None)),
        relay_handler=handler,
        interop_servicer=FakeInterop(),  # type: ignore[abstract]
        max_concurrent_rpcs=kwargs.pop("max_concurrent_rpcs", 256),
        **kwargs,
    )
    return Running(server, f"127.0.0.1:{port}", f"127.0.0.1:{token_port}", handler, material)


@pytest_asyncio.fixture(scope="module")
async def running(material: Material) -> AsyncIterator[Running]:
    r = await serve(material, max_batch_items=5)
    yield r
    await r.server.stop(None)
