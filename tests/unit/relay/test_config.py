"""relay.config: strict TOML validation (every problem with its path), settings, write-back."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from eth_account import Account

from adapters.evm.settings import EvmSettings
from adapters.fisco.settings import FiscoSettings
from devnet.fisco.keys import sealer_keys
from relay.config import (
    ApiCredential,
    ConfigError,
    EvmChainConfig,
    FiscoChainConfig,
    GatewayConfig,
    RelaySettings,
    Route,
    gateway_snippet,
    load_config,
    parse_config,
    require_runnable,
    write_gateway_address,
)
from relay.tls import fingerprint, issue_cert, make_ca, write_cert_file, write_key_file
from verifier.hashing import CryptoSuite

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "gateway.toml"
NODE = "ab" * 64
NODE2 = "cd" * 64
KEY = "0x" + "11" * 32
SENDER = "0x" + "22" * 32
GATEWAY = "0x" + "12" * 20

EVM = """
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:8545", "https://rpc.example.org/v1"]
chain_id = 31337
confirmations = 2
relayer_key = { env = "RELAYER" }
"""

FISCO = f"""
[chains.fisco-a]
family = "fisco-bcos-3"
endpoints = ["http://127.0.0.1:20200"]
sealers = [{{ node_id = "{NODE}" }}, {{ node_id = "0x{NODE2.upper()}", weight = 2 }}]
relayer_key = {{ env = "RELAYER" }}
"""


def _problems(text: str, tmp_path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, tmp_path / "gateway.toml")
    return [str(p) for p in info.value.problems]


def test_example_config_loads() -> None:
    """examples/gateway.toml validates: the two local chains with the devnode's sealers."""
    config = load_config(EXAMPLE)
    anvil, fisco = config.chains["anvil-local"], config.chains["fisco-local"]
    assert isinstance(anvil, EvmChainConfig)
    assert anvil.chain_id == 31337
    assert anvil.endpoints == ("http://127.0.0.1:8545",)
    assert isinstance(fisco, FiscoChainConfig)
    assert fisco.endpoint_urls == ("http://127.0.0.1:20200",)
    assert len(fisco.sealers) == 4


def test_devnode_sealers_in_example() -> None:
    """The example's sealers are what `gateway devnet fisco` runs with by default."""
    fisco = load_config(EXAMPLE).chains["fisco-local"]
    assert isinstance(fisco, FiscoChainConfig)
    assert [s.node_id for s in fisco.sealers] == [k.node_id for k in sealer_keys("devnode", 4)]


def test_minimal_sections_and_defaults(tmp_path: Path) -> None:
    """Defaults: confirmations via settings, chain0/group0, keccak suite, deploy options."""
    config = parse_config(EVM + FISCO, tmp_path / "g.toml")
    fisco = config.chains["fisco-a"]
    assert isinstance(fisco, FiscoChainConfig)
    assert fisco.chain_id == "chain0"
    assert fisco.group_id == "group0"
    assert fisco.crypto is CryptoSuite.KECCAK256_SECP256K1
    assert [(s.node_id, s.weight) for s in fisco.sealers] == [(NODE, 1), (NODE2, 2)]
    assert fisco.timestamp_units_per_second == 1000
    assert config.chains["evm-a"].timestamp_units_per_second == 1
    assert fisco.deploy.max_payload == 4096
    assert fisco.gateway is None


def test_unknown_keys_everywhere(tmp_path: Path) -> None:
    """Unknown keys at every level are errors, each with its path and a spelling hint."""
    text = (
        "colour = 1\n"
        + EVM.replace('family = "evm"', 'family = "evm"\nconfirmation = 3')
        + FISCO.replace(
            f'{{ node_id = "{NODE}" }}', f'{{ node_id = "{NODE}", wieght = 1 }}'
        ).replace('{ env = "RELAYER" }', '{ env = "RELAYER", extra = true }')
    )
    assert _problems(text, tmp_path) == [
        "chains.evm-a.confirmation: unknown key (did you mean 'confirmations'?)",
        "chains.fisco-a.relayer_key.extra: unknown key",
        "chains.fisco-a.sealers[0].wieght: unknown key (did you mean 'weight'?)",
        "colour: unknown key",
    ]


