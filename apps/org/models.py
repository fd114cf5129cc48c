"""People and the organisation: users with a role, regions, and teams as a tree."""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.db.models.functions import Lower
from django.utils.crypto import salted_hmac


class Region(models.Model):
    """A sales geography (e.g. NA, EMEA, APAC); accounts and region-level teams point here."""

    code = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=100, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Team(models.Model):
    """A node of the sales organisation: company > region > team (any depth is allowed).

    A team's scope is itself and every team below it. Its manager sees that whole subtree.
    """

    class Kind(models.TextChoices):
        COMPANY = "company", "Company"
        REGION = "region", "Region"
        TEAM = "team", "Team"

    name = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.TEAM)
    parent = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="children"
    )
    manager = models.ForeignKey(
        "org.User",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="managed_teams",
    )
    region = models.ForeignKey(
        Region, null=True, blank=True, on_delete=models.PROTECT, related_name="teams"
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["parent", "name"], name="uniq_team_name_in_parent"),
            # Only the company node is a root; every other node hangs below something.
            models.CheckConstraint(
                condition=(models.Q(kind="company", parent__isnull=True))
                | (~models.Q(kind="company") & models.Q(parent__isnull=False)),
                name="team_root_is_company",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    EXECUTIVE = "executive", "Executive"
    MANAGER = "manager", "Sales manager"
    REP = "rep", "Sales rep"
    REVOPS_ADMIN = "revops_admin", "RevOps admin"


class User(AbstractUser):
    """A person who logs in. Custom from the first migration so fields can grow safely.

    ``team`` is the team the person belongs to (a manager belongs to the team they run);
    executives may have none. What a user may see follows from ``role`` and the teams
    they manage, through :mod:`apps.org.policy`.
    """

    role = models.CharField(max_length=16, choices=Role.choices, default=Role.REP)
    title = models.CharField(
        max_length=80, blank=True, help_text="e.g. CSO, CEO, CFO, Account Executive"
    )
    team = models.ForeignKey(
        Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members"
    )
    hired_on = models.DateField(null=True, blank=True)
    #: Raised by "log out everywhere": it is part of the session hash (below), so every
    #: session signed in before the raise stops being valid on its next request.
    session_epoch = models.PositiveIntegerField(default=0, editable=False)

    objects = UserManager()

    class Meta:
        ordering = ["first_name", "last_name", "username"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                condition=~models.Q(email=""),
                name="uniq_user_email_ci",
                violation_error_message="A user with this email already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def _get_session_auth_hash(self, secret: str | None = None) -> str:
        # Django's hash covers the password; the epoch joins it once raised, so sessions
        # made before "log out everywhere" no longer match (epoch 0 keeps Django's value).
        value = self.password if not self.session_epoch else f"{self.password}:{self.session_epoch}"
        return salted_hmac(
            "django.contrib.auth.models.AbstractBaseUser.get_session_auth_hash",
            value,
            secret=secret,
            algorithm="sha256",
        ).hexdigest()

    @property
    def is_executive(self) -> bool:
        return self.role == Role.EXECUTIVE

    @property
    def is_revops_admin(self) -> bool:
        return self.role == Role.REVOPS_ADMIN
