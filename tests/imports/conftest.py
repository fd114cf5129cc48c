"""Shared data for the import tests: a small, known CRM the test files refer to."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from apps.crm.models import Account, Product, Stage
from apps.org.models import Region, Role, Team, User
from tests.factories import (
    AccountFactory,
    CompanyFactory,
    ProductFactory,
    RegionFactory,
    RevOpsAdminFactory,
    StageFactory,
    TeamFactory,
    UserFactory,
)

DATA = Path(__file__).resolve().parent.parent / "data" / "imports"
GOOD = DATA / "good"
MALFORMED = DATA / "malformed"

#: Every table an import can write, counted to prove "nothing changed".
COUNTED_MODELS = (
    "org.User",
    "org.Team",
    "org.Region",
    "crm.Account",
    "crm.Product",
    "crm.Stage",
    "crm.Opportunity",
    "crm.OpportunityHistory",
    "quotas.Quota",
    "quotas.FiscalPeriod",
    "customers.Subscription",
    "customers.NpsResponse",
    "core.ExchangeRate",
)


def table_state() -> dict[str, list[tuple]]:
    """Every row of every importable table, as tuples: equal before and after means that
    nothing at all was written."""
    state = {}
    for label in COUNTED_MODELS:
        model = django_apps.get_model(label)
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "last_login"]
        state[label] = list(model.objects.order_by("pk").values_list(*fields))
    return state


@dataclass
class Crm:
    admin: User
    ada: User
    bob: User
    east: Team
    na: Region
    prospecting: Stage
    negotiation: Stage
    won: Stage
    lost: Stage
    acme: Account
    globex: Account
    platform: Product
    analytics: Product


@pytest.fixture
def crm(db) -> Crm:
    company = CompanyFactory()
    na = RegionFactory(code="NA", name="North America")
    east = TeamFactory(name="Sales East", parent=company, region=na)
    ada = UserFactory(
        username="ada", email="ada@example.com", first_name="Ada", last_name="Lovelace", team=east
    )
    bob = UserFactory(
        username="bob", email="bob@example.com", first_name="Bob", last_name="Stone", team=east
    )
    # Two people with the same full name: a reference by name to them is ambiguous.
    UserFactory(username="sam1", email="sam1@example.com", first_name="Sam", last_name="Lee")
    UserFactory(username="sam2", email="sam2@example.com", first_name="Sam", last_name="Lee")
    AccountFactory(external_id="ACC-8", name="Initech", region=na)
    AccountFactory(external_id="ACC-9", name="Initech", region=na)
    return Crm(
        admin=RevOpsAdminFactory(username="ops", email="ops@example.com"),
        ada=ada,
        bob=bob,
        east=east,
        na=na,
        prospecting=StageFactory(name="Prospecting", order=1, probability=Decimal("10")),
        negotiation=StageFactory(name="Negotiation", order=2, probability=Decimal("60")),
        won=StageFactory(name="Won", order=3, won=True),
        lost=StageFactory(name="Lost", order=4, lost=True),
        acme=AccountFactory(external_id="ACC-1", name="Acme Corp", region=na),
        globex=AccountFactory(external_id="ACC-2", name="Globex", region=na),
        platform=ProductFactory(external_id="PRD-1", name="Platform"),
        analytics=ProductFactory(external_id="PRD-2", name="Analytics"),
    )


@pytest.fixture
def admin_user(crm: Crm) -> User:
    return crm.admin


__all__ = ["GOOD", "MALFORMED", "Role", "table_state"]
