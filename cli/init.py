"""``gateway init DIR``: a new gateway's folder, with its CA, certificate, API token and config.

The folder is self-contained: ``gateway.toml`` names its TLS files and data folder relative
to itself, so it can be moved whole. The developer API token is printed once; only its
SHA-256 is written. ``--chains-from FILE`` copies the ``[chains.*]`` sections of an existing
configuration (for example ``examples/gateway.toml`` after ``gateway deploy --write``) so the
result validates at once; otherwise the file carries commented examples to fill in, and
``gateway config validate`` lists what is left.
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import re
import secrets
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from cli import EXIT_INVALID, EXIT_OK, EXIT_USAGE
from relay.audit import AuditKey
from relay.config import (
    ConfigError,
    ConfigProblem,
    load_config,
    parse_host_port,
    require_runnable,
)
from relay.tls import fingerprint, issue_cert, make_ca, write_cert_file, write_key_file
from verifier.errors import GatewayError
from verifier.messages import CHAIN_NAME

DEFAULT_LISTEN: Final = "127.0.0.1:50051"
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_HEADER: Final = re.compile(r"^\s*\[\[?\s*([^\[\]]+?)\s*\]\]?\s*(?:#.*)?$")
_WILDCARDS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 (compared with, not bound)


class InitError(GatewayError):
    """``gateway init`` cannot proceed: bad options, a non-empty folder, an unreadable file."""


@dataclass(frozen=True)
class InitResult:
    directory: Path
    config: Path
    token: str = field(repr=False)
    """The developer API token; shown once, never written."""
    gateway_fingerprint: str
    """SHA-256 of gateway.crt: what peers pin."""
    san: tuple[str, ...]
    remaining: tuple[ConfigProblem, ...]
    """What ``gateway config validate`` still reports on the new file (empty: ready)."""
    audit_public_key: str = ""
    """The Ed25519 audit key's public part (hex): auditors verify exports with it."""
    auditor_token: str = field(default="", repr=False)
    """The auditor's API token (AuditService only); shown once, never written."""


def register(sub: Any) -> None:
    """Add ``init``."""
    init = sub.add_parser(
        "init",
        help="create a gateway's folder: CA, certificate, API token, config",
        description="Create DIR with a private CA (ca.crt, ca.key), this gateway's certificate "
        "and key issued by it (gateway.crt, gateway.key: server and client use, names "
        "localhost, 127.0.0.1 and every --host), a developer API token (printed once; its "
        "SHA-256 goes into the config), data/, and a commented gateway.toml. Keys are written "
        "with mode 0600. DIR must be empty or absent unless --force.",
    )
    init.add_argument("directory", type=Path, metavar="DIR", help="the folder to create")
    init.add_argument(
        "--name", help="this gateway's name (like a chain name; default: from DIR's name)"
    )
    init.add_argument(
        "--listen",
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help=f"gRPC listen address (default {DEFAULT_LISTEN})",
    )
    init.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="NAME_OR_IP",
        help="another name or IP address peers reach this gateway by (repeatable)",
    )
    init.add_argument(
        "--chains-from",
        type=Path,
        metavar="FILE",
        help="copy the [chains.*] sections of this configuration (e.g. examples/gateway.toml)",
    )
    init.add_argument("--force", action="store_true", help="write into DIR even if it is not empty")
    init.set_defaults(handler=cmd_init)


def cmd_init(args: argparse.Namespace) -> int:
    name = args.name if args.name is not None else default_name(args.directory)
    try:
        result = init_gateway(
            args.directory,
            name=name,
            listen=args.listen,
            hosts=args.host,
            chains_from=args.chains_from,
            force=args.force,
        )
    except InitError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_USAGE
    except OSError as exc:
        sys.stderr.write(f"error: {exc.filename or args.directory}: {exc.strerror or exc}\n")
        return EXIT_INVALID
    _print_result(result)
    return EXIT_OK


def default_name(directory: Path) -> str:
    """DIR's last component as a gateway name (lowercase, a-z 0-9 -), else ``gateway``."""
    text = re.sub(r"[^a-z0-9-]+", "-", directory.resolve().name.lower()).strip("-")[:32]
    return text if CHAIN_NAME.fullmatch(text) else "gateway"


