"""A staff member's scope: their roles and the sites they may see and act on.

``site_ids`` is None for the whole organisation. A resource is somewhere (``Place``): at some
sites (an access point at one, a guest pass at the sites of its doors), or at the organisation's
level (``ORGANISATION``: partners, nodes, an organisation-wide staff member), which only
organisation-wide staff reach. A resource that is nowhere (a resident without an apartment, a
guest pass without doors) is also the organisation's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from propdev.staff.matrix import Action, Role, may


@dataclass(frozen=True, slots=True)
class Place:
    """Where a resource is: ``sites``, or None at the organisation's level."""

    sites: frozenset[str] | None

    @classmethod
    def at(cls, sites: Iterable[str]) -> Place:
        found = frozenset(sites)
        return cls(found) if found else ORGANISATION

    @property
    def organisation(self) -> bool:
        return self.sites is None


ORGANISATION = Place(None)


@dataclass(frozen=True, slots=True)
class Scope:
    """Who is calling (``user_id``), what they may do (``roles``) and where (``site_ids``)."""

    user_id: str
    roles: frozenset[Role]
    site_ids: frozenset[str] | None  # None: the whole organisation

    @property
    def organisation_wide(self) -> bool:
        return self.site_ids is None

    def may(self, action: Action) -> bool:
        return may(self.roles, action)

    def reaches(self, place: Place) -> bool:
        """True when the resource at ``place`` is visible: the caller is organisation-wide, or
        one of the resource's sites is the caller's."""
        if self.site_ids is None:
            return True
        return place.sites is not None and bool(place.sites & self.site_ids)

    def covers(self, sites: frozenset[str] | None) -> bool:
        """True when every one of ``sites`` (None: the organisation) is the caller's: what a
        caller may hand out (a new staff member's scope)."""
        if self.site_ids is None:
            return True
        return sites is not None and sites <= self.site_ids

    def sites_filter(self) -> frozenset[str] | None:
        """What a list is filtered by: the caller's sites, or None for no filter."""
        return self.site_ids
