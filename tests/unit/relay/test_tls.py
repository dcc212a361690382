"""relay/tls.py: the CA, issued certificates, fingerprints, file loading and a real handshake."""

from __future__ import annotations

import hashlib
import socket
import ssl
import stat
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from relay.tls import (
    TlsMaterialError,
    fingerprint,
    fingerprint_der,
    issue_cert,
    load_cert_file,
    load_key_file,
    make_ca,
    write_cert_file,
    write_key_file,
)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    """One CA for the module: key generation is cheap but there is no reason to repeat it."""
    return make_ca("test CA")


def test_ca_is_a_p256_ca_for_ten_years(ca: tuple[bytes, bytes]) -> None:
    """The CA is self-signed, a CA by its constraints, P-256, valid about 10 years."""
    cert = x509.load_pem_x509_certificate(ca[0])
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    key = serialization.load_pem_private_key(ca[1], password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
    cert.verify_directly_issued_by(cert)
    days = (cert.not_valid_after_utc - cert.not_valid_before_utc).days
    assert 3650 <= days <= 3651


def test_issued_cert_verifies_against_its_ca(ca: tuple[bytes, bytes]) -> None:
    """An issued certificate is signed by the CA, has both EKUs and the requested SANs."""
    cert_pem, key_pem = issue_cert(
        *ca, "gw-a", dns_names=("localhost", "gw-a.example"), ip_addresses=("127.0.0.1", "::1")
    )
    cert = x509.load_pem_x509_certificate(cert_pem)
    cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0]))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    assert ExtendedKeyUsageOID.CLIENT_AUTH in eku
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "gw-a.example"]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.public_key() == cert.public_key()
    assert (cert.not_valid_after_utc - cert.not_valid_before_utc).days in (825, 826)


def test_issue_with_another_ca_fails_verification(ca: tuple[bytes, bytes]) -> None:
    """A certificate from another CA of the same name does not verify against this one."""
    other = make_ca("test CA")
    cert = x509.load_pem_x509_certificate(issue_cert(*other, "x")[0])
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ca[0]))


def test_issue_refuses_mismatched_ca_key_and_bad_input(ca: tuple[bytes, bytes]) -> None:
    """A CA key that is not the CA's, a bad IP, garbage PEM and days < 1 are typed errors."""
    other = make_ca("other")
    with pytest.raises(TlsMaterialError, match="does not belong"):
        issue_cert(ca[0], other[1], "x")
    with pytest.raises(TlsMaterialError, match="not an IP address"):
        issue_cert(*ca, "x", ip_addresses=("localhost",))
    with pytest.raises(TlsMaterialError, match=r"not a PEM X\.509 certificate"):
        issue_cert(b"junk", ca[1], "x")
    with pytest.raises(TlsMaterialError, match="not an unencrypted PEM private key"):
        issue_cert(ca[0], b"junk", "x")
    with pytest.raises(TlsMaterialError, match="days"):
        issue_cert(*ca, "x", days=0)
    with pytest.raises(TlsMaterialError, match="at least one"):
        issue_cert(*ca, "x", dns_names=(), ip_addresses=())


def test_fingerprint_is_sha256_of_der(ca: tuple[bytes, bytes]) -> None:
    """The fingerprint is SHA-256 over the DER form; two certificates differ."""
    cert_pem, _ = issue_cert(*ca, "gw")
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert fingerprint(cert_pem) == hashlib.sha256(der).hexdigest()
    assert fingerprint_der(der) == fingerprint(cert_pem)
    assert len(fingerprint(cert_pem)) == 64
    assert fingerprint(issue_cert(*ca, "gw")[0]) != fingerprint(cert_pem)


