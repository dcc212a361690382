"""``gateway deploy``'s view of a chain: one small synchronous client per family.

``adapters/evm/deploy.py`` (web3) and ``adapters/fisco/deploy.py`` (JSON-RPC) implement
:class:`DeployClient`; ``relay/deploy.py`` runs the steps. Deploying is a one-shot operator
command, not the relay's job, so these clients are synchronous and share nothing with the
adapters but the gateway ABI (:mod:`adapters.gateway_abi`) and the family's signing code.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any, Final, Protocol

from adapters.gateway_abi import OutputError, artifact, call_data, decode_output, deploy_data
from verifier.hashing import Hasher

DEPLOY_RPC_TIMEOUT_S: Final = 30.0
DEPLOY_RECEIPT_TIMEOUT_S: Final = 120.0


class DeployError(Exception):
    """A chain could not be reached or refused a deploy step; one line, never a key."""


class DeployClient(Protocol):
    """One chain, reached from the deploying (owner) account."""

    endpoint: str
    """The endpoint in use."""
    sender: str
    """The deploying account's address."""
    warnings: tuple[str, ...]
    """What the operator should know before anything is sent (one line each)."""

    def describe(self) -> str: ...

    def address_of(self, key: bytes) -> str: ...

    def deploy(self, contract: str, args: Sequence[object]) -> tuple[str, int]:
        """Create ``contract(args)``: its address and the block that holds it."""
        ...

    def transact(self, to: str, contract: str, fn: str, args: Sequence[object]) -> int:
        """Send ``fn(args)`` to ``to`` and wait for success: the block that holds it."""
        ...

    def call(self, to: str, contract: str, fn: str, args: Sequence[object]) -> tuple[Any, ...]:
        """``fn(args)``'s return values at the latest block."""
        ...


def encode_call(contract: str, fn: str, args: Sequence[object], hasher: Hasher) -> bytes:
    try:
        return call_data(fn, args, hasher, contract=contract)
    except LookupError as exc:
        raise DeployError(str(exc)) from None


def encode_deploy(contract: str, args: Sequence[object]) -> tuple[bytes, str]:
    """Creation code with the constructor's arguments, and the contract's ABI as JSON."""
    try:
        return deploy_data(contract, args), json.dumps(artifact(contract)["abi"])
    except LookupError as exc:
        raise DeployError(str(exc)) from None


def decode_call_output(contract: str, fn: str, data: bytes) -> tuple[Any, ...]:
    try:
        return decode_output(fn, data, contract=contract)
    except OutputError as exc:
        cause = type(exc.cause or exc).__name__
        raise DeployError(f"{fn} returned undecodable data ({cause})") from None


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown error"


def transport_reason(exc: BaseException) -> str:
    """A short, key-free reason for a transport error ('[Errno 111] Connection refused')."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] [^'\")]+", text)
    if match:
        return match.group(0).strip()
    return first_line(text)[:200] if text else type(exc).__name__
