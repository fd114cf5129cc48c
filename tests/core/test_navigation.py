"""The main navigation shows each person only the entries they may use."""

from __future__ import annotations

import pytest

from apps.core.navigation import NAV_ITEMS, nav_items_for
from apps.org.models import Role
from tests.factories import UserFactory


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "sees_imports"),
    [
        (Role.EXECUTIVE, True),
        (Role.REVOPS_ADMIN, True),
        (Role.MANAGER, False),
        (Role.REP, False),
    ],
)
def test_imports_entry_follows_the_policy(role, sees_imports):
    user = UserFactory(role=role)
    labels = [item.label for item in nav_items_for(user)]
    assert ("Imports" in labels) is sees_imports
    assert "Home" in labels


@pytest.mark.django_db
def test_home_page_menu_hides_imports_from_a_rep(client):
    rep = UserFactory(role=Role.REP)
    client.force_login(rep)
    html = client.get("/").content.decode()
    assert ">Home<" in html
    assert ">Imports<" not in html


def test_every_entry_names_a_section_once():
    sections = [item.section for item in NAV_ITEMS]
    assert len(sections) == len(set(sections))