def test_files_modes_and_loading(tmp_path: Path, ca: tuple[bytes, bytes]) -> None:
    """Keys are written 0600 (even over an existing file), certificates 0644; both load back."""
    cert_pem, key_pem = issue_cert(*ca, "gw")
    key_path = tmp_path / "gw.key"
    key_path.write_bytes(b"old")
    key_path.chmod(0o644)
    write_key_file(key_path, key_pem)
    write_cert_file(tmp_path / "gw.crt", cert_pem)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "gw.crt").stat().st_mode) == 0o644
    assert load_cert_file(tmp_path / "gw.crt") == cert_pem
    assert load_key_file(key_path) == key_pem


def test_load_cert_file_errors_are_clear(tmp_path: Path) -> None:
    """Missing file, a directory, and not-a-certificate each get a message naming the file."""
    with pytest.raises(TlsMaterialError, match=r"nope\.crt does not exist"):
        load_cert_file(tmp_path / "nope.crt")
    with pytest.raises(TlsMaterialError, match="is a directory"):
        load_cert_file(tmp_path)
    bad = tmp_path / "bad.crt"
    bad.write_text("hello")
    with pytest.raises(TlsMaterialError, match=r"bad\.crt is not a PEM X\.509 certificate"):
        load_cert_file(bad)
    with pytest.raises(TlsMaterialError, match=r"bad\.crt is not an unencrypted PEM private key"):
        load_key_file(bad)


def _context(
    tmp_path: Path, side: str, ca_pem: bytes, cert_pem: bytes, key_pem: bytes
) -> ssl.SSLContext:
    purpose = ssl.PROTOCOL_TLS_SERVER if side == "server" else ssl.PROTOCOL_TLS_CLIENT
    ctx = ssl.SSLContext(purpose)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    write_cert_file(tmp_path / f"{side}.crt", cert_pem)
    write_key_file(tmp_path / f"{side}.key", key_pem)
    ctx.load_cert_chain(tmp_path / f"{side}.crt", tmp_path / f"{side}.key")
    ctx.load_verify_locations(cadata=ca_pem.decode())
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def test_mutual_tls_handshake_on_localhost(tmp_path: Path, ca: tuple[bytes, bytes]) -> None:
    """Two issued certificates complete a real TLS handshake with client auth on 127.0.0.1,
    and each side sees the other's certificate with the expected fingerprint."""
    server_cert, server_key = issue_cert(*ca, "gw-server")
    client_cert, client_key = issue_cert(*ca, "gw-client")
    server_ctx = _context(tmp_path, "server", ca[0], server_cert, server_key)
    client_ctx = _context(tmp_path, "client", ca[0], client_cert, client_key)
    seen: dict[str, str] = {}
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert(binary_form=True)
            assert peer is not None
            seen["client"] = fingerprint_der(peer)
            tls.sendall(tls.recv(5))

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            peer = tls.getpeercert(binary_form=True)
            assert peer is not None
            seen["server"] = fingerprint_der(peer)
            tls.sendall(b"hello")
            assert tls.recv(5) == b"hello"
    finally:
        thread.join(timeout=30)
        listener.close()
    assert seen == {"client": fingerprint(client_cert), "server": fingerprint(server_cert)}


def _talk(client_ctx: ssl.SSLContext, port: int) -> None:
    # TLS 1.3 reports the refusal of a client certificate on the client's first read.
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        tls.sendall(b"x")
        tls.recv(1)


def test_handshake_refuses_a_client_from_another_ca(
    tmp_path: Path, ca: tuple[bytes, bytes]
) -> None:
    """A client whose certificate comes from another CA is refused by the server."""
    server_cert, server_key = issue_cert(*ca, "gw-server")
    other = make_ca("other")
    client_cert, client_key = issue_cert(*other, "intruder")
    server_ctx = _context(tmp_path, "server", ca[0], server_cert, server_key)
    client_ctx = _context(tmp_path, "client", ca[0], client_cert, client_key)
    errors: list[BaseException] = []
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                tls.recv(1)
        except ssl.SSLError as exc:
            errors.append(exc)

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            _talk(client_ctx, port)
    finally:
        thread.join(timeout=30)
        listener.close()
    assert len(errors) == 1
    assert "certificate" in str(errors[0]).lower()
