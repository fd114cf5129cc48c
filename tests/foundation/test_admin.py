"""The admin: every page answers, search works, deals and quotas are saved through their
services, history is read-only, and list pages cost a fixed number of queries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.messages import get_messages
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.core.errors import ApplicationError
from apps.crm.models import ForecastCategory, Opportunity, OpportunityHistory
from apps.org.models import User
from apps.performance.models import PerformanceReview
from apps.quotas.models import FiscalPeriod, Quota
from tests import factories as f

pytestmark = pytest.mark.django_db

FACTORIES = f.MODEL_FACTORIES


def admin_url(model: type, view: str, *args: Any) -> str:
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def registered() -> list[tuple[type, admin.ModelAdmin]]:
    return sorted(admin.site._registry.items(), key=lambda item: item[0]._meta.label)


ADMIN_PARAMS = [
    pytest.param(model, model_admin, id=model._meta.label) for model, model_admin in registered()
]


def _as_post_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "on" if value else None
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return "" if value is None else str(value)


def change_form_data(response) -> dict[str, Any]:
    """What the browser would post back unchanged from an admin add/change page: the
    main form, every inline's management form and every inline form."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        forms.append(inline.formset.management_form)
        forms.extend(inline.formset.forms)
    data: dict[str, Any] = {}
    for form in forms:
        for bound in form:
            value = _as_post_value(bound.value())
            if value is not None:
                data[bound.html_name] = value
    return data


# --- every page answers -------------------------------------------------------------------
@pytest.fixture
def one_of_everything(db) -> None:
    for factory in FACTORIES.values():
        factory()


def test_every_foundation_model_is_in_the_admin():
    assert [m._meta.label for m in FACTORIES if m not in admin.site._registry] == []


def test_every_registered_foundation_model_has_a_factory():
    # a model registered without a factory would be missed by the list-page checks below
    foundation_apps = {"core", "org", "crm", "quotas", "performance", "customers"}
    missing = [
        model._meta.label
        for model, _ in registered()
        if model._meta.app_label in foundation_apps and model not in FACTORIES
    ]
    assert missing == []


@pytest.mark.parametrize(("model", "model_admin"), ADMIN_PARAMS)
def test_changelist_add_and_change_pages_answer(
    superuser_client, superuser, one_of_everything, model, model_admin
):
    request = RequestFactory().get("/")
    request.user = superuser

    assert superuser_client.get(admin_url(model, "changelist")).status_code == 200

    expected_add = 200 if model_admin.has_add_permission(request) else 403
    assert superuser_client.get(admin_url(model, "add")).status_code == expected_add

    obj = model._default_manager.first()
    if obj is not None:
        assert superuser_client.get(admin_url(model, "change", obj.pk)).status_code == 200


@pytest.mark.parametrize(("model", "model_admin"), ADMIN_PARAMS)
def test_search_answers(superuser_client, one_of_everything, model, model_admin):
    # a search field naming a missing relation or field would be a 500 here
    assert model_admin.search_fields, f"{model._meta.label} admin has no search"
    response = superuser_client.get(admin_url(model, "changelist"), {"q": "1 a"})
    assert response.status_code == 200


def test_opportunity_search_finds_by_account_name(superuser_client):
    wanted = f.OpportunityFactory(account=f.AccountFactory(name="Initech"))
    f.OpportunityFactory(account=f.AccountFactory(name="Globex"))
    response = superuser_client.get(admin_url(Opportunity, "changelist"), {"q": "initech"})
    assert list(response.context["cl"].result_list) == [wanted]


def test_user_search_and_role_filter(superuser_client):
    manager = f.ManagerFactory(last_name="Lovelace")
    f.RepFactory(last_name="Lovelace")
    response = superuser_client.get(
        admin_url(User, "changelist"), {"q": "lovelace", "role__exact": "manager"}
    )
    assert list(response.context["cl"].result_list) == [manager]


