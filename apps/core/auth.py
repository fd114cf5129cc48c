"""Authentication backend with log-in throttling (django-axes).

Axes refuses every ``authenticate()`` call that comes without a request. The only way to
log in to this app is the log-in page, which always passes one; calls without a request
(Django's test client ``login()``, a shell) cannot be throttled by address anyway, so
this backend leaves them to the next backend instead of failing them.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend


class ThrottledLoginBackend(AxesStandaloneBackend):
    def authenticate(
        self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any
    ):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
