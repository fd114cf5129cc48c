"""The page cache (a rendered page fragment per viewer, scope, parameters, day and data
version), the per-request memo of the visibility scope, and the cached waterfall step
drill-down: a hit shows what a fresh build shows, and nothing stale survives a rollup run,
an org-chart change or a change of scope."""

from __future__ import annotations

import re
from datetime import date
from unittest import mock

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.dashboards import selectors, views
from apps.kpis.services import rollups_rebuild
from apps.org import policy
from apps.org.models import Role, Team
from tests.dashboards.conftest import Q3

OVERVIEW = reverse("dashboards:overview")
PIPELINE = reverse("dashboards:pipeline")
CHANGES = reverse("dashboards:changes")
TEAM = reverse("dashboards:team")


def get(client, user, url, **params):
    client.force_login(user)
    return client.get(url, params)


def fragment(response) -> str:
    """The page's own part: what follows the filter bar, up to the end of <main>."""
    html = response.content.decode()
    return html.split("</form>", 1)[1].split("</main>", 1)[0]


def bookings_tile(response) -> str:
    """The value shown on the bookings tile."""
    found = re.search(
        r'data-kpi="bookings".*?class="db-tile-value"[^>]*>([^<]*)<',
        response.content.decode(),
        re.S,
    )
    assert found is not None, "no bookings tile"
    return found.group(1).strip()


@pytest.mark.django_db
class TestPageCache:
    def test_a_hit_serves_the_same_fragment_without_building_the_page(self, client, book):
        # Given the CSO's overview built once
        client.force_login(book.cso)
        with CaptureQueriesContext(connection) as built:
            first = client.get(OVERVIEW, {"period": Q3})
        assert "tiles" in first.context
        # When it is opened again
        with CaptureQueriesContext(connection) as hit:
            again = client.get(OVERVIEW, {"period": Q3})
        # Then the page's part is the same HTML, read from the cache: no template rendered
        assert again.status_code == 200
        assert again.context is None
        assert fragment(again) == fragment(first)
        assert len(hit) < len(built)
        # while the frame is drawn for this request: freshness and the signed-in user
        assert "Data as of" in again.content.decode()
        assert 'name="csrfmiddlewaretoken"' in again.content.decode()

    def test_a_rollup_run_shows_a_data_change_at_once(self, client, book):
        # Given the overview shown (bookings 1000 + 3000 + 550)
        assert bookings_tile(get(client, book.cso, OVERVIEW, period=Q3)) == "$4.6K"
        # When a deal is won but no rollup run has finished, the page is as of that run
        book.deal(
            owner=book.rep_c, amount="1000", stage="won", created=date(2024, 7, 1),
            close=date(2024, 8, 1),
        )  # fmt: skip
        assert bookings_tile(get(client, book.cso, OVERVIEW, period=Q3)) == "$4.6K"
        # Then the next finished rollup run (a new data version) shows it on the next view
        rollups_rebuild()
        assert bookings_tile(get(client, book.cso, OVERVIEW, period=Q3)) == "$5.6K"

    def test_each_viewer_gets_their_own_page(self, client, book):
        # Given the CSO's overview in the cache (the whole company: $4.6K)
        assert bookings_tile(get(client, book.cso, OVERVIEW, period=Q3)) == "$4.6K"
        # Then the manager of East sees East's bookings (rep_a 1000 + 3000), not the CSO's
        assert bookings_tile(get(client, book.manager_east, OVERVIEW, period=Q3)) == "$4.0K"

    def test_a_change_of_scope_is_shown_without_a_rollup_run(self, client, book):
        # Given the East manager's page in the cache
        assert bookings_tile(get(client, book.manager_east, OVERVIEW, period=Q3)) == "$4.0K"
        # When rep_c (550 booked in Q3) moves into East, with no rollup run since
        book.rep_c.team = book.east
        book.rep_c.save()
        # Then the manager's page counts rep_c's bookings at once (the key has the scope)
        assert bookings_tile(get(client, book.manager_east, OVERVIEW, period=Q3)) == "$4.6K"

    @pytest.mark.parametrize("url", [OVERVIEW, PIPELINE, TEAM, CHANGES])
    def test_out_of_scope_is_a_404_before_any_cache_lookup(self, client, book, url):
        # Given the page of the West team cached for the CSO
        params = {"period": Q3, "team": book.west.pk, "step": "new"}
        assert get(client, book.cso, url, **params).status_code == 200
        # When the East manager asks for West, the cache is never read
        client.force_login(book.manager_east)
        with mock.patch.object(views.cache, "get", wraps=views.cache.get) as read:
            assert client.get(url, params).status_code == 404
        read.assert_not_called()

    def test_bad_input_is_a_400_and_caches_nothing(self, client, book):
        client.force_login(book.cso)
        with mock.patch.object(views.cache, "set", wraps=views.cache.set) as write:
            response = client.get(PIPELINE, {"period": Q3, "since": "yesterday"})
        assert response.status_code == 400
        assert "since must be a date" in response.content.decode()
        write.assert_not_called()


