"""Regression tests: error codes, messages and edge results as FISCO-BCOS v3.3.0 gives them."""

from __future__ import annotations

import json
import socket
import urllib.parse
from typing import Any

import pytest

from adapters.fisco.transaction import build_transaction, encode_transaction, sign_transaction
from devnet.fisco.evm import error_output
from devnet.fisco.node import DevNode
from tests.integration.devnet.client import CLIENT_KEY, SUITE, RpcClient, selector, uint

pytestmark = pytest.mark.integration
NO_CODE = "0x" + "11" * 20
CALL_ADDRESS_ERROR = "0x" + error_output("Call address error.").hex()


def _error(response: dict[str, Any]) -> tuple[int, str]:
    assert "result" not in response, response
    return response["error"]["code"], response["error"]["message"]


def _raw(client: RpcClient, method: str, params: list[Any]) -> tuple[int, str]:
    return _error(client.request(method, params))


def test_error_output_encoding() -> None:
    """Error(string) output is selector 0x08c379a0, offset, length and padded text."""
    out = error_output("Call address error.")
    assert out[:4].hex() == "08c379a0"
    assert int.from_bytes(out[4:36], "big") == 32
    assert int.from_bytes(out[36:68], "big") == 19
    assert out[68:87] == b"Call address error."
    assert len(out) == 100


def test_transaction_to_address_without_code(client: RpcClient) -> None:
    """A tx to an address with no code is status 19 with the Error(string) output."""
    receipt = client.send(NO_CODE, selector("set(uint256)") + uint(1))
    assert (receipt["status"], receipt["output"], receipt["message"]) == (
        19,
        CALL_ADDRESS_ERROR,
        "",
    )
    stored = client.call("getTransactionReceipt", receipt["transactionHash"], False)
    assert (stored["status"], stored["output"]) == (19, CALL_ADDRESS_ERROR)


def test_transaction_to_malformed_address(client: RpcClient) -> None:
    """A malformed ``to`` names no contract: status 19 and the same output."""
    receipt = client.send("0x1234", b"")
    assert (receipt["status"], receipt["output"]) == (19, CALL_ADDRESS_ERROR)


def test_call_without_code(client: RpcClient) -> None:
    """``call`` on an address with no code, or a malformed one, is status 19."""
    for to in (NO_CODE, "nonsense"):
        result = client.call("call", to, "0x" + selector("get()").hex())
        assert (result["status"], result["output"]) == (19, CALL_ADDRESS_ERROR)


def test_call_bad_calldata(client: RpcClient, store_address: str) -> None:
    """Bad call data is decodeData's exception: -32600 with its what()."""
    assert _raw(client, "call", ["group0", "", store_address, "0x123"]) == (
        -32600,
        "Unexpect hex string",
    )
    assert _raw(client, "call", ["group0", "", store_address, ""])[1] == "Unexpect hex string"
    assert _raw(client, "call", ["group0", "", store_address, "0xzz"]) == (-32600, "std::exception")


def test_failed_evm_status_keeps_output(client: RpcClient) -> None:
    """A failed execution other than revert carries its Error(string) text as output."""
    code = bytes.fromhex("fe")  # INVALID opcode as init code
    receipt = client.send("", code)
    assert receipt["status"] == 10
    assert receipt["output"] == "0x" + error_output("Execution invalid/undefined opcode.").hex()


def test_block_not_found_errors(client: RpcClient) -> None:
    """getBlockByNumber: -1 is 3003 "Wrong argument", beyond the head 3006."""
    assert _raw(client, "getBlockByNumber", ["group0", "", -1]) == (3003, "Wrong argument")
    assert _raw(client, "getBlockByNumber", ["group0", "", 10**9]) == (
        3006,
        "Get block failed with errors!",
    )


def test_hash_not_found_errors(client: RpcClient) -> None:
    """Unknown tx, receipt and block hashes give the ledger's 3008 messages."""
    unknown = "0x" + "ab" * 32
    assert _raw(client, "getTransaction", ["group0", "", unknown, False]) == (
        3008,
        "GetBatchTxsByHashList error",
    )
    assert _raw(client, "getTransactionReceipt", ["group0", "", unknown, False]) == (
        3008,
        "GetTransactionReceiptByHash",
    )
    assert _raw(client, "getBlockByHash", ["group0", "", unknown]) == (
        3008,
        "GetBlockNumberByHash error ",
    )
    assert _raw(client, "getSystemConfigByKey", ["group0", "", "foo"]) == (
        3008,
        "Entry: foo does not exists!",
    )


def test_malformed_hash_parameters(client: RpcClient) -> None:
    """Odd or over-long hex is "Invalid input string!"; short even hex is right-aligned."""
    for bad in ("0x123", "0x" + "00" * 33):
        for method in ("getTransaction", "getTransactionReceipt", "getBlockByHash"):
            assert _raw(client, method, ["group0", "", bad, False]) == (
                -32600,
                "Invalid input string!",
            )
    assert _raw(client, "getTransaction", ["group0", "", "0x1234", False])[0] == 3008


