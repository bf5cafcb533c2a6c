"""Staff: roles and their rights (``matrix``), scopes (``scope``), where resources are
(``places``) and staff accounts' lifecycle (``service``).

Nothing here imports aiohttp: the HTTP edge (``propdev.http.scope``) reads each admin route's
declared action and resource and asks this package whether the caller may (403 when the role
may not, 404 when the resource is out of scope).
"""

from __future__ import annotations

from propdev.staff.errors import (
    InvalidStaffFieldError,
    NotPermittedError,
    OutOfScopeError,
    StaffConflictError,
    StaffError,
)
from propdev.staff.matrix import MATRIX, STAFF_ROLES, Action, Role, may, staff_roles
from propdev.staff.places import Kind, decode_sites, encode_sites, in_clause, place_of
from propdev.staff.scope import ORGANISATION, Place, Scope
from propdev.staff.service import (
    CHANGE,
    CREATE,
    DISABLE,
    EVERYTHING,
    RESET_2FA,
    Staff,
    Visible,
    audit_within,
)

__all__ = (
    "CHANGE",
    "CREATE",
    "DISABLE",
    "EVERYTHING",
    "MATRIX",
    "ORGANISATION",
    "RESET_2FA",
    "STAFF_ROLES",
    "Action",
    "InvalidStaffFieldError",
    "Kind",
    "NotPermittedError",
    "OutOfScopeError",
    "Place",
    "Role",
    "Scope",
    "Staff",
    "StaffConflictError",
    "StaffError",
    "Visible",
    "audit_within",
    "decode_sites",
    "encode_sites",
    "in_clause",
    "may",
    "place_of",
    "staff_roles",
)
