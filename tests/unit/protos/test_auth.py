"""relay/grpc/auth.py: AuthPolicy decisions without a server (the server tests are integration)."""

from __future__ import annotations

import datetime

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.grpc import auth
from relay.grpc.auth import (
    INTEROP_SERVICE,
    RELAY_SERVICE,
    AuthError,
    AuthPolicy,
    CertificateBinding,
    Limits,
    PortKind,
    Principal,
    PrincipalKind,
    TokenBinding,
    service_of,
    token_sha256,
)
from relay.tls import fingerprint, issue_cert, make_ca

PEER = Principal(PrincipalKind.PEER, "gateway-a")
DEV = Principal(PrincipalKind.DEVELOPER, "bob")
AUDITOR = Principal(PrincipalKind.AUDITOR, "carol")
TOKEN = "s3cret-token"
LIMITS = Limits(max_concurrent=32, rate_per_second=100.0, burst=200)


@pytest.fixture(scope="module")
def ca() -> tuple[bytes, bytes]:
    return make_ca("test CA")


@pytest.fixture(scope="module")
def peer_cert(ca: tuple[bytes, bytes]) -> bytes:
    return issue_cert(*ca, "gateway-a")[0]


def make_policy(ca: tuple[bytes, bytes], peer_cert: bytes, **kwargs: object) -> AuthPolicy:
    return AuthPolicy(
        limits=LIMITS,
        certificates=[CertificateBinding(fingerprint(peer_cert), PEER)],
        tokens=[TokenBinding(token_sha256(TOKEN), DEV), TokenBinding(token_sha256("a"), AUDITOR)],
        client_ca_pems=[ca[0]],
        **kwargs,  # type: ignore[arg-type]
    )


def refusal(call: object, *args: object) -> AuthError:
    with pytest.raises(AuthError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def test_token_identifies_its_principal(ca: tuple[bytes, bytes], peer_cert: bytes) -> None:
    policy = make_policy(ca, peer_cert)
    assert policy.authenticate([("authorization", f"Bearer {TOKEN}")], None) == DEV
    assert policy.authenticate([("Authorization", f"bearer  {TOKEN} ")], None) == DEV
    assert policy.authenticate([("authorization", b"Bearer a")], None) == AUDITOR


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ([], "no credentials"),
        ([("authorization", "Bearer nope")], "unknown bearer token"),
        ([("authorization", TOKEN)], "authorization must be 'Bearer <token>'"),
        ([("authorization", "Basic dXNlcjpwYXNz")], "authorization must be 'Bearer <token>'"),
        ([("authorization", "Bearer ")], "authorization must be 'Bearer <token>'"),
        (
            [("authorization", f"Bearer {TOKEN}"), ("authorization", f"Bearer {TOKEN}")],
            "more than one authorization header",
        ),
    ],
)
def test_refusals_are_unauthenticated_and_never_quote_the_token(
    ca: tuple[bytes, bytes],
    peer_cert: bytes,
    metadata: list[tuple[str, str | bytes]],
    message: str,
) -> None:
    error = refusal(make_policy(ca, peer_cert).authenticate, metadata, None)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert error.message.startswith(message)
    assert TOKEN not in error.message
    assert "nope" not in error.message


def test_certificate_identifies_a_pinned_peer(ca: tuple[bytes, bytes], peer_cert: bytes) -> None:
    assert make_policy(ca, peer_cert).authenticate([], peer_cert) == PEER


def test_unknown_certificate_is_refused(ca: tuple[bytes, bytes], peer_cert: bytes) -> None:
    other = issue_cert(*ca, "gateway-x")[0]
    error = refusal(make_policy(ca, peer_cert).authenticate, [], other)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert "is not configured here" in error.message


def test_pinned_certificate_from_another_ca_is_refused(
    ca: tuple[bytes, bytes], peer_cert: bytes
) -> None:
    rogue = issue_cert(*make_ca("rogue"), "gateway-a")[0]
    policy = AuthPolicy(
        limits=LIMITS,
        certificates=[CertificateBinding(fingerprint(rogue), PEER)],
        client_ca_pems=[ca[0]],
    )
    error = refusal(policy.authenticate, [], rogue)
    assert error.message == "client certificate not issued by a configured CA"


def test_expired_pinned_certificate_is_refused(ca: tuple[bytes, bytes]) -> None:
    ca_cert = x509.load_pem_x509_certificate(ca[0])
    ca_key = serialization.load_pem_private_key(ca[1], password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    expired = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "old")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=30))
        .not_valid_after(now - datetime.timedelta(days=1))
        .sign(ca_key, hashes.SHA256())
        .public_bytes(serialization.Encoding.PEM)
    )
    policy = AuthPolicy(
        limits=LIMITS,
        certificates=[CertificateBinding(fingerprint(expired), PEER)],
        client_ca_pems=[ca[0]],
    )
    error = refusal(policy.authenticate, [], expired)
    assert error.message == "client certificate expired or not yet valid"


def test_unreadable_certificate_is_refused(ca: tuple[bytes, bytes], peer_cert: bytes) -> None:
    error = refusal(make_policy(ca, peer_cert).authenticate, [], b"-----BEGIN CERTIFICATE-----")
    assert error.code is grpc.StatusCode.UNAUTHENTICATED