def test_many_problems_at_once(tmp_path: Path) -> None:
    """Every problem in the file is reported in one ConfigError, in file order, with paths."""
    text = f"""
[chains.evm-a]
family = "evm"
endpoints = ["ftp://x", 5, "http://"]
chain_id = "31337"
gateway = "0x1234"
confirmations = 2
finality = "latest"
relayer_key = {{ keystore = "missing.json" }}
max_payload = 100000

[chains.fisco-a]
family = "fisco-bcos-3"
endpoints = [{{ url = "http://n:20200", ca_cert = "ca.crt" }}, "not a url"]
crypto = "sha256"
sealers = [{{ node_id = "abc" }}, {{ node_id = "{NODE}" }}, {{ node_id = "{NODE}" }}]
sender_key = {{ env = "1BAD" }}
receiver_gas = -1

[chains.Bad_Name]
family = "cosmos"
"""
    problems = _problems(text, tmp_path)
    assert problems == [
        "chains.evm-a.gateway: must be 0x and 40 hex digits, not '0x1234'",
        "chains.evm-a.relayer_key.keystore: file not found: " + str(tmp_path / "missing.json"),
        "chains.evm-a.relayer_key: a keystore needs exactly one of password_env and password_file",
        "chains.evm-a.max_payload: must be within 1..65536, not 100000",
        "chains.evm-a.endpoints[0]: not a URL (http/https://host:port): 'ftp://x'",
        "chains.evm-a.endpoints[1]: must be a URL string, not an integer",
        "chains.evm-a.endpoints[2]: not a URL (http/https://host:port): 'http://'",
        "chains.evm-a.chain_id: must be an integer 1..9223372036854775807, not a string",
        "chains.evm-a.finality: must be 'safe' or 'finalized', not 'latest'",
        "chains.evm-a.finality: set either confirmations or finality, not both",
        "chains.fisco-a.relayer_key: missing (required: {keystore = PATH, password_env = VAR "
        "| password_file = PATH} or {env = VAR})",
        "chains.fisco-a.sender_key.env: not an environment variable name: '1BAD'",
        "chains.fisco-a.receiver_gas: must be within 21000..100000000, not -1",
        "chains.fisco-a.endpoints[0].ca_cert: file not found: " + str(tmp_path / "ca.crt"),
        "chains.fisco-a.endpoints[0].url: TLS files need an https:// URL",
        "chains.fisco-a.endpoints[1]: not a URL (http/https://host:port): 'not a url'",
        "chains.fisco-a.crypto: must be 'keccak256-secp256k1' or 'sm3-sm2', not 'sha256'",
        "chains.fisco-a.sealers[0].node_id: must be 128 hex digits (the sealer's 64-byte "
        "public key)",
        "chains.fisco-a.sealers[2].node_id: duplicate sealer",
        "chains.Bad_Name: not a chain name (1-32 of a-z, 0-9 and '-', not starting with '-')",
        "chains.Bad_Name.family: must be 'evm' or 'fisco-bcos-3', not 'cosmos'",
        "chains.Bad_Name.relayer_key: missing (required: {keystore = PATH, password_env = VAR "
        "| password_file = PATH} or {env = VAR})",
    ]


def test_error_message_lists_all(tmp_path: Path) -> None:
    """str(ConfigError) names the file, the count, and one problem per line."""
    with pytest.raises(ConfigError) as info:
        parse_config("[chains.a]\nfamily = 1\n", tmp_path / "g.toml")
    lines = str(info.value).splitlines()
    assert lines[0] == f"{tmp_path / 'g.toml'}: 2 problems"
    assert lines[1] == "  chains.a.family: must be 'evm' or 'fisco-bcos-3', not an integer"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "chains: missing (required: a table of chains ([chains.<name>]))"),
        ("[chains]\n", "chains: no chain configured; add a [chains.<name>] section"),
        ("chains = 1\n", "chains: must be a table of chains ([chains.<name>]), not an integer"),
        ("[chains.-a]\n", "chains.-a: not a chain name"),
        ("[chains." + "a" * 33 + "]\n", "not a chain name"),
        ('[chains."a b"]\n', "chains.a b: not a chain name"),
    ],
    ids=["no-chains", "empty", "not-table", "leading-dash", "too-long", "space"],
)
def test_chain_section_problems(tmp_path: Path, text: str, expected: str) -> None:
    """Missing or empty [chains] and invalid chain names are reported with their path."""
    assert any(expected in p for p in _problems(text, tmp_path))


def test_duplicate_chain_name_is_a_toml_error(tmp_path: Path) -> None:
    """A chain defined twice is refused (TOML forbids redefining a table), with its line."""
    problems = _problems(EVM + EVM, tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("not TOML: ")
    assert "line" in problems[0]


def test_duplicate_evm_chain_id(tmp_path: Path) -> None:
    """Two EVM sections with one chain id are refused: one chain under two names."""
    text = EVM + EVM.replace("evm-a", "evm-b")
    assert _problems(text, tmp_path) == [
        "chains.evm-b.chain_id: 31337 is also the chain id of chains.evm-a"
    ]


@pytest.mark.parametrize(
    ("sealers", "expected"),
    [
        (None, "chains.fisco-a.sealers: missing (required: an array of {node_id, weight} tables)"),
        ("[]", "chains.fisco-a.sealers: must list at least one sealer (the chain's trust root)"),
        ('["ab"]', "chains.fisco-a.sealers[0]: must be a table {node_id, weight}, not a string"),
        (
            f'[{{ node_id = "{NODE}", weight = 0 }}]',
            "chains.fisco-a.sealers[0].weight: must be within 1..1000000, not 0",
        ),
        ("[{ weight = 1 }]", "chains.fisco-a.sealers[0].node_id: missing"),
    ],
    ids=["missing", "empty", "not-table", "zero-weight", "no-node-id"],
)
def test_sealer_problems(tmp_path: Path, sealers: str | None, expected: str) -> None:
    """FISCO sections need a non-empty, well-formed sealer list (the trust root)."""
    start = FISCO.index("sealers")
    end = FISCO.index("\n", start)
    line = "" if sealers is None else f"sealers = {sealers}"
    problems = _problems(FISCO[:start] + line + FISCO[end:], tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith(expected)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ('{ env = "A", keystore = "k.json", password_env = "P" }', "set either env or keystore"),
        ("{}", "must be {keystore"),
        ('{ env = "A", password_env = "P" }', "password_env and password_file go with keystore"),
        (
            '{ keystore = "k.json", password_env = "P", password_file = "k.json" }',
            "a keystore needs exactly one of",
        ),
        ('"0x1111"', "must be {keystore = PATH"),
    ],
    ids=["both", "neither", "env-with-password", "two-passwords", "inline-key"],
)
def test_key_source_problems(tmp_path: Path, key: str, expected: str) -> None:
    """A key names exactly one source; a key written inline is refused."""
    (tmp_path / "k.json").write_text("{}")
    problems = _problems(EVM.replace('{ env = "RELAYER" }', key), tmp_path)
    assert len(problems) == 1
    assert problems[0].startswith("chains.evm-a.relayer_key")
    assert expected in problems[0]
    assert "1111" not in problems[0]


