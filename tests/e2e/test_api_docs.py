"""The Swagger UI in a real browser: it renders every resource from our own static files,
fetches nothing from another host and logs no JavaScript error."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import login
from tests.factories import PASSWORD, ExecutiveFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_swagger_ui_renders_every_resource_offline(page, live_server):
    # given a signed-in executive who watches every request the page makes
    user = ExecutiveFactory(username="swagger")
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    login(page, live_server.url, user.username, PASSWORD)
    # when they open the API documentation
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock-tag", timeout=30_000)
    # then every resource is listed, loaded from this server only, without errors
    tags = {text.split("\n")[0] for text in page.locator(".opblock-tag").all_inner_texts()}
    assert {"opportunities", "quotas", "reviews", "kpis", "accounts", "import-jobs"} <= tags
    assert hosts == {urlsplit(live_server.url).netloc}
    assert list(page.console_errors) == []
