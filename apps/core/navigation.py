"""The main navigation, declared once. A page that is not built yet has no ``url_name``
and is rendered as a disabled entry, so the layout is ready for it without a fake page.
An entry with ``visible_to`` is shown only to users the visibility policy lets use it."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.urls import get_script_prefix, reverse

from apps.org import policy


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str | None
    section: str
    visible_to: Callable[[Any], bool] | None = None

    @property
    def url(self) -> str | None:
        return _url(self.url_name, get_script_prefix()) if self.url_name else None


@functools.lru_cache(maxsize=64)
def _url(url_name: str, prefix: str) -> str:
    """An entry's URL, reversed once per process and script prefix: the menu is on every
    page and its URLs take no arguments, so reversing them per request is wasted work."""
    return reverse(url_name)


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Home", "home", "home"),
    NavItem("Overview", "dashboards:overview", "overview"),
    NavItem("Pipeline", "dashboards:pipeline", "pipeline"),
    NavItem("Attainment", "dashboards:attainment", "attainment"),
    NavItem("Quotas", "quotas:index", "quotas"),
    NavItem("Reviews", "reviews:index", "reviews"),
    NavItem("Team", "dashboards:team", "team"),
    NavItem("Customers", "dashboards:customers", "customers"),
    NavItem("Forecast", "forecasting:index", "forecast"),
    NavItem("Digests", "digests:index", "digests"),
    NavItem("Imports", "imports:index", "imports", visible_to=policy.can_import),
    NavItem("API", "api:docs", "api"),
    NavItem("Audit", "audit:index", "audit", visible_to=policy.can_view_audit),
)


def nav_items_for(user: Any) -> list[NavItem]:
    """The entries ``user`` may see, in order."""
    return [item for item in NAV_ITEMS if item.visible_to is None or item.visible_to(user)]
