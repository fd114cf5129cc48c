"""Review services: drafting, submitting, acknowledging, amending, and the competencies."""

from __future__ import annotations

import pytest

from apps.core.errors import ApplicationError
from apps.performance import services
from apps.performance.models import Competency, PerformanceReview, ReviewAmendment, ReviewRating
from apps.performance.selectors import competencies_for_rep
from tests.factories import CompetencyFactory

pytestmark = pytest.mark.django_db

Q4 = "2024-Q4"
TEXTS = {"strengths": "Great discovery", "areas_to_grow": "Forecasting", "goals": "Two logos"}


def start(org, rep=None, reviewer=None, period=Q4):
    return services.review_create(
        rep=rep or org.anna, period=org.period(period), reviewer=reviewer or org.max
    )


def all_ratings(review, score=4):
    return {c.pk: score for c in competencies_for_rep(review.rep)}


def complete(org, review, user=None):
    services.review_update(
        review=review, user=user or org.max, texts=TEXTS, ratings=all_ratings(review)
    )
    return services.review_submit(review=review, user=user or org.max)


def test_defaults_are_created_with_the_first_review(org):
    Competency.objects.all().delete()  # as after a flush
    start(org)
    assert [c.name for c in competencies_for_rep(org.anna)] == [
        "Pipeline discipline",
        "Forecast accuracy",
        "Customer relationships",
        "Product knowledge",
        "Collaboration",
        "Coaching and development",
    ]
    assert services.competency_defaults_ensure() == 0


def test_a_team_adds_its_own_competencies_and_overrides_by_slug(org):
    services.competency_defaults_ensure()
    services.competency_add(team=org.emea, user=org.rita, name="Partner selling")
    services.competency_add(team=org.dach, user=org.max, name="Collaboration", description="DACH")
    names = [(c.name, c.team) for c in competencies_for_rep(org.anna)]
    assert ("Partner selling", org.emea) in names  # from the region above
    assert ("Collaboration", org.dach) in names and ("Collaboration", None) not in names
    assert "Partner selling" in [c.name for c in competencies_for_rep(org.carl)]
    assert ("Collaboration", None) in [(c.name, c.team) for c in competencies_for_rep(org.carl)]
    with pytest.raises(services.ReviewPermissionError):
        services.competency_add(team=org.dach, user=org.nora, name="X")
    with pytest.raises(services.ReviewPermissionError):
        services.competency_add(team=org.dach, user=org.anna, name="X")
    with pytest.raises(services.ReviewValidationError, match="already has"):
        services.competency_add(team=org.dach, user=org.max, name="collaboration")
    with pytest.raises(services.ReviewValidationError):
        services.competency_add(team=org.dach, user=org.max, name="  ")


def test_switching_a_team_competency_off(org):
    own = services.competency_add(team=org.dach, user=org.max, name="Demo skills")
    services.competency_set_active(competency=own, user=org.max, active=False)
    assert own not in competencies_for_rep(org.anna)
    with pytest.raises(services.ReviewPermissionError):
        services.competency_set_active(competency=own, user=org.nora, active=True)
    global_one = CompetencyFactory()
    with pytest.raises(services.ReviewPermissionError):  # company-wide: admin only
        services.competency_set_active(competency=global_one, user=org.max, active=False)


@pytest.mark.parametrize(
    ("reviewer", "rep", "allowed"),
    [
        ("max", "anna", True),
        ("rita", "anna", True),
        ("cso", "carl", True),
        ("max", "carl", False),  # out of scope
        ("max", "max", False),  # nobody reviews themselves
        ("anna", "ben", False),
        ("ops", "anna", False),
    ],
)
def test_who_may_start_a_review(org, reviewer, rep, allowed):
    if allowed:
        review = start(org, rep=getattr(org, rep), reviewer=getattr(org, reviewer))
        assert review.status == "draft"
    else:
        with pytest.raises(services.ReviewPermissionError):
            start(org, rep=getattr(org, rep), reviewer=getattr(org, reviewer))
        assert not PerformanceReview.objects.exists()


def test_one_review_per_rep_and_period_and_never_per_month(org):
    start(org)
    with pytest.raises(ApplicationError, match="already has a review"):
        start(org)
    with pytest.raises(ApplicationError, match="not per month"):
        start(org, period="2024-12")


def test_draft_then_submit_then_acknowledge(org):
    review = start(org)
    complete(org, review)
    review.refresh_from_db()
    assert review.status == "submitted" and review.submitted_at is not None
    assert ReviewRating.objects.filter(review=review, score=4).count() == 6
    review = services.review_acknowledge(review=review, user=org.anna, response="Thanks, agreed.")
    assert (review.status, review.rep_response) == ("acknowledged", "Thanks, agreed.")
    assert review.acknowledged_at is not None


