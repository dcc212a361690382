"""The demo's traffic, through the developer API only: send, follow to acknowledgement, report.

:class:`Api` is a small client of one gateway's ``InteropService`` (bearer token, the
gateway's CA). :class:`Tracker` follows messages by id (those sent through the API) or by
sender contract (those the example apps send: a ping, its pong, a notarisation), reading each
source gateway's ``ListMessages``; a message is finished when its source gateway has it
acknowledged (with its result status) or rejected.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import grpc
import grpc.aio
from eth_abi.abi import encode as abi_encode

from devnet.demo import EVM_CHAIN, FISCO_CHAIN, DemoCluster, GatewayHandle
from protos.interop.v1 import common_pb2, interop_pb2, interop_pb2_grpc

CALL_TIMEOUT: Final = 30.0
STATE = interop_pb2.MessageState
DELIVERY = common_pb2.DeliveryStatus
STATUS_NAMES: Final = {
    DELIVERY.DELIVERY_STATUS_SUCCESS: "success",
    DELIVERY.DELIVERY_STATUS_FAILED: "failed",
    DELIVERY.DELIVERY_STATUS_EXPIRED: "expired",
}


def state_name(state: int) -> str:
    return STATE.Name(state).removeprefix("MESSAGE_STATE_").lower()


class Api:
    """The developer API of one gateway, on its bearer-token port."""

    def __init__(self, handle: GatewayHandle) -> None:
        self.handle = handle
        self.channel = grpc.aio.secure_channel(
            handle.api_listen,
            grpc.ssl_channel_credentials(root_certificates=handle.ca.read_bytes()),
            options=[("grpc.ssl_target_name_override", "localhost")],
        )
        self.stub = interop_pb2_grpc.InteropServiceStub(self.channel)
        self.metadata = (("authorization", f"Bearer {handle.token}"),)

    async def close(self) -> None:
        await self.channel.close(None)

    async def wait_ready(self, timeout: float, alive: Callable[[], None]) -> None:
        """Until ListChains answers; ``alive`` raises when the gateway process has died."""
        deadline = time.monotonic() + timeout
        while True:
            alive()
            try:
                await self.stub.ListChains(
                    interop_pb2.ListChainsRequest(), metadata=self.metadata, timeout=2
                )
                return
            except grpc.aio.AioRpcError as exc:
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"gateway {self.handle.name} did not answer on {self.handle.api_listen} "
                        f"within {timeout:.0f} s: {exc.code().name} {exc.details()}"
                    ) from None
            await asyncio.sleep(0.3)

    async def send(
        self, src: str, dst: str, receiver: str, payload: bytes, timeout_seconds: int
    ) -> bytes:
        response = await self.stub.SendMessage(
            interop_pb2.SendMessageRequest(
                src_chain=src,
                dst_chain=dst,
                receiver=bytes.fromhex(receiver.removeprefix("0x")),
                payload=payload,
                timeout_seconds=timeout_seconds,
            ),
            metadata=self.metadata,
            timeout=CALL_TIMEOUT,
        )
        return bytes(response.id)

    async def get(self, mid: bytes) -> interop_pb2.MessageStatus:
        status: interop_pb2.MessageStatus = await self.stub.GetMessage(
            interop_pb2.GetMessageRequest(id=mid), metadata=self.metadata, timeout=CALL_TIMEOUT
        )
        return status

    async def list(self, **filters: Any) -> list[interop_pb2.MessageStatus]:
        """Every message matching ``filters`` (ListMessagesRequest fields), all pages."""
        items: list[interop_pb2.MessageStatus] = []
        token = ""
        while True:
            page = await self.stub.ListMessages(
                interop_pb2.ListMessagesRequest(page_size=500, page_token=token, **filters),
                metadata=self.metadata,
                timeout=CALL_TIMEOUT,
            )
            items.extend(page.items)
            token = page.next_page_token
            if not token:
                return items

    async def chain_time(self, chain: str) -> int:
        """The chain's latest block time in seconds, as this gateway sees it."""
        status = await self.stub.GetChainStatus(
            interop_pb2.GetChainStatusRequest(chain=chain), metadata=self.metadata, timeout=10
        )
        return int(status.head_time.seconds)


