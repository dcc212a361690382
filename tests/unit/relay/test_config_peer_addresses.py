"""``[peers.X] addresses``: the replicas of a peer gateway, as an alternative to ``address``."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.config import ConfigError, parse_config
from relay.tls import make_ca, write_cert_file

PEER_SHA = "ab" * 32
NODE = "ab" * 64
HEAD = (
    """
[gateway]
name = "gw-a"

[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:8545"]
chain_id = 31337
confirmations = 2
relayer_key = { env = "RELAYER" }

[chains.fisco-b]
family = "fisco-bcos-3"
served = false
gateway = "0x1212121212121212121212121212121212121212"
sealers = [{ node_id = "NODE" }]
"""
).replace("NODE", NODE)


def _peer(address_lines: str) -> str:
    return (
        HEAD
        + "\n[peers.gw-b]\n"
        + address_lines
        + f'\ncert_sha256 = "{PEER_SHA}"\nca = "peer-ca.crt"\nchains = ["fisco-b"]\n'
    )


@pytest.fixture(autouse=True)
def _peer_ca(tmp_path: Path) -> None:
    """The peer's CA certificate the section names, next to the test's file."""
    write_cert_file(tmp_path / "peer-ca.crt", make_ca("peer CA")[0])


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "gateway.toml")
    return [str(p) for p in info.value.problems]


def test_single_address_is_the_only_address(tmp_path: Path) -> None:
    """``address`` alone: one address, host and port from it."""
    config = parse_config(_peer('address = "10.0.0.2:50051"'), tmp_path / "gateway.toml")
    peer = config.peers["gw-b"]
    assert peer.addresses == ("10.0.0.2:50051",)
    assert (peer.address, peer.host, peer.port) == ("10.0.0.2:50051", "10.0.0.2", 50051)


def test_addresses_in_order_first_is_address(tmp_path: Path) -> None:
    """``addresses``: all kept in order; ``address``/``host``/``port`` are the first."""
    text = _peer('addresses = ["gw-b-1.example.org:50051", "[::1]:50052", "10.0.0.3:7"]')
    peer = parse_config(text, tmp_path / "gateway.toml").peers["gw-b"]
    assert peer.addresses == ("gw-b-1.example.org:50051", "[::1]:50052", "10.0.0.3:7")
    assert (peer.address, peer.host, peer.port) == (
        "gw-b-1.example.org:50051",
        "gw-b-1.example.org",
        50051,
    )


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("", "peers.gw-b: give the peer's address with exactly one of address or addresses"),
        (
            'address = "10.0.0.2:1"\naddresses = ["10.0.0.3:1"]',
            "peers.gw-b: give the peer's address with exactly one of address or addresses",
        ),
        ('addresses = "10.0.0.2:1"', "peers.gw-b.addresses: must be an array of host:port"),
        ("addresses = []", "peers.gw-b.addresses: must name at least one host:port"),
        ('addresses = ["10.0.0.2:1", 5]', "peers.gw-b.addresses[1]: must be host:port, not"),
        ('addresses = ["10.0.0.2:1", "nowhere"]', "peers.gw-b.addresses[1]: not host:port"),
        ('addresses = ["10.0.0.2:99999"]', "peers.gw-b.addresses[0]: port must be within"),
        ('addresses = ["a b:1"]', "peers.gw-b.addresses[0]: not a host name or IP address"),
        ('addresses = ["h:1", "h:2", "h:1"]', "peers.gw-b.addresses[2]: repeats 'h:1'"),
        ('adresses = ["h:1"]', "peers.gw-b.adresses: unknown key (did you mean 'addresses'?)"),
    ],
)
def test_address_problems(tmp_path: Path, lines: str, expected: str) -> None:
    """Each wrong way to give the addresses is reported with its path."""
    problems = _problems(_peer(lines), tmp_path)
    assert any(p.startswith(expected) for p in problems), problems
