"""Who may view, plan, approve and lock a quota plan (apps/org/policy.py)."""

from __future__ import annotations

import pytest

from apps.org.policy import (
    ancestor_ids,
    can_approve_plan,
    can_lock_plan,
    can_plan_team,
    can_view_plan,
)

pytestmark = pytest.mark.django_db


def test_ancestors_are_listed_nearest_first(org):
    assert ancestor_ids(org.dach.pk) == [org.emea.pk, org.company.pk]
    assert ancestor_ids(org.company.pk) == []


@pytest.mark.parametrize(
    ("who", "team", "view", "plan"),
    [
        ("cso", "dach", True, True),
        ("ops", "dach", True, False),  # RevOps sees everything, edits nothing
        ("rita", "dach", True, True),  # a manager above
        ("rita", "emea", True, True),  # her own team
        ("rita", "company", False, False),  # above her: out of scope
        ("max", "dach", True, True),
        ("max", "nordics", False, False),  # a sibling team
        ("max", "emea", False, False),
        ("anna", "dach", False, False),  # reps never see a team plan
    ],
)
def test_view_and_plan(org, who, team, view, plan):
    user, target = getattr(org, who), getattr(org, team)
    assert can_view_plan(user, target) is view
    assert can_plan_team(user, target) is plan


@pytest.mark.parametrize(
    ("who", "team", "submitter", "expected"),
    [
        ("cso", "dach", "max", True),
        ("rita", "dach", "max", True),  # the manager above
        ("max", "dach", "rita", False),  # nobody approves their own team's quota
        ("nora", "dach", "max", False),  # a sibling manager
        ("rita", "dach", "rita", False),  # never the submitter
        ("rita", "emea", "cso", False),  # her own team
        ("cso", "emea", "rita", True),
        ("cso", "company", "rita", False),  # the CSO runs the company team
        ("cso", "dach", "cso", False),  # an executive does not approve what they submitted
        ("ops", "dach", "max", False),
        ("anna", "dach", "max", False),
    ],
)
def test_approve(org, who, team, submitter, expected):
    submitted_by = getattr(org, submitter)
    assert (
        can_approve_plan(getattr(org, who), getattr(org, team), submitted_by_id=submitted_by.pk)
        is expected
    )


def test_only_executives_lock(org):
    assert can_lock_plan(org.cso)
    assert not any(can_lock_plan(u) for u in (org.ops, org.rita, org.max, org.anna))


def test_inactive_users_may_do_nothing(org):
    org.cso.is_active = False
    assert not can_view_plan(org.cso, org.dach)
    assert not can_plan_team(org.cso, org.dach)
    assert not can_lock_plan(org.cso)