@dataclass
class Tracked:
    label: str
    src: str
    dst: str
    gateway: str
    """The source gateway, which sees the acknowledgement."""
    sent_at: float
    id: bytes | None = None
    sender: bytes | None = None
    """For app messages whose id the demo does not get: found by sender contract."""
    state: str = "sending"
    status: str = ""
    last_error: str = ""
    done_at: float | None = None

    @property
    def route(self) -> str:
        return f"{self.src} -> {self.dst}"

    @property
    def finished(self) -> bool:
        return self.done_at is not None

    @property
    def latency(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.sent_at

    @property
    def outcome(self) -> str:
        """acknowledged (a successful delivery), failed, expired, rejected, or pending."""
        if self.state == "rejected":
            return "rejected"
        if self.state == "acknowledged":
            return {"success": "acknowledged"}.get(self.status, self.status or "acknowledged")
        return "pending"


@dataclass
class Tracker:
    apis: dict[str, Api]
    messages: list[Tracked] = field(default_factory=list)

    def add(self, item: Tracked) -> Tracked:
        self.messages.append(item)
        return item

    @property
    def done(self) -> bool:
        return all(m.finished for m in self.messages)

    async def poll(self) -> None:
        """Refresh every unfinished message from its source gateway's ListMessages."""
        for name, api in self.apis.items():
            open_items = [m for m in self.messages if m.gateway == name and not m.finished]
            if not open_items:
                continue
            rows = await api.list(role=interop_pb2.ROLE_SOURCE)
            by_id = {bytes(r.id): r for r in rows}
            for item in open_items:
                if item.id is None and item.sender is not None:
                    item.id = _discover(item, rows, self.messages)
                row = by_id.get(item.id) if item.id is not None else None
                if row is not None:
                    self._update(item, row)

    @staticmethod
    def _update(item: Tracked, row: interop_pb2.MessageStatus) -> None:
        item.state = state_name(row.state)
        item.last_error = row.last_error
        if row.state in (STATE.MESSAGE_STATE_ACKNOWLEDGED, STATE.MESSAGE_STATE_REJECTED):
            item.status = STATUS_NAMES.get(row.result.status, "")
            item.done_at = _state_time(row) or time.time()

    def totals(self, seconds: float) -> dict[str, Any]:
        outcomes = [m.outcome for m in self.messages]
        return {
            "sent": len(self.messages),
            "acknowledged": outcomes.count("acknowledged"),
            "rejected": outcomes.count("rejected"),
            "failed": outcomes.count("failed"),
            "expired": outcomes.count("expired"),
            "pending": outcomes.count("pending"),
            "seconds": round(seconds, 1),
        }

    async def stuck_report(self) -> list[str]:
        """What is stuck: the gateways' stuck view, then every unfinished message."""
        lines: list[str] = []
        for name, api in self.apis.items():
            try:
                stuck = await api.list(stuck_only=True)
            except grpc.aio.AioRpcError as exc:
                lines.append(f"gateway {name}: the API did not answer ({exc.code().name})")
                continue
            for row in stuck:
                lines.append(
                    f"gateway {name}: 0x{bytes(row.id).hex()} {row.src_chain} -> "
                    f"{row.dst_chain} stuck at {state_name(row.state)} for "
                    f"{row.age.seconds} s after {row.attempts} attempts: "
                    f"{row.last_error or 'no error recorded'}"
                )
        for m in self.messages:
            if not m.finished:
                mid = f"0x{m.id.hex()}" if m.id else "(not observed yet)"
                lines.append(
                    f"{m.label} {mid} {m.route}: at {m.state}"
                    + (f", last error: {m.last_error}" if m.last_error else "")
                )
        return lines


def _discover(
    item: Tracked, rows: Sequence[interop_pb2.MessageStatus], known: Iterable[Tracked]
) -> bytes | None:
    """The oldest message from ``item.sender`` on its route that no other item claims."""
    taken = {m.id for m in known if m.id is not None}
    for row in sorted(rows, key=lambda r: (r.created.seconds, r.created.nanos)):
        if (
            row.HasField("message")
            and bytes(row.message.sender) == item.sender
            and row.src_chain == item.src
            and row.dst_chain == item.dst
            and bytes(row.id) not in taken
        ):
            return bytes(row.id)
    return None


def _state_time(row: interop_pb2.MessageStatus) -> float | None:
    for entry in reversed(row.timeline):
        if entry.state == row.state and entry.HasField("time"):
            return float(entry.time.seconds) + entry.time.nanos / 1e9
    return None


def document_hash(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


async def send_notarisations(
    cluster: DemoCluster, apis: dict[str, Api], tracker: Tracker, count: int, *, timeout: int
) -> None:
    """``count`` messages each way through the developer API: each asks the other chain's
    Notary to attest a document hash (Notary allows the sender accounts as peers)."""
    limit = asyncio.Semaphore(8)

    async def one(gateway: str, src: str, dst: str, index: int) -> None:
        item = tracker.add(Tracked(f"api #{index + 1}", src, dst, gateway, time.time()))
        payload = abi_encode(["bytes32"], [document_hash(f"{src} document {index}")])
        async with limit:
            item.sent_at = time.time()
            item.id = await apis[gateway].send(
                src, dst, cluster.contracts[dst].notary, payload, timeout
            )
        item.state = "sent"

    async with asyncio.TaskGroup() as group:
        for index in range(count):
            group.create_task(one("evm", EVM_CHAIN, FISCO_CHAIN, index))
            group.create_task(one("fisco", FISCO_CHAIN, EVM_CHAIN, index))


async def send_app_messages(cluster: DemoCluster, apis: dict[str, Api], tracker: Tracker) -> None:
    """A ping from Anvil's PingPong (its twin on the devnode answers with a pong from its
    callback) and a notarisation request from the devnode's Notary to Anvil's."""
    evm, fisco = cluster.contracts[EVM_CHAIN], cluster.contracts[FISCO_CHAIN]
    # Absolute timeouts in the destination's units: milliseconds on FISCO, seconds on EVM.
    fisco_now = await apis["fisco"].chain_time(FISCO_CHAIN)
    evm_now = await apis["evm"].chain_time(EVM_CHAIN)
    now = time.time()
    tracker.add(Tracked("ping", EVM_CHAIN, FISCO_CHAIN, "evm", now, sender=_b(evm.ping_pong)))
    tracker.add(Tracked("pong", FISCO_CHAIN, EVM_CHAIN, "fisco", now, sender=_b(fisco.ping_pong)))
    tracker.add(Tracked("notary", FISCO_CHAIN, EVM_CHAIN, "fisco", now, sender=_b(fisco.notary)))
    ping_args = [FISCO_CHAIN, fisco.ping_pong, b"demo", (fisco_now + 600) * 1000]
    notary_args = [EVM_CHAIN, evm.notary, document_hash("demo contract"), evm_now + 600]
    evm_owner = cluster.owner_client(EVM_CHAIN)
    fisco_owner = cluster.owner_client(FISCO_CHAIN)
    await asyncio.gather(
        asyncio.to_thread(evm_owner.transact, evm.ping_pong, "PingPong", "ping", ping_args),
        asyncio.to_thread(
            fisco_owner.transact, fisco.notary, "Notary", "requestAttestation", notary_args
        ),
    )


def _b(address: str) -> bytes:
    return bytes.fromhex(address.removeprefix("0x"))
