"""Start and stop Anvil, the local Ethereum-compatible chain, from the project's pinned npm package.

``make setup`` (``npm ci``) puts the binary under ``node_modules``; nothing is downloaded here.
Anvil writes its funded dev accounts with ``--config-out``, and its listening address on stdout,
so a chain on port 0 (a free port, as the tests use) reports where it is.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CHAIN_ID = 31337
_LISTENING = re.compile(rb"Listening on ([0-9.]+):([0-9]+)")
_PLATFORMS = {("Linux", "x86_64"): "linux-amd64", ("Linux", "aarch64"): "linux-arm64"}


class AnvilError(RuntimeError):
    """Anvil could not be found or did not come up; the message says what to do."""


@dataclass(frozen=True)
class DevAccount:
    address: str
    private_key: str = field(repr=False)


@dataclass
class Anvil:
    """A running Anvil: its URL, chain id and funded dev accounts."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    chain_id: int
    accounts: tuple[DevAccount, ...]
    _output: list[bytes] = field(default_factory=list, repr=False)
    _reader: threading.Thread | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> int:
        """Stop Anvil (SIGTERM, then SIGKILL after ``timeout``); returns its exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._reader is not None:
            self._reader.join(timeout)  # it ends at EOF, once Anvil has exited
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


def anvil_binary() -> Path:
    """The pinned Anvil binary under ``node_modules`` (``GATEWAY_ANVIL`` overrides it)."""
    override = os.environ.get("GATEWAY_ANVIL")
    if override:
        return Path(override)
    suffix = _PLATFORMS.get((platform.system(), platform.machine()))
    if suffix is not None:
        native = REPO / "node_modules" / "@foundry-rs" / f"anvil-{suffix}" / "bin" / "anvil"
        if native.is_file():
            return native
    wrapper = REPO / "node_modules" / ".bin" / "anvil"
    if wrapper.exists():
        return wrapper
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise AnvilError(
        "Anvil is not installed: run `make setup` (it installs the pinned @foundry-rs/anvil)"
    )


def start_anvil(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    chain_id: int = DEFAULT_CHAIN_ID,
    block_time: float | None = None,
    accounts: int = 10,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
    prefix: Sequence[str] = (),
) -> Anvil:
    """Start Anvil and wait until it listens. ``port=0`` picks a free port. ``prefix`` is a
    command Anvil runs under, e.g. ``ip netns exec NS`` (it must exec Anvil, keeping the pid)."""
    binary = anvil_binary()
    with tempfile.TemporaryDirectory(prefix="anvil-") as tmp:
        config_out = Path(tmp) / "anvil.json"
        args = [
            *prefix,
            str(binary),
            "--host",
            host,
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--accounts",
            str(accounts),
            "--config-out",
            str(config_out),
            *extra_args,
        ]
        if block_time is not None:
            args += ["--block-time", _seconds(block_time)]
        process = subprocess.Popen(
            args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        output: list[bytes] = []
        listening, reader = _wait_listening(process, output, startup_timeout)
        if listening is None:
            process.kill()
            process.wait()
            reader.join(5)
            if process.stdout is not None:
                process.stdout.close()
            tail = b"".join(output)[-2000:].decode(errors="replace")
            raise AnvilError(f"Anvil did not start within {startup_timeout:.0f} s:\n{tail}")
        config = _read_config(config_out, startup_timeout)
    dev_accounts = tuple(
        DevAccount(address=a, private_key=k)
        for a, k in zip(config["available_accounts"], config["private_keys"], strict=True)
    )
    return Anvil(process, listening[0], listening[1], chain_id, dev_accounts, output, reader)


def _seconds(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _wait_listening(
    process: subprocess.Popen[bytes], output: list[bytes], timeout: float
) -> tuple[tuple[str, int] | None, threading.Thread]:
    """Read Anvil's output on a thread until it names its address; keep draining it after."""
    found: list[tuple[str, int]] = []
    ready = threading.Event()

    def pump() -> None:
        assert process.stdout is not None
        for line in iter(process.stdout.readline, b""):
            if len(output) < 1000:
                output.append(line)
            match = _LISTENING.search(line)
            if match and not found:
                found.append((match.group(1).decode(), int(match.group(2))))
                ready.set()
        ready.set()

    reader = threading.Thread(target=pump, name="anvil-output", daemon=True)
    reader.start()
    ready.wait(timeout)
    return (found[0] if found else None), reader


def _read_config(path: Path, timeout: float) -> dict[str, list[str]]:
    deadline = time.monotonic() + timeout
    while True:
        try:
            data = json.loads(path.read_text())
            return {
                "available_accounts": list(data["available_accounts"]),
                "private_keys": list(data["private_keys"]),
            }
        except (OSError, ValueError, KeyError):
            if time.monotonic() > deadline:
                raise AnvilError(f"Anvil wrote no account list to {path}") from None
            time.sleep(0.05)


@contextmanager
def running_anvil(**kwargs: object) -> Iterator[Anvil]:
    """``with running_anvil() as chain: ...``: Anvil for the duration of the block."""
    chain = start_anvil(**kwargs)  # type: ignore[arg-type]
    try:
        yield chain
    finally:
        chain.stop()
