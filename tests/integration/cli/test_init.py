"""``gateway init DIR``: real files in a temporary folder, their modes, and the result validated."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509

import gateway
from relay.audit import AuditKey, parse_public_key
from relay.config import ConfigError, load_config, require_runnable
from relay.tls import fingerprint, is_issued_by, key_matches_cert

pytestmark = pytest.mark.integration

GATEWAY = str(Path(sys.executable).parent / "gateway")
HOSTS = ["--host", "gw-a.example.org", "--host", "10.1.2.3"]
EXAMPLE = Path(gateway.__file__).resolve().parent / "examples" / "gateway.toml"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _token(out: str) -> str:
    lines = out.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith("developer API token"))
    return lines[index + 1].strip()


def test_init_creates_the_folder_as_a_user_would(tmp_path: Path) -> None:
    """The console script creates CA, certificate, keys (0600), data/ and gateway.toml; the
    certificate is the CA's and names every --host; the token is printed once, hashed in the
    file; config validate then reports exactly what is left: a chain to serve."""
    target = tmp_path / "gw-a"
    proc = subprocess.run(
        [GATEWAY, "init", str(target), "--name", "gw-a", "--listen", "0.0.0.0:50061", *HOSTS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    names = {p.name for p in target.iterdir()}
    assert names == {
        "ca.crt",
        "ca.key",
        "gateway.crt",
        "gateway.key",
        "audit.key",
        "audit.pub",
        "data",
        "gateway.toml",
    }
    assert _mode(target / "ca.key") == 0o600
    assert _mode(target / "gateway.key") == 0o600
    assert _mode(target / "audit.key") == 0o600
    audit_hex = AuditKey.load(target / "audit.key").public_hex
    assert f"audit public key (auditors verify with it): {audit_hex}" in proc.stdout
    assert (
        parse_public_key((target / "audit.pub").read_text()).public_bytes_raw().hex() == audit_hex
    )
    assert _mode(target / "ca.crt") == 0o644
    assert _mode(target / "data") == 0o700
    cert = (target / "gateway.crt").read_bytes()
    assert is_issued_by(cert, (target / "ca.crt").read_bytes())
    assert key_matches_cert(cert, (target / "gateway.key").read_bytes())
    san = x509.load_pem_x509_certificate(cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost", "gw-a.example.org"]
    assert [str(ip) for ip in san.value.get_values_for_type(x509.IPAddress)] == [
        "127.0.0.1",
        "10.1.2.3",
    ]
    assert fingerprint(cert) in proc.stdout
    token = _token(proc.stdout)
    text = (target / "gateway.toml").read_text()
    assert token not in text
    assert hashlib.sha256(token.encode()).hexdigest() in text
    assert "next steps:" in proc.stdout
    assert "chains: missing" in proc.stdout

    with pytest.raises(ConfigError) as info:
        load_config(target / "gateway.toml")
    assert [p.path for p in info.value.problems] == ["chains"]

    validate = subprocess.run(
        [GATEWAY, "config", "validate", str(target / "gateway.toml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert validate.returncode == 2
    assert "chains: missing" in validate.stderr


def test_init_with_chains_validates_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --chains-from a file whose gateways are deployed, the new folder validates as is,
    and the stored token hash admits the printed token."""
    chains = (
        EXAMPLE.read_text()
        .replace(
            "[chains.anvil-local]\n", '[chains.anvil-local]\ngateway = "0x' + "11" * 20 + '"\n'
        )
        .replace(
            "[chains.fisco-local]\n", '[chains.fisco-local]\ngateway = "0x' + "22" * 20 + '"\n'
        )
    )
    source = tmp_path / "deployed.toml"
    source.write_text(chains)
    target = tmp_path / "gw"
    assert gateway.main(["init", str(target), "--chains-from", str(source)]) == 0
    out = capsys.readouterr().out
    assert "validates as it is" in out
    config = load_config(target / "gateway.toml")
    require_runnable(config)
    assert config.gateway is not None
    assert config.gateway.name == "gw"  # from the folder's name
    assert config.gateway.listen == "127.0.0.1:50051"
    assert config.gateway.data_dir == target / "data"
    assert config.served_chains == ("anvil-local", "fisco-local")
    credential = config.api.token_credential(_token(out))
    assert credential is not None
    assert credential.role == "developer"
    assert gateway.main(["config", "validate", str(target / "gateway.toml")]) == 0
    assert capsys.readouterr().out.startswith(f"OK {target / 'gateway.toml'}: gateway gw on ")


