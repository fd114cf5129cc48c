"""Stored forecasts, weekly snapshots and accuracy scoring: what is stored, idempotency,
run records, the per-owner recompute after a deal change, and scores by hand.

The engine is the hand-set fake of tests/forecasting/fake_engine.py: ``weighted`` and
``monte_carlo`` are 100 x owners in scope (company 1000). Scopes of the book: company,
East (mgr, rep_a, rep_b), East SMB (rep_b), West (rep_c), and reps rep_a, rep_b, rep_c.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.utils import timezone

from apps.core.models import JobRun
from apps.forecasting import selectors, services, tasks
from apps.forecasting.models import ForecastRun, ForecastSnapshot, ForecastValue
from apps.kpis.selectors import period_shift
from tests.forecasting.conftest import current_period

D = Decimal


def stored(period_name=None):
    rows = ForecastValue.objects.all()
    if period_name:
        rows = rows.filter(period_name=period_name)
    return {(v.scope_key, v.period_name, v.method): v.expected for v in rows}


@pytest.mark.django_db
class TestRecompute:
    def test_every_scope_current_and_next_quarter(self, book, fake_engine):
        result = services.forecasts_recompute()
        nxt = period_shift(book.period, 1)
        assert result.periods == [book.period.name, nxt.name]
        # 7 scopes x 2 periods x 2 methods
        assert result.values == 28 == ForecastValue.objects.count()
        values = stored(book.period.name)
        assert values[("company", book.period.name, "weighted")] == D("1000.00")
        assert values[(f"team:{book.east.pk}", book.period.name, "weighted")] == D("300.00")
        assert values[(f"team:{book.east_sub.pk}", book.period.name, "weighted")] == D("100.00")
        assert values[(f"rep:{book.rep_c.pk}", book.period.name, "monte_carlo")] == D("100.00")
        mc = ForecastValue.objects.get(
            scope_key="company", period_name=book.period.name, method="monte_carlo"
        )
        assert (mc.p10, mc.p50, mc.p90) == (D("900.00"), D("1000.00"), D("1100.00"))
        # The root team is the company: no team:<root> rows
        assert not ForecastValue.objects.filter(scope_key=f"team:{book.company.pk}").exists()

    def test_running_twice_replaces_and_records_each_run(self, book, fake_engine):
        services.forecasts_recompute()
        first = stored()
        fake_engine.bump = D("5")
        services.forecasts_recompute()
        assert ForecastValue.objects.count() == 28
        assert all(stored()[k] == v + D("5") for k, v in first.items())
        runs = JobRun.objects.filter(kind="forecasting.recompute")
        assert [r.status for r in runs] == ["succeeded", "succeeded"]
        assert runs[0].rows == 28 and ForecastRun.objects.count() == 2

    def test_failure_is_recorded_and_keeps_the_stored_values(self, book, fake_engine):
        services.forecasts_recompute()
        before = stored()

        def boom(**kw):
            raise RuntimeError("engine down")

        fake_engine.forecasts_compute = boom
        with pytest.raises(RuntimeError):
            services.forecasts_recompute()
        assert stored() == before
        failed = JobRun.objects.get(kind="forecasting.recompute", status="failed")
        assert "engine down" in failed.error

    def test_owner_recompute_touches_only_the_owners_scopes(self, book, fake_engine):
        services.forecasts_recompute()
        before = stored()
        fake_engine.bump = D("7")
        result = services.forecasts_recompute_owners(owner_ids=[book.rep_b.pk])
        after = stored()
        changed = {k[0] for k in after if after[k] != before[k]}
        assert changed == {
            "company",
            f"team:{book.east.pk}",
            f"team:{book.east_sub.pk}",
            f"rep:{book.rep_b.pk}",
        }
        assert result.values == 4 * 2 * 2

    def test_a_category_change_recomputes_after_commit(
        self, book, fake_engine, django_capture_on_commit_callbacks, settings, monkeypatch
    ):
        # as with a worker: the change queues one recompute of its owners' scopes
        settings.CELERY_TASK_ALWAYS_EAGER = False
        queued: list[dict] = []
        monkeypatch.setattr(
            tasks.forecasts_recompute_owners_task,
            "apply_async",
            lambda kwargs, countdown: queued.append(kwargs),
        )
        monkeypatch.setattr("apps.kpis.services.rollups_deal_changed", lambda **kw: None)
        cache.clear()
        services.forecasts_recompute()
        fake_engine.bump = D("1")
        deal = book.deals["c_commit"]
        with django_capture_on_commit_callbacks(execute=True):
            services.deal_category_set(user=book.rep_c, opportunity=deal, category="best_case")
            services.deal_category_set(user=book.rep_c, opportunity=deal, category="commit")
        deal.refresh_from_db()
        assert deal.forecast_category == "commit"
        assert deal.history.order_by("-changed_at", "-id").first().changed_fields == (
            "forecast_category"
        )
        assert queued == [{"owner_ids": [book.rep_c.pk]}]  # the burst coalesced into one

        tasks.forecasts_recompute_owners_task(**queued[0])  # what the worker then runs

        key = (f"rep:{book.rep_c.pk}", book.period.name, "weighted")
        assert stored()[key] == D("101.00")
        assert stored()[(f"rep:{book.rep_a.pk}", book.period.name, "weighted")] == D("100.00")

    def test_without_a_worker_a_deal_change_does_not_compute_in_the_request(
        self, book, fake_engine, django_capture_on_commit_callbacks
    ):
        services.forecasts_recompute()
        fake_engine.calls.clear()
        with django_capture_on_commit_callbacks(execute=True):
            services.deal_category_set(
                user=book.rep_c, opportunity=book.deals["c_commit"], category="best_case"
            )
        assert fake_engine.calls == []

    def test_tasks_are_registered_under_the_scheduled_names(self, book, fake_engine):
        from cso_dashboard.celery import app

        assert tasks.forecasts_recompute_task.name == "forecasting.forecasts_recompute"
        assert tasks.forecasts_snapshot_task.name == "forecasting.forecasts_snapshot"
        assert "forecasting.forecasts_recompute" in app.tasks
        assert tasks.forecasts_recompute_task.delay().get() == 28


@pytest.mark.django_db
class TestCategory:
    def test_a_rep_may_not_move_someone_elses_deal(self, book, fake_engine):
        from apps.core.errors import ApplicationError

        with pytest.raises(ApplicationError, match="may not change"):
            services.deal_category_set(
                user=book.rep_c, opportunity=book.deals["a_commit"], category="pipeline"
            )

    def test_closed_deals_and_unknown_categories_are_refused(self, book, fake_engine):
        from apps.core.errors import ApplicationError

        with pytest.raises(ApplicationError, match="Only open deals"):
            services.deal_category_set(
                user=book.cso, opportunity=book.deals["a_won"], category="commit"
            )
        with pytest.raises(ApplicationError, match="Choose one of"):
            services.deal_category_set(
                user=book.cso, opportunity=book.deals["a_commit"], category="closed"
            )


@pytest.mark.django_db
class TestSnapshotsAndAccuracy:
    def previous_quarter_flow(self, book):
        """Forecasts and an East call made in week 2 of the previous quarter; then today's
        weekly job scores that (closed) quarter. Its actual bookings: rep_a's 4000."""
        prev = period_shift(book.period, -1)
        day = prev.start + timedelta(days=8)  # week 2
        services.forecasts_recompute(as_of=day)
        services.call_submit(
            user=book.manager_east,
            team=book.east,
            period=prev,
            commit=D("3000"),
            best_case=D("5000"),
            at=timezone.make_aware(timezone.datetime(day.year, day.month, day.day, 12)),
        )
        services.snapshots_take(on=day)
        return prev

    def test_snapshot_stores_methods_and_calls_with_the_week(self, book, fake_engine):
        prev = self.previous_quarter_flow(book)
        snaps = ForecastSnapshot.objects.filter(period_name=prev.name)
        # 7 scopes x 2 methods + East's commit and best-case call
        assert snaps.count() == 16
        assert set(snaps.values_list("week", flat=True)) == {2}
        call = snaps.get(scope_key=f"team:{book.east.pk}", source="call_commit")
        assert call.value == D("3000.00")

    def test_scoring_by_hand(self, book, fake_engine):
        prev = self.previous_quarter_flow(book)
        result = services.forecasts_snapshot(on=timezone.localdate(), backtest=False)
        assert result.scored == 16
        east = f"team:{book.east.pk}"
        snap = ForecastSnapshot.objects.get(
            period_name=prev.name, scope_key=east, source="weighted"
        )
        # forecast 300 (fake) vs actual 4000: error -3700, APE 3700 / 4000 = 0.925
        assert (snap.actual, snap.error, snap.abs_pct_error) == (
            D("4000.00"),
            D("-3700.00"),
            D("0.9250"),
        )
        rows = selectors.accuracy_rows(scope_key=east)
        assert [(r.source, r.mape, r.bias) for r in rows] == [
            ("call_best_case", D("0.2500"), D("1000.00")),
            ("call_commit", D("0.2500"), D("-1000.00")),
            ("monte_carlo", D("0.9250"), D("-3700.00")),
            ("weighted", D("0.9250"), D("-3700.00")),
        ]
        assert rows[0].by_week == {2: D("0.2500")}
        # West had no bookings last quarter: no percentage error, only the signed one
        west = ForecastSnapshot.objects.get(
            period_name=prev.name, scope_key=f"team:{book.west.pk}", source="weighted"
        )
        assert (west.actual, west.error, west.abs_pct_error) == (D("0.00"), D("100.00"), None)
        assert selectors.accuracy_periods(scope_key=east) == [prev.name]

    def test_weekly_job_is_idempotent(self, book, fake_engine):
        self.previous_quarter_flow(book)
        services.forecasts_recompute()
        today = timezone.localdate()
        first = services.forecasts_snapshot(on=today, backtest=False)
        count = ForecastSnapshot.objects.count()
        again = services.forecasts_snapshot(on=today, backtest=False)
        assert ForecastSnapshot.objects.count() == count
        assert again.snapshots == first.snapshots == 14
        assert (first.scored, again.scored) == (16, 0)
        assert JobRun.objects.filter(kind="forecasting.snapshot", status="succeeded").count() == 2

    def test_forecast_latest_for_digests(self, book, fake_engine, django_assert_num_queries):
        from apps.kpis.selectors import scope_resolve

        services.forecasts_recompute()
        call = services.call_submit(
            user=book.manager_east,
            team=book.east,
            period=book.period,
            commit="7100",
            best_case="9000",
        )
        scope = scope_resolve(user=book.cso, team_id=book.east.pk)
        with django_assert_num_queries(3):
            summary = selectors.forecast_latest(scope=scope, period=book.period)
        assert summary.scope_label == "East" and summary.period_name == book.period.name
        assert [(m.method, m.expected) for m in summary.methods] == [
            ("weighted", D("300.00")),
            ("monte_carlo", D("300.00")),
        ]
        assert (summary.call_commit, summary.call_best_case) == (D("7100.00"), D("9000.00"))
        assert summary.call_submitted_at == call.submitted_at
        company = selectors.forecast_latest(scope=scope_resolve(user=book.cso), period=book.period)
        assert company.call_commit is None and company.methods[0].expected == D("1000.00")
        assert (
            selectors.forecast_latest(
                scope=scope_resolve(user=book.cso), period=period_shift(book.period, 3)
            )
            is None
        )


