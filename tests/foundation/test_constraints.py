"""The database itself refuses impossible rows, whatever code path writes them.

Each test writes straight through the ORM (bypassing services and forms) inside a savepoint
and expects an IntegrityError; the savepoint keeps the test's transaction usable on Postgres.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.crm.models import Account, Opportunity, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.org.models import Team, User
from apps.performance.models import ReviewRating
from apps.quotas.models import Quota
from tests.factories import (
    AccountFactory,
    CompanyFactory,
    CompetencyFactory,
    FiscalPeriodFactory,
    NpsResponseFactory,
    OpportunityFactory,
    PerformanceReviewFactory,
    ProductFactory,
    QuotaFactory,
    RepFactory,
    SubscriptionFactory,
    TeamFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def refused() -> Iterator[None]:
    """Expect the statement inside to be rejected by the database."""
    with pytest.raises(IntegrityError), transaction.atomic():
        yield


# --- money is never negative --------------------------------------------------------------
def test_opportunity_amount_cannot_be_negative():
    # given a valid deal
    opp = OpportunityFactory(amount=Decimal("100.00"))
    # when its amount is set below zero behind the services' back, then the database refuses
    with refused():
        Opportunity.objects.filter(pk=opp.pk).update(amount=Decimal("-0.01"))
    # and a zero amount is fine
    Opportunity.objects.filter(pk=opp.pk).update(amount=Decimal("0"))
    assert Opportunity.objects.get(pk=opp.pk).amount == Decimal("0.00")


def test_quota_amount_cannot_be_negative():
    quota = QuotaFactory()
    with refused():
        Quota.objects.filter(pk=quota.pk).update(amount=Decimal("-1"))


def test_subscription_mrr_cannot_be_negative():
    sub = SubscriptionFactory()
    with refused():
        Subscription.objects.filter(pk=sub.pk).update(mrr=Decimal("-5.00"))


# --- scores -------------------------------------------------------------------------------
@pytest.mark.parametrize("score", [0, 10])
def test_nps_score_bounds_are_accepted(score):
    assert NpsResponseFactory(score=score).score == score


def test_nps_score_above_10_is_refused():
    response = NpsResponseFactory(score=10)
    with refused():
        NpsResponse.objects.filter(pk=response.pk).update(score=11)


@pytest.mark.parametrize("score", [0, 6])
def test_rating_outside_1_to_5_is_refused(score):
    review = PerformanceReviewFactory()
    competency = CompetencyFactory()
    with refused():
        ReviewRating.objects.create(review=review, competency=competency, score=score)


def test_rating_1_and_5_are_accepted():
    review = PerformanceReviewFactory()
    low = ReviewRating.objects.create(review=review, competency=CompetencyFactory(), score=1)
    high = ReviewRating.objects.create(review=review, competency=CompetencyFactory(), score=5)
    assert (low.score, high.score) == (1, 5)


# --- external ids are unique --------------------------------------------------------------
def test_opportunity_external_id_is_unique():
    first = OpportunityFactory(external_id="OPP-1")
    second = OpportunityFactory(external_id="OPP-2")
    with refused():
        Opportunity.objects.filter(pk=second.pk).update(external_id=first.external_id)


def test_account_external_id_is_unique():
    AccountFactory(external_id="ACC-1")
    with refused():
        Account.objects.create(external_id="ACC-1", name="Another")


def test_product_external_id_is_unique():
    ProductFactory(external_id="PRD-1")
    with refused():
        Product.objects.create(external_id="PRD-1", name="Another product")


def test_subscription_external_id_is_unique():
    existing = SubscriptionFactory(external_id="SUB-1")
    with refused():
        Subscription.objects.create(
            external_id="SUB-1",
            account=existing.account,
            mrr=Decimal("10.00"),
            currency="USD",
            start_date=dt.date(2025, 1, 1),
        )


def test_nps_external_id_is_unique_unless_blank():
    existing = NpsResponseFactory(external_id="NPS-1")
    # given two responses without an external id, both are kept
    NpsResponseFactory(external_id="", account=existing.account)
    NpsResponseFactory(external_id="", account=existing.account)
    assert NpsResponse.objects.filter(external_id="").count() == 2
    # but a second "NPS-1" is refused
    with refused():
        NpsResponse.objects.create(
            external_id="NPS-1", account=existing.account, score=5, responded_on=dt.date.today()
        )


# --- quotas -------------------------------------------------------------------------------
def _quota(**kwargs) -> Quota:
    defaults = {
        "amount": Decimal("1000.00"),
        "currency": "USD",
        "set_at": timezone.now(),
    }
    return Quota.objects.create(**{**defaults, **kwargs})


def test_quota_for_both_rep_and_team_is_refused():
    with refused():
        _quota(period=FiscalPeriodFactory(), rep=RepFactory(), team=TeamFactory())


def test_quota_for_neither_rep_nor_team_is_refused():
    with refused():
        _quota(period=FiscalPeriodFactory())


def test_second_quota_for_same_rep_and_period_is_refused():
    quota = QuotaFactory()
    with refused():
        _quota(period=quota.period, rep=quota.rep)


def test_second_quota_for_same_team_and_period_is_refused():
    quota = QuotaFactory(for_team=True)
    with refused():
        _quota(period=quota.period, team=quota.team)


def test_same_rep_in_another_period_and_team_beside_rep_are_fine():
    quota = QuotaFactory()
    _quota(period=FiscalPeriodFactory(), rep=quota.rep)
    _quota(period=quota.period, team=quota.rep.team)
    assert Quota.objects.count() == 3


# --- stages -------------------------------------------------------------------------------
def test_won_stage_must_be_100_percent():
    with refused():
        Stage.objects.create(name="Won-ish", order=1, outcome="won", probability=Decimal("90"))


def test_lost_stage_must_be_0_percent():
    with refused():
        Stage.objects.create(name="Lost-ish", order=2, outcome="lost", probability=Decimal("5"))


def test_probability_above_100_is_refused():
    with refused():
        Stage.objects.create(name="Over", order=3, outcome="open", probability=Decimal("101"))


def test_valid_closed_stages_are_accepted():
    Stage.objects.create(name="Won", order=1, outcome="won", probability=Decimal("100"))
    Stage.objects.create(name="Lost", order=2, outcome="lost", probability=Decimal("0"))
    assert Stage.objects.count() == 2


# --- dates --------------------------------------------------------------------------------
def test_subscription_must_end_after_it_starts():
    sub = SubscriptionFactory(start_date=dt.date(2025, 3, 1))
    # an end on the start day would be a subscription never billed: refused
    with refused():
        Subscription.objects.filter(pk=sub.pk).update(end_date=dt.date(2025, 3, 1))
    with refused():
        Subscription.objects.filter(pk=sub.pk).update(end_date=dt.date(2025, 2, 1))
    Subscription.objects.filter(pk=sub.pk).update(end_date=dt.date(2025, 3, 2))


def test_opportunity_cannot_close_before_it_was_created():
    opp = OpportunityFactory(created_date=dt.date(2025, 2, 10), close_date=dt.date(2025, 3, 1))
    with refused():
        Opportunity.objects.filter(pk=opp.pk).update(close_date=dt.date(2025, 2, 9))
    # closing on the day it was created is fine
    Opportunity.objects.filter(pk=opp.pk).update(close_date=dt.date(2025, 2, 10))


# --- people and teams ---------------------------------------------------------------------
def test_user_email_is_unique_case_insensitively():
    UserFactory(email="Ada.Lovelace@Example.com")
    with refused():
        User.objects.create(username="ada2", email="ada.lovelace@example.COM")


def test_many_users_may_have_no_email():
    UserFactory(email="")
    UserFactory(email="")
    assert User.objects.filter(email="").count() == 2


def test_team_root_must_be_a_company():
    with refused():
        Team.objects.create(name="Floating team", kind=Team.Kind.TEAM, parent=None)


def test_company_cannot_hang_below_another_team():
    company = CompanyFactory()
    with refused():
        Team.objects.create(name="Subsidiary", kind=Team.Kind.COMPANY, parent=company)


def test_team_names_are_unique_within_a_parent():
    team = TeamFactory(name="Enterprise East")
    with refused():
        Team.objects.create(name="Enterprise East", kind=Team.Kind.TEAM, parent=team.parent)
