"""Subscriptions: rules, visibility, defaults per role, the settings pages, unsubscribe,
the admin resend action and the demo seed (no charts rendered here)."""

from __future__ import annotations

from datetime import date

import pytest
from django.core import signing

from apps.core.errors import ApplicationError
from apps.digests import render, selectors, services
from apps.digests.demo import digests_demo_seed
from apps.digests.models import Delivery, DigestAlert, DigestSubscription
from apps.org.models import Role, User

pytestmark = pytest.mark.django_db


def _create(book, actor, **overrides):
    args = {
        "actor": actor,
        "recipient": actor,
        "team": None,
        "frequency": "weekly",
        "weekday": 0,
        "hour": 7,
        "time_zone": "UTC",
        "sections": ["headline"],
        **overrides,
    }
    return services.subscription_create(**args)


def _fields(exc: pytest.ExceptionInfo) -> dict:
    return exc.value.extra["fields"]


# --- Rules ---------------------------------------------------------------------------------


def test_an_executive_subscribes_to_the_company_and_sections_are_put_in_order(book):
    sub = _create(book, book.cso, sections=["customers", "headline"], weekday=4, day_of_month=9)
    assert sub.sections == ["headline", "customers"]
    assert (sub.weekday, sub.day_of_month) == (4, None)
    assert sub.schedule_text == "Weekly on Friday at 07:00 (UTC)"
    assert sub.owner == book.cso and sub.scope_label == "Company"


def test_a_manager_may_not_subscribe_to_the_company_or_another_team(book):
    with pytest.raises(ApplicationError) as exc:
        _create(book, book.manager_east)
    assert "may not see the whole company" in _fields(exc)["team"]
    with pytest.raises(ApplicationError) as exc:
        _create(book, book.manager_east, team=book.west)
    assert "may not see this team" in _fields(exc)["team"]
    # their own team and the teams below it are fine
    assert _create(book, book.manager_east, team=book.east_sub).team == book.east_sub
    assert DigestSubscription.objects.count() == 1


def test_a_rep_sees_no_scope_to_subscribe_to(book):
    with pytest.raises(ApplicationError, match="may not see the whole company"):
        _create(book, book.rep_a)
    assert selectors.subscription_defaults(user=book.rep_a) is None
    assert selectors.scope_choices(user=book.rep_a) == []


def test_only_those_who_manage_all_subscribe_someone_else(book):
    with pytest.raises(ApplicationError) as exc:
        _create(book, book.manager_east, recipient=book.cso, team=book.east)
    assert "only subscribe yourself" in _fields(exc)["recipient"]
    # the CSO may subscribe the manager, but only to what the manager sees
    with pytest.raises(ApplicationError, match="Mgr may not see the whole company"):
        _create(book, book.cso, recipient=book.manager_east)
    sub = _create(book, book.cso, recipient=book.manager_east, team=book.east)
    assert (sub.owner, sub.recipient) == (book.cso, book.manager_east)


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"recipient": None}, "recipient", "Choose a user or enter an external address"),
        (
            {"recipient": None, "recipient_email": "x@example.com"},
            "recipient_name",
            "name",
        ),
        ({"frequency": "weekly", "weekday": None}, "weekday", "weekday"),
        ({"frequency": "monthly", "day_of_month": 32}, "day_of_month", "1 to 31"),
        ({"hour": 24}, "hour", "0 to 23"),
        ({"time_zone": "Moon/Base"}, "time_zone", "Unknown time zone"),
        ({"sections": []}, "sections", "at least one section"),
        ({"sections": ["gossip"]}, "sections", "Unknown section"),
    ],
)
def test_bad_input_is_refused_with_the_field_and_writes_nothing(book, overrides, field, message):
    with pytest.raises(ApplicationError) as exc:
        _create(book, book.cso, **overrides)
    assert message in _fields(exc)[field]
    assert not DigestSubscription.objects.exists()


def test_company_wide_and_manager_sections_fit_their_scope_and_recipient(book):
    with pytest.raises(ApplicationError, match="company-wide figures"):
        _create(book, book.cso, team=book.east, sections=["customers"])
    with pytest.raises(ApplicationError, match="not to external addresses"):
        _create(
            book,
            book.cso,
            recipient=None,
            recipient_email="cfo@example.com",
            recipient_name="CFO",
            sections=["manager"],
        )


def test_updates_and_deletes_are_for_owner_recipient_and_executives(book):
    sub = _create(book, book.manager_east, team=book.east)
    with pytest.raises(ApplicationError, match="may not change"):
        services.subscription_update(actor=book.rep_a, subscription=sub, hour=9)
    services.subscription_update(actor=book.cso, subscription=sub, hour=9, frequency="daily")
    sub.refresh_from_db()
    assert (sub.hour, sub.frequency, sub.weekday) == (9, "daily", None)
    with pytest.raises(ApplicationError, match="Unknown field"):
        services.subscription_update(actor=book.cso, subscription=sub, owner=book.cso)
    with pytest.raises(ApplicationError, match="may not delete"):
        services.subscription_delete(actor=book.rep_a, subscription=sub)
    services.subscription_delete(actor=book.manager_east, subscription=sub)
    assert not DigestSubscription.objects.exists()


