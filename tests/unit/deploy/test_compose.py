"""deploy/compose.yaml against the gateway configurations it mounts: services, ports, volumes,
peers, chains, keys and the store URL agree, and each gateway's configuration passes the
gateway's own strict check on the file system its container gets."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import coincurve
import pytest
import rlp
from cryptography import x509

import gateway
from devnet.fisco.keys import sealer_keys
from relay.config import GatewayConfig, parse_config, parse_host_port, require_runnable
from tests.unit.deploy.files import DEPLOY, make_identities, rooted, under, yaml_docs
from verifier.hashing import keccak256

COMPOSE = yaml_docs(DEPLOY / "compose.yaml")[0]
SERVICES: dict[str, Any] = COMPOSE["services"]
CONFIG_PATH = "/etc/gateway/gateway.toml"
GATEWAYS = ("gw-a", "gw-b")
"""The gateways (each a name in its config); gw-a runs two replicas."""
REPLICAS = tuple(
    name
    for name, service in SERVICES.items()
    if service.get("build", {}).get("target") == "runtime"
    and "command" not in service
    and "entrypoint" not in service
)
"""Services running the image's CMD (`gateway run`): every gateway replica."""


def _volumes(service: str) -> list[tuple[str, str]]:
    """(source, target) of each short-syntax volume of ``service``."""
    out = []
    for entry in SERVICES[service].get("volumes", []):
        source, target, *_ = entry.split(":")
        out.append((source, target))
    return out


def _config_source(service: str) -> Path:
    sources = [s for s, t in _volumes(service) if t == CONFIG_PATH]
    assert len(sources) == 1, f"{service} mounts no single {CONFIG_PATH}"
    return (DEPLOY / sources[0]).resolve()


def _command(service: str) -> list[str]:
    command = SERVICES[service]["command"]
    assert isinstance(command, list)
    return command


