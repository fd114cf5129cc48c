"""User text is data, never markup: names that look like HTML or script show as text on
every page. Every parameterless page of the URL conf is walked (so pages added later are
covered), as an executive who sees everything, over data whose every name is hostile."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.urls import get_resolver
from django.utils import timezone

from apps.kpis.services import rollups_rebuild
from tests.factories import (
    AccountFactory,
    ExecutiveFactory,
    ManagerFactory,
    NpsResponseFactory,
    OpportunityFactory,
    ProductFactory,
    RepFactory,
    StageFactory,
    SubscriptionFactory,
    TeamFactory,
)
from tests.foundation.test_login_required import walk

pytestmark = pytest.mark.django_db

SCRIPT = '<script>alert("xss")</script>'
IMG = "<img src=x onerror=alert(1)>"
#: What must never reach a page unescaped.
RAW = ("<script>alert", "<img src=x")


@pytest.fixture
def hostile_book():
    today = timezone.localdate()
    team = TeamFactory(name=f"Team {SCRIPT}")
    manager = ManagerFactory(team=team, first_name=IMG, last_name=SCRIPT)
    team.manager = manager
    team.save()
    rep = RepFactory(team=team, first_name=SCRIPT, last_name=IMG)
    account = AccountFactory(name=f"Account {SCRIPT}", industry=IMG)
    product = ProductFactory(name=f"Product {IMG}")
    won = StageFactory(name=f"Won {SCRIPT}", won=True)
    open_stage = StageFactory(name=f"Open {IMG}")
    for stage, name in ((won, SCRIPT), (open_stage, IMG)):
        OpportunityFactory(
            name=f"Deal {name}",
            account=account,
            owner=rep,
            product=product,
            stage=stage,
            amount=Decimal("1000"),
            created_date=today - dt.timedelta(days=30),
            close_date=today,
        )
    SubscriptionFactory(account=account, product=product, start_date=today.replace(day=1))
    NpsResponseFactory(account=account, comment=SCRIPT, responded_on=today)
    rollups_rebuild()
    return ExecutiveFactory()


def parameterless_pages() -> list[str]:
    skip = ("admin", "api:", "logout", "healthz")
    return sorted(
        "/" + r.regex.removesuffix("\\Z").removesuffix("$")
        for r in walk(get_resolver())
        if "(?P<" not in r.regex
        and "(" not in r.regex
        and not (r.name or "").startswith(skip)
        and not r.regex.startswith(("admin", "api/v1", "static"))
    )


def test_no_page_renders_user_text_as_markup(client, hostile_book):
    client.force_login(hostile_book)
    checked, shown = [], []
    for url in parameterless_pages():
        response = client.get(url)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        body = response.content.decode()
        for raw in RAW:
            assert raw not in body, f"{url} renders {raw!r} unescaped"
        checked.append(url)
        if "&lt;script&gt;alert" in body or "&lt;img src=x" in body:
            shown.append(url)
    # the pages that show these names were really looked at
    for must in (
        "/dashboards/overview/",
        "/dashboards/pipeline/",
        "/dashboards/team/",
        "/dashboards/records/",
        "/dashboards/responses/",
        "/dashboards/accounts/",
    ):
        assert must in shown, (must, shown)
