"""Fixtures for the gateway contract tests: one Anvil per module, driven with web3 from the
committed artifacts; logs decoded strictly with the verifier's event ABIs, as adapters will."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode
from web3 import Web3
from web3.contract import Contract
from web3.exceptions import ContractLogicError
from web3.types import TxReceipt

from devnet.anvil import Anvil, running_anvil
from verifier.events import DecodedEvent, decode_event, parse_event_abi
from verifier.hashing import keccak256
from verifier.messages import (
    MESSAGE_ACKNOWLEDGED_EVENT,
    MESSAGE_DELIVERED_EVENT,
    MESSAGE_SENT_EVENT,
    SEALED_EVENT,
    Message,
)
from verifier.types import DecodedLog

ARTIFACTS = Path(__file__).resolve().parents[3] / "contracts" / "artifacts.json"
RECEIVER_GAS = 200_000
ACK_GAS = 100_000
PAYLOAD_CAP = 4096
EVENTS = {
    e["name"]: parse_event_abi(e)
    for e in (MESSAGE_SENT_EVENT, MESSAGE_DELIVERED_EVENT, MESSAGE_ACKNOWLEDGED_EVENT, SEALED_EVENT)
}
MESSAGE_TUPLE = "(string,address,string,uint64,address,address,bytes,uint64)"


def artifact(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ARTIFACTS.read_text())["contracts"][name]
    return data


def error_selector(signature: str) -> str:
    return "0x" + keccak256(signature.encode())[:4].hex()


def message_tuple(m: Message) -> tuple[Any, ...]:
    """A Message as the contract's Message struct (web3 tuple form)."""
    return (
        m.src_chain,
        Web3.to_checksum_address(m.src_gateway),
        m.dst_chain,
        m.nonce,
        Web3.to_checksum_address(m.sender),
        Web3.to_checksum_address(m.receiver),
        m.payload,
        m.timeout,
    )


@dataclass
class EvmChain:
    """Anvil through web3: accounts 0 owner, 1 relayer, 2 user, 3 stranger."""

    anvil: Anvil
    w3: Web3

    @property
    def accounts(self) -> list[str]:
        return [Web3.to_checksum_address(a.address) for a in self.anvil.accounts]

    @property
    def owner(self) -> str:
        return self.accounts[0]

    @property
    def relayer(self) -> str:
        return self.accounts[1]

    @property
    def user(self) -> str:
        return self.accounts[2]

    @property
    def stranger(self) -> str:
        return self.accounts[3]

    def deploy(self, name: str, *args: Any) -> Contract:
        art = artifact(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx = factory.constructor(*args).transact({"from": self.owner})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        assert receipt["status"] == 1
        return self.at(name, str(receipt["contractAddress"]))

    def at(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=artifact(name)["abi"]
        )

    def tx(self, call: Any, sender: str, gas: int | None = None) -> TxReceipt:
        params: dict[str, Any] = {"from": sender}
        if gas is not None:
            params["gas"] = gas
        receipt = self.w3.eth.wait_for_transaction_receipt(call.transact(params))
        assert receipt["status"] == 1, receipt
        return receipt

    def reverts(self, call: Any, sender: str, error: str) -> None:
        """``call`` from ``sender`` reverts with the custom error ``error`` (a signature)."""
        with pytest.raises(ContractLogicError) as info:
            call.transact({"from": sender})
        data = info.value.data
        assert isinstance(data, str)
        assert data.startswith(error_selector(error)), (data, error)

    def gateway(self, name: str = "chain-a", units: int = 1) -> Contract:
        """A fresh gateway with the relayer added and destinations chain-b and chain-a."""
        gw = self.deploy("CrossChainGateway", name, units, RECEIVER_GAS, ACK_GAS)
        self.tx(gw.functions.addRelayer(self.relayer), self.owner)
        for dst in ("chain-a", "chain-b"):
            self.tx(gw.functions.setDestination(dst, PAYLOAD_CAP), self.owner)
        return gw

    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])


def logs_of(receipt: TxReceipt, address: str) -> list[DecodedLog]:
    return [
        DecodedLog(
            address=bytes.fromhex(log["address"][2:]),
            topics=tuple(bytes(t) for t in log["topics"]),
            data=bytes(log["data"]),
        )
        for log in receipt["logs"]
        if log["address"].lower() == address.lower()
    ]


def events(receipt: TxReceipt, address: str, name: str) -> list[dict[str, Any]]:
    """The ``name`` events ``address`` emitted, decoded strictly (verifier.events)."""
    event = EVENTS[name]
    out: list[dict[str, Any]] = []
    for log in logs_of(receipt, address):
        if log.topics and log.topics[0] == event.topic0(keccak256):
            decoded: DecodedEvent = decode_event(log, event, keccak256)
            out.append(dict(decoded.args))
    return out


def sent_message(args: dict[str, Any], src_gateway: str) -> Message:
    """The Message a decoded MessageSent states."""
    return Message(
        src_chain=args["srcChain"],
        src_gateway=bytes.fromhex(src_gateway[2:]),
        dst_chain=args["dstChain"],
        nonce=args["nonce"],
        sender=bytes.fromhex(str(args["sender"])[2:]),
        receiver=bytes.fromhex(str(args["receiver"])[2:]),
        payload=bytes(args["payload"]),
        timeout=args["timeout"],
    )


def decode_words(types: list[str], data: bytes) -> tuple[Any, ...]:
    return tuple(decode(types, data))


@pytest.fixture(name="chain", scope="module")
def _chain() -> Iterator[EvmChain]:
    """One Anvil for the test module (automine: one block per transaction)."""
    with running_anvil(port=0) as anvil:
        yield EvmChain(anvil, Web3(Web3.HTTPProvider(anvil.url)))
