"""Overview and drill-down pages: numbers, filters, drill-down totals, bad input, CSV,
query counts, and the role matrix (executive, manager, rep, anonymous; in and out of
scope)."""

from __future__ import annotations

import csv
import io
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
OVERVIEW = reverse("dashboards:overview")
RECORDS = reverse("dashboards:records")


def get(client, user, url, **params):
    if user is not None:
        client.force_login(user)
    return client.get(url, params)


def kpi(book, name, **kw):
    return kpi_value(name=name, period=Q3, user=book.cso, **kw).value


@pytest.mark.django_db
class TestOverview:
    def test_tiles_show_the_kpi_engine_numbers_with_links(self, client, book):
        # When the CSO opens the overview for Q3
        response = get(client, book.cso, OVERVIEW, period=Q3)
        # Then bookings (1000 + 3000 + 550) show compact with quota and attainment
        assert response.status_code == 200
        tiles = {t.name: t for t in response.context["tiles"]}
        assert tiles["bookings"].value == "$4.6K"
        assert dict(tiles["bookings"].extra) == {"Quota": "$5.4K", "Attainment": "84.3%"}
        assert tiles["win_rate"].value == "75.0%"
        assert tiles["new_logos"].value == "2"
        # and the bookings tile links to its records for the same filters
        assert tiles["bookings"].url == f"{RECORDS}?period={Q3}&metric=bookings"
        assert "Data as of" in response.content.decode()

    def test_no_data_is_an_em_dash_and_the_change_needs_a_previous_value(self, client, book):
        response = get(client, book.cso, OVERVIEW, period=Q3)
        tiles = {t.name: t for t in response.context["tiles"]}
        # No subscriptions or survey answers exist: no data, never 0
        assert tiles["nrr"].value == "\u2014"
        assert tiles["nps"].value == "\u2014"
        # Q2 bookings (2000) -> Q3 (4550): +127.5 %, good for an up KPI
        assert (tiles["bookings"].change, tiles["bookings"].tone) == ("+127.5%", "good")

    def test_bookings_chart_points_link_to_their_month(self, client, book):
        response = get(client, book.cso, OVERVIEW, period=Q3)
        bars = response.context["bookings_chart"]["data"][0]
        assert bars["y"] == [1000.0, 3000.0, 550.0]
        assert bars["customdata"][2] == f"{RECORDS}?period=2024-09-01..2024-09-30&metric=bookings"
        cumulative_quota = response.context["bookings_chart"]["data"][2]["y"]
        assert cumulative_quota == [1800.0, 3600.0, 5400.0]

    def test_attainment_by_team(self, client, book):
        response = get(client, book.cso, OVERVIEW, period=Q3)
        (trace,) = response.context["attainment_chart"]["data"]
        # East: 4000 / (3 x 1500); West: 550 / (3 x 300)
        assert trace["y"] == ["East", "West"]
        assert trace["x"] == pytest.approx([4000 / 4500 * 100, 550 / 900 * 100])
        assert trace["customdata"][1] == (
            f"{RECORDS}?period={Q3}&team={book.west.pk}&metric=bookings"
        )

    def test_filters_change_results_as_the_selectors_say(self, client, book):
        response = get(client, book.cso, OVERVIEW, period=Q3, region=book.eu.pk)
        tiles = {t.name: t for t in response.context["tiles"]}
        expected = kpi(book, "bookings", filters=KpiFilters(region=book.eu.pk))
        assert expected == D("3550.00")
        assert tiles["bookings"].value == "$3.6K"
        # Quotas are not kept by region: those figures are no data under the filter
        assert tiles["pipeline_coverage"].value == "\u2014"
        assert tiles["pipeline_coverage"].note == "Not available filtered by region"
        assert tiles["bookings"].extra == []
        assert response.context["attainment_chart"] is None

    def test_empty_state_without_data(self, client, world):
        response = get(client, world.cso, OVERVIEW)
        assert response.status_code == 200
        assert "No data yet" in response.content.decode()
        assert response.context["tiles"][0].value == "$0"
        assert response.context["tiles"][1].value == "\u2014"

    def test_query_count_is_the_same_at_two_data_sizes(self, client, book):
        client.force_login(book.cso)
        client.get(OVERVIEW, {"period": Q3})  # warm caches (content types, sessions)
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as small:
            assert client.get(OVERVIEW, {"period": Q3}).status_code == 200
        add_noise(book, 60)
        rollups_rebuild()
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as large:
            assert client.get(OVERVIEW, {"period": Q3}).status_code == 200
        assert len(small) == len(large)
        assert len(large) <= 160


