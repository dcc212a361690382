"""CrossChainGateway on the FISCO BCOS devnode (py-evm, London rules, block.timestamp in ms):
the ids and result hashes agree with verifier.messages, expiry uses seconds from
timestampUnitsPerSecond = 1000, and a seal() receipt has the shape FISCO log binding needs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_abi.abi import decode, encode

from adapters.fisco.transaction import account_address
from devnet.fisco.node import DevNode, DevNodeOptions, DevNodeThread
from tests.integration.contracts.conftest import (
    EVENTS,
    MESSAGE_TUPLE,
    artifact,
    error_selector,
)
from tests.integration.devnet.client import CLIENT_KEY, SUITE, RpcClient, selector
from verifier.events import decode_event
from verifier.hashing import keccak256
from verifier.messages import (
    DeliveryResult,
    DeliveryStatus,
    Message,
    message_id,
    result_hash,
    seal_call_data,
)
from verifier.types import DecodedLog

pytestmark = pytest.mark.integration
RELAYER = account_address(CLIENT_KEY, SUITE)


class Fisco:
    """Deploy, transact and call on the devnode with the test client key (owner and relayer)."""

    def __init__(self, client: RpcClient) -> None:
        self.client = client

    def deploy(self, name: str, types: list[str], args: list[Any]) -> str:
        art = artifact(name)
        code = bytes.fromhex(art["bytecode"][2:]) + encode(types, args)
        receipt = self.client.send("", code, abi=json.dumps(art["abi"]))
        assert receipt["status"] == 0, receipt
        return str(receipt["contractAddress"])

    def send(self, to: str, signature: str, types: list[str], args: list[Any]) -> dict[str, Any]:
        receipt = self.client.send(to, selector(signature) + encode(types, args))
        assert receipt["status"] == 0, receipt
        return receipt

    def fails(self, to: str, signature: str, types: list[str], args: list[Any]) -> bytes:
        receipt = self.client.send(to, selector(signature) + encode(types, args))
        assert receipt["status"] != 0, receipt
        return bytes.fromhex(receipt["output"][2:])

    def view(
        self, to: str, signature: str, args: list[Any], types: list[str], out: list[str]
    ) -> Any:
        data = selector(signature) + encode(types, args)
        result = self.client.call("call", to, "0x" + data.hex())
        assert result["status"] == 0, result
        return decode(out, bytes.fromhex(result["output"][2:]))

    def events(self, receipt: dict[str, Any], address: str, name: str) -> list[dict[str, Any]]:
        event = EVENTS[name]
        out = []
        for entry in receipt["logEntries"]:
            log = DecodedLog(
                address=bytes.fromhex(entry["address"].removeprefix("0x")),
                topics=tuple(bytes.fromhex(t[2:]) for t in entry["topics"]),
                data=bytes.fromhex(entry["data"][2:]),
            )
            if log.address.hex() == address.lower().removeprefix("0x") and log.topics[
                0
            ] == event.topic0(keccak256):
                out.append(dict(decode_event(log, event, keccak256).args))
        return out


@pytest.fixture(name="fisco", scope="module")
def _fisco() -> Iterator[Fisco]:
    options = DevNodeOptions(port=0, block_interval_ms=20, seed="contracts-tests")
    with DevNodeThread(options) as node:
        assert isinstance(node, DevNode)
        yield Fisco(RpcClient(node.url))


@pytest.fixture(name="gateway", scope="module")
def _gateway(fisco: Fisco) -> str:
    gw = fisco.deploy(
        "CrossChainGateway",
        ["string", "uint32", "uint32", "uint32"],
        ["fisco-a", 1000, 200_000, 100_000],
    )
    fisco.send(gw, "addRelayer(address)", ["address"], [RELAYER])
    fisco.send(gw, "setDestination(string,uint32)", ["string", "uint32"], ["anvil-b", 1024])
    return gw


def _inbound(gw: str, receiver: str, nonce: int, timeout: int) -> tuple[bytes, Message]:
    m = Message("anvil-b", b"\x0b" * 20, "fisco-a", nonce, b"\x5e" * 20,
                bytes.fromhex(receiver[2:]), b"ping", timeout)  # fmt: skip
    return message_id(m, keccak256), m


def _tuple(m: Message) -> tuple[Any, ...]:
    return (m.src_chain, m.src_gateway, m.dst_chain, m.nonce, m.sender, m.receiver, m.payload,
            m.timeout)  # fmt: skip


def test_send_id_matches_python(fisco: Fisco, gateway: str) -> None:
    receiver = "0x" + "77" * 20
    receipt = fisco.send(
        gateway,
        "sendMessage(string,address,bytes,uint64)",
        ["string", "address", "bytes", "uint64"],
        ["anvil-b", receiver, b"hello", 99],
    )
    (ev,) = fisco.events(receipt, gateway, "MessageSent")
    m = Message("fisco-a", bytes.fromhex(gateway[2:]), "anvil-b", ev["nonce"],
                bytes.fromhex(RELAYER[2:]), bytes.fromhex(receiver[2:]), b"hello", 99)  # fmt: skip
    assert ev["id"] == message_id(m, keccak256)
    assert fisco.view(gateway, "sentState(bytes32)", [ev["id"]], ["bytes32"], ["uint8"]) == (1,)
    output = fisco.fails(
        gateway,
        "sendMessage(string,address,bytes,uint64)",
        ["string", "address", "bytes", "uint64"],
        ["nowhere", receiver, b"", 99],
    )
    assert "0x" + output.hex() == error_selector("UnknownDestination()")


def test_timestamps_are_ms_and_results_match_python(fisco: Fisco, gateway: str) -> None:
    """With timestampUnitsPerSecond = 1000 a timeout an hour from now (in seconds) is live, one
    a second ago has expired; were the ms used as seconds, both would have expired."""
    echo = fisco.deploy("EchoReceiver", [], [])
    now_s = int(time.time())
    live = _inbound(gateway, echo, 1, now_s + 3600)
    expired = _inbound(gateway, echo, 2, now_s - 1)
    receipt = fisco.send(
        gateway,
        f"deliverMessages(bytes32[],{MESSAGE_TUPLE}[])",
        ["bytes32[]", f"{MESSAGE_TUPLE}[]"],
        [[live[0], expired[0]], [_tuple(live[1]), _tuple(expired[1])]],
    )
    delivered = fisco.events(receipt, gateway, "MessageDelivered")
    raw = encode(["bytes"], [b"ping"])
    assert [(e["id"], e["status"], e["result"]) for e in delivered] == [
        (live[0], 1, raw),
        (expired[0], 3, b""),
    ]
    for e in delivered:
        r = DeliveryResult(e["id"], "fisco-a", bytes.fromhex(gateway[2:]),
                           DeliveryStatus(e["status"]), e["result"])  # fmt: skip
        assert e["resultHash"] == result_hash(r, keccak256)
    calls = fisco.view(echo, "calls()", [], [], ["uint256"])
    assert calls == (1,)


def test_seal_receipt_has_no_output_and_one_log(fisco: Fisco, gateway: str) -> None:
    """docs/evidence-format.md "FISCO log binding": the pinned call is exactly seal()'s
    selector, and its receipt has no output and exactly one log, from the gateway."""
    fisco.send(
        gateway,
        "sendMessage(string,address,bytes,uint64)",
        ["string", "address", "bytes", "uint64"],
        ["anvil-b", "0x" + "78" * 20, b"", 99],
    )
    receipt = fisco.client.send(gateway, seal_call_data(keccak256))
    assert receipt["status"] == 0, receipt
    assert receipt["output"] in ("0x", "")
    assert len(receipt["logEntries"]) == 1
    assert receipt["logEntries"][0]["address"] == gateway[2:].lower()
    (sealed,) = fisco.events(receipt, gateway, "Sealed")
    assert sealed["sealNumber"] >= 1
    assert len(sealed["sentIds"]) + len(sealed["resultHashes"]) >= 1
    output = fisco.fails(gateway, "seal()", [], [])
    assert "0x" + output.hex() == error_selector("NothingToSeal()")
