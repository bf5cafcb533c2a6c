from __future__ import annotations

from pathlib import Path

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


def test_each_partner_gets_its_own_private_secret_kept_in_the_data_dir(tmp_path: Path) -> None:
    first = webhook_secret(tmp_path, "simulator")
    assert webhook_secret(tmp_path, "simulator") == first != webhook_secret(tmp_path, "acme")
    assert oct(webhook_secret_path(tmp_path, "simulator").stat().st_mode & 0o777) == "0o600"
