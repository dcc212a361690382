"""The gateway's configuration file: one TOML schema, validated strictly, in this one module.

``load_config(path)`` reads the file with the standard library's ``tomllib`` and returns a frozen
:class:`GatewayConfig`, or raises one :class:`ConfigError` that lists *every* problem with its
path (``chains.fisco-a.endpoints[0]: not a URL``), so an operator fixes the file in one pass.
Unknown keys are errors: a typo must fail at start-up rather than silently fall back to a
default. The format is documented in ``docs/configuration.md``; ``examples/gateway.toml`` is a
working example for the two local chains.

Each top-level section has one parser in ``_SECTIONS``; a new section (``[gateway]``,
``[peers]``, ``[api]``, ...) is one more entry there and one more field of :class:`GatewayConfig`.
Relative paths (keystores, password files, TLS files) are relative to the configuration file.
Keys are *named* here (file or environment variable) and loaded only when settings are built.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Final
from urllib.parse import urlsplit

from adapters.evm.settings import EvmSettings
from adapters.fisco.settings import FiscoEndpoint, FiscoSettings
from adapters.keys import Curve, EnvKeySource, KeySource, KeySourceError, KeystoreSource, load_key
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
    relayer_key: KeySource
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
        raw = self._keys(("relayer_key", self.relayer_key), env=environ)[0]
        assert raw is not None
        return raw

    def load_owner_key(self, environ: Mapping[str, str] | None = None) -> bytes:
        """The key that deploys and owns the gateway: ``owner_key``, else ``relayer_key``."""
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

    @property
    def endpoint_urls(self) -> tuple[str, ...]:
        return self.endpoints

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
class GatewayConfig:
    path: Path
    chains: dict[str, ChainConfig]


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
    if ctx.problems:
        raise ConfigError(ctx.problems, source=str(path))
    return GatewayConfig(path=path, chains=results["chains"])


@dataclass
class _Context:
    base: Path
    problems: list[ConfigProblem] = field(default_factory=list)

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


_SECTIONS: Final[dict[str, Callable[[_Table, str, _Context], Any]]] = {"chains": _parse_chains}


def _parse_chain(name: str, t: _Table) -> ChainConfig | None:
    before = len(t.ctx.problems)
    family = t.get("family", str, f"{EVM!r} or {FISCO!r}", required=True)
    if family is not None and family not in (EVM, FISCO):
        t.ctx.add(t.at("family"), f"must be {EVM!r} or {FISCO!r}, not {family!r}")
        family = None
    common: dict[str, Any] = {
        "name": name,
        "gateway": _address(t, "gateway"),
        "relayer_key": _key_source(t, "relayer_key", required=True),
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
    chain: ChainConfig | None = None
    if family == EVM:
        chain = _parse_evm(t, common)
    elif family == FISCO:
        chain = _parse_fisco(t, common)
    t.finish()
    return chain if len(t.ctx.problems) == before else None


def _parse_evm(t: _Table, common: dict[str, Any]) -> EvmChainConfig | None:
    endpoints = _endpoints(t, ("http", "https"))
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
    if chain_id is None or not endpoints or common["relayer_key"] is None:
        return None
    return EvmChainConfig(
        endpoints=tuple(u for u, _ in endpoints),
        chain_id=chain_id,
        confirmations=confirmations,
        finality=finality,
        gas_margin=gas_margin,
        log_range=log_range,
        **common,
    )


def _parse_fisco(t: _Table, common: dict[str, Any]) -> FiscoChainConfig | None:
    endpoints = _fisco_endpoints(t)
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
    if not endpoints or not sealers or common["relayer_key"] is None:
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
# Writing the deployed gateway address back


def gateway_snippet(chain: str, address: str, comments: Mapping[str, str] | None = None) -> str:
    """The TOML lines that record a deployed gateway (extra contracts as comments)."""
    lines = [f"[chains.{chain}]", f'gateway = "{address}"']
    lines += [f"# {name} = {value}" for name, value in (comments or {}).items()]
    return "\n".join(lines) + "\n"


_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_GATEWAY_LINE = re.compile(r"^\s*gateway\s*=")


def write_gateway_address(path: Path, chain: str, address: str) -> None:
    """Set ``gateway = "address"`` in the ``[chains.<chain>]`` section of the file, keeping every
    other line and comment; the result is validated before it replaces the file."""
    if _ADDRESS.fullmatch(address) is None:
        raise ValueError(f"not an address: {address!r}")
    source = str(path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    wanted = {f"chains.{chain}", f'chains."{chain}"', f"chains.'{chain}'"}
    start = next(
        (i for i, line in enumerate(lines) if (m := _HEADER.match(line)) and m[1] in wanted),
        None,
    )
    if start is None:
        problem = ConfigProblem(f"chains.{chain}", "no [chains.<name>] section to write into")
        raise ConfigError([problem], source=source)
    end = next((i for i in range(start + 1, len(lines)) if _HEADER.match(lines[i])), len(lines))
    new_line = f'gateway = "{address}"\n'
    for i in range(start + 1, end):
        if _GATEWAY_LINE.match(lines[i]):
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
