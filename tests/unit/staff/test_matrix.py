"""The rights matrix and scopes, without a store."""

from __future__ import annotations

import pytest

from propdev.staff import MATRIX, ORGANISATION, Action, Place, Role, Scope, may


@pytest.mark.parametrize(
    ("role", "action", "allowed"),
    [
        (Role.ADMIN, Action.STAFF_MANAGE, True),
        (Role.ADMIN, Action.ESTATE_MANAGE, True),
        (Role.OPERATOR, Action.OPEN, True),
        (Role.OPERATOR, Action.PASSES_MANAGE, True),
        (Role.OPERATOR, Action.AUDIT_READ, True),
        (Role.OPERATOR, Action.RESIDENTS_MANAGE, False),
        (Role.OPERATOR, Action.STAFF_MANAGE, False),
        (Role.OPERATOR, Action.ESTATE_MANAGE, False),
        (Role.AUDITOR, Action.AUDIT_READ, True),
        (Role.AUDITOR, Action.OPEN, False),
        (Role.AUDITOR, Action.PASSES_MANAGE, False),
        (Role.AUDITOR, Action.SYSTEM_OPERATE, False),
    ],
)
def test_the_matrix_says_what_each_role_may_do(role: Role, action: Action, allowed: bool) -> None:
    assert may({role}, action) is allowed


def test_the_auditor_only_reads() -> None:
    writes = {a for a in Action if a.value.endswith((".manage", ".operate")) or a is Action.OPEN}
    assert not MATRIX[Role.AUDITOR] & writes


def test_several_roles_may_what_any_of_them_may() -> None:
    assert may({Role.AUDITOR, Role.OPERATOR}, Action.OPEN)
    assert not may(set(), Action.AUDIT_READ)


def test_a_scoped_caller_reaches_its_sites_only() -> None:
    scope = Scope("u", frozenset({Role.OPERATOR}), frozenset({"s1"}))
    assert scope.reaches(Place.at(["s1"]))
    assert scope.reaches(Place.at(["s1", "s2"]))  # a pass with doors at both
    assert not scope.reaches(Place.at(["s2"]))
    assert not scope.reaches(ORGANISATION)
    assert Place.at([]) == ORGANISATION  # nowhere: the organisation's


def test_an_organisation_wide_caller_reaches_everything() -> None:
    scope = Scope("u", frozenset({Role.AUDITOR}), None)
    assert scope.reaches(ORGANISATION) and scope.reaches(Place.at(["s9"]))
    assert scope.covers(None)


def test_a_scoped_caller_hands_out_only_its_own_sites() -> None:
    scope = Scope("u", frozenset({Role.ADMIN}), frozenset({"s1", "s2"}))
    assert scope.covers(frozenset({"s1"}))
    assert not scope.covers(frozenset({"s1", "s3"}))
    assert not scope.covers(None)
