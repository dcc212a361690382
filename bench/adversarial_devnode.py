"""The devnode under hostile clients: how fast a second client is answered meanwhile.

While a first client sends each hostile input (an endless-loop transaction, a 64 MiB body, the
biggest TARS list a body may carry, a connection flood, malformed HTTP), a second client asks
``getBlockNumber`` over and over on fresh connections; the rows give that client's latency
(p50 and max) and what the hostile client got. The devnode runs as ``python -m
devnet.fisco.cli`` with its default limits, so the figures are the CLI's.

Run: ``.venv/bin/python -m bench.adversarial_devnode``. ``bench.adversarial`` calls ``run()``.
Not a timed test: figures depend on the machine (2 cores here) and one run.
"""

from __future__ import annotations

import contextlib
import json
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

from adapters.fisco.transaction import (
    build_transaction,
    encode_transaction,
    sign_transaction,
)
from verifier.hashing import CryptoSuite, keccak256

Row = tuple[str, str]
_KEY = keccak256(b"adversarial devnode bench key")
_ENDLESS_LOOP = bytes.fromhex("5b600056")  # JUMPDEST PUSH1 0 JUMP, as init code
_HEAD = b"POST / HTTP/1.1\r\nHost: devnode\r\n"
_BODY = b'{"jsonrpc":"2.0","method":"getBlockNumber","params":["group0",""],"id":1}'
_MALFORMED = (
    b"Content-Length: 7_3\r\n\r\n",
    b"Content-Length: +73\r\n\r\n",
    b"Content-Length: 73\r\nContent-Length: 73\r\n\r\n",
    b"Content-Length: 73\r\nTransfer-Encoding: chunked\r\n\r\n",
    b"Transfer-Encoding: xchunked\r\n\r\n",
    b"Transfer-Encoding: chunked, gzip\r\n\r\n",
)
_FLOOD = 2000
_MALFORMED_ROUNDS = 300


def _rpc(url: str, method: str, params: list[Any], timeout: float = 120) -> Any:
    body = json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": 1}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def _signed(url: str, to: str, data: bytes) -> bytes:
    limit = _rpc(url, "getBlockNumber", ["group0", ""])["result"] + 500
    tx = build_transaction(
        chain_id="chain0", group_id="group0", block_limit=limit, to=to, input=data
    )
    return encode_transaction(sign_transaction(tx, _KEY, CryptoSuite.KECCAK256_SECP256K1))


class _Prober:
    """A second client: getBlockNumber in a loop on fresh connections, latencies in ms."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.perf_counter()
            try:
                _rpc(self.url, "getBlockNumber", ["group0", ""], timeout=60)
            except OSError:
                self.failures += 1
            else:
                self.latencies.append((time.perf_counter() - start) * 1000)
            time.sleep(0.01)

    def __enter__(self) -> _Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def figure(self) -> str:
        if not self.latencies:
            return f"no answer ({self.failures} failed)"
        text = (
            f"p50 {statistics.median(self.latencies):.1f} ms, "
            f"max {max(self.latencies):.1f} ms ({len(self.latencies)} answers"
        )
        return text + (f", {self.failures} failed)" if self.failures else ")")


@contextlib.contextmanager
def _devnode(*args: str) -> Iterator[tuple[str, list[str]]]:
    command = [sys.executable, "-m", "devnet.fisco.cli", "--port", "0", "--seed", "adversarial"]
    with subprocess.Popen(
        [*command, "--block-interval-ms", "100", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        url = proc.stdout.readline().split()[-1]
        lines: list[str] = []
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: lines.extend(stderr), daemon=True)
        reader.start()
        try:
            yield url, lines
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=5)


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _exchange(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=60) as sock:
        answer = b""
        with contextlib.suppress(OSError):
            sock.sendall(data)
            while chunk := sock.recv(65536):
                answer += chunk
    return answer


def _status(answer: bytes) -> str:
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    return parts[1].decode() if len(parts) > 1 else "closed"


def _timed(label: str, url: str, attack: Callable[[], str]) -> list[Row]:
    with _Prober(url) as prober:
        time.sleep(0.2)
        start = time.perf_counter()
        outcome = attack()
        elapsed = time.perf_counter() - start
    return [
        (f"{label}: getBlockNumber of another client", prober.figure()),
        (f"{label}: the hostile client got", f"{outcome} after {elapsed:.2f} s"),
    ]


def _endless_loop(url: str) -> str:
    receipt = _rpc(
        url, "sendTransaction", ["group0", "", "0x" + _signed(url, "", _ENDLESS_LOOP).hex(), False]
    )
    result = receipt["result"]
    return f"receipt status {result['status']}, gasUsed {result['gasUsed']}"


def _big_body(url: str) -> str:
    """64 MiB announced and streamed in 1 MiB writes, as the original report sent it; the
    figure is the time to the answer's status line (the node then discards what is sent)."""
    address = _address(url)
    with socket.create_connection(address, timeout=60) as sock:
        sock.sendall(_HEAD + b"Content-Length: %d\r\n\r\n" % (64 << 20))
        answer = b""
        with contextlib.suppress(OSError):
            for _ in range(64):
                sock.sendall(b"[" * (1 << 20))
            answer = sock.recv(65536)
    return f"HTTP {_status(answer)}"


