"""Rotating SECRET_KEY with the old key in SECRET_KEY_FALLBACKS keeps sessions and the
unsubscribe links of digests already sent working; without the fallback both stop."""

from __future__ import annotations

import pytest
from django.test import override_settings
from django.urls import reverse

from apps.digests.render import unsubscribe_read, unsubscribe_token
from apps.digests.services import subscription_create
from tests.factories import ExecutiveFactory

OLD = "old-key-" + "x" * 50
NEW = "new-key-" + "y" * 50


@pytest.mark.django_db
@pytest.mark.parametrize(("fallbacks", "still_valid"), [([OLD], True), ([], False)])
def test_a_rotated_key_keeps_old_sessions_and_links_only_with_the_fallback(
    client, fallbacks, still_valid
):
    user = ExecutiveFactory()
    with override_settings(SECRET_KEY=OLD, SECRET_KEY_FALLBACKS=[]):
        client.force_login(user)
        subscription = subscription_create(actor=user, recipient=user, sections=["headline"])
        token = unsubscribe_token(subscription)
        assert client.get(reverse("home")).status_code == 200
    with override_settings(SECRET_KEY=NEW, SECRET_KEY_FALLBACKS=fallbacks):
        signed_in = client.get(reverse("home")).status_code == 200
        link = unsubscribe_read(token)
    assert signed_in is still_valid
    assert (link == (subscription.pk, subscription.address)) is still_valid
