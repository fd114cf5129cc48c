"""Digests in a real browser: the settings page, the edit page and the preview of the
CSO's digest on the demo company (charts inline, rendered by Kaleido), "send me a test",
and the mail alone at phone width. Screenshots go to docs/screenshots/digest*.png."""

from __future__ import annotations

import pytest
from django.core import mail
from django.utils import timezone

from apps.demo.generator import DEMO_PASSWORD
from apps.demo.services import demo_seed
from apps.digests.demo import digests_demo_seed
from apps.digests.images import renderer_close
from apps.digests.models import DigestSubscription
from apps.kpis.services import rollups_rebuild
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(transactional_db, settings) -> DigestSubscription:
    today = timezone.localdate()
    demo_seed(scale=1500, as_of=today)
    rollups_rebuild()
    digests_demo_seed(as_of=today)
    yield DigestSubscription.objects.get(recipient__username="cso")
    renderer_close()


def test_preview_settings_and_test_send(page, live_server, demo, screenshot, settings):
    settings.SITE_URL = live_server.url
    login(page, live_server.url, "cso", DEMO_PASSWORD)
    page.wait_for_selector("text=Log out")

    # the settings page lists the demo subscriptions
    page.goto(f"{live_server.url}/digests/")
    rows = page.locator("#subscriptions tbody tr")
    assert rows.count() >= 2
    screenshot(page, "digests-settings")

    # the edit page of the CSO's digest
    page.goto(f"{live_server.url}/digests/{demo.pk}/")
    assert page.locator("#alerts tbody tr").count() == 2
    screenshot(page, "digests-edit")

    # the preview renders the mail with its charts inline
    page.goto(f"{live_server.url}/digests/{demo.pk}/preview/")
    assert "Company digest" in page.inner_text("#preview-subject")
    frame = page.frame_locator("#digest-frame")
    images = frame.locator("img")
    assert images.count() >= 3
    for i in range(images.count()):
        assert images.nth(i).evaluate("img => img.complete && img.naturalWidth") == 1120
    assert frame.locator("text=Headline").first.is_visible()
    page.wait_for_function(
        "() => document.getElementById('digest-frame').getBoundingClientRect().height > 1000"
    )
    screenshot(page, "digest-preview")

    # "send me a test" mails the CSO and says so
    page.click("#send-test")
    page.wait_for_selector("text=Test digest sent to")
    assert [m.to for m in mail.outbox] == [[demo.recipient.email]]
    assert mail.outbox[0].subject.startswith("[Test] Company digest")

    assert page.console_errors == []

    # the mail alone at phone width (a bare mail page: the browser's own /favicon.ico
    # request is the only thing it may miss)
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/digests/{demo.pk}/preview/mail/")
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390
    screenshot(page, "digest-mail-phone")
    assert all(url.endswith("/favicon.ico") for url in missing), missing