def test_not_toml(tmp_path: Path) -> None:
    """A TOML syntax error is one problem naming the line."""
    assert _problems("[chains\n", tmp_path)[0].startswith("not TOML: ")


def test_unreadable_file(tmp_path: Path) -> None:
    """A missing file is a ConfigError, not an OSError."""
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "none.toml")


def test_evm_settings(tmp_path: Path) -> None:
    """evm_settings() builds EvmSettings with both keys loaded and the finality tag."""
    text = EVM.replace("confirmations = 2", 'finality = "safe"')
    text += f'gateway = "{GATEWAY}"\nsender_key = {{ env = "SENDER" }}\ncall_timeout = 3\n'
    chain = parse_config(text, tmp_path / "g.toml").chains["evm-a"]
    settings = chain.evm_settings({"RELAYER": KEY, "SENDER": SENDER})
    assert isinstance(settings, EvmSettings)
    assert settings.gateway == bytes.fromhex(GATEWAY[2:])
    assert settings.relayer_key == bytes.fromhex(KEY[2:])
    assert settings.sender_key == bytes.fromhex(SENDER[2:])
    assert settings.finality_tag == "safe"
    assert settings.call_timeout == 3.0
    assert settings.confirmations == 2  # the settings' default
    assert KEY[2:] not in repr(settings)
    with pytest.raises(ConfigError, match="not 'fisco-bcos-3'"):
        chain.fisco_settings({})


def test_fisco_settings_from_keystore(tmp_path: Path) -> None:
    """fisco_settings() loads a keystore key with the password from a file next to the config."""
    secret = bytes.fromhex("33" * 32)
    keystore = Account.encrypt(secret, "pw", kdf="scrypt", iterations=2)
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "relayer.json").write_text(json.dumps(keystore))
    (tmp_path / "keys" / "pw").write_text("pw\n")
    source = '{ keystore = "keys/relayer.json", password_file = "keys/pw" }'
    text = FISCO.replace('{ env = "RELAYER" }', source) + f'gateway = "{GATEWAY}"\n'
    chain = parse_config(text, tmp_path / "g.toml").chains["fisco-a"]
    settings = chain.fisco_settings({})
    assert isinstance(settings, FiscoSettings)
    assert settings.relayer_key == secret
    assert settings.sender_key is None
    assert settings.sealers == ((NODE, 1), (NODE2, 2))
    assert settings.endpoints[0].url == "http://127.0.0.1:20200"


def test_settings_need_gateway_and_keys(tmp_path: Path) -> None:
    """Without a gateway, or with unloadable keys, settings name the path of each problem."""
    chain = parse_config(EVM, tmp_path / "g.toml").chains["evm-a"]
    with pytest.raises(ConfigError, match=r"chains\.evm-a\.gateway: not set; deploy one"):
        chain.evm_settings({})
    text = EVM + f'gateway = "{GATEWAY}"\nsender_key = {{ env = "SENDER" }}\n'
    chain = parse_config(text, tmp_path / "g.toml").chains["evm-a"]
    with pytest.raises(ConfigError) as info:
        chain.evm_settings({"SENDER": "0x1234"})
    assert [str(p) for p in info.value.problems] == [
        "chains.evm-a.relayer_key: environment variable RELAYER: is not set",
        "chains.evm-a.sender_key: environment variable SENDER: holds 2 bytes, not a 32-byte "
        "private key",
    ]


def test_the_sender_account_is_never_the_relayers(tmp_path: Path) -> None:
    """Requirement 20: sendMessage from the relayer's account would contend for its nonces and
    let any API caller spend the relayer's funds."""
    text = EVM + f'gateway = "{GATEWAY}"\nsender_key = {{ env = "SENDER" }}\n'
    chain = parse_config(text, tmp_path / "g.toml").chains["evm-a"]
    with pytest.raises(ConfigError) as info:
        chain.evm_settings({"RELAYER": KEY, "SENDER": KEY})
    [problem] = info.value.problems
    assert str(problem).startswith("chains.evm-a.sender_key: is the relayer's key")
    assert KEY[2:] not in str(info.value)
    settings = chain.evm_settings({"RELAYER": KEY, "SENDER": SENDER})
    assert settings.sender_key == bytes.fromhex(SENDER[2:])


def test_owner_key_defaults_to_relayer(tmp_path: Path) -> None:
    """The deployer is owner_key when configured, else the relayer key."""
    chain = parse_config(EVM, tmp_path / "g.toml").chains["evm-a"]
    assert chain.load_owner_key({"RELAYER": KEY}) == bytes.fromhex(KEY[2:])
    text = EVM + 'owner_key = { env = "OWNER" }\n'
    chain = parse_config(text, tmp_path / "g.toml").chains["evm-a"]
    assert chain.load_owner_key({"RELAYER": KEY, "OWNER": SENDER}) == bytes.fromhex(SENDER[2:])


def test_write_gateway_address(tmp_path: Path) -> None:
    """The address goes into its chain's section (replacing or adding the line); the rest,
    comments included, stays as it was."""
    path = tmp_path / "g.toml"
    original = "# my gateways\n" + EVM + f'gateway = "{GATEWAY}"  # old\n' + FISCO
    path.write_text(original)
    new_evm, new_fisco = "0x" + "ab" * 20, "0x" + "cd" * 20
    write_gateway_address(path, "evm-a", new_evm)
    write_gateway_address(path, "fisco-a", new_fisco)
    text = path.read_text()
    assert text.startswith("# my gateways\n")
    assert text.count("gateway = ") == 2
    config = load_config(path)
    assert config.chains["evm-a"].gateway == bytes.fromhex(new_evm[2:])
    assert config.chains["fisco-a"].gateway == bytes.fromhex(new_fisco[2:])
    with pytest.raises(ConfigError, match=r"no \[chains\.<name>\] section"):
        write_gateway_address(path, "other", new_evm)


