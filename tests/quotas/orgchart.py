"""A small sales organisation shared by the quota and review tests.

Company (CSO: executive "cso")
└── EMEA region (manager "rita")
    ├── DACH (manager "max"): reps "anna", "ben"
    └── Nordics (manager "nora"): rep "carl"
RevOps admin "ops" (sees everything, edits nothing)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from apps.org.models import Role, Team, User
from apps.quotas.models import FiscalPeriod
from apps.quotas.services import fiscal_periods_ensure
from tests.factories import PASSWORD, UserFactory


@dataclass
class Org:
    company: Team
    emea: Team
    dach: Team
    nordics: Team
    cso: User
    ops: User
    rita: User
    max: User
    nora: User
    anna: User
    ben: User
    carl: User

    def period(self, name: str) -> FiscalPeriod:
        return FiscalPeriod.objects.get(name=name)


def build_org() -> Org:
    fiscal_periods_ensure(first_year=2023, last_year=2026)
    company = Team.objects.create(name="Acme", kind=Team.Kind.COMPANY)
    emea = Team.objects.create(name="EMEA", kind=Team.Kind.REGION, parent=company)
    dach = Team.objects.create(name="DACH", parent=emea)
    nordics = Team.objects.create(name="Nordics", parent=emea)

    def person(username: str, role: str, team: Team | None, first: str) -> User:
        return UserFactory(
            username=username,
            first_name=first,
            last_name="Test",
            email=f"{username}@example.com",
            role=role,
            team=team,
            hired_on=date(2020, 1, 1),
        )

    org = Org(
        company=company,
        emea=emea,
        dach=dach,
        nordics=nordics,
        cso=person("cso", Role.EXECUTIVE, None, "Cleo"),
        ops=person("ops", Role.REVOPS_ADMIN, None, "Omar"),
        rita=person("rita", Role.MANAGER, emea, "Rita"),
        max=person("max", Role.MANAGER, dach, "Max"),
        nora=person("nora", Role.MANAGER, nordics, "Nora"),
        anna=person("anna", Role.REP, dach, "Anna"),
        ben=person("ben", Role.REP, dach, "Ben"),
        carl=person("carl", Role.REP, nordics, "Carl"),
    )
    company.manager, emea.manager = org.cso, org.rita
    dach.manager, nordics.manager = org.max, org.nora
    for team in (company, emea, dach, nordics):
        team.save()
    return org


__all__ = ["PASSWORD", "Org", "build_org"]
