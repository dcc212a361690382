"""InteropService called directly with a recording context, the real SQLite store on tmp_path,
a fake sender and fake chain readers: status codes and messages, merged views, keyset pages,
resumable watches, chain status. The real gRPC server and chains are in
tests/integration/grpc/test_interop_api.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest

from adapters.base import ChainStatus, ChainUnavailable, EndpointHealth, RejectedByChain, Submission
from protos.interop.v1 import interop_pb2
from relay.grpc.auth import Principal, PrincipalKind, current_principal
from relay.grpc.interop import ApiError, ChainEntry, InteropService, VerifyLimits, map_error
from relay.node import InvalidRequest, SentMessage
from relay.sqlite_store import SqliteStore
from relay.store import Hop, Role, State, StoreError, Transition
from relay.trust import ConfiguredTrustStore, EvmTrustConfig, NotYetTrusted, TrustRoot
from relay.verify import FactVerifier
from verifier.evm.header import parse_header as parse_evm_header
from verifier.messages import DeliveryResult, DeliveryStatus, Message
from verifier.types import Family

A, B = "chain-a", "chain-b"
GATEWAY = b"\x0a" * 20
T0 = 1_700_000_000.0
LIMITS = VerifyLimits(max_concurrent=4, lookups_per_second=1.0, lookup_burst=20)
EVM_EXAMPLE = (
    Path(__file__).resolve().parents[3] / "docs" / "examples" / "evm-receipt-with-log.json"
)


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class Context:
    """The part of ``grpc.aio.ServicerContext`` the servicer uses."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise Aborted(code, details)


def ctx() -> Any:
    """A :class:`Context` typed as the servicer's context (it implements what is used)."""
    return Context()


def msg(nonce: int, src: str = A, dst: str = B) -> Message:
    return Message(src, GATEWAY, dst, nonce, b"\x01" * 20, b"\x02" * 20, b"hi", 10**10)


def mid(nonce: int) -> bytes:
    return nonce.to_bytes(32, "big")


@dataclass
class FakeSender:
    store: SqliteStore
    fail: Exception | None = None
    calls: list[tuple[Any, ...]] = field(default_factory=list)

    async def send_message(
        self, src_chain: str, dst_chain: str, receiver: bytes, payload: bytes, timeout_seconds: int
    ) -> SentMessage:
        self.calls.append((src_chain, dst_chain, receiver, payload, timeout_seconds))
        if self.fail is not None:
            raise self.fail
        await self.store.transition(
            Transition(mid(99), Role.SOURCE, State.OBSERVED, None, T0, message=msg(99))
        )
        return SentMessage(mid(99), Submission("0x" + "ab" * 32, 7, "fake"), 12345)


@dataclass
class FakeReader:
    status_value: ChainStatus | None = None
    fail: Exception | None = None

    async def status(self) -> ChainStatus:
        if self.fail is not None:
            raise self.fail
        assert self.status_value is not None
        return self.status_value


@dataclass
class Env:
    service: InteropService
    store: SqliteStore
    sender: FakeSender
    now: list[float]


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = SqliteStore(tmp_path)
    await store.open()
    sender = FakeSender(store)
    now = [T0 + 10]
    trust_cfg = EvmTrustConfig(
        chain=A,
        gateway=GATEWAY,
        chain_id=31337,
        endpoints=("http://127.0.0.1:1",),
        quorum=1,
        confirmations=1,
        finality_tag=None,
    )
    trust = ConfiguredTrustStore({A: trust_cfg}, readers={A: ()})
    reader = FakeReader(
        ChainStatus(A, 120, 100, 1_700_000_500, (EndpointHealth("http://a:8545", True),))
    )
    service = InteropService(
        sender=sender,
        store=store,
        verifier=FactVerifier(trust, {A: trust_cfg}),
        chains=[
            ChainEntry(B, "fisco-bcos-3", False, None, "remote chain served by peer gw-b"),
            ChainEntry(A, "evm", True, reader),
        ],
        stuck_after=60.0,
        verify_limits=LIMITS,
        clock=lambda: now[0],
        watch_poll=0.01,
    )
    yield Env(service, store, sender, now)
    await store.close()


