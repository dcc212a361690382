"""Two gateways on two simulated hosts: each in its own network namespace with its own address,
joined by a veth pair (devnet/netns.py), set up as README "Two gateways on two hosts" says, with
the real CLI: `gateway init --listen <host address> --host <host address>`, the exchange of the
certificate fingerprint and CA, `gateway config validate`, `gateway run`.

Host a runs Anvil and gateway ``evm``, host b the FISCO devnode and gateway ``fisco``; every
chain, API and peer address is a host address, so the gateways' mutual-TLS gRPC and each
gateway's reads of the other host's chain cross the wire. The test (root namespace) reaches both
hosts over their own links, never over the wire.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest
from cryptography import x509

from devnet.demo import (
    DEMO_RELAY,
    EVM_CHAIN,
    EVM_GATEWAY,
    FISCO_CHAIN,
    FISCO_GATEWAY,
    DemoCluster,
    GatewayHandle,
)
from devnet.demo_flow import DELIVERY, Api
from devnet.netns import Host, NetnsError, TwoHosts, two_hosts, unavailable_reason
from devnet.processes import REPO, Child
from tests.e2e.conftest import on_chain_counts, wait_finished

pytestmark = pytest.mark.integration

PEER_PORT: Final = 50051
"""The same well-known port on both hosts, as on two machines (`gateway init`'s default)."""
API_PORT: Final = PEER_PORT + 1
"""`gateway init` puts the developer API's bearer-token port next to it."""
EACH_WAY: Final = 3


@pytest.fixture
def hosts() -> Iterator[TwoHosts]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(f"two simulated hosts need network namespaces: {reason}")
    with contextlib.ExitStack() as stack:
        try:
            made = stack.enter_context(two_hosts())
        except NetnsError as exc:
            pytest.skip(f"two simulated hosts could not be set up here: {exc}")
        yield made
    listed = subprocess.run(
        ["ip", "netns", "list"], capture_output=True, text=True, check=False
    ).stdout
    assert made.a.namespace not in listed
    assert made.b.namespace not in listed


def test_hosts_and_their_processes_are_removed_when_the_block_fails(hosts: TwoHosts) -> None:
    """An error inside a second :func:`two_hosts` block with a process running on each host:
    the processes are killed, the namespaces and the root namespace's routes to them gone, the
    fixture's pair untouched; the hosts reached each other over the wire while they existed."""
    made: list[TwoHosts] = []
    sleepers: list[subprocess.Popen[bytes]] = []
    with pytest.raises(RuntimeError, match="on purpose"):
        _fail_inside(made, sleepers)
    inner = made[0]
    for sleeper in sleepers:
        assert sleeper.wait(timeout=10) == -signal.SIGKILL
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    assert inner.a.namespace not in listed.stdout
    assert inner.b.namespace not in listed.stdout
    assert hosts.a.namespace in listed.stdout
    routes = subprocess.run(["ip", "-4", "route"], capture_output=True, text=True, check=False)
    assert inner.a.address not in routes.stdout
    assert inner.b.address not in routes.stdout
    assert hosts.a.address in routes.stdout


def test_hosts_left_by_a_killed_process_are_removed_by_the_next(hosts: TwoHosts) -> None:
    """A namespace named as by a :func:`two_hosts` block of a process that no longer runs (it
    was SIGKILLed, so its clean-up never ran) is deleted when the next block starts; the
    fixture's, whose process runs, stays."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = f"gw2h-{gone.pid}x0-a"
    subprocess.run(["ip", "netns", "add", stale], check=True)
    try:
        with two_hosts():
            listed = subprocess.run(
                ["ip", "netns", "list"], capture_output=True, text=True, check=True
            )
        assert stale not in listed.stdout
        assert hosts.a.namespace in listed.stdout
    finally:
        subprocess.run(["ip", "netns", "del", stale], capture_output=True, check=False)


def _fail_inside(made: list[TwoHosts], sleepers: list[subprocess.Popen[bytes]]) -> None:
    with two_hosts() as inner:
        made.append(inner)
        for host in (inner.a, inner.b):
            sleepers.append(subprocess.Popen([*host.exec_prefix, "sleep", "600"]))
        probe = f"import socket; socket.create_connection(('{inner.b.address}', 9), 2)"
        refused = subprocess.run(
            [*inner.a.exec_prefix, sys.executable, "-c", probe], capture_output=True, check=False
        )
        assert b"ConnectionRefusedError" in refused.stderr  # b answered: reachable, port shut
        assert sorted(inner.a.pids() + inner.b.pids()) == sorted(s.pid for s in sleepers)
        raise RuntimeError("on purpose")


def _cli(host: Host, *args: str) -> str:
    """``gateway ARGS`` run on ``host`` (inside its namespace); its standard output."""
    done = subprocess.run(
        [*host.exec_prefix, sys.executable, "-m", "gateway", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, f"gateway {' '.join(args)}: {done.stdout}\n{done.stderr}"
    return done.stdout


def _printed(out: str, pattern: str) -> str:
    match = re.search(pattern, out, re.MULTILINE)
    assert match is not None, f"no {pattern!r} in gateway init's output:\n{out}"
    return match[1]


def _init(cluster: DemoCluster, name: str, chain: str, host: Host) -> GatewayHandle:
    """README step 1 on ``host``: `gateway init` with the host's address; the certificate
    names it."""
    directory = cluster.root / name
    listen = f"{host.address}:{PEER_PORT}"
    args = ("init", str(directory), "--name", name, "--listen", listen, "--host", host.address)
    out = _cli(host, *args)
    handle = GatewayHandle(
        name,
        chain,
        directory,
        listen,
        f"{host.address}:{API_PORT}",
        _printed(out, r"^developer API token, shown only now.*:\n\s+(\S+)$"),
        _printed(out, r"^certificate fingerprint \(peers pin it\): ([0-9a-f]{64})$"),
        auditor_token=_printed(out, r"^auditor API token .*:\n\s+(\S+)$"),
        audit_key=_printed(out, r"^audit public key .*: ([0-9a-f]{64})$"),
    )
    assert f'listen = "{handle.api_listen}"' in handle.config.read_text()
    cert = x509.load_pem_x509_certificate(handle.cert.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address(host.address) in san.get_values_for_type(x509.IPAddress)
    return handle


def _configure(cluster: DemoCluster, handle: GatewayHandle, peer: GatewayHandle) -> None:
    """README steps 2-4 (the contracts are deployed already): the served and the remote chain,
    the peer's CA and fingerprint as exchanged, the peer at its host address."""
    (handle.directory / "peers").mkdir()
    shutil.copyfile(peer.ca, handle.directory / "peers" / f"{peer.name}-ca.crt")
    text = cluster._chains_toml(served=handle.chain)
    text += (
        f"\n[peers.{peer.name}]\n"
        f'address = "{peer.listen}"\n'
        f'cert_sha256 = "{peer.fingerprint}"\n'
        f'ca = "peers/{peer.name}-ca.crt"\n'
        f'chains = ["{peer.chain}"]\n'
        f'audit_key = "{peer.audit_key}"\n'
    )
    text += "\n[relay]\n" + "".join(f"{k} = {v}\n" for k, v in DEMO_RELAY.items())
    with handle.config.open("a", encoding="utf-8") as out:
        out.write(text)


def _run(cluster: DemoCluster, handle: GatewayHandle, host: Host) -> None:
    """README step 5: `gateway run` on ``host``."""
    handle.child = Child(
        f"gateway {handle.name}",
        (*host.exec_prefix, sys.executable, "-m", "gateway", "run", "--config", str(handle.config)),
        cluster.root / "logs" / f"gateway-{handle.name}.log",
        env={**os.environ, **cluster.keys},
        cwd=handle.directory,
    )
    handle.child.start()


def _peer_connections(server: Host, client: Host) -> list[tuple[str, str]]:
    """Established connections to ``server``'s peer port from ``client``'s address, as the
    server's host sees them."""
    return [
        (local, peer)
        for local, peer in server.established(PEER_PORT)
        if local == f"{server.address}:{PEER_PORT}" and peer.startswith(f"{client.address}:")
    ]


@pytest.mark.timeout(240)
async def test_two_gateways_on_two_hosts_relay_both_ways(hosts: TwoHosts, tmp_path: Path) -> None:
    """Anvil and gateway evm on host a, the devnode and gateway fisco on host b: messages each
    way through the developer API are acknowledged as successes, delivered once and
    acknowledged once on chain; each gateway's peer port has an established connection from
    the other host's address, and the wire carried traffic both ways."""
    (tmp_path / "cluster").mkdir()
    cluster = DemoCluster(
        tmp_path / "cluster",
        relay=DEMO_RELAY,
        hosts={EVM_CHAIN: hosts.a.address, FISCO_CHAIN: hosts.b.address},
        launchers={EVM_CHAIN: hosts.a.exec_prefix, FISCO_CHAIN: hosts.b.exec_prefix},
    )
    apis: list[Api] = []
    try:
        cluster.start_chains()
        assert cluster.anvil is not None
        assert cluster.fisco is not None
        assert cluster.anvil.host == hosts.a.address
        assert cluster.fisco.url.startswith(f"http://{hosts.b.address}:")
        cluster.deploy(extra=("EchoReceiver",))
        where = {EVM_GATEWAY: hosts.a, FISCO_GATEWAY: hosts.b}
        chain_of = {EVM_GATEWAY: EVM_CHAIN, FISCO_GATEWAY: FISCO_CHAIN}
        for name, host in where.items():
            cluster.gateways[name] = _init(cluster, name, chain_of[name], host)
        evm, fisco = cluster.gateways[EVM_GATEWAY], cluster.gateways[FISCO_GATEWAY]
        for handle, peer in ((evm, fisco), (fisco, evm)):
            _configure(cluster, handle, peer)
            _cli(where[handle.name], "config", "validate", str(handle.config))  # README step 5
        wire_before = hosts.a.wire_bytes()
        for name, host in where.items():
            _run(cluster, cluster.gateways[name], host)
        apis = [Api(evm), Api(fisco)]
        for api in apis:
            await api.wait_ready(90, cluster.check_alive)
        await _relay_both_ways(cluster, apis[0], apis[1])
        assert _peer_connections(hosts.b, hosts.a), hosts.b.established(PEER_PORT)
        assert _peer_connections(hosts.a, hosts.b), hosts.a.established(PEER_PORT)
        received, sent = hosts.a.wire_bytes()
        assert received > wire_before[0]
        assert sent > wire_before[1]
    finally:
        for api in apis:
            await api.close()
        cluster.stop()


async def _relay_both_ways(cluster: DemoCluster, evm: Api, fisco: Api) -> None:
    to_fisco = cluster.contracts[FISCO_CHAIN].extra["EchoReceiver"]
    to_evm = cluster.contracts[EVM_CHAIN].extra["EchoReceiver"]
    forth = [
        await evm.send(EVM_CHAIN, FISCO_CHAIN, to_fisco, f"a to b {i}".encode(), 600)
        for i in range(EACH_WAY)
    ]
    back = [
        await fisco.send(FISCO_CHAIN, EVM_CHAIN, to_evm, f"b to a {i}".encode(), 600)
        for i in range(EACH_WAY)
    ]
    done = {
        **await wait_finished(evm, forth, timeout=90, alive=cluster.check_alive),
        **await wait_finished(fisco, back, timeout=90, alive=cluster.check_alive),
    }
    assert len(done) == 2 * EACH_WAY
    assert {row.result.status for row in done.values()} == {DELIVERY.DELIVERY_STATUS_SUCCESS}
    counts = await on_chain_counts(cluster)
    for mid in (*forth, *back):
        assert counts["delivered"].get(mid) == 1, f"0x{mid.hex()} delivered"
        assert counts["acknowledged"].get(mid) == 1, f"0x{mid.hex()} acknowledged"