# --- opportunities are saved through the services -----------------------------------------
def test_changing_an_opportunity_in_the_admin_writes_admin_history(superuser_client, superuser):
    opp = f.OpportunityFactory(amount=Decimal("1000.00"))
    url = admin_url(Opportunity, "change", opp.pk)
    data = change_form_data(superuser_client.get(url))
    data["amount"] = "2500.00"

    response = superuser_client.post(url, data)

    assert response.status_code == 302, response.context and response.context["errors"]
    opp.refresh_from_db()
    assert opp.amount == Decimal("2500.00")
    last = OpportunityHistory.objects.filter(opportunity=opp).order_by("id").last()
    assert (last.changed_fields, last.source, last.changed_by) == ("amount", "admin", superuser)
    assert last.amount == Decimal("2500.00")
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 2


def test_winning_in_the_admin_closes_the_forecast(superuser_client):
    opp = f.OpportunityFactory()
    won = f.StageFactory(won=True)
    url = admin_url(Opportunity, "change", opp.pk)
    data = change_form_data(superuser_client.get(url))
    data.update(stage=str(won.pk), forecast_category=ForecastCategory.COMMIT)

    assert superuser_client.post(url, data).status_code == 302

    opp.refresh_from_db()
    assert (opp.stage, opp.forecast_category) == (won, ForecastCategory.CLOSED)
    last = OpportunityHistory.objects.filter(opportunity=opp).order_by("id").last()
    assert last.changed_fields == "stage,forecast_category"


def test_renaming_in_the_admin_writes_no_history(superuser_client):
    opp = f.OpportunityFactory()
    url = admin_url(Opportunity, "change", opp.pk)
    data = change_form_data(superuser_client.get(url))
    data["name"] = "Renamed in admin"

    assert superuser_client.post(url, data).status_code == 302

    opp.refresh_from_db()
    assert opp.name == "Renamed in admin"
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1


