"""Teams, people, quotas, reviews and import jobs: each role sees its scope, and quota
writes follow who may set whose target."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from apps.imports.models import ImportJob
from apps.performance.models import Competency, ReviewAmendment
from apps.quotas.models import Quota, QuotaChange
from tests.api.helpers import assert_error_shape, client_for
from tests.factories import FiscalPeriodFactory, PerformanceReviewFactory, QuotaFactory

pytestmark = pytest.mark.django_db


def ids(response) -> set[int]:
    assert response.status_code == 200, response.content[:300]
    return {row["id"] for row in response.json()["results"]}


def test_people_and_teams_follow_the_scope(org):
    everyone = {
        u.pk
        for u in (
            org.executive,
            org.revops,
            org.manager,
            org.rep,
            org.peer,
            org.sub_rep,
            org.outsider,
        )
    }
    assert ids(client_for(org.executive).get("/api/v1/users/")) == everyone
    assert ids(client_for(org.manager).get("/api/v1/users/")) == {
        org.manager.pk,
        org.rep.pk,
        org.peer.pk,
        org.sub_rep.pk,
    }
    assert ids(client_for(org.rep).get("/api/v1/users/")) == {org.rep.pk}
    assert ids(client_for(org.manager).get("/api/v1/teams/")) == {org.east.pk, org.east_sub.pk}
    assert ids(client_for(org.rep).get("/api/v1/teams/")) == set()
    # someone outside the scope is not found by id
    assert_error_shape(client_for(org.manager).get(f"/api/v1/users/{org.outsider.pk}/"), 404)
    assert_error_shape(client_for(org.manager).get(f"/api/v1/teams/{org.west.pk}/"), 404)


def test_users_can_be_filtered_by_team_subtree(org):
    response = client_for(org.executive).get("/api/v1/users/", {"within": org.east.pk})
    assert ids(response) == {org.manager.pk, org.rep.pk, org.peer.pk, org.sub_rep.pk}


def test_a_draft_review_is_hidden_from_the_reviewed_rep_until_submitted(org):
    draft = PerformanceReviewFactory(rep=org.rep, reviewer=org.manager)
    submitted = PerformanceReviewFactory(rep=org.rep, reviewer=org.manager, submitted=True)
    other = PerformanceReviewFactory(rep=org.outsider, submitted=True)
    assert ids(client_for(org.rep).get("/api/v1/reviews/")) == {submitted.pk}
    assert_error_shape(client_for(org.rep).get(f"/api/v1/reviews/{draft.pk}/"), 404)
    assert ids(client_for(org.manager).get("/api/v1/reviews/")) == {draft.pk, submitted.pk}
    assert ids(client_for(org.executive).get("/api/v1/reviews/")) == {
        draft.pk,
        submitted.pk,
        other.pk,
    }


def test_a_review_goes_from_draft_to_acknowledged_through_the_api(org):
    manager, rep = client_for(org.manager), client_for(org.rep)
    # given the manager starts a draft for a quarter
    created = manager.post(
        "/api/v1/reviews/", {"rep": org.rep.pk, "period": "2025-Q1"}, format="json"
    )
    assert created.status_code == 201, created.json()
    review = created.json()
    assert (review["status"], review["period"], review["reviewer"]) == (
        "draft",
        "2025-Q1",
        org.manager.pk,
    )
    url = f"/api/v1/reviews/{review['id']}/"
    # an incomplete draft cannot be submitted; the answer names what is missing
    body = assert_error_shape(manager.post(f"{url}submit/"), 400)
    assert "strengths" in body["extra"]["errors"]
    # when the manager writes it and rates every competency
    competencies = Competency.objects.filter(team__isnull=True, is_active=True)
    change = {
        "strengths": "Clear next steps",
        "areas_to_grow": "Forecast accuracy",
        "goals": "Two enterprise wins",
        "ratings": [{"competency": c.pk, "score": 4} for c in competencies],
    }
    assert manager.patch(url, change, format="json").status_code == 200
    # then it can be submitted, after which the rep sees and acknowledges it
    assert manager.post(f"{url}submit/").json()["status"] == "submitted"
    acknowledged = rep.post(f"{url}acknowledge/", {"rep_response": "Agreed"}, format="json")
    assert acknowledged.status_code == 200, acknowledged.json()
    assert (acknowledged.json()["status"], acknowledged.json()["rep_response"]) == (
        "acknowledged",
        "Agreed",
    )
    assert {r["score"] for r in acknowledged.json()["ratings"]} == {4}
    # and a later change is an amendment that needs a reason
    body = assert_error_shape(manager.patch(url, {"goals": "Three wins"}, format="json"), 400)
    assert "reason" in body["extra"]["errors"]
    amended = manager.patch(url, {"goals": "Three wins", "reason": "Typo"}, format="json")
    assert amended.status_code == 200 and amended.json()["goals"] == "Three wins"
    assert ReviewAmendment.objects.filter(review_id=review["id"], field="goals").exists()


def test_reps_cannot_review_and_only_the_rep_acknowledges(org):
    refused = client_for(org.rep).post(
        "/api/v1/reviews/", {"rep": org.rep.pk, "period": "2025-Q1"}, format="json"
    )
    assert_error_shape(refused, 403)
    review = PerformanceReviewFactory(rep=org.rep, reviewer=org.manager, submitted=True)
    body = assert_error_shape(
        client_for(org.manager).post(f"/api/v1/reviews/{review.pk}/acknowledge/"), 403
    )
    assert "reviewed person" in body["message"]
    # a month is not a review period
    month = client_for(org.manager).post(
        "/api/v1/reviews/", {"rep": org.rep.pk, "period": "2025-03"}, format="json"
    )
    assert "period" in assert_error_shape(month, 400)["extra"]["fields"]


def test_quotas_are_listed_per_scope_and_by_fiscal_period(org):
    march = FiscalPeriodFactory(day=date(2025, 3, 1))
    april = FiscalPeriodFactory(day=date(2025, 4, 1))
    mine = QuotaFactory(rep=org.rep, period=march)
    QuotaFactory(rep=org.rep, period=april)
    theirs = QuotaFactory(rep=org.outsider, period=march)
    team = QuotaFactory(rep=None, team=org.east_sub, period=march)
    client = client_for(org.manager)
    assert ids(client.get("/api/v1/quotas/", {"period": "2025-Q1"})) == {mine.pk, team.pk}
    assert ids(client.get("/api/v1/quotas/", {"period": "2025-03", "kind": "team"})) == {team.pk}
    assert ids(client_for(org.rep).get("/api/v1/quotas/", {"period": "2025-03"})) == {mine.pk}
    assert_error_shape(client.get(f"/api/v1/quotas/{theirs.pk}/"), 404)
    body = assert_error_shape(client.get("/api/v1/quotas/", {"period": "Q5"}), 400)
    assert "period" in body["extra"]["fields"]


def test_a_manager_sets_a_reps_quota_and_the_change_is_audited(org):
    client = client_for(org.manager)
    # when the manager sets a monthly quota for a rep of their team
    response = client.post(
        "/api/v1/quotas/",
        {"period": "2025-05", "rep": org.rep.pk, "amount": "40000.00", "note": "ramp"},
        format="json",
    )
    # then it is stored for that fiscal month in the base currency, with an audit row
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["period"], body["period_start"], body["currency"]) == (
        "2025-05",
        "2025-05-01",
        "USD",
    )
    quota = Quota.objects.get(pk=body["id"])
    assert (quota.amount, quota.set_by) == (Decimal("40000.00"), org.manager)
    assert QuotaChange.objects.filter(quota=quota).count() == 1
    # and a change later replaces the amount
    response = client.patch(f"/api/v1/quotas/{quota.pk}/", {"amount": "45000"}, format="json")
    assert response.status_code == 200, response.json()
    quota.refresh_from_db()
    assert quota.amount == Decimal("45000.00")
    # a second POST for the same rep and month is refused, naming the existing quota
    again = client.post(
        "/api/v1/quotas/",
        {"period": "2025-05", "rep": org.rep.pk, "amount": "1"},
        format="json",
    )
    assert assert_error_shape(again, 400)["extra"] == {"id": quota.pk}


@pytest.mark.parametrize(
    ("role", "target", "status"),
    [
        ("manager", "manager", 403),  # nobody sets their own quota
        ("manager", "outsider", 400),  # outside the subtree: not even a valid rep
        ("rep", "rep", 403),
        ("revops", "rep", 403),
        ("executive", "manager", 201),
    ],
)
def test_who_may_set_whose_quota(org, role, target, status):
    response = client_for(getattr(org, role)).post(
        "/api/v1/quotas/",
        {"period": "2025-06", "rep": getattr(org, target).pk, "amount": "10"},
        format="json",
    )
    if status == 201:
        assert response.status_code == 201, response.json()
    else:
        assert_error_shape(response, status)
        assert not Quota.objects.exists()


def test_team_quotas_are_set_by_the_manager_above_the_team(org):
    client = client_for(org.manager)
    below = client.post(
        "/api/v1/quotas/",
        {"period": "2025-06", "team": org.east_sub.pk, "amount": "90000"},
        format="json",
    )
    assert below.status_code == 201, below.json()
    own = client.post(
        "/api/v1/quotas/", {"period": "2025-06", "team": org.east.pk, "amount": "1"}, format="json"
    )
    assert_error_shape(own, 403)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"period": "2025-Q2", "rep": "REP", "amount": "1"}, "period"),
        ({"period": "2025-13", "amount": "1"}, "period"),
        ({"period": "2025-06", "amount": "1"}, "non_field_errors"),
        ({"period": "2025-06", "amount": "-5"}, "amount"),
        ({"period": "2025-06", "amount": "1e30"}, "amount"),
        ({"period": "2025-06", "amount": "1", "currency": "US$"}, "currency"),
    ],
)
def test_bad_quota_input_is_a_field_error(org, payload, field):
    if payload.get("rep") == "REP":
        payload = payload | {"rep": org.rep.pk}
    body = assert_error_shape(
        client_for(org.executive).post("/api/v1/quotas/", payload, format="json"), 400
    )
    assert field in body["extra"]["fields"], body
    assert not Quota.objects.exists()


def test_import_jobs_are_for_the_people_who_import(org):
    job = ImportJob.objects.create(kind="accounts", file_name="a.csv", status="committed")
    response = client_for(org.revops).get("/api/v1/import-jobs/")
    assert ids(response) == {job.pk}
    assert "file_data" not in response.json()["results"][0]
    assert_error_shape(client_for(org.manager).get("/api/v1/import-jobs/"), 403)
    assert_error_shape(client_for(org.rep).get(f"/api/v1/import-jobs/{job.pk}/"), 403)