async def refused(call: Any) -> Aborted:
    with pytest.raises(Aborted) as info:
        await call
    return info.value


async def seed(store: SqliteStore, count: int, *, src: str = A, dst: str = B) -> list[bytes]:
    ids = []
    for n in range(1, count + 1):
        await store.transition(
            Transition(mid(n), Role.SOURCE, State.OBSERVED, None, T0 + n, message=msg(n, src, dst))
        )
        ids.append(mid(n))
    return ids


# -- SendMessage ---------------------------------------------------------------------------------


def send_request(**changes: Any) -> interop_pb2.SendMessageRequest:
    values: dict[str, Any] = {
        "src_chain": A,
        "dst_chain": B,
        "receiver": b"\x02" * 20,
        "payload": b"hello",
        "timeout_seconds": 600,
    }
    values.update(changes)
    return interop_pb2.SendMessageRequest(**values)


async def test_send_returns_id_transaction_and_recorded_body(env: Env) -> None:
    """The node's answer and the stored body come back; the relative timeout is passed as is."""
    response = await env.service.SendMessage(send_request(), ctx())
    assert response.id == mid(99)
    assert response.tx_hash == bytes.fromhex("ab" * 32)
    assert response.height == 7
    assert response.message.nonce == 99
    assert env.sender.calls == [(A, B, b"\x02" * 20, b"hello", 600)]


async def test_send_with_empty_source_uses_the_only_served_chain(env: Env) -> None:
    """This gateway serves one chain (A), so src_chain may be left empty."""
    await env.service.SendMessage(send_request(src_chain=""), ctx())
    assert env.sender.calls[0][0] == A


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"timeout_seconds": 0}, "timeout_seconds must be > 0"),
        ({"receiver": b"\x02" * 19}, "receiver must be 20 bytes, not 19"),
        ({"dst_chain": "Not A Chain"}, "dst_chain 'Not A Chain' is not a chain name"),
    ],
)
async def test_send_refuses_bad_arguments(env: Env, changes: dict[str, Any], expected: str) -> None:
    """Zero timeout, a short receiver or a bad chain name: INVALID_ARGUMENT, nothing sent."""
    error = await refused(env.service.SendMessage(send_request(**changes), ctx()))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details.startswith(expected)
    assert env.sender.calls == []


