"""The mail itself: HTML (inline CSS, table layout, 600 px) and plain text from the same
:class:`~apps.digests.content.DigestContent`, charts as PNG attachments referenced by
content id, and the signed one-click unsubscribe link and headers.

A rendered mail is a JSON-able *payload* (subject, text, html, images as base64, headers)
kept on the delivery row, so every retry and resend sends exactly the same message.
"""

from __future__ import annotations

import base64
from email.mime.image import MIMEImage
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from apps.digests import images
from apps.digests.content import CHART_WIDTH, DigestContent, absolute, one_line, site_url
from apps.digests.models import DigestSubscription

UNSUBSCRIBE_SALT = "digests.unsubscribe"


def unsubscribe_token(subscription: DigestSubscription) -> str:
    """A signed token naming the subscription and the address it mails (no expiry: an old
    digest's link must still work)."""
    return signing.dumps({"s": subscription.pk, "e": subscription.address}, salt=UNSUBSCRIBE_SALT)


def unsubscribe_read(token: str) -> tuple[int, str] | None:
    """(subscription id, address) of a valid token, else None."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
    except signing.BadSignature:
        return None
    if not isinstance(data, dict) or "s" not in data or "e" not in data:
        return None
    return int(data["s"]), str(data["e"])


def unsubscribe_url(subscription: DigestSubscription) -> str:
    return absolute(reverse("digests:unsubscribe", args=[unsubscribe_token(subscription)]))


def _headers(subscription: DigestSubscription) -> dict[str, str]:
    return {
        "List-Unsubscribe": f"<{unsubscribe_url(subscription)}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "Auto-Submitted": "auto-generated",
    }


def _common(subscription: DigestSubscription) -> dict[str, Any]:
    return {
        "subscription": subscription,
        "site_url": site_url(),
        "unsubscribe_url": unsubscribe_url(subscription),
        "settings_url": absolute(reverse("digests:index")),
        "base_currency": settings.BASE_CURRENCY,
    }


def digest_payload(content: DigestContent) -> dict[str, Any]:
    """Render a digest: charts to PNG (one Chromium per process), then both parts."""
    blocks = content.charts
    for block in blocks:
        # Mail clients on phones shrink the 560 px image to the screen: larger type keeps
        # the axis labels legible there.
        block.chart.update_layout(font={"size": 14}, title={"font": {"size": 17}})
    pngs = images.figures_to_png([(b.chart, CHART_WIDTH, b.chart_height) for b in blocks])
    context = {
        **_common(content.subscription),
        "content": content,
        "images": {b.key: b.cid for b in blocks},
        "chart_width": CHART_WIDTH,
    }
    return {
        "subject": content.subject,
        "text": render_to_string("digests/mail/digest.txt", context),
        "html": render_to_string("digests/mail/digest.html", context),
        "images": [
            {"cid": b.cid, "filename": f"{b.cid}.png", "data": base64.b64encode(png).decode()}
            for b, png in zip(blocks, pngs, strict=True)
        ],
        "headers": _headers(content.subscription),
    }


def alert_payload(
    *,
    subscription: DigestSubscription,
    alert: Any,
    value_text: str,
    threshold_text: str,
    period_name: str,
    scope_label: str,
    url: str,
    details: list[str] | None = None,
) -> dict[str, Any]:
    """Render an alert mail; ``details`` are extra lines shown under the value (for
    forecast attainment: the forecast used, its P10-P90 range and the quota)."""
    context = {
        **_common(subscription),
        "alert": alert,
        "value_text": value_text,
        "threshold_text": threshold_text,
        "period_name": period_name,
        "scope_label": scope_label,
        "url": url,
        "details": list(details or []),
    }
    subject = (
        f"Alert: {alert.get_kpi_display().split(' (')[0]} {alert.get_operator_display()} "
        f"{threshold_text} · {scope_label} · {period_name}"
    )
    return {
        "subject": subject,
        "text": render_to_string("digests/mail/alert.txt", context),
        "html": render_to_string("digests/mail/alert.html", context),
        "images": [],
        "headers": _headers(subscription),
    }


def message_build(
    payload: dict[str, Any], *, to: str, subject_prefix: str = ""
) -> EmailMultiAlternatives:
    """The MIME message of a payload: multipart/related holding the text/HTML alternative
    and the inline PNGs (Content-ID, Content-Disposition inline)."""
    message = EmailMultiAlternatives(
        # one line whatever a name holds: a line break would end the header (Django then
        # refuses the mail) or start another one
        subject=one_line(subject_prefix + payload["subject"]),
        body=payload["text"],
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
        headers=dict(payload.get("headers") or {}),
    )
    message.attach_alternative(payload["html"], "text/html")
    if payload.get("images"):
        message.mixed_subtype = "related"
        for image in payload["images"]:
            part = MIMEImage(base64.b64decode(image["data"]), _subtype="png")
            part.add_header("Content-ID", f"<{image['cid']}>")
            part.add_header("Content-Disposition", "inline", filename=image["filename"])
            message.attach(part)
    return message


def html_for_browser(payload: dict[str, Any]) -> str:
    """The HTML part with ``cid:`` references replaced by data URIs, for the preview."""
    html = payload["html"]
    for image in payload.get("images") or []:
        html = html.replace(f"cid:{image['cid']}", f"data:image/png;base64,{image['data']}")
    return html
