"""Review lists and pages by role: in scope, out of scope (404), not allowed (403)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from apps.crm.services import opportunity_create
from apps.kpis.services import rollups_rebuild
from apps.performance import services
from apps.performance.models import PerformanceReview, ReviewAmendment
from apps.performance.selectors import (
    competencies_for_rep,
    completion_by_team,
    review_kpis,
    reviews_due,
    visible_reviews,
)
from apps.quotas.services import quota_set
from tests.factories import AccountFactory, ProductFactory, StageFactory

pytestmark = pytest.mark.django_db

Q4 = "2024-Q4"
TEXTS = {"strengths": "a", "areas_to_grow": "b", "goals": "c"}


def review_of(org, rep, *, status="draft", period=Q4, reviewer=None):
    reviewer = reviewer or (org.nora if rep == org.carl else org.max)
    review = services.review_create(rep=rep, period=org.period(period), reviewer=reviewer)
    if status in ("submitted", "acknowledged"):
        ratings = {c.pk: 3 for c in competencies_for_rep(rep)}
        services.review_update(review=review, user=reviewer, texts=TEXTS, ratings=ratings)
        services.review_submit(review=review, user=reviewer)
    if status == "acknowledged":
        services.review_acknowledge(review=review, user=rep)
    review.refresh_from_db()
    return review


# --- lists ---------------------------------------------------------------------------------------
def test_due_and_overdue_for_a_manager(org):
    # given Anna's 2024-Q4 review is submitted and Ben's is a draft; nothing for 2024-Q3
    review_of(org, org.anna, status="submitted")
    review_of(org, org.ben)
    # on 2025-01-10, 2024-Q4 is due (until 14 Jan) and 2024-Q3 is overdue
    due = reviews_due(user=org.max, today=date(2025, 1, 10))
    listed = [(d.rep.username, d.period.name, d.overdue_on(date(2025, 1, 10))) for d in due]
    # newest quarter first, then by name
    assert listed == [
        ("ben", "2024-Q4", False),
        ("anna", "2024-Q3", True),
        ("ben", "2024-Q3", True),
    ]
    assert {d.due_on for d in due} == {date(2024, 10, 14), date(2025, 1, 14)}
    # the region manager sees the reps of both teams; a rep nothing
    assert {d.rep.username for d in reviews_due(user=org.rita, today=date(2025, 1, 10))} == {
        "anna",
        "ben",
        "carl",
    }
    assert reviews_due(user=org.anna, today=date(2025, 1, 10)) == []


def test_completion_by_team_for_the_cso(org):
    review_of(org, org.anna, status="acknowledged")
    review_of(org, org.ben, status="submitted")
    review_of(org, org.carl)  # draft: not complete
    rows = {r.team.name: r for r in completion_by_team(user=org.cso, period=org.period(Q4))}
    assert (rows["DACH"].reps, rows["DACH"].submitted, rows["DACH"].acknowledged) == (2, 2, 1)
    assert rows["DACH"].percent == Decimal("100")
    assert (rows["Nordics"].reps, rows["Nordics"].submitted, rows["Nordics"].percent) == (1, 0, 0)
    assert (rows["EMEA"].reps, rows["EMEA"].submitted) == (3, 2)  # its whole subtree
    assert rows["Acme"].percent == Decimal("67")
    # a manager's completion covers only their subtree
    assert [r.team.name for r in completion_by_team(user=org.max, period=org.period(Q4))] == [
        "DACH"
    ]


def test_a_rep_never_sees_their_draft_nor_anyone_else(org):
    draft = review_of(org, org.anna)
    other = review_of(org, org.ben, status="submitted")
    assert list(visible_reviews(user=org.anna)) == []
    services.review_update(
        review=draft,
        user=org.max,
        texts=TEXTS,
        ratings={c.pk: 2 for c in competencies_for_rep(org.anna)},
    )
    services.review_submit(review=draft, user=org.max)
    assert list(visible_reviews(user=org.anna)) == [draft]
    assert other not in visible_reviews(user=org.anna)
    assert set(visible_reviews(user=org.max)) == {draft, other}
    assert list(visible_reviews(user=org.nora)) == []


def test_the_review_shows_the_reps_kpis_from_the_kpi_selectors(org):
    # given Anna won 6,000 in Nov 2024 against a 2024-Q4 quota of 12,000
    opportunity_create(
        external_id="W-1",
        name="Won",
        account=AccountFactory(),
        owner=org.anna,
        product=ProductFactory(),
        amount=Decimal("6000"),
        currency="USD",
        stage=StageFactory(won=True),
        created_date=date(2024, 9, 1),
        close_date=date(2024, 11, 20),
    )
    quota_set(period=org.period("2024-11"), amount=Decimal("12000"), set_by=org.max, rep=org.anna)
    rollups_rebuild()
    review = review_of(org, org.anna)
    kpis = {k.name: k.value for k in review_kpis(user=org.max, review=review)}
    assert kpis["bookings"] == Decimal("6000.00")
    assert kpis["attainment"] == Decimal("0.5")
    assert kpis["win_rate"] == Decimal("1")
    assert kpis["open_pipeline"] == Decimal("0.00")
    assert set(kpis) == {"bookings", "attainment", "win_rate", "sales_cycle_mean", "open_pipeline"}


# --- pages by role ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("who", "draft", "submitted"),
    [
        ("cso", 200, 200),
        ("ops", 200, 200),
        ("rita", 200, 200),
        ("max", 200, 200),
        ("nora", 404, 404),
        ("anna", 404, 200),  # her own, once submitted
        ("ben", 404, 404),
    ],
)
def test_review_page_by_role(org, client_for, who, draft, submitted):
    d = review_of(org, org.anna, period="2024-Q3")
    s = review_of(org, org.anna, status="submitted")
    client = client_for(getattr(org, who))
    assert client.get(reverse("reviews:detail", args=[d.pk])).status_code == draft
    assert client.get(reverse("reviews:detail", args=[s.pk])).status_code == submitted


def snapshot():
    return (
        sorted(PerformanceReview.objects.values_list("id", "status", "goals", "rep_response")),
        ReviewAmendment.objects.count(),
    )


@pytest.mark.parametrize(
    ("who", "status"),
    [("max", 302), ("rita", 302), ("cso", 302), ("ops", 403), ("nora", 404), ("anna", 404)],
)
def test_editing_a_draft_by_role(org, client_for, who, status):
    review = review_of(org, org.anna)
    before = snapshot()
    response = client_for(getattr(org, who)).post(
        reverse("reviews:detail", args=[review.pk]), {"goals": "Edited", "action": "save"}
    )
    assert response.status_code == status
    review.refresh_from_db()
    assert (review.goals == "Edited") is (status == 302)
    if status != 302:
        assert snapshot() == before


def test_submitting_through_the_page_lists_what_is_missing(org, client_for):
    review = review_of(org, org.anna)
    client = client_for(org.max)
    response = client.post(
        reverse("reviews:detail", args=[review.pk]), {"strengths": "Good", "action": "submit"}
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Rate Pipeline discipline before submitting." in html
    assert "Write this before submitting." in html
    review.refresh_from_db()
    assert (review.status, review.strengths) == ("draft", "Good")  # the draft was kept
    data = {**TEXTS, "action": "submit"}
    data.update({f"rating-{c.pk}": "4" for c in competencies_for_rep(org.anna)})
    assert client.post(reverse("reviews:detail", args=[review.pk]), data).status_code == 302
    review.refresh_from_db()
    assert review.status == "submitted"
    # a submitted review is read-only: a plain edit is refused with a message
    response = client.post(reverse("reviews:detail", args=[review.pk]), {"goals": "x"}, follow=True)
    assert "through an amendment" in response.content.decode()
    review.refresh_from_db()
    assert review.goals == "c"


@pytest.mark.parametrize(
    ("who", "status"),
    [("anna", 302), ("max", 403), ("cso", 403), ("rita", 403), ("ben", 404), ("nora", 404)],
)
def test_acknowledging_by_role(org, client_for, who, status):
    review = review_of(org, org.anna, status="submitted")
    before = snapshot()
    response = client_for(getattr(org, who)).post(
        reverse("reviews:acknowledge", args=[review.pk]), {"rep_response": "Noted"}
    )
    assert response.status_code == status
    review.refresh_from_db()
    if status == 302:
        assert (review.status, review.rep_response) == ("acknowledged", "Noted")
    else:
        assert snapshot() == before


@pytest.mark.parametrize(
    ("who", "status"),
    [("max", 302), ("cso", 302), ("anna", 403), ("ops", 403), ("nora", 404), ("ben", 404)],
)
def test_amending_by_role(org, client_for, who, status):
    review = review_of(org, org.anna, status="submitted")
    before = snapshot()
    data = {**TEXTS, "goals": "Amended", "reason": "Follow-up"}
    data.update({f"rating-{c.pk}": "3" for c in competencies_for_rep(org.anna)})
    response = client_for(getattr(org, who)).post(reverse("reviews:amend", args=[review.pk]), data)
    assert response.status_code == status
    if status == 302:
        entry = ReviewAmendment.objects.get()
        assert (entry.field, entry.old_value, entry.new_value) == ("goals", "c", "Amended")
    else:
        assert snapshot() == before


def test_amend_without_reason_is_a_field_error(org, client_for):
    review = review_of(org, org.anna, status="submitted")
    response = client_for(org.max).post(reverse("reviews:amend", args=[review.pk]), {"goals": "x"})
    assert response.status_code == 400
    assert "This field is required." in response.content.decode()
    assert not ReviewAmendment.objects.exists()


@pytest.mark.parametrize(
    ("who", "status"), [("max", 302), ("cso", 302), ("anna", 404), ("nora", 404), ("ops", 403)]
)
def test_starting_a_review_by_role(org, client_for, who, status):
    response = client_for(getattr(org, who)).post(
        reverse("reviews:start"), {"rep": org.ben.pk, "period": Q4}
    )
    assert response.status_code == status
    assert PerformanceReview.objects.filter(rep=org.ben).exists() is (status == 302)


def test_starting_an_existing_review_opens_it(org, client_for):
    review = review_of(org, org.ben)
    response = client_for(org.max).post(reverse("reviews:start"), {"rep": org.ben.pk, "period": Q4})
    assert response["Location"] == reverse("reviews:detail", args=[review.pk])


def test_lists_by_role(org, client_for):
    mine = review_of(org, org.anna, status="submitted")
    review_of(org, org.carl, status="submitted")
    # a rep: their own history only
    response = client_for(org.anna).get(reverse("reviews:index"))
    assert list(response.context["reviews"]) == [mine]
    # a manager: due reviews of their people
    response = client_for(org.max).get(reverse("reviews:index"))
    assert {d.rep.username for d, _overdue in response.context["due"]} <= {"anna", "ben"}
    assert [r.rep for r in response.context["recent"]] == [org.anna]
    # the CSO: completion by team
    response = client_for(org.cso).get(reverse("reviews:index"), {"period": Q4})
    assert {r.team.name for r in response.context["completion"]} == {
        "Acme",
        "EMEA",
        "DACH",
        "Nordics",
    }


@pytest.mark.parametrize(
    ("who", "status"), [("max", 200), ("anna", 200), ("ben", 404), ("nora", 404)]
)
def test_rep_history_page(org, client_for, who, status):
    review_of(org, org.anna, status="submitted")
    response = client_for(getattr(org, who)).get(reverse("reviews:rep", args=[org.anna.pk]))
    assert response.status_code == status


@pytest.mark.parametrize(
    ("who", "get", "post"),
    [
        ("max", 200, 302),
        ("rita", 200, 302),
        ("cso", 200, 302),
        ("ops", 200, 403),
        ("nora", 404, 404),
        ("anna", 404, 404),
    ],
)
def test_competency_page_by_role(org, client_for, who, get, post):
    client = client_for(getattr(org, who))
    url = reverse("reviews:competencies", args=[org.dach.pk])
    assert client.get(url).status_code == get
    assert client.post(url, {"name": "Negotiation"}).status_code == post
    assert org.dach.competencies.filter(name="Negotiation").exists() is (post == 302)


def test_list_selectors_cost_a_fixed_number_of_queries(org, django_assert_num_queries):
    review_of(org, org.anna, status="submitted")
    review_of(org, org.carl)
    # scope (1 for a manager) + periods + reps + reviews, whatever the number of people
    with django_assert_num_queries(4):
        due = reviews_due(user=org.rita, today=date(2025, 1, 10))
    assert len(due) == 5
    period = org.period(Q4)
    # teams + tree + reps per team + reviews per team (the scope is kept on the same user
    # object from the call above, so it costs nothing here)
    with django_assert_num_queries(4):
        rows = completion_by_team(user=org.rita, period=period)
    assert [r.team.name for r in rows] == ["DACH", "EMEA", "Nordics"]