@pytest.mark.parametrize(
    ("failure", "code", "expected"),
    [
        (
            InvalidRequest("no route from 'chain-a' to 'chain-b'"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "no route from 'chain-a' to 'chain-b'",
        ),
        (
            ChainUnavailable("connection refused", chain=A, endpoint="http://a:8545"),
            grpc.StatusCode.UNAVAILABLE,
            "chain chain-a: connection refused",
        ),
        (
            RejectedByChain("execution reverted: unknown destination", chain=A),
            grpc.StatusCode.FAILED_PRECONDITION,
            "chain chain-a: execution reverted: unknown destination",
        ),
        (RuntimeError("secret internals"), grpc.StatusCode.INTERNAL, "the gateway failed to"),
    ],
)
async def test_send_maps_each_error_type(
    env: Env, failure: Exception, code: grpc.StatusCode, expected: str
) -> None:
    """Refusals and chain errors name the problem and chain; a bug says only that it failed."""
    env.sender.fail = failure
    error = await refused(env.service.SendMessage(send_request(), ctx()))
    assert error.code is code
    assert error.details.startswith(expected)
    assert "Traceback" not in error.details
    assert "secret internals" not in error.details


def test_map_error_covers_store_and_trust() -> None:
    """The store failing and a not-yet-trusted height are retryable: UNAVAILABLE."""
    assert map_error(StoreError("disk"), "x")[0] is grpc.StatusCode.UNAVAILABLE
    nyt = NotYetTrusted("height not final", chain=A, endpoints={"http://a": "final head 3"})
    code, message = map_error(nyt, "verify")
    assert code is grpc.StatusCode.UNAVAILABLE
    assert "http://a: final head 3" in message
    assert map_error(ApiError(grpc.StatusCode.NOT_FOUND, "gone"), "x") == (
        grpc.StatusCode.NOT_FOUND,
        "gone",
    )


# -- GetMessage ----------------------------------------------------------------------------------


async def test_get_merges_roles_timeline_attempts_and_stuck(env: Env) -> None:
    """Source and destination rows of one id: the source record leads, the timeline holds both
    roles' history and the failed attempt in order, and the age passes stuck_after."""
    m = msg(1)
    await env.store.transition(Transition(mid(1), Role.SOURCE, State.OBSERVED, None, T0, message=m))
    await env.store.transition(
        Transition(
            mid(1), Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), T0 + 1, height=5
        )
    )
    await env.store.transition(
        Transition(mid(1), Role.DESTINATION, State.VERIFIED, None, T0 + 2, message=m)
    )
    result = DeliveryResult(mid(1), B, GATEWAY, DeliveryStatus.SUCCESS, b"ok")
    await env.store.transition(
        Transition(
            mid(1),
            Role.DESTINATION,
            State.DELIVERED,
            frozenset({State.VERIFIED}),
            T0 + 3,
            result=result,
            tx_hash="0x" + "cd" * 32,
        )
    )
    await env.store.record_attempt(
        mid(1),
        Role.SOURCE,
        state=State.VERIFIED,
        error="peer down",
        next_try_at=T0 + 500,
        at=T0 + 4,
    )
    env.now[0] = T0 + 100
    status = await env.service.GetMessage(interop_pb2.GetMessageRequest(id=mid(1)), ctx())
    assert status.role == interop_pb2.ROLE_SOURCE
    assert status.state == interop_pb2.MESSAGE_STATE_VERIFIED
    assert (status.attempts, status.last_error) == (1, "peer down")
    assert status.stuck is True
    assert status.age.seconds == 99
    assert status.next_attempt.seconds == int(T0 + 500)
    assert status.message.nonce == 1
    assert status.result.result == b"ok"
    kinds = [(e.kind, interop_pb2.MessageState.Name(e.state)) for e in status.timeline]
    assert kinds == [
        ("state", "MESSAGE_STATE_OBSERVED"),
        ("state", "MESSAGE_STATE_VERIFIED"),
        ("state", "MESSAGE_STATE_VERIFIED"),
        ("state", "MESSAGE_STATE_DELIVERED"),
        ("attempt", "MESSAGE_STATE_VERIFIED"),
    ]
    assert status.timeline[1].height == 5
    assert status.timeline[3].tx_hash == bytes.fromhex("cd" * 32)
    assert status.timeline[4].error == "peer down"


async def test_get_not_found_and_bad_id(env: Env) -> None:
    """An unknown id is NOT_FOUND with the id; a short one INVALID_ARGUMENT."""
    error = await refused(env.service.GetMessage(interop_pb2.GetMessageRequest(id=mid(5)), ctx()))
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert mid(5).hex() in error.details
    error = await refused(env.service.GetMessage(interop_pb2.GetMessageRequest(id=b"\x01"), ctx()))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT


# -- ListMessages --------------------------------------------------------------------------------


async def test_list_pages_with_opaque_tokens_until_the_last(env: Env) -> None:
    """Seven messages in pages of three: 3, 3, 1, in insertion order, no repeats."""
    ids = await seed(env.store, 7)
    seen: list[bytes] = []
    sizes = []
    token = ""
    while True:
        request = interop_pb2.ListMessagesRequest(page_size=3, page_token=token)
        page = await env.service.ListMessages(request, ctx())
        sizes.append(len(page.items))
        seen += [item.id for item in page.items]
        token = page.next_page_token
        if not token:
            break
    assert seen == ids
    assert sizes[:2] == [3, 3]
    assert sum(sizes) == 7


