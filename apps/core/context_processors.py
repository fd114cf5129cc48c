from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from apps.core.cache import redis_unavailable
from apps.core.navigation import nav_items_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    items = nav_items_for(user) if user is not None and user.is_authenticated else []
    return {"nav_items": items, "base_currency": settings.BASE_CURRENCY}


def service_notice(request: HttpRequest) -> dict[str, Any]:
    """``stale_notice`` is True while Redis (cache and task broker) is unreachable: the
    figures still come from Postgres, but recent changes may not be in them yet."""
    return {"stale_notice": redis_unavailable()}
