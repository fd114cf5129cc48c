"""Writes about people: their API tokens."""

from __future__ import annotations

from django.contrib.auth import logout
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from apps.audit.services import Action, audit_record
from apps.core.errors import ApplicationError
from apps.org.models import User


@transaction.atomic
def api_token_rotate(*, user: User, request: HttpRequest | None = None) -> str:
    """Give ``user`` a new API token, revoking any previous one, and return its key. The
    key is shown once; the token acts as the user (same role, same scope)."""
    if not user.is_active:
        raise ApplicationError("An inactive user cannot have an API token.")
    replaced = Token.objects.filter(user=user).delete()[0] > 0
    token = Token.objects.create(user=user)
    audit_record(
        action=Action.API_TOKEN,
        summary=f"{'Replaced' if replaced else 'Created'} the API token of {user.get_username()}",
        actor=user,
        request=request,
        target=user,
    )
    return token.key


@transaction.atomic
def sessions_end_everywhere(*, user: User, request: HttpRequest) -> None:
    """Log ``user`` out on every device and browser, this one included: raising the
    session epoch invalidates every session made before (see ``User.session_epoch``)."""
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    audit_record(
        action=Action.LOGOUT,
        summary="Logged out everywhere (every session ended)",
        actor=user,
        request=request,
        target=user,
    )
    logout(request)
