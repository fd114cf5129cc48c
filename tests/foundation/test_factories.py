"""The shared factories make valid rows: other suites build on them, so a factory that
quietly broke a rule would make their tests prove nothing."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.test import override_settings

from apps.crm.models import ForecastCategory, OpportunityHistory, Stage
from apps.org.models import Role, Team
from apps.performance.models import PerformanceReview
from apps.quotas.models import FiscalPeriod
from tests import factories as f

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("factory", list(f.MODEL_FACTORIES.values()), ids=lambda fa: fa.__name__)
def test_every_factory_makes_a_row_that_passes_model_validation(factory):
    first, second = factory(), factory()
    for obj in (first, second):
        obj.full_clean()  # field validators, uniqueness and every Meta constraint
    assert first.pk != second.pk


def test_money_is_decimal():
    for obj, field in [
        (f.OpportunityFactory(), "amount"),
        (f.QuotaFactory(), "amount"),
        (f.SubscriptionFactory(), "mrr"),
        (f.ExchangeRateFactory(), "rate"),
    ]:
        assert isinstance(getattr(obj, field), Decimal), f"{type(obj).__name__}.{field}"


def test_opportunity_factory_goes_through_the_service():
    opp = f.OpportunityFactory(changed_at=dt.datetime(2025, 1, 15, tzinfo=dt.UTC))
    (row,) = OpportunityHistory.objects.filter(opportunity=opp)
    assert row.changed_fields == "created"
    assert opp.forecast_category == ForecastCategory.PIPELINE


def test_stage_traits_respect_the_outcome_rules():
    won, lost = f.StageFactory(won=True), f.StageFactory(lost=True)
    assert (won.outcome, won.probability) == (Stage.Outcome.WON, Decimal("100"))
    assert (lost.outcome, lost.probability) == (Stage.Outcome.LOST, Decimal("0"))
    assert f.OpportunityFactory(stage=won).forecast_category == ForecastCategory.CLOSED


def test_org_factories_build_a_tree_below_one_company():
    manager = f.ManagerFactory()
    rep = f.RepFactory(team=manager.team)
    assert manager.role == Role.MANAGER
    assert manager.team.manager == manager
    assert rep.team.parent.kind == Team.Kind.COMPANY
    assert Team.objects.filter(kind=Team.Kind.COMPANY).count() == 1
    assert f.ExecutiveFactory().role == Role.EXECUTIVE
    assert f.RevOpsAdminFactory().role == Role.REVOPS_ADMIN
    assert rep.check_password(f.PASSWORD)


def test_quota_factory_for_a_team_has_no_rep():
    quota = f.QuotaFactory(for_team=True)
    assert quota.rep is None
    assert quota.team is not None
    assert quota.period.kind == FiscalPeriod.Kind.MONTH


def test_fiscal_period_factory_follows_the_configured_calendar():
    with override_settings(FISCAL_YEAR_START_MONTH=4):
        q1 = f.FiscalPeriodFactory(day=dt.date(2024, 5, 10), period_kind="quarter")
        assert (q1.name, q1.start_date, q1.end_date) == (
            "2025-Q1",
            dt.date(2024, 4, 1),
            dt.date(2024, 6, 30),
        )
        assert q1.fiscal_start_month == 4
        # the same period twice is the same row
        assert f.FiscalPeriodFactory(day=dt.date(2024, 6, 1), period_kind="quarter") == q1


@pytest.mark.parametrize("trait", ["submitted", "acknowledged"])
def test_review_traits_satisfy_the_status_constraints(trait):
    review = f.PerformanceReviewFactory(**{trait: True})
    review.full_clean()
    assert review.status == trait
    assert review.submitted_at is not None
    assert (review.acknowledged_at is not None) == (
        review.status == PerformanceReview.Status.ACKNOWLEDGED
    )
