"""The demo generator on its own: no database, just the rows it streams."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pytest

from apps.demo.generator import (
    COUNTRY_CURRENCY,
    TEAMS,
    DemoConfig,
    DemoConfigError,
    DemoGenerator,
)
from apps.quotas import fiscal

AS_OF = date(2025, 6, 15)


def stream_digest(generator: DemoGenerator, chunk_size: int = 20_000) -> str:
    """One digest per table (so chunk boundaries do not matter), then one over them."""
    tables = defaultdict(hashlib.sha256)
    for chunk in generator.chunks(chunk_size):
        for name in ("accounts", "opportunities", "history", "subscriptions", "nps"):
            for row in getattr(chunk, name):
                tables[name].update(repr(row).encode())
    for name, rows in (
        ("quotas", generator.quotas()),
        ("reviews", generator.reviews()),
        ("rates", generator.rates()),
    ):
        for row in rows:
            tables[name].update(repr(row).encode())
    return hashlib.sha256(
        "".join(f"{name}:{sha.hexdigest()}" for name, sha in sorted(tables.items())).encode()
    ).hexdigest()


def test_same_seed_and_as_of_give_identical_rows_whatever_the_chunk_size():
    # given two generators with the same configuration
    config = DemoConfig(seed=7, scale=800, as_of=AS_OF, competency_slugs=("a", "b"))
    # when both stream everything, in different chunk sizes
    first = stream_digest(DemoGenerator(config), chunk_size=100)
    second = stream_digest(DemoGenerator(config), chunk_size=5_000)
    # then the rows are byte-identical
    assert first == second


def test_another_seed_or_as_of_gives_other_rows():
    base = stream_digest(DemoGenerator(DemoConfig(seed=1, scale=300, as_of=AS_OF)))
    other_seed = stream_digest(DemoGenerator(DemoConfig(seed=2, scale=300, as_of=AS_OF)))
    later = stream_digest(
        DemoGenerator(DemoConfig(seed=1, scale=300, as_of=AS_OF + timedelta(days=1)))
    )
    assert len({base, other_seed, later}) == 3


@pytest.mark.parametrize("scale", [1, 57, 2_000])
def test_scale_is_the_exact_number_of_opportunities(scale):
    generator = DemoGenerator(DemoConfig(scale=scale, as_of=AS_OF))
    opportunities = [o for chunk in generator.chunks(500) for o in chunk.opportunities]
    assert len(opportunities) == scale
    assert [o.index for o in opportunities] == list(range(scale))
    assert len({o.external_id for o in opportunities}) == scale


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (DemoConfig(scale=0, as_of=AS_OF), "scale must be between 1 and 1,000,000"),
        (DemoConfig(scale=1_000_001, as_of=AS_OF), "scale must be between 1 and 1,000,000"),
        (DemoConfig(as_of=AS_OF, base_currency="XYZ"), "BASE_CURRENCY XYZ"),
        (DemoConfig(as_of=AS_OF, time_zone="Mars/Olympus"), "unknown time zone"),
    ],
)
def test_bad_configuration_is_refused_with_a_clear_message(config, message):
    with pytest.raises(DemoConfigError, match=message):
        DemoGenerator(config)


def test_org_has_the_agreed_shape_and_logins_do_not_depend_on_the_seed():
    teams, users, skills = DemoGenerator(DemoConfig(seed=1, as_of=AS_OF)).org()
    _, other_users, other_skills = DemoGenerator(DemoConfig(seed=2, as_of=AS_OF)).org()
    roles = defaultdict(list)
    for user in users:
        roles[user.role].append(user)
    assert len(roles["rep"]) == 60
    assert len(roles["manager"]) == 3 + len(TEAMS)
    assert {u.title for u in roles["executive"]} == {"CSO", "CEO", "CFO"}
    assert [u.username for u in roles["revops_admin"]] == ["revops"]
    assert [t.kind for t in teams].count("region") == 3
    assert [t.kind for t in teams].count("team") == 8
    assert len({u.username for u in users}) == len({u.email for u in users}) == len(users)
    assert [u.username for u in users] == [u.username for u in other_users]
    assert skills != other_skills


def test_deals_history_and_subscriptions_are_consistent():
    generator = DemoGenerator(DemoConfig(seed=3, scale=3_000, as_of=AS_OF))
    teams, users, _ = generator.org()
    region_of_team = {t.name: t.region for t in teams}
    team_of_user = {u.username: u.team for u in users}
    end_of_as_of = datetime.combine(AS_OF + timedelta(days=1), time(0), tzinfo=UTC)
    accounts, opportunities, history, subscriptions = {}, [], defaultdict(list), []
    for chunk in generator.chunks(700):
        accounts.update({a.index: a for a in chunk.accounts})
        opportunities.extend(chunk.opportunities)
        for row in chunk.history:
            history[row.opportunity].append(row)
        subscriptions.extend(chunk.subscriptions)

    for opp in opportunities:
        rows = history[opp.index]
        assert rows[0].changed_fields == "created"
        assert all("created" not in r.changed_fields for r in rows[1:])
        stamps = [r.changed_at for r in rows]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert stamps[-1] < end_of_as_of
        assert stamps[0].date() >= opp.created_date - timedelta(days=1)
        last = rows[-1]
        assert (last.stage, last.amount_cents, last.currency, last.close_date, last.owner) == (
            opp.stage,
            opp.amount_cents,
            opp.currency,
            opp.close_date,
            opp.owner,
        )
        assert last.forecast_category == opp.forecast_category
        assert opp.close_date >= opp.created_date >= generator.history_start
        if opp.stage == "Closed Won":
            assert opp.close_date <= AS_OF and opp.forecast_category == "closed"
        elif opp.stage == "Closed Lost":
            assert opp.close_date <= AS_OF and opp.forecast_category == "omitted"
            assert opp.lost_reason
        else:
            assert AS_OF < opp.close_date <= generator.horizon_end
            assert opp.forecast_category in ("pipeline", "best_case", "commit")
        account = accounts[opp.account]
        assert region_of_team[team_of_user[opp.owner]] == account.region
        assert opp.currency == COUNTRY_CURRENCY[account.country]

    assert 4.0 <= sum(len(rows) for rows in history.values()) / len(opportunities) <= 6.0
    for sub in subscriptions:
        assert sub.end_date is None or sub.end_date > sub.start_date
        assert sub.mrr_cents > 0
        assert sub.currency == COUNTRY_CURRENCY[accounts[sub.account].country]
    won_new = [o for o in opportunities if o.stage == "Closed Won" and o.deal_type == "new"]
    starts = {(s.account, s.start_date, s.mrr_cents) for s in subscriptions}
    for opp in won_new:
        assert (opp.account, opp.close_date, (opp.amount_cents * 2 + 12) // 24) in starts


def test_rates_cover_every_day_for_every_non_base_currency():
    generator = DemoGenerator(DemoConfig(scale=10, as_of=AS_OF, base_currency="EUR"))
    rates = list(generator.rates())
    days = (generator.rates_end - generator.rates_start).days + 1
    assert generator.rate_currencies() == ["AUD", "GBP", "SGD", "USD"]
    assert len(rates) == 4 * days
    usd = {r.rate_date: r.rate for r in rates if r.currency == "USD"}
    # USD is quoted in EUR: around 1 / 1.09, and the walk stays gentle.
    assert all(0.75 < float(rate) < 1.10 for rate in usd.values())
    assert max(usd.values()) / min(usd.values()) < 1.5


def test_quotas_cover_every_rep_and_team_for_every_month():
    generator = DemoGenerator(DemoConfig(seed=5, scale=1_000, as_of=AS_OF, fiscal_start_month=4))
    for _ in generator.chunks():
        pass
    teams, users, _ = generator.org()
    quotas = generator.quotas()
    months = {m.name for m in generator.months()}
    assert min(generator.months()).start == generator.history_start
    assert max(generator.months()).end == fiscal.period_containing(AS_OF, "year", 4).end
    reps = {u.username for u in users if u.role == "rep"}
    by_owner = defaultdict(set)
    for q in quotas:
        by_owner[q.rep or q.team].add(q.period)
        assert q.amount_cents > 0
    assert {owner for owner in by_owner} == reps | {t.name for t in teams}
    assert all(periods == months for periods in by_owner.values())


def test_quotas_need_the_stream_first():
    generator = DemoGenerator(DemoConfig(scale=10, as_of=AS_OF))
    with pytest.raises(RuntimeError, match="chunks"):
        generator.quotas()
