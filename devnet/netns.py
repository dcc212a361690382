"""Two simulated hosts on one machine: two network namespaces joined by a veth pair.

:func:`two_hosts` creates namespaces ``gw2h-<tag>-a`` and ``gw2h-<tag>-b``, each with loopback up
and one end of a veth pair (the "wire") carrying its host address, ``10.231.<k>.1/24`` and
``10.231.<k>.2/24``; ``<k>`` is picked so that no address or route of the root namespace already
uses it. Processes start inside a namespace with ``ip netns exec NS ...``
(:attr:`Host.exec_prefix`); traffic between the two hosts crosses the wire.

So that the caller (a test, in the root namespace) can reach both hosts as an operator's machine
would, each namespace also gets a veth pair to the root namespace (``10.232.<k>.0/30`` and
``10.232.<k>.4/30``) and the root namespace a host route to each host address over it. No
forwarding is turned on anywhere: root-to-host traffic never crosses the wire, so the wire's
counters (:meth:`Host.wire_bytes`) count only what the two hosts exchange.

Everything is removed on leaving the block, also when setting up failed halfway: processes
still inside a namespace are killed, the veth pairs and namespaces deleted. Needs root (or
CAP_NET_ADMIN and CAP_SYS_ADMIN) and iproute2; :func:`unavailable_reason` says why not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

NET_PREFIX: Final = "10.231"
"""Host addresses on the wire: 10.231.<k>.1 and .2 (/24)."""
ROOT_PREFIX: Final = "10.232"
"""Root links: 10.232.<k>.0/30 (root .1, host a .2) and 10.232.<k>.4/30 (root .5, host b .6)."""
_COMMAND_TIMEOUT: Final = 20.0
_TAG: Final = re.compile(r"[a-z0-9]{1,9}")
_STALE: Final = re.compile(r"^(gw2h-([0-9]+)x[0-9]+-([ab]))\b")
_tags = itertools.count()


class NetnsError(RuntimeError):
    """An ``ip`` command failed; the message names it and quotes its error output."""


@dataclass(frozen=True)
class Host:
    """One simulated host: a network namespace and its address on the wire."""

    namespace: str
    address: str
    wire: str
    """The wire's interface name inside the namespace."""

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """Prepend to a command to run it inside this host's namespace."""
        return ("ip", "netns", "exec", self.namespace)

    def run(self, *args: str) -> str:
        """Run ``args`` inside the namespace and return its standard output."""
        return _ip_run([*self.exec_prefix, *args])

    def wire_bytes(self) -> tuple[int, int]:
        """(received, sent) bytes of this host's end of the wire."""
        text = _ip("-n", self.namespace, "-j", "-s", "link", "show", "dev", self.wire)
        stats = json.loads(text)[0]["stats64"]
        return int(stats["rx"]["bytes"]), int(stats["tx"]["bytes"])

    def established(self, port: int) -> list[tuple[str, str]]:
        """(local, peer) ``address:port`` of every established TCP connection inside the
        namespace whose local or peer port is ``port`` (IPv4-mapped IPv6 addresses, as a
        dual-stack socket reports them, written as IPv4)."""
        text = self.run("ss", "-Htn", "state", "established")
        pairs: list[tuple[str, str]] = []
        for line in text.splitlines():
            fields = line.split()
            if len(fields) < 4:  # Recv-Q Send-Q Local Peer
                continue
            local, peer = _endpoint(fields[-2]), _endpoint(fields[-1])
            if port in (_port(local), _port(peer)):
                pairs.append((local, peer))
        return pairs

    def pids(self) -> list[int]:
        """Processes running inside the namespace."""
        try:
            text = _ip("netns", "pids", self.namespace)
        except NetnsError:
            return []
        return [int(word) for word in text.split() if word.isdigit()]


@dataclass(frozen=True)
class TwoHosts:
    a: Host
    b: Host
    subnet: str
    """The wire's network, e.g. ``10.231.7.0/24``."""


def unavailable_reason() -> str | None:
    """Why namespaces or veth pairs cannot be made here (not root, no ``ip``, refused), or
    None. Tries both, and removes what it made."""
    if shutil.which("ip") is None:
        return "iproute2's `ip` is not installed"
    if os.geteuid() != 0:
        return f"network namespaces need root (this runs as uid {os.geteuid()})"
    probe = f"gw2h-probe-{os.getpid()}"
    link = f"gwp{os.getpid()}"
    try:
        _ip("netns", "add", probe)
        _ip("link", "add", link, "type", "veth", "peer", "name", link + "b")
    except NetnsError as exc:
        return f"cannot create a network namespace and a veth pair: {exc}"
    finally:
        with contextlib.suppress(NetnsError):
            _ip("link", "del", link)
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", probe)
    return None


