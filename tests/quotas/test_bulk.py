"""quotas_set_bulk: many quotas with the rules of quota_set, in a fixed number of queries,
all or nothing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.core.errors import ApplicationError
from apps.kpis.models import DirtyMonth
from apps.quotas import services
from apps.quotas.models import Quota, QuotaChange
from apps.quotas.services import QuotaBulkError, QuotaInput, quota_set, quotas_set_bulk

pytestmark = pytest.mark.django_db

D = Decimal
MONTHS_2025 = [f"2025-{m:02d}" for m in range(1, 13)]


def history() -> tuple[list, list, list]:
    """Quotas, their QuotaChange rows and audit events, without ids or times."""
    quotas = list(
        Quota.objects.order_by("period__start_date", "rep_id", "team_id").values_list(
            "period__name", "rep_id", "team_id", "amount", "currency", "note", "set_by_id"
        )
    )
    changes = list(
        QuotaChange.objects.order_by("month__start_date", "rep_id", "team_id", "id").values_list(
            "month__name",
            "rep_id",
            "team_id",
            "quota__period__name",
            "field",
            "old_value",
            "new_value",
            "currency",
            "reason",
            "changed_by_id",
            "plan_id",
        )
    )
    events = sorted(
        AuditEvent.objects.filter(action="quota_changed").values_list(
            "actor_id", "actor_username", "target_type", "summary", "detail"
        ),
        key=lambda e: e[3],
    )
    return quotas, changes, events


def versions(org) -> list[list[QuotaInput]]:
    """Three rounds of quotas: created, then partly changed (amount, currency, note), then
    written again unchanged."""
    first = [
        QuotaInput(period=org.period("2025-01"), amount=D("100"), rep=org.anna),
        QuotaInput(period=org.period("2025-02"), amount=D("200.5"), rep=org.anna),
        QuotaInput(period=org.period("2025-01"), amount=D("900"), team=org.dach, note="top"),
        QuotaInput(period=org.period("2025-01"), amount=D("50"), rep=org.carl, currency="eur"),
    ]
    second = [
        QuotaInput(period=org.period("2025-01"), amount=D("150"), rep=org.anna),
        QuotaInput(period=org.period("2025-02"), amount=D("200.50"), rep=org.anna, note="n"),
        QuotaInput(period=org.period("2025-01"), amount=D("900"), team=org.dach, currency="GBP"),
        QuotaInput(period=org.period("2025-01"), amount=D("50"), rep=org.carl, currency="EUR"),
        QuotaInput(period=org.period("2025-03"), amount=D("0"), rep=org.ben),
    ]
    return [first, second, second]


def test_bulk_writes_what_quota_set_writes_one_by_one(org):
    # given the rounds written one quota at a time through quota_set
    for round_ in versions(org):
        for item in round_:
            quota_set(
                period=item.period,
                amount=item.amount,
                set_by=org.max,
                rep=item.rep,
                team=item.team,
                currency=item.currency,
                note=item.note,
            )
    expected = history()
    Quota.objects.all().delete()
    QuotaChange.objects.all().delete()
    AuditEvent.objects.all().delete()
    # when the same rounds are written in bulk
    for round_ in versions(org):
        quotas_set_bulk(items=round_, set_by=org.max)
    # then quotas, their change history and the audit log are the same
    actual = history()
    assert actual == expected
    # (4 creations, 3 changes of amount or currency, no row for a note or for no change)
    assert sorted((c[0], c[5], c[6], c[7]) for c in actual[1]) == [
        ("2025-01", "", "100.00", "USD"),
        ("2025-01", "", "50.00", "EUR"),
        ("2025-01", "", "900.00", "USD"),
        ("2025-01", "100.00", "150.00", "USD"),
        ("2025-01", "900.00 USD", "900.00", "GBP"),
        ("2025-02", "", "200.50", "USD"),
        ("2025-03", "", "0.00", "USD"),
    ]
    assert len(actual[2]) == 7
    assert Quota.objects.get(rep=org.anna, period__name="2025-02").note == "n"


def test_bulk_returns_the_quotas_in_order_and_queues_their_months(
    org, django_capture_on_commit_callbacks
):
    items = versions(org)[0]
    with django_capture_on_commit_callbacks(execute=True):
        quotas = quotas_set_bulk(items=items, set_by=org.max)
    assert [(q.period.name, q.rep_id, q.team_id) for q in quotas] == [
        (i.period.name, getattr(i.rep, "pk", None), getattr(i.team, "pk", None)) for i in items
    ]
    assert all(q.pk for q in quotas)
    assert set(DirtyMonth.objects.filter(area="quotas").values_list("month", flat=True)) == {
        org.period("2025-01").start_date,
        org.period("2025-02").start_date,
    }


def test_every_refusal_is_listed_and_nothing_is_written(org):
    # given a locked Q1 plan of DACH, and quotas among which four are refused
    plan = services.quota_plan_save(
        team=org.dach,
        period=org.period("2025-Q1"),
        user=org.max,
        values={f"r{org.anna.pk}:2025-01": "100"},
    )
    assert plan == 1
    submitted = services.quota_plan_submit(
        team=org.dach, period=org.period("2025-Q1"), user=org.max
    )
    services.quota_plan_lock(
        plan=services.quota_plan_approve(plan=submitted, user=org.rita), user=org.cso
    )
    before = history()
    items = [
        QuotaInput(period=org.period("2025-04"), amount=D("1"), rep=org.anna),  # free
        QuotaInput(period=org.period("2025-02"), amount=D("1"), rep=org.ben),  # locked
        QuotaInput(period=org.period("2025-Q2"), amount=D("1"), rep=org.ben),  # a quarter
        QuotaInput(period=org.period("2025-05"), amount=D("-1"), rep=org.ben),  # negative
        QuotaInput(period=org.period("2025-05"), amount=D("1")),  # nobody
        QuotaInput(period=org.period("2025-04"), amount=D("2"), rep=org.anna),  # twice
    ]
    # when they are written by the manager
    with pytest.raises(QuotaBulkError) as refused:
        quotas_set_bulk(items=items, set_by=org.max)
    # then the input errors are listed by position first (the lock is checked on the rest)
    assert [(i, e.message) for i, e in refused.value.errors] == [
        (2, "Quotas are set per fiscal month; 2025-Q2 is a quarter."),
        (3, "A quota must be a non-negative amount."),
        (4, "A quota is for exactly one rep or one team."),
        (5, f"The quota of {org.anna} for 2025-04 is given twice (first at position 1)."),
    ]
    items = items[:2]
    with pytest.raises(QuotaBulkError) as refused:
        quotas_set_bulk(items=items, set_by=org.max)
    [(position, error)] = refused.value.errors
    assert position == 1 and isinstance(error, services.QuotaPermissionError)
    assert error.message == (
        "2025-02 is locked in the DACH plan for 2025-Q1; only an executive may change it."
    )
    with pytest.raises(QuotaBulkError, match="give a reason"):
        quotas_set_bulk(items=items, set_by=org.cso)
    # and nothing was written
    assert history() == before
    # while an executive with a reason may
    quotas_set_bulk(items=items, set_by=org.cso, reason="Territory moved")
    assert QuotaChange.objects.filter(rep=org.ben).get().reason == "Territory moved"


def test_quota_set_raises_the_refusal_itself(org):
    with pytest.raises(ApplicationError, match="exactly one rep or one team"):
        quota_set(period=org.period("2025-01"), amount=D("1"), set_by=org.max)
    with pytest.raises(ApplicationError, match="non-negative"):
        quota_set(period=org.period("2025-01"), amount="x", set_by=org.max, rep=org.anna)


@pytest.mark.parametrize("locked", [False, True])
def test_bulk_costs_the_same_queries_for_3_or_12_months(org, locked):
    # given (or not) a locked plan of the company for 2025, which an executive may change
    if locked:
        from django.utils import timezone

        from apps.quotas.models import QuotaPlan

        now = timezone.now()
        QuotaPlan.objects.create(
            team=org.company,
            period=org.period("FY2025"),
            status="locked",
            submitted_at=now,
            approved_at=now,
            locked_at=now,
        )

    def queries(months: list[str], amount: str) -> int:
        items = [
            QuotaInput(period=org.period(m), amount=D(amount), rep=rep)
            for m in months
            for rep in (org.anna, org.ben)
        ]
        with CaptureQueriesContext(connection) as captured:
            quotas_set_bulk(items=items, set_by=org.cso, reason="plan")
        return len(captured)

    # when 6 and 24 quotas are created, then all changed, then written unchanged
    small = [queries(MONTHS_2025[:3], a) for a in ("1", "2", "2")]
    Quota.objects.all().delete()
    large = [queries(MONTHS_2025, a) for a in ("1", "2", "2")]
    # then each round costs the same whatever the count: savepoint, locked plans (and
    # the team tree when there are some), the stored quotas, then the writes (created:
    # INSERT quotas, changes, audit; changed: UPDATE, changes, audit; unchanged: none),
    # savepoint release
    tree = 1 if locked else 0
    assert small == large == [7 + tree, 7 + tree, 4 + tree]
