"""Helpers for the hostile-client tests: a devnode subprocess, raw HTTP, crafted transactions."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from adapters.fisco.tars import TarsWriter

# Init code of an endless loop: JUMPDEST PUSH1 0 JUMP.
ENDLESS_LOOP = bytes.fromhex("5b600056")
# Init code deploying that loop as runtime code: PUSH4 5b600056 PUSH1 0 MSTORE
# PUSH1 4 PUSH1 28 RETURN.
DEPLOY_ENDLESS_LOOP = bytes.fromhex("635b600056600052600460" + "1cf3")
# Init code deploying TIMESTAMP PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN (returns block.timestamp).
RUNTIME_TIMESTAMP = bytes.fromhex("4260005260206000f3")
DEPLOY_TIMESTAMP = bytes.fromhex("68" + RUNTIME_TIMESTAMP.hex() + "600052600960" + "17f3")


@dataclass
class DevnodeProcess:
    proc: subprocess.Popen[str]
    url: str
    stderr_lines: list[str] = field(default_factory=list)

    @property
    def address(self) -> tuple[str, int]:
        parts = urllib.parse.urlsplit(self.url)
        assert parts.hostname is not None
        assert parts.port is not None
        return parts.hostname, parts.port


# ``python -m devnet.fisco.cli`` under a lower soft file limit (not preexec_fn: this process
# has threads).
_LAUNCHER = """
import resource, runpy, sys
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv.pop(1)), hard))
runpy.run_module("devnet.fisco.cli", run_name="__main__", alter_sys=True)
"""


@contextlib.contextmanager
def devnode_process(*args: str, nofile: int = 0) -> Iterator[DevnodeProcess]:
    """``python -m devnet.fisco.cli --port 0 ARGS``, with at most ``nofile`` open files if
    given; SIGTERM and a wait on exit."""
    launch = ["-c", _LAUNCHER, str(nofile)] if nofile else ["-m", "devnet.fisco.cli"]
    command = [sys.executable, *launch, "--port", "0", "--seed", "hostile"]
    with subprocess.Popen(
        [*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        node = DevnodeProcess(proc, proc.stdout.readline().split()[-1])
        stderr = proc.stderr
        reader = threading.Thread(target=lambda: node.stderr_lines.extend(stderr), daemon=True)
        reader.start()
        try:
            yield node
        finally:
            if proc.poll() is None:
                proc.terminate()
            proc.wait(timeout=30)
            reader.join(timeout=5)


def http_exchange(address: tuple[str, int], request: bytes, timeout: float = 10) -> bytes:
    """Send raw bytes, read the answer until the server closes or goes quiet."""
    with socket.create_connection(address, timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(request)
        data = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                data += chunk
    return data


def status_of(answer: bytes) -> int:
    """The status code of a raw HTTP answer (0 when there is none)."""
    parts = answer.split(b"\r\n", 1)[0].split(b" ")
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def tars_transaction(version: int, **fields: Any) -> bytes:
    """A Transaction struct with any version (no signature): for decoder tests."""
    data = TarsWriter()
    data.write_int(1, version)
    data.write_string(2, fields.get("chain_id", "chain0"))
    data.write_string(3, fields.get("group_id", "group0"))
    data.write_int(4, fields.get("block_limit", 100))
    data.write_string(5, fields.get("nonce", "1"))
    data.write_bytes(7, b"")
    outer = TarsWriter()
    outer.write_struct(1, data.getvalue())
    outer.write_bytes(3, b"\x01" * 65)
    return outer.getvalue()


def zero_list_field(tag: int, count: int) -> bytes:
    """A TARS LIST field of ``count`` zero-valued items (unknown tags are skipped, item by item)."""
    return bytes([(tag << 4) | 9, 0x02]) + count.to_bytes(4, "big") + b"\x0c" * count
