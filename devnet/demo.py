"""Two chains and two gateways on 127.0.0.1, as `gateway demo` and the end-to-end tests run them.

:class:`DemoCluster` starts Anvil and the FISCO devnode (each a child process in its own process
group), deploys the gateway contract and the example apps on both, writes two gateway folders
with `gateway init` (gateway ``evm`` serves Anvil and knows the devnode as a remote chain with
its sealers; gateway ``fisco`` serves the devnode and knows Anvil as remote with its endpoint;
each pins the other's certificate), and starts both with ``gateway run``. :meth:`DemoCluster.stop`
stops everything it started, whatever state the set-up reached.

Keys: the EVM accounts are Anvil's public dev keys, the FISCO ones random; the configurations
name them by environment variable (never written to a file), and the gateway processes get
them in their environment.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import secrets
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cli.init import init_gateway
from devnet.anvil import Anvil, start_anvil
from devnet.processes import Child, ChildError, python_child
from relay.config import load_config, require_runnable
from relay.deploy import deploy_client, run_deploy

EVM_CHAIN: Final = "anvil-local"
FISCO_CHAIN: Final = "fisco-local"
EVM_GATEWAY: Final = "evm"
FISCO_GATEWAY: Final = "fisco"
CHAIN_OF: Final = {EVM_GATEWAY: EVM_CHAIN, FISCO_GATEWAY: FISCO_CHAIN}
FISCO_SEED: Final = "demo"
ANVIL_BLOCK_TIME: Final = 0.5
"""Seconds; Anvil keeps wall-clock timestamps at this rate (several blocks share a second)."""
FISCO_BLOCK_MS: Final = 250

DEMO_RELAY: Final[Mapping[str, float | int]] = {
    "batch_size": 50,
    "batch_wait": 0.2,
    "queue_bound": 1000,
    "retry_initial": 0.2,
    "retry_max": 2.0,
    "stuck_after": 20.0,
    "poll_interval": 0.2,
}
"""Faster than the defaults, so the demo finishes in seconds; `stuck_after` short enough that
a hang shows in the stuck view before the demo's deadline."""

Progress = Callable[[str], None]


class DemoError(RuntimeError):
    """The set-up failed; the message says at which step and why (never holds a key)."""


@dataclass(frozen=True)
class FiscoInfo:
    url: str
    port: int
    chain_id: str
    group_id: str
    sealers: tuple[str, ...]


