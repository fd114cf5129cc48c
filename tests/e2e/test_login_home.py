"""A person opens the app, is sent to the login page, logs in and sees who they are."""

from __future__ import annotations

import pytest

from apps.org.models import Region, Role, Team, User
from tests.e2e.conftest import login

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Correct-Horse-42"


@pytest.fixture
def people():
    company = Team.objects.create(name="Acme Cloud", kind=Team.Kind.COMPANY)
    region = Region.objects.create(code="EMEA", name="EMEA")
    emea = Team.objects.create(name="EMEA", kind=Team.Kind.REGION, parent=company, region=region)
    squad = Team.objects.create(name="DACH Enterprise", parent=emea, region=region)

    def make(username: str, role: str, first: str, last: str, team=None, **extra) -> User:
        user = User.objects.create_user(
            username=username,
            password=PASSWORD,
            first_name=first,
            last_name=last,
            email=f"{username}@example.com",
            role=role,
            team=team,
            **extra,
        )
        return user

    cso = make("cso", Role.EXECUTIVE, "Dana", "Whitfield", title="CSO", is_staff=True)
    manager = make("mgr", Role.MANAGER, "Lars", "Becker", team=squad)
    squad.manager = manager
    squad.save()
    rep = make("rep", Role.REP, "Mia", "Schulz", team=squad)
    revops = make("ops", Role.REVOPS_ADMIN, "Omar", "Haddad", is_staff=True)
    return {"executive": cso, "manager": manager, "rep": rep, "revops_admin": revops}


def test_anonymous_visitor_is_sent_to_login_and_sees_a_clear_error(page, live_server, screenshot):
    # given an anonymous visitor
    # when they open the home page
    page.goto(f"{live_server.url}/")
    # then they land on the login page, which keeps where they wanted to go
    assert "/login/" in page.url
    assert page.locator("h1").inner_text() == "Log in"
    screenshot(page, "login")

    # when they try a wrong password
    login(page, live_server.url, "nobody", "wrong")
    # then the page says so and they stay logged out
    assert "Please enter a correct username and password" in page.inner_text(".form-error")
    assert page.console_errors == []


@pytest.mark.parametrize("role", ["executive", "manager", "rep", "revops_admin"])
def test_each_role_logs_in_and_sees_who_they_are(page, live_server, people, screenshot, role):
    user = people[role]
    # when the user logs in
    login(page, live_server.url, user.username, PASSWORD)
    # then the home page greets them by name and shows their role and scope
    page.wait_for_selector("h1")
    assert page.inner_text("h1") == f"Welcome, {user.get_full_name()}"
    assert user.get_role_display() in page.inner_text(".usermenu")
    scope_text = page.inner_text(".cards")
    expected = {
        "executive": "the whole company",
        "revops_admin": "the whole company",
        "manager": "DACH Enterprise",
        "rep": "your own deals",
    }[role]
    assert expected in scope_text
    assert page.console_errors == []
    if role == "executive":
        screenshot(page, "home")

    # and logging out returns them to the login page
    page.click("text=Log out")
    page.wait_for_url("**/login/")
    page.goto(f"{live_server.url}/")
    assert "/login/" in page.url
