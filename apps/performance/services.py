"""Writes for performance reviews and the competencies they rate.

Workflow: draft (the manager writes) -> submitted (read-only; changes only through a
logged amendment) -> acknowledged (by the rep, with an optional response). Every function
checks the visibility policy itself, so no caller can skip it.
"""

from __future__ import annotations

from collections.abc import Mapping

from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.audit.services import Action, audit_record
from apps.core.errors import ApplicationError
from apps.org.models import Team, User
from apps.org.policy import can_acknowledge_review, can_configure_team, can_manage_user
from apps.performance.models import (
    DEFAULT_COMPETENCIES,
    Competency,
    PerformanceReview,
    ReviewAmendment,
    ReviewRating,
)
from apps.performance.selectors import competencies_for_rep
from apps.quotas.models import FiscalPeriod

TEXT_FIELDS = ("strengths", "areas_to_grow", "goals", "comments")
MAX_TEXT = 10_000


class ReviewPermissionError(ApplicationError):
    """The user may not do this to this review (pages: 403)."""


class ReviewValidationError(ApplicationError):
    """Bad review input: ``errors`` maps a form field (a text field or
    ``rating-<competency id>``) to its messages; nothing was written."""

    def __init__(self, message: str, *, errors: dict[str, list[str]]) -> None:
        super().__init__(message, extra={"errors": errors})
        self.errors = errors


@transaction.atomic
def competency_defaults_ensure() -> int:
    """Create the company-wide default competencies when there are none at all (a
    deactivated default still counts, so an admin's choice is kept). Returns rows created."""
    if Competency.objects.filter(team__isnull=True).exists():
        return 0
    Competency.objects.bulk_create(
        Competency(slug=slug, name=name, order=i)
        for i, (slug, name) in enumerate(DEFAULT_COMPETENCIES, start=1)
    )
    return len(DEFAULT_COMPETENCIES)


@transaction.atomic
def competency_add(*, team: Team, user: User, name: str, description: str = "") -> Competency:
    """Add a competency rated in the reviews of ``team`` and every team below it."""
    if not can_configure_team(user, team):
        raise ReviewPermissionError("You may not configure this team's competencies.")
    name = (name or "").strip()
    slug = slugify(name)[:60]
    if not name or not slug:
        raise ReviewValidationError("Name the competency.", errors={"name": ["Required."]})
    if Competency.objects.filter(team=team, slug=slug).exists():
        raise ReviewValidationError(
            f"{team} already has a competency {name!r}.", errors={"name": ["Already exists."]}
        )
    order = (Competency.objects.filter(team=team).count() + 1) * 10 + 100
    return Competency.objects.create(
        team=team, slug=slug, name=name[:80], description=description.strip(), order=order
    )


@transaction.atomic
def competency_set_active(*, competency: Competency, user: User, active: bool) -> Competency:
    """Switch a team's competency on or off (company-wide ones are managed in the admin)."""
    if competency.team is None or not can_configure_team(user, competency.team):
        raise ReviewPermissionError("You may not change this competency.")
    competency.is_active = active
    competency.save(update_fields=["is_active"])
    return competency


@transaction.atomic
def review_create(*, rep: User, period: FiscalPeriod, reviewer: User) -> PerformanceReview:
    """Start a draft review of ``rep`` for a fiscal quarter or year, written by ``reviewer``
    (an executive, or a manager whose subtree holds the rep; never of oneself)."""
    if not can_manage_user(reviewer, rep):
        raise ReviewPermissionError("You may not review this person.")
    if period.kind == FiscalPeriod.Kind.MONTH:
        raise ApplicationError("Reviews are written per fiscal quarter or year, not per month.")
    if PerformanceReview.objects.filter(rep=rep, period=period).exists():
        raise ApplicationError(f"{rep} already has a review for {period}.")
    competency_defaults_ensure()
    review = PerformanceReview.objects.create(rep=rep, period=period, reviewer=reviewer)
    _audit(review, reviewer, f"Started the {period.name} review of {rep}")
    return review