def test_adding_an_opportunity_in_the_admin_writes_the_created_row(superuser_client, superuser):
    account, owner, stage = f.AccountFactory(), f.RepFactory(), f.StageFactory()
    data = {
        "external_id": "ADM-1",
        "name": "Admin deal",
        "account": account.pk,
        "owner": owner.pk,
        "product": "",
        "stage": stage.pk,
        "forecast_category": ForecastCategory.BEST_CASE,
        "amount": "750.00",
        "currency": "EUR",
        "deal_type": "new",
        "source": "",
        "created_date": "2025-02-01",
        "close_date": "2025-04-30",
        "lost_reason": "",
        "history-TOTAL_FORMS": "0",
        "history-INITIAL_FORMS": "0",
    }

    response = superuser_client.post(admin_url(Opportunity, "add"), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    opp = Opportunity.objects.get(external_id="ADM-1")
    assert (opp.amount, opp.currency, opp.forecast_category) == (
        Decimal("750.00"),
        "EUR",
        ForecastCategory.BEST_CASE,
    )
    (row,) = OpportunityHistory.objects.filter(opportunity=opp)
    assert (row.changed_fields, row.source, row.changed_by) == ("created", "admin", superuser)


def test_bad_opportunity_in_the_admin_is_a_form_error_and_changes_nothing(superuser_client):
    opp = f.OpportunityFactory(created_date=dt.date(2025, 1, 15), amount=Decimal("10.00"))
    url = admin_url(Opportunity, "change", opp.pk)
    data = change_form_data(superuser_client.get(url))
    data.update(amount="-5.00", close_date="2025-01-01")

    response = superuser_client.post(url, data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    opp.refresh_from_db()
    assert (opp.amount, opp.close_date) == (Decimal("10.00"), dt.date(2025, 3, 31))
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1


def test_service_error_in_the_admin_is_a_message_and_rolls_back(superuser_client, monkeypatch):
    # given a service that writes, then refuses (as a late business rule would)
    opp = f.OpportunityFactory(amount=Decimal("10.00"))
    from apps.crm import admin as crm_admin

    real_update = crm_admin.opportunity_update

    def update_then_refuse(**kwargs):
        real_update(**kwargs)
        raise ApplicationError("Deals in this stage are frozen.")

    monkeypatch.setattr(crm_admin, "opportunity_update", update_then_refuse)
    url = admin_url(Opportunity, "change", opp.pk)
    data = change_form_data(superuser_client.get(url))
    data["amount"] = "99.00"

    # when the admin saves
    response = superuser_client.post(url, data)

    # then the user is sent back with the reason, and nothing was written
    assert response.status_code == 302
    assert response["Location"] == url
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not saved: Deals in this stage are frozen."
    ]
    opp.refresh_from_db()
    assert opp.amount == Decimal("10.00")
    assert OpportunityHistory.objects.filter(opportunity=opp).count() == 1


def test_history_is_shown_inline_and_read_only(superuser_client, superuser):
    opp = f.OpportunityFactory()
    f.OpportunityHistoryFactory(opportunity=opp, changed_fields="close_date")
    response = superuser_client.get(admin_url(Opportunity, "change", opp.pk))
    (inline,) = response.context["inline_admin_formsets"]
    assert inline.formset.queryset.count() == 2
    assert not inline.has_add_permission
    assert not inline.has_change_permission
    assert not inline.has_delete_permission

    row = OpportunityHistory.objects.filter(opportunity=opp).first()
    assert superuser_client.get(admin_url(OpportunityHistory, "add")).status_code == 403
    assert superuser_client.post(admin_url(OpportunityHistory, "delete", row.pk)).status_code == 403
    change = superuser_client.post(
        admin_url(OpportunityHistory, "change", row.pk), {"changed_fields": "tampered"}
    )
    assert change.status_code == 403
    row.refresh_from_db()
    assert row.changed_fields == "created"


# --- quotas are saved through quota_set ---------------------------------------------------
def _quota_post(period: FiscalPeriod, rep: User, amount: str = "30000.00") -> dict[str, Any]:
    return {
        "period": period.pk,
        "rep": rep.pk,
        "team": "",
        "amount": amount,
        "currency": "USD",
        "note": "from admin",
    }


def test_adding_a_quota_in_the_admin_records_who_set_it(superuser_client, superuser):
    period, rep = f.FiscalPeriodFactory(), f.RepFactory()
    response = superuser_client.post(admin_url(Quota, "add"), _quota_post(period, rep))
    assert response.status_code == 302, response.context and response.context["errors"]
    quota = Quota.objects.get(period=period, rep=rep)
    assert (quota.amount, quota.set_by, quota.note) == (
        Decimal("30000.00"),
        superuser,
        "from admin",
    )
    assert quota.set_at is not None


def test_changing_a_quota_in_the_admin_goes_through_quota_set(superuser_client, superuser):
    quota = f.QuotaFactory(amount=Decimal("100.00"), set_by=None)
    url = admin_url(Quota, "change", quota.pk)
    data = change_form_data(superuser_client.get(url))
    assert "period" not in data  # the key of a quota is fixed once set
    data["amount"] = "200.00"
    assert superuser_client.post(url, data).status_code == 302
    quota.refresh_from_db()
    assert (quota.amount, quota.set_by) == (Decimal("200.00"), superuser)
    assert Quota.objects.count() == 1


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": "-1.00"},
        {"period": "quarter"},
        {"team": "team"},
    ],
    ids=["negative", "quarter-period", "rep-and-team"],
)
def test_bad_quota_in_the_admin_is_a_form_error(superuser_client, bad):
    month, rep = f.FiscalPeriodFactory(), f.RepFactory()
    data = _quota_post(month, rep)
    if "amount" in bad:
        data["amount"] = bad["amount"]
    if "period" in bad:
        data["period"] = f.FiscalPeriodFactory(period_kind="quarter").pk
    if "team" in bad:
        data["team"] = rep.team.pk
    response = superuser_client.post(admin_url(Quota, "add"), data)
    assert response.status_code == 200
    assert response.context["adminform"].form.errors
    assert not Quota.objects.exists()


