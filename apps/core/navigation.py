"""The main navigation, declared once. A page that is not built yet has no ``url_name``
and is rendered as a disabled entry, so the layout is ready for it without a fake page."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NavItem:
    label: str
    url_name: str | None
    section: str


NAV_ITEMS: tuple[NavItem, ...] = (
    NavItem("Home", "home", "home"),
    NavItem("Overview", None, "overview"),
    NavItem("Pipeline", None, "pipeline"),
    NavItem("Quotas", None, "quotas"),
    NavItem("Team", None, "team"),
    NavItem("Customers", None, "customers"),
    NavItem("Forecast", None, "forecast"),
)
