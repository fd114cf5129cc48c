"""Calls: roll-up arithmetic on real deals, who may submit, validation and history."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.forecasting import selectors, services
from apps.forecasting.models import ForecastCall
from apps.kpis.selectors import kpi_value, period_shift
from apps.org.models import Role, User

D = Decimal


def submit(book, user, team, commit, best, **kw):
    return services.call_submit(
        user=user, team=team, period=book.period, commit=D(commit), best_case=D(best), **kw
    )


@pytest.mark.django_db
class TestRollup:
    def test_leaf_team_sums_its_reps_won_and_open_deals_by_category(self, book):
        rollup = selectors.call_rollup(team=book.east_sub, period=book.period)
        # rep_b: won 300 + commit 700 = 1000; + best case 400 = 1400
        assert (rollup.commit, rollup.best_case) == (D("1000.00"), D("1400.00"))
        (line,) = rollup.lines
        assert (line.label, line.won, line.source) == ("rep_b", D("300.00"), "Deals")

    def test_won_to_date_is_the_bookings_kpi(self, book):
        rollup = selectors.call_rollup(team=book.east_sub, period=book.period)
        bookings = kpi_value(
            name="bookings", period=book.period, user=book.cso, team_id=book.east_sub.pk
        ).value
        assert rollup.lines[0].won == bookings == D("300.00")

    def test_mixed_team_adds_own_people_and_child_rollup(self, book):
        rollup = selectors.call_rollup(team=book.east, period=book.period)
        # rep_a 1000 + 5000 = 6000 / 8000 (pipeline 9000 and next quarter's 8000 are out);
        # East SMB without a call: its roll-up 1000 / 1400
        assert (rollup.commit, rollup.best_case) == (D("7000.00"), D("9400.00"))
        sources = {line.label: line.source for line in rollup.lines}
        assert sources == {"mgr": "Deals", "rep_a": "Deals", "East SMB": "Roll-up (no call yet)"}

    def test_child_latest_call_replaces_its_rollup(self, book):
        submit(book, book.manager_east, book.east_sub, "1100", "1300")
        submit(book, book.manager_east, book.east_sub, "1200", "1500")
        rollup = selectors.call_rollup(team=book.east, period=book.period)
        assert (rollup.commit, rollup.best_case) == (D("7200.00"), D("9500.00"))
        child = next(line for line in rollup.lines if line.kind == "team")
        assert child.source == "Latest call" and child.call.commit == D("1200.00")

    def test_company_rolls_up_region_calls_to_the_cso(self, book):
        submit(book, book.manager_east, book.east, "7500", "10000")
        rollup = selectors.call_rollup(team=book.company, period=book.period)
        # East's call 7500 / 10000 + West (rep_c) 200 + 1500 = 1700 / 1700
        assert (rollup.commit, rollup.best_case) == (D("9200.00"), D("11700.00"))

    def test_rollup_costs_five_queries(self, book, django_assert_num_queries):
        with django_assert_num_queries(5):
            selectors.call_rollup(team=book.company, period=book.period)


@pytest.mark.django_db
class TestSubmit:
    def test_call_keeps_the_rollup_and_the_adjustment(self, book):
        call = submit(book, book.manager_east, book.east, "7500", "9000", comment=" Two slips ")
        assert (call.rollup_commit, call.rollup_best_case) == (D("7000.00"), D("9400.00"))
        assert call.commit_adjustment == D("500.00")
        assert call.best_case_adjustment == D("-400.00")
        assert call.comment == "Two slips" and call.submitted_by == book.manager_east
        start = book.period.start
        today = timezone.localdate()
        assert call.week == (today - start).days // 7 + 1

    def test_every_submission_is_kept_newest_first(self, book):
        first = submit(book, book.manager_east, book.east, "7000", "9000")
        later = submit(
            book,
            book.manager_east,
            book.east,
            "7600",
            "9100",
            at=first.submitted_at + timedelta(days=1),
        )
        history = list(selectors.call_history(user=book.cso, team=book.east, period=book.period))
        assert history == [later, first]
        assert selectors.latest_calls(team_ids={book.east.pk}, period=book.period) == {
            book.east.pk: later
        }

    def test_a_manager_submits_for_their_subtree_only(self, book):
        assert submit(book, book.manager_east, book.east_sub, "1", "2").team == book.east_sub
        with pytest.raises(ApplicationError, match="may not submit"):
            submit(book, book.manager_east, book.west, "1", "2")
        with pytest.raises(ApplicationError, match="may not submit"):
            submit(book, book.manager_east, book.company, "1", "2")
        assert not ForecastCall.objects.filter(team__in=[book.west, book.company]).exists()

    def test_reps_and_revops_never_submit_executives_always(self, book):
        revops = User.objects.create_user("ops", password="pw", role=Role.REVOPS_ADMIN)
        for user in (book.rep_a, revops):
            with pytest.raises(ApplicationError, match="may not submit"):
                submit(book, user, book.east, "1", "2")
        assert submit(book, book.cso, book.company, "9000", "12000").team == book.company
        assert ForecastCall.objects.count() == 1

    def test_inactive_manager_cannot_submit(self, book):
        book.manager_east.is_active = False
        book.manager_east.save()
        with pytest.raises(ApplicationError):
            submit(book, book.manager_east, book.east, "1", "2")

    @pytest.mark.parametrize(
        ("commit", "best", "message"),
        [
            ("-1", "5", "negative"),
            ("10", "5", "at least the commit"),
            ("abc", "5", "must be an amount"),
            ("NaN", "5", "must be an amount"),
        ],
    )
    def test_bad_amounts_change_nothing(self, book, commit, best, message):
        with pytest.raises(ApplicationError, match=message):
            services.call_submit(
                user=book.cso, team=book.company, period=book.period, commit=commit, best_case=best
            )
        assert ForecastCall.objects.count() == 0

    def test_closed_periods_and_years_take_no_calls(self, book):
        closed = period_shift(book.period, -1)
        with pytest.raises(ApplicationError, match="has closed"):
            services.call_submit(
                user=book.cso, team=book.company, period=closed, commit="1", best_case="1"
            )
        from apps.kpis.selectors import period_parse

        year = period_parse(f"FY{book.period.end.year}")
        with pytest.raises(ApplicationError, match="quarter or month"):
            services.call_submit(
                user=book.cso, team=book.company, period=year, commit="1", best_case="1"
            )


@pytest.mark.django_db
class TestCallsMissing:
    def test_teams_without_a_call_this_week(self, book, django_assert_num_queries):
        book.east_sub.manager = book.manager_east
        book.east_sub.save()
        today = timezone.localdate()
        with django_assert_num_queries(2):
            missing = selectors.calls_missing(
                manager=book.manager_east, period=book.period, on=today
            )
        assert missing == [book.east, book.east_sub]
        submit(book, book.manager_east, book.east, "1", "2")
        assert selectors.calls_missing(manager=book.manager_east, period=book.period, on=today) == [
            book.east_sub
        ]
        # A week later the call is a week old: both are missing again
        later = today + timedelta(days=7)
        assert selectors.calls_missing(manager=book.manager_east, period=book.period, on=later) == [
            book.east,
            book.east_sub,
        ]

    def test_someone_managing_nothing_misses_nothing(self, book):
        assert (
            selectors.calls_missing(manager=book.rep_a, period=book.period, on=timezone.localdate())
            == []
        )
