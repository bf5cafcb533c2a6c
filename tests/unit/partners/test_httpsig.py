"""HTTP Message Signatures on our partner calls: RFC 9421/9530/8037 vectors, what is covered,
the signature base rebuilt by hand, and every reason a verifier refuses."""

from __future__ import annotations

import base64
import datetime as dt
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from multidict import CIMultiDict

from propdev.config import PartnerSigning
from propdev.partners.errors import SigningKeyError
from propdev.partners.httpsig import (
    LIFETIME,
    RequestSigner,
    RequestVerifier,
    content_digest,
    partner_key,
    public_jwk,
    raw_signature,
    sf_string,
    signature_base,
    signature_params,
    signing_key,
    signing_key_path,
    thumbprint,
)

# RFC 9421 Appendix B.1.4, the Ed25519 test key.
TEST_KEY_ED25519 = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
TEST_KEY_ED25519_PUBLIC = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
NOW = 1_795_000_000.0
URL = "https://vendor.example:9443/vendor/v1/devices/sim-door-1/open?mode=fast"
BODY = b'{"hello": "world"}'


def rfc_test_key() -> ed25519.Ed25519PrivateKey:
    key = serialization.load_pem_private_key(TEST_KEY_ED25519, password=None)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    return key


@dataclass
class Message:
    method: str
    url: str
    headers: dict[str, str]


def test_the_signature_base_and_signature_of_rfc_9421_b_2_6_are_reproduced() -> None:
    """B.2.6: the test request signed with test-key-ed25519 (Ed25519 is deterministic)."""
    request = Message(
        "POST",
        "https://example.com/foo?param=Value&Pet=dog",
        {
            "Host": "example.com",
            "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
            "Content-Type": "application/json",
            "Content-Digest": "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgB"
            "WnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            "Content-Length": "18",
        },
    )
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(
            private_keys={"test-key-ed25519": rfc_test_key()}, public_keys={}
        ),
    )
    signer.sign(
        request,
        key_id="test-key-ed25519",
        created=dt.datetime.fromtimestamp(1618884473, dt.UTC),
        label="sig-b26",
        include_alg=False,
        use_existing_digest=True,
        covered_component_ids=(
            "date",
            "@method",
            "@path",
            "@authority",
            "content-type",
            "content-length",
        ),
    )
    assert request.headers["Signature-Input"] == (
        'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    assert request.headers["Signature"] == (
        "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5l"
        "Ip5WPpBKRCw==:"
    )
    public = serialization.load_pem_public_key(TEST_KEY_ED25519_PUBLIC)
    assert isinstance(public, ed25519.Ed25519PublicKey)
    assert public.public_bytes_raw() == rfc_test_key().public_key().public_bytes_raw()


B26_SIGNATURE = (
    "wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw=="
)


def test_our_own_signature_base_reproduces_rfc_9421_b_2_6() -> None:
    components = [
        ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
        ("@method", "POST"),
        ("@path", "/foo"),
        ("@authority", "example.com"),
        ("content-type", "application/json"),
        ("content-length", "18"),
    ]
    params = signature_params(
        [name for name, _ in components],
        [("created", 1618884473), ("keyid", "test-key-ed25519")],
    )
    assert params == (
        '("date" "@method" "@path" "@authority" "content-type" "content-length")'
        ';created=1618884473;keyid="test-key-ed25519"'
    )
    base = signature_base(components, params)
    assert base.decode().splitlines() == [
        '"date": Tue, 20 Apr 2021 02:07:55 GMT',
        '"@method": POST',
        '"@path": /foo',
        '"@authority": example.com',
        '"content-type": application/json',
        '"content-length": 18',
        f'"@signature-params": {params}',
    ]
    assert base64.b64encode(raw_signature(rfc_test_key(), base)).decode() == B26_SIGNATURE


def test_structured_field_strings_are_escaped_and_ascii_only() -> None:
    assert sf_string('a"b\\c') == '"a\\"b\\\\c"'
    with pytest.raises(ValueError):
        sf_string("ключ")
    with pytest.raises(ValueError):
        signature_base([("idempotency-key", "a\r\nb")], "()")
    assert content_digest(b"") == "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"


def test_an_ecdsa_signature_is_the_raw_64_byte_r_and_s() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    signature = raw_signature(key, b"base")
    assert len(signature) == 64
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    key.public_key().verify(encode_dss_signature(r, s), b"base", ec.ECDSA(hashes.SHA256()))


def test_the_content_digest_is_rfc_9530s_sha_256_of_the_body() -> None:
    headers = {"Content-Type": "application/json"}
    RequestSigner(rfc_test_key(), algorithm="ed25519", key_id="k", clock=lambda: NOW).sign(
        "POST", URL, headers, BODY
    )
    # RFC 9530 section 2: {"hello": "world"} with sha-256
    assert headers["Content-Digest"] == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"


