"""Fixtures for the foundation tests: a superuser and a logged-in admin client."""

from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import SuperUserFactory


@pytest.fixture
def superuser(db):
    return SuperUserFactory()


@pytest.fixture
def superuser_client(superuser) -> Client:
    client = Client()
    client.force_login(superuser)
    return client