@pytest.mark.django_db
class TestScopeMemo:
    def test_a_manager_scope_is_resolved_once_per_user_object(
        self, book, django_assert_num_queries
    ):
        manager = type(book.manager_east).objects.get(pk=book.manager_east.pk)
        with django_assert_num_queries(1):  # the teams below the manager's and their people
            first = policy.scope_for(manager)
        with django_assert_num_queries(0):
            assert policy.scope_for(manager) == first
        assert first.user_ids == {book.manager_east.pk, book.rep_a.pk, book.rep_b.pk}

    def test_a_team_or_user_saved_since_is_seen_on_the_same_object(self, book):
        manager = book.manager_east
        assert not policy.scope_for(manager).sees_user(book.rep_c.pk)
        # When rep_c moves into East (the same user object asks again)
        book.rep_c.team = book.east_sub
        book.rep_c.save()
        # Then the scope has rep_c
        assert policy.scope_for(manager).sees_user(book.rep_c.pk)
        # And a new team under West given to the manager brings West's people
        Team.objects.create(name="West SMB", kind=Team.Kind.TEAM, parent=book.west)
        book.west.manager = manager
        book.west.save()
        assert policy.scope_for(manager).sees_team(book.west.pk)

    def test_a_role_change_on_the_object_is_seen(self, book):
        manager = book.manager_east
        assert policy.scope_for(manager).sees_user(book.rep_a.pk)
        manager.role = Role.REP  # not saved: the object itself says so
        assert not policy.scope_for(manager).sees_user(book.rep_a.pk)
        manager.role = Role.MANAGER
        manager.is_active = False
        assert policy.scope_for(manager) == policy.NOTHING

    def test_a_managers_cached_page_resolves_the_scope_once(self, client, book):
        # Given the manager's page in the cache
        get(client, book.manager_east, OVERVIEW, period=Q3)
        # When it is read again, the policy's walk down the team table runs once
        with CaptureQueriesContext(connection) as hit:
            assert client.get(OVERVIEW, {"period": Q3}).status_code == 200
        policy_read = "WITH RECURSIVE below"
        managed = [q for q in hit.captured_queries if policy_read in q["sql"]]
        # (the KPI engine's scope check reuses it: the manager's own team is their scope)
        assert len(managed) == 1


@pytest.mark.django_db
class TestChangesCache:
    PARAMS = {"period": Q3, "since": "2024-07-01", "step": "new"}

    def test_the_step_list_reuses_the_waterfall_rebuild(self, client, book):
        client.force_login(book.cso)
        rebuild = mock.patch.object(selectors, "pipeline_moves", wraps=selectors.pipeline_moves)
        # Cold: the step list rebuilds the waterfall from history itself
        with rebuild as cold:
            first = client.get(CHANGES, self.PARAMS)
        assert first.status_code == 200 and cold.call_count == 1
        cache.clear()
        # After the pipeline page, the same list reads the moves it kept: no rebuild
        client.get(PIPELINE, {k: v for k, v in self.PARAMS.items() if k != "step"})
        with rebuild as warm:
            shared = client.get(CHANGES, self.PARAMS)
        assert warm.call_count == 0
        assert (shared.context["count"], shared.context["total"]) == (
            first.context["count"],
            first.context["total"],
        )
        # And opened again it is the cached page
        again = client.get(CHANGES, self.PARAMS)
        assert again.context is None
        assert fragment(again) == fragment(shared)

    def test_a_rollup_run_shows_a_new_deal_in_the_step(self, client, book):
        client.force_login(book.cso)
        before = client.get(CHANGES, self.PARAMS).context["count"]
        book.deal(
            owner=book.rep_a, amount="700", stage="qualify", created=date(2024, 8, 2),
            close=date(2024, 9, 20),
        )  # fmt: skip
        assert client.get(CHANGES, self.PARAMS).context is None  # cached, as of the last run
        rollups_rebuild()
        after = client.get(CHANGES, self.PARAMS)
        assert after.context["count"] == before + 1
