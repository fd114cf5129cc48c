"""Performance review pages. Thin: the selectors decide what a user sees (out of scope is a
404), the services decide what a user may do (refused is a 403) and validate input (shown
on the page; nothing changes)."""

from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.core.errors import ApplicationError
from apps.org.models import Role, Team, User
from apps.org.policy import can_acknowledge_review, can_configure_team, can_manage_user, scope_for
from apps.performance import services
from apps.performance.forms import AcknowledgeForm, CompetencyForm, ReviewForm, StartReviewForm
from apps.performance.models import Competency, PerformanceReview
from apps.performance.selectors import (
    competencies_for_rep,
    completion_by_team,
    configurable_teams,
    last_ended_quarter,
    rep_history,
    review_get,
    review_kpis,
    review_periods,
    reviews_due,
    team_competencies,
    visible_reviews,
)
from apps.quotas.models import FiscalPeriod

#: The largest primary key a row can have (64-bit); a bigger number names no record.
MAX_PK = 2**63 - 1


@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """Reps: their own reviews. Managers: due and overdue reviews of their people and
    their recent reviews. Executives: completion by team, and everything due."""
    user = request.user
    today = timezone.localdate()
    scope = scope_for(user)
    if user.role == Role.REP and not user.is_superuser:
        reviews = visible_reviews(user=user).filter(rep=user).order_by("-period__start_date")
        return render(request, "performance/mine.html", {"reviews": reviews})
    period = None
    if request.GET.get("period"):
        period = review_periods().filter(name=request.GET["period"]).first()
    period = period or last_ended_quarter(today)
    due = reviews_due(user=user, today=today)
    completion = completion_by_team(user=user, period=period) if period else []
    recent = visible_reviews(user=user).exclude(rep=user).order_by("-updated_at")[:50]
    return render(
        request,
        "performance/index.html",
        {
            "today": today,
            "due": [(d, d.overdue_on(today)) for d in due],
            "completion": completion if scope.everything or scope.team_ids else [],
            "period": period,
            "periods": review_periods()[:12],
            "recent": recent,
            "configurable": configurable_teams(user=user)[:50],
        },
    )


