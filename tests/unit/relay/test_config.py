"""relay.config: strict TOML validation (every problem with its path), settings, write-back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eth_account import Account

from adapters.evm.settings import EvmSettings
from adapters.fisco.settings import FiscoSettings
from devnet.fisco.keys import sealer_keys
from relay.config import (
    ConfigError,
    EvmChainConfig,
    FiscoChainConfig,
    gateway_snippet,
    load_config,
    parse_config,
    write_gateway_address,
)
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
