from __future__ import annotations

import pytest
from django.test import Client

from tests.quotas.orgchart import Org, build_org


@pytest.fixture
def org(db) -> Org:
    return build_org()


@pytest.fixture
def client_for():
    """A logged-in test client for a user."""

    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