def test_init_refuses_a_non_empty_folder_unless_forced(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A non-empty DIR is refused (exit 2, nothing written); --force writes new keys into it,
    still 0600 even over existing files."""
    target = tmp_path / "gw"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    assert gateway.main(["init", str(target), "--name", "gw"]) == 2
    assert "is not empty (use --force" in capsys.readouterr().err
    assert {p.name for p in target.iterdir()} == {"notes.txt"}
    (target / "gateway.key").write_text("old")
    (target / "gateway.key").chmod(0o644)
    assert gateway.main(["init", str(target), "--name", "gw", "--force"]) == 0
    assert _mode(target / "gateway.key") == 0o600
    assert (target / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--name", "Bad Name"], "--name 'Bad Name': 1-32 of a-z"),
        (["--listen", "nowhere"], "--listen: not host:port"),
        (["--host", "bad host"], "--host 'bad host' is neither a DNS name nor an IP address"),
        (["--chains-from", "/nonexistent.toml"], "--chains-from /nonexistent.toml: cannot read"),
    ],
)
def test_init_bad_options_exit_2_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], message: str
) -> None:
    """Wrong options are reported in one line, exit 2, and create nothing."""
    target = tmp_path / "gw"
    assert gateway.main(["init", str(target), *options]) == 2
    assert message in capsys.readouterr().err
    assert not target.exists()


def _two_gateways(tmp_path: Path) -> dict[str, Path]:
    """gw-a serves evm-a, gw-b serves fisco-b; each pins the other as in a real two-host set-up:
    the fingerprint gateway init printed and the other's ca.crt, copied over."""
    fingerprints = {}
    for name in ("gw-a", "gw-b"):
        proc = subprocess.run(
            [GATEWAY, "init", str(tmp_path / name), "--name", name],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        line = next(x for x in proc.stdout.splitlines() if x.startswith("certificate fingerprint"))
        fingerprints[name] = line.rsplit(" ", 1)[1]
    evm = f"""
[chains.evm-a]
family = "evm"
endpoints = ["http://127.0.0.1:8545"]
chain_id = 31337
confirmations = 1
gateway = "0x{"11" * 20}"
"""
    fisco = f"""
[chains.fisco-b]
family = "fisco-bcos-3"
gateway = "0x{"22" * 20}"
sealers = [{{ node_id = "{"ab" * 64}" }}]
"""
    sides = {
        "gw-a": (evm + 'relayer_key = { env = "A_KEY" }\n', fisco + "served = false\n", "gw-b"),
        "gw-b": (
            fisco + 'endpoints = ["http://127.0.0.1:20200"]\nrelayer_key = { env = "B_KEY" }\n',
            evm + "served = false\n",
            "gw-a",
        ),
    }
    for name, (served, remote, peer) in sides.items():
        (tmp_path / name / "peers").mkdir()
        (tmp_path / name / "peers" / f"{peer}-ca.crt").write_bytes(
            (tmp_path / peer / "ca.crt").read_bytes()
        )
        remote_chain = "fisco-b" if name == "gw-a" else "evm-a"
        peer_section = f"""
[peers.{peer}]
address = "127.0.0.1:1"
cert_sha256 = "{fingerprints[peer]}"
ca = "peers/{peer}-ca.crt"
chains = ["{remote_chain}"]
"""
        with (tmp_path / name / "gateway.toml").open("a") as handle:
            handle.write(served + remote + peer_section)
    return {name: tmp_path / name / "gateway.toml" for name in sides}


def test_two_initialised_gateways_complete_mutual_tls(tmp_path: Path) -> None:
    """Two `gateway init` folders configured as each other's peers validate, and TLS contexts
    built from their configurations alone complete a mutual handshake on 127.0.0.1 in which
    each side sees exactly the fingerprint it pinned."""
    paths = _two_gateways(tmp_path)
    for path in paths.values():
        assert gateway.main(["config", "validate", str(path)]) == 0
    server_cfg, client_cfg = load_config(paths["gw-a"]), load_config(paths["gw-b"])
    assert server_cfg.gateway is not None
    assert server_cfg.gateway.tls is not None
    assert client_cfg.gateway is not None
    assert client_cfg.gateway.tls is not None
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(server_cfg.gateway.tls.cert, server_cfg.gateway.tls.key)
    for ca in server_cfg.client_ca_files():
        server.load_verify_locations(ca)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(client_cfg.gateway.tls.cert, client_cfg.gateway.tls.key)
    peer = client_cfg.peers["gw-a"]
    assert peer.ca is not None
    client.load_verify_locations(peer.ca)
    seen: dict[str, str] = {}
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with server.wrap_socket(conn, server_side=True) as tls:
            der = tls.getpeercert(binary_form=True)
            seen["client"] = hashlib.sha256(der or b"").hexdigest()
            tls.sendall(tls.recv(2))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(listener.getsockname()) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            seen["server"] = hashlib.sha256(tls.getpeercert(binary_form=True) or b"").hexdigest()
            tls.sendall(b"hi")
            assert tls.recv(2) == b"hi"
    finally:
        thread.join(timeout=30)
        listener.close()
    assert seen["server"] == peer.cert_sha256
    assert seen["client"] == server_cfg.peers["gw-b"].cert_sha256
