"""Reads about people and teams, always through the visibility policy."""

from __future__ import annotations

from dataclasses import dataclass

from apps.org.models import Team, User
from apps.org.policy import scope_for


@dataclass(frozen=True)
class UserProfile:
    name: str
    username: str
    role: str
    title: str
    team: str | None
    scope_label: str
    visible_people: int | None


def user_profile(*, user: User) -> UserProfile:
    """Who is logged in and what they can see, in words, for the home page."""
    scope = scope_for(user)
    if scope.everything:
        label, people = "the whole company", None
    elif len(scope.user_ids) <= 1:
        label, people = "your own deals, quotas and reviews", 1
    else:
        managed = list(
            Team.objects.filter(manager=user).order_by("name").values_list("name", flat=True)
        )
        extra = len(scope.team_ids) - len(managed)
        label = ", ".join(managed) + (
            f" and {extra} team{'s' if extra != 1 else ''} below" if extra else ""
        )
        people = len(scope.user_ids)
    return UserProfile(
        name=user.get_full_name() or user.username,
        username=user.username,
        role=user.get_role_display(),
        title=user.title,
        team=user.team.name if user.team is not None else None,
        scope_label=label,
        visible_people=people,
    )
