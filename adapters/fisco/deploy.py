"""``gateway deploy`` on FISCO BCOS 3.x: plain JSON-RPC over HTTP or mutual TLS, no gas."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Collection, Sequence
from typing import Any, Final

from adapters.base import MAX_RESPONSE_BYTES, display_url, parse_json_answer
from adapters.deploy import (
    DEPLOY_RECEIPT_TIMEOUT_S,
    DEPLOY_RPC_TIMEOUT_S,
    DeployError,
    decode_call_output,
    encode_call,
    encode_deploy,
    transport_reason,
)
from adapters.fisco.settings import FiscoEndpoint
from adapters.fisco.transaction import (
    account_address,
    build_transaction,
    sign_transaction,
    transaction_hex,
)
from verifier.hashing import CryptoSuite, hasher_for

FISCO_BLOCK_LIMIT_AHEAD: Final = 500


class FiscoDeployClient:
    """The first endpoint that answers; the configured sealers are compared with the node's."""

    def __init__(
        self,
        *,
        name: str,
        chain_id: str,
        group_id: str,
        crypto: CryptoSuite,
        endpoints: Sequence[FiscoEndpoint],
        sealer_ids: Collection[str],
        key: bytes,
    ) -> None:
        self.name, self.chain_id, self.group_id = name, chain_id, group_id
        self.crypto, self.key = crypto, key
        if crypto is CryptoSuite.SM3_SM2:
            raise DeployError(
                f"{self.name} uses sm3-sm2, whose selectors and code need an SM3 build of the "
                "contracts; contracts/artifacts.json is the keccak256 build"
            )
        self.hasher = hasher_for(crypto.hash_scheme)
        self.sender = account_address(key, crypto)
        self._id = 0
        problems = []
        for endpoint in endpoints:
            self.endpoint, self._tls = display_url(endpoint.url), endpoint
            try:
                self.head = int(self._rpc("getBlockNumber"))
                break
            except DeployError as exc:
                problems.append(str(exc))
        else:
            raise DeployError("; ".join(problems))
        self.warnings = self._check_sealers(sealer_ids)

    def describe(self) -> str:
        return (
            f"{self.name} (fisco-bcos-3, {self.chain_id}/{self.group_id}, block "
            f"{self.head}) at {self.endpoint}"
        )

    def address_of(self, key: bytes) -> str:
        return account_address(key, self.crypto)

    def _check_sealers(self, configured: Collection[str]) -> tuple[str, ...]:
        listed = self._rpc("getSealerList")
        ids = {
            str(s.get("nodeID", "") if isinstance(s, dict) else s).lower().removeprefix("0x")
            for s in (listed if isinstance(listed, list) else [])
        }
        if ids == set(configured):
            return ()
        return (
            f"{self.endpoint}'s sealers differ from chains.{self.name}.sealers (the trust root): "
            "evidence from this chain will not verify until they agree",
        )

    def _ssl_context(self) -> ssl.SSLContext | None:
        endpoint = self._tls
        if not endpoint.url.startswith("https:"):
            return None
        context = ssl.create_default_context(cafile=endpoint.ca_cert)
        context.check_hostname = False  # FISCO certificates name the node, not its host
        if endpoint.client_cert is not None:
            context.load_cert_chain(endpoint.client_cert, endpoint.client_key)
        return context

    def _rpc(self, method: str, *params: object) -> Any:
        self._id += 1
        body = {
            "jsonrpc": "2.0",
            "id": self._id,
            "method": method,
            "params": [self.group_id, "", *params],
        }
        request = urllib.request.Request(  # noqa: S310 (http(s) only: checked by the config)
            self._tls.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(  # noqa: S310 (http(s) only: checked by the config)
                request, timeout=DEPLOY_RPC_TIMEOUT_S, context=self._ssl_context()
            ) as response:
                # bounded before parsing: json.loads of [[[[... crashes the process
                answer = parse_json_answer(
                    response.read(MAX_RESPONSE_BYTES + 1), what=f"{method} answer"
                )
        except urllib.error.HTTPError as exc:
            raise DeployError(f"{self.endpoint} answered {method} with HTTP {exc.code}") from None
        except (OSError, ssl.SSLError) as exc:
            reason = transport_reason(getattr(exc, "reason", exc))
            raise DeployError(f"cannot reach {self.name} at {self.endpoint}: {reason}") from None
        except ValueError:
            raise DeployError(f"{self.endpoint} answered {method} with non-JSON") from None
        if not isinstance(answer, dict) or ("result" not in answer and "error" not in answer):
            raise DeployError(f"{self.endpoint} answered {method} with no result")
        if answer.get("error") is not None:
            error = answer["error"]
            detail = error.get("message") if isinstance(error, dict) else error
            raise DeployError(f"{self.name} refused {method}: {str(detail)[:300]}")
        return answer["result"]

    def _send(self, to: str, data: bytes, abi: str = "") -> dict[str, Any]:
        head = int(self._rpc("getBlockNumber"))
        tx = build_transaction(
            chain_id=self.chain_id,
            group_id=self.group_id,
            block_limit=head + FISCO_BLOCK_LIMIT_AHEAD,
            to=to,
            input=data,
            abi=abi,
        )
        signed = sign_transaction(tx, self.key, self.crypto)
        receipt = self._rpc("sendTransaction", transaction_hex(signed), False)
        tx_hash = "0x" + signed.data_hash.hex()
        deadline = time.monotonic() + DEPLOY_RECEIPT_TIMEOUT_S
        while not (isinstance(receipt, dict) and "status" in receipt):
            if time.monotonic() > deadline:
                raise DeployError(f"no receipt for {tx_hash} from {self.name}")
            time.sleep(0.5)
            receipt = self._rpc("getTransactionReceipt", tx_hash, False)
        if receipt["status"] != 0:
            message = receipt.get("message") or ""
            raise DeployError(
                f"transaction {tx_hash} failed on {self.name} with status {receipt['status']}"
                + (f": {message}" if message else "")
            )
        return receipt

    def deploy(self, contract: str, args: Sequence[object]) -> tuple[str, int]:
        data, abi = encode_deploy(contract, args)
        receipt = self._send("", data, abi)
        return str(receipt["contractAddress"]), int(receipt["blockNumber"])

    def transact(self, to: str, contract: str, fn: str, args: Sequence[object]) -> int:
        receipt = self._send(to, encode_call(contract, fn, args, self.hasher))
        return int(receipt["blockNumber"])

    def call(self, to: str, contract: str, fn: str, args: Sequence[object]) -> tuple[Any, ...]:
        data = "0x" + encode_call(contract, fn, args, self.hasher).hex()
        result = self._rpc("call", to, data)
        if not isinstance(result, dict) or result.get("status") != 0:
            raise DeployError(f"{fn} call failed on {self.name}: {result!r:.200}")
        return decode_call_output(contract, fn, bytes.fromhex(str(result["output"])[2:]))
