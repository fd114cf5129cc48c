"""Rollups against a straightforward recomputation from the raw rows, on random books of
deals, subscriptions and survey answers (several seeds, periods, scopes and filters).

The reference below reads Opportunity, OpportunityHistory, Subscription, NpsResponse and
ExchangeRate row by row in Python and applies the KPI definitions literally; it shares no
code with the rollups or the selectors."""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from apps.core.models import ExchangeRate
from apps.crm.models import Opportunity, OpportunityHistory, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.kpis.selectors import KpiFilters, kpi_value, period_parse
from apps.kpis.services import rollups_rebuild
from apps.org.models import User
from apps.org.policy import subtree_ids

D = Decimal
CENT = D("0.01")
PERIODS = ("2024-Q1", "2024-Q2", "2024-Q3", "FY2024", "2024-05", "2023-12-01..2024-02-29")


def _day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _moment(day: date, rng: random.Random) -> datetime:
    return datetime(day.year, day.month, day.day, rng.randrange(24), rng.randrange(60), tzinfo=UTC)


def seed_book(w, seed: int, *, scale: int = 1, rates: bool = True) -> None:
    """A random book: 45 deals, 25 subscriptions and 40 NPS answers per unit of scale."""
    rng = random.Random(seed)
    if rates:
        # Rates chosen so that whole-hundred amounts convert (and weight) to exact cents.
        w.rate("EUR", date(2022, 12, 1), "1.25")
        w.rate("EUR", date(2024, 3, 15), "1.5")
        w.rate("GBP", date(2022, 12, 1), "2")
    reps = [w.rep_a, w.rep_b, w.rep_c, w.manager_east]
    accounts = [
        (
            f"acc{seed}-{n}",
            rng.choice([w.na, w.eu]),
            rng.choice(["smb", "mid_market", "enterprise"]),
        )
        for n in range(8)
    ]
    open_stages = ["prospect", "qualify", "propose"]
    for _ in range(45 * scale):
        name, region, segment = rng.choice(accounts)
        created = _day(rng, date(2023, 1, 1), date(2024, 10, 31))
        first_close = _day(rng, created, created + timedelta(days=150))
        deal = w.deal(
            owner=rng.choice(reps),
            amount=str(100 * rng.randrange(1, 60)),
            currency=rng.choice(["USD", "USD", "EUR", "GBP"]),
            stage=rng.choice(open_stages[:2]),
            created=created,
            close=first_close,
            account=name,
            region=region,
            segment=segment,
            product=rng.choice([w.product_x, w.product_y, None]),
            deal_type=rng.choice(["new", "expansion", "renewal"]),
            when=_moment(created, rng),
        )
        moment = _moment(created, rng)
        for _step in range(rng.randrange(4)):
            moment += timedelta(days=rng.randrange(1, 60), hours=rng.randrange(24))
            change = rng.random()
            if change < 0.45:
                w.move(deal, when=moment, stage=rng.choice(open_stages))
            else:
                new_close = max(deal.created_date, moment.date()) + timedelta(
                    days=rng.randrange(0, 120)
                )
                w.move(deal, when=moment, close_date=new_close)
        outcome = rng.random()
        if outcome < 0.6:
            moment += timedelta(days=rng.randrange(1, 40))
            close = max(moment.date(), deal.created_date)
            w.move(deal, when=moment, stage=rng.choice(["won", "won", "lost"]), close_date=close)
    for _n in range(25 * scale):
        name, region, segment = rng.choice(accounts)
        start = _day(rng, date(2023, 1, 1), date(2024, 12, 31))
        if rng.random() < 0.3:
            start = date(start.year, start.month, 1)  # on a month boundary
        end = None
        if rng.random() < 0.5:
            end = start + timedelta(days=rng.randrange(1, 400))
            if rng.random() < 0.3:
                end = date(end.year, end.month, 1) + timedelta(days=31)
                end = date(end.year, end.month, 1)
        w.subscription(
            name,
            str(100 * rng.randrange(1, 20)),
            start,
            end,
            currency=rng.choice(["USD", "EUR"]),
            region=region,
            segment=segment,
        )
    for _ in range(40 * scale):
        name, region, segment = rng.choice(accounts)
        w.nps(
            name,
            rng.randrange(11),
            _day(rng, date(2023, 6, 1), date(2024, 12, 31)),
            region=region,
            segment=segment,
        )