def test_quota_service_error_is_a_message_not_a_500(superuser_client, monkeypatch):
    from apps.quotas import admin as quotas_admin

    real_set = quotas_admin.quota_set

    def set_then_refuse(**kwargs):
        real_set(**kwargs)
        raise ApplicationError("Quotas for this period are locked.")

    monkeypatch.setattr(quotas_admin, "quota_set", set_then_refuse)
    url = admin_url(Quota, "add")
    response = superuser_client.post(url, _quota_post(f.FiscalPeriodFactory(), f.RepFactory()))
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Not saved: Quotas for this period are locked."
    ]
    assert not Quota.objects.exists()


def test_fiscal_periods_are_read_only(superuser_client):
    period = f.FiscalPeriodFactory()
    assert superuser_client.get(admin_url(FiscalPeriod, "add")).status_code == 403
    assert superuser_client.post(admin_url(FiscalPeriod, "delete", period.pk)).status_code == 403
    response = superuser_client.post(
        admin_url(FiscalPeriod, "change", period.pk), {"name": "tampered"}
    )
    assert response.status_code == 403
    period.refresh_from_db()
    assert period.name != "tampered"


def test_reviews_show_their_ratings_inline(superuser_client):
    rating = f.ReviewRatingFactory(score=4)
    response = superuser_client.get(admin_url(PerformanceReview, "change", rating.review.pk))
    (inline,) = response.context["inline_admin_formsets"]
    assert list(inline.formset.queryset) == [rating]


def test_user_admin_edits_role_title_and_team(superuser_client):
    team = f.TeamFactory()
    user = f.UserFactory()
    url = admin_url(User, "change", user.pk)
    data = change_form_data(superuser_client.get(url))
    data.update(role="manager", title="Regional VP", team=str(team.pk))
    response = superuser_client.post(url, data)
    assert response.status_code == 302, response.context and response.context["errors"]
    user.refresh_from_db()
    assert (user.role, user.title, user.team) == ("manager", "Regional VP", team)


def test_user_admin_refuses_a_duplicate_email_in_another_case(superuser_client):
    f.UserFactory(email="ada@example.com")
    user = f.UserFactory(email="other@example.com")
    url = admin_url(User, "change", user.pk)
    data = change_form_data(superuser_client.get(url))
    data["email"] = "ADA@example.com"
    response = superuser_client.post(url, data)
    assert response.status_code == 200
    assert "A user with this email already exists." in str(response.context["errors"])


# --- list pages cost a fixed number of queries --------------------------------------------
def _changelist_queries(client: Client, model: type) -> tuple[int, int]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(admin_url(model, "changelist"))
    assert response.status_code == 200
    return len(captured), response.context["cl"].result_count


def test_opportunity_changelist_queries_do_not_grow_with_rows(superuser_client):
    # every deal has its own account, owner, team, stage and product: the worst case
    f.OpportunityFactory.create_batch(5)
    queries_5, shown = _changelist_queries(superuser_client, Opportunity)
    assert shown == 5

    f.OpportunityFactory.create_batch(45)
    queries_50, shown = _changelist_queries(superuser_client, Opportunity)
    assert shown == 50

    assert queries_50 == queries_5, f"{queries_5} queries for 5 rows, {queries_50} for 50"


def test_opportunity_changelist_query_budget(superuser_client, django_assert_max_num_queries):
    f.OpportunityFactory.create_batch(50)
    # session, user, count, result page, filters (stages, currencies), date hierarchy (2)
    with django_assert_max_num_queries(12):
        superuser_client.get(admin_url(Opportunity, "changelist"))


@pytest.mark.parametrize(
    "model", [m for m in FACTORIES if m is not Opportunity], ids=lambda m: m._meta.label
)
def test_every_changelist_is_free_of_n_plus_one(superuser_client, model):
    factory = FACTORIES[model]
    factory.create_batch(3)
    few, _ = _changelist_queries(superuser_client, model)
    factory.create_batch(12)
    many, _ = _changelist_queries(superuser_client, model)
    assert many == few, f"{model._meta.label}: {few} queries for few rows, {many} for more"
