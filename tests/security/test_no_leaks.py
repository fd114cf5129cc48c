"""No page, drill-down, export or API endpoint shows one team's records to a person
outside it. The URL conf is walked at test time: every route is requested as a manager and
as a rep of team Alpha, with every id of team Bravo's records in its URL parameters and as
the team / rep filter, and nothing of Bravo's may come back. A route added later is
covered without touching this file."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.urls import get_resolver
from django.utils import timezone
from django.utils.regex_helper import normalize

from apps.kpis.services import rollups_rebuild
from tests.factories import (
    FiscalPeriodFactory,
    ManagerFactory,
    OpportunityFactory,
    PerformanceReviewFactory,
    QuotaFactory,
    QuotaPlanFactory,
    RepFactory,
    StageFactory,
    TeamFactory,
)
from tests.foundation.test_login_required import walk

pytestmark = pytest.mark.django_db

MARKER = "bravosecret"
#: String values tried for non-numeric parameters (kinds, names, periods, formats).
STRINGS = ("csv", "bookings", "2025-Q1")


def _team(name: str, marker: str = ""):
    team = TeamFactory(name=f"{name} {marker}".strip())
    manager = ManagerFactory(team=team, last_name=f"Boss{marker}")
    team.manager = manager
    team.save()
    rep = RepFactory(team=team, last_name=f"Rep{marker}")
    return team, manager, rep


@pytest.fixture
def two_teams():
    today = timezone.localdate()
    _alpha, alpha_manager, alpha_rep = _team("Alpha")
    bravo, bravo_manager, bravo_rep = _team("Bravo", MARKER)
    won, open_stage = StageFactory(won=True), StageFactory()
    ids: dict[str, list[int]] = {
        "team": [bravo.pk],
        "user": [bravo_manager.pk, bravo_rep.pk],
    }
    for rep, marker in ((alpha_rep, "alpha"), (bravo_rep, MARKER)):
        for stage in (won, open_stage):
            deal = OpportunityFactory(
                name=f"Deal {marker}",
                owner=rep,
                stage=stage,
                amount=Decimal("1000"),
                created_date=today - dt.timedelta(days=20),
                close_date=today,
            )
            if marker == MARKER:
                ids.setdefault("deal", []).append(deal.pk)
    month = FiscalPeriodFactory(day=today.replace(day=1))
    quota = QuotaFactory(rep=bravo_rep, period=month, note=f"quota {MARKER}")
    review = PerformanceReviewFactory(
        rep=bravo_rep, reviewer=bravo_manager, strengths=f"strengths {MARKER}", submitted=True
    )
    plan = QuotaPlanFactory(team=bravo)
    ids.update(quota=[quota.pk], review=[review.pk], plan=[plan.pk])
    rollups_rebuild()
    return {"viewers": [alpha_manager, alpha_rep], "ids": ids}


def _urls(route, bravo_ids: list[int]) -> list[str]:
    full = re.compile(route.regex)
    urls = []
    for template, params in normalize(route.regex):
        if not params:
            urls.append("/" + template)
            continue
        options = [[str(i) for i in bravo_ids] + list(STRINGS)] * len(params)
        for values in itertools.product(*options):
            path = template % dict(zip(params, values, strict=True))
            if full.fullmatch(path):
                urls.append("/" + path)
    return urls


def routes_to_walk():
    static = settings.STATIC_URL.lstrip("/")
    return [
        r
        for r in walk(get_resolver())
        # the admin is for staff only (is_staff), checked by its own tests
        if not r.regex.startswith(("admin", static)) and r.name not in ("logout", "login")
    ]


def test_nothing_of_another_team_leaks_anywhere(client, two_teams):
    bravo_ids = sorted({i for values in two_teams["ids"].values() for i in values})
    team_id = two_teams["ids"]["team"][0]
    rep_id = two_teams["ids"]["user"][1]
    leaks, errors, requested = [], [], 0
    for viewer in two_teams["viewers"]:
        client.force_login(viewer)
        for route in routes_to_walk():
            for url in _urls(route, bravo_ids):
                for query in ("", f"?team={team_id}", f"?rep={rep_id}", "?format=csv"):
                    response = client.get(url + query)
                    requested += 1
                    if response.status_code >= 500:
                        errors.append(f"{viewer.username} {url}{query}: {response.status_code}")
                    body = b"".join(response) if response.streaming else response.content
                    if MARKER.encode() in body.lower():
                        leaks.append(f"{viewer.username} {url}{query}: {response.status_code}")
    assert leaks == []
    assert errors == []
    assert requested > 500  # the walk really ran


def test_the_marker_is_visible_to_bravo_itself(client, two_teams):
    # guards the test above: Bravo's marker does show where Bravo may look
    from apps.org.models import User

    bravo_manager = User.objects.get(pk=two_teams["ids"]["user"][0])
    client.force_login(bravo_manager)
    assert MARKER.encode() in client.get("/dashboards/records/").content.lower()
    assert MARKER.encode() in client.get("/api/v1/opportunities/").content.lower()
