"""One good file per kind: what it creates, and that importing it again changes nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.conf import settings

from apps.core.models import ExchangeRate
from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.imports.mapping import identity_mapping
from apps.imports.services import file_import
from apps.org.models import Region, Role, Team, User
from apps.quotas.models import Quota
from tests.imports.conftest import GOOD, table_state

pytestmark = pytest.mark.django_db


#: The good accounts file names a region (EMEA) that does not exist yet.
MAPPINGS = {"accounts": identity_mapping("accounts").replace(create_missing=["regions"])}


def run(kind: str, user, **kwargs):
    path = GOOD / f"{kind}.csv"
    kwargs.setdefault("mapping", MAPPINGS.get(kind))
    return file_import(kind=kind, data=path.read_bytes(), filename=path.name, user=user, **kwargs)


def test_people_creates_users_teams_regions_and_managers(crm):
    report = run("people", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (3, 1, 0)
    carol = User.objects.get(email="carol@example.com")
    dan = User.objects.get(email="dan@example.com")
    west = Team.objects.get(name="Sales West")
    assert (carol.first_name, carol.last_name, carol.role) == ("Carol", "King", Role.REP)
    assert carol.team == west and dan.team == west and dan.role == Role.MANAGER
    assert west.manager == dan, "the manager named in the file runs the team"
    assert west.region == Region.objects.get(code="EMEA")
    assert carol.hired_on == dt.date(2024, 2, 1)
    assert not carol.has_usable_password()
    crm.ada.refresh_from_db()
    assert crm.ada.title == "Senior Account Executive"


def test_stages_upsert_by_name(crm):
    report = run("stages", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (2, 1, 0)
    assert Stage.objects.get(name="Proposal").probability == Decimal("45.50")
    crm.prospecting.refresh_from_db()
    assert crm.prospecting.probability == Decimal("20.00")


def test_accounts_create_and_update(crm):
    report = run("accounts", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (2, 1, 0)
    crm.acme.refresh_from_db()
    assert (crm.acme.name, crm.acme.segment) == ("Acme Corporation", "smb")
    hooli = Account.objects.get(external_id="ACC-11")
    assert hooli.region == Region.objects.get(code="EMEA")
    assert Account.objects.get(external_id="ACC-10").country == "US"


def test_accounts_unknown_region_is_an_error_unless_allowed(crm):
    before = table_state()
    report = run("accounts", crm.admin, mapping=identity_mapping("accounts"))
    # EMEA does not exist, and the default mapping may not create regions for accounts
    assert not report.ok
    assert [(e.line, e.field) for e in report.errors] == [(3, "region")]
    assert "unknown region 'EMEA'" in report.errors[0].message
    assert table_state() == before


def test_products(crm):
    report = run("products", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (2, 1, 0)
    assert Product.objects.get(external_id="PRD-11").is_active is False
    crm.platform.refresh_from_db()
    assert crm.platform.family == "Core"


def test_opportunities_create_with_history(crm):
    report = run("opportunities", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (4, 0, 0)
    won = Opportunity.objects.get(external_id="OPP-2")
    assert (won.account, won.owner, won.product) == (crm.globex, crm.bob, crm.analytics)
    assert won.forecast_category == "closed" and won.currency == "EUR"
    lost = Opportunity.objects.get(external_id="OPP-3")
    assert lost.forecast_category == "omitted" and lost.lost_reason == "Budget"
    assert lost.product is None
    formula = Opportunity.objects.get(external_id="OPP-4")
    assert formula.name == '=HYPERLINK("http://x")', "a formula is data, stored as text"
    assert formula.currency == "USD" and formula.forecast_category == "pipeline"
    rows = OpportunityHistory.objects.filter(opportunity__external_id__startswith="OPP-")
    assert (
        sorted(rows.values_list("changed_fields", "source", "changed_by"))
        == [("created", "import", crm.admin.pk)] * 4
    )


def test_quotas(crm):
    report = run("quotas", crm.admin)
    assert report.ok, report.errors
    assert (report.created, report.updated, report.unchanged) == (3, 0, 0)
    bob = Quota.objects.get(rep=crm.bob)
    assert bob.amount == Decimal("45000.50") and bob.currency == settings.BASE_CURRENCY
    assert bob.period.name == "2025-02" and bob.set_by == crm.admin
    assert Quota.objects.get(team=crm.east).amount == Decimal("150000.00")


def test_subscriptions(crm):
    report = run("subscriptions", crm.admin)
    assert report.ok, report.errors
    assert report.created == 2
    sub = Subscription.objects.get(external_id="SUB-2")
    assert (sub.account, sub.product, sub.mrr) == (crm.globex, crm.analytics, Decimal("300.25"))
    assert sub.end_date == dt.date(2025, 6, 1)
    assert Subscription.objects.get(external_id="SUB-1").end_date is None


def test_nps(crm):
    report = run("nps", crm.admin)
    assert report.ok, report.errors
    assert report.created == 3
    assert NpsResponse.objects.get(external_id="NPS-2").comment == "-too slow"
    assert NpsResponse.objects.get(contact_email="anon@globex.test").external_id == ""


def test_exchange_rates(crm):
    report = run("exchange_rates", crm.admin)
    assert report.ok, report.errors
    assert report.created == 3
    gbp = ExchangeRate.objects.get(currency="GBP")
    assert gbp.base_currency == settings.BASE_CURRENCY and gbp.rate == Decimal("1.27")


ALL_KINDS = [
    "people",
    "stages",
    "accounts",
    "products",
    "opportunities",
    "quotas",
    "subscriptions",
    "nps",
    "exchange_rates",
]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_importing_the_same_file_twice_creates_nothing_new(crm, kind):
    # given a file imported once
    first = run(kind, crm.admin)
    assert first.ok, first.errors
    before = table_state()
    # when it is imported again
    second = run(kind, crm.admin)
    # then every row is unchanged and no table has a new or changed row
    assert second.ok, second.errors
    assert (second.created, second.updated) == (0, 0)
    assert second.unchanged == first.rows
    assert table_state() == before


def test_stages_may_swap_their_order(crm):
    # given two stages swapping their order and a new stage taking a third one's place
    rows = (
        "name,order,outcome,probability\nProspecting,2,open,10\nNegotiation,1,open,60\n"
        "Won,5,won,100\nVerbal,3,open,90\n"
    )
    report = file_import(kind="stages", data=rows.encode(), filename="swap.csv", user=crm.admin)
    # then the whole change is written
    assert report.ok, report.errors
    assert (report.created, report.updated) == (1, 3)
    orders = dict(Stage.objects.values_list("name", "order"))
    assert orders == {"Prospecting": 2, "Negotiation": 1, "Verbal": 3, "Won": 5, "Lost": 4}


def test_a_conflict_only_the_database_sees_is_an_error_not_a_crash(crm, monkeypatch):
    # given a write that the database refuses (as a concurrent writer could cause)
    from django.db import IntegrityError

    from apps.imports import writers

    def refuse(*args, **kwargs):
        raise IntegrityError('duplicate key value violates unique constraint "x"\nDETAIL: ...')

    monkeypatch.setattr(writers, "create_new_refs", refuse)
    before = table_state()
    report = run("stages", crm.admin)
    # then the import reports it and writes nothing
    assert not report.ok
    assert report.errors[0].message == (
        'the database refused the import: duplicate key value violates unique constraint "x"'
    )
    assert table_state() == before
