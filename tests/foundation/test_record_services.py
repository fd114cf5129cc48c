"""The domain write services for records without a workflow: accounts, products and
stages (apps.crm.services) and subscriptions and NPS answers (apps.customers.services)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.core.errors import ApplicationError
from apps.crm import services as crm_services
from apps.crm.models import Account, Product
from apps.customers import services as customer_services
from apps.customers.models import NpsResponse, Subscription
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(monkeypatch):
    """The KPI rollup notifications the customer services send after commit."""
    calls: list[tuple[str, dict]] = []
    import apps.kpis.services as kpi_services

    monkeypatch.setattr(
        kpi_services,
        "rollups_subscription_changed",
        lambda **kw: calls.append(("subscriptions", kw)),
    )
    monkeypatch.setattr(kpi_services, "rollups_nps_changed", lambda **kw: calls.append(("nps", kw)))
    return calls


def test_reference_create_validates_the_whole_record():
    region = factories.RegionFactory()
    factories.AccountFactory(external_id="ACC-1", region=region)

    with pytest.raises(ValidationError) as excinfo:
        crm_services.reference_record_create(
            model=Account,
            data={"external_id": "ACC-1", "name": "Twin", "segment": "smb", "region": region},
        )

    assert "external_id" in excinfo.value.message_dict
    assert Account.objects.count() == 1


def test_reference_delete_says_who_still_refers():
    deal = factories.OpportunityFactory()

    with pytest.raises(ApplicationError, match="1 opportunities still refer to it"):
        crm_services.reference_record_delete(record=deal.account)

    assert Account.objects.filter(pk=deal.account_id).exists()


def test_each_service_refuses_the_other_domains_records():
    with pytest.raises(ApplicationError, match="Subscription records are not written"):
        crm_services.reference_record_create(model=Subscription, data={})
    with pytest.raises(ApplicationError, match="Product records are not written"):
        customer_services.customer_record_create(model=Product, data={})


def test_subscription_update_queues_the_months_before_and_after(
    queued, django_capture_on_commit_callbacks
):
    sub = factories.SubscriptionFactory(start_date=dt.date(2025, 1, 1), end_date=None)
    queued.clear()

    with django_capture_on_commit_callbacks(execute=True):
        customer_services.customer_record_update(
            record=sub, changes={"start_date": dt.date(2025, 3, 1), "mrr": Decimal("50")}
        )

    assert queued == [
        ("subscriptions", {"start_date": dt.date(2025, 1, 1), "end_date": None}),
        ("subscriptions", {"start_date": dt.date(2025, 3, 1), "end_date": None}),
    ]
    sub.refresh_from_db()
    assert sub.mrr == Decimal("50.00")


def test_nps_create_and_delete_queue_its_month(queued, django_capture_on_commit_callbacks):
    account = factories.AccountFactory()

    with django_capture_on_commit_callbacks(execute=True):
        answer = customer_services.customer_record_create(
            model=NpsResponse,
            data={
                "external_id": "NPS-1",
                "account": account,
                "score": 3,
                "responded_on": dt.date(2025, 5, 9),
            },
        )
    with django_capture_on_commit_callbacks(execute=True):
        customer_services.customer_record_delete(record=answer)

    assert queued == [
        ("nps", {"responded_on": dt.date(2025, 5, 9)}),
        ("nps", {"responded_on": dt.date(2025, 5, 9)}),
    ]
    assert not NpsResponse.objects.exists()


def test_a_bad_update_changes_nothing(queued, django_capture_on_commit_callbacks):
    sub = factories.SubscriptionFactory(mrr=Decimal("100.00"))
    queued.clear()

    with (
        django_capture_on_commit_callbacks(execute=True),
        pytest.raises(ValidationError) as excinfo,
    ):
        customer_services.customer_record_update(record=sub, changes={"mrr": Decimal("-1")})

    assert excinfo.value.messages == ["MRR cannot be negative."]
    sub.refresh_from_db()
    assert sub.mrr == Decimal("100.00")
    assert queued == []
