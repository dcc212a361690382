"""The developer API of a real gateway: ``run_gateway`` in-process from a TOML folder made by
``gateway init``, serving Anvil and the FISCO devnode, called over TLS on 127.0.0.1 with a
bearer token. A message sent through the API is followed to acknowledged on chain; watches
resume; pages page; real evidence verifies and tampered evidence does not; credentials are
checked. :func:`gateway_running` is shared with the CLI tests."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from adapters.fisco.adapter import FiscoAdapter
from cli.init import init_gateway
from protos.interop.v1 import common_pb2, interop_pb2, interop_pb2_grpc, relay_pb2, relay_pb2_grpc
from relay.app import RunningGateway, run_gateway
from relay.config import load_config
from tests.integration.adapters.env_fisco import RELAYER, SENDER, account_key, driver_of
from tests.integration.relay.pipeline_env import Chains, two_chains

pytestmark = pytest.mark.integration

ACKNOWLEDGED = interop_pb2.MESSAGE_STATE_ACKNOWLEDGED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Gateway:
    """A configured gateway folder (and, inside :func:`gateway_running`, the running gateway)."""

    folder: Path
    config: Path
    token: str
    ca: Path
    listen: str
    api_listen: str
    environ: dict[str, str]
    chains: Chains

    @property
    def evm(self) -> str:
        return self.chains.evm.chain

    @property
    def fisco(self) -> str:
        return self.chains.fisco.chain

    def channel(self, target: str | None = None) -> grpc.aio.Channel:
        credentials = grpc.ssl_channel_credentials(root_certificates=self.ca.read_bytes())
        return grpc.aio.secure_channel(target or self.api_listen, credentials)

    def metadata(self, token: str | None = None) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {token or self.token}"),)


async def write_gateway(chains: Chains, folder: Path) -> Gateway:
    """``gateway init`` with both chains served (keys from the environment), a free token port
    and quick [relay] pacing for tests."""
    evm, fisco = chains.evm, chains.fisco
    node = driver_of(fisco).node
    sealers = cast(FiscoAdapter, fisco.adapter).settings.sealers
    sealer_lines = ",\n".join(f'  {{ node_id = "{n}", weight = {w} }}' for n, w in sealers)
    source = folder.parent / f"{folder.name}-chains.toml"
    source.write_text(
        f"""
[chains.{evm.chain}]
family = "evm"
endpoints = ["{evm.anvil.url}"]
chain_id = {evm.anvil.chain_id}
confirmations = 1
gateway = "0x{evm.gateway.hex()}"
relayer_key = {{ env = "T_EVM_RELAYER" }}
sender_key = {{ env = "T_EVM_SENDER" }}

