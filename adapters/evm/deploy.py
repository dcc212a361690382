"""``gateway deploy`` on an Ethereum-compatible chain: web3 over HTTP, signed locally.

Every answer is parsed with :func:`adapters.base.parse_json_answer` (bounded size, values and
nesting) instead of web3's plain ``json.loads``, which a ``[[[[...`` answer crashed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from eth_account import Account
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3Exception

from adapters.base import parse_json_answer
from adapters.deploy import (
    DEPLOY_RECEIPT_TIMEOUT_S,
    DEPLOY_RPC_TIMEOUT_S,
    DeployError,
    decode_call_output,
    encode_call,
    encode_deploy,
    first_line,
    transport_reason,
)
from verifier.hashing import keccak256


class _BoundedHTTPProvider(HTTPProvider):
    """web3's HTTP provider, its answers parsed bounded (ValueError otherwise)."""

    @staticmethod
    def decode_rpc_response(raw_response: bytes) -> Any:
        return parse_json_answer(raw_response, what="JSON-RPC answer")


class EvmDeployClient:
    """The first reachable http(s) endpoint serving ``chain_id``, and the funded deployer."""

    def __init__(self, *, name: str, chain_id: int, endpoints: Sequence[str], key: bytes) -> None:
        self.name = name
        self.chain_id = chain_id
        self.account = Account.from_key(key)
        self.sender = str(self.account.address)
        self.warnings: tuple[str, ...] = ()
        problems = []
        urls = [u for u in endpoints if u.startswith(("http://", "https://"))]
        if not urls:
            raise DeployError(f"gateway deploy needs an http(s) endpoint in chains.{self.name}")
        for url in urls:
            provider = _BoundedHTTPProvider(
                url,
                request_kwargs={"timeout": DEPLOY_RPC_TIMEOUT_S},
                exception_retry_configuration=None,
            )
            self.w3, self.endpoint = Web3(provider), url
            try:
                served = self.w3.eth.chain_id
            except (OSError, ValueError) as exc:
                problems.append(f"{url}: {transport_reason(exc)}")
                continue
            if served != self.chain_id:
                raise DeployError(
                    f"{url} serves chain id {served}, but chains.{self.name}.chain_id is "
                    f"{self.chain_id}"
                )
            break
        else:
            raise DeployError(f"cannot reach {self.name}: " + "; ".join(problems))
        with self._errors():
            if self.w3.eth.get_balance(self.account.address) == 0:
                raise DeployError(
                    f"the deploying account {self.sender} has no funds on {self.name}; fund it "
                    "(or set owner_key to a funded key)"
                )
            self.nonce = int(self.w3.eth.get_transaction_count(self.account.address, "pending"))

    def describe(self) -> str:
        return f"{self.name} (evm, chain id {self.chain_id}) at {self.endpoint}"

    def address_of(self, key: bytes) -> str:
        return str(Account.from_key(key).address)

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except ContractLogicError as exc:
            raise DeployError(f"{self.name} would revert it: {first_line(str(exc))}") from None
        except TimeExhausted:
            raise DeployError(
                f"no receipt from {self.name} within {DEPLOY_RECEIPT_TIMEOUT_S:.0f} s"
            ) from None
        except OSError as exc:
            raise DeployError(
                f"cannot reach {self.name} at {self.endpoint}: {transport_reason(exc)}"
            ) from None
        except (Web3Exception, ValueError) as exc:
            raise DeployError(f"{self.name} refused: {first_line(str(exc))[:300]}") from None

    def _send(self, to: str | None, data: bytes) -> Any:
        with self._errors():
            tx: dict[str, Any] = {
                "from": self.sender,
                "data": data,
                "nonce": self.nonce,
                "chainId": self.chain_id,
                "value": 0,
            }
            if to is not None:
                tx["to"] = to
            tx["gas"] = self.w3.eth.estimate_gas(tx) * 12 // 10 + 10_000  # type: ignore[arg-type]
            base = self.w3.eth.get_block("latest").get("baseFeePerGas")
            if base is None:
                tx["gasPrice"] = self.w3.eth.gas_price
            else:
                tip = self.w3.eth.max_priority_fee
                tx |= {"type": 2, "maxFeePerGas": 2 * base + tip, "maxPriorityFeePerGas": tip}
            signed = self.account.sign_transaction(tx)
            tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            self.nonce += 1
            receipt = self.w3.eth.wait_for_transaction_receipt(
                tx_hash, timeout=DEPLOY_RECEIPT_TIMEOUT_S
            )
        if receipt["status"] != 1:
            raise DeployError(
                f"transaction 0x{bytes(tx_hash).hex()} reverted on {self.name} "
                f"(block {receipt['blockNumber']})"
            )
        return receipt

    def deploy(self, contract: str, args: Sequence[object]) -> tuple[str, int]:
        data, _abi = encode_deploy(contract, args)
        receipt = self._send(None, data)
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    def transact(self, to: str, contract: str, fn: str, args: Sequence[object]) -> int:
        return int(self._send(to, encode_call(contract, fn, args, keccak256))["blockNumber"])

    def call(self, to: str, contract: str, fn: str, args: Sequence[object]) -> tuple[Any, ...]:
        with self._errors():
            data = encode_call(contract, fn, args, keccak256)
            output = self.w3.eth.call({"to": to, "data": data})
        return decode_call_output(contract, fn, bytes(output))