def _option(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the `secrets` service makes: make-secrets.sh with its command's arguments."""
    argv = _command("secrets")
    assert SERVICES["secrets"]["entrypoint"][0] == "sh"
    return make_identities(tmp_path_factory.mktemp("secrets"), *argv[1:])


def _named_volume_dirs(identities: Path) -> dict[str, Path]:
    """Named volume -> its contents, as the `secrets` service filled it."""
    out_root = _command("secrets")[0]
    return {
        source: identities / target.removeprefix(out_root).lstrip("/")
        for source, target in _volumes("secrets")
        if not source.startswith(".")
    }


def _container_root(service: str, identities: Path, root: Path) -> Path:
    """``service``'s mounts laid out under ``root``: bind mounts copied from deploy/, the
    secrets volumes from what make-secrets.sh made, other named volumes empty."""
    filled = _named_volume_dirs(identities)
    for source, target in _volumes(service):
        dest = under(root, target)
        if source.startswith("."):
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(DEPLOY / source, dest)
        elif source in filled:
            shutil.copytree(filled[source], dest)
        else:
            dest.mkdir(parents=True)
    return root


def _loaded(service: str, identities: Path, root: Path) -> GatewayConfig:
    _container_root(service, identities, root)
    path = under(root, CONFIG_PATH)
    config = parse_config(rooted(path.read_text(encoding="utf-8"), root), path)
    require_runnable(config)
    return config


@pytest.fixture(scope="module")
def configs(identities: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, GatewayConfig]:
    """Each replica service's configuration, loaded on its container's file system."""
    return {name: _loaded(name, identities, tmp_path_factory.mktemp(name)) for name in REPLICAS}


def _gateway(config: GatewayConfig) -> str:
    assert config.gateway is not None
    return config.gateway.name


def _raw(service: str) -> dict[str, Any]:
    return tomllib.loads(_config_source(service).read_text(encoding="utf-8"))


def test_every_bind_mounted_file_is_in_deploy() -> None:
    """Each ./path a service mounts exists under deploy/ (nothing generated or secret is
    expected on the host); every named volume is declared."""
    declared = set(COMPOSE["volumes"])
    for name in SERVICES:
        for source, _target in _volumes(name):
            if source.startswith("."):
                assert (DEPLOY / source).is_file(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} is not declared"


def test_each_gateway_config_passes_the_gateways_strict_validation(
    configs: dict[str, GatewayConfig],
) -> None:
    """parse_config + require_runnable (what `gateway config validate` and `run` check) on the
    mounted file, with the certificates and keys make-secrets.sh makes; gw-a has two replicas
    (gw-a, gw-a-2) with one configuration and one database, gw-b one."""
    assert set(REPLICAS) == {"gw-a", "gw-a-2", "gw-b"}
    assert {name: _gateway(c) for name, c in configs.items()} == {
        "gw-a": "gw-a",
        "gw-a-2": "gw-a",
        "gw-b": "gw-b",
    }
    assert _config_source("gw-a") == _config_source("gw-a-2")
    assert SERVICES["gw-a"]["environment"] == SERVICES["gw-a-2"]["environment"]


def test_listen_ports_are_the_published_container_ports(configs: dict[str, GatewayConfig]) -> None:
    """gRPC, token API and metrics ports of each config are published, on 127.0.0.1 only, and
    no host port is published twice."""
    host_ports: list[str] = []
    for service in SERVICES.values():
        for entry in service.get("ports", []):
            host, port, _container = entry.split(":")
            assert host == "127.0.0.1", entry
            host_ports.append(port)
    assert len(host_ports) == len(set(host_ports))
    for name, config in configs.items():
        assert config.gateway is not None
        listens = [config.gateway.listen, config.api.listen, config.metrics.listen]
        published = {int(e.split(":")[2]) for e in SERVICES[name]["ports"]}
        wanted = set()
        for listen in listens:
            assert listen is not None
            parsed = parse_host_port(listen)
            assert not isinstance(parsed, str)
            wanted.add(parsed[1])
        assert wanted == published, f"{name}: listens on {wanted}, publishes {published}"


def test_peers_are_the_other_compose_gateways_replicas(configs: dict[str, GatewayConfig]) -> None:
    """A peer's addresses are exactly the compose services running that gateway, each on its
    gRPC port, serving the chains the peer entry names; every one of them is a name in the
    peer's certificate (the TLS name checked), and the pinned certificate is the peer's own."""
    for name, config in configs.items():
        assert config.peers, f"{name} has no peer"
        for peer in config.peers.values():
            replicas = {s for s, c in configs.items() if _gateway(c) == peer.name}
            hosts = set()
            for address in peer.addresses:
                parsed = parse_host_port(address)
                assert not isinstance(parsed, str)
                host, port = parsed
                assert host in replicas, f"{name}: {address} is not a replica of {peer.name}"
                other = configs[host]
                assert other.gateway is not None
                assert other.gateway.port == port
                assert set(peer.chains) == set(other.served_chains)
                assert other.gateway.tls is not None
                assert peer.cert is not None
                assert peer.cert.read_bytes() == other.gateway.tls.cert.read_bytes()
                cert = x509.load_pem_x509_certificate(peer.cert.read_bytes())
                names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
                assert host in names.value.get_values_for_type(x509.DNSName)
                hosts.add(host)
            assert hosts == replicas, f"{name}: [peers.{peer.name}] misses a replica"


def test_chain_endpoints_are_the_devnet_services(configs: dict[str, GatewayConfig]) -> None:
    """Each endpoint is a compose service running `gateway devnet` on that port, and its
    healthcheck connects to that port."""
    for config in configs.values():
        for chain in config.chains.values():
            for url in chain.endpoint_urls:
                parts = urlsplit(url)
                assert parts.hostname in SERVICES, url
                argv = _command(parts.hostname)
                assert _option(argv, "--port") == str(parts.port)
                assert _option(argv, "--host") == "0.0.0.0"
                assert (
                    f"('127.0.0.1', {parts.port})"
                    in SERVICES[parts.hostname]["healthcheck"]["test"][-1]
                )


def test_the_fisco_trust_root_is_the_devnodes_sealers(configs: dict[str, GatewayConfig]) -> None:
    """The configured sealers are the node ids the devnode derives from its --seed and
    --sealers (as it prints them)."""
    argv = _command("fisco")
    keys = sealer_keys(_option(argv, "--seed"), int(_option(argv, "--sealers")))
    expected = {k.public_key.hex() for k in keys}
    for name in GATEWAYS:
        sealers = _raw(name)["chains"]["fisco-local"]["sealers"]
        assert {s["node_id"] for s in sealers} == expected


def _address(key_hex: str) -> bytes:
    public = coincurve.PrivateKey(bytes.fromhex(key_hex.removeprefix("0x"))).public_key
    return keccak256(public.format(compressed=False)[1:])[12:]


def test_gateway_addresses_are_what_the_deploy_services_create() -> None:
    """Anvil: the CREATE address of deploy-anvil's owner key at nonce 0; the devnode: the
    address it gives transaction 0 of block 1 (keccak256("1_0_0")[:20], devnet/fisco/chain.py).
    Both gateways name both addresses."""
    owner = SERVICES["deploy-anvil"]["environment"]["ANVIL_OWNER_KEY"]
    anvil = keccak256(rlp.encode([_address(owner), 0]))[12:]
    fisco = keccak256(b"1_0_0")[:20]
    for name in GATEWAYS:
        chains = _raw(name)["chains"]
        assert bytes.fromhex(chains["anvil-local"]["gateway"][2:]) == anvil
        assert bytes.fromhex(chains["fisco-local"]["gateway"][2:]) == fisco


def test_each_service_gets_the_keys_and_store_url_its_config_names(
    configs: dict[str, GatewayConfig],
) -> None:
    """Every env variable a served chain's keys name, and [store] url_env, are in the gateway's
    environment; deploy-* get the owner's; the URL names the postgres service and a database
    postgres-init.sql creates."""
    init_sql = (DEPLOY / "compose" / "postgres-init.sql").read_text(encoding="utf-8")
    deployer = {"gw-a": "deploy-anvil", "gw-b": "deploy-fisco"}
    for name, config in configs.items():
        env = SERVICES[name]["environment"]
        gateway_name = _gateway(config)
        for chain in config.served_chains:
            raw = _raw(name)["chains"][chain]
            for kind in ("relayer_key", "sender_key"):
                assert raw[kind]["env"] in env
            assert raw["owner_key"]["env"] in SERVICES[deployer[gateway_name]]["environment"]
            assert chain in _command(deployer[gateway_name])
        assert config.store.url_env is not None
        url = urlsplit(
            env[config.store.url_env].replace("${GATEWAY_PG_PASSWORD:-", "").replace("}@", "@")
        )
        assert url.scheme == "postgresql"
        assert url.hostname == "postgres"
        assert f"CREATE DATABASE {url.path.lstrip('/')} " in init_sql
        migrate = f"migrate-{gateway_name[-1]}"
        assert SERVICES[migrate]["environment"][config.store.url_env] == env[config.store.url_env]


def test_gateways_start_after_their_chains_contracts_and_schema() -> None:
    """gw-* wait for both deployments and their migration to complete; those wait for the
    secrets, the chains and PostgreSQL."""
    for name in REPLICAS:
        needs = SERVICES[name]["depends_on"]
        migrate = f"migrate-{_raw(name)['gateway']['name'][-1]}"
        for one_shot in ("deploy-anvil", "deploy-fisco", migrate):
            assert needs[one_shot]["condition"] == "service_completed_successfully"
    for one_shot in ("deploy-anvil", "deploy-fisco", "migrate-a", "migrate-b"):
        assert (
            SERVICES[one_shot]["depends_on"]["secrets"]["condition"]
            == "service_completed_successfully"
        )


def test_every_gateway_command_is_accepted_by_the_gateways_parser() -> None:
    """The commands of services on the gateway image (ENTRYPOINT gateway) and the devnet image
    (ENTRYPOINT gateway devnet) parse with the real CLI and name the mounted config."""
    for name, service in SERVICES.items():
        target = service.get("build", {}).get("target")
        if target is None or "entrypoint" in service:
            continue
        argv = service.get("command", ["run", "--config", CONFIG_PATH])
        if target == "devnet":
            argv = ["devnet", *argv]
        args = gateway.build_parser().parse_args(argv)
        assert callable(args.handler), name
        if "--config" in argv:
            assert _option(argv, "--config") == CONFIG_PATH
            assert CONFIG_PATH in {t for _s, t in _volumes(name)}
