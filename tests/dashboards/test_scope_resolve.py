"""The KPI engine's scope check as the dashboards use it on every request: it reuses the
visibility policy's resolved scope, reads the team table once, and gives the same owners
as asking the database directly."""

from __future__ import annotations

import pytest

from apps.kpis.selectors import KpiPermissionError, scope_resolve
from apps.org import policy
from apps.org.models import Role, Team, User


def people_of(team: Team) -> frozenset[int]:
    """The owners of a team scope, straight from the database: the people of the team
    and of every team below it."""
    teams = policy.subtree_ids([team.pk])
    return frozenset(User.objects.filter(team_id__in=teams).values_list("id", flat=True))


def fresh(user: User) -> User:
    """The user as a new request loads it (no policy memo yet)."""
    return User.objects.get(pk=user.pk)


@pytest.mark.django_db
class TestScopeResolve:
    def test_a_managers_own_team_costs_one_read_after_the_policy(
        self, world, django_assert_num_queries
    ):
        manager = fresh(world.manager_east)
        policy.scope_for(manager)  # the frame asks the policy first, once per request
        with django_assert_num_queries(1):  # the team table
            scope = scope_resolve(user=manager)
        assert (scope.kind, scope.team_id, scope.label) == ("team", world.east.pk, "East")
        assert scope.owner_ids == people_of(world.east)
        assert scope.owner_ids == {world.manager_east.pk, world.rep_a.pk, world.rep_b.pk}

    def test_a_manager_outside_the_team_they_run_is_not_an_owner(self, world):
        # Given East's manager belonging to no team (the policy still lets them see East)
        User.objects.filter(pk=world.manager_east.pk).update(team=None)
        manager = fresh(world.manager_east)
        scope = scope_resolve(user=manager)
        # Then East's owners are East's people, as the database says, without the manager
        assert scope.owner_ids == people_of(world.east) == {world.rep_a.pk, world.rep_b.pk}
        assert policy.scope_for(manager).sees_user(manager.pk)

    def test_a_manager_of_two_teams_starts_on_the_first(self, world, django_assert_num_queries):
        # Given East's manager also running West (created after East)
        Team.objects.filter(pk=world.west.pk).update(manager=world.manager_east)
        manager = fresh(world.manager_east)
        policy.scope_for(manager)
        # Then the default is East, whose people are read (it is not the whole scope)
        with django_assert_num_queries(2):
            scope = scope_resolve(user=manager)
        assert scope.team_id == world.east.pk
        assert scope.owner_ids == people_of(world.east)
        # And West is theirs to ask for
        assert scope_resolve(user=manager, team_id=world.west.pk).owner_ids == {world.rep_c.pk}

    def test_a_sub_team_and_an_executive_read_the_people(self, world, django_assert_num_queries):
        manager = fresh(world.manager_east)
        policy.scope_for(manager)
        with django_assert_num_queries(2):  # the team table, the people below East SMB
            sub = scope_resolve(user=manager, team_id=world.east_sub.pk)
        assert (sub.label, sub.owner_ids) == ("East SMB", {world.rep_b.pk})
        with django_assert_num_queries(2):
            east = scope_resolve(user=world.cso, team_id=world.east.pk)
        assert east.owner_ids == people_of(world.east)
        with django_assert_num_queries(0):
            assert scope_resolve(user=world.cso).kind == "company"

    def test_out_of_scope_and_unknown(self, world):
        manager = fresh(world.manager_east)
        with pytest.raises(KpiPermissionError):
            scope_resolve(user=manager, team_id=world.west.pk)
        with pytest.raises(KpiPermissionError):
            scope_resolve(user=manager, rep_id=world.rep_c.pk)
        with pytest.raises(KpiPermissionError):  # an unknown team is not visible either
            scope_resolve(user=manager, team_id=10**9)
        rep = fresh(world.rep_a)
        assert scope_resolve(user=rep).owner_ids == {world.rep_a.pk}
        with pytest.raises(KpiPermissionError):
            scope_resolve(user=rep, team_id=world.east.pk)

    def test_a_rep_made_manager_of_a_team_is_refused_it_by_the_policy(self, world):
        # Given a rep set as a team's manager while still a rep (the policy gives reps
        # themselves only), their default scope is refused, not widened
        Team.objects.filter(pk=world.west.pk).update(manager=world.rep_c)
        rep = fresh(world.rep_c)
        assert rep.role == Role.REP
        with pytest.raises(KpiPermissionError):
            scope_resolve(user=rep)
