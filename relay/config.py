"""The gateway's configuration file: one TOML schema, validated strictly, in this one module.

``load_config(path)`` reads the file with the standard library's ``tomllib`` and returns a frozen
:class:`GatewayConfig`, or raises one :class:`ConfigError` that lists *every* problem with its
path (``chains.fisco-a.endpoints[0]: not a URL``), so an operator fixes the file in one pass.
Unknown keys are errors: a typo must fail at start-up rather than silently fall back to a
default. The format is documented in ``docs/configuration.md``; ``examples/gateway.toml`` is a
working example for the two local chains.

Each top-level section (``[gateway]``, ``[chains]``, ``[peers]``, ``routes``, ``[relay]``,
``[api]``) has one parser in ``_SECTIONS`` and one field of :class:`GatewayConfig`; checks that
span sections (peers against remote chains, routes, API certificates against peers) run after
all of them. A chain is *served* (this gateway holds its keys and submits to it) or *remote*
(``served = false``: a peer serves it, and this file holds only its trust root). A chains-only
file loads, as ``gateway deploy`` needs; :func:`require_runnable` adds what ``gateway run``
needs. Relative paths (keystores, password files, TLS files, the data folder) are relative to
the configuration file. Keys are *named* here (file or environment variable) and loaded only
when settings are built; TLS files are read and checked at load (a TLS key is parsed to match
it with its certificate, never kept or shown).
"""

from __future__ import annotations

import difflib
import hashlib
import hmac
import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Final, Literal
from urllib.parse import urlsplit

from adapters.evm.settings import EvmSettings
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from adapters.keys import Curve, EnvKeySource, KeySource, KeySourceError, KeystoreSource, load_key
from relay.audit import AuditKey, AuditKeyError
from relay.local_link import LOCAL_PEER
from relay.tls import (
    TlsMaterialError,
    fingerprint,
    is_issued_by,
    key_matches_cert,
    load_cert_file,
    load_key_file,
)
from verifier.hashing import CryptoSuite
from verifier.messages import CHAIN_NAME