def test_gateway_snippet() -> None:
    """The snippet is TOML that names the chain; extra contracts are comments."""
    text = gateway_snippet("evm-a", GATEWAY, {"ping_pong": "0x01"})
    assert text == f'[chains.evm-a]\ngateway = "{GATEWAY}"\n# ping_pong = 0x01\n'


def test_fisco_tuning_reaches_settings(tmp_path: Path) -> None:
    """Every FISCO tuning key is validated, and a valid one reaches FiscoSettings unchanged."""
    tuning = (
        "seal_batch = 7\nseal_interval = 0.25\nblock_range = 9\n"
        "body_lookback_blocks = 50\nbody_cache_size = 1\npage_bytes = 2097152\n"
    )
    text = FISCO + tuning + f'gateway = "{GATEWAY}"\n'
    settings = (
        parse_config(text, tmp_path / "g.toml").chains["fisco-a"].fisco_settings({"RELAYER": KEY})
    )
    assert isinstance(settings, FiscoSettings)
    assert (settings.seal_batch, settings.seal_interval, settings.block_range) == (7, 0.25, 9)
    assert (settings.body_lookback_blocks, settings.body_cache_size) == (50, 1)
    assert settings.page_bytes == 2 * 1024 * 1024
    bad = FISCO + "body_lookback_blocks = 0\npage_bytes = 1024\nbody_cache_size = 0\n"
    problems = _problems(bad, tmp_path)
    assert "chains.fisco-a.body_lookback_blocks: must be within 1..10000000, not 0" in problems
    assert any(p.startswith("chains.fisco-a.page_bytes: must be within") for p in problems)
    assert any(p.startswith("chains.fisco-a.body_cache_size: must be within") for p in problems)


# ---------------------------------------------------------------------------------------------
# [gateway], [peers], remote chains, trust_quorum, routes, [relay], [api], require_runnable


PEER_SHA = "ab" * 32
TOKEN_SHA = "cd" * 32
REMOTE_FISCO = f"""
[chains.fisco-b]
family = "fisco-bcos-3"
served = false
gateway = "{GATEWAY}"
sealers = [{{ node_id = "{NODE}" }}]
"""
PEER = f"""
[peers.gw-b]
address = "10.0.0.2:50051"
cert_sha256 = "{PEER_SHA}"
ca = "peer-ca.crt"
chains = ["fisco-b"]
"""
PEER_CA = make_ca("peer CA")


@pytest.fixture(autouse=True)
def _peer_ca(tmp_path: Path) -> None:
    """The peer's CA certificate, which every [peers.<name>] names, next to the test's file."""
    write_cert_file(tmp_path / "peer-ca.crt", PEER_CA[0])
    (tmp_path / "junk.crt").write_text("junk")


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    """A CA, and a certificate and key it issued, written into tmp_path as gateway init does."""
    ca_cert, ca_key = make_ca("test CA")
    cert, key = issue_cert(ca_cert, ca_key, "gw-a")
    write_cert_file(tmp_path / "ca.crt", ca_cert)
    write_key_file(tmp_path / "ca.key", ca_key)
    write_cert_file(tmp_path / "gateway.crt", cert)
    write_key_file(tmp_path / "gateway.key", key)
    return tmp_path


GATEWAY_SECTION = """
[gateway]
name = "gw-a"
listen = "0.0.0.0:50051"
data_dir = "state"

[gateway.tls]
cert = "gateway.crt"
key = "gateway.key"
ca = "ca.crt"
"""


def _load(text: str, base: Path) -> GatewayConfig:
    return parse_config(text, base / "gateway.toml")


def test_full_runnable_config(tls_dir: Path) -> None:
    """Every new section parses into its typed value; the file is runnable once gateways are set."""
    text = (
        'routes = [{ from = "evm-a", to = "fisco-b" }]\n'
        + GATEWAY_SECTION
        + EVM.replace("confirmations = 2", f'confirmations = 2\ngateway = "{GATEWAY}"')
        + REMOTE_FISCO
        + PEER
        + f"""
[relay]
batch_size = 10
batch_wait = 0
queue_bound = 100
retry_initial = 1
retry_max = 60.5
stuck_after = 300
max_blocks = 50
poll_interval = 2

[api]
listen = "0.0.0.0:50052"
tokens = [{{ name = "alice", sha256 = "{TOKEN_SHA.upper()}", role = "developer" }}]
client_certs = [{{ name = "audit", sha256 = "{"ef" * 32}", role = "auditor" }}]
"""
    )
    config = _load(text, tls_dir)
    assert config.api.listen == "0.0.0.0:50052"
    assert config.gateway is not None
    assert config.gateway.name == "gw-a"
    assert (config.gateway.host, config.gateway.port) == ("0.0.0.0", 50051)
    assert config.gateway.data_dir == tls_dir / "state"
    assert config.gateway.tls is not None
    assert config.gateway.tls.cert == tls_dir / "gateway.crt"
    assert config.served_chains == ("evm-a",)
    assert config.remote_chains == ("fisco-b",)
    remote = config.chains["fisco-b"]
    assert remote.served is False
    assert remote.relayer_key is None
    peer = config.peers["gw-b"]
    assert (peer.host, peer.port, peer.cert_sha256, peer.chains) == (
        "10.0.0.2",
        50051,
        PEER_SHA,
        ("fisco-b",),
    )
    assert config.peer_for_chain("fisco-b") == peer
    assert config.peer_for_chain("evm-a") is None
    assert config.routes == (Route("evm-a", "fisco-b"),)
    assert config.relay == RelaySettings(10, 0.0, 100, 1.0, 60.5, 300.0, 50, 2.0)
    assert config.api.tokens == (ApiCredential("alice", TOKEN_SHA, "developer"),)
    assert config.api.client_certs[0].role == "auditor"
    require_runnable(config)


