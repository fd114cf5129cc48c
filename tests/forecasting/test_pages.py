"""The Forecast page, its form posts and JSON: the role matrix (executive, manager, rep;
in and out of scope, edited URLs), submissions, category changes, scenarios, bad input,
empty state and query counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.forecasting import services
from apps.forecasting.models import ForecastCall, Scenario
from apps.org.models import Role, User
from tests.forecasting.fake_engine import DealScore

D = Decimal
INDEX = reverse("forecasting:index")
SUBMIT = reverse("forecasting:call_submit")


def get(client, user, url=INDEX, **params):
    client.force_login(user)
    return client.get(url, params)


@pytest.mark.django_db
class TestPage:
    def test_empty_state_before_anything_is_computed(self, client, book, fake_engine):
        response = get(client, book.cso)
        assert response.status_code == 200
        html = response.content.decode()
        assert 'data-testid="empty-state"' in html
        assert response.context["forecast_chart"] is None
        # Calls and deals work without stored forecasts
        assert response.context["rollup"].team == book.company

    def test_cso_sees_tiles_chart_calls_and_deals(self, client, book, fake_engine):
        fake_engine.scores = {
            book.deals["a_commit"].pk: DealScore(
                book.deals["a_commit"].pk, 0.3, 0.6, [("Days in stage", -0.2), ("Amount", 0.1)]
            )
        }
        services.forecasts_recompute()  # stores the scores; the page only reads them
        response = get(client, book.cso, period=book.period.name)
        assert response.status_code == 200
        tiles = {t.key: t for t in response.context["tiles"]}
        # Bookings so far in P: 1000 + 300 + 200
        assert tiles["won"].value == "$1.5K"
        assert tiles["weighted"].value == "$1.0K"
        assert dict(tiles["monte_carlo"].extra)["P10\u2013P90"] == "$900 \u2013 $1.1K"
        # Open deals of P by category: commit 5000 + 700 + 1500, best case 2000 + 400
        assert [
            (c["key"], c["amount"], c["deals"]) for c in response.context["open_by_category"]
        ] == [
            ("commit", D("7200.00"), 3),
            ("best_case", D("2400.00"), 2),
            ("pipeline", D("9000.00"), 1),
            ("omitted", D("0"), 0),
        ]
        bars = response.context["forecast_chart"]["data"]
        assert [b["name"] for b in bars[:2]] == ["Weighted pipeline", "Monte Carlo"]
        assert bars[1]["error_y"]["array"] == [100.0]
        deals = response.context["deals_page"].object_list
        # Open deals of P: 5000, 2000, 9000, 700, 400, 1500 (not next quarter's 8000)
        assert len(deals) == 6
        scored = next(d for d in deals if d["id"] == book.deals["a_commit"].pk)
        # ML 30 % x 5000 = 1500 expected; commit below 50 %: flagged
        assert scored["expected_value"] == D("1500.00")
        assert "Low probability in commit" in scored["risks"]
        assert scored["factors"] == [("Days in stage", -0.2), ("Amount", 0.1)]
        # Others are not scored: the stage probability, 9000 at 10 % = 900
        by_id = {d["id"]: d for d in deals}
        assert by_id[book.deals["a_pipe"].pk]["expected_value"] == D("900.00")
        assert not by_id[book.deals["a_pipe"].pk]["scored"]
        assert deals[0]["id"] == book.deals["a_commit"].pk

    def test_manager_defaults_to_their_team_and_can_submit(self, client, book, fake_engine):
        response = get(client, book.manager_east, period=book.period.name)
        assert response.status_code == 200
        assert response.context["call_team"] == book.east
        assert response.context["can_submit"] is True
        form = response.context["call_form"]
        # Pre-filled with the roll-up of the level below (no call yet)
        assert (form.initial["commit"], form.initial["best_case"]) == (
            D("7000.00"),
            D("9400.00"),
        )

    def test_rep_sees_themselves_without_calls_or_form(self, client, book, fake_engine):
        response = get(client, book.rep_a)
        assert response.status_code == 200
        assert response.context["query"].scope.kind == "rep"
        assert response.context["call_team"] is None and not response.context["can_submit"]
        deals = response.context["deals_page"].object_list
        assert {d["id"] for d in deals} == {
            book.deals[k].pk for k in ("a_commit", "a_best", "a_pipe")
        }

    @pytest.mark.parametrize(
        ("who", "params"),
        [
            ("manager_east", {"team": "west"}),
            ("manager_east", {"rep": "rep_c"}),
            ("rep_a", {"team": "east"}),
            ("rep_a", {"rep": "rep_b"}),
        ],
    )
    def test_edited_urls_outside_the_scope_are_404(self, client, book, fake_engine, who, params):
        resolved = {k: getattr(book, v).pk for k, v in params.items()}
        response = get(client, getattr(book, who), **resolved)
        assert response.status_code == 404
        for api in ("api_forecasts", "api_calls", "api_accuracy"):
            assert (
                get(
                    client, getattr(book, who), reverse(f"forecasting:{api}"), **resolved
                ).status_code
                == 404
            )

    def test_bad_input_is_a_400_with_the_reason(self, client, book, fake_engine):
        for params in ({"period": "2024-Q9"}, {"team": "x"}, {"nope": "1"}, {"sort": "magic"}):
            response = get(client, book.cso, **params)
            assert response.status_code == 400, params
            assert response.context["error"]

    def test_anonymous_is_sent_to_login(self, client, book):
        response = client.get(INDEX)
        assert response.status_code == 302 and "/login/" in response["Location"]

    def test_query_count_does_not_grow_with_the_data(self, client, book, fake_engine):
        services.forecasts_recompute()
        client.force_login(book.cso)
        params = {"period": book.period.name}

        def count():
            with CaptureQueriesContext(connection) as ctx:
                assert client.get(INDEX, params).status_code == 200
            return len(ctx.captured_queries)

        before = count()
        for i in range(30):
            book.w.deal(
                owner=book.rep_b,
                amount=str(100 + i),
                stage="qualify",
                created=book.period.start,
                close=book.period.end,
                account=f"More {i}",
            )
        from apps.kpis.services import rollups_rebuild

        rollups_rebuild()
        assert count() == before
        # 28 with the fake engine: the page's own reads (filters, scope, KPIs, roll-up,
        # history, stored values, snapshots, accuracy, deals, scenarios), none per row
        assert before == 25

    def test_manager_page_query_count(self, client, book, fake_engine, django_assert_num_queries):
        services.forecasts_recompute()
        client.force_login(book.manager_east)
        client.get(INDEX)  # warm the session
        # A manager's scope is resolved once per request (the policy keeps it on the user
        # object, one query); the count is fixed, none per row.
        with django_assert_num_queries(29):
            assert client.get(INDEX).status_code == 200


@pytest.mark.django_db
class TestSubmitPost:
    def post(self, client, user, team, commit="7500", best="9500", period=None, **extra):
        client.force_login(user)
        return client.post(
            SUBMIT,
            {
                "team": team.pk,
                "period": period or extra.pop("period_name", None),
                "commit": commit,
                "best_case": best,
                **extra,
            },
        )

    def test_manager_submits_and_is_sent_back_to_the_calls(self, client, book, fake_engine):
        response = self.post(
            client, book.manager_east, book.east, period=book.period.name, comment="Solid"
        )
        assert response.status_code == 302
        assert response["Location"].endswith(f"team={book.east.pk}#calls")
        call = ForecastCall.objects.get()
        assert (call.commit, call.rollup_commit, call.comment) == (
            D("7500.00"),
            D("7000.00"),
            "Solid",
        )
        page = get(client, book.manager_east, period=book.period.name)
        assert list(page.context["history"]) == [call]
        assert page.context["call_form"].initial["commit"] == D("7500.00")

    def test_outside_the_subtree_is_404_and_revops_is_403(self, client, book, fake_engine):
        assert (
            self.post(client, book.manager_east, book.west, period=book.period.name).status_code
            == 404
        )
        assert self.post(client, book.rep_a, book.east, period=book.period.name).status_code == 404
        revops = User.objects.create_user("ops", password="pw", role=Role.REVOPS_ADMIN)
        assert self.post(client, revops, book.east, period=book.period.name).status_code == 403
        assert ForecastCall.objects.count() == 0

    def test_form_errors_show_on_the_page(self, client, book, fake_engine):
        response = self.post(
            client, book.manager_east, book.east, commit="9", best="5", period=book.period.name
        )
        assert response.status_code == 400
        assert response.context["call_form"].errors["best_case"]
        response = self.post(
            client, book.manager_east, book.east, commit="-5", best="5", period=book.period.name
        )
        assert response.status_code == 400 and response.context["call_form"].errors["commit"]
        response = self.post(client, book.cso, book.company, period="FY2020")
        assert response.status_code == 400
        assert ForecastCall.objects.count() == 0


@pytest.mark.django_db
class TestCategoryPost:
    def test_rep_moves_own_deal_and_history_records_it(self, client, book, fake_engine):
        deal = book.deals["a_best"]
        client.force_login(book.rep_a)
        url = reverse("forecasting:deal_category", args=[deal.pk])
        response = client.post(url, {"category": "commit", "next": f"{INDEX}?sort=risk"})
        assert response.status_code == 302 and response["Location"] == f"{INDEX}?sort=risk"
        deal.refresh_from_db()
        assert deal.forecast_category == "commit"
        last = deal.history.order_by("-changed_at", "-id").first()
        assert (last.changed_fields, last.changed_by) == ("forecast_category", book.rep_a)

    def test_other_peoples_deals_and_bad_values(self, client, book, fake_engine):
        client.force_login(book.rep_a)
        other = reverse("forecasting:deal_category", args=[book.deals["c_commit"].pk])
        assert client.post(other, {"category": "pipeline"}).status_code == 404
        own = reverse("forecasting:deal_category", args=[book.deals["a_best"].pk])
        assert client.post(own, {"category": "closed"}).status_code == 400
        assert (
            client.post(own, {"category": "commit", "next": "https://evil.example/"})["Location"]
            == INDEX
        )
        assert client.get(own).status_code == 405


@pytest.mark.django_db
class TestScenarios:
    def test_what_if_inputs_change_the_outlook_and_save(self, client, book, fake_engine):
        response = get(client, book.cso, growth="10")
        years = response.context["outlook_years"]
        # The fake projects 100 x (1 + growth)
        assert years == [
            {
                "name": "FY2030",
                "value": D("110.0000"),
                "baseline": D("100.00"),
                "delta": D("10.0000"),
            }
        ]
        client.post(
            reverse("forecasting:scenario_save"),
            {
                "name": "Push",
                "growth": "10",
                "win": "2",
                "heads": "3",
                "months": "48",
                "next": INDEX,
            },
        )
        saved = Scenario.objects.get(owner=book.cso)
        assert (
            saved.growth_pct,
            saved.win_rate_delta_pts,
            saved.headcount_delta,
            saved.months,
        ) == (
            D("10.00"),
            D("2.00"),
            3,
            48,
        )
        page = get(client, book.cso, scenario=saved.pk)
        assert page.context["scenario_form"].cleaned_data["months"] == 48
        assert ("outlook", "company", "48") in fake_engine.calls

    def test_bad_inputs_and_other_peoples_scenarios(self, client, book, fake_engine):
        response = get(client, book.cso, growth="900")
        assert response.status_code == 200 and "outlook_error" in response.context
        theirs = Scenario.objects.create(owner=book.manager_east, name="Mine")
        assert get(client, book.cso, scenario=theirs.pk).status_code == 404
        bad = client.post(reverse("forecasting:scenario_save"), {"name": "", "growth": "1"})
        assert bad.status_code == 400


@pytest.mark.django_db
class TestJson:
    def test_forecasts_calls_and_accuracy(self, client, book, fake_engine):
        services.forecasts_recompute()
        services.call_submit(
            user=book.manager_east,
            team=book.east,
            period=book.period,
            commit="7100",
            best_case="9000",
        )
        data = get(
            client, book.manager_east, reverse("forecasting:api_forecasts"), period=book.period.name
        ).json()
        assert data["scope"] == "East"
        assert [(m["method"], m["expected"]) for m in data["methods"]] == [
            ("weighted", "300.00"),
            ("monte_carlo", "300.00"),
        ]
        assert data["call"]["commit"] == "7100.00"
        calls = get(client, book.manager_east, reverse("forecasting:api_calls")).json()
        assert [(c["commit"], c["rollup_commit"]) for c in calls["calls"]] == [
            ("7100.00", "7000.00")
        ]
        accuracy = get(client, book.manager_east, reverse("forecasting:api_accuracy")).json()
        assert accuracy == {"scope": "East", "periods": [], "sources": []}
        bad = get(client, book.cso, reverse("forecasting:api_forecasts"), period="nope")
        assert bad.status_code == 400 and "detail" in bad.json()
