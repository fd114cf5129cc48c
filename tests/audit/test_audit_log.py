"""The security audit log: which actions are recorded, and the executives' search page."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from apps.audit.models import AuditEvent
from apps.core.errors import ApplicationError
from apps.performance.services import review_create
from apps.quotas.services import quota_set
from tests.factories import (
    PASSWORD,
    ExecutiveFactory,
    FiscalPeriodFactory,
    ManagerFactory,
    RepFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db
Action = AuditEvent.Action


def _login(client, username, password, ip="10.1.1.1"):
    return client.post(
        reverse("login"), {"username": username, "password": password}, REMOTE_ADDR=ip
    )


def actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


def test_log_in_failure_lockout_and_log_out_are_recorded(client):
    rep = RepFactory()

    _login(client, rep.username, PASSWORD)
    client.post(reverse("logout"))
    for _ in range(5):
        _login(client, rep.username, "nope", ip="10.9.9.9")

    recorded = actions()
    assert recorded[:2] == [Action.LOGIN, Action.LOGOUT]
    assert sorted(recorded[2:]) == sorted([*[Action.LOGIN_FAILED] * 5, Action.LOCKED_OUT])
    first = AuditEvent.objects.order_by("id").first()
    assert (first.actor, first.actor_username, first.ip_address) == (rep, rep.username, "10.1.1.1")
    failed = AuditEvent.objects.filter(action=Action.LOGIN_FAILED).first()
    assert failed.actor is None and failed.actor_username == rep.username
    assert failed.ip_address == "10.9.9.9"


def test_a_refused_page_and_a_refused_api_call_are_recorded(client):
    rep = RepFactory()
    client.force_login(rep)

    assert client.get(reverse("audit:index")).status_code == 403
    api = client.post("/api/v1/products/", {"external_id": "P", "name": "P"}, format="json")
    assert api.status_code == 403

    events = list(AuditEvent.objects.filter(action=Action.PERMISSION_DENIED).order_by("id"))
    assert [e.summary for e in events] == [
        "Refused GET /audit/",
        "Refused POST /api/v1/products/",
    ]
    assert {e.actor for e in events} == {rep}


def test_a_direct_quota_change_is_one_event_and_an_unchanged_one_none():
    boss, rep = ExecutiveFactory(), RepFactory()
    month = FiscalPeriodFactory(day=dt.date(2025, 3, 1))

    quota_set(period=month, amount=Decimal("1000"), set_by=boss, rep=rep)
    quota_set(period=month, amount=Decimal("1000"), set_by=boss, rep=rep)  # no change
    quota_set(period=month, amount=Decimal("1500"), set_by=boss, rep=rep)

    events = list(AuditEvent.objects.filter(action=Action.QUOTA_CHANGED).order_by("id"))
    assert [e.summary for e in events] == [
        f"Quota of {rep} for {month.name}: none -> 1000.00 USD",
        f"Quota of {rep} for {month.name}: 1000.00 -> 1500.00 USD",
    ]
    assert events[0].actor == boss and events[0].target_type == "quotas.Quota"


def test_a_refused_change_leaves_no_event():
    month = FiscalPeriodFactory(day=dt.date(2025, 3, 1))
    with pytest.raises(ApplicationError):
        quota_set(period=month, amount=Decimal("-5"), set_by=ExecutiveFactory(), rep=RepFactory())
    assert not AuditEvent.objects.exists()


def test_reviews_are_recorded():
    team = TeamFactory()
    manager = ManagerFactory(team=team)
    team.manager = manager
    team.save()
    rep = RepFactory(team=team)
    quarter = FiscalPeriodFactory(day=dt.date(2025, 1, 1), period_kind="quarter")

    review = review_create(rep=rep, period=quarter, reviewer=manager)

    event = AuditEvent.objects.get(action=Action.REVIEW_CHANGED)
    assert event.summary == f"Started the {quarter.name} review of {rep}"
    assert (event.actor, event.target_id) == (manager, str(review.pk))


def test_api_token_page_creates_then_replaces_a_token(client):
    rep = RepFactory()
    client.force_login(rep)

    first = client.post(reverse("api:token"))
    key = Token.objects.get(user=rep).key
    second = client.post(reverse("api:token"))

    assert key in first.content.decode()
    new_key = Token.objects.get(user=rep).key
    assert new_key != key and new_key in second.content.decode()
    assert key not in client.get(reverse("api:token")).content.decode()  # shown once
    assert [e.summary for e in AuditEvent.objects.filter(action=Action.API_TOKEN)] == [
        f"Replaced the API token of {rep.username}",
        f"Created the API token of {rep.username}",
    ]
    api = client.__class__()
    assert api.get("/api/v1/teams/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 403
    ok = api.get("/api/v1/teams/", HTTP_AUTHORIZATION=f"Token {new_key}")
    assert ok.status_code == 200


@pytest.fixture
def logged(db):
    boss = ExecutiveFactory(username="boss")
    rep = RepFactory(username="rita")
    from apps.audit.services import audit_record

    for day, action, who, text in [
        (dt.datetime(2025, 5, 1, 9, tzinfo=dt.UTC), Action.LOGIN, rep, "Logged in"),
        (
            dt.datetime(2025, 5, 2, 9, tzinfo=dt.UTC),
            Action.PERMISSION_DENIED,
            rep,
            "Refused GET /audit/",
        ),
        (dt.datetime(2025, 5, 3, 9, tzinfo=dt.UTC), Action.QUOTA_CHANGED, boss, "Quota of Rita"),
    ]:
        event = audit_record(action=action, summary=text, actor=who)
        AuditEvent.objects.filter(pk=event.pk).update(at=day)
    return boss


def test_executives_search_the_log(client, logged, django_assert_max_num_queries):
    client.force_login(logged)  # itself a "Logged in" event of boss, dated now
    url = reverse("audit:index")

    with django_assert_max_num_queries(6):
        page = client.get(url)
    by_actor = client.get(url, {"actor": "rita"}).content.decode()
    by_action = client.get(url, {"action": Action.QUOTA_CHANGED}).content.decode()
    by_text = client.get(url, {"q": "/audit/"}).content.decode()
    by_day = client.get(url, {"start": "2025-05-02", "end": "2025-05-02"}).content.decode()

    assert page.status_code == 200 and "4 events" in page.content.decode()
    assert "2 events" in by_actor and "Quota of Rita" not in by_actor
    assert "1 event" in by_action and "Quota of Rita" in by_action
    assert "1 event" in by_text and "Refused GET /audit/" in by_text
    assert "1 event" in by_day and "Refused GET /audit/" in by_day


def test_a_bad_search_shows_a_field_error(client, logged):
    client.force_login(logged)
    response = client.get(reverse("audit:index"), {"start": "2025-05-03", "end": "2025-05-01"})
    assert "The end date is before the start date." in response.content.decode()
    assert "0 events" in response.content.decode()


def test_the_log_downloads_as_csv_with_formulas_neutralised(client, logged):
    from apps.audit.services import audit_record

    audit_record(action=Action.LOGIN_FAILED, summary="=HYPERLINK(1)", actor_username="=x")
    client.force_login(logged)

    response = client.get(reverse("audit:index"), {"format": "csv"})

    body = response.content.decode().lstrip("\ufeff")
    assert response["Content-Type"].startswith("text/csv")
    assert body.splitlines()[0].startswith("At,Action,User,Summary")
    assert "'=HYPERLINK(1)" in body and "\n=" not in body


@pytest.mark.parametrize("factory", [ManagerFactory, RepFactory])
def test_only_executives_read_the_log(client, factory):
    client.force_login(factory())
    assert client.get(reverse("audit:index")).status_code == 403
    assert client.get(reverse("audit:index"), {"format": "csv"}).status_code == 403


def test_an_import_that_writes_is_recorded_and_a_refused_one_is_not():
    from apps.imports.services import rows_import
    from tests.factories import RevOpsAdminFactory

    admin = RevOpsAdminFactory()
    good = rows_import(
        kind="products",
        rows=[{"external_id": "P-1", "name": "Insights"}, {"external_id": "P-2", "name": "Flow"}],
        user=admin,
        source="api",
    )
    bad = rows_import(kind="products", rows=[{"external_id": "", "name": ""}], user=admin)

    assert good.ok and not bad.ok
    event = AuditEvent.objects.get(action=Action.IMPORT)
    assert event.summary == (
        "Imported 2 products row(s) through the API: 2 created, 0 updated, 0 unchanged"
    )
    assert event.actor == admin
