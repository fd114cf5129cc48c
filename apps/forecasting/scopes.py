"""Scopes that forecasts are stored for, and their keys.

A scope key is ``company``, ``team:<id>`` or ``rep:<id>``. The company's root team is the
company scope (its call is the CSO's call for the company), so it has no ``team:`` key.
Owner ids of a team scope are built exactly as :func:`apps.kpis.selectors.scope_resolve`
builds them (everyone whose team is in the subtree), so the stored numbers and the KPI
engine agree; the background jobs have no viewer, hence they build scopes themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

from apps.kpis.selectors import KpiScope
from apps.org.models import Role, Team, User
from apps.org.policy import subtree_ids, team_tree

COMPANY = "company"


@dataclass(frozen=True)
class ScopeTarget:
    key: str
    scope: KpiScope
    team_id: int | None = None
    rep_id: int | None = None


def root_team_ids() -> set[int]:
    return set(Team.objects.filter(parent__isnull=True).values_list("id", flat=True))


def key_for(scope: KpiScope, *, roots: set[int] | None = None) -> str:
    """The storage key of a resolved KPI scope (the root team is the company)."""
    if scope.kind == "rep":
        return f"rep:{scope.rep_id}"
    if scope.kind == "team":
        roots = root_team_ids() if roots is None else roots
        return COMPANY if scope.team_id in roots else f"team:{scope.team_id}"
    return COMPANY


def team_key(team_id: int, roots: set[int]) -> str:
    return COMPANY if team_id in roots else f"team:{team_id}"


def company_target() -> ScopeTarget:
    return ScopeTarget(COMPANY, KpiScope(kind="company"))


def _targets(team_ids: set[int] | None, rep_ids: set[int] | None) -> list[ScopeTarget]:
    """Company, then the given teams (None: every active team) and reps (None: every
    active rep); three queries."""
    tree = team_tree()
    teams = list(Team.objects.values_list("id", "name", "parent_id", "is_active"))
    team_of = dict(User.objects.filter(team__isnull=False).values_list("id", "team_id"))
    members: dict[int, set[int]] = {}
    for user_id, team_id in team_of.items():
        members.setdefault(team_id, set()).add(user_id)
    result = [company_target()]
    for team_id, name, parent_id, active in sorted(teams, key=lambda t: t[1]):
        if parent_id is None:
            continue
        if (team_ids is None and not active) or (team_ids is not None and team_id not in team_ids):
            continue
        owners = frozenset(u for t in subtree_ids([team_id], tree) for u in members.get(t, ()))
        scope = KpiScope(kind="team", team_id=team_id, owner_ids=owners, label=name)
        result.append(ScopeTarget(f"team:{team_id}", scope, team_id=team_id))
    reps = User.objects.filter(role=Role.REP)
    reps = reps.filter(is_active=True) if rep_ids is None else reps.filter(pk__in=rep_ids)
    for rep in reps.order_by("first_name", "last_name", "username"):
        scope = KpiScope(kind="rep", rep_id=rep.pk, owner_ids=frozenset({rep.pk}), label=str(rep))
        result.append(ScopeTarget(f"rep:{rep.pk}", scope, rep_id=rep.pk))
    return result


def all_targets() -> list[ScopeTarget]:
    """Every scope forecasts are kept for: company, every active team, every active rep."""
    return _targets(None, None)


def targets_for_owner(owner_id: int) -> list[ScopeTarget]:
    """The scopes a deal owned by ``owner_id`` counts in: the company, the owner's team and
    every team above it, and the owner (when a rep)."""
    team_id = User.objects.filter(pk=owner_id).values_list("team_id", flat=True).first()
    parents = dict(Team.objects.values_list("id", "parent_id"))
    chain: set[int] = set()
    current = team_id
    while current is not None and current not in chain:
        chain.add(current)
        current = parents.get(current)
    return _targets(chain, {owner_id})