def test_a_review_is_not_submitted_until_complete(org):
    review = start(org)
    ratings = all_ratings(review)
    first = next(iter(ratings))
    ratings[first] = ""
    services.review_update(review=review, user=org.max, texts={"strengths": "x"}, ratings=ratings)
    with pytest.raises(services.ReviewValidationError) as caught:
        services.review_submit(review=review, user=org.max)
    assert set(caught.value.errors) == {f"rating-{first}", "areas_to_grow", "goals"}
    review.refresh_from_db()
    assert review.status == "draft"


@pytest.mark.parametrize("score", [0, 6, "five", "3.5"])
def test_ratings_are_1_to_5(org, score):
    review = start(org)
    competency = competencies_for_rep(org.anna)[0]
    with pytest.raises(services.ReviewValidationError) as caught:
        services.review_update(
            review=review, user=org.max, texts={"goals": "new"}, ratings={competency.pk: score}
        )
    assert caught.value.errors == {f"rating-{competency.pk}": ["Pick a rating from 1 to 5."]}
    review.refresh_from_db()
    assert review.goals == "" and not review.ratings.exists()  # nothing saved


def test_a_competency_of_another_team_cannot_be_rated(org):
    nordic = services.competency_add(team=org.nordics, user=org.nora, name="Nordic thing")
    review = start(org)
    with pytest.raises(services.ReviewValidationError):
        services.review_update(review=review, user=org.max, texts={}, ratings={nordic.pk: 3})


def test_illegal_transitions(org):
    review = start(org)
    with pytest.raises(ApplicationError, match="Only a submitted review"):
        services.review_acknowledge(review=review, user=org.anna)
    with pytest.raises(ApplicationError, match="amendments are for submitted"):
        services.review_amend(review=review, user=org.max, texts={}, ratings={}, reason="x")
    complete(org, review)
    with pytest.raises(ApplicationError, match="Only a draft"):
        services.review_submit(review=review, user=org.max)
    with pytest.raises(ApplicationError, match="through an amendment"):
        services.review_update(review=review, user=org.max, texts={"goals": "sneaky"}, ratings={})
    # only the reviewed rep acknowledges
    for user in (org.max, org.ben, org.cso):
        with pytest.raises(services.ReviewPermissionError):
            services.review_acknowledge(review=review, user=user)
    services.review_acknowledge(review=review, user=org.anna)
    with pytest.raises(ApplicationError, match="Only a submitted review"):
        services.review_acknowledge(review=review, user=org.anna)
    review.refresh_from_db()
    assert review.goals == "Two logos"


def test_amendments_are_logged_field_by_field(org):
    review = start(org)
    complete(org, review)
    services.review_acknowledge(review=review, user=org.anna)
    competency = competencies_for_rep(org.anna)[0]
    entries = services.review_amend(
        review=review,
        user=org.rita,
        texts={**TEXTS, "goals": "Three logos"},
        ratings={competency.pk: 5},
        reason="Agreed in the follow-up",
    )
    assert sorted((e.field, e.old_value, e.new_value) for e in entries) == [
        ("goals", "Two logos", "Three logos"),
        (f"rating:{competency.slug}", "4", "5"),
    ]
    assert (
        ReviewAmendment.objects.filter(
            changed_by=org.rita, reason="Agreed in the follow-up"
        ).count()
        == 2
    )
    review.refresh_from_db()
    assert (review.goals, review.status) == ("Three logos", "acknowledged")


def test_bad_amendments_change_nothing(org):
    review = start(org)
    complete(org, review)
    with pytest.raises(services.ReviewValidationError) as caught:
        services.review_amend(
            review=review, user=org.max, texts={"goals": "x"}, ratings={}, reason=" "
        )
    assert "reason" in caught.value.errors
    with pytest.raises(ApplicationError, match="Nothing changed"):
        services.review_amend(review=review, user=org.max, texts=TEXTS, ratings={}, reason="r")
    with pytest.raises(services.ReviewPermissionError):
        services.review_amend(
            review=review, user=org.nora, texts={"goals": "x"}, ratings={}, reason="r"
        )
    with pytest.raises(services.ReviewPermissionError):
        services.review_amend(
            review=review, user=org.anna, texts={"goals": "x"}, ratings={}, reason="r"
        )
    assert not ReviewAmendment.objects.exists()
    review.refresh_from_db()
    assert review.goals == "Two logos"


def test_policy_for_reviews(org):
    from apps.org.policy import can_acknowledge_review, can_configure_team

    assert can_acknowledge_review(org.anna, org.anna.pk)
    assert not can_acknowledge_review(org.max, org.anna.pk)
    assert can_configure_team(org.max, org.dach) and can_configure_team(org.cso, org.dach)
    assert not can_configure_team(org.nora, org.dach)
    assert not can_configure_team(org.ops, org.dach)
    assert not can_configure_team(org.anna, org.dach)