def test_defaults_without_new_sections(tmp_path: Path) -> None:
    """A chains-only file (as gateway deploy uses) loads with defaults and is not runnable."""
    config = _load(EVM + FISCO, tmp_path)
    assert config.gateway is None
    assert config.peers == {}
    assert config.relay == RelaySettings()
    assert config.relay.batch_size == 50
    assert config.api.tokens == ()
    assert set(config.routes) == {Route("evm-a", "fisco-a"), Route("fisco-a", "evm-a")}
    with pytest.raises(ConfigError) as info:
        require_runnable(config)
    assert [str(p) for p in info.value.problems] == [
        "gateway: missing: add [gateway] with name (and [gateway.tls])",
        "chains.evm-a.gateway: not set; deploy one with "
        f"`gateway deploy --config {tmp_path / 'gateway.toml'} --chain evm-a --write`",
        "chains.fisco-a.gateway: not set; deploy one with "
        f"`gateway deploy --config {tmp_path / 'gateway.toml'} --chain fisco-a --write`",
    ]


def test_gateway_defaults_and_missing_tls(tmp_path: Path) -> None:
    """listen defaults to 127.0.0.1:50051 and data_dir to data/ next to the file; no TLS is
    a require_runnable problem, not a load error."""
    config = _load('[gateway]\nname = "gw-a"\n' + EVM, tmp_path)
    assert config.gateway is not None
    assert config.gateway.listen == "127.0.0.1:50051"
    assert config.gateway.data_dir == tmp_path / "data"
    with pytest.raises(ConfigError) as info:
        require_runnable(config)
    problems = [str(p) for p in info.value.problems]
    assert problems[0].startswith("gateway.tls: missing: add [gateway.tls]")
    assert "routes: no route: configure at least two chains, one served here" in problems


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("", "gateway.name: missing (required: this gateway's name (like a chain name))"),
        ('name = "GW"', "gateway.name: not a gateway name"),
        ('name = "gw"\nlisten = "localhost"', "gateway.listen: not host:port"),
        ('name = "gw"\nlisten = "host:0"', "gateway.listen: port must be within 1..65535, not 0"),
        ('name = "gw"\nlisten = "h:70000"', "gateway.listen: port must be within 1..65535"),
        ('name = "gw"\nlisten = "::1:80"', "gateway.listen: not host:port (IPv6 in brackets"),
        ('name = "gw"\nlisten = "bad_host!:80"', "gateway.listen: not a host name or IP address"),
        ('name = "gw"\nlisten = 50051', "gateway.listen: must be host:port, not an integer"),
        ('name = "gw"\ndata_dir = "gateway.toml"', "gateway.data_dir: not a folder"),
        ('name = "gw"\nport = 1', "gateway.port: unknown key"),
        ('name = "gw"\ntls = { cert = "x.crt" }', "gateway.tls.cert: file not found"),
        ('name = "gw"\ntls = { cert = "a", key = "b" }', "gateway.tls.ca: missing"),
        ('name = "gw"\ntls = { cert = "a", key = "b", ca = "c", x = 1 }', "gateway.tls.x: unknown"),
    ],
)
def test_gateway_section_problems(tmp_path: Path, lines: str, expected: str) -> None:
    """Each [gateway] key is validated, with its path."""
    (tmp_path / "gateway.toml").write_text("")
    problems = _problems(f"[gateway]\n{lines}\n" + EVM, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_listen_accepts_ipv6_and_names(tmp_path: Path) -> None:
    """[::1]:port and host names are valid listen addresses."""
    for listen, host in (("[::1]:9000", "::1"), ("gw.example.org:443", "gw.example.org")):
        config = _load(f'[gateway]\nname = "gw"\nlisten = "{listen}"\n' + EVM, tmp_path)
        assert config.gateway is not None
        assert config.gateway.host == host


def test_tls_files_are_checked(tls_dir: Path) -> None:
    """A key that is not the certificate's, a CA that did not issue it, a non-PEM file and a
    world-readable key are each reported on their key."""
    other_ca, other_key = make_ca("other")
    write_cert_file(tls_dir / "other-ca.crt", other_ca)
    write_key_file(tls_dir / "other.key", other_key)
    (tls_dir / "junk.crt").write_text("junk")
    (tls_dir / "open.key").write_bytes((tls_dir / "gateway.key").read_bytes())
    (tls_dir / "open.key").chmod(0o644)

    def tls(cert: str, key: str, ca: str) -> list[str]:
        section = f'[gateway]\nname = "gw"\ntls = {{ cert = "{cert}", key = "{key}", ca = "{ca}" }}'
        return _problems(section + EVM, tls_dir)

    assert tls("gateway.crt", "other.key", "ca.crt") == [
        f"gateway.tls.key: is not the key of the certificate {tls_dir / 'gateway.crt'}"
    ]
    assert tls("gateway.crt", "gateway.key", "other-ca.crt") == [
        f"gateway.tls.ca: did not issue the certificate {tls_dir / 'gateway.crt'}"
    ]
    assert tls("junk.crt", "gateway.key", "ca.crt") == [
        f"gateway.tls.cert: certificate {tls_dir / 'junk.crt'} is not a PEM X.509 certificate"
    ]
    assert tls("gateway.crt", "open.key", "ca.crt") == [
        f"gateway.tls.key: readable by others (mode 0o644): chmod 600 {tls_dir / 'open.key'}"
    ]


def test_remote_chain_holds_no_keys(tmp_path: Path) -> None:
    """served = false: keys and submission tuning are refused, gateway is required; the rest
    of the section is still checked."""
    text = (
        EVM
        + f"""
[chains.fisco-b]
family = "fisco-bcos-3"
served = false
sealers = [{{ node_id = "{NODE}" }}]
relayer_key = {{ env = "X" }}
seal_batch = 3
crypto = "nope"
"""
        + PEER
    )
    assert _problems(text, tmp_path) == [
        "chains.fisco-b.relayer_key: a remote chain holds no keys here: the gateway that serves "
        "it signs for it (this chain has served = false)",
        "chains.fisco-b.seal_batch: applies only to a chain this gateway serves (this chain has "
        "served = false)",
        "chains.fisco-b.gateway: missing (required for a remote chain: its gateway contract is "
        "part of the trust root, the only address whose logs count)",
        "chains.fisco-b.crypto: must be 'keccak256-secp256k1' or 'sm3-sm2', not 'nope'",
    ]


def test_remote_chain_cannot_deploy_or_sign(tmp_path: Path) -> None:
    """A remote chain loads without endpoints (FISCO) and refuses keys and FISCO settings."""
    config = _load(EVM + REMOTE_FISCO + PEER, tmp_path)
    remote = config.chains["fisco-b"]
    assert isinstance(remote, FiscoChainConfig)
    assert remote.endpoints == ()
    with pytest.raises(ConfigError, match=r"chains\.fisco-b\.served: is false"):
        remote.load_relayer_key({})
    with pytest.raises(ConfigError, match=r"chains\.fisco-b\.endpoints: not set"):
        remote.fisco_settings({})
    served = _problems(EVM + REMOTE_FISCO.replace("false", '"no"') + PEER, tmp_path)
    assert "chains.fisco-b.served: must be true or false, not a string" in served


def test_remote_evm_chain_builds_read_only_settings(tmp_path: Path) -> None:
    """A remote EVM chain (endpoints, finality, gateway, no keys) builds read-only settings."""
    remote = (
        EVM.replace("evm-a", "evm-b")
        .replace("31337", "5")
        .replace('relayer_key = { env = "RELAYER" }', f'served = false\ngateway = "{GATEWAY}"')
    )
    text = FISCO + remote + PEER.replace("fisco-b", "evm-b")
    settings = _load(text, tmp_path).chains["evm-b"].evm_settings({})
    assert settings.relayer_key is None
    assert settings.sender_key is None


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        (PEER.replace("10.0.0.2:50051", "nowhere"), "peers.gw-b.address: not host:port"),
        (PEER.replace(f'cert_sha256 = "{PEER_SHA}"\n', ""), "peers.gw-b: pin the peer's"),
        (
            PEER.replace("cert_sha256", 'cert = "p.crt"\ncert_sha256'),
            "peers.gw-b: pin the peer's certificate with exactly one of",
        ),
        (PEER.replace(PEER_SHA, "12"), "peers.gw-b.cert_sha256: must be 64 hex digits"),
        (PEER.replace('["fisco-b"]', "[]"), "peers.gw-b.chains: must name at least one"),
        (PEER.replace('["fisco-b"]', '["fisco-b", 1]'), "peers.gw-b.chains[1]: must be a chain"),
        (PEER.replace("fisco-b", "evm-a"), "peers.gw-b.chains[0]: 'evm-a' is served by this"),
        (PEER.replace("fisco-b", "nope"), "peers.gw-b.chains[0]: 'nope' is not a configured"),
        (PEER + 'server_name = "a b"\n', "peers.gw-b.server_name: not a DNS name"),
        (PEER + "colour = 1\n", "peers.gw-b.colour: unknown key"),
        (PEER.replace('ca = "peer-ca.crt"\n', ""), "peers.gw-b.ca: missing (required: the CA"),
        (PEER.replace("peer-ca.crt", "none.crt"), "peers.gw-b.ca: file not found"),
        (PEER.replace("peer-ca.crt", "junk.crt"), "peers.gw-b.ca: certificate"),
        (PEER.replace("gw-b", "GW"), "peers.GW: not a peer name"),
        (PEER.replace("gw-b", "gw-a"), "peers.gw-a: is this gateway's own name"),
        (PEER.replace("gw-b", "local"), "peers.local: the name 'local' is reserved"),
        ("", "chains.fisco-b: a remote chain (served = false) that no peer serves"),
        (
            PEER + PEER.replace("gw-b", "gw-c").replace(PEER_SHA, "ef" * 32),
            "peers.gw-c.chains[0]: 'fisco-b' is also served by peers.gw-b",
        ),
        (
            PEER + PEER.replace("gw-b", "gw-c").replace('"fisco-b"', '"fisco-c"'),
            "peers.gw-c.cert_sha256: is also the certificate of peers.gw-b",
        ),
    ],
)
def test_peer_problems(tmp_path: Path, peer: str, expected: str) -> None:
    """Each [peers.<name>] key and the peer/remote-chain correspondence are checked."""
    extra = (
        REMOTE_FISCO.replace("[chains.fisco-b]", "[chains.fisco-c]") if "fisco-c" in peer else ""
    )
    text = '[gateway]\nname = "gw-a"\n' + EVM + REMOTE_FISCO + extra + peer
    problems = _problems(text, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_peer_pinned_by_certificate_file(tmp_path: Path) -> None:
    """cert = FILE pins that file's fingerprint; colons in cert_sha256 are accepted."""
    cert, _ = issue_cert(*PEER_CA, "gw-b")
    write_cert_file(tmp_path / "gw-b.crt", cert)
    text = EVM + REMOTE_FISCO + PEER.replace(f'cert_sha256 = "{PEER_SHA}"', 'cert = "gw-b.crt"')
    peer = _load(text, tmp_path).peers["gw-b"]
    assert peer.cert_sha256 == fingerprint(cert)
    assert peer.cert == tmp_path / "gw-b.crt"
    assert peer.ca == tmp_path / "peer-ca.crt"
    colons = ":".join(PEER_SHA.upper()[i : i + 2] for i in range(0, 64, 2))
    assert _load(EVM + REMOTE_FISCO + PEER.replace(PEER_SHA, colons), tmp_path).peers[
        "gw-b"
    ].cert_sha256 == (PEER_SHA)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", None),
        ("trust_quorum = 2", None),
        (
            "trust_quorum = 1",
            "must be more than half of the 2 endpoints (k > n/2: at least 2), not 1",
        ),
        ("trust_quorum = 3", "must be at most the number of endpoints (2), not 3"),
        ("trust_quorum = 0", "must be within 1..1000, not 0"),
    ],
)
def test_trust_quorum(tmp_path: Path, extra: str, expected: str | None) -> None:
    """trust_quorum defaults to a strict majority and must satisfy n/2 < k <= n."""
    text = EVM.replace("confirmations = 2", f"confirmations = 2\n{extra}")
    if expected is None:
        chain = _load(text, tmp_path).chains["evm-a"]
        assert isinstance(chain, EvmChainConfig)
        assert chain.quorum == 2
    else:
        assert _problems(text, tmp_path) == [f"chains.evm-a.trust_quorum: {expected}"]


