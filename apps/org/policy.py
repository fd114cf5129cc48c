"""The single visibility policy: which people, teams and records a user may see or edit.

Every view, API endpoint, export and digest asks this module; nothing else decides.

- Executives and RevOps admins see the whole company.
- A manager sees the teams they manage and every team below them, and the people in them.
- A rep sees only themselves.
- An inactive or anonymous user sees nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from django.db.models import Q, QuerySet

from apps.org.models import Role, Team, User


@dataclass(frozen=True)
class Scope:
    """What a user may see. ``everything`` wins; otherwise the explicit id sets apply."""

    everything: bool
    team_ids: frozenset[int]
    user_ids: frozenset[int]

    def sees_user(self, user_id: int | None) -> bool:
        return self.everything or (user_id is not None and user_id in self.user_ids)

    def sees_team(self, team_id: int | None) -> bool:
        return self.everything or (team_id is not None and team_id in self.team_ids)


NOTHING = Scope(everything=False, team_ids=frozenset(), user_ids=frozenset())
EVERYTHING = Scope(everything=True, team_ids=frozenset(), user_ids=frozenset())


def team_tree() -> dict[int | None, list[int]]:
    """Children ids by parent id, from one query over the (small) team table."""
    children: dict[int | None, list[int]] = {}
    for team_id, parent_id in Team.objects.values_list("id", "parent_id"):
        children.setdefault(parent_id, []).append(team_id)
    return children


def subtree_ids(
    root_ids: Iterable[int], tree: dict[int | None, list[int]] | None = None
) -> set[int]:
    """The given teams and every team below them."""
    tree = team_tree() if tree is None else tree
    result: set[int] = set()
    stack = list(root_ids)
    while stack:
        team_id = stack.pop()
        if team_id in result:
            continue
        result.add(team_id)
        stack.extend(tree.get(team_id, ()))
    return result


def scope_for(user: User | None) -> Scope:
    """Resolve a user's scope (two small queries for a manager, none otherwise)."""
    if user is None or not user.is_authenticated or not user.is_active:
        return NOTHING
    if user.is_superuser or user.role in (Role.EXECUTIVE, Role.REVOPS_ADMIN):
        return EVERYTHING
    if user.role == Role.MANAGER:
        managed = list(Team.objects.filter(manager=user).values_list("id", flat=True))
        team_ids = subtree_ids(managed) if managed else set()
        user_ids = set(User.objects.filter(team_id__in=team_ids).values_list("id", flat=True))
        user_ids.add(user.pk)
        return Scope(everything=False, team_ids=frozenset(team_ids), user_ids=frozenset(user_ids))
    return Scope(everything=False, team_ids=frozenset(), user_ids=frozenset({user.pk}))


def filter_by_owner(queryset: QuerySet, scope: Scope, owner_field: str = "owner") -> QuerySet:
    """Restrict records owned by a person (deals, quotas, reviews...) to the scope."""
    if scope.everything:
        return queryset
    return queryset.filter(**{f"{owner_field}_id__in": scope.user_ids})


def visible_users(user: User) -> QuerySet[User]:
    scope = scope_for(user)
    qs = User.objects.all()
    return qs if scope.everything else qs.filter(pk__in=scope.user_ids)


def visible_teams(user: User) -> QuerySet[Team]:
    scope = scope_for(user)
    qs = Team.objects.all()
    return qs if scope.everything else qs.filter(pk__in=scope.team_ids)


def can_view_user(viewer: User, target: User) -> bool:
    return scope_for(viewer).sees_user(target.pk)


def can_manage_user(viewer: User, target: User) -> bool:
    """Edit quotas and reviews for ``target``: executives anyone, managers their subtree
    except themselves; reps and RevOps admins nobody."""
    if not viewer.is_authenticated or not viewer.is_active:
        return False
    if viewer.is_superuser or viewer.role == Role.EXECUTIVE:
        return True
    if viewer.role != Role.MANAGER or viewer.pk == target.pk:
        return False
    return scope_for(viewer).sees_user(target.pk)


def team_or_user_q(scope: Scope, *, team_field: str, user_field: str) -> Q:
    """A Q matching rows attached to a visible team or a visible user (e.g. quotas)."""
    if scope.everything:
        return Q()
    return Q(**{f"{team_field}_id__in": scope.team_ids}) | Q(
        **{f"{user_field}_id__in": scope.user_ids}
    )