@dataclass(frozen=True)
class Contracts:
    gateway: str
    ping_pong: str
    notary: str
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass
class GatewayHandle:
    """One gateway's folder, credentials and process."""

    name: str
    chain: str
    directory: Path
    listen: str
    api_listen: str
    token: str = field(repr=False)
    fingerprint: str
    child: Child | None = None
    auditor_token: str = field(default="", repr=False)
    """The auditor's API token (AuditService: gateway audit query/trace/export)."""
    audit_key: str = ""
    """The gateway's audit public key (hex): its peer pins it, auditors verify exports with it."""
    metrics_listen: str = ""
    """``[metrics] listen``: /metrics, /livez and /readyz over plain HTTP (docs/metrics.md)."""

    @property
    def config(self) -> Path:
        return self.directory / "gateway.toml"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    @property
    def cert(self) -> Path:
        return self.directory / "gateway.crt"

    @property
    def key(self) -> Path:
        return self.directory / "gateway.key"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prepare_directory(directory: Path | None) -> Path:
    """A fresh folder: a new temporary one, or ``directory`` if it is absent or empty."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise DemoError(f"{directory} is not an empty folder: choose a new one with --dir")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class DemoCluster:
    """Everything the demo runs; build with :meth:`create`, then :meth:`start_chains`,
    :meth:`deploy`, :meth:`write_gateways`, :meth:`start_gateways`; :meth:`stop` always."""

    root: Path
    relay: Mapping[str, float | int] = field(default_factory=lambda: dict(DEMO_RELAY))
    progress: Progress = field(default=lambda _text: None, repr=False)
    keys: dict[str, str] = field(default_factory=dict, repr=False)
    anvil: Anvil | None = None
    devnode: Child | None = None
    fisco: FiscoInfo | None = None
    contracts: dict[str, Contracts] = field(default_factory=dict)
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    gateways: dict[str, GatewayHandle] = field(default_factory=dict)
    hosts: Mapping[str, str] = field(default_factory=dict)
    """Per chain, the address its node listens on (absent: 127.0.0.1)."""
    launchers: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Per chain, a command its node starts under (absent: none), e.g. ``ip netns exec NS``:
    tests/e2e/test_two_hosts.py runs each chain in its own network namespace."""

    # -- chains ------------------------------------------------------------------------------

    def start_chains(self) -> None:
        self.progress("starting Anvil")
        self.anvil = start_anvil(
            host=self.hosts.get(EVM_CHAIN, "127.0.0.1"),
            block_time=ANVIL_BLOCK_TIME,
            accounts=4,
            prefix=self.launchers.get(EVM_CHAIN, ()),
        )
        accounts = self.anvil.accounts
        self.keys.update(
            {
                "GATEWAY_DEMO_EVM_RELAYER_KEY": accounts[0].private_key,
                "GATEWAY_DEMO_EVM_SENDER_KEY": accounts[1].private_key,
                "GATEWAY_DEMO_EVM_OWNER_KEY": accounts[2].private_key,
                "GATEWAY_DEMO_FISCO_RELAYER_KEY": "0x" + secrets.token_hex(32),
                "GATEWAY_DEMO_FISCO_SENDER_KEY": "0x" + secrets.token_hex(32),
                "GATEWAY_DEMO_FISCO_OWNER_KEY": "0x" + secrets.token_hex(32),
            }
        )
        self.progress(f"Anvil on {self.anvil.url}; starting the FISCO BCOS devnode")
        self.start_devnode(port=0)
        assert self.fisco is not None
        self.progress(f"FISCO BCOS devnode on {self.fisco.url}")

    def start_devnode(self, *, port: int) -> FiscoInfo:
        """Start (or restart, on the same port and data) the devnode; its chain persists in
        ``root/fisco-chain``."""
        if self.devnode is None:
            args = [
                "-m",
                "devnet.fisco.cli",
                "--host",
                self.hosts.get(FISCO_CHAIN, "127.0.0.1"),
                "--port",
                str(port),
                "--seed",
                FISCO_SEED,
                "--block-interval-ms",
                str(FISCO_BLOCK_MS),
                "--data-dir",
                str(self.root / "fisco-chain"),
            ]
            self.devnode = python_child("FISCO devnode", args, self.root / "logs" / "devnode.log")
            prefix = tuple(self.launchers.get(FISCO_CHAIN, ()))
            self.devnode.args = (*prefix, *self.devnode.args)
        self.devnode.start()
        match = self.devnode.wait_for_log(r"listening on (http://[0-9.]+:([0-9]+))\s", 60)
        url, bound = match[1], int(match[2])
        if port == 0:  # keep the port for restarts
            args = list(self.devnode.args)
            args[args.index("--port") + 1] = str(bound)
            self.devnode.args = tuple(args)
        text = self.devnode.wait_for_log(r"sealer 3: [0-9a-f]+\s", 30).string
        self.fisco = FiscoInfo(
            url=url,
            port=bound,
            chain_id=_line_value(text, "chain id: "),
            group_id=_line_value(text, "group id: "),
            sealers=tuple(
                line.split(": ", 1)[1].strip()
                for line in text.splitlines()
                if line.startswith("sealer ")
            ),
        )
        return self.fisco

    def stop_devnode(self) -> None:
        if self.devnode is not None:
            self.devnode.stop()

    # -- contracts ---------------------------------------------------------------------------

    def deploy(self, *, extra: tuple[str, ...] = ()) -> None:
        """The gateway contract on both chains (via ``gateway deploy``'s code), PingPong and
        Notary, and the apps' peers: each example trusts its twin on the other chain, and
        Notary also the other chain's API sender account (the demo's messages notarise)."""
        path = self.root / "deploy.toml"
        path.write_text(self._chains_toml(served=None), encoding="utf-8")
        with _environ(self.keys):
            for chain in (EVM_CHAIN, FISCO_CHAIN):
                self.progress(f"deploying the gateway contract on {chain}")
                out = io.StringIO()
                try:
                    run_deploy(path, chain, examples=False, write=True, out=out)
                except Exception as exc:
                    raise DemoError(f"deploying on {chain}: {exc}\n{out.getvalue()}") from exc
            config = load_config(path)
            clients = {}
            for chain in (EVM_CHAIN, FISCO_CHAIN):
                settings = config.chains[chain]
                assert settings.gateway is not None
                gateway = "0x" + settings.gateway.hex()
                client = deploy_client(settings, settings.load_owner_key())
                self.progress(f"deploying PingPong and Notary on {chain}")
                addresses = {
                    name: client.deploy(name, [gateway])[0] for name in ("PingPong", "Notary")
                }
                others = {name: client.deploy(name, [])[0] for name in extra}
                self.contracts[chain] = Contracts(
                    gateway, addresses["PingPong"], addresses["Notary"], others
                )
                self.accounts[chain] = {
                    role: client.address_of(_key(self.keys[f"GATEWAY_DEMO_{prefix}_{role}_KEY"]))
                    for role, prefix in (
                        ("RELAYER", _prefix(chain)),
                        ("SENDER", _prefix(chain)),
                        ("OWNER", _prefix(chain)),
                    )
                }
                clients[chain] = client
            for chain, other in ((EVM_CHAIN, FISCO_CHAIN), (FISCO_CHAIN, EVM_CHAIN)):
                mine, theirs = self.contracts[chain], self.contracts[other]
                client = clients[chain]
                self.progress(f"allowing the peers of the examples on {chain}")
                client.transact(mine.ping_pong, "PingPong", "allowPeer", [other, theirs.ping_pong])
                client.transact(mine.notary, "Notary", "allowPeer", [other, theirs.notary])
                sender = self.accounts[other]["SENDER"]
                client.transact(mine.notary, "Notary", "allowPeer", [other, sender])

    def owner_client(self, chain: str) -> Any:
        """A deploy client (deploy, transact, call) acting as ``chain``'s example owner."""
        settings = load_config(self.root / "deploy.toml").chains[chain]
        with _environ(self.keys):
            return deploy_client(settings, settings.load_owner_key())

    # -- gateways ----------------------------------------------------------------------------

    def write_gateways(self) -> None:
        """Two `gateway init` folders configured as each other's peers."""
        for name, chain in CHAIN_OF.items():
            directory = self.root / name
            listen, api_listen = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
            result = init_gateway(directory, name=name, listen=listen)
            self.gateways[name] = GatewayHandle(
                name,
                chain,
                directory,
                listen,
                api_listen,
                result.token,
                result.gateway_fingerprint,
                auditor_token=result.auditor_token,
                audit_key=result.audit_public_key,
                metrics_listen=f"127.0.0.1:{free_port()}",
            )
        for name, handle in self.gateways.items():
            peer = self.gateways[EVM_GATEWAY if name == FISCO_GATEWAY else FISCO_GATEWAY]
            (handle.directory / "peers").mkdir()
            shutil.copyfile(peer.ca, handle.directory / "peers" / f"{peer.name}-ca.crt")
            text = self._chains_toml(served=handle.chain) + _peer_toml(peer, peer.fingerprint)
            text += "\n[relay]\n" + "".join(f"{k} = {v}\n" for k, v in self.relay.items())
            text += f'\n[metrics]\nlisten = "{handle.metrics_listen}"\n'
            with handle.config.open("a", encoding="utf-8") as out:
                out.write(text)
            _set_api_listen(handle)
            require_runnable(load_config(handle.config))
        self.progress(f"wrote the configurations of gateways evm and fisco into {self.root}")

    def _chains_toml(self, *, served: str | None) -> str:
        """Both chains' sections; ``served`` names the one this file's gateway serves (None:
        both, for deploying), the other is remote."""
        assert self.anvil is not None
        assert self.fisco is not None
        evm_served = served in (None, EVM_CHAIN)
        fisco_served = served in (None, FISCO_CHAIN)
        evm = [
            f"\n[chains.{EVM_CHAIN}]",
            'family = "evm"',
            f'endpoints = ["{self.anvil.url}"]',
            f"chain_id = {self.anvil.chain_id}",
            "confirmations = 1",
        ]
        fisco = [
            f"\n[chains.{FISCO_CHAIN}]",
            'family = "fisco-bcos-3"',
            f'chain_id = "{self.fisco.chain_id}"',
            f'group_id = "{self.fisco.group_id}"',
            # Also on the remote side: the API reads the destination's time from it.
            f'endpoints = ["{self.fisco.url}"]',
            "sealers = [",
            *(f'    {{ node_id = "{s}", weight = 1 }},' for s in self.fisco.sealers),
            "]",
        ]
        for lines, chain, is_served in (
            (evm, EVM_CHAIN, evm_served),
            (fisco, FISCO_CHAIN, fisco_served),
        ):
            deployed = self.contracts.get(chain)
            if deployed is not None:
                lines.append(f'gateway = "{deployed.gateway}"')
            if is_served:
                prefix = _prefix(chain)
                if chain == FISCO_CHAIN:
                    lines.append("seal_interval = 0.2")
                lines += [
                    f'{kind}_key = {{ env = "GATEWAY_DEMO_{prefix}_{kind.upper()}_KEY" }}'
                    for kind in ("relayer", "sender", "owner")
                ]
            else:
                lines.append("served = false")
        return "\n".join(evm) + "\n" + "\n".join(fisco) + "\n"

    def start_gateways(self) -> None:
        """``gateway run`` for both, as children; ready is checked by the caller (API)."""
        env = {**os.environ, **self.keys}
        for name, handle in self.gateways.items():
            self.progress(f"starting gateway {name}")
            handle.child = python_child(
                f"gateway {name}",
                ["-m", "gateway", "run", "--config", str(handle.config)],
                self.root / "logs" / f"gateway-{name}.log",
                env=env,
                cwd=handle.directory,
            )
            handle.child.start()

    def check_alive(self) -> None:
        """Raise :class:`ChildError` naming the first child that has exited."""
        for child in self.children():
            child.check_alive()

    def children(self) -> Iterator[Child]:
        for handle in self.gateways.values():
            if handle.child is not None:
                yield handle.child
        if self.devnode is not None:
            yield self.devnode

    def stop(self) -> None:
        """Stop every child this cluster started (gateways first: they drain), then Anvil."""
        for child in self.children():
            with contextlib.suppress(Exception):
                child.stop()
        if self.anvil is not None:
            with contextlib.suppress(Exception):
                self.anvil.stop()