@contextlib.contextmanager
def two_hosts(tag: str | None = None) -> Iterator[TwoHosts]:
    """Two hosts joined by a wire, reachable from the root namespace; removed on exit.

    ``tag`` (1-9 of a-z, 0-9; default ``<pid>x<n>``) makes the names unique. Hosts left
    behind by a process that died without cleaning up (SIGKILL) are removed first.
    """
    if tag is None:
        _remove_stale()
        tag = f"{os.getpid()}x{next(_tags)}"
    if _TAG.fullmatch(tag) is None:
        raise ValueError(f"tag {tag!r}: 1-9 of a-z and 0-9 (interface names are short)")
    k = _free_octet()
    net = f"{NET_PREFIX}.{k}"
    root = f"{ROOT_PREFIX}.{k}"
    hosts = TwoHosts(
        a=Host(f"gw2h-{tag}-a", f"{net}.1", f"w{tag}a"),
        b=Host(f"gw2h-{tag}-b", f"{net}.2", f"w{tag}b"),
        subnet=f"{net}.0/24",
    )
    root_links = (f"r{tag}a", f"r{tag}b")
    try:
        for host in (hosts.a, hosts.b):
            _ip("netns", "add", host.namespace)
            _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("link", "add", hosts.a.wire, "type", "veth", "peer", "name", hosts.b.wire)
        for host in (hosts.a, hosts.b):
            _ip("link", "set", host.wire, "netns", host.namespace)
            _ip("-n", host.namespace, "addr", "add", f"{host.address}/24", "dev", host.wire)
            _ip("-n", host.namespace, "link", "set", host.wire, "up")
        for host, link, base in ((hosts.a, root_links[0], 0), (hosts.b, root_links[1], 4)):
            _root_link(host, link, f"{root}.{base + 1}", f"{root}.{base + 2}")
        yield hosts
    finally:
        _remove(hosts, root_links)


def _remove_stale() -> None:
    """Delete the namespaces of earlier :func:`two_hosts` blocks whose process is gone."""
    try:
        listed = _ip("netns", "list")
    except NetnsError:
        return
    for line in listed.splitlines():
        match = _STALE.match(line)
        if match is None or Path(f"/proc/{match[2]}").exists():
            continue
        host = Host(match[1], "", "")
        for pid in host.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", host.namespace)


def _root_link(host: Host, link: str, root_address: str, host_side: str) -> None:
    """A veth pair from the root namespace to ``host`` (a /30) and a root route to its
    wire address through it."""
    inside = link + "n"
    _ip("link", "add", link, "type", "veth", "peer", "name", inside)
    _ip("link", "set", inside, "netns", host.namespace)
    _ip("addr", "add", f"{root_address}/30", "dev", link)
    _ip("-n", host.namespace, "addr", "add", f"{host_side}/30", "dev", inside)
    _ip("link", "set", link, "up")
    _ip("-n", host.namespace, "link", "set", inside, "up")
    _ip("route", "add", f"{host.address}/32", "via", host_side, "dev", link)


def _remove(hosts: TwoHosts, root_links: Sequence[str]) -> None:
    """Kill what still runs inside, delete the root links (their routes go with them) and
    the namespaces (the wire goes with them); every step is tried whatever failed before."""
    for host in (hosts.a, hosts.b):
        for pid in host.pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
    for link in root_links:
        with contextlib.suppress(NetnsError):
            _ip("link", "del", link)
    for host in (hosts.a, hosts.b):
        with contextlib.suppress(NetnsError):
            _ip("netns", "del", host.namespace)


def _free_octet() -> int:
    """A third octet ``k`` that no root address or route uses under 10.231 and 10.232,
    starting from one derived from the pid (parallel runs rarely collide)."""
    used = _ip("-4", "addr") + _ip("-4", "route", "show", "table", "all")
    start = os.getpid() % 250
    for k in ((start + i) % 250 + 1 for i in range(250)):
        if f"{NET_PREFIX}.{k}." not in used and f"{ROOT_PREFIX}.{k}." not in used:
            return k
    raise NetnsError(f"every {NET_PREFIX}.k and {ROOT_PREFIX}.k subnet is in use")


def _endpoint(text: str) -> str:
    """``[::ffff:10.0.0.1]:80`` -> ``10.0.0.1:80``; other forms unchanged."""
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        try:
            mapped = ipaddress.IPv6Address(host[1:-1].split("%")[0]).ipv4_mapped
        except ValueError:
            return text
        if mapped is not None:
            return f"{mapped}:{port}"
    return text


def _port(endpoint: str) -> int | None:
    head, _, port = endpoint.rpartition(":")
    return int(port) if head and port.isdigit() else None


def _ip(*args: str) -> str:
    return _ip_run(["ip", *args])


def _ip_run(args: Sequence[str]) -> str:
    try:
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise NetnsError(f"{' '.join(args)}: {exc}") from exc
    if done.returncode != 0:
        raise NetnsError(f"{' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done.stdout
