"""Keyed blind indexes: find a row by phone or plate without storing the clear value.

``phone_index(vault, phone)`` and ``plate_index(vault, plate)`` normalise first, so every
spelling of one phone (``+7 (916) 123-45-67``, ``8 916 1234567``, ``+79161234567``) or plate
(``a123bc 77``, in Latin or Cyrillic letters, and ``A123BC77``) has one index. An index leaks
equality only; its key is as secret as the master key (anyone holding it can hash the whole
phone space).
"""

from __future__ import annotations

import re

from propdev.security.crypto import Vault

# Cyrillic letters allowed on Russian plates, mapped to the Latin letters they look like.
_PLATE_LOOKALIKES = str.maketrans(
    "\u0410\u0412\u0415\u041a\u041c\u041d\u041e\u0420\u0421\u0422\u0423\u0425", "ABEKMHOPCTYX"
)
_NOT_PLATE = re.compile(r"[^0-9A-Z]")


def normalize_phone(phone: str, *, default_country: str = "7") -> str:
    """E.164 (``+79161234567``); a leading 8 of an 11-digit number is Russia's trunk prefix."""
    text = phone.strip()
    digits = re.sub(r"\D", "", text)
    if not digits:
        raise ValueError("a phone number needs digits")
    if text.startswith("+"):
        return "+" + digits
    if text.startswith("00"):
        return "+" + digits[2:]
    if len(digits) == 11 and digits[0] == "8" and default_country == "7":
        return "+7" + digits[1:]
    if len(digits) == 10:
        return "+" + default_country + digits
    return "+" + digits


def normalize_plate(plate: str) -> str:
    """Upper case, Cyrillic look-alikes as Latin, no spaces or dashes."""
    text = plate.strip().upper().translate(_PLATE_LOOKALIKES)
    normalized = _NOT_PLATE.sub("", text)
    if not normalized:
        raise ValueError("a plate needs letters or digits")
    return normalized


def phone_index(vault: Vault, phone: str) -> str:
    return vault.blind_index(normalize_phone(phone), table="users", column="phone")


def plate_index(vault: Vault, plate: str) -> str:
    return vault.blind_index(normalize_plate(plate), table="vehicles", column="plate")
