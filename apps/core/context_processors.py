from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from apps.core.navigation import NAV_ITEMS


def navigation(request: HttpRequest) -> dict[str, Any]:
    return {"nav_items": NAV_ITEMS, "base_currency": settings.BASE_CURRENCY}
