"""Hand-built fixtures for the KPI tests: a small organisation, pipeline stages, accounts,
and helpers that write deals, quotas, subscriptions and NPS answers through the same
services the app uses (so history rows exist as in production)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from itertools import count

import pytest
from django.core.cache import cache

from apps.core.models import ExchangeRate
from apps.crm.models import Account, Opportunity, Product, Stage
from apps.crm.services import opportunity_create, opportunity_update
from apps.customers.models import NpsResponse, Subscription
from apps.org.models import Region, Role, Team, User
from apps.quotas.models import FiscalPeriod
from apps.quotas.services import fiscal_periods_ensure, quota_set

_ids = count(1)


def at(day: date, hour: int = 12) -> datetime:
    """A moment on ``day`` (UTC, the test TIME_ZONE)."""
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@dataclass
class World:
    company: Team
    east: Team
    west: Team
    east_sub: Team
    cso: User
    manager_east: User
    rep_a: User
    rep_b: User
    rep_c: User
    stages: dict[str, Stage]
    na: Region
    eu: Region
    product_x: Product
    product_y: Product
    accounts: dict[str, Account] = field(default_factory=dict)

    def account(self, name: str, *, region: Region | None = None, segment: str = "smb") -> Account:
        if name not in self.accounts:
            self.accounts[name] = Account.objects.create(
                external_id=f"acc-{name}", name=name, region=region or self.na, segment=segment
            )
        return self.accounts[name]

    def deal(
        self,
        *,
        owner: User,
        amount: str | Decimal,
        stage: str,
        created: date,
        close: date,
        account: str = "Acme",
        currency: str = "USD",
        product: Product | None = None,
        deal_type: str = "new",
        region: Region | None = None,
        segment: str = "smb",
        when: datetime | None = None,
    ) -> Opportunity:
        n = next(_ids)
        return opportunity_create(
            external_id=f"opp-{n}",
            name=f"Deal {n}",
            account=self.account(account, region=region, segment=segment),
            owner=owner,
            amount=Decimal(amount),
            currency=currency,
            stage=self.stages[stage],
            created_date=created,
            close_date=close,
            product=product,
            deal_type=deal_type,
            changed_at=when or at(created),
        )

    def move(self, deal: Opportunity, *, when: datetime, **changes) -> Opportunity:
        if "stage" in changes and isinstance(changes["stage"], str):
            changes["stage"] = self.stages[changes["stage"]]
        opp, _ = opportunity_update(opportunity=deal, changed_at=when, **changes)
        return opp

    def quota(self, month: str, amount: str, *, rep: User | None = None, team: Team | None = None):
        period = FiscalPeriod.objects.get(name=month)
        return quota_set(period=period, amount=Decimal(amount), set_by=self.cso, rep=rep, team=team)

    def subscription(
        self,
        account: str,
        mrr: str,
        start: date,
        end: date | None = None,
        *,
        currency: str = "USD",
        **kw,
    ) -> Subscription:
        return Subscription.objects.create(
            external_id=f"sub-{next(_ids)}",
            account=self.account(account, **kw),
            mrr=Decimal(mrr),
            currency=currency,
            start_date=start,
            end_date=end,
        )

    def nps(self, account: str, score: int, day: date, **kw) -> NpsResponse:
        return NpsResponse.objects.create(
            account=self.account(account, **kw), score=score, responded_on=day
        )

    def rate(self, currency: str, day: date, rate: str) -> ExchangeRate:
        return ExchangeRate.objects.create(
            currency=currency, base_currency="USD", rate_date=day, rate=Decimal(rate)
        )


def build_world() -> World:
    na = Region.objects.create(code="NA", name="North America")
    eu = Region.objects.create(code="EU", name="Europe")
    company = Team.objects.create(name="Company", kind=Team.Kind.COMPANY)
    east = Team.objects.create(name="East", kind=Team.Kind.REGION, parent=company, region=na)
    west = Team.objects.create(name="West", kind=Team.Kind.REGION, parent=company, region=eu)
    east_sub = Team.objects.create(name="East SMB", kind=Team.Kind.TEAM, parent=east)
    cso = User.objects.create_user("cso", password="pw", role=Role.EXECUTIVE, team=company)
    manager = User.objects.create_user("mgr", password="pw", role=Role.MANAGER, team=east)
    east.manager = manager
    east.save()
    rep_a = User.objects.create_user("rep_a", password="pw", role=Role.REP, team=east)
    rep_b = User.objects.create_user("rep_b", password="pw", role=Role.REP, team=east_sub)
    rep_c = User.objects.create_user("rep_c", password="pw", role=Role.REP, team=west)
    stages = {
        "prospect": Stage.objects.create(name="Prospect", order=1, probability=Decimal("10")),
        "qualify": Stage.objects.create(name="Qualify", order=2, probability=Decimal("25")),
        "propose": Stage.objects.create(name="Propose", order=3, probability=Decimal("60")),
        "won": Stage.objects.create(
            name="Won", order=4, outcome=Stage.Outcome.WON, probability=Decimal("100")
        ),
        "lost": Stage.objects.create(
            name="Lost", order=5, outcome=Stage.Outcome.LOST, probability=Decimal("0")
        ),
    }
    px = Product.objects.create(external_id="px", name="Product X")
    py = Product.objects.create(external_id="py", name="Product Y")
    fiscal_periods_ensure(first_year=2022, last_year=2026)
    return World(
        company, east, west, east_sub, cso, manager, rep_a, rep_b, rep_c, stages, na, eu, px, py
    )


@pytest.fixture(autouse=True)
def _own_pending_key(monkeypatch, request):
    """A coalescing key of this test's own: parallel test processes share Redis. (A test
    with a real worker keeps the real key, which the worker process clears.)"""
    from apps.kpis import services

    key = services.UPDATE_PENDING_KEY
    if request.node.get_closest_marker("worker") is None:
        key = f"kpis:test-pending:{uuid.uuid4().hex}"
        monkeypatch.setattr(services, "UPDATE_PENDING_KEY", key)
    cache.delete(key)
    yield
    cache.delete(key)


@pytest.fixture
def world(db) -> World:
    return build_world()
