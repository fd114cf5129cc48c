"""The "Forecast attainment" alert: the forecast for the period (Monte Carlo P50 when
stored, else the weighted pipeline's expected value) / the quota for the period x 100.

East's quota for 2024-Q3 is 4500.00 (see conftest.py); the forecasts are stored rows."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.digests import services
from apps.digests.forecast import forecast_basis
from apps.digests.forms import AlertForm
from apps.digests.models import Delivery, DigestAlert, DigestSubscription
from apps.digests.selectors import forecast_attainment
from apps.forecasting.engine.api import MethodForecast
from apps.forecasting.models import ForecastValue
from apps.kpis.selectors import period_parse, scope_resolve
from tests.digests.conftest import AS_OF_NOW, SITE, backdate
from tests.digests.factories import ForecastValueFactory, monte_carlo
from tests.digests.helpers import html_of, links, text_of

pytestmark = pytest.mark.django_db


def _east_alert(book, threshold="95", operator="below"):
    sub = services.subscription_create(
        actor=book.manager_east,
        recipient=book.manager_east,
        team=book.east,
        frequency="weekly",
        weekday=0,
        hour=7,
        time_zone="UTC",
        sections=["deals"],
        send_digest=False,
    )
    backdate(sub)
    alert = services.alert_create(
        actor=book.manager_east,
        subscription=sub,
        kpi="forecast_attainment",
        operator=operator,
        threshold=Decimal(threshold),
    )
    return sub, alert


def _east_forecasts(book, *, p50="4185.00", weighted="4230.00"):
    key = f"team:{book.east.pk}"
    ForecastValueFactory(scope_key=key, team=book.east, expected=Decimal(weighted))
    return monte_carlo(
        scope_key=key,
        team=book.east,
        expected=Decimal("4150.00"),
        p10=Decimal("3900.00"),
        p50=Decimal(p50),
        p90=Decimal("4410.00"),
    )


def _dispatch(capture):
    with capture(execute=True):
        return services.digests_dispatch(now=AS_OF_NOW)


def test_forecast_attainment_is_the_monte_carlo_p50_over_the_quota(book, django_assert_num_queries):
    # given East's stored forecasts for 2024-Q3: Monte Carlo P50 4185.00, weighted 4230.00
    _east_forecasts(book)
    scope = scope_resolve(user=book.manager_east, team_id=book.east.pk)
    period = period_parse("2024-Q3")
    # when the forecast attainment is read as East's manager
    with django_assert_num_queries(4):
        found = forecast_attainment(viewer=book.manager_east, scope=scope, period=period)
    # then it is 4185 / 4500 = 0.93 (93 %), from the P50, with the P10-P90 range
    assert found is not None
    assert found.value == Decimal("0.93")
    assert found.quota == Decimal("4500.00")
    assert (found.basis.method, found.basis.value) == ("monte_carlo", Decimal("4185.00"))
    assert (found.basis.p10, found.basis.p90) == (Decimal("3900.00"), Decimal("4410.00"))


def test_without_monte_carlo_the_weighted_expected_value_is_the_forecast(book):
    # given only a weighted forecast of 3600.00 for East: 3600 / 4500 = 80 %
    ForecastValueFactory(scope_key=f"team:{book.east.pk}", expected=Decimal("3600.00"))
    scope = scope_resolve(user=book.manager_east, team_id=book.east.pk)
    found = forecast_attainment(
        viewer=book.manager_east, scope=scope, period=period_parse("2024-Q3")
    )
    assert found is not None
    assert found.value == Decimal("0.8")
    assert (found.basis.method, found.basis.p10, found.basis.p90) == ("weighted", None, None)


def _mf(method, expected, p50=None):
    return MethodForecast(method, method, Decimal(expected), Decimal("0"), None, p50, None, 0, {})


def test_forecast_basis_prefers_the_p50_then_the_weighted_expected_value():
    weighted, hist = _mf("weighted", "100"), _mf("historical", "300")
    assert forecast_basis([hist, weighted, _mf("monte_carlo", "250", Decimal("240"))]).value == 240
    # a Monte Carlo row without a P50 falls back to the weighted pipeline
    assert forecast_basis([_mf("monte_carlo", "250"), weighted]).value == 100
    # other methods are never "the forecast"
    assert forecast_basis([hist, _mf("ml", "280")]) is None
    assert forecast_basis([]) is None


def test_crossing_mails_once_staying_below_does_not_and_rising_rearms(
    book, inbox, django_capture_on_commit_callbacks
):
    # given an alert "forecast attainment below 95 %" on East and a P50 of 4185 (93.0 %)
    _sub, alert = _east_alert(book, threshold="95")
    mc = _east_forecasts(book)
    # when the dispatcher runs twice (staying below)
    first = _dispatch(django_capture_on_commit_callbacks)
    second = _dispatch(django_capture_on_commit_callbacks)
    # then exactly one mail, saying which forecast was used, its range and the quota
    assert (len(first.alerts), len(second.alerts), first.errors) == (1, 0, [])
    assert len(inbox.messages) == 1
    mail = inbox.messages[0]
    assert (
        mail["Subject"].strip() == "Alert: Forecast attainment falls below 95.0% · East · 2024-Q3"
    )
    text = text_of(mail)
    assert "East, 2024-Q3: 93.0% (threshold 95.0%)" in text
    assert "Forecast: $4.2K (Monte Carlo P50; range P10\u2013P90 $3.9K \u2013 $4.4K)" in text
    assert "Quota: $4.5K" in text
    assert "Forecast computed 29 Sep 2024 02:15." in text
    html = html_of(mail)
    assert "Monte Carlo P50; range P10\u2013P90 $3.9K \u2013 $4.4K" in html
    assert links(html, SITE)[0] == f"/forecast/?period=2024-Q3&team={book.east.pk}"
    alert.refresh_from_db()
    assert (alert.state, alert.crossings, alert.last_value) == ("triggered", 1, Decimal("0.93"))

    # when the P50 rises to 4455.00 (99.0 %): the alert re-arms, no mail
    ForecastValue.objects.filter(pk=mc.pk).update(p50=Decimal("4455.00"))
    rearm = _dispatch(django_capture_on_commit_callbacks)
    alert.refresh_from_db()
    assert (rearm.rearmed, alert.state, alert.last_value) == (1, "armed", Decimal("0.99"))
    assert len(inbox.messages) == 1

    # when it falls to 4050.00 (90.0 %): a second crossing, a second mail
    ForecastValue.objects.filter(pk=mc.pk).update(p50=Decimal("4050.00"))
    again = _dispatch(django_capture_on_commit_callbacks)
    assert len(again.alerts) == 1 and len(inbox.messages) == 2
    assert Delivery.objects.get(pk=again.alerts[0]).period_key == f"alert:{alert.pk}:2"
    assert "East, 2024-Q3: 90.0% (threshold 95.0%)" in text_of(inbox.messages[1])


def test_the_weighted_fallback_is_named_in_the_mail(
    book, inbox, django_capture_on_commit_callbacks
):
    # given only a weighted forecast of 3600.00 (80.0 %) and an alert below 90 %
    _east_alert(book, threshold="90")
    ForecastValueFactory(scope_key=f"team:{book.east.pk}", expected=Decimal("3600.00"))
    result = _dispatch(django_capture_on_commit_callbacks)
    assert len(result.alerts) == 1
    text = text_of(inbox.messages[0])
    assert "East, 2024-Q3: 80.0% (threshold 90.0%)" in text
    assert (
        "Forecast: $3.6K (weighted pipeline, expected value; no P10\u2013P90 range for this "
        "method)" in text
    )


def test_no_forecast_means_no_value_and_no_crossing(
    book, inbox, django_capture_on_commit_callbacks
):
    # given an alert on East and forecasts stored only for the company and for 2024-Q4
    _sub, alert = _east_alert(book, threshold="95")
    monte_carlo(p50=Decimal("10.00"), expected=Decimal("10.00"))
    ForecastValueFactory(
        scope_key=f"team:{book.east.pk}",
        period_name="2024-Q4",
        period_start="2024-10-01",
        period_end="2024-12-31",
        expected=Decimal("10.00"),
    )
    # when the dispatcher runs
    result = _dispatch(django_capture_on_commit_callbacks)
    # then nothing is sent and no crossing is recorded
    assert (result.alerts, result.errors, len(inbox.messages)) == ([], [], 0)
    alert.refresh_from_db()
    assert (alert.state, alert.crossings, alert.last_value) == ("armed", 0, None)
    assert not Delivery.objects.exists()


def test_a_scope_the_reader_no_longer_sees_sends_nothing(
    book, inbox, django_capture_on_commit_callbacks
):
    # given East's manager's alert, whose scope was later changed to West (not visible to
    # them), and a West forecast far below any threshold
    sub, alert = _east_alert(book, threshold="95")
    DigestSubscription.objects.filter(pk=sub.pk).update(team=book.west)
    monte_carlo(scope_key=f"team:{book.west.pk}", expected=Decimal("1"), p50=Decimal("1.00"))
    # when the dispatcher runs: the reason is reported, nothing is sent
    result = _dispatch(django_capture_on_commit_callbacks)
    assert result.alerts == [] and len(inbox.messages) == 0
    assert result.errors == [f"alert {alert.pk}: You may not see this team's numbers."]
    alert.refresh_from_db()
    assert (alert.state, alert.crossings) == ("armed", 0)


def test_the_form_offers_forecast_attainment(book, client):
    # the alert form offers it and the edit page shows it
    assert ("forecast_attainment", "Forecast attainment (%)") in AlertForm().fields["kpi"].choices
    sub, _alert = _east_alert(book)
    client.force_login(book.manager_east)
    page = client.get(f"/digests/{sub.pk}/")
    assert page.status_code == 200
    assert b'<option value="forecast_attainment">Forecast attainment (%)</option>' in page.content
    # and posting it adds an alert
    response = client.post(
        f"/digests/{sub.pk}/alerts/",
        {
            "kpi": "forecast_attainment",
            "operator": "above",
            "threshold": "110",
            "period_kind": "quarter",
        },
    )
    assert response.status_code == 302
    added = DigestAlert.objects.filter(subscription=sub).order_by("-id").first()
    assert (added.kpi, added.operator, added.threshold, added.period_kind) == (
        "forecast_attainment",
        "above",
        Decimal("110"),
        "quarter",
    )
    # forecasts are stored per quarter: a month or year alert is refused with the reason
    refused = client.post(
        f"/digests/{sub.pk}/alerts/",
        {
            "kpi": "forecast_attainment",
            "operator": "below",
            "threshold": "90",
            "period_kind": "year",
        },
        follow=True,
    )
    assert b"Forecasts are stored per fiscal quarter" in refused.content
    assert DigestAlert.objects.filter(subscription=sub).count() == 2
    # a bad threshold is refused with a reason
    bad = AlertForm({"kpi": "forecast_attainment", "operator": "below", "threshold": "x"})
    assert not bad.is_valid() and "threshold" in bad.errors