# --- The reference: literal definitions over raw rows ------------------------------------


class Raw:
    def __init__(self, owner_ids, filters: KpiFilters):
        self.owner_ids, self.f = owner_ids, filters
        self.rates = defaultdict(list)
        for r in ExchangeRate.objects.order_by("rate_date"):
            self.rates[r.currency].append((r.rate_date, r.rate))
        self.outcome = dict(Stage.objects.values_list("id", "outcome"))
        self.prob = dict(Stage.objects.values_list("id", "probability"))
        opens = list(
            Stage.objects.filter(outcome="open").order_by("order").values_list("id", flat=True)
        )
        self.level = {sid: opens.index(sid) + 1 for sid in opens}
        self.n_open = len(opens)
        for sid, outcome in self.outcome.items():
            if outcome == "won":
                self.level[sid] = self.n_open + 1
            elif outcome == "lost":
                self.level[sid] = 0
        self.deals = [o for o in Opportunity.objects.select_related("account") if self._keep(o)]

    def _keep(self, o) -> bool:
        f = self.f
        return (
            (self.owner_ids is None or o.owner_id in self.owner_ids)
            and (f.region is None or o.account.region_id == f.region)
            and (f.segment is None or o.account.segment == f.segment)
            and (f.product is None or o.product_id == f.product)
            and (f.deal_type is None or o.deal_type == f.deal_type)
        )

    def convert(self, amount, currency, day) -> Decimal:
        if currency == "USD":
            return amount
        rate = [r for d, r in self.rates[currency] if d <= day][-1]
        return (amount * rate).quantize(CENT)

    def value(self, name, p):
        inside = lambda d: p.start <= d <= p.end  # noqa: E731
        won = [o for o in self.deals if self.outcome[o.stage_id] == "won" and inside(o.close_date)]
        lost = [
            o for o in self.deals if self.outcome[o.stage_id] == "lost" and inside(o.close_date)
        ]

        def money(deals):
            return sum((self.convert(o.amount, o.currency, o.close_date) for o in deals), D("0.00"))

        cycles = [(o.close_date - o.created_date).days for o in won]
        if name == "bookings":
            return money(won)
        if name == "won_deals":
            return len(won)
        if name == "lost_deals":
            return len(lost)
        if name == "win_rate":
            return D(len(won)) / D(len(won) + len(lost)) if won or lost else None
        if name == "win_rate_value":
            total = money(won) + money(lost)
            return money(won) / total if total else None
        if name == "sales_cycle_mean":
            return D(sum(cycles)) / D(len(cycles)) if cycles else None
        if name == "sales_cycle_median":
            s = sorted(cycles)
            if not s:
                return None
            mid = len(s) // 2
            return D(s[mid]) if len(s) % 2 else (D(s[mid - 1]) + D(s[mid])) / 2
        if name == "new_logos":
            first_win = {}
            for o in Opportunity.objects.filter(stage__outcome="won").order_by("close_date", "id"):
                first_win.setdefault(o.account_id, o.pk)
            return sum(1 for o in won if first_win[o.account_id] == o.pk)
        opened = [
            o for o in self.deals if self.outcome[o.stage_id] == "open" and inside(o.close_date)
        ]
        if name == "open_pipeline":
            return money(opened)
        if name == "weighted_pipeline":
            return sum(
                (
                    (
                        self.convert(o.amount, o.currency, o.close_date)
                        * self.prob[o.stage_id]
                        / 100
                    ).quantize(CENT)
                    for o in opened
                ),
                D("0.00"),
            )
        if name == "stage_conversion":
            return self.conversion(p, 1)
        if name == "slipped_deals":
            return self.slipped(p)
        raise AssertionError(name)

    def conversion(self, p, level):
        entered = advanced = 0
        ids = {o.pk for o in self.deals}
        rows = defaultdict(list)
        for h in OpportunityHistory.objects.filter(opportunity_id__in=ids).order_by(
            "changed_at", "id"
        ):
            rows[h.opportunity_id].append(h)
        for history in rows.values():
            best, entry = 0, None
            for h in history:
                best = max(best, self.level[h.stage_id])
                if entry is None and best >= level:
                    entry = h.changed_at.date()
            if entry and p.start <= entry <= p.end:
                entered += 1
                advanced += best > level
        return D(advanced) / D(entered) if entered else None

    def slipped(self, p):
        start = datetime(p.start.year, p.start.month, p.start.day, tzinfo=UTC)
        end = start + timedelta(days=(p.end - p.start).days + 1)
        count = 0
        for o in self.deals:
            history = list(o.history.order_by("changed_at", "id"))
            moved_out = any(
                start <= cur.changed_at < end
                and p.start <= prev.close_date <= p.end
                and cur.close_date > p.end
                for prev, cur in itertools.pairwise(history)
            )
            at_end = [h for h in history if h.changed_at < end]
            if (
                moved_out
                and at_end
                and self.outcome[at_end[-1].stage_id] == "open"
                and at_end[-1].close_date > p.end
            ):
                count += 1
        return count

    # customers: account filters only
    def mrr_on(self, day):
        by_account = defaultdict(lambda: D("0.00"))
        for s in Subscription.objects.select_related("account"):
            if self.f.region is not None and s.account.region_id != self.f.region:
                continue
            if self.f.segment is not None and s.account.segment != self.f.segment:
                continue
            if s.start_date <= day and (s.end_date is None or s.end_date > day):
                by_account[s.account_id] += self.convert(s.mrr, s.currency, day)
        return by_account

    def customers(self, name, p):
        opening, closing = self.mrr_on(p.start), self.mrr_on(p.end + timedelta(days=1))
        kept = [a for a, v in opening.items() if v > 0]
        if name == "mrr":
            return sum(closing.values(), D("0.00"))
        base = sum((opening[a] for a in kept), D("0"))
        if not base:
            return None
        if name == "grr":
            return sum((min(opening[a], closing.get(a, D(0))) for a in kept), D(0)) / base
        if name == "nrr":
            return sum((closing.get(a, D(0)) for a in kept), D(0)) / base
        if name == "logo_churn":
            return D(sum(1 for a in kept if closing.get(a, D(0)) <= 0)) / D(len(kept))
        raise AssertionError(name)

    def nps(self, p):
        scores = [
            n.score
            for n in NpsResponse.objects.select_related("account")
            if p.start <= n.responded_on <= p.end
            and (self.f.region is None or n.account.region_id == self.f.region)
            and (self.f.segment is None or n.account.segment == self.f.segment)
        ]
        if not scores:
            return None
        return D(100) * (sum(s >= 9 for s in scores) - sum(s <= 6 for s in scores)) / D(len(scores))


