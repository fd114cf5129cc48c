"""Stored deal scores (issue #7): the forecast recompute stores each open deal's ML score
for the stored periods, in the same transaction as the forecasts; the Forecast page reads
them and never asks the engine for scores during a request.

The engine is the fake of tests/forecasting/fake_engine.py: ``deal_scores`` answers the
hand-set scores of deals open now, closing in the period, owned within the scope. The book
(tests/forecasting/conftest.py), open deals of the current quarter P with their stage
probability: a_commit 5000 (Propose 60 %), a_best 2000 (Qualify 25 %), a_pipe 9000
(Prospect 10 %), b_commit 700 (60 %), b_best 400 (25 %), c_commit 1500 (60 %); a_next 8000
(60 %) closes in the next quarter N.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from apps.core.models import JobRun
from apps.forecasting import services
from apps.forecasting.models import DealScoreValue, ForecastRun, ForecastValue
from apps.kpis.selectors import period_shift
from apps.quotas import fiscal
from tests.forecasting.fake_engine import DealScore
from tests.kpis.conftest import at

D = Decimal
INDEX = reverse("forecasting:index")
COMMIT_FACTORS = [
    ("Forecast category: commit", 0.83),
    ("Close date pushes (2)", -0.61),
    ("Amount", 0.1),
    ("Deal age", 0.05),
]


def score(deal, probability, stage_probability, factors=None):
    return DealScore(deal.pk, probability, stage_probability, factors or [("Stage", 0.2)])


def set_scores(fake_engine, book, **probabilities):
    """Hand-set engine answers, e.g. ``a_commit=(0.3, 0.6)``."""
    fake_engine.scores = {
        book.deals[name].pk: score(
            book.deals[name], p, sp, COMMIT_FACTORS if name == "a_commit" else None
        )
        for name, (p, sp) in probabilities.items()
    }


def stored_scores():
    return {(s.opportunity_id, s.period_name): s.probability for s in DealScoreValue.objects.all()}


def score_calls(fake_engine):
    return [c for c in fake_engine.calls if c[0] == "scores"]


@pytest.fixture
def scored_book(book, fake_engine):
    """The book with a_commit 30 %, b_best 45 %, c_commit 80 % (P) and a_next 70 % (N)
    scored and stored by the nightly recompute."""
    set_scores(
        fake_engine,
        book,
        a_commit=(0.3, 0.6),
        b_best=(0.45, 0.25),
        c_commit=(0.8, 0.6),
        a_next=(0.7, 0.6),
    )
    services.forecasts_recompute()
    return book


def page(client, user, **params):
    client.force_login(user)
    return client.get(INDEX, params)


@pytest.mark.django_db
class TestStoredByTheRecompute:
    def test_full_run_stores_every_open_deal_score_of_both_periods(self, book, fake_engine):
        set_scores(
            fake_engine,
            book,
            a_commit=(0.3, 0.6),
            b_best=(0.45, 0.25),
            c_commit=(0.8, 0.6),
            a_next=(0.7, 0.6),
            a_won=(0.99, 1.0),  # won already: the engine scores open deals only
        )
        result = services.forecasts_recompute()
        nxt = period_shift(book.period, 1)
        p, n, d = book.period.name, nxt.name, book.deals
        assert stored_scores() == {
            (d["a_commit"].pk, p): 0.3,
            (d["b_best"].pk, p): 0.45,
            (d["c_commit"].pk, p): 0.8,
            (d["a_next"].pk, n): 0.7,
        }
        assert result.deal_scores == 4
        # One company-scope call per stored period
        assert score_calls(fake_engine) == [("scores", "company", p), ("scores", "company", n)]
        row = DealScoreValue.objects.get(opportunity=d["a_commit"])
        assert row.top_factors == [list(f) for f in COMMIT_FACTORS]
        assert (row.stage_probability, row.period_start, row.period_end, row.as_of) == (
            0.6,
            book.period.start,
            book.period.end,
            timezone.localdate(),
        )
        # Written by the same run as the forecasts
        run = ForecastRun.objects.get()
        assert set(DealScoreValue.objects.values_list("run", flat=True)) == {run.pk}
        assert ForecastValue.objects.filter(run=run).count() == 28
        job = JobRun.objects.get(kind="forecasting.recompute")
        assert job.detail["deal_scores"] == 4

    def test_rerun_replaces_the_periods_rows(self, scored_book, fake_engine):
        book = scored_book
        # b_best no longer scored, a_commit now 40 %
        set_scores(fake_engine, book, a_commit=(0.4, 0.6), c_commit=(0.8, 0.6), a_next=(0.7, 0.6))
        services.forecasts_recompute()
        p, d = book.period.name, book.deals
        assert stored_scores() == {
            (d["a_commit"].pk, p): 0.4,
            (d["c_commit"].pk, p): 0.8,
            (d["a_next"].pk, period_shift(book.period, 1).name): 0.7,
        }

    def test_a_failed_write_keeps_the_old_scores_and_forecasts(
        self, scored_book, fake_engine, monkeypatch
    ):
        before_scores = stored_scores()
        before_values = set(ForecastValue.objects.values_list("scope_key", "method", "expected"))
        fake_engine.bump = D("5")
        set_scores(fake_engine, scored_book, a_commit=(0.9, 0.6))

        def boom(*args, **kwargs):
            raise RuntimeError("disk full")

        # The scores are written after the forecasts, in the same transaction: failing
        # there must take the new forecast rows back too.
        monkeypatch.setattr(DealScoreValue.objects, "bulk_create", boom)
        with pytest.raises(RuntimeError):
            services.forecasts_recompute()
        assert stored_scores() == before_scores
        assert (
            set(ForecastValue.objects.values_list("scope_key", "method", "expected"))
            == before_values
        )
        assert ForecastRun.objects.count() == 1

    def test_an_engine_failure_keeps_the_old_scores(self, scored_book, fake_engine):
        before = stored_scores()

        def boom(**kwargs):
            raise RuntimeError("engine down")

        fake_engine.deal_scores = boom
        with pytest.raises(RuntimeError):
            services.forecasts_recompute()
        assert stored_scores() == before

    def test_owner_recompute_rescores_only_the_owners_deals(self, scored_book, fake_engine):
        book = scored_book
        p, d = book.period.name, book.deals
        set_scores(
            fake_engine,
            book,
            a_commit=(0.99, 0.6),  # rep_a: not recomputed, stays 30 %
            b_best=(0.9, 0.25),
            b_commit=(0.5, 0.6),
            c_commit=(0.1, 0.6),  # rep_c: stays 80 %
        )
        fake_engine.calls.clear()
        result = services.forecasts_recompute_owners(owner_ids=[book.rep_b.pk])
        assert stored_scores() == {
            (d["a_commit"].pk, p): 0.3,
            (d["b_best"].pk, p): 0.9,
            (d["b_commit"].pk, p): 0.5,
            (d["c_commit"].pk, p): 0.8,
            (d["a_next"].pk, period_shift(book.period, 1).name): 0.7,
        }
        assert result.deal_scores == 2
        # One call per period for exactly rep_b's deals
        assert score_calls(fake_engine) == [
            ("scores", "team", p),
            ("scores", "team", period_shift(book.period, 1).name),
        ]
        job = JobRun.objects.get(kind="forecasting.recompute_scopes")
        assert job.detail["deal_scores"] == 2

    def test_a_won_deal_loses_its_score_and_a_reassigned_one_moves(self, scored_book, fake_engine):
        book = scored_book
        p, d = book.period.name, book.deals
        now = timezone.now()
        book.w.move(d["b_best"], when=now, stage="won")
        book.w.move(d["c_commit"], when=now, owner=book.rep_b)
        set_scores(fake_engine, book, b_best=(0.45, 0.25), c_commit=(0.65, 0.6))
        # forecast_deal_changed passes every owner the deal had: rep_b and rep_c
        services.forecasts_recompute_owners(owner_ids=[book.rep_b.pk, book.rep_c.pk])
        scores = stored_scores()
        assert (d["b_best"].pk, p) not in scores
        assert scores[(d["c_commit"].pk, p)] == 0.65
        assert scores[(d["a_commit"].pk, p)] == 0.3

    def test_scores_of_ended_periods_are_dropped(self, book, fake_engine):
        prev = period_shift(book.period, -1)
        late = book.w.deal(
            owner=book.rep_a,
            amount="600",
            stage="qualify",
            created=prev.start - timedelta(days=10),
            close=prev.end,
            when=at(prev.start - timedelta(days=10)),
        )
        fake_engine.scores = {late.pk: score(late, 0.2, 0.25)}
        services.forecasts_recompute(as_of=prev.start + timedelta(days=8))
        assert stored_scores() == {(late.pk, prev.name): 0.2}
        services.forecasts_recompute()  # today: P and N; prev has ended
        assert stored_scores() == {}


@pytest.mark.django_db
class TestThePageReadsStoredScores:
    def test_no_engine_call_for_scores_and_values_by_hand(self, client, scored_book, fake_engine):
        book, d = scored_book, scored_book.deals
        fake_engine.calls.clear()
        response = page(client, book.cso, period=book.period.name, sort="value")
        assert response.status_code == 200
        assert score_calls(fake_engine) == []
        rows = response.context["deals_page"].object_list
        # Expected = amount x ML (scored) or x stage probability (not scored):
        # a_commit 5000 x 30 % = 1500, c_commit 1500 x 80 % = 1200, a_pipe 9000 x 10 % = 900,
        # a_best 2000 x 25 % = 500, b_commit 700 x 60 % = 420, b_best 400 x 45 % = 180
        assert [(r["id"], r["expected_value"], r["scored"]) for r in rows] == [
            (d["a_commit"].pk, D("1500.00"), True),
            (d["c_commit"].pk, D("1200.00"), True),
            (d["a_pipe"].pk, D("900.00"), False),
            (d["a_best"].pk, D("500.00"), False),
            (d["b_commit"].pk, D("420.00"), False),
            (d["b_best"].pk, D("180.00"), True),
        ]
        # The page shows the first three factors, as stored
        assert rows[0]["factors"] == COMMIT_FACTORS[:3]
        assert "Low probability in commit" in rows[0]["risks"]  # commit at 30 %
        assert "Low probability in commit" not in rows[4]["risks"]  # b_commit: stage 60 %
        assert (response.context["deals_scored"], response.context["deals_unscored"]) == (3, 3)
        assert response.context["deals_scored_as_of"] == timezone.localdate()

    def test_a_deal_without_a_stored_score_shows_the_marker(self, client, scored_book, fake_engine):
        book, d = scored_book, scored_book.deals
        html = page(client, book.cso, period=book.period.name).content.decode()
        assert html.count('data-testid="not-scored"') == 3
        assert 'data-testid="deals-unscored"' in html
        assert "3 deals not scored yet" in html
        row = html.split(f'data-deal="{d["a_pipe"].pk}"')[1].split("</tr>")[0]
        assert "10.0%" in row and "not scored yet" in row
        row = html.split(f'data-deal="{d["a_commit"].pk}"')[1].split("</tr>")[0]
        assert "30.0%" in row and "not scored yet" not in row

    def test_nothing_stored_yet_every_deal_is_marked(self, client, book, fake_engine):
        response = page(client, book.cso, period=book.period.name)
        assert response.context["deals_unscored"] == 6
        assert response.content.decode().count('data-testid="not-scored"') == 6
        assert score_calls(fake_engine) == []

    def test_a_month_period_has_no_quarter_scores(self, client, scored_book, fake_engine):
        # Scores are the probability of winning within the stored quarter, not a month.
        book = scored_book
        month = fiscal.period_containing(book.period.end, "month", settings.FISCAL_YEAR_START_MONTH)
        response = page(client, book.cso, period=month.name)
        assert response.status_code == 200
        rows = response.context["deals_page"].object_list
        assert rows and not any(r["scored"] for r in rows)

    def test_filters_narrow_the_list_not_the_scores(self, client, scored_book, fake_engine):
        book = scored_book
        big = book.w.deal(
            owner=book.rep_a,
            amount="3000",
            stage="propose",
            created=book.period.start,
            close=book.period.end,
            account="Big Corp",
            segment="enterprise",
        )
        fake_engine.scores[big.pk] = score(big, 0.55, 0.6)
        services.forecasts_recompute()
        fake_engine.calls.clear()
        enterprise = page(client, book.cso, period=book.period.name, segment="enterprise")
        assert enterprise.status_code == 200
        rows = enterprise.context["deals_page"].object_list
        # 3000 x 55 % = 1650
        assert [(r["id"], r["probability"], r["expected_value"]) for r in rows] == [
            (big.pk, 0.55, D("1650.00"))
        ]
        smb = page(client, book.cso, period=book.period.name, segment="smb")
        by_id = {r["id"]: r for r in smb.context["deals_page"].object_list}
        assert big.pk not in by_id and len(by_id) == 6
        assert by_id[book.deals["a_commit"].pk]["probability"] == 0.3
        assert score_calls(fake_engine) == []

    @pytest.mark.parametrize(
        ("who", "expected"),
        [
            ("manager_east", {"a_commit", "a_best", "a_pipe", "b_commit", "b_best"}),
            ("rep_c", {"c_commit"}),
            ("rep_b", {"b_commit", "b_best"}),
        ],
    )
    def test_visibility_is_unchanged(self, client, scored_book, fake_engine, who, expected):
        book = scored_book
        response = page(client, getattr(book, who), period=book.period.name)
        rows = response.context["deals_page"].object_list
        assert {r["id"] for r in rows} == {book.deals[k].pk for k in expected}
        scored = {r["id"]: r["probability"] for r in rows if r["scored"]}
        all_scores = {"a_commit": 0.3, "b_best": 0.45, "c_commit": 0.8}
        assert scored == {book.deals[k].pk: p for k, p in all_scores.items() if k in expected}

    def test_out_of_scope_is_still_404(self, client, scored_book, fake_engine):
        book = scored_book
        assert page(client, book.rep_a, rep=book.rep_c.pk).status_code == 404
        assert page(client, book.manager_east, team=book.west.pk).status_code == 404

    def test_query_count_is_pinned_and_does_not_grow_with_scores(
        self, client, scored_book, fake_engine, django_assert_num_queries
    ):
        book = scored_book
        client.force_login(book.cso)
        params = {"period": book.period.name}
        with django_assert_num_queries(25):
            assert client.get(INDEX, params).status_code == 200
        for i in range(30):
            deal = book.w.deal(
                owner=book.rep_b,
                amount=str(100 + i),
                stage="qualify",
                created=book.period.start,
                close=book.period.end,
                account=f"More {i}",
            )
            fake_engine.scores[deal.pk] = score(deal, 0.5, 0.25)
        services.forecasts_recompute()
        assert DealScoreValue.objects.filter(period_name=book.period.name).count() == 33
        with django_assert_num_queries(25):
            response = client.get(INDEX, params)
        assert response.context["deals_scored"] == 33
