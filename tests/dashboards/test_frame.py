"""The frame around every dashboard page and the whole-page cache: one query for the frame
(freshness, data version and the filter bar's choices), a cached page served without
rendering, with this request's CSRF token, freshness and notices filled in, and never
stale after an org-chart change (however it was made) nor shown to another viewer."""

from __future__ import annotations

import re
from datetime import timedelta
from unittest import mock

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.core.models import JobRun
from apps.crm.models import Product
from apps.dashboards import views
from apps.dashboards.selectors import data_version, frame_state
from apps.kpis.services import rollups_rebuild
from apps.org.models import Role, Team, User
from tests.dashboards.conftest import Q3

OVERVIEW = reverse("dashboards:overview")
TEAM = reverse("dashboards:team")
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
MARKER = re.compile(r"slot[0-9a-f]{32}")


def get(client, user, url=OVERVIEW, **params):
    client.force_login(user)
    return client.get(url, {"period": Q3, **params})


def options(response, name: str) -> list[tuple[int, str]]:
    """The (id, label) choices of one select of the filter bar, indentation removed."""
    html = response.content.decode()
    select = html.split(f'<select name="{name}">', 1)[1].split("</select>", 1)[0]
    found = re.findall(r'<option value="(\d+)"[^>]*>([^<]*)<', select)
    return [(int(pk), label.strip("\u2003")) for pk, label in found]


def team_options(response) -> list[str]:
    return [label for _, label in options(response, "team")]


def body(response) -> str:
    """The page's own part: what follows the filter bar."""
    return response.content.decode().split('aria-label="Filters"', 1)[1].split("</form>", 1)[1]


def user_menu(response) -> str:
    found = re.search(r'<span class="who">([^<]*)</span>', response.content.decode())
    assert found is not None
    return found.group(1)


@pytest.mark.django_db
class TestFrameState:
    def test_one_query_has_the_freshness_the_data_version_and_the_choices(
        self, book, django_assert_num_queries
    ):
        # Given a finished rollup run and a later run of another kind (a digest)
        later = JobRun.objects.create(
            kind="digests", status=JobRun.Status.SUCCEEDED, started_at=timezone.now(),
            finished_at=timezone.now() + timedelta(minutes=1),
        )  # fmt: skip
        # When the CSO's frame is read
        with django_assert_num_queries(1):
            state = frame_state(user=book.cso)
        # Then freshness is the latest run of any kind, the version the latest rollup run
        assert state.last_run_at == later.finished_at
        assert state.data_version == data_version() != "none"
        assert not state.data_version.startswith(f"{later.pk}@")
        # And the choices are every team, active rep, region and product, by name
        assert [name for _, _, name in state.teams] == ["Company", "East", "East SMB", "West"]
        assert [pk for pk, _, _, _ in state.reps] == sorted(
            [book.rep_a.pk, book.rep_b.pk, book.rep_c.pk]
        )
        assert [name for _, name in state.regions] == ["Europe", "North America"]
        assert [name for _, name in state.products] == ["Product X", "Product Y"]
        assert state.everything

    def test_a_manager_gets_the_policys_teams_and_reps_only(self, book):
        state = frame_state(user=book.manager_east)
        assert {pk for pk, _, _ in state.teams} == {book.east.pk, book.east_sub.pk}
        assert {pk for pk, _, _, _ in state.reps} == {book.rep_a.pk, book.rep_b.pk}
        assert not state.everything
        # And a rep sees no team and themselves
        state = frame_state(user=book.rep_c)
        assert state.teams == ()
        assert [pk for pk, _, _, _ in state.reps] == [book.rep_c.pk]

    def test_before_any_run_there_is_no_freshness_and_no_version(self, world):
        state = frame_state(user=world.cso)
        assert (state.last_run_at, state.data_version) == (None, "none")

    @pytest.mark.parametrize(
        "change",
        ["rename_team", "move_team", "new_rep", "rep_leaves", "rename_rep", "new_product"],
    )
    def test_the_org_version_follows_rows_changed_without_signals(self, book, change):
        # Given the CSO's frame
        before = frame_state(user=book.cso).org_version
        # When the org chart changes by a bulk write (no save signal, as an import does)
        if change == "rename_team":
            Team.objects.filter(pk=book.west.pk).update(name="West Coast")
        elif change == "move_team":
            Team.objects.filter(pk=book.east_sub.pk).update(parent=book.west)
        elif change == "new_rep":
            User.objects.bulk_create([User(username="rep_d", role=Role.REP, team=book.west)])
        elif change == "rep_leaves":
            User.objects.filter(pk=book.rep_c.pk).update(is_active=False)
        elif change == "rename_rep":
            User.objects.filter(pk=book.rep_c.pk).update(first_name="Carla")
        else:
            Product.objects.bulk_create([Product(external_id="pz", name="Product Z")])
        # Then the version changes
        assert frame_state(user=book.cso).org_version != before

    def test_the_org_version_ignores_what_the_viewer_cannot_see(self, book):
        before = frame_state(user=book.manager_east).org_version
        Team.objects.filter(pk=book.west.pk).update(name="West Coast")
        assert frame_state(user=book.manager_east).org_version == before


