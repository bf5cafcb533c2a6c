"""Address: a virtual actor's name, `kind:id`, e.g. `device:42`."""

from __future__ import annotations

from typing import Any

from propdev.actors.errors import InvalidAddressError


class Address:
    """An immutable, hashable `kind:id` pair; `str(address)` is its wire form."""

    __slots__ = ("_key", "id", "kind")

    kind: str
    id: str
    _key: str

    def __init__(self, kind: str, id: str) -> None:
        if not kind or ":" in kind:
            raise InvalidAddressError(f"invalid actor kind: {kind!r}")
        if not id:
            raise InvalidAddressError(f"empty actor id for kind {kind!r}")
        _set = object.__setattr__
        _set(self, "kind", kind)
        _set(self, "id", id)
        _set(self, "_key", f"{kind}:{id}")

    @classmethod
    def parse(cls, text: str) -> Address:
        """`Address.parse("device:42") == Address("device", "42")`; the id may contain ':'."""
        kind, sep, id = text.partition(":")
        if not sep:
            raise InvalidAddressError(f"actor address must be 'kind:id', got {text!r}")
        return cls(kind, id)

    @classmethod
    def of(cls, target: str | Address) -> Address:
        """Coerce a string or an address to an address."""
        return target if isinstance(target, Address) else cls.parse(target)

    @property
    def key(self) -> str:
        return self._key

    def __str__(self) -> str:
        return self._key

    def __repr__(self) -> str:
        return f"Address(kind={self.kind!r}, id={self.id!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Address):
            return self._key == other._key
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._key)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"Address is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"Address is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[Address], tuple[str, str]]:
        return (Address, (self.kind, self.id))