@require_POST
def review_start(request: HttpRequest) -> HttpResponse:
    """Start (or open, if it exists) the review of a rep for a period."""
    form = StartReviewForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Pick a rep and a period.")
        return redirect("reviews:index")
    rep = User.objects.filter(pk=form.cleaned_data["rep"]).first()
    period = FiscalPeriod.objects.filter(name=form.cleaned_data["period"]).first()
    if rep is None or period is None or not scope_for(request.user).sees_user(rep.pk):
        raise Http404("There is no such person or period.")
    existing = PerformanceReview.objects.filter(rep=rep, period=period).first()
    if existing is not None and review_get(user=request.user, pk=existing.pk):
        return redirect("reviews:detail", pk=existing.pk)
    try:
        review = services.review_create(rep=rep, period=period, reviewer=request.user)
    except services.ReviewPermissionError as exc:
        raise PermissionDenied(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:index")
    return redirect("reviews:detail", pk=review.pk)


def _review_or_404(request: HttpRequest, pk: int) -> PerformanceReview:
    review = review_get(user=request.user, pk=pk)
    if review is None:
        raise Http404("There is no such review.")
    return review


def _initial(review: PerformanceReview) -> dict[str, object]:
    data: dict[str, object] = {name: getattr(review, name) for name in ReviewForm.TEXT_FIELDS}
    for rating in review.ratings.all():
        data[f"rating-{rating.competency_id}"] = str(rating.score)
    return data


def _rated_competencies(review: PerformanceReview) -> list[Competency]:
    """What the form rates: the rep's competencies plus any already rated (a competency
    switched off later still shows on the reviews that rated it)."""
    current = competencies_for_rep(review.rep)
    known = {c.pk for c in current}
    extra = [
        r.competency
        for r in review.ratings.select_related("competency")
        if r.competency_id not in known
    ]
    return current + extra


def _render_review(
    request: HttpRequest,
    review: PerformanceReview,
    *,
    form: ReviewForm | None = None,
    amend_form: ReviewForm | None = None,
    ack_form: AcknowledgeForm | None = None,
    status: int = 200,
) -> HttpResponse:
    user = request.user
    competencies = _rated_competencies(review)
    may_manage = can_manage_user(user, review.rep)
    scores = {r.competency_id: r.score for r in review.ratings.all()}
    is_draft = review.status == PerformanceReview.Status.DRAFT
    context = {
        "review": review,
        "kpis": review_kpis(user=user, review=review),
        "rating_rows": [(c, scores.get(c.pk)) for c in competencies],
        "can_edit": is_draft and may_manage,
        "can_amend": not is_draft and may_manage,
        "can_acknowledge": review.status == PerformanceReview.Status.SUBMITTED
        and can_acknowledge_review(user, review.rep_id),
        "amendments": review.amendments.select_related("changed_by"),
    }
    if context["can_edit"]:
        context["form"] = form or ReviewForm(initial=_initial(review), competencies=competencies)
    if context["can_amend"]:
        context["amend_form"] = amend_form or ReviewForm(
            initial=_initial(review), competencies=competencies, with_reason=True
        )
    if context["can_acknowledge"]:
        context["ack_form"] = ack_form or AcknowledgeForm()
    return render(request, "performance/review.html", context, status=status)


@require_http_methods(["GET", "POST"])
def review_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """A review: the draft form for its manager (save, or save and submit), read-only
    otherwise, with the rep's KPIs for the period beside it."""
    review = _review_or_404(request, pk)
    if request.method == "GET":
        return _render_review(request, review)
    form = ReviewForm(request.POST, competencies=_rated_competencies(review))
    if not form.is_valid():
        return _render_review(request, review, form=form, status=400)
    try:
        services.review_update(
            review=review, user=request.user, texts=form.texts(), ratings=form.ratings()
        )
        if request.POST.get("action") == "submit":
            services.review_submit(review=review, user=request.user)
            messages.success(request, "Review submitted; the rep can now acknowledge it.")
        else:
            messages.success(request, "Draft saved.")
    except services.ReviewPermissionError as exc:
        raise PermissionDenied(exc.message) from None
    except services.ReviewValidationError as exc:
        form.add_service_errors(exc.errors)
        messages.error(request, exc.message)
        review.refresh_from_db()
        return _render_review(request, review, form=form, status=400)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("reviews:detail", pk=review.pk)


@require_POST
def review_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    review = _review_or_404(request, pk)
    form = AcknowledgeForm(request.POST)
    if not form.is_valid():
        return _render_review(request, review, ack_form=form, status=400)
    try:
        services.review_acknowledge(
            review=review, user=request.user, response=form.cleaned_data["rep_response"]
        )
    except services.ReviewPermissionError as exc:
        raise PermissionDenied(exc.message) from None
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:detail", pk=review.pk)
    messages.success(request, "Review acknowledged.")
    return redirect("reviews:detail", pk=review.pk)


@require_POST
def review_amend(request: HttpRequest, pk: int) -> HttpResponse:
    review = _review_or_404(request, pk)
    form = ReviewForm(request.POST, competencies=_rated_competencies(review), with_reason=True)
    if not form.is_valid():
        return _render_review(request, review, amend_form=form, status=400)
    try:
        entries = services.review_amend(
            review=review,
            user=request.user,
            texts=form.texts(),
            ratings=form.ratings(),
            reason=form.cleaned_data["reason"],
        )
    except services.ReviewPermissionError as exc:
        raise PermissionDenied(exc.message) from None
    except services.ReviewValidationError as exc:
        form.add_service_errors(exc.errors)
        return _render_review(request, review, amend_form=form, status=400)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("reviews:detail", pk=review.pk)
    messages.success(request, f"Amended: {len(entries)} change(s) logged.")
    return redirect("reviews:detail", pk=review.pk)


@require_GET
def rep_reviews(request: HttpRequest, user_id: int) -> HttpResponse:
    """A person's review history (rep scorecards link here)."""
    reviews = rep_history(user=request.user, rep_id=user_id)
    if reviews is None:
        raise Http404("There is no such person.")
    rep = get_object_or_404(User, pk=user_id)
    return render(
        request,
        "performance/rep.html",
        {"rep": rep, "reviews": reviews, "can_review": can_manage_user(request.user, rep)},
    )


def _posted_id(raw: str) -> int:
    """A record id from a form; text that cannot be one (a mangled or forged value) names
    no record, so it answers like a missing id (404) instead of failing in the query."""
    if not re.fullmatch(r"[0-9]{1,19}", raw) or int(raw) > MAX_PK:
        raise Http404("There is no such record.")
    return int(raw)


@require_http_methods(["GET", "POST"])
def competencies(request: HttpRequest, team_id: int) -> HttpResponse:
    """The competencies rated in a team's reviews: company-wide ones and the team's own,
    which its managers (and executives) add and switch on or off."""
    team = get_object_or_404(Team, pk=team_id)
    if not scope_for(request.user).sees_team(team.pk):
        raise Http404("There is no such team.")
    may_configure = can_configure_team(request.user, team)
    form = CompetencyForm()
    status = 200
    if request.method == "POST":
        if not may_configure:
            raise PermissionDenied("You may not configure this team's competencies.")
        try:
            if "toggle" in request.POST:
                competency = get_object_or_404(
                    Competency, pk=_posted_id(request.POST["toggle"]), team=team
                )
                services.competency_set_active(
                    competency=competency, user=request.user, active=not competency.is_active
                )
                messages.success(request, f"{competency.name} updated.")
                return redirect("reviews:competencies", team_id=team.pk)
            form = CompetencyForm(request.POST)
            if form.is_valid():
                created = services.competency_add(
                    team=team,
                    user=request.user,
                    name=form.cleaned_data["name"],
                    description=form.cleaned_data["description"],
                )
                messages.success(request, f"Added {created.name}.")
                return redirect("reviews:competencies", team_id=team.pk)
            status = 400
        except services.ReviewPermissionError as exc:
            raise PermissionDenied(exc.message) from None
        except services.ReviewValidationError as exc:
            for field, errs in exc.errors.items():
                for err in errs:
                    form.add_error(field if field in form.fields else None, err)
            status = 400
    return render(
        request,
        "performance/competencies.html",
        {
            "team": team,
            "competencies": team_competencies(team=team),
            "form": form,
            "may_configure": may_configure,
        },
        status=status,
    )
