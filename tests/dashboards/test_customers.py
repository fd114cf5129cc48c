"""Customers page: MRR movements reconcile with the KPI engine's closing MRR, cohorts,
NPS by segment, company-only scope, roles and query counts."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.dashboards.selectors import cohort_retention, mrr_movements, nps_by_segment
from apps.kpis.selectors import KpiFilters, kpi_value, period_parse
from apps.kpis.services import add_months, rollups_rebuild

D = Decimal
CUSTOMERS = reverse("dashboards:customers")
Q3 = "2024-Q3"


@pytest.fixture
def customers(world):
    """Acme (NA smb) 1000 from January; Beta (EU enterprise) 2000 from January, ends
    08-01 (churn in July); Gamma (EU smb) 500 from 07-01 (new in June -> July) plus 300
    more from 08-01 (expansion in July). NPS in August: Acme 10 and 9, Gamma 7, Beta 3."""
    w = world
    w.subscription("Acme", "1000", date(2024, 1, 1))
    w.subscription(
        "Beta", "2000", date(2024, 1, 1), date(2024, 8, 1), region=w.eu, segment="enterprise"
    )
    w.subscription("Gamma", "500", date(2024, 7, 1), region=w.eu)
    w.subscription("Gamma", "300", date(2024, 8, 1))
    for account, score in (("Acme", 10), ("Acme", 9), ("Gamma", 7), ("Beta", 3)):
        w.nps(account, score, date(2024, 8, 15))
    rollups_rebuild()
    return w


def closing(w, month: str, **kw) -> Decimal:
    return kpi_value(name="mrr", period=month, user=w.cso, **kw).value


@pytest.mark.django_db
class TestCustomers:
    def test_movements_reconcile_with_closing_mrr(self, customers):
        w = customers
        moves = {
            m.month: m
            for m in mrr_movements(
                period=period_parse("2024-01-01..2024-09-30"), filters=KpiFilters()
            )
        }
        july = moves[date(2024, 7, 1)]
        assert (july.new, july.expansion, july.contraction, july.churn) == (
            D("0.00"),
            D("300.00"),
            D("0.00"),
            D("-2000.00"),
        )
        assert moves[date(2024, 6, 1)].new == D("500.00")
        # Then closing MRR of a month = the previous closing + that month's movements
        for month, previous in (("2024-07", "2024-06"), ("2024-08", "2024-07")):
            m = moves[period_parse(month).start]
            assert closing(w, previous) + m.new + m.expansion + m.contraction + m.churn == (
                closing(w, month)
            )

    def test_cohorts_and_nps_by_segment(self, customers):
        cohorts = cohort_retention(period=period_parse(Q3), filters=KpiFilters())
        july = date(2024, 7, 1)
        assert cohorts.sizes[july] == 1
        assert cohorts.rows[july][:3] == [D(1), D(1), D(1)]
        assert cohorts.rows[date(2024, 9, 1)][1] is None  # October not reached in Q3
        split = {s.label: s for s in nps_by_segment(period=period_parse(Q3), filters=KpiFilters())}
        assert (split["SMB"].promoters, split["SMB"].passives) == (2, 1)
        assert split["Enterprise"].score == D(-100)

    def test_page_for_the_executive(self, client, customers):
        client.force_login(customers.cso)
        response = client.get(CUSTOMERS, {"period": Q3})
        assert response.status_code == 200
        tiles = {t.name: t.value for t in response.context["tiles"]}
        assert tiles["nps"] == "+25"
        split = response.context["nps_split_chart"]["data"]
        assert split[2]["y"][0] == 2  # promoters, all segments

    def test_a_segment_filter_changes_the_figures(self, client, customers):
        client.force_login(customers.cso)
        response = client.get(CUSTOMERS, {"period": Q3, "segment": "enterprise"})
        tiles = {t.name: t.value for t in response.context["tiles"]}
        assert tiles["nps"] == "-100"

    def test_team_and_rep_scopes_get_the_company_only_notice(self, client, customers):
        for user in (customers.manager_east, customers.rep_a):
            client.force_login(user)
            response = client.get(CUSTOMERS, {"period": Q3})
            assert response.status_code == 200
            assert response.context["company_only"] is True
            assert "tiles" not in response.context
        client.force_login(customers.manager_east)
        assert client.get(CUSTOMERS, {"team": customers.west.pk}).status_code == 404
        client.logout()
        assert client.get(CUSTOMERS).status_code == 302

    def test_query_count_is_the_same_at_two_data_sizes(self, client, customers):
        w = customers
        client.force_login(w.cso)
        client.get(CUSTOMERS, {"period": Q3})
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as small:
            assert client.get(CUSTOMERS, {"period": Q3}).status_code == 200
        for k in range(40):
            w.subscription(f"More {k}", "100", date(2024, 1 + k % 9, 1))
            w.nps(f"More {k}", k % 11, date(2024, 8, 1))
        rollups_rebuild()
        cache.clear()  # a computed page, not one read from the cache
        with CaptureQueriesContext(connection) as large:
            assert client.get(CUSTOMERS, {"period": Q3}).status_code == 200
        assert len(small) == len(large) <= 60


ACCOUNTS = reverse("dashboards:accounts")
COHORT = reverse("dashboards:cohort")
ONE_DAY = timedelta(days=1)


@pytest.mark.django_db
class TestAccountsDrillDown:
    def test_closing_total_is_the_mrr_tile_and_nrr_matches(self, client, customers):
        w = customers
        client.force_login(w.cso)
        response = client.get(ACCOUNTS, {"period": Q3})
        assert response.status_code == 200
        totals = response.context["totals"]
        # Closing MRR after Q3 (on 10-01): Acme 1000 + Gamma 800; Beta churned
        assert totals["closing"] == closing(w, Q3) == D("1800.00")
        assert totals["opening"] == D("3500.00")  # Acme, Beta and Gamma (from 07-01) on 07-01
        assert totals["nrr"] == kpi_value(name="nrr", period=Q3, user=w.cso).value
        # the customers page tiles link here with the same filters
        page = client.get(CUSTOMERS, {"period": Q3, "segment": "smb"})
        mrr_tile = next(t for t in page.context["tiles"] if t.name == "mrr")
        assert mrr_tile.url == f"{ACCOUNTS}?period={Q3}&segment=smb"
        smb = client.get(mrr_tile.url).context["totals"]
        assert smb["closing"] == closing(w, Q3, filters=KpiFilters(segment="smb"))

    def test_every_mrr_movement_bar_lists_accounts_adding_up_to_it(self, client, customers):
        # Given Delta paying 800 from January, of which 300 ends on 08-01: a contraction in
        # July, so every movement kind has a non-zero bar somewhere in the last 12 months
        w = customers
        w.subscription("Delta", "500", date(2024, 1, 1))
        w.subscription("Delta", "300", date(2024, 1, 1), date(2024, 8, 1))
        rollups_rebuild()
        client.force_login(w.cso)
        moves = {
            m.month.strftime("%b %Y"): m
            for m in mrr_movements(
                period=period_parse("2023-10-01..2024-09-30"), filters=KpiFilters()
            )
        }
        # When every bar of the chart is followed to its accounts list
        chart = client.get(CUSTOMERS, {"period": Q3}).context["mrr_chart"]
        followed = 0
        for trace in chart["data"][:4]:
            field = trace["name"].lower()
            for label, y, url in zip(trace["x"], trace["y"], trace["customdata"], strict=True):
                response = client.get(url)
                assert response.status_code == 200
                # Then the listed accounts' change adds up to the bar, to the cent
                change = response.context["totals"]["change"]
                assert change == getattr(moves[label], field)
                assert float(change) == y
                followed += bool(change)
        assert followed == 4  # June new; July expansion, contraction and churn
        july = {
            kind: client.get(ACCOUNTS, {"period": "2024-07", "movement": kind})
            for kind in ("new", "expansion", "contraction", "churn")
        }
        assert [r.name for r in july["churn"].context["page"].object_list] == ["Beta"]
        assert [r.name for r in july["contraction"].context["page"].object_list] == ["Delta"]
        assert july["expansion"].context["totals"]["change"] == D("300.00")
        assert july["new"].context["totals"]["accounts"] == 0
        # the CSV of a movement lists the same accounts
        csv_response = client.get(
            ACCOUNTS, {"period": "2024-07", "movement": "churn", "format": "csv"}
        )
        assert csv_response.content.decode("utf-8-sig").strip().splitlines()[1:] == [
            "Beta,enterprise,2000.00,0.00"
        ]

    def test_every_cohort_cell_lists_the_accounts_behind_its_share(self, client, customers):
        # Given the January 2024 cohort Acme and Beta (Beta stops paying on 08-01) and the
        # July cohort Gamma
        w = customers
        client.force_login(w.cso)
        chart = client.get(CUSTOMERS, {"period": Q3}).context["cohort_chart"]
        heatmap = chart["data"][0]
        followed = 0
        # When every reached cell of the heatmap is followed to its accounts
        for z_row, url_row in zip(heatmap["z"], heatmap["customdata"], strict=True):
            for z, url in zip(z_row, url_row, strict=True):
                if z is None:
                    assert url is None  # a month not reached has no list
                    continue
                response = client.get(url)
                assert response.status_code == 200
                # Then the paying share of the list is the cell
                assert round(float(response.context["share"]) * 100, 1) == z
                followed += 1
        assert followed == 9 + 3  # January to September, July to September
        august = client.get(COHORT, {"cohort": "2024-01", "month": "2024-08"})
        members = [(r.name, r.paying) for r in august.context["page"].object_list]
        assert members == [("Acme", True), ("Beta", False)]
        assert august.context["share"] == D("0.5")
        csv_lines = (
            client.get(COHORT, {"cohort": "2024-01", "month": "2024-08", "format": "csv"})
            .content.decode("utf-8-sig")
            .strip()
            .splitlines()
        )
        assert csv_lines[1:] == ["Acme,smb,yes,1000.00", "Beta,enterprise,no,0.00"]

    def test_cohort_list_bad_input_and_scope(self, client, customers):
        client.force_login(customers.cso)
        for params, message in (
            ({"cohort": "2024-13", "month": "2024-08"}, "cohort must be a month"),
            ({"cohort": "2024-08", "month": "2024-07"}, "before the cohort"),
            ({"cohort": "2024-01", "month": "2999-01"}, "future"),
            ({"cohort": "2024-01", "month": "2024-08", "sort": "size"}, "sort must be one of"),
        ):
            response = client.get(COHORT, params)
            assert response.status_code == 400
            assert message in response.content.decode()
        client.force_login(customers.manager_east)
        params = {"cohort": "2024-01", "month": "2024-08"}
        assert client.get(COHORT, params).context["company_only"] is True
        assert client.get(COHORT, {**params, "team": customers.west.pk}).status_code == 404

    def test_cohorts_stop_at_the_current_month(self, customers):
        # Given a subscription without an end (the rollup carries it into future months)
        today = timezone.localdate()
        this_month = date(today.year, today.month, 1)
        customers.subscription("Omega", "100", add_months(this_month, -2))
        rollups_rebuild()
        # When the cohorts of a period running three months ahead are built
        ahead = add_months(this_month, 3)
        period = period_parse(f"{add_months(this_month, -8)}..{add_months(ahead, 1) - ONE_DAY}")
        cohorts = cohort_retention(period=period, filters=KpiFilters())
        # Then nothing after this month is shown as retained
        assert cohorts.months[-1] == this_month
        row = cohorts.rows[add_months(this_month, -2)]
        assert row[:3] == [D(1), D(1), D(1)] and row[3] is None

    def test_movement_needs_one_month_and_a_known_kind(self, client, customers):
        client.force_login(customers.cso)
        quarter = client.get(ACCOUNTS, {"period": Q3, "movement": "churn"})
        assert quarter.status_code == 400
        assert "single month" in quarter.content.decode()
        unknown = client.get(ACCOUNTS, {"period": "2024-07", "movement": "growth"})
        assert unknown.status_code == 400
        assert "movement must be one of" in unknown.content.decode()

    def test_csv_sort_and_bad_input(self, client, customers):
        client.force_login(customers.cso)
        csv_response = client.get(ACCOUNTS, {"period": Q3, "format": "csv"})
        lines = csv_response.content.decode("utf-8-sig").strip().splitlines()
        assert lines[0] == "Account,Segment,Opening MRR (USD),Closing MRR (USD)"
        assert len(lines) == 1 + 3
        by_name = client.get(ACCOUNTS, {"period": Q3, "sort": "name"})
        assert [r.name for r in by_name.context["page"].object_list] == ["Acme", "Beta", "Gamma"]
        assert client.get(ACCOUNTS, {"period": Q3, "sort": "size"}).status_code == 400
        assert client.get(ACCOUNTS, {"period": Q3, "format": "pdf"}).status_code == 400

    def test_company_only_and_out_of_scope(self, client, customers):
        client.force_login(customers.manager_east)
        assert client.get(ACCOUNTS, {"period": Q3}).context["company_only"] is True
        # no download for a team scope: the page with the notice instead
        refused = client.get(ACCOUNTS, {"period": Q3, "format": "csv"})
        assert refused["Content-Type"].startswith("text/html")
        assert refused.context["company_only"] is True
        assert client.get(ACCOUNTS, {"team": customers.west.pk}).status_code == 404
        client.logout()
        assert client.get(ACCOUNTS).status_code == 302


RESPONSES = reverse("dashboards:responses")


@pytest.mark.django_db
class TestResponsesDrillDown:
    def test_the_list_gives_the_nps_tile(self, client, customers):
        w = customers
        client.force_login(w.cso)
        page = client.get(CUSTOMERS, {"period": Q3})
        nps_tile = next(t for t in page.context["tiles"] if t.name == "nps")
        response = client.get(nps_tile.url)
        totals = response.context["totals"]
        assert totals.responses == 4
        assert totals.score == kpi_value(name="nps", period=Q3, user=w.cso).value
        detractors = client.get(RESPONSES, {"period": Q3, "group": "detractors"})
        assert [r.score for r in detractors.context["page"].object_list] == [3]

    def test_bad_group_scope_and_roles(self, client, customers):
        client.force_login(customers.cso)
        assert client.get(RESPONSES, {"period": Q3, "group": "fans"}).status_code == 400
        client.force_login(customers.rep_a)
        assert client.get(RESPONSES, {"period": Q3}).context["company_only"] is True
        assert client.get(RESPONSES, {"rep": customers.rep_b.pk}).status_code == 404
        client.logout()
        assert client.get(RESPONSES).status_code == 302
