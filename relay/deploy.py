"""``gateway deploy``: the gateway contract (and the examples) on one configured chain.

The steps, their progress lines and the write-back of the address into the configuration file;
each family's :class:`adapters.deploy.DeployClient` talks to the chain. Raises ``ConfigError``
for a bad file or key and ``DeployError`` when the chain fails; both are one readable line
that never holds a key.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from adapters.deploy import DeployClient, DeployError
from adapters.evm.deploy import EvmDeployClient
from adapters.fisco.deploy import FiscoDeployClient
from adapters.fisco.settings import FiscoEndpoint
from adapters.gateway_abi import ANCHOR_CONTRACT, GATEWAY
from relay.config import (
    ChainConfig,
    ConfigError,
    ConfigProblem,
    EvmChainConfig,
    FiscoChainConfig,
    gateway_snippet,
    load_config,
    write_audit_anchor,
    write_gateway_address,
)


def run_deploy(
    config_path: Path, chain_name: str, *, examples: bool, write: bool, out: TextIO
) -> None:
    """Deploy to ``chain_name`` of ``config_path``, printing one line per step to ``out``."""
    config = load_config(config_path)
    chain = config.chains.get(chain_name)
    if chain is None:
        names = ", ".join(config.chains) or "none"
        problem = ConfigProblem(f"chains.{chain_name}", f"no such chain (configured: {names})")
        raise ConfigError([problem], source=str(config_path))
    owner_key = chain.load_owner_key()
    relayer_key = chain.load_relayer_key()
    client = deploy_client(chain, owner_key)
    warnings = list(client.warnings)
    if chain.owner_key is None:
        warnings.append(
            "no owner_key: the relayer key will own the contract (it can add relayers and "
            "destinations); fine for a devnet, set owner_key to a key kept offline in production"
        )
    for warning in warnings:
        out.write(f"warning: {warning}\n")
    relayer = client.address_of(relayer_key)
    destinations = [(name, other.deploy.max_payload) for name, other in config.chains.items()]
    total = 3 + len(destinations) + (2 if examples else 0)
    steps = iter(range(1, total + 1))

    def step(text: str) -> _Step:
        return _Step(out, f"[{next(steps)}/{total}] {text}")

    out.write(f"deploying to {client.describe()} from {client.sender} (owner)\n")
    gateway = _deploy_gateway(client, chain, relayer, destinations, step)
    extras: dict[str, str] = {}
    if examples:
        for contract, key in (("PingPong", "ping_pong"), ("Notary", "notary")):
            with step(f"{contract}({gateway})"):
                extras[key], block = client.deploy(contract, [gateway])
                _done(out, f"{extras[key]} (block {block})")
    with step(f"isRelayer({relayer})"):
        (registered,) = client.call(gateway, GATEWAY, "isRelayer", [relayer])
        if registered is not True:
            raise DeployError(f"the gateway at {gateway} does not list {relayer} as a relayer")
        _done(out, "true")
    out.write(f"\ngateway on {chain.name}: {gateway}\n")
    for key, address in extras.items():
        out.write(f"{key}: {address}\n")
    snippet = gateway_snippet(chain.name, gateway, extras)
    if write:
        write_gateway_address(config_path, chain.name, gateway)
        out.write(f"\nwrote into {config_path}:\n{snippet}")
    else:
        out.write(f"\nadd to {config_path} (or deploy with --write):\n{snippet}")


def run_deploy_anchor(config_path: Path, chain_name: str, *, write: bool, out: TextIO) -> None:
    """``--audit-anchor``: deploy AuditAnchor on ``chain_name`` with its owner key; with
    ``write``, set ``[audit] anchor_chain``/``anchor_contract`` (relay/anchor.py)."""
    config = load_config(config_path)
    chain = config.chains.get(chain_name)
    if chain is None:
        names = ", ".join(config.chains) or "none"
        problem = ConfigProblem(f"chains.{chain_name}", f"no such chain (configured: {names})")
        raise ConfigError([problem], source=str(config_path))
    if not chain.served:
        problem = ConfigProblem(
            f"chains.{chain_name}", "is not served here: its relayer key sends the anchors"
        )
        raise ConfigError([problem], source=str(config_path))
    client = deploy_client(chain, chain.load_owner_key())
    for warning in client.warnings:
        out.write(f"warning: {warning}\n")
    out.write(f"deploying to {client.describe()} from {client.sender} (owner)\n")
    with _Step(out, f"[1/1] {ANCHOR_CONTRACT}()"):
        address, block = client.deploy(ANCHOR_CONTRACT, [])
        _done(out, f"{address} (block {block})")
    relayer = client.address_of(chain.load_relayer_key())
    snippet = f'[audit]\nanchor_chain = "{chain.name}"\nanchor_contract = "{address}"\n'
    out.write(f"\naudit anchor on {chain.name}: {address} (anchors sent by {relayer})\n")
    if write:
        write_audit_anchor(config_path, chain.name, address)
        out.write(f"\nwrote into {config_path}:\n{snippet}")
    else:
        out.write(f"\nadd to {config_path} (or deploy with --write):\n{snippet}")


def _deploy_gateway(
    client: DeployClient,
    chain: ChainConfig,
    relayer: str,
    destinations: list[tuple[str, int]],
    step: Callable[[str], _Step],
) -> str:
    """The gateway, its relayer and every destination: the gateway's address."""
    units, opts = chain.timestamp_units_per_second, chain.deploy
    ctor = [chain.name, units, opts.receiver_gas, opts.ack_gas]
    with step(f'{GATEWAY}("{chain.name}", {units}, {opts.receiver_gas}, {opts.ack_gas})') as out:
        gateway, block = client.deploy(GATEWAY, ctor)
        _done(out, f"{gateway} (block {block})")
    with step(f"addRelayer({relayer})") as out:
        _done(out, f"block {client.transact(gateway, GATEWAY, 'addRelayer', [relayer])}")
    for name, cap in destinations:
        with step(f'setDestination("{name}", {cap})') as out:
            block = client.transact(gateway, GATEWAY, "setDestination", [name, cap])
            _done(out, f"block {block}")
    return gateway


def deploy_client(chain: ChainConfig, key: bytes) -> DeployClient:
    """The client of ``chain``'s family, deploying from ``key``'s account."""
    if isinstance(chain, EvmChainConfig):
        return EvmDeployClient(
            name=chain.name, chain_id=chain.chain_id, endpoints=chain.endpoints, key=key
        )
    assert isinstance(chain, FiscoChainConfig)
    return FiscoDeployClient(
        name=chain.name,
        chain_id=chain.chain_id,
        group_id=chain.group_id,
        crypto=chain.crypto,
        endpoints=[
            FiscoEndpoint(e.url, e.ca_cert, e.client_cert, e.client_key) for e in chain.endpoints
        ],
        sealer_ids=frozenset(s.node_id for s in chain.sealers),
        key=key,
    )


class _Step:
    """One progress line: the step's text, then its result or ``failed``."""

    def __init__(self, out: TextIO, text: str) -> None:
        self.out, self.text = out, text

    def __enter__(self) -> TextIO:
        self.out.write(f"{self.text} ... ")
        self.out.flush()
        return self.out

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            self.out.write("failed\n")
            self.out.flush()


def _done(out: TextIO, text: str) -> None:
    out.write(text + "\n")
    out.flush()