class FakeBacktest:
    """The engine's backtest replaced by rows set by hand: two weeks of one closed
    quarter, actual 4000; weighted 3000 then 3800, ML 4400 then 4100."""

    @staticmethod
    def closed_periods(count, *, before=None):
        return [period_shift(current_period(), -1)]

    @staticmethod
    def backtest_run(*, scope, periods, today=None):
        from types import SimpleNamespace

        (p,) = periods
        rows = [
            SimpleNamespace(
                period=p.name,
                week=w,
                as_of=p.start,
                method=m,
                forecast=D(f),
                actual=D("4000"),
                error=D(f) - D("4000"),
            )
            for m, w, f in (
                ("weighted", 1, "3000"),
                ("weighted", 2, "3800"),
                ("ml", 1, "4400"),
                ("ml", 2, "4100"),
            )
        ]
        return SimpleNamespace(rows=rows)


@pytest.mark.django_db
def test_backtest_is_stored_and_ranked_by_hand(book, fake_engine, monkeypatch):
    monkeypatch.setattr(services, "backtest_module", lambda: FakeBacktest)
    stored_rows = services.backtests_refresh(on=timezone.localdate())
    # company + East + West (the teams right below the root) x 4 rows
    assert stored_rows == 12
    assert services.backtests_refresh(on=timezone.localdate()) == 12  # replaced, not added
    rows, periods = selectors.backtest_rows(scope_key="company")
    assert periods == [period_shift(book.period, -1).name]
    # ML: APE 400/4000 = 0.10 and 100/4000 = 0.025 -> 0.0625; weighted 0.25 and 0.05 -> 0.15
    assert [(r.source, r.mape, r.bias) for r in rows] == [
        ("ml", D("0.0625"), D("250.00")),
        ("weighted", D("0.1500"), D("-600.00")),
    ]
    assert rows[0].by_week == {1: D("0.1000"), 2: D("0.0250")}


@pytest.mark.django_db
def test_full_run_drops_scopes_that_no_longer_exist(book, fake_engine):
    services.forecasts_recompute()
    book.rep_c.is_active = False
    book.rep_c.save()
    result = services.forecasts_recompute()
    assert result.values == 24  # 6 scopes x 2 periods x 2 methods
    assert not ForecastValue.objects.filter(scope_key=f"rep:{book.rep_c.pk}").exists()