EVM: Final = "evm"
FISCO: Final = "fisco-bcos-3"
FINALITY_TAGS: Final = ("safe", "finalized")
MAX_PAYLOAD_LIMIT: Final = 65536  # CrossChainGateway.MAX_PAYLOAD_LIMIT
_UINT32: Final = (1 << 32) - 1
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_NODE_ID = re.compile(r"(?:0x)?[0-9a-fA-F]{128}")
_MAX_CONFIG_BYTES: Final = 1 << 20


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` lists each one with its path."""

    def __init__(self, problems: list[ConfigProblem] | tuple[ConfigProblem, ...], *, source: str):
        self.problems = tuple(problems)
        self.source = source
        count = len(self.problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}"
        super().__init__(head + "".join(f"\n  {p}" for p in self.problems))


# ---------------------------------------------------------------------------------------------
# The schema


@dataclass(frozen=True, slots=True)
class DeployOptions:
    """Used by ``gateway deploy``: the gateway contract's constructor and destinations."""

    receiver_gas: int = 500_000
    """Gas the gateway gives a receiver's ``onCrossChainMessage``."""
    ack_gas: int = 200_000
    """Gas the gateway gives a sender's ``onCrossChainAck``."""
    max_payload: int = 4096
    """The largest payload *this* chain accepts; every chain's gateway caps messages to it."""


@dataclass(frozen=True, slots=True)
class FiscoEndpointConfig:
    url: str
    ca_cert: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True, slots=True)
class Sealer:
    node_id: str
    """128 lowercase hex digits (the 64-byte public key), no ``0x``."""
    weight: int = 1


@dataclass(frozen=True, kw_only=True)
class ChainConfig:
    """What every chain section has; :class:`EvmChainConfig` and :class:`FiscoChainConfig` add
    their family's fields and build the adapter's settings."""

    family: ClassVar[str]
    timestamp_units_per_second: ClassVar[int]
    """Block timestamps are seconds on EVM chains and milliseconds on FISCO BCOS."""

    name: str
    gateway: bytes | None
    relayer_key: KeySource | None
    """None exactly for a remote chain (``served = false``): its own gateway relays it."""
    served: bool = True
    """False: a *remote* chain, relayed by a peer gateway; this gateway holds only its trust
    root (to verify evidence from it) and no keys."""
    sender_key: KeySource | None = None
    owner_key: KeySource | None = None
    """Deploys and owns the gateway contract; the relayer key does when it is not set."""
    call_timeout: float | None = None
    receipt_timeout: float | None = None
    deploy: DeployOptions = field(default_factory=DeployOptions)

    @property
    def key_curve(self) -> Curve:
        return Curve.SECP256K1

    @property
    def endpoint_urls(self) -> tuple[str, ...]:
        raise NotImplementedError

    def evm_settings(self, environ: Mapping[str, str] | None = None) -> EvmSettings:
        del environ
        raise ConfigError(
            [ConfigProblem(f"chains.{self.name}.family", f"is {self.family!r}, not 'evm'")],
            source="configuration",
        )

    def fisco_settings(self, environ: Mapping[str, str] | None = None) -> FiscoSettings:
        del environ
        raise ConfigError(
            [ConfigProblem(f"chains.{self.name}.family", f"is {self.family!r}, not {FISCO!r}")],
            source="configuration",
        )

    def load_keys(
        self, environ: Mapping[str, str] | None = None
    ) -> tuple[bytes | None, bytes | None]:
        """The relayer and sender keys' bytes (sender None when not configured).

        Both are tried, so a :class:`ConfigError` names every key that cannot be loaded."""
        relayer, sender = self._keys(
            ("relayer_key", self.relayer_key), ("sender_key", self.sender_key), env=environ
        )
        if sender is not None and sender == relayer:
            problem = ConfigProblem(
                f"chains.{self.name}.sender_key",
                "is the relayer's key: sendMessage must come from another account (no nonce "
                "contention with deliveries, no draining of the relayer's funds)",
            )
            raise ConfigError([problem], source="keys")
        return relayer, sender

    def load_relayer_key(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The relayer key's bytes alone (``gateway deploy`` does not need the sender's)."""
        self._require_served()
        raw = self._keys(("relayer_key", self.relayer_key), env=environ)[0]
        assert raw is not None
        return raw

    def load_owner_key(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The key that deploys and owns the gateway: ``owner_key``, else ``relayer_key``."""
        self._require_served()
        name, source = (
            ("owner_key", self.owner_key) if self.owner_key else ("relayer_key", self.relayer_key)
        )
        raw = self._keys((name, source), env=environ)[0]
        assert raw is not None
        return raw

    def _keys(
        self, *sources: tuple[str, KeySource | None], env: Mapping[str, str] | None
    ) -> tuple[bytes | None, ...]:
        problems: list[ConfigProblem] = []
        out: list[bytes | None] = []
        for name, source in sources:
            if source is None:
                out.append(None)
                continue
            try:
                out.append(load_key(source, curve=self.key_curve, environ=env).reveal())
            except KeySourceError as exc:
                problems.append(ConfigProblem(f"chains.{self.name}.{name}", str(exc)))
                out.append(None)
        if problems:
            raise ConfigError(problems, source="keys")
        return tuple(out)

    def _require_served(self) -> None:
        if not self.served:
            problem = ConfigProblem(
                f"chains.{self.name}.served",
                "is false: a remote chain has no keys here; the gateway that serves it "
                "deploys and relays it",
            )
            raise ConfigError([problem], source="configuration")

    def _require_gateway(self) -> bytes:
        if self.gateway is None:
            problem = ConfigProblem(
                f"chains.{self.name}.gateway",
                f"not set; deploy one with `gateway deploy --chain {self.name}`",
            )
            raise ConfigError([problem], source="configuration")
        return self.gateway

    def _timeouts(self) -> dict[str, Any]:
        values = {"call_timeout": self.call_timeout, "receipt_timeout": self.receipt_timeout}
        return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True, kw_only=True)
class EvmChainConfig(ChainConfig):
    family: ClassVar[str] = EVM
    timestamp_units_per_second: ClassVar[int] = 1

    endpoints: tuple[str, ...]
    chain_id: int
    confirmations: int | None = None
    finality: str | None = None
    log_range: int | None = None
    gas_margin: float | None = None
    trust_quorum: int | None = None
    """How many endpoints must agree on a block hash; None: a strict majority."""

    @property
    def endpoint_urls(self) -> tuple[str, ...]:
        return self.endpoints

    @property
    def quorum(self) -> int:
        """k of the n endpoints that must agree on a block hash (k > n/2, k <= n)."""
        return self.trust_quorum if self.trust_quorum is not None else len(self.endpoints) // 2 + 1

    def evm_settings(self, environ: Mapping[str, str] | None = None) -> EvmSettings:
        gateway = self._require_gateway()
        relayer, sender = self.load_keys(environ)
        extra = self._timeouts()
        for name in ("confirmations", "log_range", "gas_margin"):
            if getattr(self, name) is not None:
                extra[name] = getattr(self, name)
        return EvmSettings(
            chain=self.name,
            chain_id=self.chain_id,
            endpoints=self.endpoints,
            gateway=gateway,
            relayer_key=relayer,
            sender_key=sender,
            finality_tag=self.finality,
            **extra,
        )


_FISCO_TUNING = (
    "seal_batch",
    "seal_interval",
    "block_range",
    "body_lookback_blocks",
    "body_cache_size",
    "page_bytes",
)


@dataclass(frozen=True, kw_only=True)
class FiscoChainConfig(ChainConfig):
    family: ClassVar[str] = FISCO
    timestamp_units_per_second: ClassVar[int] = 1000

    endpoints: tuple[FiscoEndpointConfig, ...]
    sealers: tuple[Sealer, ...]
    chain_id: str = "chain0"
    group_id: str = "group0"
    crypto: CryptoSuite = CryptoSuite.KECCAK256_SECP256K1
    seal_batch: int | None = None
    seal_interval: float | None = None
    block_range: int | None = None
    body_lookback_blocks: int | None = None
    body_cache_size: int | None = None
    page_bytes: int | None = None

    @property
    def key_curve(self) -> Curve:
        return Curve.SM2 if self.crypto is CryptoSuite.SM3_SM2 else Curve.SECP256K1

    @property
    def endpoint_urls(self) -> tuple[str, ...]:
        return tuple(e.url for e in self.endpoints)

    def fisco_settings(self, environ: Mapping[str, str] | None = None) -> FiscoSettings:
        gateway = self._require_gateway()
        if not self.endpoints:
            problem = ConfigProblem(
                f"chains.{self.name}.endpoints", "not set: this remote chain has no endpoints"
            )
            raise ConfigError([problem], source="configuration")
        relayer, sender = self.load_keys(environ)
        extra = self._timeouts()
        for name in _FISCO_TUNING:
            if getattr(self, name) is not None:
                extra[name] = getattr(self, name)
        return FiscoSettings(
            chain=self.name,
            endpoints=tuple(
                FiscoEndpoint(e.url, e.ca_cert, e.client_cert, e.client_key) for e in self.endpoints
            ),
            chain_id=self.chain_id,
            group_id=self.group_id,
            gateway=gateway,
            sealers=tuple((s.node_id, s.weight) for s in self.sealers),
            crypto=self.crypto,
            relayer_key=relayer,
            sender_key=sender,
            **extra,
        )


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """``[gateway.tls]``: this gateway's certificate and key, and the CA that issued them."""

    cert: Path
    key: Path
    ca: Path


@dataclass(frozen=True, slots=True)
class GatewayIdentity:
    """``[gateway]``: who this gateway is, where it listens and keeps its data."""

    name: str
    listen: str
    """As written, ``host:port`` (IPv6 in brackets)."""
    host: str
    port: int
    data_dir: Path
    """Absolute; relative paths in the file are relative to the configuration file."""
    tls: TlsFiles | None = None


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """``[peers.<name>]``: another gateway, pinned by its certificate's SHA-256 fingerprint."""

    name: str
    address: str
    host: str
    port: int
    cert_sha256: str
    """64 lowercase hex digits: SHA-256 of the peer certificate's DER bytes."""
    chains: tuple[str, ...]
    """The remote chains this peer serves: it may ``Forward``/``Acknowledge`` only for these."""
    server_name: str | None = None
    """The TLS name to expect from the peer, when it is not the address's host."""
    cert: Path | None = None
    """The certificate file the fingerprint came from, when pinned by file."""
    ca: Path | None = None
    """The CA certificate that issued the peer's certificate: TLS checks the chain against it
    (gRPC cannot verify a certificate without a root), the fingerprint then pins the peer.
    Always set in a loaded configuration."""
    audit_key: str | None = None
    """The peer's Ed25519 audit public key (64 lowercase hex): ``gateway audit trace`` checks
    the peer's records against its signed checkpoint with it. None: the peer's part of a
    trace is shown as unverified."""
    addresses: tuple[str, ...] = ()
    """Every address of the peer, in the order tried: ``addresses = [...]`` (the replicas of a
    peer gateway, docs/configuration.md) or just ``address``. ``address``, ``host`` and
    ``port`` are the first. The link fails over to the next on an unreachable or standby one."""


@dataclass(frozen=True, slots=True)
class Route:
    """Messages sent on ``source`` to ``destination`` are relayed (and acknowledged back)."""

    source: str
    destination: str


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """``[relay]``: batching, queues, retries and observation pacing (seconds are floats)."""

    batch_size: int = 50
    batch_wait: float = 0.5
    queue_bound: int = 1000
    retry_initial: float = 0.5
    retry_max: float = 30.0
    stuck_after: float = 120.0
    max_blocks: int = 1000
    poll_interval: float = 1.0


@dataclass(frozen=True, slots=True)
class AuditSettings:
    """``[audit]``: the audit trail (docs/audit.md). Without ``key`` no trail is written."""

    key: Path | None = None
    """The Ed25519 private key (PEM, 0600) that signs checkpoints; ``gateway init`` makes it."""
    checkpoint_every: int = 1000
    """A signed checkpoint after this many records..."""
    checkpoint_seconds: float = 60.0
    """...or this many seconds after the last one, when records were added since."""
    anchor_chain: str | None = None
    """A chain served here on which checkpoints are anchored (``AuditAnchor``, relay/anchor.py),
    sent from that chain's relayer account."""
    anchor_contract: str | None = None
    """The ``AuditAnchor`` address on ``anchor_chain`` (``gateway deploy --audit-anchor``)."""
    anchor_every: int = 1
    """Anchor every Nth signed checkpoint (1: each one)."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """``[store]``: where the relay keeps its state. Without ``url`` (or ``url_env``) the store
    is SQLite in the data folder (one process); with a ``postgresql://`` URL several replicas of
    this gateway share one database, one of them active at a time (docs/operations.md)."""

    url: str | None = None
    """``postgresql://user@host:port/dbname``; a password belongs in ``url_env``, not here."""
    url_env: str | None = None
    """The environment variable that holds the URL (read when the gateway starts)."""
    lease_seconds: float = 10.0
    """The active replica's lease: a standby takes over at most about this long after the
    active one stops renewing (it renews every third of it)."""
    replica: str | None = None
    """This replica's name in the lease table and logs; default ``hostname-pid``."""

    @property
    def postgres(self) -> bool:
        return self.url is not None or self.url_env is not None

    def resolve_url(
        self, environ: Mapping[str, str] | None = None, *, source: str = "configuration"
    ) -> str | None:
        """The PostgreSQL URL (from ``url`` or the ``url_env`` variable); None for SQLite.
        Raises :class:`ConfigError` when ``url_env`` names an unset or invalid variable."""
        if self.url is not None:
            return self.url
        if self.url_env is None:
            return None
        value = (os.environ if environ is None else environ).get(self.url_env, "")
        problem = _store_url_problem(value) if value else "is not set"
        if problem is not None:
            raise ConfigError(
                [ConfigProblem("store.url_env", f"${self.url_env} {problem}")], source=source
            )
        return value


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """``[metrics]``: Prometheus metrics and HTTP probes on a port of their own."""

    listen: str | None = None
    """``host:port`` serving ``/metrics``, ``/livez`` and ``/readyz`` over plain HTTP; None: off."""


ApiRole = Literal["developer", "auditor"]
API_ROLES: Final[tuple[ApiRole, ...]] = ("developer", "auditor")


@dataclass(frozen=True, slots=True)
class ApiCredential:
    """One developer API credential: the SHA-256 of a bearer token or of a client certificate's
    DER bytes (never the token itself), and the role it grants."""

    name: str
    sha256: str
    role: ApiRole


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """``[api]``: who may call the developer API."""

    tokens: tuple[ApiCredential, ...] = ()
    client_certs: tuple[ApiCredential, ...] = ()
    client_cas: tuple[Path, ...] = ()
    """CA certificates that issue API client certificates, besides ``gateway.tls.ca``."""
    listen: str | None = None
    """``host:port`` of the TLS port for bearer tokens (no client certificate asked for):
    gRPC's Python server cannot ask for a certificate without requiring one, so token callers
    get a port of their own. None: the API takes client certificates only."""

    def token_credential(self, token: str) -> ApiCredential | None:
        """The credential whose hash is this bearer token's; compared in constant time."""
        digest = hashlib.sha256(token.encode("utf-8")).hexdigest()
        return _match(self.tokens, digest)

    def client_cert_credential(self, cert_sha256: str) -> ApiCredential | None:
        """The credential pinned to this client certificate fingerprint (64 hex)."""
        return _match(self.client_certs, cert_sha256.lower())


def _match(credentials: tuple[ApiCredential, ...], digest: str) -> ApiCredential | None:
    found = None
    for credential in credentials:
        if hmac.compare_digest(credential.sha256, digest):
            found = credential
    return found


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    path: Path
    chains: dict[str, ChainConfig]
    gateway: GatewayIdentity | None = None
    """None when the file has no ``[gateway]`` (enough for ``gateway deploy``)."""
    peers: dict[str, PeerConfig] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    relay: RelaySettings = field(default_factory=RelaySettings)
    api: ApiConfig = field(default_factory=ApiConfig)
    audit: AuditSettings = field(default_factory=AuditSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)

    @property
    def served_chains(self) -> tuple[str, ...]:
        """Chains this gateway submits to (it holds their keys)."""
        return tuple(name for name, chain in self.chains.items() if chain.served)

    @property
    def remote_chains(self) -> tuple[str, ...]:
        """Chains a peer serves; this gateway holds only their trust roots."""
        return tuple(name for name, chain in self.chains.items() if not chain.served)

    def peer_for_chain(self, chain: str) -> PeerConfig | None:
        """The peer that serves a remote chain (exactly one does in a loaded configuration)."""
        return next((p for p in self.peers.values() if chain in p.chains), None)

    def client_ca_files(self) -> tuple[Path, ...]:
        """Every CA a client certificate may chain to (the TLS layer's roots for client auth):
        this gateway's own CA, each peer's CA and ``api.client_cas``, without repeats. Which
        certificate is *accepted* is decided by the pinned fingerprints, not by these."""
        own = (self.gateway.tls.ca,) if self.gateway and self.gateway.tls else ()
        peers = tuple(p.ca for p in self.peers.values() if p.ca is not None)
        return tuple(dict.fromkeys((*own, *peers, *self.api.client_cas)))


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and validate the file; raises :class:`ConfigError` listing every problem."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            raw = handle.read(_MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem("", f"cannot read: {exc.strerror or exc}")], source=str(source)
        ) from None
    if len(raw) > _MAX_CONFIG_BYTES:
        raise ConfigError([ConfigProblem("", "larger than 1 MiB")], source=str(source))
    return parse_config(raw, source)


def parse_config(raw: bytes | str, path: Path) -> GatewayConfig:
    """Validate TOML text as if read from ``path`` (relative paths resolve against its folder)."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([ConfigProblem("", f"not TOML: {exc}")], source=str(path)) from None
    ctx = _Context(base=path.resolve().parent)
    top = _Table(data, "", ctx)
    results = {name: parse(top, name, ctx) for name, parse in _SECTIONS.items()}
    top.finish()
    chains: dict[str, ChainConfig] = results["chains"]
    peers: dict[str, PeerConfig] = results["peers"]
    identity: GatewayIdentity | None = results["gateway"]
    _check_peers(chains, peers, identity, ctx)
    routes = _resolve_routes(chains, results["routes"], ctx)
    _check_api_against_peers(results["api"], peers, ctx)
    _check_audit_anchor(results["audit"], chains, ctx)
    if ctx.problems:
        raise ConfigError(ctx.problems, source=str(path))
    return GatewayConfig(
        path=path,
        chains=chains,
        gateway=identity,
        peers=peers,
        routes=routes,
        relay=results["relay"],
        api=results["api"],
        audit=results["audit"],
        store=results["store"],
        metrics=results["metrics"],
    )


def require_runnable(config: GatewayConfig) -> None:
    """Raise :class:`ConfigError` listing everything ``gateway run`` needs beyond what
    ``gateway deploy`` does: an identity, TLS files, a served chain with its gateway deployed,
    and a route. Keys are not loaded here (that needs the running environment)."""
    problems: list[ConfigProblem] = []
    if config.gateway is None:
        problems.append(
            ConfigProblem("gateway", "missing: add [gateway] with name (and [gateway.tls])")
        )
    elif config.gateway.tls is None:
        problems.append(
            ConfigProblem(
                "gateway.tls",
                "missing: add [gateway.tls] with cert, key and ca (gateway init makes them); "
                "peers and API clients connect over TLS only",
            )
        )
    if not config.served_chains:
        problems.append(
            ConfigProblem("chains", "no chain is served here (every chain has served = false)")
        )
    for name in config.served_chains:
        if config.chains[name].gateway is None:
            problems.append(
                ConfigProblem(
                    f"chains.{name}.gateway",
                    "not set; deploy one with "
                    f"`gateway deploy --config {config.path} --chain {name} --write`",
                )
            )
    if not config.routes:
        problems.append(
            ConfigProblem("routes", "no route: configure at least two chains, one served here")
        )
    problems += _api_port_problems(config)
    if problems:
        raise ConfigError(problems, source=str(config.path))


def _api_port_problems(config: GatewayConfig) -> list[ConfigProblem]:
    """Tokens need the token port, and it must not be the mutual-TLS port."""
    api = config.api
    if api.tokens and api.listen is None:
        return [
            ConfigProblem(
                "api.listen",
                "missing: api.tokens are configured but no port takes bearer tokens "
                '(add listen = "127.0.0.1:50052" to [api])',
            )
        ]
    same = config.gateway is not None and api.listen is not None
    if same and parse_host_port(api.listen or "") == (config.gateway.host, config.gateway.port):  # type: ignore[union-attr]
        return [ConfigProblem("api.listen", "is gateway.listen: the token port needs its own")]
    return []


@dataclass
class _Context:
    base: Path
    problems: list[ConfigProblem] = field(default_factory=list)
    declared_chains: set[str] = field(default_factory=set)
    """Every [chains.<name>] in the file, valid or not: references to an invalid one are not
    reported again."""
    claimed_chains: set[str] = field(default_factory=set)
    """Chains named by an invalid [peers.<name>]: not reported again as served by no peer."""

    def add(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))


class _Missing:
    pass


_MISSING: Final = _Missing()


class _Table:
    """One TOML table being read: typed getters record problems; ``finish`` reports unknown keys."""

    def __init__(self, data: dict[str, Any], path: str, ctx: _Context) -> None:
        self.data = data
        self.path = path
        self.ctx = ctx
        self.seen: set[str] = set()

    def at(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key, _MISSING)

    def finish(self) -> None:
        for key in self.data:
            if key not in self.seen:
                hint = difflib.get_close_matches(key, sorted(self.seen), n=1)
                extra = f" (did you mean {hint[0]!r}?)" if hint else ""
                self.ctx.add(self.at(key), f"unknown key{extra}")

    def get(self, key: str, kind: type, what: str, *, required: bool = False) -> Any:
        """The value if present and of ``kind``; None (with a problem if required) otherwise."""
        value = self.raw(key)
        if value is _MISSING:
            if required:
                self.ctx.add(self.at(key), f"missing (required: {what})")
            return None
        ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            self.ctx.add(self.at(key), f"must be {what}, not {_describe(value)}")
            return None
        return value

    def integer(self, key: str, low: int, high: int, *, required: bool = False) -> int | None:
        value: int | None = self.get(key, int, f"an integer {low}..{high}", required=required)
        if value is not None and not low <= value <= high:
            self.ctx.add(self.at(key), f"must be within {low}..{high}, not {value}")
            return None
        return value

    def positive(self, key: str) -> float | None:
        value: float | None = self.get(key, float, "a number of seconds > 0")
        if value is not None and not 0 < value < 1e6:
            self.ctx.add(self.at(key), f"must be > 0 and < 1000000, not {value}")
            return None
        return value

    def table(self, key: str, what: str, *, required: bool = False) -> _Table | None:
        value = self.get(key, dict, what, required=required)
        return None if value is None else _Table(value, self.at(key), self.ctx)

    def path_value(self, key: str, *, required: bool = False) -> Path | None:
        value: str | None = self.get(key, str, "a file path", required=required)
        if value is None:
            return None
        resolved = (self.ctx.base / value) if not Path(value).is_absolute() else Path(value)
        if not resolved.is_file():
            self.ctx.add(self.at(key), f"file not found: {resolved}")
        return resolved


def _describe(value: object) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    names |= {list: "an array", dict: "a table"}
    return names.get(type(value), type(value).__name__)


def _parse_chains(top: _Table, key: str, ctx: _Context) -> dict[str, ChainConfig]:
    section = top.table(key, "a table of chains ([chains.<name>])", required=True)
    chains: dict[str, ChainConfig] = {}
    if section is None:
        return chains
    if not section.data:
        ctx.add(section.path, "no chain configured; add a [chains.<name>] section")
    ctx.declared_chains.update(section.data)
    for name in list(section.data):
        table = section.table(name, "a table ([chains.<name>])")
        if CHAIN_NAME.fullmatch(name) is None:
            ctx.add(
                section.at(name),
                "not a chain name (1-32 of a-z, 0-9 and '-', not starting with '-')",
            )
        if table is not None:
            chain = _parse_chain(name, table)
            if chain is not None:
                chains[name] = chain
    _check_unique_chain_ids(chains, section)
    return chains


def _check_unique_chain_ids(chains: dict[str, ChainConfig], section: _Table) -> None:
    """Two EVM sections with one chain id are one chain under two names: refused."""
    owner: dict[int, str] = {}
    for name, chain in chains.items():
        if isinstance(chain, EvmChainConfig):
            if chain.chain_id in owner:
                section.ctx.add(
                    f"{section.at(name)}.chain_id",
                    f"{chain.chain_id} is also the chain id of chains.{owner[chain.chain_id]}",
                )
            owner.setdefault(chain.chain_id, name)


_SERVED_ONLY: Final = (
    "relayer_key",
    "sender_key",
    "owner_key",
    "receiver_gas",
    "ack_gas",
    "receipt_timeout",
    "seal_batch",
    "seal_interval",
    "body_lookback_blocks",
    "body_cache_size",
    "page_bytes",
)
"""Keys that only make sense for a chain this gateway submits to (``served = true``)."""


def _parse_chain(name: str, t: _Table) -> ChainConfig | None:
    before = len(t.ctx.problems)
    family = t.get("family", str, f"{EVM!r} or {FISCO!r}", required=True)
    if family is not None and family not in (EVM, FISCO):
        t.ctx.add(t.at("family"), f"must be {EVM!r} or {FISCO!r}, not {family!r}")
        family = None
    served = t.get("served", bool, "true or false") is not False
    if not served:
        _refuse_served_only(t)
    common: dict[str, Any] = {
        "name": name,
        "served": served,
        "gateway": _address(t, "gateway"),
        "relayer_key": _key_source(t, "relayer_key", required=served),
        "sender_key": _key_source(t, "sender_key"),
        "owner_key": _key_source(t, "owner_key"),
        "call_timeout": t.positive("call_timeout"),
        "receipt_timeout": t.positive("receipt_timeout"),
        "deploy": DeployOptions(
            receiver_gas=t.integer("receiver_gas", 21_000, 100_000_000) or 500_000,
            ack_gas=t.integer("ack_gas", 21_000, 100_000_000) or 200_000,
            max_payload=t.integer("max_payload", 1, MAX_PAYLOAD_LIMIT) or 4096,
        ),
    }
    if not served and "gateway" not in t.data:
        t.ctx.add(
            t.at("gateway"),
            "missing (required for a remote chain: its gateway contract is part of the trust "
            "root, the only address whose logs count)",
        )
    chain: ChainConfig | None = None
    if family == EVM:
        chain = _parse_evm(t, common)
    elif family == FISCO:
        chain = _parse_fisco(t, common)
    t.finish()
    return chain if len(t.ctx.problems) == before else None


def _refuse_served_only(t: _Table) -> None:
    """A remote chain's section holds its trust root only: keys and submission tuning are
    reported and dropped, so the rest of the section is still checked."""
    for key in _SERVED_ONLY:
        if key in t.data:
            del t.data[key]
            why = (
                "a remote chain holds no keys here: the gateway that serves it signs for it"
                if key.endswith("_key")
                else "applies only to a chain this gateway serves"
            )
            t.ctx.add(t.at(key), f"{why} (this chain has served = false)")


def _parse_evm(t: _Table, common: dict[str, Any]) -> EvmChainConfig | None:
    endpoints = _endpoints(t, ("http", "https"))
    _refuse_repeated_endpoints(t, endpoints)
    trust_quorum = _trust_quorum(t, len(t.data.get("endpoints") or ()))
    chain_id = t.integer("chain_id", 1, (1 << 63) - 1, required=True)
    confirmations = t.integer("confirmations", 1, 10_000)
    finality = t.get("finality", str, "'safe' or 'finalized'")
    if finality is not None and finality not in FINALITY_TAGS:
        t.ctx.add(t.at("finality"), f"must be 'safe' or 'finalized', not {finality!r}")
    if finality is not None and confirmations is not None:
        t.ctx.add(t.at("finality"), "set either confirmations or finality, not both")
    if (
        finality is None
        and confirmations is None
        and not {"finality", "confirmations"} & t.data.keys()
    ):
        t.ctx.add(
            t.at("confirmations"),
            "not set: say when a block is final, with confirmations (blocks that must follow "
            "it, at least 1) or finality = 'safe' | 'finalized'; there is no safe default",
        )
    gas_margin = t.get("gas_margin", float, "a number >= 1")
    if gas_margin is not None and not 1 <= gas_margin <= 10:
        t.ctx.add(t.at("gas_margin"), f"must be within 1..10, not {gas_margin}")
    log_range = t.integer("log_range", 1, 1_000_000)
    if chain_id is None or not endpoints or (common["served"] and common["relayer_key"] is None):
        return None
    return EvmChainConfig(
        endpoints=tuple(u for u, _ in endpoints),
        trust_quorum=trust_quorum,
        chain_id=chain_id,
        confirmations=confirmations,
        finality=finality,
        gas_margin=gas_margin,
        log_range=log_range,
        **common,
    )


def _refuse_repeated_endpoints(t: _Table, endpoints: list[tuple[str, int]]) -> None:
    """One endpoint listed twice would count twice towards the trust quorum."""
    first: dict[str, int] = {}
    for url, index in endpoints:
        key = url.rstrip("/").lower()
        if key in first:
            t.ctx.add(
                f"{t.at('endpoints')}[{index}]",
                f"repeats endpoints[{first[key]}]: each endpoint counts once towards trust_quorum",
            )
        first.setdefault(key, index)


def _trust_quorum(t: _Table, n: int) -> int | None:
    k = t.integer("trust_quorum", 1, 1000)
    if k is None or n == 0:
        return k
    if k > n:
        t.ctx.add(t.at("trust_quorum"), f"must be at most the number of endpoints ({n}), not {k}")
        return None
    if 2 * k <= n:
        t.ctx.add(
            t.at("trust_quorum"),
            f"must be more than half of the {n} endpoints (k > n/2: at least {n // 2 + 1}), "
            f"not {k}",
        )
        return None
    return k


def _parse_fisco(t: _Table, common: dict[str, Any]) -> FiscoChainConfig | None:
    # A remote chain's trust root is its sealers: its endpoints are optional.
    wanted = common["served"] or "endpoints" in t.data
    endpoints = _fisco_endpoints(t) if wanted else []
    ids: dict[str, Any] = {}
    for key in ("chain_id", "group_id"):
        value = t.get(key, str, "a non-empty string")
        if value is not None and not (0 < len(value) <= 64 and value.isprintable()):
            t.ctx.add(t.at(key), "must be 1-64 printable characters")
        elif value is not None:
            ids[key] = value
    crypto_text = t.get("crypto", str, "'keccak256-secp256k1' or 'sm3-sm2'")
    if crypto_text is not None:
        try:
            ids["crypto"] = CryptoSuite(crypto_text)
        except ValueError:
            t.ctx.add(
                t.at("crypto"), f"must be 'keccak256-secp256k1' or 'sm3-sm2', not {crypto_text!r}"
            )
    sealers = _sealers(t)
    tuning: dict[str, Any] = {"seal_batch": t.integer("seal_batch", 1, 10_000)}
    tuning["block_range"] = t.integer("block_range", 1, 1_000_000)
    tuning["seal_interval"] = t.positive("seal_interval")
    tuning["body_lookback_blocks"] = t.integer("body_lookback_blocks", 1, 10_000_000)
    tuning["body_cache_size"] = t.integer("body_cache_size", 1, 10_000_000)
    tuning["page_bytes"] = t.integer("page_bytes", 1 << 20, 1 << 34)
    if (common["served"] and (not endpoints or common["relayer_key"] is None)) or not sealers:
        return None
    return FiscoChainConfig(
        endpoints=tuple(endpoints),
        sealers=sealers,
        **ids,
        **{k: v for k, v in tuning.items() if v is not None},
        **common,
    )


def _endpoints(t: _Table, schemes: tuple[str, ...]) -> list[tuple[str, int]]:
    """(url, index) of the valid URLs; problems for the others."""
    values = t.get("endpoints", list, "an array of URLs", required=True)
    if values is None:
        return []
    if not values:
        t.ctx.add(t.at("endpoints"), "must name at least one endpoint")
    good = []
    for index, value in enumerate(values):
        where = f"{t.at('endpoints')}[{index}]"
        if not isinstance(value, str):
            t.ctx.add(where, f"must be a URL string, not {_describe(value)}")
        elif (problem := _url_problem(value, schemes)) is not None:
            t.ctx.add(where, problem)
        else:
            good.append((value, index))
    return good


def _url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError:
        return f"not a URL: {value!r}"
    if parts.scheme not in schemes or not parts.hostname:
        return f"not a URL ({'/'.join(schemes)}://host:port): {value!r}"
    if port == 0:
        return f"port 0 is not a port: {value!r}"
    return None


def _fisco_endpoints(t: _Table) -> list[FiscoEndpointConfig]:
    raw = t.data.get("endpoints")
    if not isinstance(raw, list):
        _endpoints(t, ("http", "https"))  # reports missing or wrong type
        return []
    if not raw:
        t.ctx.add(t.at("endpoints"), "must name at least one endpoint")
    t.seen.add("endpoints")
    out = []
    for index, value in enumerate(raw):
        where = f"{t.at('endpoints')}[{index}]"
        if isinstance(value, str):
            problem = _url_problem(value, ("http", "https"))
            if problem is None:
                out.append(FiscoEndpointConfig(value))
            else:
                t.ctx.add(where, problem)
        elif isinstance(value, dict):
            endpoint = _fisco_endpoint_table(_Table(value, where, t.ctx))
            if endpoint is not None:
                out.append(endpoint)
        else:
            t.ctx.add(
                where, f"must be a URL or a table {{url, ca_cert, ...}}, not {_describe(value)}"
            )
    return out


def _fisco_endpoint_table(e: _Table) -> FiscoEndpointConfig | None:
    url = e.get("url", str, "a URL", required=True)
    if url is not None and (problem := _url_problem(url, ("http", "https"))) is not None:
        e.ctx.add(e.at("url"), problem)
        url = None
    files = {k: e.path_value(k) for k in ("ca_cert", "client_cert", "client_key")}
    e.finish()
    if (files["client_cert"] is None) != (files["client_key"] is None):
        e.ctx.add(e.path, "client_cert and client_key go together")
    if url is not None and url.startswith("http:") and any(files.values()):
        e.ctx.add(e.at("url"), "TLS files need an https:// URL")
    return None if url is None else FiscoEndpointConfig(url, **files)


def _sealers(t: _Table) -> tuple[Sealer, ...]:
    values = t.get("sealers", list, "an array of {node_id, weight} tables", required=True)
    if values is None:
        return ()
    if not values:
        t.ctx.add(t.at("sealers"), "must list at least one sealer (the chain's trust root)")
    out: list[Sealer] = []
    seen: set[str] = set()
    for index, value in enumerate(values):
        where = f"{t.at('sealers')}[{index}]"
        if not isinstance(value, dict):
            t.ctx.add(where, f"must be a table {{node_id, weight}}, not {_describe(value)}")
            continue
        s = _Table(value, where, t.ctx)
        node_id = s.get("node_id", str, "128 hex digits (the sealer's public key)", required=True)
        weight = s.integer("weight", 1, 1_000_000)
        s.finish()
        if node_id is not None and _NODE_ID.fullmatch(node_id) is None:
            t.ctx.add(s.at("node_id"), "must be 128 hex digits (the sealer's 64-byte public key)")
            continue
        if node_id is None:
            continue
        node_id = node_id.removeprefix("0x").lower()
        if node_id in seen:
            t.ctx.add(s.at("node_id"), "duplicate sealer")
            continue
        seen.add(node_id)
        out.append(Sealer(node_id, 1 if weight is None else weight))
    return tuple(out)


def _address(t: _Table, key: str) -> bytes | None:
    value = t.get(key, str, "a 0x-prefixed 20-byte hex address")
    if value is None:
        return None
    if _ADDRESS.fullmatch(value) is None:
        t.ctx.add(t.at(key), f"must be 0x and 40 hex digits, not {value!r}")
        return None
    return bytes.fromhex(value[2:])


def _key_source(t: _Table, key: str, *, required: bool = False) -> KeySource | None:
    what = "{keystore = PATH, password_env = VAR | password_file = PATH} or {env = VAR}"
    k = t.table(key, what, required=required)
    if k is None:
        return None
    env = _env_name(k, "env")
    keystore = k.path_value("keystore")
    password_env = _env_name(k, "password_env")
    password_file = k.path_value("password_file")
    k.finish()
    has_env, has_keystore = "env" in k.data, "keystore" in k.data
    passwords = ("password_env" in k.data) + ("password_file" in k.data)
    if has_env and has_keystore:
        k.ctx.add(k.path, "set either env or keystore, not both")
    elif not has_env and not has_keystore:
        k.ctx.add(k.path, f"must be {what}")
    elif has_keystore and passwords != 1:
        k.ctx.add(k.path, "a keystore needs exactly one of password_env and password_file")
    elif has_env and passwords:
        k.ctx.add(k.path, "password_env and password_file go with keystore, not env")
    if env is not None and keystore is None:
        return EnvKeySource(env)
    if keystore is not None and env is None and (password_env is None) != (password_file is None):
        return KeystoreSource(keystore, password_env=password_env, password_file=password_file)
    return None


def _env_name(t: _Table, key: str) -> str | None:
    value: str | None = t.get(key, str, "an environment variable name")
    if value is not None and _ENV_NAME.fullmatch(value) is None:
        t.ctx.add(t.at(key), f"not an environment variable name: {value!r}")
        return None
    return value


# ---------------------------------------------------------------------------------------------
# [gateway], [peers], routes, [relay], [api]

_HEX64: Final = re.compile(r"[0-9a-f]{64}")

_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_SHA256_HEX: Final = re.compile(r"[0-9a-fA-F]{64}")
_DEFAULT_LISTEN: Final = "127.0.0.1:50051"


def parse_host_port(text: str) -> tuple[str, int] | str:
    """(host, port) from ``host:port`` or ``[ipv6]:port``; a problem text otherwise (the
    CLI's ``--listen`` uses it too)."""
    if text.startswith("["):
        m = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})", text)
        host, port_text = (m[1], m[2]) if m else ("", "")
        if m is None or not _is_ip(host, version=6):
            return f"not host:port ([IPv6]:port for IPv6): {text!r}"
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or ":" in host or not port_text.isdigit() or len(port_text) > 5:
            return f"not host:port (IPv6 in brackets: [::1]:50051): {text!r}"
        if not (_is_ip(host) or _HOSTNAME.fullmatch(host)):
            return f"not a host name or IP address: {host!r}"
    port = int(port_text)
    if not 1 <= port <= 65535:
        return f"port must be within 1..65535, not {port}"
    return host, port


def _host_port(address: str) -> tuple[str, int]:
    """(host, port) of an address already checked by :func:`parse_host_port`."""
    parsed = parse_host_port(address)
    assert not isinstance(parsed, str)
    return parsed


def _is_ip(text: str, *, version: int | None = None) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return version is None or ip.version == version


def _address_value(t: _Table, key: str, *, default: str | None = None) -> tuple[str, str, int]:
    """(as written, host, port) of a host:port key; ``("", "", 0)`` after a problem."""
    value = t.get(key, str, "host:port", required=default is None)
    if value is None:
        if default is None or key in t.data:
            return "", "", 0
        value = default
    parsed = parse_host_port(value)
    if isinstance(parsed, str):
        t.ctx.add(t.at(key), parsed)
        return "", "", 0
    return value, *parsed


def _name(t: _Table, where: str, name: str, what: str) -> bool:
    if CHAIN_NAME.fullmatch(name) is None:
        t.ctx.add(where, f"not a {what} name (1-32 of a-z, 0-9 and '-', not starting with '-')")
        return False
    return True


def _parse_gateway(top: _Table, key: str, ctx: _Context) -> GatewayIdentity | None:
    t = top.table(key, "a table ([gateway])")
    if t is None:
        return None
    before = len(ctx.problems)
    name = t.get("name", str, "this gateway's name (like a chain name)", required=True)
    if name is not None:
        _name(t, t.at("name"), name, "gateway")
    listen, host, port = _address_value(t, "listen", default=_DEFAULT_LISTEN)
    data_dir = _data_dir(t)
    tls_table = t.table("tls", "a table ([gateway.tls]) with cert, key and ca")
    tls = _parse_tls(tls_table) if tls_table is not None else None
    t.finish()
    if name is None or len(ctx.problems) != before:
        return None
    return GatewayIdentity(name, listen, host, port, data_dir, tls)


def _data_dir(t: _Table) -> Path:
    value = t.get("data_dir", str, "a folder path")
    path = _resolve(t.ctx, value or "data")
    if path.exists() and not path.is_dir():
        t.ctx.add(t.at("data_dir"), f"not a folder: {path}")
    return path


def _resolve(ctx: _Context, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else ctx.base / path


def _parse_tls(t: _Table) -> TlsFiles | None:
    files = {k: t.path_value(k, required=True) for k in ("cert", "key", "ca")}
    t.finish()
    cert, key, ca = files["cert"], files["key"], files["ca"]
    cert_pem = _read_pem(t, "cert", cert, load_cert_file)
    ca_pem = _read_pem(t, "ca", ca, load_cert_file)
    key_pem = _read_pem(t, "key", key, load_key_file)
    if key is not None and key_pem is not None and key.stat().st_mode & 0o077:
        mode = oct(key.stat().st_mode & 0o777)
        t.ctx.add(t.at("key"), f"readable by others (mode {mode}): chmod 600 {key}")
    if cert_pem is not None and key_pem is not None and not key_matches_cert(cert_pem, key_pem):
        t.ctx.add(t.at("key"), f"is not the key of the certificate {cert}")
    if cert_pem is not None and ca_pem is not None and not is_issued_by(cert_pem, ca_pem):
        t.ctx.add(t.at("ca"), f"did not issue the certificate {cert}")
    if cert is None or key is None or ca is None:
        return None
    return TlsFiles(cert, key, ca)


def _read_pem(
    t: _Table, key: str, path: Path | None, loader: Callable[[Path], bytes]
) -> bytes | None:
    """The file's PEM bytes if it exists and parses (path_value reported a missing file)."""
    if path is None or not path.is_file():
        return None
    try:
        return loader(path)
    except TlsMaterialError as exc:
        t.ctx.add(t.at(key), str(exc))
        return None


def _parse_peers(top: _Table, key: str, _ctx: _Context) -> dict[str, PeerConfig]:
    section = top.table(key, "a table of peers ([peers.<name>])")
    peers: dict[str, PeerConfig] = {}
    if section is None:
        return peers
    for name in list(section.data):
        table = section.table(name, "a table ([peers.<name>])")
        named = _name(section, section.at(name), name, "peer")
        if table is not None:
            peer = _parse_peer(name, table)
            if peer is not None and named:
                peers[name] = peer
            else:
                claimed = table.data.get("chains")
                if isinstance(claimed, list):
                    section.ctx.claimed_chains.update(c for c in claimed if isinstance(c, str))
    return peers


def _peer_addresses(t: _Table) -> tuple[str, ...]:
    """``address = "h:p"`` or ``addresses = ["h1:p1", ...]`` (exactly one of the two), each
    address valid and none repeated; ``()`` after a problem."""
    if ("address" in t.data) == ("addresses" in t.data):
        t.seen.update(("address", "addresses"))
        t.ctx.add(t.path, "give the peer's address with exactly one of address or addresses")
        return ()
    if "address" in t.data:
        address = _address_value(t, "address")[0]
        return (address,) if address else ()
    values = t.get("addresses", list, "an array of host:port strings (the peer's replicas)")
    if values is None:
        return ()
    if not values:
        t.ctx.add(t.at("addresses"), "must name at least one host:port")
    before = len(t.ctx.problems)
    for index, value in enumerate(values):
        where = f"{t.at('addresses')}[{index}]"
        parsed = parse_host_port(value) if isinstance(value, str) else None
        if not isinstance(value, str):
            t.ctx.add(where, f"must be host:port, not {_describe(value)}")
        elif isinstance(parsed, str):
            t.ctx.add(where, parsed)
        elif values.index(value) != index:
            t.ctx.add(where, f"repeats {value!r}")
    return tuple(values) if len(t.ctx.problems) == before and values else ()


def _parse_peer(name: str, t: _Table) -> PeerConfig | None:
    before = len(t.ctx.problems)
    addresses = _peer_addresses(t)
    address, (host, port) = (addresses[0], _host_port(addresses[0])) if addresses else ("", ("", 0))
    fingerprint = _pinned_fingerprint(t)
    chains = t.get("chains", list, "an array of chain names (the chains it serves)", required=True)
    if chains is not None and not chains:
        t.ctx.add(t.at("chains"), "must name at least one chain the peer serves")
    for index, chain in enumerate(chains or ()):
        if not isinstance(chain, str):
            t.ctx.add(f"{t.at('chains')}[{index}]", f"must be a chain name, not {_describe(chain)}")
        elif chains.index(chain) != index:
            t.ctx.add(f"{t.at('chains')}[{index}]", f"repeats {chain!r}")
    audit_key = t.get("audit_key", str, "the peer's audit public key (64 hex digits)")
    if audit_key is not None:
        audit_key = audit_key.lower().removeprefix("0x")
        if not _HEX64.fullmatch(audit_key):
            t.ctx.add(t.at("audit_key"), "must be 64 hex digits (the peer's audit.pub, raw)")
    server_name = t.get("server_name", str, "a DNS name or IP address")
    if server_name is not None and not (_is_ip(server_name) or _HOSTNAME.fullmatch(server_name)):
        t.ctx.add(t.at("server_name"), f"not a DNS name or IP address: {server_name!r}")
    ca = _ca_file(t, "ca", "the CA certificate that issued the peer's certificate", required=True)
    t.finish()
    if fingerprint is None or chains is None or ca is None or len(t.ctx.problems) != before:
        return None
    if fingerprint[1] is not None and not is_issued_by(
        load_cert_file(fingerprint[1]), load_cert_file(ca)
    ):
        t.ctx.add(t.at("ca"), f"did not issue the certificate {fingerprint[1]}")
        return None
    return PeerConfig(
        name=name,
        address=address,
        host=host,
        port=port,
        cert_sha256=fingerprint[0],
        chains=tuple(chains),
        server_name=server_name,
        cert=fingerprint[1],
        ca=ca,
        audit_key=audit_key,
        addresses=addresses,
    )


def _ca_file(t: _Table, key: str, what: str, *, required: bool = False) -> Path | None:
    """A CA certificate file that exists and parses; None (with a problem) otherwise."""
    if required and key not in t.data:
        t.ctx.add(t.at(key), f"missing (required: {what})")
        t.seen.add(key)
        return None
    value: str | None = t.get(key, str, "a file path")
    return None if value is None else _ca_path(t.ctx, t.at(key), value)


def _ca_path(ctx: _Context, where: str, value: str) -> Path | None:
    path = _resolve(ctx, value)
    if not path.is_file():
        ctx.add(where, f"file not found: {path}")
        return None
    try:
        load_cert_file(path)
    except TlsMaterialError as exc:
        ctx.add(where, str(exc))
        return None
    return path


def _pinned_fingerprint(t: _Table) -> tuple[str, Path | None] | None:
    """(fingerprint, file) from exactly one of ``cert_sha256`` and ``cert``."""
    has_hash, has_file = "cert_sha256" in t.data, "cert" in t.data
    digest = _sha256_hex(t, "cert_sha256", "the SHA-256 of the peer's certificate (DER)")
    path = t.path_value("cert")
    if has_hash == has_file:
        t.ctx.add(
            t.path,
            "pin the peer's certificate with exactly one of cert_sha256 (64 hex) and cert (a file)",
        )
        return None
    if path is not None:
        if not path.is_file():
            return None
        try:
            return fingerprint(load_cert_file(path)), path
        except TlsMaterialError as exc:
            t.ctx.add(t.at("cert"), str(exc))
            return None
    return None if digest is None else (digest, None)


def _sha256_hex(t: _Table, key: str, what: str, *, required: bool = False) -> str | None:
    """64 hex digits, lowercased; colons (as ``openssl x509 -fingerprint`` prints) allowed."""
    value: str | None = t.get(key, str, f"64 hex digits ({what})", required=required)
    if value is None:
        return None
    digits = value.replace(":", "")
    if _SHA256_HEX.fullmatch(digits) is None:
        t.ctx.add(t.at(key), f"must be 64 hex digits ({what})")
        return None
    return digits.lower()


def _check_peers(
    chains: dict[str, ChainConfig],
    peers: dict[str, PeerConfig],
    identity: GatewayIdentity | None,
    ctx: _Context,
) -> None:
    """Each peer serves only remote chains; each remote chain has exactly one peer; peers do
    not share a certificate (a peer is known by its certificate alone)."""
    server: dict[str, str] = {}
    by_cert: dict[str, str] = {}
    for peer in peers.values():
        where = f"peers.{peer.name}"
        if identity is not None and peer.name == identity.name:
            ctx.add(where, "is this gateway's own name (gateway.name)")
        if peer.name == LOCAL_PEER:
            # The in-process link calls the pipeline under this name, with a local chain's rights.
            ctx.add(where, f"the name {LOCAL_PEER!r} is reserved for the in-process link")
        if peer.cert_sha256 in by_cert:
            ctx.add(
                f"{where}.cert_sha256",
                f"is also the certificate of peers.{by_cert[peer.cert_sha256]}",
            )
        by_cert.setdefault(peer.cert_sha256, peer.name)
        for index, chain in enumerate(peer.chains):
            at = f"{where}.chains[{index}]"
            if chain not in chains:
                if chain not in ctx.declared_chains:
                    ctx.add(at, f"{chain!r} is not a configured chain (add [chains.{chain}])")
            elif chains[chain].served:
                ctx.add(
                    at,
                    f"{chain!r} is served by this gateway; a peer may serve only remote chains "
                    f"(served = false in [chains.{chain}])",
                )
            elif chain in server:
                ctx.add(at, f"{chain!r} is also served by peers.{server[chain]}")
            else:
                server[chain] = peer.name
    for name, config in chains.items():
        if not config.served and name not in server and name not in ctx.claimed_chains:
            ctx.add(
                f"chains.{name}",
                "a remote chain (served = false) that no peer serves: name it in the chains "
                "of one [peers.<name>]",
            )


def _parse_routes(top: _Table, key: str, ctx: _Context) -> list[tuple[str, str, str]] | None:
    """(where, source, destination) as written; None when the key is absent (the default)."""
    values = top.get(key, list, "an array of {from, to} tables")
    if values is None:
        return None
    out: list[tuple[str, str, str]] = []
    for index, value in enumerate(values):
        where = f"{top.at(key)}[{index}]"
        if not isinstance(value, dict):
            ctx.add(where, f"must be a table {{from, to}}, not {_describe(value)}")
            continue
        r = _Table(value, where, ctx)
        source = r.get("from", str, "a chain name", required=True)
        destination = r.get("to", str, "a chain name", required=True)
        r.finish()
        if source is not None and destination is not None:
            out.append((where, source, destination))
    return out


def _resolve_routes(
    chains: dict[str, ChainConfig], raw: list[tuple[str, str, str]] | None, ctx: _Context
) -> tuple[Route, ...]:
    if raw is None:  # default: every ordered pair with at least one side served here
        return tuple(
            Route(a, b)
            for a in chains
            for b in chains
            if a != b and (chains[a].served or chains[b].served)
        )
    routes: list[Route] = []
    for where, source, destination in raw:
        bad = [
            f"{key} = {name!r} is not a configured chain"
            for key, name in (("from", source), ("to", destination))
            if name not in ctx.declared_chains
        ]
        route = Route(source, destination)
        if bad:
            ctx.add(where, "; ".join(bad))
        elif source not in chains or destination not in chains:
            continue  # an invalid chain section, reported there
        elif source == destination:
            ctx.add(where, "from and to are the same chain")
        elif not (chains[source].served or chains[destination].served):
            ctx.add(where, "neither chain is served by this gateway (both are served = false)")
        elif route in routes:
            ctx.add(where, f"repeats the route from {source!r} to {destination!r}")
        else:
            routes.append(route)
    return tuple(routes)


def _parse_relay(top: _Table, key: str, ctx: _Context) -> RelaySettings:
    t = top.table(key, "a table ([relay])")
    defaults = RelaySettings()
    if t is None:
        return defaults
    before = len(ctx.problems)
    values: dict[str, Any] = {
        "batch_size": t.integer("batch_size", 1, 1000),
        "queue_bound": t.integer("queue_bound", 1, 1_000_000),
        "max_blocks": t.integer("max_blocks", 1, 1_000_000),
        "batch_wait": _seconds(t, "batch_wait", allow_zero=True),
    }
    for name in ("retry_initial", "retry_max", "stuck_after", "poll_interval"):
        values[name] = _seconds(t, name)
    t.finish()
    settings = replace(defaults, **{k: v for k, v in values.items() if v is not None})
    if settings.retry_max < settings.retry_initial:
        ctx.add(t.at("retry_max"), f"must be >= retry_initial ({settings.retry_initial})")
    if settings.queue_bound < settings.batch_size:
        ctx.add(t.at("queue_bound"), f"must be >= batch_size ({settings.batch_size})")
    return settings if len(ctx.problems) == before else defaults


def _seconds(t: _Table, key: str, *, allow_zero: bool = False) -> float | None:
    low = ">= 0" if allow_zero else "> 0"
    value: float | None = t.get(key, float, f"a number of seconds {low}")
    if value is not None and not ((value >= 0 if allow_zero else value > 0) and value <= 86400):
        t.ctx.add(t.at(key), f"must be {low} and <= 86400 seconds, not {value}")
        return None
    return value


def _parse_audit(top: _Table, key: str, ctx: _Context) -> AuditSettings:
    t = top.table(key, "a table ([audit])")
    defaults = AuditSettings()
    if t is None:
        return defaults
    before = len(ctx.problems)
    path = t.path_value("key", required=True)
    every = t.integer("checkpoint_every", 1, 10_000_000)
    seconds = _seconds(t, "checkpoint_seconds")
    anchor_chain = t.get("anchor_chain", str, "a chain served here")
    anchor_contract = t.get("anchor_contract", str, "the AuditAnchor address (0x + 40 hex)")
    if anchor_contract is not None and _ADDRESS.fullmatch(anchor_contract) is None:
        ctx.add(t.at("anchor_contract"), "must be an address: 0x and 40 hex digits")
        anchor_contract = None
    if (anchor_chain is None) != (anchor_contract is None) and len(ctx.problems) == before:
        missing = "anchor_contract" if anchor_contract is None else "anchor_chain"
        ctx.add(t.at(missing), "missing: anchor_chain and anchor_contract go together")
    anchor_every = t.integer("anchor_every", 1, 1_000_000)
    t.finish()
    if path is not None and len(ctx.problems) == before:
        # Loaded here so that a wrong file is a configuration problem with its path.
        try:
            AuditKey.load(path)
        except AuditKeyError as exc:
            ctx.add(t.at("key"), str(exc))
    return AuditSettings(
        key=path,
        checkpoint_every=every if every is not None else defaults.checkpoint_every,
        checkpoint_seconds=seconds if seconds is not None else defaults.checkpoint_seconds,
        anchor_chain=anchor_chain,
        anchor_contract=anchor_contract,
        anchor_every=anchor_every if anchor_every is not None else defaults.anchor_every,
    )


def _check_audit_anchor(
    audit: AuditSettings, chains: Mapping[str, ChainConfig], ctx: _Context
) -> None:
    """``[audit] anchor_chain``: a chain served here (its relayer key sends the anchors)."""
    name = audit.anchor_chain
    if name is None:
        return
    chain = chains.get(name)
    if chain is None:
        if name in ctx.declared_chains:  # invalid, and said already
            return
        ctx.add("audit.anchor_chain", f"no such chain {name!r} (configured: {', '.join(chains)})")
    elif not chain.served:
        ctx.add("audit.anchor_chain", f"{name!r} is not served here: its relayer key signs anchors")


_STORE_SCHEMES: Final = ("postgresql://", "postgres://")


def _store_url_problem(value: str) -> str | None:
    if not value.startswith(_STORE_SCHEMES):
        return f"must be a postgresql:// URL, not {value[:20]!r}"
    if any(c.isspace() for c in value):
        return "must not contain white space"
    return None


def _parse_store(top: _Table, key: str, _ctx: _Context) -> StoreSettings:
    t = top.table(key, "a table ([store])")
    defaults = StoreSettings()
    if t is None:
        return defaults
    url = t.get("url", str, "a postgresql:// URL")
    if url is not None and (problem := _store_url_problem(url)) is not None:
        # The URL is not echoed: it may carry a password.
        t.ctx.add(t.at("url"), problem)
        url = None
    url_env = _env_name(t, "url_env")
    if "url" in t.data and "url_env" in t.data:
        t.ctx.add(t.path, "set either url or url_env, not both")
    lease = _seconds(t, "lease_seconds")
    if lease is not None and lease < 1:
        t.ctx.add(t.at("lease_seconds"), f"must be >= 1 second, not {lease}")
        lease = None
    replica = t.get("replica", str, "a replica name")
    if replica is not None and CHAIN_NAME.fullmatch(replica) is None:
        t.ctx.add(t.at("replica"), f"must match {CHAIN_NAME.pattern}, not {replica!r}")
        replica = None
    t.finish()
    return StoreSettings(
        url=url,
        url_env=url_env,
        lease_seconds=lease if lease is not None else defaults.lease_seconds,
        replica=replica,
    )


def _parse_metrics(top: _Table, key: str, _ctx: _Context) -> MetricsSettings:
    t = top.table(key, "a table ([metrics])")
    if t is None:
        return MetricsSettings()
    listen = _address_value(t, "listen")[0] or None
    t.finish()
    return MetricsSettings(listen=listen)


def _parse_api(top: _Table, key: str, _ctx: _Context) -> ApiConfig:
    t = top.table(key, "a table ([api])")
    if t is None:
        return ApiConfig()
    tokens = _credentials(t, "tokens", "the SHA-256 of the token (never the token itself)")
    certs = _credentials(t, "client_certs", "the SHA-256 of the client certificate (DER)")
    cas = _client_cas(t)
    listen = _address_value(t, "listen")[0] or None if "listen" in t.data else None
    t.finish()
    return ApiConfig(tokens=tokens, client_certs=certs, client_cas=cas, listen=listen)


def _client_cas(t: _Table) -> tuple[Path, ...]:
    values = t.get("client_cas", list, "an array of CA certificate files")
    out: list[Path] = []
    for index, value in enumerate(values or ()):
        where = f"{t.at('client_cas')}[{index}]"
        if not isinstance(value, str):
            t.ctx.add(where, f"must be a file path, not {_describe(value)}")
        elif (path := _ca_path(t.ctx, where, value)) is not None:
            out.append(path)
    return tuple(out)


def _credentials(t: _Table, key: str, what: str) -> tuple[ApiCredential, ...]:
    values = t.get(key, list, "an array of {name, sha256, role} tables")
    out: list[ApiCredential] = []
    names: dict[str, int] = {}
    hashes: dict[str, int] = {}
    for index, value in enumerate(values or ()):
        where = f"{t.at(key)}[{index}]"
        if not isinstance(value, dict):
            t.ctx.add(where, f"must be a table {{name, sha256, role}}, not {_describe(value)}")
            continue
        c = _Table(value, where, t.ctx)
        if "token" in value:
            c.seen.add("token")
            t.ctx.add(
                c.at("token"),
                "never put a token in the file: give its SHA-256 as sha256 "
                "(printf %s TOKEN | sha256sum)",
            )
        name = c.get("name", str, "a name for logs and audit", required=True)
        digest = _sha256_hex(c, "sha256", what, required=True)
        role = c.get("role", str, "'developer' or 'auditor'", required=True)
        c.finish()
        if role is not None and role not in API_ROLES:
            t.ctx.add(c.at("role"), f"must be 'developer' or 'auditor', not {role!r}")
            role = None
        if name is not None and name in names:
            t.ctx.add(c.at("name"), f"repeats {key}[{names[name]}]")
        if digest is not None and digest in hashes:
            t.ctx.add(c.at("sha256"), f"repeats {key}[{hashes[digest]}]")
        if name is not None and digest is not None and role is not None:
            names.setdefault(name, index)
            hashes.setdefault(digest, index)
            out.append(ApiCredential(name, digest, role))
    return tuple(out)


def _check_api_against_peers(api: ApiConfig, peers: dict[str, PeerConfig], ctx: _Context) -> None:
    """A peer's certificate must not also open the developer API (nor the reverse)."""
    pinned = {p.cert_sha256: name for name, p in peers.items()}
    for index, credential in enumerate(api.client_certs):
        if credential.sha256 in pinned:
            ctx.add(
                f"api.client_certs[{index}].sha256",
                f"is the certificate of peers.{pinned[credential.sha256]}: a peer must not "
                "use the developer API",
            )


_SECTIONS: Final[dict[str, Callable[[_Table, str, _Context], Any]]] = {
    "gateway": _parse_gateway,
    "chains": _parse_chains,
    "peers": _parse_peers,
    "routes": _parse_routes,
    "relay": _parse_relay,
    "api": _parse_api,
    "audit": _parse_audit,
    "store": _parse_store,
    "metrics": _parse_metrics,
}


# ---------------------------------------------------------------------------------------------
# Writing the deployed gateway address back


def gateway_snippet(chain: str, address: str, comments: Mapping[str, str] | None = None) -> str:
    """The TOML lines that record a deployed gateway (extra contracts as comments)."""
    lines = [f"[chains.{chain}]", f'gateway = "{address}"']
    lines += [f"# {name} = {value}" for name, value in (comments or {}).items()]
    return "\n".join(lines) + "\n"


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


def write_gateway_address(path: Path, chain: str, address: str) -> None:
    """Set ``gateway = "address"`` in the ``[chains.<chain>]`` section of the file, keeping every
    other line and comment; the result is validated before it replaces the file."""
    if _ADDRESS.fullmatch(address) is None:
        raise ValueError(f"not an address: {address!r}")
    wanted = {f"chains.{chain}", f'chains."{chain}"', f"chains.'{chain}'"}
    _write_values(path, wanted, f"chains.{chain}", "chains.<name>", {"gateway": address})


def write_audit_anchor(path: Path, chain: str, address: str) -> None:
    """Set ``anchor_chain`` and ``anchor_contract`` in the file's ``[audit]`` section, as
    :func:`write_gateway_address` does (``gateway deploy --audit-anchor --write``)."""
    if _ADDRESS.fullmatch(address) is None:
        raise ValueError(f"not an address: {address!r}")
    values = {"anchor_chain": chain, "anchor_contract": address}
    _write_values(path, {"audit"}, "audit", "audit", values)


def _write_values(
    path: Path, wanted: set[str], section: str, shown: str, values: Mapping[str, str]
) -> None:
    """Set each ``key = "value"`` in the section whose header is one of ``wanted``, replacing
    the key's line or adding one after the header, keeping every other line and comment."""
    source = str(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(
        (i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m[1] in wanted),
        None,
    )
    if start is None:
        problem = ConfigProblem(section, f"no [{shown}] section to write into")
        raise ConfigError([problem], source=source)
    for key, value in values.items():
        end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
        new_line = f'{key} = "{value}"\n'
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for i in range(start + 1, end):
            if pattern.match(lines[i]):
                lines[i] = new_line
                break
        else:
            if not lines[start].endswith("\n"):
                lines[start] += "\n"
            lines.insert(start + 1, new_line)
    text = "".join(lines)
    parse_config(text, path)  # never write a file that does not load
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
