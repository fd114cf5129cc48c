"""Authentication events (Django's and django-axes' signals) into the audit log."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import signals as auth_signals

from apps.audit.services import Action, audit_record


def _logged_in(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    audit_record(action=Action.LOGIN, summary="Logged in", actor=user, request=request)


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        audit_record(action=Action.LOGOUT, summary="Logged out", actor=user, request=request)


def _login_failed(sender: Any, credentials: dict, request: Any = None, **kwargs: Any) -> None:
    username = str(credentials.get("username", ""))[:150]
    audit_record(
        action=Action.LOGIN_FAILED,
        summary=f"Failed log-in as {username!r}" if username else "Failed log-in",
        actor_username=username,
        request=request,
    )


def _locked_out(sender: Any, request: Any, username: str | None = None, **kwargs: Any) -> None:
    audit_record(
        action=Action.LOCKED_OUT,
        summary=f"Log-ins as {username!r} locked out after repeated failures",
        actor_username=(username or "")[:150],
        request=request,
    )


def connect() -> None:
    from axes.signals import user_locked_out

    auth_signals.user_logged_in.connect(_logged_in, dispatch_uid="audit-login")
    auth_signals.user_logged_out.connect(_logged_out, dispatch_uid="audit-logout")
    auth_signals.user_login_failed.connect(_login_failed, dispatch_uid="audit-login-failed")
    user_locked_out.connect(_locked_out, dispatch_uid="audit-locked-out")
