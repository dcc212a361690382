"""Admission and envelope errors: the node's codes and messages, never a stack trace."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.fisco.transaction import (
    build_transaction,
    encode_transaction,
    sign_transaction,
)
from devnet.fisco.errors import MSG_HASH_MISMATCH
from tests.integration.devnet.client import CLIENT_KEY, SUITE, RpcClient, selector, uint

pytestmark = pytest.mark.integration


def _error(response: dict[str, Any]) -> tuple[int, str]:
    assert "result" not in response, response
    return response["error"]["code"], response["error"]["message"]


def _send(client: RpcClient, tx_hex: str) -> tuple[int, str]:
    return _error(client.request("sendTransaction", ["group0", "", tx_hex, False]))


def _set(value: int) -> bytes:
    return selector("set(uint256)") + uint(value)


@pytest.mark.parametrize(
    ("kwargs", "code", "message"),
    [
        ({"chain_id": "chain9"}, 10006, "InvalidChainId"),
        ({"group_id": "group9"}, 10007, "InvalidGroupId"),
        ({"block_limit_offset": 0}, 10001, "BlockLimitCheckFail"),
        ({"block_limit_offset": 1001}, 10001, "BlockLimitCheckFail"),
    ],
)
def test_rejections(
    client: RpcClient, store_address: str, kwargs: dict[str, Any], code: int, message: str
) -> None:
    """chainID, groupID and the blockLimit window (current < limit <= current + 1000)."""
    offset = kwargs.pop("block_limit_offset", None)
    if offset is not None:
        kwargs["block_limit"] = client.call("getBlockNumber") + offset
    assert _send(client, client.tx_hex(store_address, _set(1), **kwargs)) == (code, message)


def test_block_limit_edges_accepted(client: RpcClient, store_address: str) -> None:
    """blockLimit = current + 1000 is inside the window."""
    limit = client.call("getBlockNumber") + 1000
    assert client.send(store_address, _set(2), block_limit=limit)["status"] == 0


def test_nonce_reuse_rejected(client: RpcClient, store_address: str) -> None:
    """A nonce already on chain gives NonceCheckFail, even with other content."""
    client.send(store_address, _set(3), nonce="424242")
    tx = client.tx_hex(store_address, _set(4), nonce="424242")
    assert _send(client, tx) == (10000, "NonceCheckFail")


def test_bad_signature_rejected(client: RpcClient, store_address: str) -> None:
    """A signature over other data recovers another sender; a broken one is InvalidSignature."""
    data = build_transaction(
        chain_id="chain0",
        group_id="group0",
        block_limit=client.call("getBlockNumber") + 10,
        to=store_address,
        input=_set(5),
    )
    signed = sign_transaction(data, CLIENT_KEY, SUITE)
    broken = signed.__class__(
        data=data, data_hash=signed.data_hash, signature=b"\x01" * 64 + b"\x05"
    )
    assert _send(client, "0x" + encode_transaction(broken).hex()) == (10008, "InvalidSignature")


def test_data_hash_mismatch_rejected(client: RpcClient, store_address: str) -> None:
    """A wire dataHash that is not the recomputed hash: the node's exception (code -1)."""
    data = build_transaction(
        chain_id="chain0",
        group_id="group0",
        block_limit=client.call("getBlockNumber") + 10,
        to=store_address,
        input=_set(6),
    )
    signed = sign_transaction(data, CLIENT_KEY, SUITE)
    forged = signed.__class__(data=data, data_hash=b"\x00" * 32, signature=signed.signature)
    assert _send(client, "0x" + encode_transaction(forged).hex()) == (-1, MSG_HASH_MISMATCH)


def test_malformed_transactions(client: RpcClient) -> None:
    """Odd hex, non-hex and non-TARS bytes are answered with code -1, not a crash."""
    for bad in ("0x123", "zz", "", "0x" + "ff" * 10):
        code, _ = _send(client, bad)
        assert code == -1


def test_envelope_errors(client: RpcClient) -> None:
    """Malformed JSON, missing fields, unknown methods and groups, wrong param types."""
    invalid = (-32600, "The JSON sent is not a valid Request object.")
    assert _error(client.raw(b"{not json")) == invalid
    assert _error(client.raw(b'{"jsonrpc":"2.0","method":"getBlockNumber","id":1}')) == invalid
    assert _error(client.raw(b'{"jsonrpc":"2.0","method":"x","params":{},"id":1}')) == invalid
    unknown = client.request("noSuchMethod", [])
    assert _error(unknown) == (-32601, "The method does not exist/is not available.")
    assert unknown["id"] == client._id
    assert unknown["jsonrpc"] == "2.0"
    code, _ = _error(client.request("getBlockNumber", ["group9", ""]))
    assert code == -32000
    assert isinstance(client.request("getBlockNumber", [])["result"], int)  # "" is the default
    code, message = _error(client.request("getBlockByNumber", ["group0", "", "one"]))
    assert (code, message) == (-32600, "Value is not convertible to Int64.")
    missing = client.request("getTransactionReceipt", ["group0", "", "0x" + "00" * 32, False])
    assert _error(missing)[0] == 3008


def test_deeply_nested_request_is_an_error_not_a_crash(client: RpcClient) -> None:
    """A request nested 100,000 levels deep gets -32600 and the node keeps serving."""
    deep = b"[" * 100_000 + b"]" * 100_000
    body = b'{"jsonrpc":"2.0","method":"getBlockNumber","id":1,"params":' + deep + b"}"
    assert _error(client.raw(body)) == (-32600, "The JSON sent is not a valid Request object.")
    assert isinstance(client.call("getBlockNumber"), int)