def test_the_default_key_id_is_the_rfc_8037_jwk_thumbprint() -> None:
    # RFC 8037 Appendix A.2/A.3: the Ed25519 key and its RFC 7638 thumbprint.
    seed = base64.urlsafe_b64decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    key = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert public_jwk(key, key_id="x", algorithm="ed25519")["x"] == (
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    )
    assert thumbprint(key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def parse_input(value: str) -> tuple[str, list[str], str]:
    label, _, rest = value.partition("=")
    inner, _, params = rest.partition(")")
    return label, [c.strip('"') for c in inner.lstrip("(").split()], params


def test_a_call_covers_method_target_uri_idempotency_key_type_and_digest_with_short_expiry() -> (
    None
):
    key = rfc_test_key()
    headers = {"Idempotency-Key": "req-1", "Content-Type": "application/json"}
    RequestSigner(key, algorithm="ed25519", key_id="our-key", clock=lambda: NOW).sign(
        "post", URL, headers, BODY
    )
    label, covered, params = parse_input(headers["Signature-Input"])
    assert label == "sig1"
    assert covered == [
        "@method",
        "@target-uri",
        "idempotency-key",
        "content-type",
        "content-digest",
    ]
    assert f";created={int(NOW)};" in params and f";expires={int(NOW) + LIFETIME};" in params
    assert ';keyid="our-key";alg="ed25519";' in params and ';tag="propdev"' in params
    nonce = params.split(';nonce="')[1].split('"')[0]
    assert len(nonce) >= 16

    # The signature base, rebuilt by hand from RFC 9421 section 2.5, verifies with the key.
    base = "\n".join(
        [
            '"@method": POST',
            f'"@target-uri": {URL}',
            '"idempotency-key": req-1',
            '"content-type": application/json',
            f'"content-digest": {headers["Content-Digest"]}',
            f'"@signature-params": {headers["Signature-Input"].removeprefix("sig1=")}',
        ]
    )
    signature = base64.b64decode(headers["Signature"].removeprefix("sig1=:").removesuffix(":"))
    key.public_key().verify(signature, base.encode())  # raises if the base differs


def test_a_call_without_body_or_key_covers_no_digest() -> None:
    headers: dict[str, str] = {}
    RequestSigner(rfc_test_key(), algorithm="ed25519", key_id="k").sign("GET", URL, headers)
    assert parse_input(headers["Signature-Input"])[1] == ["@method", "@target-uri"]
    assert "Content-Digest" not in headers


# -- the verifier ---------------------------------------------------------------------------------


def signed(
    key: Any = None,
    *,
    algorithm: str = "ed25519",
    key_id: str = "our-key",
    at: float | None = None,
    method: str = "POST",
    url: str = URL,
    headers: dict[str, str] | None = None,
    body: bytes | None = BODY,
) -> CIMultiDict[str]:
    sent = dict(headers if headers is not None else {"Idempotency-Key": "req-1"})
    now = dt.datetime.now(dt.UTC).timestamp() if at is None else at
    signer = RequestSigner(
        key or rfc_test_key(), algorithm=algorithm, key_id=key_id, clock=lambda: now
    )
    return CIMultiDict(signer.sign(method, url, sent, body))


def with_(headers: CIMultiDict[str], name: str, value: str) -> CIMultiDict[str]:
    changed = headers.copy()
    changed[name] = value
    return changed


@pytest.fixture
def verifier() -> RequestVerifier:
    return RequestVerifier(rfc_test_key().public_key(), algorithm="ed25519", key_id="our-key")


def test_a_good_signature_is_accepted_and_counted(verifier: RequestVerifier) -> None:
    assert verifier.verify("POST", URL, signed(), BODY) is None
    assert verifier.verify("GET", URL, signed(method="GET", body=None), b"") is None
    assert verifier.snapshot() == {"key_id": "our-key", "verified": 2, "refused": {}}


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda h: ("PUT", URL, h, BODY), "bad_signature"),
        (lambda h: ("POST", URL.replace("sim-door-1", "sim-door-2"), h, BODY), "bad_signature"),
        (lambda h: ("POST", URL.replace("fast", "slow"), h, BODY), "bad_signature"),
        (lambda h: ("POST", URL.replace("9443", "9444"), h, BODY), "bad_signature"),
        (lambda h: ("POST", URL, with_(h, "Idempotency-Key", "req-2"), BODY), "bad_signature"),
        (lambda h: ("POST", URL, h, b'{"hello": "there"}'), "digest_mismatch"),
        (
            lambda h: ("POST", URL, with_(h, "Content-Digest", "sha-256=:AAAA:"), BODY),
            "bad_signature",
        ),
        (lambda h: ("POST", URL, with_(h, "Content-Type", "text/plain"), BODY), "not_covered"),
    ],
    ids=["method", "path", "query", "authority", "idempotency-key", "body", "digest", "new-field"],
)
def test_a_tampered_request_is_refused(verifier: RequestVerifier, tamper: Any, reason: str) -> None:
    headers = signed()
    method, url, changed, body = tamper(CIMultiDict(headers))
    assert verifier.verify(method, url, changed, body) == reason
    assert verifier.snapshot()["refused"] == {reason: 1}