def test_fingerprint_spellings_and_bad_configuration(peer_cert: bytes) -> None:
    fp = fingerprint(peer_cert)
    colons = ":".join(fp[i : i + 2] for i in range(0, 64, 2)).upper()
    for spelling in (fp.upper(), f"sha256:{fp}", colons):
        policy = AuthPolicy(limits=LIMITS, certificates=[CertificateBinding(spelling, PEER)])
        assert policy.authenticate([], peer_cert) == PEER
    with pytest.raises(ValueError, match="not a SHA-256 fingerprint"):
        AuthPolicy(limits=LIMITS, certificates=[CertificateBinding("abc", PEER)])
    with pytest.raises(ValueError, match="pinned twice"):
        AuthPolicy(
            limits=LIMITS, certificates=[CertificateBinding(fp, PEER), CertificateBinding(fp, DEV)]
        )
    with pytest.raises(ValueError, match="certificate only"):
        AuthPolicy(limits=LIMITS, tokens=[TokenBinding(token_sha256("t"), PEER)])
    with pytest.raises(ValueError, match="32 bytes"):
        AuthPolicy(limits=LIMITS, tokens=[TokenBinding(b"short", DEV)])


def test_each_kind_may_call_only_its_service() -> None:
    policy = AuthPolicy(
        limits=LIMITS,
    )
    allowed = {
        PrincipalKind.PEER: RELAY_SERVICE,
        PrincipalKind.DEVELOPER: INTEROP_SERVICE,
        PrincipalKind.AUDITOR: auth.AUDIT_SERVICE,
    }
    for kind, own in allowed.items():
        principal = Principal(kind, "x")
        policy.authorize(principal, own)
        for service in {*allowed.values(), "other.v1.Service", ""} - {own}:
            error = refusal(policy.authorize, principal, service)
            assert error.code is grpc.StatusCode.PERMISSION_DENIED


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_concurrency_limit_and_release() -> None:
    policy = AuthPolicy(
        limits=Limits(max_concurrent=2, rate_per_second=1000, burst=1000), clock=FakeClock()
    )
    policy.acquire(DEV)
    policy.acquire(DEV)
    error = refusal(policy.acquire, DEV)
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    policy.acquire(PEER)  # per principal
    policy.release(DEV)
    policy.acquire(DEV)


def test_token_bucket_refills_with_time() -> None:
    clock = FakeClock()
    policy = AuthPolicy(
        limits=Limits(max_concurrent=100, rate_per_second=2.0, burst=3), clock=clock
    )
    for _ in range(3):
        policy.acquire(DEV)
        policy.release(DEV)
    error = refusal(policy.acquire, DEV)
    assert error.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "rate limit" in error.message
    clock.now += 0.5  # one token at 2 per second
    policy.acquire(DEV)
    policy.release(DEV)
    assert refusal(policy.acquire, DEV).code is grpc.StatusCode.RESOURCE_EXHAUSTED
    clock.now += 100  # never more than the burst
    for _ in range(3):
        policy.acquire(DEV)
        policy.release(DEV)
    assert refusal(policy.acquire, DEV).code is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_limits_are_per_principal_kind() -> None:
    """Each kind's principals get that kind's sizes (relay.app passes them, one place)."""
    policy = AuthPolicy(
        limits={
            PrincipalKind.PEER: Limits(max_concurrent=3, rate_per_second=1000, burst=1000),
            PrincipalKind.DEVELOPER: Limits(max_concurrent=1, rate_per_second=1000, burst=1000),
            PrincipalKind.AUDITOR: Limits(max_concurrent=1, rate_per_second=1000, burst=1000),
        },
        clock=FakeClock(),
    )
    policy.acquire(DEV)
    assert "limit 1" in refusal(policy.acquire, DEV).message
    for _ in range(3):
        policy.acquire(PEER)
    assert "limit 3" in refusal(policy.acquire, PEER).message
    with pytest.raises(ValueError, match="auditor"):
        AuthPolicy(limits={PrincipalKind.PEER: LIMITS, PrincipalKind.DEVELOPER: LIMITS})
    with pytest.raises(ValueError, match="positive"):
        Limits(max_concurrent=0, rate_per_second=1.0, burst=1)


def test_early_authentication_decides_what_the_metadata_can(
    ca: tuple[bytes, bytes], peer_cert: bytes
) -> None:
    """Before the body: a token decides on either port; no token is a refusal on the token
    port and "ask the certificate" (None) on the mutual-TLS port."""
    policy = make_policy(ca, peer_cert)
    token = [("authorization", f"Bearer {TOKEN}")]
    for port in PortKind:
        assert policy.authenticate_early(token, port) == DEV
        wrong = [("authorization", "Bearer nope")]
        assert refusal(policy.authenticate_early, wrong, port).message == "unknown bearer token"
    assert policy.authenticate_early([("x-other", "1")], PortKind.MUTUAL_TLS) is None
    error = refusal(policy.authenticate_early, [], PortKind.TOKEN)
    assert error.code is grpc.StatusCode.UNAUTHENTICATED
    assert "no credentials" in error.message


def test_service_of() -> None:
    assert service_of("/interop.v1.RelayService/Forward") == RELAY_SERVICE
    assert service_of("garbage") == ""


def test_refusal_logging_is_bounded() -> None:
    clock = FakeClock()
    policy = AuthPolicy(limits=LIMITS, clock=clock)
    assert policy.refusal_log_due() == 0
    assert policy.refusal_log_due() is None
    assert policy.refusal_log_due() is None
    clock.now += 1.0
    assert policy.refusal_log_due() == 2