def test_trust_quorum_single_endpoint_and_repeats(tmp_path: Path) -> None:
    """One endpoint means k = 1 (trusting it); a repeated endpoint cannot count twice."""
    one = EVM.replace(', "https://rpc.example.org/v1"', "")
    chain = _load(one, tmp_path).chains["evm-a"]
    assert isinstance(chain, EvmChainConfig)
    assert chain.quorum == 1
    twice = EVM.replace("https://rpc.example.org/v1", "http://127.0.0.1:8545/")
    assert _problems(twice, tmp_path) == [
        "chains.evm-a.endpoints[1]: repeats endpoints[0]: each endpoint counts once towards "
        "trust_quorum"
    ]


@pytest.mark.parametrize(
    ("routes", "expected"),
    [
        ('routes = [{ from = "evm-a", to = "nope" }]', "routes[0]: to = 'nope' is not a config"),
        ('routes = [{ from = "evm-a", to = "evm-a" }]', "routes[0]: from and to are the same"),
        ('routes = [{ from = "fisco-b", to = "fisco-c" }]', "routes[0]: neither chain is served"),
        (
            'routes = [{ from = "evm-a", to = "fisco-b" }, { from = "evm-a", to = "fisco-b" }]',
            "routes[1]: repeats the route from 'evm-a' to 'fisco-b'",
        ),
        ('routes = [{ from = "evm-a" }]', "routes[0].to: missing"),
        ('routes = [{ from = "evm-a", to = "fisco-b", x = 1 }]', "routes[0].x: unknown key"),
        ('routes = ["evm-a"]', "routes[0]: must be a table {from, to}, not a string"),
        ('routes = "all"', "routes: must be an array of {from, to} tables, not a string"),
    ],
)
def test_route_problems(tmp_path: Path, routes: str, expected: str) -> None:
    """Routes join configured chains, one side served here, no repeats."""
    remote_c = REMOTE_FISCO.replace("[chains.fisco-b]", "[chains.fisco-c]")
    peer = PEER.replace('["fisco-b"]', '["fisco-b", "fisco-c"]')
    problems = _problems(routes + "\n" + EVM + REMOTE_FISCO + remote_c + peer, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_default_routes_skip_remote_pairs(tmp_path: Path) -> None:
    """By default every ordered pair with a served side is a route; remote-remote is not."""
    remote_c = REMOTE_FISCO.replace("[chains.fisco-b]", "[chains.fisco-c]")
    peer = PEER.replace('["fisco-b"]', '["fisco-b", "fisco-c"]')
    config = _load(EVM + REMOTE_FISCO + remote_c + peer, tmp_path)
    assert set(config.routes) == {
        Route("evm-a", "fisco-b"),
        Route("fisco-b", "evm-a"),
        Route("evm-a", "fisco-c"),
        Route("fisco-c", "evm-a"),
    }


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ("batch_size = 0", "relay.batch_size: must be within 1..1000, not 0"),
        ("batch_size = 1001", "relay.batch_size: must be within 1..1000, not 1001"),
        ("batch_wait = -1", "relay.batch_wait: must be >= 0 and <= 86400 seconds, not -1.0"),
        ("queue_bound = 0", "relay.queue_bound: must be within 1..1000000, not 0"),
        ("queue_bound = 10", "relay.queue_bound: must be >= batch_size (50)"),
        ("retry_initial = 0", "relay.retry_initial: must be > 0 and <= 86400 seconds, not 0.0"),
        ("retry_max = 0.1", "relay.retry_max: must be >= retry_initial (0.5)"),
        ("stuck_after = 0", "relay.stuck_after: must be > 0 and <= 86400 seconds, not 0.0"),
        ("max_blocks = 0", "relay.max_blocks: must be within 1..1000000, not 0"),
        ('poll_interval = "1s"', "relay.poll_interval: must be a number of seconds > 0, not a"),
        ("batch = 1", "relay.batch: unknown key (did you mean 'batch_wait'?)"),
    ],
)
def test_relay_problems(tmp_path: Path, lines: str, expected: str) -> None:
    """Each [relay] key is range-checked with its path."""
    problems = _problems(f"[relay]\n{lines}\n" + EVM, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (
            f'tokens = [{{ name = "a", sha256 = "{TOKEN_SHA}", role = "admin" }}]',
            "api.tokens[0].role: must be 'developer' or 'auditor', not 'admin'",
        ),
        (
            'tokens = [{ name = "a", sha256 = "xyz", role = "developer" }]',
            "api.tokens[0].sha256: must be 64 hex digits",
        ),
        (
            f'tokens = [{{ name = "a", token = "secret", sha256 = "{TOKEN_SHA}", '
            'role = "developer" }]',
            "api.tokens[0].token: never put a token in the file",
        ),
        ('tokens = [{ name = "a" }]', "api.tokens[0].sha256: missing"),
        ("tokens = [1]", "api.tokens[0]: must be a table {name, sha256, role}, not an integer"),
        (
            f'tokens = [{{ name = "a", sha256 = "{TOKEN_SHA}", role = "developer" }}, '
            f'{{ name = "a", sha256 = "{TOKEN_SHA}", role = "auditor" }}]',
            "api.tokens[1].name: repeats tokens[0]",
        ),
        (
            f'client_certs = [{{ name = "p", sha256 = "{PEER_SHA}", role = "developer" }}]',
            "api.client_certs[0].sha256: is the certificate of peers.gw-b: a peer must not use",
        ),
        ('token = "x"', "api.token: unknown key (did you mean 'tokens'?)"),
    ],
)
def test_api_problems(tmp_path: Path, lines: str, expected: str) -> None:
    """[api] holds hashes and roles only; a peer's certificate cannot be an API credential."""
    problems = _problems(f"[api]\n{lines}\n" + EVM + REMOTE_FISCO + PEER, tmp_path)
    assert any(p.startswith(expected) for p in problems), problems


