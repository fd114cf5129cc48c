"""What the sections say (rendered to text without charts): forecast and calls from the
forecasting app, the company-wide customer figures against the KPI API, and how sections a
scope cannot have are left out."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from apps.dashboards import formatting
from apps.digests import render, services
from apps.digests.content import digest_content
from apps.digests.models import Delivery
from apps.forecasting.models import ForecastCall, ForecastValue
from apps.kpis.registry import kpi_get
from apps.kpis.services import rollups_rebuild
from tests.digests.conftest import SITE, backdate
from tests.digests.helpers import metric_line

pytestmark = pytest.mark.django_db
AS_OF = date(2024, 9, 30)


def _text(sub) -> tuple[str, object]:
    content = digest_content(subscription=sub, as_of=AS_OF)
    return render.digest_payload(content)["text"], content


def _sub(book, actor, team, sections):
    sub = services.subscription_create(
        actor=actor,
        recipient=actor,
        team=team,
        frequency="weekly",
        weekday=0,
        hour=7,
        time_zone="UTC",
        sections=sections,
    )
    backdate(sub)
    return sub


def test_forecast_and_calls_come_from_the_forecasting_app(book, settings):
    settings.SITE_URL = SITE
    # given a stored weighted forecast for East in 2024-Q3 and East's call in week 14
    ForecastValue.objects.create(
        scope_key=f"team:{book.east.pk}",
        team=book.east,
        period_name="2024-Q3",
        period_start=date(2024, 7, 1),
        period_end=date(2024, 9, 30),
        method="weighted",
        label="Weighted pipeline",
        expected=Decimal("18000.00"),
        won_to_date=Decimal("4000.00"),
        p10=Decimal("15000.00"),
        p50=Decimal("18000.00"),
        p90=Decimal("21000.00"),
        open_deals=2,
        as_of=AS_OF,
        computed_at=datetime(2024, 9, 30, 3, 15, tzinfo=UTC),
    )
    ForecastCall.objects.create(
        team=book.east,
        submitted_by=book.manager_east,
        period_name="2024-Q3",
        period_start=date(2024, 7, 1),
        period_end=date(2024, 9, 30),
        week=14,
        commit=Decimal("16000.00"),
        best_case=Decimal("20000.00"),
        rollup_commit=Decimal("15000.00"),
        rollup_best_case=Decimal("19000.00"),
        submitted_at=datetime(2024, 9, 30, 6, tzinfo=UTC),
    )
    sub = _sub(book, book.manager_east, book.east, ["forecast", "manager"])
    # when the digest is rendered
    text, content = _text(sub)
    # then the forecast, its range and the call are there, and no call is missing
    assert "== Forecast · 2024-Q3 ==" in text
    assert "Weighted pipeline | $18.0K | $15.0K \u2013 $21.0K | $4.0K" in text
    assert metric_line(text, "Latest call: commit") == "$16.0K"
    assert metric_line(text, "Latest call: best case") == "$20.0K"
    assert "Forecast calls not submitted (0):" in text
    assert f"{SITE}/forecast/?period=2024-Q3&team={book.east.pk}" in text
    assert content.skipped == []


def test_without_a_forecast_the_section_is_left_out_and_said_so(book):
    sub = _sub(book, book.manager_east, book.east, ["forecast", "manager"])
    text, content = _text(sub)
    assert "Forecast ·" not in text
    assert content.skipped == ["Forecast and range"]
    assert "Not shown for this scope or not available yet: Forecast and range." in text
    # East has no call in week 14 of 2024-Q3
    assert "Forecast calls not submitted (1):\n- East | Mgr\n" in text


def test_customer_figures_equal_the_kpi_api(book, client, django_assert_max_num_queries):
    # given Acme paying 1000 a month all year and Beta 500 until 15 August (churned in Q3),
    # and three NPS answers in Q3: 10, 9 (promoters) and 3 (detractor)
    book.subscription("Acme", "1000", date(2024, 1, 1))
    book.subscription("Beta", "500", date(2024, 1, 1), date(2024, 8, 15))
    for score, day in ((10, date(2024, 7, 3)), (9, date(2024, 8, 9)), (3, date(2024, 9, 1))):
        book.nps("Acme", score, day)
    rollups_rebuild()
    sub = _sub(book, book.cso, None, ["customers"])
    # when the CSO's company digest is rendered
    with django_assert_max_num_queries(12):
        content = digest_content(subscription=sub, as_of=AS_OF)
    text = render.digest_payload(content)["text"]
    # then, by hand: closing MRR 1000; NRR = GRR = 1000 / 1500; churn 1 of 2; NPS 2/3 - 1/3
    pinned = {"mrr": "$1.0K", "nrr": "66.7%", "grr": "66.7%", "logo_churn": "50.0%", "nps": "+33"}
    client.force_login(book.cso)
    for name in ("mrr", "nrr", "grr", "logo_churn", "clv", "nps"):
        value = client.get(f"/api/v1/kpis/{name}/", {"period": "2024-Q3"}).json()["value"]
        shown = formatting.kpi_display(
            None if value is None else Decimal(str(value)), kpi_get(name).unit, "USD"
        )
        assert metric_line(text, kpi_get(name).label) == shown
        if name in pinned:
            assert shown == pinned[name]


def test_customer_figures_are_left_out_of_a_team_digest(book):
    # the section cannot be chosen for a team, and a digest read for a team skips it
    sub = _sub(book, book.manager_east, book.east, ["deals"])
    sub.sections = ["customers", "deals"]
    text, content = _text(sub)
    assert "Customers ·" not in text
    assert content.skipped == ["Retention, CLV and NPS"]


def test_external_recipients_get_no_manager_section(book):
    sub = services.subscription_create(
        actor=book.cso,
        recipient_email="advisor@example.com",
        recipient_name="Advisor",
        team=None,
        frequency="daily",
        hour=7,
        time_zone="UTC",
        sections=["deals"],
    )
    sub.sections = ["deals", "manager"]
    text, content = _text(sub)
    assert "Waiting on you" not in text
    assert content.skipped == ["Overdue reviews and forecast calls (managers)"]


def test_pipeline_changes_start_at_the_last_digest(book, settings):
    settings.SITE_URL = SITE
    sub = _sub(book, book.manager_east, book.east, ["pipeline"])
    # the first digest looks one schedule period (a week) back
    first = digest_content(subscription=sub, as_of=AS_OF).blocks[0]
    assert first.title == "Pipeline changes since 23 Sep 2024"
    # after a digest sent on 25 September, it starts on that day
    Delivery.objects.create(
        subscription=sub,
        period_key="test:1",
        kind="digest",
        scheduled_for=datetime(2024, 9, 25, 7, tzinfo=UTC),
        to_email="mgr@acme.example",
        status="sent",
        sent_at=datetime(2024, 9, 25, 7, 1, tzinfo=UTC),
    )
    block = digest_content(
        subscription=sub, as_of=AS_OF, occurrence=datetime(2024, 9, 30, 7, tzinfo=UTC)
    ).blocks[0]
    assert block.title == "Pipeline changes since 25 Sep 2024"
    assert block.url == (
        f"{SITE}/dashboards/pipeline/?period=2024-Q3&team={book.east.pk}&since=2024-09-25"
    )
    # open pipeline closing in Q3 then and now: d5 10000 + d6 4000, nothing moved
    assert [(m.label, m.value) for m in block.metrics] == [
        ("Open pipeline on 25 Sep", "$14.0K"),
        ("Open pipeline now", "$14.0K"),
    ]
    assert block.rows == [] and block.note == "No deal moved."