async def test_list_filters_and_refuses_foreign_tokens(env: Env) -> None:
    """Filters combine; a token used with other filters, or made up, is INVALID_ARGUMENT."""
    await seed(env.store, 4)
    await env.store.transition(
        Transition(mid(50), Role.SOURCE, State.OBSERVED, None, T0 + 50, message=msg(50, B, A))
    )
    await env.store.transition(
        Transition(mid(1), Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), T0 + 60)
    )
    page = await env.service.ListMessages(interop_pb2.ListMessagesRequest(src_chain=B), ctx())
    assert [i.id for i in page.items] == [mid(50)]
    page = await env.service.ListMessages(
        interop_pb2.ListMessagesRequest(state=interop_pb2.MESSAGE_STATE_VERIFIED), ctx()
    )
    assert [i.id for i in page.items] == [mid(1)]
    first = await env.service.ListMessages(
        interop_pb2.ListMessagesRequest(src_chain=A, page_size=2), ctx()
    )
    assert first.next_page_token
    other = interop_pb2.ListMessagesRequest(src_chain=B, page_token=first.next_page_token)
    error = await refused(env.service.ListMessages(other, ctx()))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "other filters" in error.details
    made_up = interop_pb2.ListMessagesRequest(page_token="not-a-token")
    error = await refused(env.service.ListMessages(made_up, ctx()))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT


async def test_list_stuck_only(env: Env) -> None:
    """Only rows older than stuck_after in a non-terminal state are listed as stuck (an old
    acknowledged one is not)."""
    await seed(env.store, 3)
    await env.store.transition(
        Transition(mid(2), Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), T0 + 95)
    )
    await env.store.transition(
        Transition(mid(3), Role.SOURCE, State.ACKNOWLEDGED, frozenset({State.OBSERVED}), T0 + 3)
    )
    env.now[0] = T0 + 100
    page = await env.service.ListMessages(interop_pb2.ListMessagesRequest(stuck_only=True), ctx())
    assert [(i.id, i.stuck) for i in page.items] == [(mid(1), True)]


# -- WatchMessages -------------------------------------------------------------------------------


async def collect(stream: AsyncIterator[interop_pb2.StatusChange], n: int) -> list[Any]:
    out = []
    async for change in stream:
        out.append(change)
        if len(out) == n:
            break
    return out


async def test_watch_resumes_after_a_sequence_then_follows_live(env: Env) -> None:
    """From 0: every change; resumed from the second change's sequence: only later ones,
    including one recorded after the stream started; close() ends the stream."""
    await seed(env.store, 3)
    first = await collect(
        env.service.WatchMessages(interop_pb2.WatchMessagesRequest(), ctx()),
        3,
    )
    assert [c.id for c in first] == [mid(1), mid(2), mid(3)]
    assert first[0].state == interop_pb2.MESSAGE_STATE_OBSERVED
    assert first[0].src_chain == A
    resumed = env.service.WatchMessages(
        interop_pb2.WatchMessagesRequest(from_sequence=first[1].sequence), ctx()
    )
    got = [await anext(resumed)]
    await env.store.transition(
        Transition(mid(2), Role.SOURCE, State.VERIFIED, frozenset({State.OBSERVED}), T0 + 9)
    )
    got.append(await asyncio.wait_for(anext(resumed), 30))
    assert [(c.id, c.state) for c in got] == [
        (mid(3), interop_pb2.MESSAGE_STATE_OBSERVED),
        (mid(2), interop_pb2.MESSAGE_STATE_VERIFIED),
    ]
    env.service.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(resumed), 30)


async def test_watch_filters_by_chain(env: Env) -> None:
    """src_chain keeps only that chain's messages."""
    await seed(env.store, 1)
    await env.store.transition(
        Transition(mid(50), Role.SOURCE, State.OBSERVED, None, T0 + 50, message=msg(50, B, A))
    )
    got = await collect(
        env.service.WatchMessages(interop_pb2.WatchMessagesRequest(src_chain=B), ctx()),
        1,
    )
    assert [c.id for c in got] == [mid(50)]


