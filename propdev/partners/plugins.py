"""Adapters as plug-ins: a class behind one protocol, registered under a name.

An adapter class has ``from_spec(spec: AdapterSpec) -> PartnerAdapter`` (a classmethod): given
where the vendor is, how we trust it and what we present to it, it answers a connected
``PartnerAdapter``. Classes are found in the entry-point group ``propdev.adapters``
(``importlib.metadata``): a third-party package declares

    [project.entry-points."propdev.adapters"]
    bolt = "bolt_propdev.adapter:BoltAdapter"

and a partner registered with ``"adapter": "bolt"`` is served by it, on every node that has the
package installed. The built-ins go through the same mechanism: ``BUILTINS`` are the entry
points ``pyproject.toml`` declares, listed here as well so that a checkout that was not
reinstalled (an editable install reads its entry points at install time) still has them.
"""

from __future__ import annotations

import importlib.metadata
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

import structlog

from propdev.partners.base import PartnerAdapter
from propdev.partners.credentials import Credential
from propdev.partners.errors import UnknownAdapterError
from propdev.partners.httpsig import RequestSigner

GROUP = "propdev.adapters"
BUILTINS = (
    importlib.metadata.EntryPoint("simulator", "propdev.partners.vendor:VendorHttpAdapter", GROUP),
    importlib.metadata.EntryPoint("acme", "propdev.partners.acme:AcmeAdapter", GROUP),
    # The simulator's protocol under the name partners of it were registered with before.
    importlib.metadata.EntryPoint("vendor", "propdev.partners.vendor:VendorHttpAdapter", GROUP),
)

log = structlog.get_logger()


@dataclass(frozen=True, slots=True)
class AdapterSpec:
    """What an adapter needs to reach one partner's API."""

    partner_id: str
    base_url: str  # https://
    ssl_context: ssl.SSLContext  # trusts the vendor's server CA (or the system store)
    timeout: float
    credential: Credential | None = None
    max_connections: int = 64
    signer: RequestSigner | None = None  # RFC 9421, when PROPDEV_PARTNER_SIGNING names it


class AdapterClass(Protocol):
    """What an entry point of ``propdev.adapters`` names: a class with ``from_spec``."""

    def from_spec(self, spec: AdapterSpec) -> PartnerAdapter: ...


EntryPoints = Callable[[], Iterable[importlib.metadata.EntryPoint]]


def installed() -> Iterable[importlib.metadata.EntryPoint]:
    return importlib.metadata.entry_points(group=GROUP)


class Adapters:
    """The adapter classes this process knows, by name."""

    def __init__(self) -> None:
        self._classes: dict[str, AdapterClass] = {}

    @classmethod
    def discover(cls, entry_points: EntryPoints = installed) -> Adapters:
        """The built-ins, then every installed entry point of ``propdev.adapters``; one that
        cannot be loaded or has no ``from_spec`` is logged and left out."""
        adapters = cls()
        seen: set[tuple[str, str]] = set()
        for point in (*BUILTINS, *entry_points()):
            if (point.name, point.value) in seen:
                continue
            seen.add((point.name, point.value))
            try:
                loaded = point.load()
            except Exception as exc:  # a broken third-party package must not stop the node
                log.warning("adapter_not_loaded", adapter=point.name, error=repr(exc))
                continue
            if not callable(getattr(loaded, "from_spec", None)):
                log.warning("adapter_not_loaded", adapter=point.name, error="no from_spec")
                continue
            adapters.register(point.name, loaded)
        return adapters

    def register(self, name: str, adapter: AdapterClass) -> None:
        if name in self._classes and self._classes[name] is not adapter:
            log.warning("adapter_replaced", adapter=name)
        self._classes[name] = adapter

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def get(self, name: str) -> AdapterClass:
        try:
            return self._classes[name]
        except KeyError:
            raise UnknownAdapterError(name, self.names()) from None

    def build(self, name: str, spec: AdapterSpec) -> PartnerAdapter:
        """A connected adapter of class ``name`` (``UnknownAdapterError`` if none)."""
        return self.get(name).from_spec(spec)