def test_defaults_follow_the_role(book, settings):
    settings.TIME_ZONE = "UTC"
    cso = selectors.subscription_defaults(user=book.cso)
    manager = selectors.subscription_defaults(user=book.manager_east)
    revops = User.objects.create_user("ops", email="ops@acme.example", role=Role.REVOPS_ADMIN)
    assert cso["team"] is None and "customers" in cso["sections"] and "manager" in cso["sections"]
    assert manager["team"] == book.east
    assert "customers" not in manager["sections"] and "manager" in manager["sections"]
    assert "manager" not in selectors.subscription_defaults(user=revops)["sections"]
    assert (cso["frequency"], cso["weekday"], cso["hour"]) == ("weekly", 0, 7)
    # the defaults are valid subscriptions
    services.subscription_create(actor=book.manager_east, recipient=book.manager_east, **manager)


def test_visible_subscriptions_follow_the_policy(book, django_assert_num_queries):
    own = _create(book, book.manager_east, team=book.east)
    other = _create(book, book.cso)
    with django_assert_num_queries(1):
        mine = list(selectors.subscriptions_visible(user=book.manager_east))
    assert mine == [own]
    assert list(selectors.subscriptions_visible(user=book.cso)) == [own, other]
    assert list(selectors.subscriptions_visible(user=book.rep_a)) == []


# --- Pages ---------------------------------------------------------------------------------


