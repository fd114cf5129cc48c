"""Team performance page: rep scorecards from the rollups agree with the KPI engine,
team comparison links add up, filters, roles and query counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.kpis.selectors import KpiFilters, kpi_value
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import Q3, add_noise

D = Decimal
TEAM = reverse("dashboards:team")


def get(client, user, **params):
    client.force_login(user)
    return client.get(TEAM, params)


def cards(response):
    return {row["card"].rep_id: row for row in response.context["rows"]}


@pytest.mark.django_db
class TestTeamPage:
    def test_scorecards_agree_with_the_kpi_engine(self, client, book):
        response = get(client, book.cso, period=Q3)
        assert response.status_code == 200
        rows = cards(response)
        for rep in (book.rep_a, book.rep_b, book.rep_c):
            card = rows[rep.pk]["card"]
            for field, name in (
                ("bookings", "bookings"),
                ("attainment", "attainment"),
                ("win_rate", "win_rate"),
                ("cycle_days", "sales_cycle_mean"),
                ("deal_size", "avg_deal_size"),
                ("pipeline", "open_pipeline"),
            ):
                expected = kpi_value(name=name, period=Q3, user=book.cso, rep_id=rep.pk).value
                assert getattr(card, field) == expected, (rep.username, field)
        # rep_a: Q2 2000 -> Q3 4000 is +100 %
        assert rows[book.rep_a.pk]["trend"] == "+100.0%"
        assert rows[book.rep_a.pk]["tone"] == "good"
        # links: the rep's won deals add up, and the reviews page of that rep
        drill = client.get(rows[book.rep_a.pk]["bookings_url"])
        assert drill.context["totals"].amount == D("4000.00")
        assert rows[book.rep_a.pk]["reviews_url"] == reverse("reviews:rep", args=[book.rep_a.pk])

    def test_team_bars_link_to_their_bookings(self, client, book):
        response = get(client, book.cso, period=Q3)
        (trace,) = response.context["team_chart"]["data"]
        assert trace["x"] == ["East", "West"]
        assert trace["y"] == [4000.0, 550.0]
        assert client.get(trace["customdata"][1]).context["totals"].amount == D("550.00")

    def test_a_filter_changes_scorecards_and_drops_attainment(self, client, book):
        response = get(client, book.cso, period=Q3, region=book.eu.pk)
        card = cards(response)[book.rep_a.pk]["card"]
        expected = kpi_value(
            name="bookings",
            period=Q3,
            user=book.cso,
            rep_id=book.rep_a.pk,
            filters=KpiFilters(region=book.eu.pk),
        ).value
        assert card.bookings == expected == D("3000.00")
        assert card.attainment is None

    def test_roles(self, client, book):
        assert set(cards(get(client, book.manager_east, period=Q3))) == {
            book.rep_a.pk,
            book.rep_b.pk,
        }
        assert get(client, book.manager_east, rep=book.rep_c.pk).status_code == 404
        assert set(cards(get(client, book.rep_b, period=Q3))) == {book.rep_b.pk}
        assert get(client, book.rep_b, team=book.east.pk).status_code == 404
        client.logout()
        assert client.get(TEAM).status_code == 302

    def test_query_count_is_the_same_at_two_data_sizes(self, client, book):
        client.force_login(book.cso)
        client.get(TEAM, {"period": Q3})
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as small:
            assert client.get(TEAM, {"period": Q3}).status_code == 200
        add_noise(book, 60)
        rollups_rebuild()
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as large:
            assert client.get(TEAM, {"period": Q3}).status_code == 200
        assert len(small) == len(large) <= 100