def test_short_block_hash_is_right_aligned(client: RpcClient) -> None:
    """A block hash with leading zero bytes may be given without them."""
    genesis = client.call("getBlockHashByNumber", 0)
    stripped = "0x" + genesis[2:].lstrip("0")
    if len(stripped) % 2:
        stripped = "0x0" + stripped[2:]
    assert client.call("getBlockByHash", stripped)["hash"] == genesis


def test_groups(node: DevNode, client: RpcClient) -> None:
    """ "" and non-strings are the default group; unknown groups -32000; group info exact."""
    assert isinstance(client.request("getSealerList", [])["result"], list)
    assert isinstance(client.request("getBlockNumber", [7, ""])["result"], int)
    message = (
        "Invalid request for the specified node of doesn't exist or doesn't started!"
        ",request=getBlockNumber,chain=chain0,group=group9,node=n1"
    )
    assert _raw(client, "getBlockNumber", ["group9", "n1"]) == (-32000, message)
    for method in ("getCode", "getABI"):
        assert _raw(client, method, ["", "", NO_CODE]) == (
            -32005,
            "The group  does not exist!",
        )
    assert _raw(client, "sendTransaction", ["", "", "0x00", False])[0] == -32005
    assert client.request("getGroupInfo", ["group9"])["result"] is None
    assert client.request("getGroupInfo", [""])["result"] is None
    assert (
        client.request("getGroupNodeInfo", ["group9", node.sealer_keys[0].node_id])["result"]
        is None
    )
    assert len(client.call("getGroupInfo")["nodeList"]) == 1


def test_get_code_without_code(client: RpcClient) -> None:
    """getCode of an address without code is "" (and 0X prefixes are accepted)."""
    assert client.call("getCode", NO_CODE) == ""
    assert client.call("getCode", "0X" + "11" * 20) == ""


def test_non_object_bodies(client: RpcClient) -> None:
    """An array or scalar body is -32700; null is -32600."""
    parse = (-32700, "Invalid JSON was received by the server.")
    body = json.dumps({"jsonrpc": "2.0", "method": "getBlockNumber", "params": [], "id": 1})
    assert _error(client.raw(f"[{body}]".encode())) == parse
    assert _error(client.raw(b"42")) == parse
    assert _error(client.raw(b"null"))[0] == -32600


def test_int64_messages(client: RpcClient) -> None:
    """jsoncpp asInt64: UInt64 range, doubles out of range, fractions truncated."""
    assert _raw(client, "getBlockByNumber", ["group0", "", 2**63]) == (
        -32600,
        "LargestUInt out of Int64 range",
    )
    for big in (2**64, 1e30, -(2**63) - 1):
        assert _raw(client, "getBlockByNumber", ["group0", "", big]) == (
            -32600,
            "double out of Int64 range",
        )
    assert client.call("getBlockByNumber", 0.7)["number"] == 0


def test_sealer_order(node: DevNode, client: RpcClient) -> None:
    """Sealers are sorted by node ID everywhere, as ConsensusConfig sorts them."""
    ids = [k.node_id for k in node.sealer_keys]
    assert ids == sorted(ids)
    assert [s["nodeID"] for s in client.call("getSealerList")] == ids
    status = json.loads(client.call("getConsensusStatus"))
    assert [n["nodeID"] for n in status["consensusNodeList"]] == ids
    header = client.call("getBlockByNumber", client.call("getBlockNumber"), True)
    if header["number"] > 0:
        assert header["sealerList"] == ["0x" + i for i in ids]


def test_sync_status_archived_block_number(client: RpcClient) -> None:
    """getSyncStatus has archivedBlockNumber at top level and per peer."""
    status = json.loads(client.call("getSyncStatus"))
    assert status["archivedBlockNumber"] == 0
    assert all(p["archivedBlockNumber"] == 0 for p in status["peers"])


def test_bad_signature_with_stale_block_limit(client: RpcClient, store_address: str) -> None:
    """blockLimit is checked before the signature: 10001, not 10008."""
    data = build_transaction(
        chain_id="chain0",
        group_id="group0",
        block_limit=client.call("getBlockNumber"),
        to=store_address,
        input=b"",
    )
    signed = sign_transaction(data, CLIENT_KEY, SUITE)
    broken = signed.__class__(
        data=data, data_hash=signed.data_hash, signature=b"\x01" * 64 + b"\x05"
    )
    tx = "0x" + encode_transaction(broken).hex()
    assert _raw(client, "sendTransaction", ["group0", "", tx, False]) == (
        10001,
        "BlockLimitCheckFail",
    )


def test_chunked_request_body(node: DevNode) -> None:
    """A Transfer-Encoding: chunked request is read like a Content-Length one."""
    body = b'{"jsonrpc":"2.0","method":"getBlockNumber","params":["group0",""],"id":5}'
    url = urllib.parse.urlsplit(node.url)
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 10]), body[i : i + 10]) for i in range(0, len(body), 10)
    )
    request = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunks
        + b"0\r\n\r\n"
    )
    with socket.create_connection((url.hostname, url.port), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, answer = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(answer)["id"] == 5