@pytest.mark.django_db
class TestDrillDown:
    @pytest.mark.parametrize(
        ("params", "kpi_name", "kpi_kw"),
        [
            ({"metric": "bookings"}, "bookings", {}),
            ({"metric": "open_pipeline"}, "open_pipeline", {}),
            ({"metric": "bookings", "region": "eu"}, "bookings", {"region": "eu"}),
            ({"metric": "bookings", "team": "east"}, "bookings", {"team": "east"}),
            ({"metric": "open_pipeline", "rep": "rep_b"}, "open_pipeline", {"rep": "rep_b"}),
        ],
    )
    def test_the_list_adds_up_to_the_figure(self, client, book, params, kpi_name, kpi_kw):
        lookup = {"eu": book.eu.pk, "east": book.east.pk, "rep_b": book.rep_b.pk}
        query = {k: lookup.get(v, v) for k, v in params.items()}
        response = get(client, book.cso, RECORDS, period=Q3, **query)
        assert response.status_code == 200
        kw = {}
        if "region" in kpi_kw:
            kw["filters"] = KpiFilters(region=book.eu.pk)
        if "team" in kpi_kw:
            kw["team_id"] = book.east.pk
        if "rep" in kpi_kw:
            kw["rep_id"] = book.rep_b.pk
        assert response.context["totals"].amount == kpi(book, kpi_name, **kw)

    def test_counts_match_won_deals_and_new_logos(self, client, book):
        won = get(client, book.cso, RECORDS, period=Q3, metric="won_deals").context["totals"]
        logos = get(client, book.cso, RECORDS, period=Q3, metric="new_logos").context["totals"]
        assert won.deals == kpi(book, "won_deals") == 3
        assert logos.deals == kpi(book, "new_logos") == 2

    def test_a_funnel_stage_narrows_open_pipeline(self, client, book):
        stage = book.stages["propose"].pk
        response = get(client, book.cso, RECORDS, period=Q3, metric="open_pipeline", stage=stage)
        assert response.context["totals"].amount == D("10000.00")
        assert response.context["stage_name"] == "Propose"

    def test_sorting_and_pagination_keep_the_total(self, client, book):
        add_noise(book, 120)
        response = get(client, book.cso, RECORDS, period=Q3, metric="won_deals", sort="close")
        page = response.context["page"]
        assert page.paginator.num_pages == 2
        closes = [d.close_date for d in page.object_list]
        assert closes == sorted(closes)
        assert response.context["totals"].deals == 3 + 60
        second = get(client, book.cso, RECORDS, period=Q3, metric="won_deals", page=2)
        assert len(second.context["page"].object_list) == 63 - 50

    def test_csv_export_has_every_row_and_the_same_total(self, client, book):
        response = get(client, book.cso, RECORDS, period=Q3, metric="bookings", format="csv")
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        assert rows[0][-1] == "Amount (USD)"
        assert len(rows) == 1 + 3
        assert sum(D(r[-1]) for r in rows[1:]) == D("4550.00")

    def test_query_count_is_the_same_at_two_data_sizes(self, client, book):
        client.force_login(book.cso)
        params = {"period": Q3, "metric": "won_deals"}
        client.get(RECORDS, params)
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as small:
            client.get(RECORDS, params)
        add_noise(book, 120)
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as large:
            client.get(RECORDS, params)
        assert len(small) == len(large) <= 20

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"period": "2024-Q9"}, "quarter"),
            ({"sort": "bogus"}, "sort must be one of"),
            ({"metric": "revenue"}, "Unknown figure"),
            ({"segment": "huge"}, "segment must be one of"),
            ({"team": "abc"}, "team must be a numeric id"),
            ({"colour": "red"}, "Unknown parameter colour"),
            ({"metric": "bookings", "stage": "1"}, "narrows open pipeline only"),
            ({"compare": "never"}, "compare must be one of"),
        ],
    )
    def test_bad_input_is_a_clear_400(self, client, book, params, message):
        response = get(client, book.cso, RECORDS, **{"period": Q3, **params})
        assert response.status_code == 400
        assert message in response.content.decode()

    def test_unknown_export_format_is_refused(self, client, book):
        response = get(client, book.cso, RECORDS, period=Q3, format="xml")
        assert response.status_code == 400


PAGES = [OVERVIEW, RECORDS]


@pytest.mark.django_db
class TestRoleMatrix:
    @pytest.mark.parametrize("url", PAGES)
    def test_anonymous_is_sent_to_login(self, client, book, url):
        response = client.get(url, {"period": Q3})
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))

    @pytest.mark.parametrize("url", PAGES)
    def test_executive_sees_any_team_and_rep(self, client, book, url):
        for params in ({}, {"team": book.west.pk}, {"rep": book.rep_c.pk}):
            assert get(client, book.cso, url, period=Q3, **params).status_code == 200

    @pytest.mark.parametrize("url", PAGES)
    def test_manager_sees_their_subtree_only(self, client, book, url):
        for params in ({}, {"team": book.east_sub.pk}, {"rep": book.rep_b.pk}):
            assert get(client, book.manager_east, url, period=Q3, **params).status_code == 200
        for params in ({"team": book.west.pk}, {"rep": book.rep_c.pk}, {"team": book.company.pk}):
            assert get(client, book.manager_east, url, period=Q3, **params).status_code == 404

    @pytest.mark.parametrize("url", PAGES)
    def test_rep_sees_themselves_only(self, client, book, url):
        assert get(client, book.rep_a, url, period=Q3).status_code == 200
        assert get(client, book.rep_a, url, period=Q3, rep=book.rep_a.pk).status_code == 200
        for params in ({"rep": book.rep_b.pk}, {"team": book.east.pk}):
            assert get(client, book.rep_a, url, period=Q3, **params).status_code == 404

    def test_default_scope_limits_the_records(self, client, book):
        # The manager's default is their team (rep_a + rep_b): 1000 + 3000, not rep_c's 550
        manager = get(client, book.manager_east, RECORDS, period=Q3, metric="bookings")
        assert manager.context["totals"].amount == D("4000.00")
        rep_b = get(client, book.rep_b, RECORDS, period=Q3, metric="bookings")
        assert rep_b.context["totals"].deals == 0
        assert "No deals match" in rep_b.content.decode()

    def test_csv_out_of_scope_is_404(self, client, book):
        response = get(client, book.rep_a, RECORDS, period=Q3, rep=book.rep_c.pk, format="csv")
        assert response.status_code == 404

    def test_rep_overview_hides_company_only_customer_figures(self, client, book):
        response = get(client, book.rep_a, OVERVIEW, period=Q3)
        tiles = {t.name: t for t in response.context["tiles"]}
        assert tiles["nrr"].value == "\u2014"
        assert tiles["nrr"].note == "Company-wide only"
        assert tiles["bookings"].value == "$4.0K"
