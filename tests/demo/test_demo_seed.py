"""seed_demo against the database: determinism, idempotence and the data's invariants.

Runs on whichever database DATABASE_URL selects (COPY on PostgreSQL, bulk_create on SQLite).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, time, timedelta
from io import StringIO
from itertools import pairwise

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.db.models import Count, Max, Min

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate, JobRun
from apps.crm.models import Opportunity, OpportunityHistory, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.demo.generator import DEMO_PASSWORD
from apps.demo.services import demo_data_exists, demo_seed
from apps.org.models import Role, Team, User
from apps.performance.models import Competency, PerformanceReview, ReviewRating
from apps.quotas.models import FiscalPeriod, Quota

from .helpers import AS_OF, SMALL, demo_rows, digest

pytestmark = pytest.mark.django_db


def _seed(seed: int = 42, scale: int = 400, **kwargs):
    return demo_seed(seed=seed, scale=scale, as_of=AS_OF, progress=None, **kwargs)


def test_same_seed_and_as_of_give_the_same_data_on_a_fresh_database():
    # given a fresh database, seeded once and rolled back
    with transaction.atomic():
        _seed(seed=42)
        first = demo_rows()
        transaction.set_rollback(True)
    assert not demo_data_exists()
    # when the same seed is loaded again into the fresh database
    _seed(seed=42)
    second = demo_rows()
    # then every row is the same (auto ids aside)
    assert {k: len(v) for k, v in first.items()} == {k: len(v) for k, v in second.items()}
    assert digest(first) == digest(second)
    # and another seed gives other data (same people and calendar, other deals)
    _seed(seed=43)
    third = demo_rows()
    assert digest(third) != digest(first)
    assert third["opportunities"] != first["opportunities"]
    assert [u[0] for u in third["users"]] == [u[0] for u in first["users"]]


def test_running_twice_replaces_the_demo_without_duplicates():
    # given a seeded database
    first = _seed(seed=42)
    before = digest(demo_rows())
    # when the seed runs again
    second = _seed(seed=42)
    # then the counts and the data are the same: nothing was duplicated
    assert second.counts == first.counts
    assert digest(demo_rows()) == before
    assert User.objects.count() == 75
    assert Team.objects.count() == 12
    assert Stage.objects.count() == 7
    assert Competency.objects.count() == 6
    assert Opportunity.objects.count() == 400
    assert not Quota.objects.values("period", "rep", "team").annotate(n=Count("id")).filter(n__gt=1)
    assert JobRun.objects.filter(kind="demo_seed", status="succeeded").count() == 2


def test_if_empty_only_reports_when_demo_data_exists(django_assert_num_queries):
    _seed(seed=42, scale=100)
    before = digest(demo_rows())
    with django_assert_num_queries(1):
        result = _seed(seed=99, scale=300, if_empty=True)
    assert result.skipped
    assert [role for role, _, _ in result.logins] == [
        "executive",
        "manager",
        "rep",
        "revops_admin",
    ]
    assert digest(demo_rows()) == before


def test_if_empty_loads_into_an_empty_database():
    result = _seed(seed=42, scale=100, if_empty=True)
    assert not result.skipped
    assert Opportunity.objects.count() == 100


def test_history_replays_to_every_deal_and_deals_respect_as_of(seeded):
    end_of_as_of = datetime.combine(AS_OF + timedelta(days=1), time(0), tzinfo=UTC)
    history = defaultdict(list)
    for row in OpportunityHistory.objects.order_by("opportunity_id", "changed_at", "id").values(
        "opportunity_id",
        "changed_at",
        "changed_fields",
        "stage_id",
        "amount",
        "currency",
        "close_date",
        "owner_id",
        "forecast_category",
        "source",
        "changed_by_id",
    ):
        history[row["opportunity_id"]].append(row)
    deals = list(Opportunity.objects.select_related("stage"))
    assert len(deals) == SMALL
    for deal in deals:
        rows = history[deal.pk]
        assert rows[0]["changed_fields"] == "created"
        stamps = [r["changed_at"] for r in rows]
        assert all(a < b for a, b in pairwise(stamps))
        assert stamps[-1] < end_of_as_of
        assert {r["source"] for r in rows} == {"seed"}
        assert all(r["changed_by_id"] for r in rows)
        last = rows[-1]
        assert (
            last["stage_id"], last["amount"], last["currency"], last["close_date"],
            last["owner_id"], last["forecast_category"],
        ) == (
            deal.stage_id, deal.amount, deal.currency, deal.close_date, deal.owner_id,
            deal.forecast_category,
        )  # fmt: skip
        assert deal.close_date >= deal.created_date
        if deal.stage.outcome == Stage.Outcome.OPEN:
            assert deal.close_date > AS_OF
        else:
            assert deal.close_date <= AS_OF
    per_deal = OpportunityHistory.objects.count() / SMALL
    assert 4.0 <= per_deal <= 6.0


def test_win_rate_cycles_and_slips_are_believable(seeded):
    outcomes = Counter(
        Opportunity.objects.exclude(stage__outcome="open").values_list("stage__outcome", flat=True)
    )
    win_rate = outcomes["won"] / (outcomes["won"] + outcomes["lost"])
    assert 0.18 <= win_rate <= 0.36
    slipped = (
        OpportunityHistory.objects.filter(changed_fields__contains="close_date")
        .values("opportunity")
        .distinct()
        .count()
    )
    assert 0.15 <= slipped / SMALL <= 0.6
    won_new = Opportunity.objects.filter(stage__outcome="won", deal_type="new")
    cycles = defaultdict(list)
    for segment, created, closed in won_new.values_list(
        "account__segment", "created_date", "close_date"
    ):
        cycles[segment].append((closed - created).days)
    mean = {s: sum(days) / len(days) for s, days in cycles.items()}
    assert 30 <= mean["smb"] <= 90
    assert mean["smb"] < mean["mid_market"] < mean["enterprise"]
    assert 120 <= mean["enterprise"] <= 300


def test_every_rep_and_team_has_a_quota_for_every_month(seeded):
    months = set(
        FiscalPeriod.objects.filter(kind="month", start_date__gte=seeded_history_start())
        .filter(start_date__lte=Quota.objects.aggregate(m=Max("period__start_date"))["m"])
        .values_list("id", flat=True)
    )
    assert len(months) >= 36 + 1
    reps = User.objects.filter(role=Role.REP)
    assert reps.count() == 60
    for rep in reps:
        assert set(Quota.objects.filter(rep=rep).values_list("period_id", flat=True)) == months
    for team in Team.objects.all():
        assert set(Quota.objects.filter(team=team).values_list("period_id", flat=True)) == months
        assert Quota.objects.filter(team=team).exclude(set_by=None).count() == len(months)
    # A team's target is above the sum of its reps' quotas (top-down vs bottom-up).
    team = Team.objects.get(name="NA SMB")
    period = Quota.objects.filter(team=team).order_by("period__start_date").first().period
    reps_sum = sum(q.amount for q in Quota.objects.filter(period=period, rep__team=team))
    assert Quota.objects.get(period=period, team=team).amount > reps_sum


def seeded_history_start():
    return Opportunity.objects.aggregate(m=Min("created_date"))["m"].replace(day=1)


def test_every_currency_used_has_a_rate_for_every_day(seeded):
    used = set(Opportunity.objects.values_list("currency", flat=True).distinct())
    assert used == {"USD", "EUR", "GBP", "AUD", "SGD"}
    first = Opportunity.objects.aggregate(m=Min("created_date"))["m"]
    last = Opportunity.objects.aggregate(m=Max("close_date"))["m"]
    days = (last - first).days + 1
    for currency in used - {"USD"}:
        rates = ExchangeRate.objects.filter(
            currency=currency, base_currency="USD", rate_date__range=(first, last)
        )
        assert rates.count() == days


def test_subscriptions_reviews_and_nps_follow_the_rules(seeded):
    assert Subscription.objects.filter(end_date__isnull=False).exists()
    for sub in Subscription.objects.exclude(end_date=None):
        assert sub.end_date > sub.start_date
    # New business won -> a subscription from the close date at a twelfth of the amount.
    for deal in Opportunity.objects.filter(stage__outcome="won", deal_type="new")[:50]:
        assert Subscription.objects.filter(
            account=deal.account_id, start_date=deal.close_date, currency=deal.currency
        ).exists()
    nps_accounts = set(NpsResponse.objects.values_list("account_id", flat=True))
    assert nps_accounts <= set(Subscription.objects.values_list("account_id", flat=True))
    assert NpsResponse.objects.filter(responded_on__gt=AS_OF).count() == 0
    statuses = Counter(PerformanceReview.objects.values_list("status", flat=True))
    assert statuses["acknowledged"] > statuses["submitted"] + statuses["draft"]
    assert not PerformanceReview.objects.filter(status="draft").exclude(submitted_at=None)
    assert ReviewRating.objects.count() == 6 * PerformanceReview.objects.count()
    assert set(PerformanceReview.objects.values_list("reviewer__role", flat=True)) == {"manager"}


def test_demo_users_can_log_in_with_the_demo_password(seeded, client):
    for role, username, _ in seeded.logins:
        user = User.objects.get(username=username)
        assert user.check_password(DEMO_PASSWORD)
        assert user.role == role
    cso = User.objects.get(username="cso")
    assert cso.is_superuser and cso.is_staff and cso.title == "CSO"
    assert User.objects.get(username="revops").is_staff
    assert Team.objects.get(kind="company").manager == cso


def test_other_calendar_and_base_currency(settings):
    # given a fiscal year starting in April and a EUR base
    settings.FISCAL_YEAR_START_MONTH = 4
    settings.BASE_CURRENCY = "EUR"
    # when the demo loads
    _seed(scale=200)
    # then quotas are EUR fiscal months of the April calendar, and USD has rates in EUR
    assert set(Quota.objects.values_list("currency", flat=True)) == {"EUR"}
    assert set(FiscalPeriod.objects.values_list("fiscal_start_month", flat=True)) == {4}
    currencies = set(ExchangeRate.objects.values_list("currency", flat=True))
    assert currencies == {"USD", "GBP", "AUD", "SGD"}
    assert set(ExchangeRate.objects.values_list("base_currency", flat=True)) == {"EUR"}


def test_periods_of_another_calendar_stop_the_seed_and_change_nothing(settings):
    _seed(scale=50)
    before = digest(demo_rows())
    settings.FISCAL_YEAR_START_MONTH = 7
    with pytest.raises(ApplicationError, match="another fiscal year start month"):
        _seed(scale=60)
    assert digest(demo_rows()) == before


def test_command_prints_counts_time_and_one_login_per_role():
    out = StringIO()
    call_command("seed_demo", "--scale", "120", "--as-of", AS_OF.isoformat(), "--quiet", stdout=out)
    text = out.getvalue()
    assert "120 opportunities, as of 2025-06-15" in text
    assert "crm.OpportunityHistory" in text
    for role in ("executive", "manager", "rep", "revops_admin"):
        assert f"  {role} " in text
    assert DEMO_PASSWORD in text
    assert Opportunity.objects.count() == 120
    # The bulk load bypasses the incremental rollup hooks, so a full rebuild follows it.
    assert "KPI rollups rebuilt" in text
    assert JobRun.objects.filter(kind="rollups_full", status="succeeded").count() == 1
    # then the forecasts and the demo managers' calls, so the Forecast page has data
    from apps.forecasting.models import ForecastCall, ForecastValue

    assert "Forecasts computed" in text
    assert ForecastValue.objects.exists()
    assert ForecastCall.objects.exists()


def test_command_if_empty_and_no_rollups():
    call_command("seed_demo", "--scale", "30", "--as-of", "2025-06-15", "--quiet", "--no-rollups")
    out = StringIO()
    call_command("seed_demo", "--if-empty", "--quiet", stdout=out)
    assert "Demo data already present; nothing loaded (--if-empty)." in out.getvalue()
    assert "cso" in out.getvalue()
    assert Opportunity.objects.count() == 30
    assert not JobRun.objects.filter(kind="rollups_full").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--scale", "0"], "--scale must be between 1 and 1,000,000"),
        (["--scale", "2000000"], "--scale must be between 1 and 1,000,000"),
        (["--scale", "many"], "--scale must be a whole number"),
        (["--as-of", "15/06/2025"], "--as-of must be a date as YYYY-MM-DD"),
    ],
)
def test_command_refuses_bad_input_and_changes_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("seed_demo", *args, "--quiet", stdout=StringIO())
    assert not User.objects.exists()
    assert not Opportunity.objects.exists()


def _structure(model) -> dict[str, tuple]:
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return {
        name: (tuple(c["columns"]), c["index"], c["unique"], c["foreign_key"])
        for name, c in constraints.items()
    }


def test_big_load_path_gives_the_same_data_and_keeps_indexes_and_keys():
    # given the structure of the bulk tables and the data of a normal load
    models_ = (Opportunity, OpportunityHistory, Subscription, NpsResponse)
    before = {m: _structure(m) for m in models_}
    _seed(seed=42, scale=300)
    expected = digest(demo_rows())
    # when the load takes the big-load path (drop and rebuild indexes and foreign keys)
    _seed(seed=42, scale=300, rebuild_indexes_from=1)
    # then the data is the same and every index and foreign key is back
    assert digest(demo_rows()) == expected
    assert {m: _structure(m) for m in models_} == before
    assert any(c[3] for c in before[OpportunityHistory].values())
