"""The one visibility policy: who sees which people and teams, and who may manage whom.

The organisation used throughout::

    Company (CEO exec, RevOps)
    ├── EMEA (region, managed by emea_mgr)
    │   ├── EMEA North (team, managed by north_mgr): north_rep1, north_rep2
    │   └── EMEA South (team, managed by south_mgr): south_rep
    └── NA (region, managed by na_mgr)
        └── NA West (team, no manager): west_rep
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.crm.models import Opportunity
from apps.org.models import Role, Team, User
from apps.org.policy import (
    can_manage_user,
    can_view_user,
    filter_by_owner,
    scope_for,
    subtree_ids,
    visible_teams,
    visible_users,
)
from tests.factories import (
    CompanyFactory,
    ExecutiveFactory,
    ManagerFactory,
    OpportunityFactory,
    RegionTeamFactory,
    RepFactory,
    RevOpsAdminFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db


@dataclass
class Org:
    company: Team
    emea: Team
    north: Team
    south: Team
    na: Team
    west: Team
    ceo: User
    revops: User
    emea_mgr: User
    north_mgr: User
    south_mgr: User
    na_mgr: User
    north_rep1: User
    north_rep2: User
    south_rep: User
    west_rep: User

    def ids(self, *names: str) -> frozenset[int]:
        return frozenset(getattr(self, name).pk for name in names)


@pytest.fixture
def org() -> Org:
    company = CompanyFactory()
    emea = RegionTeamFactory(name="EMEA", parent=company)
    na = RegionTeamFactory(name="NA", parent=company)
    north = TeamFactory(name="EMEA North", parent=emea)
    south = TeamFactory(name="EMEA South", parent=emea)
    west = TeamFactory(name="NA West", parent=na)
    people = {
        "ceo": ExecutiveFactory(team=None),
        "revops": RevOpsAdminFactory(team=company),
        "emea_mgr": ManagerFactory(team=emea),
        "north_mgr": ManagerFactory(team=north),
        "south_mgr": ManagerFactory(team=south),
        "na_mgr": ManagerFactory(team=na),
        "north_rep1": RepFactory(team=north),
        "north_rep2": RepFactory(team=north),
        "south_rep": RepFactory(team=south),
        "west_rep": RepFactory(team=west),
    }
    for team in (emea, north, south, na):
        team.refresh_from_db()
    assert north.manager == people["north_mgr"]
    return Org(company=company, emea=emea, north=north, south=south, na=na, west=west, **people)


def test_executive_and_revops_see_everything(org):
    for viewer in (org.ceo, org.revops):
        scope = scope_for(viewer)
        assert scope.everything
        assert visible_users(viewer).count() == User.objects.count()
        assert visible_teams(viewer).count() == Team.objects.count()
        assert can_view_user(viewer, org.west_rep)


def test_regional_manager_sees_every_team_below_and_its_people(org):
    scope = scope_for(org.emea_mgr)
    assert not scope.everything
    assert scope.team_ids == org.ids("emea", "north", "south")
    assert scope.user_ids == org.ids(
        "emea_mgr", "north_mgr", "south_mgr", "north_rep1", "north_rep2", "south_rep"
    )
    assert not scope.sees_user(org.west_rep.pk)
    assert not scope.sees_team(org.company.pk)


def test_team_manager_sees_only_their_team(org):
    scope = scope_for(org.north_mgr)
    assert scope.team_ids == org.ids("north")
    assert scope.user_ids == org.ids("north_mgr", "north_rep1", "north_rep2")
    assert set(visible_users(org.north_mgr)) == {org.north_mgr, org.north_rep1, org.north_rep2}
    assert list(visible_teams(org.north_mgr)) == [org.north]


def test_a_manager_of_two_separate_teams_sees_both_subtrees(org):
    # Given the North manager also runs West (in another branch of the tree)
    org.west.manager = org.north_mgr
    org.west.save()
    scope = scope_for(type(org.north_mgr).objects.get(pk=org.north_mgr.pk))
    assert scope.team_ids == org.ids("north", "west")
    assert scope.user_ids == org.ids("north_mgr", "north_rep1", "north_rep2", "west_rep")


def test_a_cycle_in_the_team_tree_ends_the_walk(org):
    # Given bad data written around the model (a bulk write): EMEA under North, North
    # under EMEA
    type(org.emea).objects.filter(pk=org.emea.pk).update(parent=org.north)
    scope = scope_for(type(org.north_mgr).objects.get(pk=org.north_mgr.pk))
    # The walk visits each team once and stops
    assert scope.team_ids == org.ids("emea", "north", "south")
    assert org.south_rep.pk in scope.user_ids


def test_rep_sees_only_themselves(org):
    scope = scope_for(org.north_rep1)
    assert scope.team_ids == frozenset()
    assert scope.user_ids == org.ids("north_rep1")
    assert list(visible_users(org.north_rep1)) == [org.north_rep1]
    assert not visible_teams(org.north_rep1).exists()
    assert not can_view_user(org.north_rep1, org.north_rep2)


def test_manager_managing_no_team_sees_only_themselves(org):
    idle = ManagerFactory(team=org.west, manages_team=False)
    assert org.west.manager_id is None
    scope = scope_for(idle)
    assert (scope.team_ids, scope.user_ids) == (frozenset(), frozenset({idle.pk}))


def test_inactive_and_anonymous_users_see_nothing(org):
    org.ceo.is_active = False
    org.ceo.save()
    for viewer in (org.ceo, AnonymousUser(), None):
        scope = scope_for(viewer)
        assert not scope.everything
        assert scope.user_ids == scope.team_ids == frozenset()
    assert not visible_users(org.ceo).exists()


def test_filter_by_owner_restricts_deals_to_the_scope(org):
    deals = {rep: OpportunityFactory(owner=getattr(org, rep)) for rep in ("north_rep1", "west_rep")}
    everyone = Opportunity.objects.all()
    assert set(filter_by_owner(everyone, scope_for(org.ceo))) == set(deals.values())
    assert list(filter_by_owner(everyone, scope_for(org.emea_mgr))) == [deals["north_rep1"]]
    assert list(filter_by_owner(everyone, scope_for(org.west_rep))) == [deals["west_rep"]]
    assert not filter_by_owner(everyone, scope_for(AnonymousUser())).exists()


def test_subtree_ids_follow_the_tree(org):
    assert subtree_ids([org.company.pk]) == set(Team.objects.values_list("id", flat=True))
    assert subtree_ids([org.na.pk]) == {org.na.pk, org.west.pk}
    assert subtree_ids([org.west.pk]) == {org.west.pk}


# --- can_manage_user ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("viewer", "target", "allowed"),
    [
        ("ceo", "west_rep", True),
        ("ceo", "emea_mgr", True),
        ("emea_mgr", "north_rep1", True),
        ("emea_mgr", "north_mgr", True),
        ("emea_mgr", "emea_mgr", False),
        ("emea_mgr", "west_rep", False),
        ("north_mgr", "north_rep2", True),
        ("north_mgr", "south_rep", False),
        ("north_mgr", "emea_mgr", False),
        ("north_rep1", "north_rep1", False),
        ("north_rep1", "north_rep2", False),
        ("revops", "north_rep1", False),
    ],
)
def test_can_manage_user(org, viewer, target, allowed):
    assert can_manage_user(getattr(org, viewer), getattr(org, target)) is allowed


def test_inactive_or_anonymous_can_manage_nobody(org):
    org.emea_mgr.is_active = False
    org.emea_mgr.save()
    assert not can_manage_user(org.emea_mgr, org.north_rep1)
    assert not can_manage_user(AnonymousUser(), org.north_rep1)


def test_roles_are_what_the_factories_say(org):
    # guards the fixture itself: the policy tests above are only as good as these roles
    assert (org.ceo.role, org.revops.role, org.emea_mgr.role, org.west_rep.role) == (
        Role.EXECUTIVE,
        Role.REVOPS_ADMIN,
        Role.MANAGER,
        Role.REP,
    )
