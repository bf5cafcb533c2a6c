"""The password policy (NIST SP 800-63B, 5.1.1.2): long enough, not common, not the username.

No composition rules and no expiry: length and a list of passwords known from breaches are
what the guidelines ask for. The list ships with the package (``common-passwords.txt``, read
once, compared case-insensitively); nothing is looked up on the network.
"""

from __future__ import annotations

import functools
from importlib import resources

from propdev.accounts.errors import WeakPasswordError

MIN_LENGTH = 8
MAX_LENGTH = 256  # 800-63B asks for at least 64; beyond this, a pasted file by mistake
LIST = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list of common passwords, lower case."""
    text = resources.files("propdev.accounts").joinpath(LIST).read_text(encoding="utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def check_new_password(password: object, username: str, *, field: str = "new_password") -> str:
    """Return ``password`` when it may be an account's password; raise ``WeakPasswordError``
    (naming ``field``) with the reason otherwise."""
    if not isinstance(password, str):
        raise WeakPasswordError(field, "must be a string")
    length = len(password)
    if length < MIN_LENGTH:
        raise WeakPasswordError(field, f"must be at least {MIN_LENGTH} characters long")
    if length > MAX_LENGTH:
        raise WeakPasswordError(field, f"must be at most {MAX_LENGTH} characters long")
    if not password.isprintable():
        raise WeakPasswordError(field, "must not contain control characters")
    folded = password.strip().lower()
    if folded == username.strip().lower():
        raise WeakPasswordError(field, "must not be the username")
    if folded in common_passwords():
        raise WeakPasswordError(field, "is a commonly used password (found in breaches)")
    return password