# -- GetEvidence / VerifyEvidence ----------------------------------------------------------------


async def test_get_evidence_names_each_hop_and_its_chain(env: Env) -> None:
    """The message_sent bundle is the source chain's, the delivery_result one the destination's."""
    bundle = {"version": "interop-evidence/1", "family": "evm"}
    await env.store.transition(
        Transition(
            mid(1),
            Role.SOURCE,
            State.OBSERVED,
            None,
            T0,
            message=msg(1),
            evidence=(Hop.MESSAGE_SENT, bundle, "http://a:8545"),
        )
    )
    await env.store.transition(
        Transition(
            mid(1),
            Role.SOURCE,
            State.RESULT_VERIFIED,
            frozenset({State.OBSERVED}),
            T0 + 1,
            evidence=(Hop.DELIVERY_RESULT, {**bundle, "family": "fisco-bcos-3"}, "http://b:20200"),
        )
    )
    response = await env.service.GetEvidence(interop_pb2.GetEvidenceRequest(id=mid(1)), ctx())
    hops = [(h.hop, h.chain, h.evidence.endpoint) for h in response.hops]
    assert hops == [
        ("message_sent", A, "http://a:8545"),
        ("delivery_result", B, "http://b:20200"),
    ]
    assert json.loads(response.hops[0].evidence.bundle_json) == bundle


async def test_verify_evidence_refusals_and_verdicts(env: Env) -> None:
    """Empty: INVALID_ARGUMENT; unknown chain: NOT_FOUND; not JSON or another family: a
    verdict (valid = false) naming the check, not an error."""
    call = env.service.VerifyEvidence
    error = await refused(call(interop_pb2.VerifyEvidenceRequest(), ctx()))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    doc = json.dumps({"family": "evm", "crypto": "keccak256-secp256k1"}).encode()
    error = await refused(
        call(interop_pb2.VerifyEvidenceRequest(bundle_json=doc, chain="zzz"), ctx())
    )
    assert error.code is grpc.StatusCode.NOT_FOUND
    verdict = await call(
        interop_pb2.VerifyEvidenceRequest(bundle_json=b"{not json", chain=A), ctx()
    )
    assert (verdict.valid, verdict.check) == (False, "bundle_format")
    fisco = json.dumps({"family": "fisco-bcos-3", "chain_id": A, "crypto": "sm"}).encode()
    verdict = await call(interop_pb2.VerifyEvidenceRequest(bundle_json=fisco), ctx())
    assert (verdict.valid, verdict.check, verdict.chain) == (False, "family", A)
    assert "fisco-bcos-3" in verdict.reason


@dataclass
class CountingTrust:
    """Agrees on whatever hash the bundle has, counting lookups; can hold them (``gate``)."""

    lookups: list[tuple[str, int]] = field(default_factory=list)
    gate: asyncio.Event | None = None
    entered: asyncio.Event = field(default_factory=asyncio.Event)

    async def root_for(self, chain: str, *, height: int, block_hash: str) -> TrustRoot:
        self.lookups.append((chain, height))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        return TrustRoot(chain, Family.EVM, {"block_hash": block_hash})


def fake_height(height: int) -> bytes:
    """The example EVM bundle renumbered: its header hash changes with it and every check of
    the bundle's own still holds (the receipt proof does not depend on the number), so only
    the endpoints can tell it is fake: the reviewer's attack on VerifyEvidence."""
    bundle = json.loads(EVM_EXAMPLE.read_text(encoding="utf-8"))
    bundle["chain_id"] = A
    bundle["block"]["number"] = hex(height)
    bundle["block"]["hash"] = "0x" + parse_evm_header(bundle["block"]).hash.hex()
    bundle["receipt"]["blockHash"] = bundle["block"]["hash"]
    bundle["receipt"]["blockNumber"] = hex(height)
    return json.dumps(bundle).encode()