def _clean_ratings(
    review: PerformanceReview, ratings: Mapping[int, str | int | None]
) -> tuple[dict[int, int | None], dict[str, list[str]]]:
    allowed = {c.pk for c in competencies_for_rep(review.rep)}
    existing = set(review.ratings.values_list("competency_id", flat=True))
    cleaned: dict[int, int | None] = {}
    errors: dict[str, list[str]] = {}
    for competency_id, raw in ratings.items():
        key = f"rating-{competency_id}"
        if competency_id not in allowed and competency_id not in existing:
            errors[key] = ["This competency is not rated for this rep."]
            continue
        if raw in (None, ""):
            cleaned[competency_id] = None
            continue
        try:
            score = int(str(raw))
        except ValueError:
            errors[key] = ["Pick a rating from 1 to 5."]
            continue
        if not 1 <= score <= 5:
            errors[key] = ["Pick a rating from 1 to 5."]
            continue
        cleaned[competency_id] = score
    return cleaned, errors


def _clean_texts(texts: Mapping[str, str]) -> tuple[dict[str, str], dict[str, list[str]]]:
    cleaned, errors = {}, {}
    for name, value in texts.items():
        if name not in TEXT_FIELDS:
            errors[name] = ["Not a field of a review."]
        elif len(value or "") > MAX_TEXT:
            errors[name] = [f"Keep it under {MAX_TEXT} characters."]
        else:
            cleaned[name] = (value or "").strip()
    return cleaned, errors


def _write_ratings(review: PerformanceReview, ratings: Mapping[int, int | None]) -> None:
    for competency_id, score in ratings.items():
        if score is None:
            ReviewRating.objects.filter(review=review, competency_id=competency_id).delete()
        else:
            ReviewRating.objects.update_or_create(
                review=review, competency_id=competency_id, defaults={"score": score}
            )


def _locked_review(review_id: int) -> PerformanceReview:
    return (
        PerformanceReview.objects.select_for_update()
        .select_related("rep", "period", "reviewer")
        .get(pk=review_id)
    )


@transaction.atomic
def review_update(
    *,
    review: PerformanceReview,
    user: User,
    texts: Mapping[str, str],
    ratings: Mapping[int, str | int | None],
) -> PerformanceReview:
    """Save a draft: the text fields given and ratings (competency id -> 1-5, or empty to
    clear). All checked first; on any error nothing is written."""
    review = _locked_review(review.pk)
    if not can_manage_user(user, review.rep):
        raise ReviewPermissionError("You may not edit this review.")
    if review.status != PerformanceReview.Status.DRAFT:
        raise ApplicationError(
            "This review is submitted; change it through an amendment with a reason."
        )
    clean_texts, errors = _clean_texts(texts)
    clean_ratings, rating_errors = _clean_ratings(review, ratings)
    errors.update(rating_errors)
    if errors:
        raise ReviewValidationError("Some fields need fixing; nothing was saved.", errors=errors)
    for name, value in clean_texts.items():
        setattr(review, name, value)
    review.save()
    _write_ratings(review, clean_ratings)
    _audit(review, user, f"Edited the draft {review.period.name} review of {review.rep}")
    return review


@transaction.atomic
def review_submit(*, review: PerformanceReview, user: User) -> PerformanceReview:
    """Draft -> submitted. Every competency rated for the rep must have a rating, and
    strengths, areas to grow and goals must be written."""
    review = _locked_review(review.pk)
    if not can_manage_user(user, review.rep):
        raise ReviewPermissionError("You may not submit this review.")
    if review.status != PerformanceReview.Status.DRAFT:
        raise ApplicationError(
            f"Only a draft can be submitted; this review is {review.get_status_display().lower()}."
        )
    errors: dict[str, list[str]] = {}
    rated = set(review.ratings.values_list("competency_id", flat=True))
    for competency in competencies_for_rep(review.rep):
        if competency.pk not in rated:
            errors[f"rating-{competency.pk}"] = [f"Rate {competency.name} before submitting."]
    for name in ("strengths", "areas_to_grow", "goals"):
        if not getattr(review, name).strip():
            errors[name] = ["Write this before submitting."]
    if errors:
        raise ReviewValidationError("The review is not complete; it stays a draft.", errors=errors)
    review.status = PerformanceReview.Status.SUBMITTED
    review.submitted_at = timezone.now()
    review.reviewer = user
    review.save()
    _audit(review, user, f"Submitted the {review.period.name} review of {review.rep}")
    return review


