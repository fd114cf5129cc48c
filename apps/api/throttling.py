"""Request rate limits for the API.

DRF's stock throttles copy the configured rates into a class attribute when their module
is imported; these read ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` on every request, so
a rate changed by configuration or by a test applies at once.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class _RatesAtCallTime:
    scope: str

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserThrottle(_RatesAtCallTime, UserRateThrottle):
    """Signed-in callers, per user: rate ``user`` (default 1200/minute)."""

    scope = "user"


class BulkThrottle(_RatesAtCallTime, UserRateThrottle):
    """Bulk upserts, per user, on top of the general limit: rate ``bulk`` (60/minute)."""

    scope = "bulk"