def budget_service(
    env: Env, trust: CountingTrust, limits: VerifyLimits, clock: list[float]
) -> InteropService:
    cfg = env.service._verifier.chains[A]
    return InteropService(
        sender=env.sender,
        store=env.store,
        verifier=FactVerifier(trust, {A: cfg}),
        chains=[],
        stuck_after=60.0,
        verify_limits=limits,
        monotonic=lambda: clock[0],
    )


async def verify_as(service: InteropService, who: str, height: int) -> Any:
    token = current_principal.set(Principal(PrincipalKind.DEVELOPER, who))
    try:
        request = interop_pb2.VerifyEvidenceRequest(bundle_json=fake_height(height))
        return await service.VerifyEvidence(request, ctx())
    finally:
        current_principal.reset(token)


async def test_verify_evidence_runs_a_bounded_number_at_once(env: Env) -> None:
    trust = CountingTrust(gate=asyncio.Event())
    service = budget_service(env, trust, VerifyLimits(1, 1.0, 100), [0.0])
    first = asyncio.ensure_future(verify_as(service, "alice", 7000))
    entered = asyncio.ensure_future(trust.entered.wait())
    await asyncio.wait([first, entered], return_when=asyncio.FIRST_COMPLETED)
    assert not first.done(), first.result()  # held in the trust store, not answered
    error = await refused(verify_as(service, "bob", 7001))
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "being verified" in error.details
    assert trust.lookups == [(A, 7000)]
    assert trust.gate is not None
    trust.gate.set()
    verdict = await first
    assert verdict.block_number == 7000
    # The slot is free again.
    assert (await verify_as(service, "bob", 7001)).block_number == 7001


async def test_verify_evidence_charges_uncached_lookups_per_principal(env: Env) -> None:
    trust = CountingTrust()
    clock = [0.0]
    service = budget_service(env, trust, VerifyLimits(4, 0.5, 2), clock)
    for height in (7000, 7001):
        assert (await verify_as(service, "mallory", height)).block_number == height
    error = await refused(verify_as(service, "mallory", 7002))
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "lookup budget" in error.details
    assert trust.lookups == [(A, 7000), (A, 7001)]  # the refused height cost no endpoint call
    # A height agreed lately costs nothing; another principal has its own budget.
    assert (await verify_as(service, "mallory", 7000)).block_number == 7000
    assert (await verify_as(service, "alice", 7002)).block_number == 7002
    clock[0] += 2.0  # 0.5 lookups/s: one more
    assert (await verify_as(service, "mallory", 7003)).block_number == 7003
    error = await refused(verify_as(service, "mallory", 7004))
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED


# -- ListChains / GetChainStatus -----------------------------------------------------------------


async def test_chains_local_first_with_lag_and_remote_marked(env: Env) -> None:
    """The served chain reports head, final head, lag from the observation cursor and its
    endpoints; the remote chain says who serves it."""
    await env.store.set_cursor(A, json.dumps({"next": 91}), T0)
    response = await env.service.ListChains(interop_pb2.ListChainsRequest(), ctx())
    local, remote = response.chains
    assert (local.chain, local.local, local.head, local.final_head, local.lag) == (
        A,
        True,
        120,
        100,
        10,
    )
    assert [(e.endpoint, e.healthy) for e in local.endpoints] == [("http://a:8545", True)]
    assert (remote.chain, remote.local, remote.error) == (
        B,
        False,
        "remote chain served by peer gw-b",
    )


async def test_chain_status_unknown_and_unreachable(env: Env) -> None:
    """An unknown chain is NOT_FOUND; an unreachable one answers with the error filled in."""
    error = await refused(
        env.service.GetChainStatus(interop_pb2.GetChainStatusRequest(chain="zzz"), ctx())
    )
    assert error.code is grpc.StatusCode.NOT_FOUND
    reader = env.service._chains[A].reader
    assert isinstance(reader, FakeReader)
    reader.fail = ChainUnavailable("connection refused", chain=A)
    status = await env.service.GetChainStatus(interop_pb2.GetChainStatusRequest(chain=A), ctx())
    assert status.error == "chain chain-a: connection refused"
    assert status.head == 0
