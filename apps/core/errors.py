"""The one application error type: services raise it, views and the API turn it into a
clear message (a form error, a 4xx JSON body), never a 500."""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    def __init__(self, message: str, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