[chains.{fisco.chain}]
family = "fisco-bcos-3"
endpoints = ["{node.url}"]
chain_id = "{node.chain_id}"
group_id = "{node.group_id}"
crypto = "keccak256-secp256k1"
seal_interval = 0.2
sealers = [
{sealer_lines}
]
gateway = "0x{fisco.gateway.hex()}"
relayer_key = {{ env = "T_FISCO_RELAYER" }}
sender_key = {{ env = "T_FISCO_SENDER" }}
""",
        encoding="utf-8",
    )
    port, api_port = free_port(), free_port()
    result = init_gateway(
        folder, name="gw-test", listen=f"127.0.0.1:{port}", chains_from=source, force=True
    )
    assert result.remaining == (), result.remaining
    text = result.config.read_text(encoding="utf-8")
    text = text.replace(f'listen = "127.0.0.1:{port + 1}"', f'listen = "127.0.0.1:{api_port}"')
    text += (
        "\n[relay]\nbatch_wait = 0.2\npoll_interval = 0.1\nretry_initial = 0.2\n"
        "retry_max = 2.0\nstuck_after = 60\n"
    )
    result.config.write_text(text, encoding="utf-8")
    assert load_config(result.config).api.listen == f"127.0.0.1:{api_port}"
    settings = evm.settings
    environ = {
        "T_EVM_RELAYER": "0x" + (settings.relayer_key or b"").hex(),
        "T_EVM_SENDER": "0x" + (settings.sender_key or b"").hex(),
        "T_FISCO_RELAYER": "0x" + account_key(RELAYER).hex(),
        "T_FISCO_SENDER": "0x" + account_key(SENDER).hex(),
    }
    return Gateway(
        folder=folder,
        config=result.config,
        token=result.token,
        ca=folder / "ca.crt",
        listen=f"127.0.0.1:{port}",
        api_listen=f"127.0.0.1:{api_port}",
        environ=environ,
        chains=chains,
    )


@asynccontextmanager
async def gateway_running(chains: Chains, folder: Path) -> AsyncIterator[Gateway]:
    """``run_gateway`` in this event loop until the block ends, then a clean drain."""
    gw = await write_gateway(chains, folder)
    stop = asyncio.Event()
    started = asyncio.Event()
    info: list[RunningGateway] = []

    def ready(running: RunningGateway) -> None:
        info.append(running)
        started.set()

    task = asyncio.create_task(
        run_gateway(load_config(gw.config), environ=gw.environ, ready=ready, stop=stop)
    )
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()  # raises the start error
    try:
        yield gw
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 120)


@pytest.fixture(scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    folder = tmp_path_factory.mktemp("gw") / "gw"
    async with two_chains() as chains, gateway_running(chains, folder) as running:
        yield running


async def wait_for_state(
    stub: interop_pb2_grpc.InteropServiceAsyncStub,
    gw: Gateway,
    mid: bytes,
    state: int,
    limit: float = 180,
) -> interop_pb2.MessageStatus:
    """Polls GetMessage until ``state`` (a generous limit, never a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while True:
        try:
            status: interop_pb2.MessageStatus = await stub.GetMessage(
                interop_pb2.GetMessageRequest(id=mid), metadata=gw.metadata(), timeout=30
            )
        except grpc.aio.AioRpcError as exc:  # sent, not observed final yet
            pending = "not observed yet" in (exc.details() or "")
            if exc.code() is not grpc.StatusCode.NOT_FOUND or not pending:
                raise
            if loop.time() > deadline:
                raise
        else:
            if status.state == state or loop.time() > deadline:
                return status
        await asyncio.sleep(0.2)


async def send(
    stub: interop_pb2_grpc.InteropServiceAsyncStub, gw: Gateway, src: str, dst: str, text: str
) -> interop_pb2.SendMessageResponse:
    request = interop_pb2.SendMessageRequest(
        src_chain=src,
        dst_chain=dst,
        receiver=gw.chains.echo[dst],
        payload=text.encode(),
        timeout_seconds=3600,
    )
    response: interop_pb2.SendMessageResponse = await stub.SendMessage(
        request, metadata=gw.metadata(), timeout=60
    )
    return response


async def test_sent_message_is_acknowledged_with_timeline_and_evidence(gw: Gateway) -> None:
    """SendMessage on Anvil → GetMessage shows it acknowledged (source record) with the
    timeline of both roles and the delivery result; GetEvidence holds both hops' bundles."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        sent = await send(stub, gw, gw.evm, gw.fisco, "hello devnode")
        assert len(sent.id) == 32
        assert sent.message.payload == b"hello devnode"
        assert sent.message.timeout > 3600
        assert sent.height > 0
        status = await wait_for_state(stub, gw, sent.id, ACKNOWLEDGED)
        assert status.state == ACKNOWLEDGED, status
        assert status.role == interop_pb2.ROLE_SOURCE
        assert status.result.status == common_pb2.DELIVERY_STATUS_SUCCESS
        assert status.stuck is False
        states = {interop_pb2.MessageState.Name(e.state) for e in status.timeline}
        assert {"MESSAGE_STATE_DELIVERED", "MESSAGE_STATE_ACKNOWLEDGED"} <= states
        evidence = await stub.GetEvidence(
            interop_pb2.GetEvidenceRequest(id=sent.id), metadata=gw.metadata()
        )
        hops = {(h.hop, h.chain) for h in evidence.hops}
        assert hops == {("message_sent", gw.evm), ("delivery_result", gw.fisco)}


async def test_verify_evidence_accepts_real_bundles_and_rejects_tampered(gw: Gateway) -> None:
    """Both hops of a FISCO → Anvil message verify against the gateway's own roots, even with
    the bundle's own ``trust`` replaced by an attacker's; a changed log or header does not."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        sent = await send(stub, gw, gw.fisco, gw.evm, "hello anvil")
        assert (await wait_for_state(stub, gw, sent.id, ACKNOWLEDGED)).state == ACKNOWLEDGED
        evidence = await stub.GetEvidence(
            interop_pb2.GetEvidenceRequest(id=sent.id), metadata=gw.metadata()
        )
        bundles = {h.hop: json.loads(h.evidence.bundle_json) for h in evidence.hops}

        async def verify(bundle: dict[str, Any], chain: str) -> interop_pb2.VerifyEvidenceResponse:
            request = interop_pb2.VerifyEvidenceRequest(
                bundle_json=json.dumps(bundle).encode(), chain=chain
            )
            answer: interop_pb2.VerifyEvidenceResponse = await stub.VerifyEvidence(
                request, metadata=gw.metadata(), timeout=60
            )
            return answer

        sent_bundle, result_bundle = bundles["message_sent"], bundles["delivery_result"]
        fisco_ok = await verify({**sent_bundle, "trust": {"sealers": []}}, gw.fisco)
        assert fisco_ok.valid, fisco_ok
        assert (fisco_ok.family, fisco_ok.block_number > 0) == ("fisco-bcos-3", True)
        assert json.loads(fisco_ok.event_json)["signature"].startswith("Sealed(")
        evm_ok = await verify(result_bundle, gw.evm)
        assert evm_ok.valid, evm_ok
        assert json.loads(evm_ok.event_json)["signature"].startswith("MessageDelivered(")
        assert evm_ok.receipt_status == 1

        tampered = copy.deepcopy(result_bundle)
        log = tampered["receipt"]["logs"][tampered["log_index"]]
        log["data"] = log["data"][:-2] + ("00" if log["data"][-2:] != "00" else "01")
        bad = await verify(tampered, gw.evm)
        assert bad.valid is False
        assert bad.check
        assert bad.reason
        header = copy.deepcopy(sent_bundle)
        stamp = header["block"]["timestamp"]
        header["block"]["timestamp"] = (
            stamp + 1 if isinstance(stamp, int) else hex(int(stamp, 0) + 1)
        )
        bad = await verify(header, gw.fisco)
        assert bad.valid is False
        assert bad.check


async def test_watch_resumes_from_a_sequence(gw: Gateway) -> None:
    """A watch from 0 sees a new message's changes up to acknowledged; a second watch from a
    sequence in the middle starts with exactly the next change."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        sent = await send(stub, gw, gw.evm, gw.fisco, "watch me")
        seen: list[interop_pb2.StatusChange] = []
        stream = stub.WatchMessages(interop_pb2.WatchMessagesRequest(), metadata=gw.metadata())
        async with asyncio.timeout(180):
            async for change in stream:
                seen.append(change)
                if change.id == sent.id and change.state == ACKNOWLEDGED:
                    break
        stream.cancel()
        sequences = [c.sequence for c in seen]
        assert sequences == sorted(sequences)
        mine = [c for c in seen if c.id == sent.id]
        assert len(mine) >= 4
        middle = mine[len(mine) // 2]
        later = [c for c in seen if c.sequence > middle.sequence]
        resumed = stub.WatchMessages(
            interop_pb2.WatchMessagesRequest(from_sequence=middle.sequence),
            metadata=gw.metadata(),
        )
        first = await asyncio.wait_for(anext(aiter(resumed)), 60)
        resumed.cancel()
        assert (first.sequence, first.id, first.state) == (
            later[0].sequence,
            later[0].id,
            later[0].state,
        )


async def test_list_messages_pages_through_source_records(gw: Gateway) -> None:
    """Three more messages; pages of two over source records return every id once."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        ids = [(await send(stub, gw, gw.evm, gw.fisco, f"page {i}")).id for i in range(3)]
        for mid in ids:  # recorded once observed
            assert (await wait_for_state(stub, gw, mid, ACKNOWLEDGED)).state == ACKNOWLEDGED
        listed: list[bytes] = []
        token = ""
        pages = 0
        while True:
            page = await stub.ListMessages(
                interop_pb2.ListMessagesRequest(
                    role=interop_pb2.ROLE_SOURCE, page_size=2, page_token=token
                ),
                metadata=gw.metadata(),
            )
            pages += 1
            assert len(page.items) <= 2
            listed += [item.id for item in page.items]
            token = page.next_page_token
            if not token:
                break
        assert len(listed) == len(set(listed))
        assert set(ids) <= set(listed)
        assert pages >= 2


async def test_chain_status_of_both_served_chains(gw: Gateway) -> None:
    """ListChains reports both chains as local with heads and a healthy endpoint each."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        chains = await stub.ListChains(interop_pb2.ListChainsRequest(), metadata=gw.metadata())
        by_name = {c.chain: c for c in chains.chains}
        assert set(by_name) == {gw.evm, gw.fisco}
        for status in by_name.values():
            assert status.local, status
            assert status.head > 0, status
            assert not status.error, status
            assert status.endpoints
            assert all(e.healthy for e in status.endpoints)
        assert by_name[gw.evm].final_head <= by_name[gw.evm].head
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.GetChainStatus(
                interop_pb2.GetChainStatusRequest(chain="nowhere"), metadata=gw.metadata()
            )
        assert info.value.code() is grpc.StatusCode.NOT_FOUND


async def test_send_refusals_are_readable(gw: Gateway) -> None:
    """A zero timeout is INVALID_ARGUMENT; a chain without a route FAILED_PRECONDITION."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        request = interop_pb2.SendMessageRequest(
            src_chain=gw.evm, dst_chain=gw.fisco, receiver=b"\x01" * 20, timeout_seconds=0
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SendMessage(request, metadata=gw.metadata())
        assert info.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "timeout_seconds" in (info.value.details() or "")
        request.timeout_seconds, request.dst_chain = 60, "elsewhere"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.SendMessage(request, metadata=gw.metadata())
        assert info.value.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert "no route" in (info.value.details() or "")


async def test_api_refuses_missing_and_wrong_tokens_and_relay_for_developers(gw: Gateway) -> None:
    """No token or a wrong one: UNAUTHENTICATED; the developer's token on RelayService:
    PERMISSION_DENIED; health answers without credentials."""
    async with gw.channel() as channel:
        stub = interop_pb2_grpc.InteropServiceStub(channel)
        for metadata in ((), gw.metadata("not-the-token")):
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ListChains(interop_pb2.ListChainsRequest(), metadata=metadata)
            assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
            assert gw.token not in (info.value.details() or "")
        relay = relay_pb2_grpc.RelayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await relay.Forward(relay_pb2.ForwardRequest(), metadata=gw.metadata())
        assert info.value.code() is grpc.StatusCode.PERMISSION_DENIED
        health = health_pb2_grpc.HealthStub(channel)
        answer = await health.Check(health_pb2.HealthCheckRequest(service=""))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


async def test_the_python_example_in_docs_api_md_works(gw: Gateway) -> None:
    """docs/api.md's Python block, run as written with the environment it names, lists both
    chains (and exits 0)."""
    docs = Path(__file__).resolve().parents[3] / "docs" / "api.md"
    text = docs.read_text(encoding="utf-8")
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    env = {
        **os.environ,
        "GATEWAY_ADDRESS": gw.api_listen,
        "GATEWAY_CA": str(gw.ca),
        "GATEWAY_TOKEN": gw.token,
        "PYTHONPATH": str(docs.parents[1]),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert any(line.startswith(f"{gw.evm} evm local") for line in lines), lines
    assert any(line.startswith(f"{gw.fisco} fisco-bcos-3 local") for line in lines), lines


async def test_a_remote_chain_is_read_through_own_endpoints(
    gw: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A second gateway serving only Anvil, with the devnode remote (served by the first
    gateway as its pinned peer): ListChains shows the devnode as remote with its head read from
    its configured node, and SendMessage to it takes the devnode's time for the timeout."""
    evm, fisco = gw.chains.evm, gw.chains.fisco
    node = driver_of(fisco).node
    sealers = cast(FiscoAdapter, fisco.adapter).settings.sealers
    sealer_lines = ",\n".join(f'  {{ node_id = "{n}", weight = {w} }}' for n, w in sealers)
    folder = tmp_path_factory.mktemp("remote") / "gw2"
    source = folder.parent / "chains.toml"
    source.write_text(
        f"""
[chains.{evm.chain}]
family = "evm"
endpoints = ["{evm.anvil.url}"]
chain_id = {evm.anvil.chain_id}
confirmations = 1
gateway = "0x{evm.gateway.hex()}"
relayer_key = {{ env = "T_EVM_RELAYER" }}
sender_key = {{ env = "T_EVM_SENDER" }}

[chains.{fisco.chain}]
family = "fisco-bcos-3"
served = false
endpoints = ["{node.url}"]
chain_id = "{node.chain_id}"
group_id = "{node.group_id}"
crypto = "keccak256-secp256k1"
sealers = [
{sealer_lines}
]
gateway = "0x{fisco.gateway.hex()}"
""",
        encoding="utf-8",
    )
    port, api_port = free_port(), free_port()
    result = init_gateway(folder, name="gw-two", listen=f"127.0.0.1:{port}", chains_from=source)
    text = result.config.read_text(encoding="utf-8")
    text = text.replace(f'listen = "127.0.0.1:{port + 1}"', f'listen = "127.0.0.1:{api_port}"')
    text += (
        f'\n[peers.gw-test]\naddress = "{gw.listen}"\ncert = "{gw.folder / "gateway.crt"}"\n'
        f'ca = "{gw.ca}"\nchains = ["{fisco.chain}"]\n'
    )
    result.config.write_text(text, encoding="utf-8")
    config = load_config(result.config)
    assert config.remote_chains == (fisco.chain,)
    stop = asyncio.Event()
    started = asyncio.Event()
    task = asyncio.create_task(
        run_gateway(config, environ=gw.environ, ready=lambda _: started.set(), stop=stop)
    )
    try:
        await asyncio.wait_for(started.wait(), 120)
        credentials = grpc.ssl_channel_credentials(
            root_certificates=(folder / "ca.crt").read_bytes()
        )
        auth = (("authorization", f"Bearer {result.token}"),)
        async with grpc.aio.secure_channel(f"127.0.0.1:{api_port}", credentials) as channel:
            stub = interop_pb2_grpc.InteropServiceStub(channel)
            chains = await stub.ListChains(interop_pb2.ListChainsRequest(), metadata=auth)
            assert [(c.chain, c.local) for c in chains.chains] == [
                (evm.chain, True),
                (fisco.chain, False),
            ]
            remote = chains.chains[1]
            assert remote.head > 0, remote
            assert remote.final_head == remote.head
            assert remote.endpoints[0].healthy
            assert remote.error == "remote chain served by peer gw-test"
            fisco_time = (await fisco.adapter.status()).timestamp
            sent = await stub.SendMessage(
                interop_pb2.SendMessageRequest(
                    src_chain=evm.chain,
                    dst_chain=fisco.chain,
                    receiver=gw.chains.echo[fisco.chain],
                    payload=b"to a remote chain",
                    timeout_seconds=600,
                ),
                metadata=auth,
                timeout=60,
            )
            assert fisco_time + 600 <= sent.message.timeout
    finally:
        stop.set()
        await asyncio.wait_for(task, 120)
