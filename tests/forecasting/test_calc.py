"""The pure roll-up and accuracy arithmetic, checked by hand (no database)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from apps.forecasting import calc

D = Decimal


class TestWeekOfPeriod:
    def test_week_one_is_the_first_seven_days(self):
        start = date(2024, 7, 1)
        assert calc.week_of_period(date(2024, 7, 1), start) == 1
        assert calc.week_of_period(date(2024, 7, 7), start) == 1
        assert calc.week_of_period(date(2024, 7, 8), start) == 2
        # 30 September is day 92 of Q3: (91 // 7) + 1 = 14
        assert calc.week_of_period(date(2024, 9, 30), start) == 14

    def test_a_day_before_the_period_counts_as_week_one(self):
        assert calc.week_of_period(date(2024, 6, 28), date(2024, 7, 1)) == 1


class TestTeamRollup:
    # Company(1) > East(2) > East SMB(3); Company > West(4). Members: 10 in 2, 11 in 3, 12 in 4.
    children = {1: [2, 4], 2: [3], 3: [], 4: []}
    members = {2: [10], 3: [11], 4: [12]}
    owners = {
        10: calc.OwnerDeals(won=D("1000"), open_commit=D("5000"), open_best_case=D("2000")),
        11: calc.OwnerDeals(won=D("300"), open_commit=D("700"), open_best_case=D("400")),
        12: calc.OwnerDeals(won=D("200"), open_commit=D("1500")),
    }

    def rollup(self, team, calls=None):
        return calc.team_rollup(
            team,
            children=self.children,
            members=self.members,
            owners=self.owners,
            calls=calls or {},
        )

    def test_leaf_team_is_won_plus_open_deals_of_its_people(self):
        node = self.rollup(3)
        # commit 300 + 700; best case 300 + 700 + 400 (best case includes commit)
        assert (node.commit, node.best_case) == (D("1000"), D("1400"))

    def test_a_child_without_a_call_counts_with_its_own_rollup(self):
        node = self.rollup(2)
        # own: 1000 + 5000 = 6000 / 8000; child East SMB roll-up 1000 / 1400
        assert (node.commit, node.best_case) == (D("7000"), D("9400"))
        assert node.children[0].from_call is False

    def test_a_child_with_a_call_counts_with_its_call(self):
        node = self.rollup(2, {3: calc.Call(D("1200"), D("1500"))})
        assert (node.commit, node.best_case) == (D("7200"), D("9500"))
        assert node.children[0].from_call is True

    def test_company_sums_the_regions_calls_not_what_is_below_them(self):
        node = self.rollup(1, {2: calc.Call(D("7500"), D("10000")), 3: calc.Call(D("1"), D("1"))})
        # East's call 7500 / 10000 (East SMB's call is already inside it) + West 1700 / 1700
        assert (node.commit, node.best_case) == (D("9200"), D("11700"))

    def test_nobody_below_is_zero(self):
        node = calc.team_rollup(9, children={}, members={}, owners={}, calls={})
        assert (node.commit, node.best_case) == (D("0.00"), D("0.00"))


class TestAccuracy:
    def test_error_and_absolute_percentage_error(self):
        assert calc.forecast_error(D("1100"), D("1000")) == D("100.00")
        assert calc.forecast_error(D("900"), D("1000")) == D("-100.00")
        assert calc.abs_pct_error(D("900"), D("1000")) == D("0.1000")
        assert calc.abs_pct_error(D("1000"), D("800")) == D("0.2500")

    def test_no_percentage_error_against_zero_actual(self):
        assert calc.abs_pct_error(D("10"), D("0")) is None

    def test_table_ranks_by_mape_and_splits_by_week(self):
        scored = [
            calc.ScoredForecast("ml", "ML", 1, D("-100"), D("0.10")),
            calc.ScoredForecast("ml", "ML", 2, D("50"), D("0.05")),
            calc.ScoredForecast("weighted", "Weighted", 1, D("300"), D("0.30")),
            calc.ScoredForecast("weighted", "Weighted", 1, D("100"), D("0.10")),
            calc.ScoredForecast("call_commit", "Call", 1, D("0"), None),
        ]
        rows = calc.accuracy_table(scored)
        assert [r.source for r in rows] == ["ml", "weighted", "call_commit"]
        ml, weighted, call = rows
        # ML: mean(0.10, 0.05) = 0.075; bias mean(-100, 50) = -25
        assert (ml.mape, ml.bias, ml.scored) == (D("0.0750"), D("-25.00"), 2)
        assert ml.by_week == {1: D("0.1000"), 2: D("0.0500")}
        # Weighted: both in week 1: mean(0.30, 0.10) = 0.20
        assert weighted.mape == D("0.2000") and weighted.by_week == {1: D("0.2000")}
        # A call scored only against a zero actual has no MAPE: last, not "perfect"
        assert call.mape is None and call.by_week == {}