@transaction.atomic
def review_acknowledge(
    *, review: PerformanceReview, user: User, response: str = ""
) -> PerformanceReview:
    """Submitted -> acknowledged, by the reviewed rep, with an optional response."""
    review = _locked_review(review.pk)
    if not can_acknowledge_review(user, review.rep_id):
        raise ReviewPermissionError("Only the reviewed person acknowledges a review.")
    if review.status != PerformanceReview.Status.SUBMITTED:
        raise ApplicationError(
            "Only a submitted review can be acknowledged; this one is "
            f"{review.get_status_display().lower()}."
        )
    if len(response or "") > MAX_TEXT:
        raise ReviewValidationError(
            "The response is too long.", errors={"rep_response": ["Too long."]}
        )
    review.status = PerformanceReview.Status.ACKNOWLEDGED
    review.acknowledged_at = timezone.now()
    review.rep_response = (response or "").strip()
    review.save()
    _audit(review, user, f"Acknowledged their {review.period.name} review")
    return review


@transaction.atomic
def review_amend(
    *,
    review: PerformanceReview,
    user: User,
    texts: Mapping[str, str],
    ratings: Mapping[int, str | int | None],
    reason: str,
) -> list[ReviewAmendment]:
    """Change a submitted or acknowledged review. Each changed field (or rating) is logged
    with its old and new value, who, when and ``reason`` (required). The status stays."""
    review = _locked_review(review.pk)
    if not can_manage_user(user, review.rep):
        raise ReviewPermissionError("You may not amend this review.")
    if review.status == PerformanceReview.Status.DRAFT:
        raise ApplicationError("A draft is edited directly; amendments are for submitted reviews.")
    clean_texts, errors = _clean_texts(texts)
    clean_ratings, rating_errors = _clean_ratings(review, ratings)
    errors.update(rating_errors)
    if not (reason or "").strip():
        errors["reason"] = ["Say why the submitted review changes."]
    for competency_id, score in clean_ratings.items():
        if score is None:
            errors[f"rating-{competency_id}"] = ["A submitted review keeps a rating (1 to 5)."]
    if errors:
        raise ReviewValidationError("Some fields need fixing; nothing was saved.", errors=errors)
    now = timezone.now()
    entries: list[ReviewAmendment] = []

    def log(field: str, old: str, new: str) -> None:
        entries.append(
            ReviewAmendment(
                review=review,
                field=field,
                old_value=old,
                new_value=new,
                reason=reason.strip()[:500],
                changed_by=user,
                changed_at=now,
            )
        )

    for name, value in clean_texts.items():
        if getattr(review, name) != value:
            log(name, getattr(review, name), value)
            setattr(review, name, value)
    current = {r.competency_id: r for r in review.ratings.select_related("competency")}
    names = {c.pk: c.slug for c in competencies_for_rep(review.rep)}
    for competency_id, score in clean_ratings.items():
        old = current.get(competency_id)
        if old is None or old.score != score:
            slug = names.get(competency_id) or (old.competency.slug if old else competency_id)
            log(f"rating:{slug}", "" if old is None else str(old.score), str(score))
    if not entries:
        raise ApplicationError("Nothing changed; the review stays as it was.")
    review.save()
    _write_ratings(review, clean_ratings)
    ReviewAmendment.objects.bulk_create(entries)
    _audit(
        review,
        user,
        f"Amended the {review.period.name} review of {review.rep}: "
        f"{', '.join(e.field for e in entries)}",
        detail={"reason": reason.strip()[:500]},
    )
    return entries


def _audit(review: PerformanceReview, user: User, summary: str, detail: dict | None = None) -> None:
    audit_record(
        action=Action.REVIEW_CHANGED, summary=summary, actor=user, target=review, detail=detail
    )