def _big_tars_list(url: str, max_body: int) -> tuple[str, Callable[[], str]]:
    """A valid transaction plus an unknown TARS list as long as the body cap allows."""
    to = "0x" + "11" * 20  # no contract there: status 19 once executed
    tx = _signed(url, to, b"")
    count = (max_body - 256) // 2 - len(tx) - 8
    raw = tx + bytes([0xC9, 0x02]) + count.to_bytes(4, "big") + b"\x0c" * count
    body = json.dumps(
        {"jsonrpc": "2.0", "method": "sendTransaction", "id": 1}
        | {"params": ["group0", "", "0x" + raw.hex(), False]}
    ).encode()

    def attack() -> str:
        request = urllib.request.Request(url, data=body)
        with urllib.request.urlopen(request, timeout=300) as response:
            answer = json.loads(response.read())
        if "error" in answer:
            return f"error {answer['error']}"
        return f"admitted; receipt status {answer['result']['status']} (no code at {to})"

    return f"TARS list of {count / 1e6:.1f} M items ({len(body) / 2**20:.1f} MiB body)", attack


def _flood(url: str) -> str:
    address = _address(url)
    sockets: list[socket.socket] = []
    try:
        for _ in range(_FLOOD):
            sockets.append(socket.create_connection(address, timeout=10))
        time.sleep(1.0)
        return f"{len(sockets)} connections opened and held"
    finally:
        for sock in sockets:
            sock.close()


def _malformed(url: str) -> str:
    address = _address(url)
    statuses: dict[str, int] = {}
    for index in range(_MALFORMED_ROUNDS):
        answer = _exchange(address, _HEAD + _MALFORMED[index % len(_MALFORMED)] + _BODY)
        status = _status(answer)
        statuses[status] = statuses.get(status, 0) + 1
    return ", ".join(f"{n} x HTTP {s}" for s, n in sorted(statuses.items()))


def _raise_file_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def run() -> list[Row]:
    """Start a devnode (CLI defaults), attack it five ways, return (what, figure) rows."""
    _raise_file_limit(_FLOOD + 256)
    max_body = 16 * 1024 * 1024
    rows: list[Row] = []
    with _devnode() as (url, log_lines):
        with _Prober(url) as idle:
            time.sleep(2)
        rows.append(("idle: getBlockNumber", idle.figure()))
        rows += _timed("endless-loop transaction (30M gas cap)", url, lambda: _endless_loop(url))
        rows += _timed("64 MiB body", url, lambda: _big_body(url))
        label, attack = _big_tars_list(url, max_body)
        rows += _timed(label, url, attack)
        rows += _timed(f"flood of {_FLOOD} idle connections", url, lambda: _flood(url))
        rows += _timed(f"{_MALFORMED_ROUNDS} malformed requests", url, lambda: _malformed(url))
        time.sleep(0.5)
        rows.append(("devnode log lines during all of the above", str(len(log_lines))))
    return rows


def main() -> int:
    rows = run()
    width = max(len(what) for what, _ in rows)
    print("Devnode under hostile clients (python -m devnet.fisco.cli, default limits)")
    for what, figure in rows:
        print(f"{what:<{width}}  {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