SALES = (
    "bookings",
    "won_deals",
    "lost_deals",
    "win_rate",
    "win_rate_value",
    "sales_cycle_mean",
    "sales_cycle_median",
    "new_logos",
    "open_pipeline",
    "weighted_pipeline",
    "stage_conversion",
    "slipped_deals",
)


@pytest.mark.django_db
@pytest.mark.parametrize("seed", [1, 7, 42])
def test_rollups_equal_a_recomputation_from_raw_rows(world, seed):
    w = world
    seed_book(w, seed)
    rollups_rebuild()
    rng = random.Random(seed)
    east = subtree_ids([w.east.pk])
    scopes = [
        ({}, None),
        (
            {"team_id": w.east.pk},
            set(User.objects.filter(team_id__in=east).values_list("id", flat=True)),
        ),
        ({"rep_id": w.rep_b.pk}, {w.rep_b.pk}),
    ]
    filter_choices = [
        KpiFilters(),
        KpiFilters(region=w.eu.pk),
        KpiFilters(product=w.product_x.pk),
        KpiFilters(segment="smb", deal_type="new"),
    ]
    checked = 0
    for period_name in PERIODS:
        p = period_parse(period_name)
        scope_kw, owners = rng.choice(scopes)
        filters = rng.choice(filter_choices)
        raw = Raw(owners, filters)
        for name in SALES:
            got = kpi_value(name=name, period=p, user=w.cso, filters=filters, **scope_kw).value
            assert got == raw.value(name, p), (name, period_name, scope_kw, filters)
            checked += 1
        account_filters = KpiFilters(region=filters.region, segment=filters.segment)
        raw = Raw(None, account_filters)
        for name in ("mrr", "grr", "nrr", "logo_churn"):
            got = kpi_value(name=name, period=p, user=w.cso, filters=account_filters).value
            assert got == raw.customers(name, p), (name, period_name, account_filters)
            checked += 1
        assert kpi_value(
            name="nps", period=p, user=w.cso, filters=account_filters
        ).value == raw.nps(p)
    assert checked == len(PERIODS) * (len(SALES) + 4)
