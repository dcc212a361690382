"""TLS material for gateway-to-gateway mutual TLS and the developer API.

A gateway's operator makes one private CA (``make_ca``) and issues the gateway's certificate
from it (``issue_cert``). Peers are trusted by *pinning* the SHA-256 fingerprint of their
certificate's DER bytes (``fingerprint``), not by a shared CA: two operators never need to
trust each other's CA, and a stolen CA key cannot mint a certificate a peer accepts.

Every certificate is usable both as a server and as a client certificate (serverAuth and
clientAuth), because a gateway is both: it serves ``RelayService`` and it calls its peers'.
Keys are ECDSA P-256, which every gRPC/OpenSSL build accepts.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from verifier.errors import GatewayError

CA_DAYS: Final = 3650
CERT_DAYS: Final = 825
"""The longest validity browsers and many TLS stacks accept for a leaf certificate."""
_MAX_CERT_FILE_BYTES: Final = 1 << 20
_BACKDATE: Final = datetime.timedelta(minutes=5)
"""Certificates start slightly in the past so a peer whose clock lags a little accepts them."""


class TlsMaterialError(GatewayError):
    """A certificate or key file is missing, unreadable or not what it should be."""


def make_ca(common_name: str) -> tuple[bytes, bytes]:
    """A self-signed CA (certificate PEM, private key PEM) valid for 10 years."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def issue_cert(
    ca_cert_pem: bytes,
    ca_key_pem: bytes,
    common_name: str,
    *,
    dns_names: Sequence[str] = ("localhost",),
    ip_addresses: Sequence[str] = ("127.0.0.1",),
    days: int = CERT_DAYS,
) -> tuple[bytes, bytes]:
    """A certificate (PEM) and its new key (PEM), signed by the CA, for server and client use."""
    if days < 1:
        raise TlsMaterialError(f"days must be at least 1, got {days}")
    ca_cert = _parse_cert(ca_cert_pem, "CA certificate")
    ca_key = _parse_key(ca_key_pem, "CA key")
    if ca_cert.public_key() != ca_key.public_key():
        raise TlsMaterialError("the CA key does not belong to the CA certificate")
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns_names]
    for ip in ip_addresses:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(ip)))
        except ValueError as exc:
            raise TlsMaterialError(f"not an IP address: {ip!r}") from exc
    if not sans:
        raise TlsMaterialError("a certificate needs at least one DNS name or IP address")
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    cert = builder.sign(ca_key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def fingerprint(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes, lowercase hex: what a peer pins."""
    cert = _parse_cert(cert_pem, "certificate")
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def fingerprint_der(cert_der: bytes) -> str:
    """The same fingerprint from DER bytes, as ``ssl``/gRPC hand a peer's certificate over."""
    return hashlib.sha256(cert_der).hexdigest()


def key_matches_cert(cert_pem: bytes, key_pem: bytes) -> bool:
    """Whether the private key is the certificate's (a swapped key file fails every handshake)."""
    return _parse_cert(cert_pem, "certificate").public_key() == (
        _parse_key(key_pem, "key").public_key()
    )


def is_issued_by(cert_pem: bytes, ca_cert_pem: bytes) -> bool:
    """Whether the CA certificate signed this certificate."""
    cert = _parse_cert(cert_pem, "certificate")
    ca = _parse_cert(ca_cert_pem, "CA certificate")
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def load_cert_file(path: str | os.PathLike[str]) -> bytes:
    """Read a PEM certificate file and check it parses; errors name the file and the cause."""
    p = Path(path)
    data = _read(p, "certificate")
    _parse_cert(data, f"certificate {p}")
    return data


def load_key_file(path: str | os.PathLike[str]) -> bytes:
    """Read a PEM private key file (unencrypted) and check it parses."""
    p = Path(path)
    data = _read(p, "key")
    _parse_key(data, f"key {p}")
    return data


def write_key_file(path: str | os.PathLike[str], key_pem: bytes) -> None:
    """Write a key readable by its owner only (0600), created so from the start: a key written
    with the default umask and chmod-ed afterwards is briefly world-readable."""
    p = Path(path)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to an existing file
        os.write(fd, key_pem)
    finally:
        os.close(fd)


def write_cert_file(path: str | os.PathLike[str], cert_pem: bytes) -> None:
    """Write a certificate (public) with mode 0644."""
    p = Path(path)
    p.write_bytes(cert_pem)
    p.chmod(0o644)


def _read(p: Path, what: str) -> bytes:
    try:
        size = p.stat().st_size
        if size > _MAX_CERT_FILE_BYTES:
            raise TlsMaterialError(f"{what} file {p} is {size} bytes, larger than a PEM file")
        return p.read_bytes()
    except FileNotFoundError as exc:
        raise TlsMaterialError(f"{what} file {p} does not exist") from exc
    except IsADirectoryError as exc:
        raise TlsMaterialError(f"{what} file {p} is a directory") from exc
    except PermissionError as exc:
        raise TlsMaterialError(f"{what} file {p} is not readable (permission denied)") from exc
    except OSError as exc:
        raise TlsMaterialError(f"{what} file {p} cannot be read: {exc.strerror}") from exc


def _parse_cert(pem: bytes, what: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise TlsMaterialError(f"{what} is not a PEM X.509 certificate") from exc


def _parse_key(pem: bytes, what: str) -> ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # The cause's text can quote key material; it is deliberately not repeated here.
        raise TlsMaterialError(f"{what} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise TlsMaterialError(f"{what} is neither an ECDSA nor an RSA key")
    return key


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
