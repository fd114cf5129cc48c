"""Who may import: apps.org.policy.can_import."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from apps.org.policy import can_import
from tests.factories import (
    ExecutiveFactory,
    ManagerFactory,
    RepFactory,
    RevOpsAdminFactory,
    SuperUserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("factory", "allowed"),
    [
        (RevOpsAdminFactory, True),
        (ExecutiveFactory, True),
        (SuperUserFactory, True),
        (ManagerFactory, False),
        (RepFactory, False),
    ],
)
def test_can_import_by_role(factory, allowed):
    assert can_import(factory()) is allowed


def test_inactive_and_anonymous_users_cannot_import():
    assert can_import(RevOpsAdminFactory(is_active=False)) is False
    assert can_import(AnonymousUser()) is False
    assert can_import(None) is False