def _prefix(chain: str) -> str:
    return "EVM" if chain == EVM_CHAIN else "FISCO"


def _key(text: str) -> bytes:
    return bytes.fromhex(text.removeprefix("0x"))


def _line_value(text: str, prefix: str) -> str:
    for line in text.splitlines():
        if line.startswith(prefix):
            return line[len(prefix) :].strip()
    raise ChildError(f"the devnode did not print {prefix!r}")


def _peer_toml(peer: GatewayHandle, pin: str) -> str:
    return (
        f"\n[peers.{peer.name}]\n"
        f'address = "{peer.listen}"\n'
        f'cert_sha256 = "{pin}"\n'
        f'ca = "peers/{peer.name}-ca.crt"\n'
        f'chains = ["{peer.chain}"]\n'
        + (f'audit_key = "{peer.audit_key}"\n' if peer.audit_key else "")
    )


def _set_api_listen(handle: GatewayHandle) -> None:
    """Put the developer API's bearer-token port (``[api] listen``) on a free port: `gateway
    init` picks the next port after ``listen``, which may be taken."""
    text = handle.config.read_text(encoding="utf-8")
    head, marker, tail = text.partition("[api]\n")
    line = f'listen = "{handle.api_listen}"'
    tail, count = re.subn(r'^listen = "[^"]*"$', line, tail, count=1, flags=re.MULTILINE)
    if count == 0:
        tail = line + "\n" + tail
    handle.config.write_text(head + marker + tail, encoding="utf-8")


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """``values`` in ``os.environ`` for the block: the configuration's keys are named by
    environment variable, and ``gateway deploy``'s code reads them from there."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
