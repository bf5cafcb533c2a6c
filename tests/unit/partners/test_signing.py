from __future__ import annotations

import base64
import hashlib
import hmac
import time
from pathlib import Path

import pytest

from propdev.partners.signing import sign, verify, webhook_secret, webhook_secret_path

BODY = b'{"events": []}'


def test_a_signed_body_verifies_and_any_change_does_not() -> None:
    headers = sign("s3cret", "msg_1", BODY, now=1000.0)
    assert verify("s3cret", headers, BODY, clock=lambda: 1000.0) is None
    assert verify("s3cret", headers, BODY + b" ", clock=lambda: 1000.0) == "bad signature"
    assert verify("other", headers, BODY, clock=lambda: 1000.0) == "bad signature"
    moved = {**headers, "webhook-id": "msg_2"}
    assert verify("s3cret", moved, BODY, clock=lambda: 1000.0) == "bad signature"


def test_an_old_signature_or_none_is_refused() -> None:
    headers = sign("s3cret", "msg_1", BODY, now=1000.0)
    assert verify("s3cret", headers, BODY, clock=lambda: 1000.0 + 301) == "stale timestamp"
    assert verify("s3cret", {}, BODY) == "unsigned"


def test_one_of_several_signatures_may_match_while_a_secret_rotates() -> None:
    new = sign("new", "msg_1", BODY, now=1000.0)
    old = sign("old", "msg_1", BODY, now=1000.0)
    both = {**new, "webhook-signature": f"{old['webhook-signature']} {new['webhook-signature']}"}
    assert verify("new", both, BODY, clock=lambda: 1000.0) is None


def test_a_body_signed_with_any_secret_we_accept_verifies_and_no_other() -> None:
    old = sign("old", "msg_1", BODY, now=1000.0)
    new = sign("new", "msg_1", BODY, now=1000.0)
    accepted = ["new", "old"]  # current, previous during the overlap
    assert verify(accepted, old, BODY, clock=lambda: 1000.0) is None
    assert verify(accepted, new, BODY, clock=lambda: 1000.0) is None
    assert verify(["new"], old, BODY, clock=lambda: 1000.0) == "bad signature"
    assert verify([], new, BODY, clock=lambda: 1000.0) == "bad signature"


def test_each_partner_gets_its_own_private_secret_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = webhook_secret(tmp_path, "simulator")
    assert webhook_secret(tmp_path, "simulator") == first != webhook_secret(tmp_path, "acme")
    assert oct(webhook_secret_path(tmp_path, "simulator").stat().st_mode & 0o777) == "0o600"


def test_the_signature_is_v1_and_the_base64_hmac_sha256_of_id_time_and_body() -> None:
    headers = sign("s3cret", "msg_1", BODY, now=1000.9)
    mac = hmac.new(b"s3cret", b"msg_1.1000." + BODY, hashlib.sha256).digest()
    assert headers == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1000",
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_signing_without_a_time_signs_now() -> None:
    before = int(time.time())
    headers = sign("s3cret", "msg_1", BODY)
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert verify("s3cret", headers, BODY) is None


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_delivery_missing_any_one_header_is_unsigned(missing: str) -> None:
    headers = sign("s3cret", "msg_1", BODY, now=1000.0)
    empty = {**headers, missing: ""}
    del headers[missing]
    assert verify("s3cret", headers, BODY, clock=lambda: 1000.0) == "unsigned"
    assert verify("s3cret", empty, BODY, clock=lambda: 1000.0) == "unsigned"


def test_a_timestamp_that_is_not_a_whole_number_is_a_bad_timestamp() -> None:
    headers = {**sign("s3cret", "msg_1", BODY, now=1000.0), "webhook-timestamp": "10e2"}
    assert verify("s3cret", headers, BODY, clock=lambda: 1000.0) == "bad timestamp"


def test_a_signature_exactly_at_the_tolerance_still_verifies() -> None:
    headers = sign("s3cret", "msg_1", BODY, now=1000.0)
    assert verify("s3cret", headers, BODY, clock=lambda: 1300.0) is None
    assert verify("s3cret", headers, BODY, clock=lambda: 700.0) is None
    assert verify("s3cret", headers, BODY, clock=lambda: 1300.5) == "stale timestamp"
    assert verify("s3cret", headers, BODY, clock=lambda: 1010.0, tolerance=5) == "stale timestamp"