@pytest.mark.django_db
class TestWholePageCache:
    def test_a_hit_renders_nothing_and_equals_a_fresh_rendering(self, client, book):
        # Given the CSO's overview rendered once
        first = get(client, book.cso)
        assert first.context is not None
        # When it is opened again
        again = get(client, book.cso)
        # Then no template is rendered, and the page is the same but for the CSRF token
        assert again.context is None
        html = again.content.decode()
        assert TOKEN.sub("", html) == TOKEN.sub("", first.content.decode())
        assert not MARKER.search(html)

    def test_each_request_gets_its_own_valid_csrf_token(self, book):
        client = Client(enforce_csrf_checks=True)
        get(client, book.cso)
        first, second = (TOKEN.search(get(client, book.cso).content.decode()) for _ in range(2))
        assert first and second and first.group(1) != second.group(1)  # masked anew
        # And the token of a cached page logs out (the form in the page works)
        response = client.post(reverse("logout"), {"csrfmiddlewaretoken": second.group(1)})
        assert response.status_code == 302
        assert client.get(OVERVIEW).status_code == 302  # signed out: back to the login

    def test_freshness_is_of_this_request(self, client, book):
        get(client, book.cso)
        # When another kind of background run finishes later (no new data version)
        finished = JobRun.objects.order_by("-finished_at").first().finished_at
        finished += timedelta(minutes=7)
        JobRun.objects.create(
            kind="digests", status=JobRun.Status.SUCCEEDED, started_at=finished,
            finished_at=finished,
        )  # fmt: skip
        again = get(client, book.cso)
        # Then the page is still the cached one, with the new freshness
        assert again.context is None
        local = timezone.localtime(finished).strftime("%H:%M")
        assert f"Data as of {local}, " in again.content.decode()

    def test_messages_are_shown_once_on_a_cached_page(self, client, book):
        get(client, book.cso)
        storage = CookieStorage(HttpRequest())
        client.cookies["messages"] = storage._encode([Message(constants.SUCCESS, "Quota saved")])
        shown = get(client, book.cso)
        assert [t.name for t in shown.templates] == ["notices.html"]  # the page was cached
        assert '<li class="msg-success">Quota saved</li>' in shown.content.decode()
        assert "Quota saved" not in get(client, book.cso).content.decode()

    def test_the_stale_notice_is_of_this_request(self, client, book):
        get(client, book.cso)
        with mock.patch.object(views, "redis_unavailable", return_value=True):
            stale = get(client, book.cso)
        assert 'data-testid="stale-notice"' in stale.content.decode()
        assert 'data-testid="stale-notice"' not in get(client, book.cso).content.decode()

    def test_a_team_renamed_by_a_bulk_write_shows_at_once(self, client, book):
        # Given the CSO's page cached, naming West in the filter bar and the team chart
        assert "West" in team_options(get(client, book.cso, TEAM))
        # When West is renamed without a save signal (an import, another process)
        Team.objects.filter(pk=book.west.pk).update(name="West Coast")
        # Then the next request shows the new name, in the filter bar and the page
        response = get(client, book.cso, TEAM)
        assert response.context is not None  # rendered again
        assert "West Coast" in team_options(response)
        assert "West" not in team_options(response)
        assert "West Coast" in body(response)

    def test_a_new_rep_is_in_the_filter_bar_at_once(self, client, book):
        before = options(get(client, book.cso), "rep")
        (dora,) = User.objects.bulk_create(
            [User(username="dora", first_name="Dora", last_name="Diaz", role=Role.REP)]
        )
        after = options(get(client, book.cso), "rep")
        assert after == [*before, (dora.pk, "Dora Diaz")]  # by name: after the nameless

    def test_a_moved_manager_sees_their_new_scope_at_once(self, client, book):
        # Given the East manager's page cached (East: rep_a 1000 + 3000 booked)
        page = get(client, book.manager_east)
        assert "East" in team_options(page)
        # When East gets another manager and this one takes West, by a bulk write
        Team.objects.filter(pk=book.east.pk).update(manager=book.cso)
        Team.objects.filter(pk=book.west.pk).update(manager=book.manager_east)
        # Then their next page is West's: its team and rep only
        moved = get(client, book.manager_east)
        assert team_options(moved) == ["West"]
        assert [pk for pk, _ in options(moved, "rep")] == [book.rep_c.pk]
        assert "West ·" in moved.content.decode()
        # And East is out of reach
        assert get(client, book.manager_east, team=book.east.pk).status_code == 404

    def test_viewers_with_the_same_scope_and_url_never_share_a_page(self, client, book):
        # Given the CSO's page of East cached
        params = {"team": book.east.pk}
        cso_page = get(client, book.cso, **params)
        assert user_menu(cso_page).startswith("cso ")
        # When East's manager opens the very same URL (the same owners)
        manager_page = get(client, book.manager_east, **params)
        # Then it is rendered for them: their name, their filter bar
        assert manager_page.context is not None
        assert user_menu(manager_page).startswith("mgr ")
        assert team_options(manager_page) == ["East", "East SMB"]
        assert "West" not in team_options(manager_page)
        # And each one's next visit is their own cached page
        assert user_menu(get(client, book.cso, **params)).startswith("cso ")
        assert user_menu(get(client, book.manager_east, **params)).startswith("mgr ")

    def test_a_rollup_run_renders_the_page_again(self, client, book):
        get(client, book.cso)
        rollups_rebuild()
        assert get(client, book.cso).context is not None

    def test_a_forged_marker_in_a_name_stays_text(self, client, book):
        # A name cannot inject this request's token: markers are random per rendering
        Team.objects.filter(pk=book.west.pk).update(name="slot" + "0" * 32 + "csrf")
        html = get(client, book.cso, TEAM).content.decode()
        token = TOKEN.search(html).group(1)
        assert ("slot" + "0" * 32 + "csrf") in html
        assert html.count(token) == 1
