"""The forecasting admin lists and shows every record read-only (scenarios editable)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.forecasting import services
from apps.forecasting.models import (
    DealScoreValue,
    ForecastCall,
    ForecastRun,
    ForecastSnapshot,
    ForecastValue,
    Scenario,
)
from tests.forecasting.fake_engine import DealScore


@pytest.mark.django_db
def test_admin_pages_answer_and_calls_are_read_only(client, book, fake_engine):
    book.cso.is_staff = book.cso.is_superuser = True
    book.cso.save()
    deal = book.deals["a_commit"]
    fake_engine.scores = {deal.pk: DealScore(deal.pk, 0.3, 0.6, [("Amount", 0.1)])}
    services.forecasts_recompute()
    services.snapshots_take(on=timezone.localdate())
    call = services.call_submit(
        user=book.cso, team=book.company, period=book.period, commit="1", best_case="2"
    )
    scenario = services.scenario_save(
        user=book.cso, name="Base", growth_pct=0, win_rate_delta_pts=0, headcount_delta=0
    )
    client.force_login(book.cso)
    for obj in (
        call,
        ForecastRun.objects.first(),
        ForecastValue.objects.first(),
        ForecastSnapshot.objects.first(),
        DealScoreValue.objects.get(),
        scenario,
    ):
        meta = obj._meta
        base = f"admin:{meta.app_label}_{meta.model_name}"
        assert client.get(reverse(f"{base}_changelist")).status_code == 200
        assert client.get(reverse(f"{base}_change", args=[obj.pk])).status_code == 200
    assert client.get(reverse("admin:forecasting_forecastcall_add")).status_code == 403
    url = reverse("admin:forecasting_forecastcall_change", args=[call.pk])
    client.post(url, {"commit": "999", "best_case": "999"})
    assert ForecastCall.objects.get().commit == 1
    assert Scenario.objects.get().name == "Base"