def test_a_body_added_to_a_bodiless_signed_request_is_refused(verifier: RequestVerifier) -> None:
    headers = signed(body=None)
    assert verifier.verify("POST", URL, headers, b'{"open": "all"}') == "not_covered"


def test_an_unsigned_request_is_refused(verifier: RequestVerifier) -> None:
    assert verifier.verify("POST", URL, CIMultiDict({"Idempotency-Key": "k"}), BODY) == "unsigned"
    headers = signed()
    del headers["Signature"]
    assert verifier.verify("POST", URL, headers, BODY) == "unsigned"


def test_an_expired_or_future_signature_is_refused(verifier: RequestVerifier) -> None:
    now = dt.datetime.now(dt.UTC).timestamp()
    assert verifier.verify("POST", URL, signed(at=now - LIFETIME - 10), BODY) == "expired"
    assert verifier.verify("POST", URL, signed(at=now + 60), BODY) == "not_yet_valid"
    assert verifier.verify("POST", URL, signed(at=now - 5), BODY) is None  # within its life


def test_another_key_algorithm_or_key_id_is_refused(verifier: RequestVerifier) -> None:
    stranger = ed25519.Ed25519PrivateKey.generate()
    assert verifier.verify("POST", URL, signed(stranger), BODY) == "bad_signature"
    assert verifier.verify("POST", URL, signed(key_id="someone"), BODY) == "unknown_key"
    p256 = ec.generate_private_key(ec.SECP256R1())
    ecdsa = signed(p256, algorithm="ecdsa-p256-sha256")
    assert verifier.verify("POST", URL, ecdsa, BODY) == "wrong_algorithm"


def test_a_replayed_signature_is_refused(verifier: RequestVerifier) -> None:
    headers = signed()
    assert verifier.verify("POST", URL, headers, BODY) is None
    assert verifier.verify("POST", URL, headers, BODY) == "replayed"
    assert verifier.snapshot() == {"key_id": "our-key", "verified": 1, "refused": {"replayed": 1}}


def test_ecdsa_p256_signs_and_verifies() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    check = RequestVerifier(key.public_key(), algorithm="ecdsa-p256-sha256", key_id="our-key")
    assert check.verify("POST", URL, signed(key, algorithm="ecdsa-p256-sha256"), BODY) is None
    tampered = signed(key, algorithm="ecdsa-p256-sha256")
    assert check.verify("DELETE", URL, tampered, BODY) == "bad_signature"


# -- keys -----------------------------------------------------------------------------------------


def test_the_key_is_made_once_private_to_its_owner_and_reloaded(tmp_path: Path) -> None:
    first = signing_key(tmp_path, "acme", "ed25519")
    path = signing_key_path(tmp_path, "acme")
    assert path == tmp_path / "partners" / "acme" / "signing-key.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    again = signing_key(tmp_path, "acme", "ed25519")
    assert again.public_key().public_bytes_raw() == first.public_key().public_bytes_raw()


def test_a_key_of_another_algorithm_is_refused_loudly(tmp_path: Path) -> None:
    signing_key(tmp_path, "acme", "ed25519")
    with pytest.raises(SigningKeyError, match="ecdsa-p256-sha256"):
        signing_key(tmp_path, "acme", "ecdsa-p256-sha256")
    with pytest.raises(SigningKeyError):
        RequestSigner(rfc_test_key(), algorithm="ecdsa-p256-sha256", key_id="k")


def test_the_partner_key_id_is_configured_or_the_thumbprint(tmp_path: Path) -> None:
    default = partner_key(tmp_path, PartnerSigning("acme", "ecdsa-p256-sha256"))
    assert default.key_id == thumbprint(default.public_key)
    jwk = default.jwk()
    assert (jwk["kty"], jwk["crv"], jwk["alg"], jwk["kid"]) == (
        "EC",
        "P-256",
        "ES256",
        default.key_id,
    )
    named = partner_key(tmp_path, PartnerSigning("acme", "ecdsa-p256-sha256", "acme-2026"))
    assert named.key_id == "acme-2026" and named.pem() == default.pem()
    assert named.pem().startswith("-----BEGIN PUBLIC KEY-----")