def test_api_credential_lookup(tmp_path: Path) -> None:
    """A token is matched by its SHA-256; a wrong token and a certificate hash are not."""
    token = "s3cret-token"
    digest = hashlib.sha256(token.encode()).hexdigest()
    text = f'[api]\ntokens = [{{ name = "alice", sha256 = "{digest}", role = "developer" }}]\n'
    api = _load(text + EVM, tmp_path).api
    credential = api.token_credential(token)
    assert credential is not None
    assert credential.name == "alice"
    assert api.token_credential("wrong") is None
    assert api.client_cert_credential(digest) is None


def test_peer_ca_must_have_issued_the_pinned_file(tmp_path: Path) -> None:
    """With cert = FILE, the peer's ca must be the CA that issued it."""
    cert, _ = issue_cert(*make_ca("someone else"), "gw-b")
    write_cert_file(tmp_path / "gw-b.crt", cert)
    text = EVM + REMOTE_FISCO + PEER.replace(f'cert_sha256 = "{PEER_SHA}"', 'cert = "gw-b.crt"')
    assert _problems(text, tmp_path) == [
        f"peers.gw-b.ca: did not issue the certificate {tmp_path / 'gw-b.crt'}"
    ]


def test_client_ca_files(tls_dir: Path) -> None:
    """The TLS roots for client certificates: own CA, each peer's CA, api.client_cas, once each;
    api.client_cas entries must be certificate files."""
    write_cert_file(tls_dir / "clients-ca.crt", make_ca("clients")[0])
    api = '[api]\nclient_cas = ["clients-ca.crt", "ca.crt"]\n'
    config = _load(GATEWAY_SECTION + EVM + REMOTE_FISCO + PEER + api, tls_dir)
    assert config.api.client_cas == (tls_dir / "clients-ca.crt", tls_dir / "ca.crt")
    assert config.client_ca_files() == (
        tls_dir / "ca.crt",
        tls_dir / "peer-ca.crt",
        tls_dir / "clients-ca.crt",
    )
    bad = '[api]\nclient_cas = ["nope.crt", 3, "gateway.key"]\n'
    assert _problems(EVM + bad, tls_dir) == [
        f"api.client_cas[0]: file not found: {tls_dir / 'nope.crt'}",
        "api.client_cas[1]: must be a file path, not an integer",
        f"api.client_cas[2]: certificate {tls_dir / 'gateway.key'} is not a PEM X.509 certificate",
    ]


