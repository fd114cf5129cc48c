"""Digests end to end through a real SMTP server: the mail's parts, charts, links and
numbers; exactly-once; SMTP failures, retries and resend; visibility; alerts."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.crm.models import Opportunity
from apps.dashboards import formatting
from apps.digests import services
from apps.digests.models import Delivery, DigestAlert
from apps.digests.tasks import delivery_send_task
from apps.kpis.registry import kpi_get
from apps.kpis.services import rollups_rebuild
from tests.digests.conftest import AS_OF_NOW, SITE, backdate, free_port
from tests.digests.helpers import html_of, links, metric_line, parts, png_decode, text_of

pytestmark = pytest.mark.django_db

TEAM_SECTIONS = ["headline", "pipeline", "deals", "attainment", "manager"]
HEADLINE = {
    # KPI: what the East manager's digest must show for 2024-Q3, computed by hand
    "bookings": "$4.0K",
    "quota": "$4.5K",
    "attainment": "88.9%",
    "open_pipeline": "$14.0K",
    "pipeline_coverage": "28.0\u00d7",
    "win_rate": "66.7%",
    "avg_deal_size": "$2.0K",
    "new_logos": "1",
}


def _manager_digest(book, **overrides):
    args = {
        "actor": book.manager_east,
        "recipient": book.manager_east,
        "team": book.east,
        "frequency": "weekly",
        "weekday": 0,
        "hour": 7,
        "time_zone": "UTC",
        "sections": TEAM_SECTIONS,
        **overrides,
    }
    sub = services.subscription_create(**args)
    backdate(sub)
    return sub


def _dispatch(capture, now=AS_OF_NOW):
    with capture(execute=True):
        return services.digests_dispatch(now=now)


def test_a_digest_arrives_with_text_html_charts_links_and_the_api_numbers(
    book, inbox, client, django_capture_on_commit_callbacks
):
    # given a weekly digest for the East manager, due Monday 30 Sep 2024 07:00 UTC
    sub = _manager_digest(book)

    # when the dispatcher runs at 07:05
    result = _dispatch(django_capture_on_commit_callbacks)

    # then exactly one mail reached the SMTP server, and the delivery is recorded as sent
    assert len(result.digests) == 1
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.period_key) == (
        "sent",
        1,
        "weekly:2024-09-30",
    )
    assert delivery.sent_at is not None
    assert inbox.envelopes[0][1] == ["mgr@acme.example"]
    assert mail["Subject"].strip() == "East digest · 2024-Q3 to 30 Sep 2024"

    # the structure: related( alternative(text, html), png... )
    found = parts(mail)
    assert mail.get_content_type() == "multipart/related"
    assert len(found["multipart/alternative"]) == 1
    assert len(found["text/plain"]) == 1 and len(found["text/html"]) == 1
    html, text = html_of(mail), text_of(mail)

    # inline images: valid PNGs, each referenced by its content id in the HTML
    images = found["image/png"]
    assert len(images) == 3  # headline, pipeline waterfall, attainment
    for image in images:
        cid = image["Content-ID"].strip("<>")
        assert f'src="cid:{cid}"' in html
        assert image.get_content_disposition() == "inline"
        width, height = png_decode(image.get_content())
        assert width == 1120  # 560 px at scale 2
        assert height >= 440

    # one-click unsubscribe headers
    unsubscribe = mail["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.startswith(f"{SITE}/digests/unsubscribe/")
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # every number of the headline equals the KPI API's, as the recipient sees it
    client.force_login(book.manager_east)
    for name, expected in HEADLINE.items():
        response = client.get(f"/api/v1/kpis/{name}/", {"period": "2024-Q3", "team": book.east.pk})
        assert response.status_code == 200
        value = response.json()["value"]
        api_shown = formatting.kpi_display(
            None if value is None else Decimal(str(value)), kpi_get(name).unit, "USD"
        )
        label = kpi_get(name).label
        assert metric_line(text, label) == api_shown == expected, name
        assert f">{expected}</td>" in html

    # every link into the app works for the recipient
    found_links = links(html, SITE)
    assert any(
        link.startswith("/dashboards/overview/?period=2024-Q3&team=") for link in found_links
    )
    assert any(
        "/dashboards/pipeline/" in link and "since=2024-09-23" in link for link in found_links
    )
    for link in set(found_links):
        if "/unsubscribe/" in link:
            continue
        assert client.get(link).status_code == 200, link
    # the text part carries the same links
    for link in set(found_links):
        assert f"{SITE}{link}" in text or "/unsubscribe/" in link
    # and the unsubscribe link works without a login (GET only asks)
    client.logout()
    path = unsubscribe.removeprefix(SITE)
    assert client.get(path).status_code == 200
    sub.refresh_from_db()
    assert sub.is_active
    # the one-click POST a mail client makes switches the subscription off
    assert client.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    sub.refresh_from_db()
    assert not sub.is_active


def test_the_recipient_never_sees_data_outside_their_scope(
    book, inbox, django_capture_on_commit_callbacks
):
    # given the East manager's digest with the deal lists
    _manager_digest(book, sections=["deals", "attainment", "manager"])
    # when it is sent
    _dispatch(django_capture_on_commit_callbacks)
    text = text_of(inbox.messages[0])
    # then West's rep, team, deals and amount appear nowhere
    west_deals = list(Opportunity.objects.filter(owner=book.rep_c).values_list("name", flat=True))
    assert west_deals
    for outside in ("West", "rep_c", "$550", *(f"{name} |" for name in west_deals)):
        assert outside not in text
    # and East's own deals do
    for deal in Opportunity.objects.filter(
        owner__in=[book.rep_a, book.rep_b], close_date__gte=date(2024, 7, 1)
    ).exclude(stage__outcome="open"):
        assert f"{deal.name} | " in text
    assert "| Rep A | $3.0K" in text
    assert "| rep_b | $2.0K" in text
    assert "East SMB | $0 | $1.5K | 0.0%" in text
    assert "Rep A | $4.0K | $3.0K | 133.3%" in text


def test_a_scope_lost_since_subscribing_fails_the_delivery_and_sends_nothing(
    book, inbox, django_capture_on_commit_callbacks
):
    # given a digest of East for its manager, who then stops running East
    sub = _manager_digest(book, sections=["deals"])
    book.east.manager = None
    book.east.save()
    # when the dispatcher runs
    _dispatch(django_capture_on_commit_callbacks)
    # then nothing is sent and the delivery says why
    delivery = Delivery.objects.get(subscription=sub)
    assert delivery.status == "failed"
    assert "may not see this team" in delivery.error
    assert inbox.messages == []


def test_an_external_address_is_bounded_by_its_owner(
    book, inbox, django_capture_on_commit_callbacks
):
    # given an external address added by the East manager
    sub = services.subscription_create(
        actor=book.manager_east,
        recipient_email="Board@Example.com",
        recipient_name="The Board",
        team=book.east,
        frequency="daily",
        hour=7,
        time_zone="UTC",
        sections=["deals"],
    )
    backdate(sub)
    # when it is sent
    _dispatch(django_capture_on_commit_callbacks)
    # then it reaches the address with East's deals only
    assert inbox.envelopes[0][1] == ["board@example.com"]
    text = text_of(inbox.messages[0])
    assert "| Rep A | $3.0K" in text and "rep_c" not in text
    # and the owner cannot widen it to the company
    with pytest.raises(Exception, match="may not see the whole company"):
        services.subscription_update(actor=book.manager_east, subscription=sub, team=None)


def test_dispatching_twice_and_sending_twice_mails_once(
    book, inbox, django_capture_on_commit_callbacks
):
    # given two due subscriptions
    a = _manager_digest(book, sections=["deals"])
    b = services.subscription_create(
        actor=book.cso,
        recipient=book.cso,
        team=None,
        frequency="daily",
        hour=6,
        time_zone="Europe/Berlin",  # 06:00 CEST = 04:00 UTC
        sections=["deals"],
    )
    backdate(b)
    # when the dispatcher runs twice, later again within the same periods, and a send
    # task is delivered twice
    first = _dispatch(django_capture_on_commit_callbacks)
    second = _dispatch(django_capture_on_commit_callbacks)
    third = _dispatch(django_capture_on_commit_callbacks, now=AS_OF_NOW + timedelta(hours=3))
    for delivery in Delivery.objects.all():
        assert delivery_send_task.delay(delivery.pk).get() == "skipped"
    # then one mail per subscription and period
    assert len(first.digests) == 2 and second.digests == [] and third.digests == []
    assert len(inbox.messages) == 2
    assert sorted(r[0] for _, r in inbox.envelopes) == ["cso@acme.example", "mgr@acme.example"]
    assert set(Delivery.objects.values_list("subscription_id", "period_key")) == {
        (a.pk, "weekly:2024-09-30"),
        (b.pk, "daily:2024-09-30"),
    }
    # and the next day's occurrence is a new period for the daily one only
    nxt = _dispatch(django_capture_on_commit_callbacks, now=AS_OF_NOW + timedelta(days=1))
    assert [Delivery.objects.get(pk=pk).period_key for pk in nxt.digests] == ["daily:2024-10-01"]
    assert len(inbox.messages) == 3


def test_smtp_down_retries_then_fails_keeps_the_mail_and_resend_works(
    book, smtp_settings, smtp_server, django_capture_on_commit_callbacks
):
    # given an SMTP server that nobody listens on
    smtp_settings.EMAIL_PORT = free_port()
    smtp_settings.DIGESTS_MAX_ATTEMPTS = 3
    sub = _manager_digest(book, sections=["deals"])
    # when the digest is due
    _dispatch(django_capture_on_commit_callbacks)
    # then it was tried three times and is visibly failed, with the rendered mail kept
    delivery = Delivery.objects.get(subscription=sub)
    assert delivery.status == "failed"
    assert delivery.attempts == 3
    assert "Attempt 3: SMTP error" in delivery.error
    assert "ConnectionRefusedError" in delivery.error
    assert delivery.payload["subject"] == "East digest · 2024-Q3 to 30 Sep 2024"
    # and the dispatcher does not send it again by itself
    assert _dispatch(django_capture_on_commit_callbacks).digests == []

    # when the server is back and someone resends it
    inbox, port = smtp_server
    smtp_settings.EMAIL_PORT = port
    with django_capture_on_commit_callbacks(execute=True):
        services.delivery_resend(actor=book.manager_east, delivery=delivery)
    # then exactly that mail arrives
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.error) == ("sent", 1, "")
    assert len(inbox.messages) == 1
    assert inbox.messages[0]["Subject"].strip() == delivery.payload["subject"]
    # a sent delivery cannot be resent
    with pytest.raises(Exception, match="Only a failed delivery"):
        services.delivery_resend(actor=book.manager_east, delivery=delivery)


def test_retry_delays_back_off(settings):
    settings.DIGESTS_RETRY_BACKOFF_SECONDS = 60
    assert [services.retry_delay(n) for n in (1, 2, 3, 4, 10)] == [60, 120, 240, 480, 3600]


def test_a_delivery_interrupted_while_sending_is_failed_not_resent(
    book, inbox, django_capture_on_commit_callbacks
):
    # given a delivery a dead worker left "sending" 20 minutes ago, and one never picked up
    sub = _manager_digest(book, sections=["deals"])
    now = timezone.now()
    stuck = Delivery.objects.create(
        subscription=sub,
        period_key="weekly:2024-09-23",
        scheduled_for=now,
        to_email="mgr@acme.example",
        status="sending",
        attempts=1,
        last_attempt_at=now - timedelta(minutes=20),
    )
    forgotten = Delivery.objects.create(
        subscription=sub,
        period_key="weekly:2024-09-16",
        scheduled_for=datetime(2024, 9, 16, 7, tzinfo=UTC),
        to_email="mgr@acme.example",
    )
    Delivery.objects.filter(pk=forgotten.pk).update(created_at=now - timedelta(minutes=20))
    # when the dispatcher runs
    result = _dispatch(django_capture_on_commit_callbacks, now=now)
    # then the stuck one is failed (it may have gone out) and the forgotten one is sent
    stuck.refresh_from_db()
    forgotten.refresh_from_db()
    assert (result.interrupted, result.requeued) == (1, 1)
    assert stuck.status == "failed" and "Interrupted" in stuck.error
    assert forgotten.status == "sent"
    assert [m["Subject"].strip() for m in inbox.messages] == [
        "East digest · 2024-Q3 to 16 Sep 2024"
    ]


def test_old_sent_mails_drop_their_rendering_but_keep_the_log(
    book, django_capture_on_commit_callbacks
):
    sub = _manager_digest(book, sections=["deals"])
    now = timezone.now()
    rows = [
        Delivery.objects.create(
            subscription=sub,
            period_key=f"weekly:{day}",
            scheduled_for=now,
            to_email="mgr@acme.example",
            status="sent",
            sent_at=now - timedelta(days=days),
            payload={"subject": "s"},
        )
        for day, days in (("2024-08-05", 31), ("2024-08-12", 29))
    ]
    result = _dispatch(django_capture_on_commit_callbacks, now=now)
    assert result.purged == 1
    assert [Delivery.objects.get(pk=r.pk).payload for r in rows] == [None, {"subject": "s"}]


def test_send_me_a_test_goes_to_the_requester(
    book, inbox, client, django_capture_on_commit_callbacks
):
    # given the CSO's view of a subscription of the East manager
    sub = _manager_digest(book, sections=["deals"])
    client.force_login(book.cso)
    # when the CSO asks for a test
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/digests/{sub.pk}/test/")
    # then it goes to the CSO, marked as a test, and is logged as a test delivery
    assert response.status_code == 302
    assert inbox.envelopes[0][1] == ["cso@acme.example"]
    assert inbox.messages[0]["Subject"].strip().startswith("[Test] East digest · ")
    assert Delivery.objects.get().kind == "test"


def test_an_alert_mails_once_per_crossing_and_rearms(
    book, inbox, django_capture_on_commit_callbacks
):
    # given an alert on East's coverage (28.0x in 2024-Q3) below 30x
    sub = _manager_digest(book, sections=["deals"], send_digest=False)
    alert = services.alert_create(
        actor=book.manager_east,
        subscription=sub,
        kpi="pipeline_coverage",
        operator="below",
        threshold=Decimal("30"),
    )
    # when the dispatcher runs twice
    first = _dispatch(django_capture_on_commit_callbacks)
    second = _dispatch(django_capture_on_commit_callbacks)
    # then one alert mail, with the value and threshold, and no digest (alerts only)
    assert (len(first.alerts), len(second.alerts), first.digests) == (1, 0, [])
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert (
        mail["Subject"].strip()
        == "Alert: Pipeline coverage falls below 30.0\u00d7 · East · 2024-Q3"
    )
    assert "East, 2024-Q3: 28.0\u00d7 (threshold 30.0\u00d7)" in text_of(mail)
    alert.refresh_from_db()
    assert (alert.state, alert.crossings, alert.last_value) == ("triggered", 1, Decimal("28"))

    # when coverage rises to 32.0x (a new open deal of 2000 for rep_a): the alert re-arms
    book.deal(
        owner=book.rep_a,
        amount="2000",
        stage="qualify",
        created=date(2024, 9, 1),
        close=date(2024, 9, 20),
    )
    rollups_rebuild()
    rearm = _dispatch(django_capture_on_commit_callbacks)
    alert.refresh_from_db()
    assert (rearm.rearmed, alert.state, alert.last_value) == (1, "armed", Decimal("32"))
    assert len(inbox.messages) == 1
    # and crossing again (threshold raised to 35x) mails once more
    DigestAlert.objects.filter(pk=alert.pk).update(threshold=Decimal("35"))
    again = _dispatch(django_capture_on_commit_callbacks)
    assert len(again.alerts) == 1
    assert len(inbox.messages) == 2
    assert Delivery.objects.get(pk=again.alerts[0]).period_key == f"alert:{alert.pk}:2"


def test_percent_alerts_use_percent_thresholds(book, inbox, django_capture_on_commit_callbacks):
    # attainment of East is 88.9 %: below 90 fires, below 88 does not
    sub = _manager_digest(book, sections=["deals"], send_digest=False)
    for threshold in ("90", "88"):
        services.alert_create(
            actor=book.manager_east,
            subscription=sub,
            kpi="attainment",
            operator="below",
            threshold=Decimal(threshold),
        )
    result = _dispatch(django_capture_on_commit_callbacks)
    assert len(result.alerts) == 1
    assert re.search(r"Quota attainment falls below 90\.0%", str(inbox.messages[0]["Subject"]))


def test_customer_alerts_need_the_company_scope(book):
    sub = _manager_digest(book, sections=["deals"])
    with pytest.raises(Exception, match="company-wide"):
        services.alert_create(
            actor=book.manager_east, subscription=sub, kpi="nrr", operator="below", threshold=1
        )
