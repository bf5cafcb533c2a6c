"""The rights matrix of staff: which role may do what. The one place that says it.

Roles (``users.roles``): ``admin`` manages the estate, residents, their rights, staff and
partners; ``operator`` monitors, opens by hand, revokes guest passes and reads the audit;
``auditor`` reads. An account with several roles may do what any of them may.

Where an action may be done is the scope's business (``propdev.staff.scope``): the matrix only
says whether the role may do it at all (a call it may not make answers 403, whatever it names).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping


class Role(enum.StrEnum):
    ADMIN = "admin"
    OPERATOR = "operator"
    AUDITOR = "auditor"


class Action(enum.StrEnum):
    """What a staff call does, as the matrix knows it."""

    ESTATE_READ = "estate.read"  # sites, buildings, apartments, access points
    ESTATE_MANAGE = "estate.manage"  # create, change, delete them; import; partner sync
    RESIDENTS_READ = "residents.read"  # residents and their rights
    RESIDENTS_MANAGE = "residents.manage"  # invite, move out, rights, export, erase
    OPEN = "open"  # open a door by hand
    PASSES_READ = "passes.read"
    PASSES_MANAGE = "passes.manage"  # revoke a guest pass
    AUDIT_READ = "audit.read"
    SYSTEM_READ = "system.read"  # actors, nodes, breakers, SLOs, the console's feed
    SYSTEM_OPERATE = "system.operate"  # restart an actor, drain a node
    STAFF_READ = "staff.read"
    STAFF_MANAGE = "staff.manage"  # create, change, disable staff; reset their 2FA
    PARTNERS_MANAGE = "partners.manage"
    SELF = "self"  # the caller's own account (recovery codes left)


_READ = frozenset(
    {
        Action.ESTATE_READ,
        Action.RESIDENTS_READ,
        Action.PASSES_READ,
        Action.AUDIT_READ,
        Action.SYSTEM_READ,
        Action.SELF,
    }
)

MATRIX: Mapping[Role, frozenset[Action]] = {
    Role.ADMIN: frozenset(Action),
    Role.OPERATOR: _READ | {Action.OPEN, Action.PASSES_MANAGE, Action.SYSTEM_OPERATE},
    Role.AUDITOR: _READ | {Action.STAFF_READ},
}
"""Role -> the actions it may do."""

STAFF_ROLES = frozenset(r.value for r in Role)


def staff_roles(roles: Iterable[str]) -> frozenset[Role]:
    """The staff roles among an account's roles (others, ``resident`` say, are ignored)."""
    return frozenset(Role(r) for r in roles if r in STAFF_ROLES)


def may(roles: Iterable[Role], action: Action) -> bool:
    """True when one of ``roles`` may do ``action``."""
    return any(action in MATRIX[role] for role in roles)