def test_routes_as_array_of_tables(tmp_path: Path) -> None:
    """[[routes]] tables, anywhere in the file, are the same routes as the inline array."""
    text = EVM + REMOTE_FISCO + PEER + '\n[[routes]]\nfrom = "fisco-b"\nto = "evm-a"\n'
    assert _load(text, tmp_path).routes == (Route("fisco-b", "evm-a"),)


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        (
            f'tokens = [{{ name = "a", sha256 = "{TOKEN_SHA}", role = "developer" }}]',
            "api.listen: missing: api.tokens are configured but no port takes bearer tokens",
        ),
        ('listen = "0.0.0.0:50051"', "api.listen: is gateway.listen: the token port needs its own"),
    ],
)
def test_api_listen_runnable_problems(tls_dir: Path, api: str, expected: str) -> None:
    """Tokens need the token port ([api] listen), and it cannot share gateway.listen."""
    text = (
        'routes = [{ from = "evm-a", to = "fisco-b" }]\n'
        + GATEWAY_SECTION
        + EVM.replace("confirmations = 2", f'confirmations = 2\ngateway = "{GATEWAY}"')
        + REMOTE_FISCO
        + PEER
        + f"\n[api]\n{api}\n"
    )
    config = _load(text, tls_dir)
    with pytest.raises(ConfigError) as info:
        require_runnable(config)
    assert [str(p)[: len(expected)] for p in info.value.problems] == [expected]


def test_api_listen_not_host_port(tmp_path: Path) -> None:
    """[api] listen is validated like gateway.listen, with its path."""
    problems = _problems('[api]\nlisten = "nowhere"\n' + EVM, tmp_path)
    assert any(p.startswith("api.listen: not host:port") for p in problems), problems