def test_settings_page_lists_own_subscriptions(book, client, django_assert_max_num_queries):
    _create(book, book.manager_east, team=book.east)
    _create(book, book.cso)
    client.force_login(book.manager_east)
    with django_assert_max_num_queries(12):
        response = client.get("/digests/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Weekly on Monday at 07:00 (UTC)" in body
    assert body.count("/preview/") == 1  # the CSO's subscription is not listed


def test_create_edit_and_delete_through_the_pages(book, client):
    client.force_login(book.manager_east)
    form = client.get("/digests/new/")
    assert form.status_code == 200
    assert f'<option value="{book.east.pk}" selected>' in form.content.decode()
    data = {
        "recipient": book.manager_east.pk,
        "team": book.east.pk,
        "frequency": "monthly",
        "day_of_month": "31",
        "hour": "8",
        "time_zone": "Europe/Berlin",
        "sections": ["headline", "deals"],
        "send_digest": "on",
        "is_active": "on",
    }
    created = client.post("/digests/new/", data)
    sub = DigestSubscription.objects.get()
    assert created.status_code == 302 and created["Location"] == f"/digests/{sub.pk}/"
    assert (sub.frequency, sub.day_of_month, sub.time_zone) == ("monthly", 31, "Europe/Berlin")
    # a scope outside the manager's is a field error and changes nothing
    bad = client.post(f"/digests/{sub.pk}/", {**data, "team": book.west.pk})
    assert bad.status_code == 400
    assert "Select a valid choice" in bad.content.decode()
    # an alert is added on the edit page
    client.post(
        f"/digests/{sub.pk}/alerts/",
        {"kpi": "attainment", "operator": "below", "threshold": "90", "period_kind": "quarter"},
    )
    assert DigestAlert.objects.get().subscription == sub
    # someone else's subscription does not exist for a rep
    client.force_login(book.rep_a)
    assert client.get(f"/digests/{sub.pk}/").status_code == 404
    assert client.post(f"/digests/{sub.pk}/delete/").status_code == 404
    client.force_login(book.manager_east)
    assert client.post(f"/digests/{sub.pk}/delete/").status_code == 302
    assert not DigestSubscription.objects.exists()


def test_service_errors_show_as_field_errors(book, client):
    client.force_login(book.cso)
    response = client.post(
        "/digests/new/",
        {
            "recipient": "",
            "recipient_email": "",
            "team": "",
            "frequency": "weekly",
            "weekday": "0",
            "hour": "7",
            "time_zone": "UTC",
            "sections": ["headline"],
        },
    )
    assert response.status_code == 400
    assert "Choose a user or enter an external address." in response.content.decode()
    assert not DigestSubscription.objects.exists()


# --- Unsubscribe and resend ----------------------------------------------------------------


def test_unsubscribe_tokens_are_signed_and_bound_to_the_address(book, client):
    sub = _create(book, book.cso)
    token = render.unsubscribe_token(sub)
    assert render.unsubscribe_read(token) == (sub.pk, "cso@acme.example")
    forged = signing.dumps({"s": sub.pk, "e": "cso@acme.example"}, salt="other")
    assert client.post(f"/digests/unsubscribe/{forged}/").status_code == 400
    assert client.get("/digests/unsubscribe/garbage/").status_code == 400
    # the address changed since the mail: the old link no longer unsubscribes
    book.cso.email = "new@acme.example"
    book.cso.save()
    assert client.post(f"/digests/unsubscribe/{token}/").status_code == 400
    sub.refresh_from_db()
    assert sub.is_active


def test_the_admin_resends_failed_deliveries(
    book, admin_client, django_capture_on_commit_callbacks, mailoutbox
):
    sub = _create(book, book.cso, sections=["deals"])
    delivery = Delivery.objects.create(
        subscription=sub,
        period_key="weekly:2024-09-30",
        scheduled_for="2024-09-30T07:00:00Z",
        to_email="cso@acme.example",
        status="failed",
        attempts=4,
        error="Attempt 4: SMTP error",
        payload={
            "subject": "Company digest",
            "text": "t",
            "html": "<p>h</p>",
            "images": [],
            "headers": {},
        },
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/digests/delivery/",
            {"action": "resend", "_selected_action": [delivery.pk]},
        )
    assert response.status_code == 302
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == ("sent", 1)
    assert [m.subject for m in mailoutbox] == ["Company digest"]


# --- Demo ----------------------------------------------------------------------------------


def test_demo_seed_gives_executives_and_managers_their_defaults_once(book):
    first = digests_demo_seed(as_of=date(2024, 9, 30))
    again = digests_demo_seed(as_of=date(2024, 9, 30))
    assert first == {"digest_subscriptions": 2, "digest_alerts": 0, "skipped": 0}
    assert again["digest_subscriptions"] == 0 and again["skipped"] == 2
    cso = DigestSubscription.objects.get(recipient=book.cso)
    assert cso.team is None and cso.created_at.date() == date(2024, 9, 30)
    assert DigestSubscription.objects.get(recipient=book.manager_east).team == book.east


def test_demo_seed_gives_the_cso_alerts(book):
    book.cso.title = "CSO"
    book.cso.save()
    assert digests_demo_seed(as_of=date(2024, 9, 30))["digest_alerts"] == 2
    assert sorted(DigestAlert.objects.values_list("kpi", flat=True)) == [
        "attainment",
        "pipeline_coverage",
    ]


# --- Preview -------------------------------------------------------------------------------


def test_preview_shows_the_mail_as_it_would_be_sent(book, client, settings):
    settings.SITE_URL = "http://digests.test"
    sub = _create(book, book.manager_east, team=book.east, sections=["deals", "manager"])
    client.force_login(book.manager_east)
    page = client.get(f"/digests/{sub.pk}/preview/", {"as_of": "2024-09-30"})
    assert page.status_code == 200
    body = page.content.decode()
    assert "East digest · 2024-Q3 to 30 Sep 2024" in body
    assert "srcdoc=" in body and "Overdue reviews (4)" in body
    alone = client.get(f"/digests/{sub.pk}/preview/mail/", {"as_of": "2024-09-30"})
    assert alone.status_code == 200 and alone.content.startswith(b"<!doctype html>")
    assert client.get(f"/digests/{sub.pk}/preview/", {"as_of": "30/09/2024"}).status_code == 400
    # a rep may not open it; a manager who no longer sees the scope gets the reason
    client.force_login(book.rep_a)
    assert client.get(f"/digests/{sub.pk}/preview/").status_code == 404
    book.east.manager = None
    book.east.save()
    client.force_login(book.manager_east)
    denied = client.get(f"/digests/{sub.pk}/preview/")
    assert denied.status_code == 400
    assert "may not see this digest" in denied.content.decode()


def test_the_admin_applies_the_same_rules(book, admin_client):
    # given the admin adding a digest of West for East's manager (who may not see West)
    data = {
        "owner": book.cso.pk,
        "recipient": book.manager_east.pk,
        "recipient_email": "",
        "recipient_name": "",
        "team": book.west.pk,
        "frequency": "weekly",
        "weekday": "0",
        "hour": "7",
        "time_zone": "UTC",
        "sections": '["headline"]',
        "send_digest": "on",
        "is_active": "on",
        "alerts-TOTAL_FORMS": "0",
        "alerts-INITIAL_FORMS": "0",
    }
    response = admin_client.post("/admin/digests/digestsubscription/add/", data)
    # then the form says why and nothing is saved
    assert response.status_code == 200
    assert "Mgr may not see this team." in response.content.decode()
    assert not DigestSubscription.objects.exists()
    # and East is accepted
    response = admin_client.post(
        "/admin/digests/digestsubscription/add/", {**data, "team": book.east.pk}
    )
    assert response.status_code == 302
    assert DigestSubscription.objects.get().team == book.east
