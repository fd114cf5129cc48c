"""Pipeline page: funnel and close-month figures add up to their drill-downs, the
waterfall rebuilt from history balances, bad input, role matrix and query counts."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.core.errors import ApplicationError
from apps.dashboards.selectors import pipeline_changes
from apps.dashboards.templatetags.dashboard_format import money_full
from apps.kpis.selectors import KpiFilters, KpiScope, kpi_value, period_parse
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import Q3, add_noise
from tests.kpis.conftest import at

D = Decimal
PIPELINE = reverse("dashboards:pipeline")


def _pipeline_now(response) -> str:
    """The "Pipeline now" total as the page shows it."""
    found = re.search(r'data-testid="pipeline-now">([^<]*)<', response.content.decode())
    assert found is not None
    return found.group(1)


RECORDS = reverse("dashboards:records")
CHANGES = reverse("dashboards:changes")


def get(client, user, url, **params):
    client.force_login(user)
    return client.get(url, params)


@pytest.mark.django_db
class TestPipelinePage:
    def test_funnel_bars_add_up_to_their_drill_down(self, client, book):
        response = get(client, book.cso, PIPELINE, period=Q3, since="2024-07-01")
        assert response.status_code == 200
        funnel = {s.label: s for s in response.context["funnel"]}
        # Open Q3 deals: Propose 10000 (d5), Qualify 4000 (d6), nothing in Prospect
        assert (funnel["Propose"].deals, funnel["Propose"].amount) == (1, D("10000.00"))
        assert (funnel["Qualify"].deals, funnel["Qualify"].amount) == (1, D("4000.00"))
        assert funnel["Prospect"].deals == 0
        drill = client.get(funnel["Propose"].url)
        assert drill.context["totals"].amount == funnel["Propose"].amount
        # The funnel's stage total is the KPI engine's open pipeline
        total = sum(s.amount for s in funnel.values())
        assert total == kpi_value(name="open_pipeline", period=Q3, user=book.cso).value

    def test_close_month_segments_link_to_their_deals(self, client, book):
        response = get(client, book.cso, PIPELINE, period=Q3, since="2024-07-01")
        traces = {t["name"]: t for t in response.context["category_chart"]["data"]}
        pipeline = traces["Pipeline"]
        # d6 closes in August (4000), d5 in September (10000), both category "pipeline"
        assert pipeline["y"] == [None, 4000.0, 10000.0]
        drill = client.get(pipeline["customdata"][1])
        assert drill.context["totals"].amount == D("4000.00")

    def test_waterfall_balances_and_classifies_from_history(self, book):
        w = book
        # Given on 2024-07-01 only d5 (10000, propose, closes 09-15), d6 (4000, 08-31)
        # existed among open Q3 deals; afterwards d6 slips to October and d5 grows
        d5 = next(o for o in w.rep_a.opportunities.all() if o.amount == D("10000"))
        d6 = next(o for o in w.rep_b.opportunities.all() if o.amount == D("4000"))
        w.move(d6, when=at(date(2024, 8, 1)), close_date=date(2024, 10, 15))
        w.move(d5, when=at(date(2024, 8, 2)), amount=D("12000"))
        new = w.deal(
            owner=w.rep_c,
            amount="700",
            stage="prospect",
            created=date(2024, 8, 3),
            close=date(2024, 9, 20),
        )
        rollups_rebuild()
        since = at(date(2024, 7, 15))
        # When the changes since 15 July are rebuilt
        changes = pipeline_changes(
            user=w.cso,
            period=period_parse(Q3),
            scope=KpiScope(kind="company"),
            filters=KpiFilters(),
            since=since,
        )
        # Then: then 14000; now 12000 + 700; d6 slipped, d5 up 2000, one new deal
        assert changes.start == D("14000.00")
        assert changes.end == D("12700.00")
        assert changes.steps["slipped_out"] == D("-4000.00")
        assert changes.steps["amount_up"] == D("2000.00")
        assert changes.steps["new"] == D("700.00")
        assert changes.start + sum(changes.steps.values()) == changes.end
        assert new.pk  # the new deal exists now but had no history on 15 July

    def test_every_waterfall_step_lists_deals_adding_up_to_it(self, client, book):
        # Given, besides d5 (10000) and d6 (4000) open in Q3 on 15 July, deals created on
        # 1 July that are then won, lost (in EUR), pulled into Q3 and shrunk; d6 slips out,
        # d5 grows and one deal is new
        w = book
        d5 = next(o for o in w.rep_a.opportunities.all() if o.amount == D("10000"))
        d6 = next(o for o in w.rep_b.opportunities.all() if o.amount == D("4000"))
        july, q3_close = date(2024, 7, 1), date(2024, 9, 10)
        won = w.deal(owner=w.rep_a, amount="1500", stage="qualify", created=july, close=q3_close)
        lost = w.deal(
            owner=w.rep_b,
            amount="800",
            currency="EUR",
            stage="qualify",
            created=july,
            close=q3_close,
        )
        pulled = w.deal(
            owner=w.rep_c, amount="600", stage="qualify", created=july, close=date(2024, 10, 20)
        )
        shrunk = w.deal(owner=w.rep_a, amount="900", stage="propose", created=july, close=q3_close)
        w.move(d6, when=at(date(2024, 8, 1)), close_date=date(2024, 10, 15))
        w.move(d5, when=at(date(2024, 8, 2)), amount=D("12000"))
        w.deal(
            owner=w.rep_c, amount="700", stage="prospect", created=date(2024, 8, 3), close=q3_close
        )
        w.move(won, when=at(date(2024, 8, 5)), stage="won")
        w.move(lost, when=at(date(2024, 8, 6)), stage="lost")
        w.move(pulled, when=at(date(2024, 8, 7)), close_date=q3_close)
        w.move(shrunk, when=at(date(2024, 8, 8)), amount=D("400"))
        rollups_rebuild()
        client.force_login(w.cso)
        page = client.get(PIPELINE, {"period": Q3, "since": "2024-07-15"})
        changes = page.context["changes"]
        trace = page.context["waterfall_chart"]["data"][0]
        # When every step of the waterfall is followed to its deals
        totals = {}
        steps = zip(trace["x"], trace["y"], trace["customdata"], strict=True)
        for label, y, url in list(steps)[1:-1]:
            response = client.get(url)
            assert response.status_code == 200
            step = response.context["step"]
            # Then the deals' changes add up to the step, to the cent
            assert response.context["total"] == changes.steps[step]
            assert response.context["count"] == changes.deals[step]
            assert float(response.context["total"]) == y
            totals[label] = response.context["total"]
        assert totals == {
            "New": D("700.00"),
            "Pulled in": D("600.00"),
            "Amount up": D("2000.00"),
            "Amount down": D("-500.00"),
            "Won": D("-1500.00"),
            "Lost": D("-880.00"),  # 800 EUR at the rate of 09-10 (1.10)
            "Slipped out": D("-4000.00"),
        }
        assert trace["customdata"][0] is None and trace["customdata"][-1] is None
        # the table under the chart links to the same lists
        assert [row[3] for row in page.context["change_rows"]] == trace["customdata"][1:-1]
        # CSV of one step: the same deals and amounts
        lines = (
            client.get(
                CHANGES, {"period": Q3, "since": "2024-07-15", "step": "lost", "format": "csv"}
            )
            .content.decode("utf-8-sig")
            .strip()
            .splitlines()
        )
        assert len(lines) == 2 and lines[1].endswith(",880.00,,-880.00")
        # a rep sees only their own deals behind a step
        client.force_login(w.rep_b)
        mine = client.get(CHANGES, {"period": Q3, "since": "2024-07-15", "step": "amount_up"})
        assert mine.context["count"] == 0

    def test_step_list_bad_input(self, client, book):
        client.force_login(book.cso)
        for params, message in (
            ({"step": "grown"}, "step must be one of"),
            ({"step": "new", "sort": "size"}, "sort must be one of"),
            ({"step": "new", "since": "2999-01-01"}, "future"),
        ):
            response = client.get(CHANGES, {"period": Q3, **params})
            assert response.status_code == 400
            assert message in response.content.decode()
        client.force_login(book.manager_east)
        assert client.get(CHANGES, {"step": "new", "team": book.west.pk}).status_code == 404

    def test_bad_since_is_a_clear_400(self, client, book):
        for since, message in (("yesterday", "since must be a date"), ("2999-01-01", "future")):
            response = get(client, book.cso, PIPELINE, period=Q3, since=since)
            assert response.status_code == 400
            assert message in response.content.decode()

    def test_roles(self, client, book):
        assert get(client, book.manager_east, PIPELINE, period=Q3).status_code == 200
        assert get(client, book.manager_east, PIPELINE, team=book.west.pk).status_code == 404
        assert get(client, book.rep_a, PIPELINE, period=Q3).status_code == 200
        assert get(client, book.rep_a, PIPELINE, rep=book.rep_c.pk).status_code == 404
        client.logout()
        assert client.get(PIPELINE).status_code == 302

    def test_rep_sees_only_their_own_pipeline(self, client, book):
        response = get(client, book.rep_b, PIPELINE, period=Q3, since="2024-07-01")
        funnel = {s.label: s for s in response.context["funnel"]}
        assert funnel["Propose"].deals == 0  # rep_a's deal
        assert funnel["Qualify"].amount == D("4000.00")
        assert [d.owner_id for d in response.context["aging"]] == [book.rep_b.pk]

    def test_query_count_is_the_same_at_two_data_sizes(self, client, book):
        client.force_login(book.cso)
        params = {"period": Q3, "since": "2024-07-01"}
        client.get(PIPELINE, params)
        cache.clear()  # the waterfall computed, not read from the cache
        with CaptureQueriesContext(connection) as small:
            assert client.get(PIPELINE, params).status_code == 200
        add_noise(book, 60)
        rollups_rebuild()
        with CaptureQueriesContext(connection) as large:
            assert client.get(PIPELINE, params).status_code == 200
        assert len(small) == len(large) <= 80

    def test_the_waterfall_is_cached_until_the_next_rollup_run(self, client, book):
        # Given a waterfall computed once
        params = {"period": Q3, "since": "2024-07-01"}
        first = get(client, book.cso, PIPELINE, **params).context["changes"]
        # When a deal changes but no rollup run has finished yet, the page still shows
        # the waterfall of the data version it was computed from, in fewer queries
        book.deal(
            owner=book.rep_a,
            amount="700",
            stage="qualify",
            created=date(2024, 8, 2),
            close=date(2024, 9, 20),
        )
        with CaptureQueriesContext(connection) as hit:
            cached = get(client, book.cso, PIPELINE, **params)
        # (the page's part came from the cache: it was not rendered again, and it shows the
        # total of the first computation)
        assert cached.context is None
        assert _pipeline_now(cached) == money_full(first.end)
        cache.clear()
        with CaptureQueriesContext(connection) as miss:
            get(client, book.cso, PIPELINE, **params)
        assert len(hit) < len(miss)
        # Then the next rollup run (a new data version) shows the new deal: 700 more new
        rollups_rebuild()
        after = get(client, book.cso, PIPELINE, **params).context["changes"]
        assert after.steps["new"] == first.steps["new"] + D("700.00")
        assert after.end == first.end + D("700.00")
        assert after.start == first.start


@pytest.mark.django_db
def test_an_open_deal_without_a_rate_is_an_error_not_a_silent_gap(book):
    # Given an open Q3 deal in a currency without any exchange rate
    book.deal(
        owner=book.rep_a,
        amount="900",
        currency="GBP",
        stage="qualify",
        created=date(2024, 8, 1),
        close=date(2024, 9, 12),
    )
    # When the waterfall is computed, then it refuses rather than leaving the deal out
    with pytest.raises(ApplicationError, match="no exchange rate"):
        pipeline_changes(
            user=book.cso,
            period=period_parse(Q3),
            scope=KpiScope(kind="company"),
            filters=KpiFilters(),
            since=at(date(2024, 7, 1)),
        )


@pytest.mark.django_db
class TestStepListPages:
    """A step's list reads only the page shown (plus the step's ids for the order and the
    totals), and its pages add up to the step clicked."""

    PARAMS = {"period": Q3, "since": "2024-07-01", "step": "new"}

    @pytest.fixture
    def many_new(self, book):
        """55 deals created after ``since``, open in Q3: more than one page of 50."""
        for i in range(55):
            book.deal(
                owner=(book.rep_a, book.rep_b, book.rep_c)[i % 3],
                amount=str(100 + 7 * i),
                stage="qualify",
                created=date(2024, 8, 2),
                close=date(2024, 9, 20),
                account=f"New {i:02d}",
            )
        rollups_rebuild()
        return book

    def _pages(self, client, **params):
        rows, totals = [], set()
        for number in (1, 2):
            response = client.get(CHANGES, {**self.PARAMS, **params, "page": number})
            assert response.status_code == 200
            rows += list(response.context["page"].object_list)
            totals.add((response.context["count"], response.context["total"]))
        (totals,) = totals  # every page shows the same count and total
        return rows, totals

    @pytest.mark.parametrize("sort", ["change", "-change", "name", "-owner", "close", "account"])
    def test_the_pages_add_up_to_the_step(self, client, many_new, sort):
        client.force_login(many_new.cso)
        waterfall = client.get(PIPELINE, {k: v for k, v in self.PARAMS.items() if k != "step"})
        step = waterfall.context["changes"].steps["new"]
        rows, (count, total) = self._pages(client, sort=sort)
        # Then the two pages hold every deal of the step once, and add up to it
        assert count == len(rows) == len({r.deal.pk for r in rows}) >= 55
        assert total == step == sum((r.change for r in rows), D("0.00"))
        # in the order asked for
        key = {
            "change": lambda r: r.change,
            "name": lambda r: r.deal.name.lower(),
            "owner": lambda r: (r.deal.owner.get_full_name() or r.deal.owner.username).lower(),
            "close": lambda r: r.deal.close_date,
            "account": lambda r: r.deal.account.name.lower(),
        }[sort.lstrip("-")]
        keys = [key(r) for r in rows]
        assert keys == sorted(keys, reverse=sort.startswith("-"))

    def test_a_page_loads_only_its_own_deals(self, client, many_new):
        client.force_login(many_new.cso)
        client.get(PIPELINE, {k: v for k, v in self.PARAMS.items() if k != "step"})
        # When the second page is opened (the waterfall's moves are in the cache)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(CHANGES, {**self.PARAMS, "page": 2})
        shown = len(response.context["page"].object_list)
        assert 0 < shown < 50
        # Then the full rows read (deal, account, owner, stage) are those of the page only
        full = [
            q["sql"]
            for q in captured.captured_queries
            if '"crm_opportunity"' in q["sql"] and '"crm_account"."name"' in q["sql"]
        ]
        assert len(full) == 1
        ids = re.search(r'"crm_opportunity"\."id" IN \(([^)]*)\)', full[0]).group(1)
        assert len(ids.split(",")) == shown
