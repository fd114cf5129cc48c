"""Quotas and attainment page: per-rep attainment from the rollups agrees with the KPI
engine, bands count reps, leaderboard links add up, roles and query counts."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.dashboards.selectors import attainment_bands, rep_attainment
from apps.kpis.selectors import kpi_value, period_parse, scope_resolve
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import Q3, add_noise

D = Decimal
ATTAINMENT = reverse("dashboards:attainment")


def get(client, user, **params):
    client.force_login(user)
    return client.get(ATTAINMENT, params)


@pytest.mark.django_db
class TestAttainment:
    def test_rep_rows_agree_with_the_kpi_engine(self, book):
        rows = rep_attainment(
            user=book.cso, period=period_parse(Q3), scope=scope_resolve(user=book.cso)
        )
        by_rep = {r.rep_id: r for r in rows}
        for rep in (book.rep_a, book.rep_b, book.rep_c):
            expected = kpi_value(name="attainment", period=Q3, user=book.cso, rep_id=rep.pk)
            assert by_rep[rep.pk].attainment == expected.value
        # rep_a: 4000 / 3000 first; rep_b booked nothing against 1500
        assert [r.rep_id for r in rows] == [book.rep_a.pk, book.rep_c.pk, book.rep_b.pk]
        assert by_rep[book.rep_b.pk].attainment == D("0")

    def test_bands_count_every_rep_once(self, book):
        rows = rep_attainment(
            user=book.cso, period=period_parse(Q3), scope=scope_resolve(user=book.cso)
        )
        bands = dict(attainment_bands(rows))
        # rep_a 133 %, rep_c 550/900 = 61 %, rep_b 0 %
        assert bands == {
            "< 50%": 1,
            "50-75%": 1,
            "75-100%": 0,
            "100-125%": 0,
            "\u2265 125%": 1,
            "No quota": 0,
        }

    def test_page_leaderboard_links_add_up(self, client, book):
        response = get(client, book.cso, period=Q3)
        assert response.status_code == 200
        row, url = response.context["leaderboard"][0]
        assert row.rep_id == book.rep_a.pk
        drill = client.get(url)
        assert drill.context["totals"].amount == row.bookings == D("4000.00")

    def test_deal_filters_are_named_as_not_applying(self, client, book):
        response = get(client, book.cso, period=Q3, segment="enterprise")
        assert response.context["ignored_filters"] == "segment"
        assert "does not apply" in response.content.decode()

    def test_roles(self, client, book):
        manager = get(client, book.manager_east, period=Q3)
        assert {r.rep_id for r, _ in manager.context["leaderboard"]} == {
            book.rep_a.pk,
            book.rep_b.pk,
        }
        assert get(client, book.manager_east, team=book.west.pk).status_code == 404
        rep = get(client, book.rep_c, period=Q3)
        assert [r.rep_id for r, _ in rep.context["leaderboard"]] == [book.rep_c.pk]
        assert get(client, book.rep_c, rep=book.rep_a.pk).status_code == 404
        client.logout()
        assert client.get(ATTAINMENT).status_code == 302

    def test_query_count_is_the_same_at_two_data_sizes(self, client, book):
        client.force_login(book.cso)
        client.get(ATTAINMENT, {"period": Q3})
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as small:
            assert client.get(ATTAINMENT, {"period": Q3}).status_code == 200
        add_noise(book, 60)
        rollups_rebuild()
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as large:
            assert client.get(ATTAINMENT, {"period": Q3}).status_code == 200
        assert len(small) == len(large) <= 80


@pytest.mark.django_db
def test_a_band_bar_lists_its_reps(client, book):
    client.force_login(book.cso)
    response = client.get(ATTAINMENT, {"period": Q3})
    (trace,) = response.context["band_chart"]["data"]
    below_half = trace["customdata"][0]
    assert trace["x"][0] == "< 50%"
    banded = client.get(below_half.split("#")[0])
    assert [r.rep_id for r, _ in banded.context["leaderboard"]] == [book.rep_b.pk]
    assert trace["y"][0] == 1
    assert client.get(ATTAINMENT, {"period": Q3, "band": "huge"}).status_code == 400