def init_gateway(
    directory: Path,
    *,
    name: str,
    listen: str = DEFAULT_LISTEN,
    hosts: Sequence[str] = (),
    chains_from: Path | None = None,
    force: bool = False,
) -> InitResult:
    """Create the folder and its files; raises :class:`InitError` before writing anything
    when an option is wrong or the folder is not empty."""
    if CHAIN_NAME.fullmatch(name) is None:
        raise InitError(f"--name {name!r}: 1-32 of a-z, 0-9 and '-', not starting with '-'")
    parsed = parse_host_port(listen)
    if isinstance(parsed, str):
        raise InitError(f"--listen: {parsed}")
    dns, ips = _names(hosts, parsed[0])
    chains = _chain_sections(chains_from) if chains_from is not None else None
    if directory.exists() and not directory.is_dir():
        raise InitError(f"{directory} exists and is not a folder")
    if directory.exists() and any(directory.iterdir()) and not force:
        raise InitError(f"{directory} is not empty (use --force to write into it anyway)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "data").mkdir(mode=0o700, exist_ok=True)
    ca_cert, ca_key = make_ca(f"{name} gateway CA")
    cert, key = issue_cert(ca_cert, ca_key, name, dns_names=dns, ip_addresses=ips)
    write_cert_file(directory / "ca.crt", ca_cert)
    write_key_file(directory / "ca.key", ca_key)
    write_cert_file(directory / "gateway.crt", cert)
    write_key_file(directory / "gateway.key", key)
    audit_key = AuditKey.generate()  # signs audit checkpoints (docs/audit.md)
    audit_key.save(directory / "audit.key", directory / "audit.pub")
    token = secrets.token_urlsafe(32)
    auditor_token = secrets.token_urlsafe(32)
    config = directory / "gateway.toml"
    text = render_config(
        name=name,
        listen=listen,
        token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        auditor_sha256=hashlib.sha256(auditor_token.encode()).hexdigest(),
        gateway_fingerprint=fingerprint(cert),
        chains=chains,
        chains_source=chains_from,
    )
    config.write_text(text, encoding="utf-8")
    config.chmod(0o644)
    try:
        require_runnable(load_config(config))
        remaining: tuple[ConfigProblem, ...] = ()
    except ConfigError as exc:
        remaining = exc.problems
    return InitResult(
        directory=directory,
        config=config,
        token=token,
        gateway_fingerprint=fingerprint(cert),
        san=(*dns, *ips),
        remaining=remaining,
        audit_public_key=audit_key.public_hex,
        auditor_token=auditor_token,
    )


def _names(hosts: Sequence[str], listen_host: str) -> tuple[list[str], list[str]]:
    """DNS names and IP addresses for the certificate: localhost, 127.0.0.1, each --host and
    the listen host unless it is a wildcard."""
    dns, ips = ["localhost"], ["127.0.0.1"]
    extra = [*hosts, *([] if listen_host in _WILDCARDS else [listen_host])]
    for host in extra:
        try:
            ip = str(ipaddress.ip_address(host))
        except ValueError:
            if _HOSTNAME.fullmatch(host) is None:
                raise InitError(
                    f"--host {host!r} is neither a DNS name nor an IP address"
                ) from None
            if host.lower() not in dns:
                dns.append(host.lower())
            continue
        if ip not in ips:
            ips.append(ip)
    return dns, ips


def _chain_sections(source: Path) -> str:
    """The text of every ``[chains.*]`` section of ``source``, comments inside them kept."""
    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InitError(f"--chains-from {source}: cannot read: {exc}") from None
    out: list[str] = []
    keep = False
    for line in lines:
        if (m := _HEADER.match(line)) is not None:
            keep = m[1] == "chains" or m[1].startswith("chains.")
            if keep and out:
                out.append("")
        if keep:
            out.append(line.rstrip())
    if not out:
        raise InitError(f"--chains-from {source}: no [chains.<name>] section")
    return "\n".join(out) + "\n"


def render_config(
    *,
    name: str,
    listen: str,
    token_sha256: str,
    gateway_fingerprint: str,
    chains: str | None,
    auditor_sha256: str | None = None,
    chains_source: Path | None = None,
) -> str:
    """The commented gateway.toml; ``chains`` is TOML text, or None for commented examples."""
    if chains is None:
        chain_text = _CHAIN_EXAMPLES
    else:
        chain_text = (
            f"# Copied from {chains_source}; paths in it are relative to this file now.\n\n"
            + chains
        )
    return _TEMPLATE.format(
        name=name,
        listen=listen,
        api_listen=token_listen(listen),
        token_sha256=token_sha256,
        auditor_line=(
            f'    {{ name = "auditor", sha256 = "{auditor_sha256}", role = "auditor" }},\n'
            if auditor_sha256
            else ""
        ),
        fingerprint=gateway_fingerprint,
        chains=chain_text,
    )


def token_listen(listen: str) -> str:
    """The API's bearer-token port written by init: the next port on the same host."""
    host, _, port = listen.rpartition(":")
    number = int(port)
    return f"{host}:{number + 1 if number < 65535 else number - 1}"


_TEMPLATE: Final = """\
# Configuration of gateway "{name}", written by `gateway init`; docs/configuration.md explains
# every key. Check it with: gateway config validate gateway.toml
# Relative paths are relative to this file.

# Routes: by default every pair of chains with one side served here, both ways. To restrict:
# routes = [{{ from = "anvil-local", to = "fisco-local" }}]

[gateway]
# This gateway's identity: its peers configure it as [peers.{name}].
name = "{name}"
# gRPC for RelayService (peers, mutual TLS) and the developer API.
listen = "{listen}"
# The message store.
data_dir = "data"

[gateway.tls]
# Peers pin this certificate by its SHA-256 fingerprint:
#   {fingerprint}
cert = "gateway.crt"
key = "gateway.key"           # mode 0600
ca = "ca.crt"                 # issued gateway.crt; keep ca.key offline once you are set up

[api]
# The TLS port for bearer tokens (gateway.listen requires a client certificate).
listen = "{api_listen}"
# Developer API credentials: the SHA-256 of each bearer token (never the token) and its role,
# "developer" (send, status, watch) or "auditor" (read-only). gateway init printed the token.
tokens = [
    {{ name = "developer", sha256 = "{token_sha256}", role = "developer" }},
{auditor_line}]
# Client certificates instead of tokens, pinned by the SHA-256 of their DER bytes:
# client_certs = [{{ name = "ci", sha256 = "<64 hex>", role = "auditor" }}]

[audit]
# The audit trail (docs/audit.md): every relay decision, hash-chained, with checkpoints signed
# by this Ed25519 key. Auditors verify with audit.pub (gateway audit verify --key audit.pub).
key = "audit.key"             # mode 0600
# checkpoint_every = 1000     # a signed checkpoint after this many records...
# checkpoint_seconds = 60.0   # ...or this long after the last one, if records were added

# [relay]                     # the defaults:
# batch_size = 50             # messages per deliverMessages / acknowledgeResults
# batch_wait = 0.5            # seconds to wait for a batch to fill
# queue_bound = 1000          # messages queued per destination before observation pauses
# retry_initial = 0.5         # first retry after this many seconds, doubling (with jitter)
# retry_max = 30.0            # up to this many
# stuck_after = 120.0         # a message not progressing for this long shows as stuck
# max_blocks = 1000           # blocks per observation page
# poll_interval = 1.0         # seconds between polls of a chain's head

# ---------------------------------------------------------------------------------------------
# Chains. A chain this gateway serves has its keys (relayer_key, sender_key); a remote chain
# (served = false) is served by a peer below and holds only its trust root.

{chains}
# ---------------------------------------------------------------------------------------------
# Peers: the gateways that serve the remote chains, pinned by their certificate.
#
# [peers.gw-b]
# address = "10.0.0.2:50051"
# cert_sha256 = "<the fingerprint `gateway init` printed on gw-b>"   # or cert = "peers/gw-b.crt"
# ca = "peers/gw-b-ca.crt"   # gw-b's ca.crt: the CA that issued its certificate
# chains = ["fisco-b"]        # the remote chains it serves
# audit_key = "<64 hex: gw-b's audit public key>"   # verifies gw-b's part of `audit trace`
"""

_CHAIN_EXAMPLES: Final = """\
# Fill in at least one chain this gateway serves, then deploy its gateway contract with
# `gateway deploy --config gateway.toml --chain NAME --write` (examples/gateway.toml has the
# two local chains ready: `gateway init DIR --chains-from examples/gateway.toml`).
#
# [chains.anvil-local]
# family = "evm"
# endpoints = ["http://127.0.0.1:8545"]
# chain_id = 31337
# confirmations = 1
# relayer_key = { env = "ANVIL_RELAYER_KEY" }
# sender_key = { env = "ANVIL_SENDER_KEY" }
#
# A remote chain, relayed by a peer; evidence from it is checked against this trust root:
# [chains.fisco-b]
# family = "fisco-bcos-3"
# served = false
# gateway = "0x..."           # its CrossChainGateway address
# chain_id = "chain0"
# group_id = "group0"
# sealers = [{ node_id = "<128 hex>", weight = 1 }]
"""


def _print_result(result: InitResult) -> None:
    out = sys.stdout
    d = result.directory
    out.write(f"created {d}\n")
    rows = [
        ("ca.crt", "the CA certificate"),
        ("ca.key", "the CA key (0600): it can issue certificates; keep it offline"),
        ("gateway.crt", f"this gateway's certificate, for {', '.join(result.san)}"),
        ("gateway.key", "its key (0600)"),
        ("audit.key", "the Ed25519 key that signs audit checkpoints (0600)"),
        ("audit.pub", "its public key: give it to auditors (gateway audit verify --key)"),
        ("data/", "the message store (0700)"),
        ("gateway.toml", "the configuration (commented)"),
    ]
    for file, what in rows:
        out.write(f"  {file:<13} {what}\n")
    out.write(f"certificate fingerprint (peers pin it): {result.gateway_fingerprint}\n")
    out.write(f"audit public key (auditors verify with it): {result.audit_public_key}\n")
    out.write(
        f"developer API token, shown only now (gateway.toml keeps its SHA-256):\n  {result.token}\n"
    )
    if result.auditor_token:
        out.write(
            "auditor API token (AuditService only: gateway audit ...), shown only now:\n"
            f"  {result.auditor_token}\n"
        )
    out.write("next steps:\n")
    if result.remaining:
        out.write(f"  1. edit {result.config}; gateway config validate still reports:\n")
        for problem in result.remaining:
            out.write(f"       {problem}\n")
        out.write(f"  2. gateway config validate {result.config}\n")
        out.write(f"  3. gateway run --config {result.config}\n")
    else:
        out.write(f"  gateway.toml validates as it is: gateway run --config {result.config}\n")
