"""Hostile HTTP clients: malformed framing, huge bodies, big TARS lists and connection floods
neither crash the devnode nor delay another client's answer."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from adapters.fisco.transaction import build_transaction, encode_transaction, sign_transaction
from devnet.fisco.node import DevNode, DevNodeOptions, DevNodeThread
from devnet.fisco.server import HttpLimits
from tests.integration.devnet.client import CLIENT_KEY, SUITE, RpcClient, selector, uint
from tests.integration.devnet.hostile import (
    devnode_process,
    http_exchange,
    status_of,
    zero_list_field,
)

pytestmark = pytest.mark.integration
BODY = b'{"jsonrpc":"2.0","method":"getBlockNumber","params":["group0",""],"id":1}'
HEAD = b"POST / HTTP/1.1\r\nHost: devnode\r\n"
CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
MALFORMED = {
    "underscore-length": HEAD + b"Content-Length: 7_3\r\n\r\n" + BODY,
    "plus-length": HEAD + b"Content-Length: +73\r\n\r\n" + BODY,
    "negative-length": HEAD + b"Content-Length: -1\r\n\r\n" + BODY,
    "hex-length": HEAD + b"Content-Length: 0x49\r\n\r\n" + BODY,
    "duplicate-length": HEAD + b"Content-Length: 73\r\nContent-Length: 73\r\n\r\n" + BODY,
    "conflicting-length": HEAD + b"Content-Length: 73\r\nContent-Length: 5\r\n\r\n" + BODY,
    "chunked-and-length": HEAD
    + b"Content-Length: 73\r\nTransfer-Encoding: chunked\r\n\r\n"
    + CHUNKED,
    "xchunked": HEAD + b"Transfer-Encoding: xchunked\r\n\r\n" + CHUNKED,
    "chunked-then-gzip": HEAD + b"Transfer-Encoding: chunked, gzip\r\n\r\n" + CHUNKED,
    "chunked-twice": HEAD
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    + CHUNKED,
    "bad-chunk-size": HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
}


def _url_address(node: DevNode) -> tuple[str, int]:
    return node.options.host, node.port


@pytest.mark.parametrize("request_bytes", MALFORMED.values(), ids=MALFORMED.keys())
def test_malformed_framing_is_400(node: DevNode, request_bytes: bytes) -> None:
    """Every ambiguous or malformed length or coding gets a 400-class answer, never a body."""
    answer = http_exchange(_url_address(node), request_bytes)
    assert 400 <= status_of(answer) < 500, answer[:200]
    assert b'"result"' not in answer


def test_well_formed_framing_still_served(node: DevNode) -> None:
    """Plain and chunked bodies, keep-alive (two requests on one connection) and OPTIONS."""
    address = _url_address(node)
    plain = HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    chunked = HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + CHUNKED
    close = HEAD + b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)
    answer = http_exchange(address, plain + chunked + close)
    assert answer.count(b"HTTP/1.1 200 OK") == 3
    assert answer.count(b'"result"') == 3
    options = http_exchange(address, b"OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(options) == 200


def _while_in_flight(node: DevNode, hostile: Future[Any]) -> int:
    """getBlockNumber answers from another client while ``hostile`` has not finished."""
    answered = 0
    for _ in range(3):
        assert isinstance(RpcClient(node.url).call("getBlockNumber"), int)
        answered += 1
    assert not hostile.done(), "the hostile request finished before the other client asked"
    return answered


def test_64_mib_body_refused_without_delaying_others(node: DevNode) -> None:
    """A 64 MiB body is answered 413 as soon as its length is read; streamed without a length,
    it is cut at the cap. Another client is answered meanwhile."""
    address = _url_address(node)
    declared = HEAD + b"Content-Length: %d\r\n\r\n" % (64 << 20)
    assert status_of(http_exchange(address, declared + b"[" * 1024)) == 413
    chunked_head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    with ThreadPoolExecutor(1) as pool:
        upload = pool.submit(_chunked_upload, address, chunked_head, 64 << 20)
        time.sleep(0.2)
        _while_in_flight(node, upload)
        answer = upload.result(timeout=60)
    assert status_of(answer) == 413 or answer == b""


def _chunked_upload(address: tuple[str, int], head: bytes, total: int) -> bytes:
    chunk = 1 << 20
    body = b"%x\r\n%s\r\n" % (chunk, b"[" * chunk)
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(head)
        data = b""
        try:
            for _ in range(total // chunk):
                sock.sendall(body)
                time.sleep(0.05)
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass
        try:
            while part := sock.recv(65536):
                data += part
        except OSError:
            pass
        return data


@pytest.mark.parametrize(
    "params",
    [b"[]," * (4 << 20) + b"0", b"[" * (12 << 20), b'"' + b"[," * (6 << 20) + b'"'],
    ids=["4M-arrays", "12M-deep", "12M-string"],
)
def test_huge_json_decoded_off_the_loop(node: DevNode, params: bytes) -> None:
    """12 MiB JSON bodies (under the 16 MiB cap): millions of values or levels are -32600
    (the scan stops early), a long string is read whole; others are answered meanwhile."""
    body = b'{"jsonrpc":"2.0","method":"getBlockNumber","id":1,"params":[' + params + b"]}"
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(RpcClient(node.url).raw, body)
        answers = [RpcClient(node.url).call("getBlockNumber") for _ in range(3)]
        response = big.result(timeout=60)
    assert all(isinstance(a, int) for a in answers)
    if params.startswith(b'"'):
        assert response["error"]["code"] == -32000  # the string is no group of this node
    else:
        assert response["error"] == {
            "code": -32600,
            "message": "The JSON sent is not a valid Request object.",
        }


def test_big_tars_list_does_not_delay_others(node: DevNode, store_address: str) -> None:
    """A valid transaction carrying an unknown TARS list of 2 million items (4 MiB of hex) is
    decoded off the event loop and executed; another client is answered meanwhile."""
    data = build_transaction(
        chain_id="chain0",
        group_id="group0",
        block_limit=RpcClient(node.url).call("getBlockNumber") + 100,
        to=store_address,
        input=selector("set(uint256)") + uint(11),
    )
    tx = encode_transaction(sign_transaction(data, CLIENT_KEY, SUITE))
    raw = "0x" + (tx + zero_list_field(12, 2_000_000)).hex()
    with ThreadPoolExecutor(1) as pool:
        big = pool.submit(RpcClient(node.url).call, "sendTransaction", raw, False)
        time.sleep(0.3)
        _while_in_flight(node, big)
        receipt = big.result(timeout=90)
    assert receipt["status"] == 0


def test_connection_flood_is_capped_quietly() -> None:
    """With 128 files allowed (so at most 96 connections), 600 idle connections and 50 stalled
    uploads neither starve a new client nor fill the log; the node stops cleanly afterwards."""
    args = ("--max-connections", "1000", "--idle-timeout-s", "30")
    with devnode_process(*args, nofile=128) as node:
        flood: list[socket.socket] = []
        try:
            for index in range(650):
                sock = socket.create_connection(node.address, timeout=10)
                flood.append(sock)
                if index >= 600:  # a request whose body never comes: busy, not idle
                    sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
            client = RpcClient(node.url)
            answers = [client.call("getBlockNumber") for _ in range(20)]
            assert all(isinstance(a, int) for a in answers)
        finally:
            for sock in flood:
                sock.close()
        after = http_exchange(node.address, HEAD + b"Connection: close\r\n" + _length(BODY))
        assert status_of(after) == 200
        node.proc.terminate()
        assert node.proc.wait(timeout=10) == 0
    assert len(node.stderr_lines) < 5, node.stderr_lines


def _length(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%s" % (len(body), body)


def test_busy_connections_at_the_cap_get_503(caplog: pytest.LogCaptureFixture) -> None:
    """When every allowed connection is busy, a new one is answered 503 at once, not queued;
    stalled uploads that then disconnect leave nothing in the log."""
    options = DevNodeOptions(port=0, seed="cap", http=HttpLimits(max_connections=8))
    with DevNodeThread(options) as node:
        address = _url_address(node)
        stalled = [socket.create_connection(address, timeout=10) for _ in range(8)]
        try:
            for sock in stalled:
                sock.sendall(HEAD + b"Content-Length: 100\r\n\r\n{")
            deadline = time.monotonic() + 10
            while node.http.open_connections < 8:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.2)  # every handler is waiting for its body
            answer = http_exchange(address, HEAD + b"Connection: close\r\n" + _length(BODY))
            assert status_of(answer) == 503
            assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {"error": "too many connections"}
        finally:
            for sock in stalled:
                sock.close()
        deadline = time.monotonic() + 10
        while node.http.open_connections:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert RpcClient(node.url).call("getBlockNumber") == 0
    assert not [r for r in caplog.records if r.levelno >= 30], caplog.records
