"""The demo company, generated as plain rows: pure Python, no Django, no database.

Everything is driven by one ``random.Random(seed)``, which hands an independent sub-seed to
each part (organisation, exchange rates, accounts and deals, quotas, reviews) in a fixed
order, so the same seed and as-of date always give the same rows, whichever part a caller
reads first. Nothing depends on the clock, on database ids or on hash randomisation:
dates and timestamps are derived from the as-of date.

Money inside the generator is kept as integer cents (exact, and fast enough to stream a
million deals); the loader turns it into ``Decimal`` amounts with two places.

The story the data tells:
- Acme Cloud sells five products through three regions and eight teams; reps differ in
  skill, so some beat their quota and some miss.
- Each account lives a lifecycle: new-business attempts until one is won (or the account
  gives up), then yearly renewals and occasional expansions; a lost renewal is churn and
  some renewals contract. Subscriptions and NPS answers follow that lifecycle.
- Each deal moves through the stages (sometimes skipping one), its close date slips now and
  then, its amount is revised, its forecast category follows the stage, and every change
  is a history snapshot written the way :mod:`apps.crm.services` would have written it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from apps.demo import names
from apps.quotas import fiscal

MAX_SCALE = 1_000_000
DEMO_PREFIX = "demo-"
DEMO_EMAIL_DOMAIN = "acme-cloud.example"
DEMO_PASSWORD = "acme-demo-2024"
HISTORY_SOURCE = "seed"

# --- Reference data ---------------------------------------------------------------------


class StageSpec(NamedTuple):
    name: str
    order: int
    outcome: str
    probability: int


STAGES: tuple[StageSpec, ...] = (
    StageSpec("Prospecting", 1, "open", 10),
    StageSpec("Qualification", 2, "open", 20),
    StageSpec("Discovery", 3, "open", 40),
    StageSpec("Proposal", 4, "open", 60),
    StageSpec("Negotiation", 5, "open", 80),
    StageSpec("Closed Won", 6, "won", 100),
    StageSpec("Closed Lost", 7, "lost", 0),
)
_LAST_OPEN = 4
_WON = 5
_LOST = 6
_STAGE_NAMES = tuple(s.name for s in STAGES)


class ProductSpec(NamedTuple):
    external_id: str
    name: str
    family: str


PRODUCTS: tuple[ProductSpec, ...] = (
    ProductSpec("demo-prod-sales-cloud", "Acme Sales Cloud", "Platform"),
    ProductSpec("demo-prod-revenue-analytics", "Acme Revenue Analytics", "Analytics"),
    ProductSpec("demo-prod-service-desk", "Acme Service Desk", "Service"),
    ProductSpec("demo-prod-data-connectors", "Acme Data Connectors", "Integration"),
    ProductSpec("demo-prod-premier-success", "Acme Premier Success", "Services"),
)
#: Product mix of new business by segment (same order as PRODUCTS).
_PRODUCT_WEIGHTS = {
    "smb": (55, 15, 20, 5, 5),
    "mid_market": (40, 25, 15, 12, 8),
    "enterprise": (30, 25, 10, 15, 20),
}

#: USD value of one unit of each currency: the level the daily random walk reverts to.
USD_PER_UNIT: dict[str, Decimal] = {
    "USD": Decimal("1"),
    "EUR": Decimal("1.09"),
    "GBP": Decimal("1.27"),
    "AUD": Decimal("0.66"),
    "SGD": Decimal("0.74"),
    "CAD": Decimal("0.74"),
    "NZD": Decimal("0.61"),
    "CHF": Decimal("1.12"),
    "JPY": Decimal("0.0068"),
    "INR": Decimal("0.012"),
}


class RegionSpec(NamedTuple):
    code: str
    name: str
    share: int  # share of accounts, percent
    countries: tuple[tuple[str, int], ...]  # (ISO country, weight)


REGIONS: tuple[RegionSpec, ...] = (
    RegionSpec("NA", "North America", 45, (("US", 85), ("CA", 15))),
    RegionSpec(
        "EMEA",
        "Europe, Middle East & Africa",
        33,
        (("GB", 30), ("DE", 22), ("FR", 16), ("NL", 10), ("SE", 8), ("ES", 8), ("IE", 6)),
    ),
    RegionSpec(
        "APAC", "Asia Pacific", 22, (("AU", 45), ("SG", 25), ("NZ", 10), ("JP", 12), ("IN", 8))
    ),
)

#: Deal currency by account country (NA sells in USD, EMEA in EUR/GBP, APAC in AUD/SGD).
COUNTRY_CURRENCY = {
    "US": "USD", "CA": "USD", "GB": "GBP", "IE": "EUR", "DE": "EUR", "FR": "EUR", "NL": "EUR",
    "SE": "EUR", "ES": "EUR", "AU": "AUD", "NZ": "AUD", "SG": "SGD", "JP": "SGD", "IN": "SGD",
}  # fmt: skip


class TeamSpec(NamedTuple):
    name: str
    region: str
    segments: tuple[str, ...]
    reps: int


TEAMS: tuple[TeamSpec, ...] = (
    TeamSpec("NA Enterprise", "NA", ("enterprise",), 8),
    TeamSpec("NA Mid-Market", "NA", ("mid_market",), 9),
    TeamSpec("NA SMB", "NA", ("smb",), 9),
    TeamSpec("EMEA Enterprise", "EMEA", ("enterprise",), 7),
    TeamSpec("EMEA Mid-Market", "EMEA", ("mid_market",), 7),
    TeamSpec("EMEA SMB", "EMEA", ("smb",), 6),
    TeamSpec("APAC Enterprise", "APAC", ("enterprise", "mid_market"), 7),
    TeamSpec("APAC Commercial", "APAC", ("mid_market", "smb"), 7),
)
COMPANY_NAME = "Acme Cloud"

_SEGMENT_WEIGHTS = (("smb", 50), ("mid_market", 33), ("enterprise", 17))
#: Annual contract value of new business in USD: lognormal median and sigma by segment.
_ACV_USD = {"smb": (11_000, 0.55), "mid_market": (42_000, 0.55), "enterprise": (160_000, 0.65)}
#: Amounts are rounded the way reps quote them: to 10, 100 or 1,000 currency units.
_ROUND_CENTS = {"smb": 1_000, "mid_market": 10_000, "enterprise": 100_000}
#: Sales cycle of won new business in days (created to closed) by segment.
_CYCLE_DAYS = {"smb": (30, 60), "mid_market": (60, 120), "enterprise": (120, 240)}
_SLIP_PROBABILITY = {"smb": 0.30, "mid_market": 0.40, "enterprise": 0.50}
_NEW_WIN_RATE = 0.145
_EXISTING_CUSTOMER_SHARE = 0.05
_PRE_HISTORY_DAYS = 730
_EXPANSION_WIN_RATE = 0.38
_RENEWAL_WIN_RATE = {"smb": 0.87, "mid_market": 0.91, "enterprise": 0.94}
_NPS_MEAN = {"smb": 7.8, "mid_market": 8.2, "enterprise": 8.6}

# --- Rows ---------------------------------------------------------------------------------


class UserSpec(NamedTuple):
    username: str
    first_name: str
    last_name: str
    email: str
    role: str
    title: str
    team: str | None  # team name
    is_staff: bool
    is_superuser: bool
    hired_on: date


class TeamNode(NamedTuple):
    name: str
    kind: str  # company / region / team
    parent: str | None
    region: str | None  # region code
    manager: str  # username


class AccountRow(NamedTuple):
    index: int
    external_id: str
    name: str
    segment: str
    industry: str
    region: str
    country: str
    created_on: date


class OpportunityRow(NamedTuple):
    index: int
    external_id: str
    name: str
    account: int  # account index
    owner: str
    product: str  # product external id
    amount_cents: int
    currency: str
    stage: str
    forecast_category: str
    deal_type: str
    source: str
    created_date: date
    close_date: date
    lost_reason: str
    updated_at: datetime


class HistoryRow(NamedTuple):
    opportunity: int  # opportunity index
    changed_at: datetime
    changed_by: str
    changed_fields: str
    stage: str
    amount_cents: int
    currency: str
    close_date: date
    owner: str
    forecast_category: str


class SubscriptionRow(NamedTuple):
    index: int
    external_id: str
    account: int
    product: str
    mrr_cents: int
    currency: str
    start_date: date
    end_date: date | None


class NpsRow(NamedTuple):
    index: int
    external_id: str
    account: int
    contact_name: str
    contact_email: str
    score: int
    comment: str
    responded_on: date


class RateRow(NamedTuple):
    currency: str
    rate_date: date
    rate: Decimal  # units of the base currency per unit of ``currency``


class QuotaRow(NamedTuple):
    period: str  # fiscal month name, e.g. 2025-07
    rep: str | None  # username
    team: str | None  # team name
    amount_cents: int  # base currency
    set_by: str
    set_at: datetime


class ReviewRow(NamedTuple):
    rep: str
    reviewer: str
    period: str  # fiscal quarter name
    status: str
    strengths: str
    areas_to_grow: str
    goals: str
    comments: str
    rep_response: str
    submitted_at: datetime | None
    acknowledged_at: datetime | None
    ratings: tuple[tuple[str, int], ...]  # (competency slug, score 1-5)


@dataclass
class Chunk:
    """A slice of the stream: accounts first, then the rows that refer to them."""

    accounts: list[AccountRow] = field(default_factory=list)
    opportunities: list[OpportunityRow] = field(default_factory=list)
    history: list[HistoryRow] = field(default_factory=list)
    subscriptions: list[SubscriptionRow] = field(default_factory=list)
    nps: list[NpsRow] = field(default_factory=list)


@dataclass(frozen=True)
class DemoConfig:
    as_of: date
    seed: int = 42
    scale: int = 20_000
    base_currency: str = "USD"
    fiscal_start_month: int = 1
    time_zone: str = "UTC"
    competency_slugs: tuple[str, ...] = ()


class DemoConfigError(ValueError):
    """A configuration the generator cannot honour; the message says why."""


def _weighted(rng: random.Random, pairs: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


class DemoGenerator:
    """Generates the demo company for one :class:`DemoConfig`.

    Call :meth:`chunks` once to stream accounts, deals, history, subscriptions and NPS;
    :meth:`quotas` needs the stream to have been read to the end (quotas are sized from
    the bookings the reps actually made). Everything else can be read at any time.
    """

    def __init__(self, config: DemoConfig) -> None:
        if not 1 <= config.scale <= MAX_SCALE:
            raise DemoConfigError(f"scale must be between 1 and {MAX_SCALE:,}, got {config.scale}")
        base = config.base_currency.upper()
        if base not in USD_PER_UNIT:
            raise DemoConfigError(
                f"BASE_CURRENCY {base} has no demo exchange-rate level; "
                f"use one of {', '.join(sorted(USD_PER_UNIT))}"
            )
        try:
            self.tz = ZoneInfo(config.time_zone)
        except Exception as exc:
            raise DemoConfigError(f"unknown time zone {config.time_zone!r}") from exc
        self.config = config
        self.base = base
        self.as_of = config.as_of
        fsm = config.fiscal_start_month
        self.fsm = fsm
        current_quarter = fiscal.period_containing(config.as_of, "quarter", fsm)
        #: First day of the 12 fiscal quarters of history (the current one included).
        self.history_start = fiscal.shift(current_quarter, -11, fsm).start
        #: Customers from before the history started their subscriptions at the earliest
        #: here; rates (and fiscal periods) start here so those can be converted too.
        self.rates_start = self.history_start - timedelta(days=_PRE_HISTORY_DAYS)
        #: Open pipeline closes at the latest at the end of the second quarter ahead.
        self.horizon_end = fiscal.shift(current_quarter, 2, fsm).end
        current_year = fiscal.period_containing(config.as_of, "year", fsm)
        #: Quotas run to the end of the current fiscal year (or the pipeline horizon).
        self.plan_end = max(current_year.end, self.horizon_end)
        #: Rates cover every date a record can be converted on, open deals included.
        self.rates_end = max(config.as_of + timedelta(days=365), self.horizon_end)

        master = random.Random(config.seed)
        self._seeds = {
            part: master.getrandbits(64) for part in ("org", "rates", "deals", "quotas", "reviews")
        }
        self._org: tuple[list[TeamNode], list[UserSpec], dict[str, float]] | None = None
        self._rates: dict[str, list[Decimal]] | None = None
        self._bookings: dict[tuple[str, int, int], Decimal] = {}
        self._streamed = False
        self._day_start: dict[date, datetime] = {}

    # --- Organisation -------------------------------------------------------------------

    def org(self) -> tuple[list[TeamNode], list[UserSpec], dict[str, float]]:
        """Teams (root first, parents before children), users, and each rep's skill.

        Names and usernames do not depend on the seed (a fixed name stream), so the demo
        logins stay the same whatever seed is used; hire dates and skills do.
        """
        if self._org is not None:
            return self._org
        naming = random.Random("acme-cloud-people")
        pairs = [(f, last) for f in names.FIRST_NAMES for last in names.LAST_NAMES]
        naming.shuffle(pairs)
        people = iter(pairs)
        rng = random.Random(self._seeds["org"])
        domain = DEMO_EMAIL_DOMAIN

        def hired(min_days: int, max_days: int) -> date:
            return self.history_start - timedelta(days=rng.randint(min_days, max_days))

        def person(
            username: str | None, role: str, title: str, team: str | None, *, staff=False, su=False
        ) -> UserSpec:
            first, last = next(people)
            username = username or f"{first}.{last}".lower()
            return UserSpec(
                username=username,
                first_name=first,
                last_name=last,
                email=f"{first}.{last}@{domain}".lower(),
                role=role,
                title=title,
                team=team,
                is_staff=staff,
                is_superuser=su,
                hired_on=hired(400, 3000),
            )

        users: list[UserSpec] = [
            person("cso", "executive", "CSO", COMPANY_NAME, staff=True, su=True),
            person("ceo", "executive", "CEO", None),
            person("cfo", "executive", "CFO", None),
            person("revops", "revops_admin", "RevOps Manager", None, staff=True),
        ]
        teams: list[TeamNode] = [TeamNode(COMPANY_NAME, "company", None, None, "cso")]
        skills: dict[str, float] = {}
        for region in REGIONS:
            vp = person(None, "manager", f"VP Sales, {region.name}", region.name)
            users.append(vp)
            teams.append(TeamNode(region.name, "region", COMPANY_NAME, region.code, vp.username))
            for team in (t for t in TEAMS if t.region == region.code):
                manager = person(None, "manager", "Sales Manager", team.name)
                users.append(manager)
                teams.append(
                    TeamNode(team.name, "team", region.name, region.code, manager.username)
                )
                title = (
                    "Enterprise Account Executive"
                    if "enterprise" in team.segments
                    else "Account Executive"
                )
                for _ in range(team.reps):
                    rep = person(None, "rep", title, team.name)
                    rep = rep._replace(hired_on=hired(60, 1500))
                    users.append(rep)
                    # A few laggards, most near the plan, a few stars: attainment follows.
                    tier = rng.random()
                    if tier < 0.12:
                        skills[rep.username] = rng.uniform(0.5, 0.7)
                    elif tier < 0.87:
                        skills[rep.username] = rng.uniform(0.8, 1.2)
                    else:
                        skills[rep.username] = rng.uniform(1.3, 1.65)
        self._org = (teams, users, skills)
        return self._org

    def logins(self) -> list[tuple[str, str, str]]:
        """One (role, username, title) per role for the printed demo logins."""
        _, users, _ = self.org()
        picked: dict[str, UserSpec] = {}
        for user in users:
            picked.setdefault(user.role, user)
        # The first manager is a regional VP; a front-line manager is the better demo.
        managers = [u for u in users if u.role == "manager" and u.title == "Sales Manager"]
        if managers:
            picked["manager"] = managers[0]
        order = ("executive", "manager", "rep", "revops_admin")
        return [(r, picked[r].username, picked[r].title) for r in order if r in picked]

    # --- Exchange rates -----------------------------------------------------------------

    def rate_currencies(self) -> list[str]:
        """Every currency that needs a rate against the base: deal currencies, and USD."""
        used = set(COUNTRY_CURRENCY.values()) | {"USD"}
        return sorted(used - {self.base})

    def _usd_walks(self) -> dict[str, list[Decimal]]:
        """Daily USD value of each currency from rates start to rates end: a gentle
        mean-reverting random walk (about 0.4% a day) around its level."""
        if self._rates is not None:
            return self._rates
        rng = random.Random(self._seeds["rates"])
        days = (self.rates_end - self.rates_start).days + 1
        walks: dict[str, list[Decimal]] = {}
        for currency in sorted(set(COUNTRY_CURRENCY.values()) | {"USD", self.base}):
            if currency == "USD":
                walks[currency] = [Decimal(1)] * days
                continue
            level = float(USD_PER_UNIT[currency])
            x = rng.gauss(0, 0.02)
            values = []
            for _ in range(days):
                x += -0.01 * x + rng.gauss(0, 0.004)
                values.append(Decimal(repr(level * math.exp(x))).quantize(Decimal("1e-8")))
            walks[currency] = values
        self._rates = walks
        return walks

    def rate_to_base(self, currency: str, day: date) -> Decimal:
        """Units of the base currency one unit of ``currency`` buys on ``day`` (10 places)."""
        if currency == self.base:
            return Decimal(1)
        walks = self._usd_walks()
        i = min(max((day - self.rates_start).days, 0), len(walks["USD"]) - 1)
        return (walks[currency][i] / walks[self.base][i]).quantize(Decimal("1e-10"))

    def rates(self) -> Iterator[RateRow]:
        """One rate per non-base currency per day from rates start to rates end."""
        day_count = (self.rates_end - self.rates_start).days + 1
        for currency in self.rate_currencies():
            for i in range(day_count):
                day = self.rates_start + timedelta(days=i)
                yield RateRow(currency, day, self.rate_to_base(currency, day))

    # --- Accounts, deals, history, subscriptions, NPS ------------------------------------

    def chunks(self, chunk_size: int = 20_000) -> Iterator[Chunk]:
        """Stream the accounts and everything that hangs off them, ``chunk_size`` deals at
        a time (the last account of a chunk is always complete)."""
        if self._streamed:
            raise RuntimeError("chunks() streams once per generator")
        self._streamed = True
        teams, users, skills = self.org()
        self._skills = skills
        self._manager_of = {}
        team_manager = {t.name: t.manager for t in teams}
        reps_by_team: dict[str, list[str]] = {}
        for user in users:
            if user.role == "rep" and user.team:
                reps_by_team.setdefault(user.team, []).append(user.username)
                self._manager_of[user.username] = team_manager[user.team]
        self._reps_by_team = reps_by_team
        #: Candidate owners by (region, segment): reps of the teams covering that market.
        self._owners: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for team in TEAMS:
            for segment in team.segments:
                self._owners.setdefault((team.region, segment), []).extend(
                    (rep, team.name) for rep in reps_by_team[team.name]
                )
        self._rng = random.Random(self._seeds["deals"])
        self._names_used: dict[str, int] = {}
        self._opp_count = 0
        self._sub_count = 0
        self._nps_count = 0
        chunk = Chunk()
        account_index = 0
        while self._opp_count < self.config.scale:
            self._account(account_index, chunk)
            account_index += 1
            if len(chunk.opportunities) >= chunk_size:
                yield chunk
                chunk = Chunk()
        if chunk.accounts:
            yield chunk

    def _account_name(self, industry: str, country: str) -> str:
        rng = self._rng
        middle = f" {rng.choice(names.ACCOUNT_MIDDLES)}" if rng.random() < 0.5 else ""
        base = (
            f"{rng.choice(names.ACCOUNT_PREFIXES)}{middle} "
            f"{rng.choice(names.INDUSTRY_WORDS[industry])} {names.LEGAL_SUFFIX[country]}"
        )
        # Names stay unique: a repeat gets a number, as CRMs show duplicates apart.
        seen = self._names_used.get(base, 0) + 1
        self._names_used[base] = seen
        return base if seen == 1 else f"{base} ({seen})"

    def _account(self, index: int, chunk: Chunk) -> None:
        rng = self._rng
        region = rng.choices(REGIONS, weights=[r.share for r in REGIONS])[0]
        country = _weighted(rng, region.countries)
        segment = _weighted(rng, _SEGMENT_WEIGHTS)
        industry = rng.choice(tuple(names.INDUSTRY_WORDS))
        window = (self.as_of - self.history_start).days
        # Later starts are a little more likely: the company grows year on year.
        first_touch = self.history_start + timedelta(days=int(window * rng.random() ** 0.85))
        # Some accounts were customers before the CRM history starts: their first deals in
        # the window are renewals and expansions of a subscription that already runs.
        customer_since: date | None = None
        if rng.random() < _EXISTING_CUSTOMER_SHARE:
            customer_since = self.history_start - timedelta(days=rng.randint(30, _PRE_HISTORY_DAYS))
            first_touch = customer_since
        account = AccountRow(
            index=index,
            external_id=f"{DEMO_PREFIX}acc-{index:07d}",
            name=self._account_name(industry, country),
            segment=segment,
            industry=industry,
            region=region.code,
            country=country,
            created_on=first_touch,
        )
        chunk.accounts.append(account)
        currency = COUNTRY_CURRENCY[country]
        owner, owner_team = rng.choice(self._owners[(region.code, segment)])
        skill = self._skills[owner]
        product = rng.choices(PRODUCTS, weights=_PRODUCT_WEIGHTS[segment])[0]
        acv_median, acv_sigma = _ACV_USD[segment]
        usd_per_unit = USD_PER_UNIT[currency]
        step = _ROUND_CENTS[segment]

        def acv_cents(median_usd: float, sigma: float) -> int:
            usd = rng.lognormvariate(math.log(median_usd), sigma)
            cents = int(Decimal(repr(usd)) / usd_per_unit * 100)
            return max(step, round(cents / step) * step)

        ctx = _DealContext(account, currency, owner, owner_team, product.external_id)
        # Subscriptions of this account: [row index, mrr cents, start, end, product].
        subs: list[list] = []

        # New business: attempts until one is won, the account gives up, or time runs out.
        t = first_touch
        won_close: date | None = None
        if customer_since is not None:
            won_close = customer_since
            amount = acv_cents(acv_median, acv_sigma)
            subs.append([None, _mrr(amount), customer_since, None, product.external_id])
        for attempt in range(3):
            if won_close is not None or t > self.as_of or self._opp_count >= self.config.scale:
                break
            amount = acv_cents(acv_median, acv_sigma)
            win_p = min(0.6, _NEW_WIN_RATE * skill)
            outcome, close = self._deal(ctx, "new", t, amount, win_p, chunk)
            if outcome == "won":
                won_close = close
                subs.append([None, _mrr(amount), close, None, product.external_id])
                break
            if outcome == "open" or rng.random() > 0.35 or attempt == 2:
                break
            t = close + timedelta(days=rng.randint(60, 300))

        churned_on: date | None = None
        if won_close is not None:
            # A customer: expansions now and then, and a renewal every year.
            next_renewal = won_close + timedelta(days=365)
            while next_renewal < self.history_start:
                next_renewal += timedelta(days=365)
            cursor = max(won_close, self.history_start - timedelta(days=1))
            next_expansion = cursor + timedelta(days=60 + int(rng.expovariate(1 / 220)))
            while self._opp_count < self.config.scale:
                renewal_created = next_renewal - timedelta(days=rng.randint(45, 90))
                arr = 12 * sum(s[1] for s in subs if s[3] is None)
                if next_expansion < renewal_created:
                    if next_expansion > self.as_of:
                        break
                    amount = max(
                        step, round(arr * rng.lognormvariate(math.log(0.4), 0.5) / step) * step
                    )
                    extra = rng.choices(PRODUCTS, weights=_PRODUCT_WEIGHTS[segment])[0]
                    win_p = min(0.8, _EXPANSION_WIN_RATE * (0.5 + 0.5 * skill))
                    outcome, close = self._deal(
                        ctx, "expansion", next_expansion, amount, win_p, chunk, product=extra
                    )
                    if outcome == "open":
                        break
                    if outcome == "won":
                        subs.append([None, _mrr(amount), close, None, extra.external_id])
                    cursor = close
                    next_expansion = close + timedelta(days=30 + int(rng.expovariate(1 / 200)))
                    continue
                created = max(renewal_created, cursor + timedelta(days=1))
                if created > self.as_of:
                    break
                target = max(next_renewal, created + timedelta(days=14))
                contract = rng.random() < 0.18
                renewal_amount = arr
                if contract:
                    renewal_amount = max(step, round(arr * rng.uniform(0.6, 0.85) / step) * step)
                win_p = _RENEWAL_WIN_RATE[segment]
                outcome, close = self._deal(
                    ctx, "renewal", created, renewal_amount, win_p, chunk, target_close=target
                )
                if outcome == "open":
                    break
                if outcome == "lost":
                    churned_on = close
                    for sub in subs:
                        if sub[3] is None:
                            sub[3] = close
                    break
                if contract and renewal_amount < arr:
                    # Contraction: the largest line ends and a smaller one replaces it.
                    largest = max((s for s in subs if s[3] is None), key=lambda s: s[1])
                    cut = (arr - renewal_amount) // 12
                    if cut < largest[1]:
                        largest[3] = close
                        subs.append([None, largest[1] - cut, close, None, largest[4]])
                cursor = close
                next_renewal = next_renewal + timedelta(days=365)
                next_expansion = max(next_expansion, cursor + timedelta(days=30))

        for sub in subs:
            sub_index = self._sub_count
            self._sub_count += 1
            chunk.subscriptions.append(
                SubscriptionRow(
                    index=sub_index,
                    external_id=f"{DEMO_PREFIX}sub-{sub_index:08d}",
                    account=index,
                    product=sub[4],
                    mrr_cents=sub[1],
                    currency=currency,
                    start_date=sub[2],
                    end_date=sub[3],
                )
            )
        if subs:
            self._nps(account, subs[0][2], churned_on, chunk)

    def _nps(self, account: AccountRow, since: date, churned_on: date | None, chunk: Chunk) -> None:
        """Quarterly survey waves while the account is a customer; unhappier before churn."""
        rng = self._rng
        sentiment = rng.gauss(0, 1.0)
        day = max(since, self.history_start) + timedelta(days=rng.randint(30, 90))
        end = min(churned_on or self.as_of, self.as_of)
        domain = account.name.split()[0].lower() + ".example"
        while day <= end:
            if rng.random() < 0.5:
                mean = _NPS_MEAN[account.segment] + sentiment
                if churned_on is not None and (churned_on - day).days < 270:
                    mean -= 2.0
                score = min(10, max(0, round(rng.gauss(mean, 1.5))))
                band = "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"
                first = rng.choice(names.FIRST_NAMES)
                last = rng.choice(names.LAST_NAMES)
                nps_index = self._nps_count
                self._nps_count += 1
                chunk.nps.append(
                    NpsRow(
                        index=nps_index,
                        external_id=f"{DEMO_PREFIX}nps-{nps_index:08d}",
                        account=account.index,
                        contact_name=f"{first} {last}",
                        contact_email=f"{first}.{last}@{domain}".lower(),
                        score=score,
                        comment=rng.choice(names.NPS_COMMENTS[band]),
                        responded_on=day,
                    )
                )
            day += timedelta(days=rng.randint(80, 100))

    def business_time(self, day: date, minute: int) -> datetime:
        """A UTC instant ``minute`` minutes after 08:00 local time on ``day``."""
        start = self._day_start.get(day)
        if start is None:
            start = datetime.combine(day, time(8), tzinfo=self.tz).astimezone(UTC)
            self._day_start[day] = start
        return start + timedelta(minutes=minute)

    def _deal(
        self,
        ctx: _DealContext,
        deal_type: str,
        created: date,
        amount: int,
        win_p: float,
        chunk: Chunk,
        *,
        product: ProductSpec | None = None,
        target_close: date | None = None,
    ) -> tuple[str, date]:
        """Generate one deal and its history. Returns its outcome (won/lost/open) and its
        close date (actual if closed, expected if open)."""
        rng = self._rng
        as_of = self.as_of
        segment = ctx.account.segment
        won = rng.random() < win_p
        if deal_type == "renewal":
            assert target_close is not None
            planned = target_close
        else:
            lo, hi = _CYCLE_DAYS[segment]
            cycle = rng.randint(lo, hi)
            if deal_type == "expansion":
                cycle = max(14, cycle // 2)
            if not won:
                # Losses surface earlier than wins: most die in the first stages.
                cycle = max(7, int(cycle * rng.uniform(0.35, 1.0)))
            planned = created + timedelta(days=cycle)
        slipped = rng.random() < _SLIP_PROBABILITY[segment]
        actual = planned + timedelta(days=rng.randint(10, 75)) if slipped else planned
        if won and rng.random() < 0.3:
            # End-of-quarter push: many wins land in the last days of the quarter.
            quarter_end = fiscal.period_containing(actual, "quarter", self.fsm).end
            late = quarter_end - timedelta(days=rng.randint(0, 9))
            if actual <= late <= as_of:
                actual = late
        closed = actual <= as_of
        if closed:
            end_day = actual
            final_close = actual
        else:
            end_day = as_of
            final_close = actual
            if final_close > self.horizon_end:
                final_close = self.horizon_end - timedelta(days=rng.randint(0, 20))
            final_close = max(final_close, as_of + timedelta(days=1))

        # The expected close date as it evolved: pushed out 1-3 times when the deal slipped.
        expected = [final_close]
        if slipped and planned < final_close:
            pushes = rng.randint(1, 3)
            gap = (final_close - planned).days
            steps = sorted({rng.randint(0, gap - 1) for _ in range(pushes - 1)} | {0})
            expected = [planned + timedelta(days=s) for s in steps] + [final_close]
        elif closed and won and rng.random() < 0.12:
            # Pulled in: the deal signed before the date the rep expected.
            expected = [actual + timedelta(days=rng.randint(7, 30))]
        expected = [max(d, created) for d in expected]

        # Events: (day, priority, seq, kind, value). Priority orders same-day events.
        events: list[tuple[date, int, int, str, object]] = []
        seq = 0
        last_push = created
        for i in range(1, len(expected)):
            push_day = expected[i - 1] - timedelta(days=rng.randint(0, 6))
            # Pushes happen in order, however close together the dates were.
            push_day = max(push_day, created, last_push)
            last_push = push_day
            if push_day > end_day:
                if not closed:
                    # Not pushed yet: the deal still shows the earlier (future) date.
                    final_close = expected[i - 1]
                    expected = expected[:i]
                    break
                push_day = end_day
            seq += 1
            events.append((push_day, 1, seq, "close_date", expected[i]))

        # The stage path, with the odd skipped stage.
        if deal_type == "renewal":
            start = 3
        elif deal_type == "expansion":
            start = rng.choice((1, 2))
        else:
            start = 0 if rng.random() < 0.7 else 1
        span_days = max((end_day - created).days, 0)
        if closed and won:
            top = _LAST_OPEN
        elif closed:
            top = start + int(rng.random() ** 1.6 * (_LAST_OPEN - start + 1))
            top = min(top, _LAST_OPEN)
        else:
            total = max((final_close - created).days, 1)
            top = min(_LAST_OPEN, start + int((as_of - created).days / total * (5 - start)))
        path = [start] + [s for s in range(start + 1, top + 1) if s == top or rng.random() > 0.15]
        stage_days = sorted(rng.randint(0, span_days) for _ in path[1:])
        if closed and stage_days and stage_days[-1] == span_days and span_days > 0:
            # Stage moves happen before the closing day's final call.
            stage_days = [min(d, span_days - 1) for d in stage_days]
        categories = [_category(rng, s) for s in path]
        for stage, offset, category in zip(path[1:], stage_days, categories[1:], strict=True):
            seq += 1
            events.append((created + timedelta(days=offset), 2, seq, "stage", (stage, category)))
        # Now and then the rep upgrades the call without a stage move.
        bounds = [0, *stage_days, span_days]
        for i, (stage, category) in enumerate(zip(path, categories, strict=True)):
            if stage >= 2 and category != "commit" and rng.random() < 0.35:
                lo, hi = bounds[i], bounds[i + 1] - 1
                if hi >= lo:
                    upgraded = "commit" if category == "best_case" else "best_case"
                    seq += 1
                    day = created + timedelta(days=rng.randint(lo, hi))
                    events.append((day, 3, seq, "forecast_category", upgraded))
        amount0 = amount
        if deal_type != "renewal" and rng.random() < 0.45:
            step = _ROUND_CENTS[segment]
            amount0 = max(step, round(amount * rng.uniform(0.7, 1.3) / step) * step)
            if amount0 != amount:
                seq += 1
                day = created + timedelta(days=rng.randint(0, max(span_days - 1, 0)))
                events.append((day, 1, seq, "amount", amount))
        owner0 = ctx.owner
        if rng.random() < 0.04:
            teammates = [r for r in self._reps_by_team[ctx.owner_team] if r != ctx.owner]
            if teammates:
                owner0 = rng.choice(teammates)
                seq += 1
                day = created + timedelta(days=rng.randint(0, max(span_days - 1, 0)))
                events.append((day, 1, seq, "owner", ctx.owner))
        if closed:
            final_stage = _WON if won else _LOST
            seq += 1
            events.append((end_day, 9, seq, "final", final_stage))
        events.sort(key=lambda e: (e[0], e[1], e[2]))

        # Replay the events into snapshots, as the services would have written them.
        opp_index = self._opp_count
        self._opp_count += 1
        currency = ctx.currency
        stage, amount_now, close_now, owner_now, category = (
            start,
            amount0,
            expected[0],
            owner0,
            categories[0],
        )
        day_counts: dict[date, int] = {created: 1}
        for event in events:
            day_counts[event[0]] = day_counts.get(event[0], 0) + 1
        minutes = {day: sorted(rng.sample(range(600), count)) for day, count in day_counts.items()}
        used = dict.fromkeys(minutes, 0)

        def at(day: date) -> datetime:
            k = used[day]
            used[day] = k + 1
            return self.business_time(day, minutes[day][k])

        history = chunk.history
        stamp = at(created)
        history.append(
            HistoryRow(
                opp_index,
                stamp,
                owner_now,
                "created",
                _STAGE_NAMES[stage],
                amount_now,
                currency,
                close_now,
                owner_now,
                category,
            )
        )
        for day, _prio, _seq, kind, value in events:
            stamp = at(day)
            changed_by = owner_now
            before = (stage, amount_now, close_now, owner_now, category)
            if kind == "stage":
                stage, category = value  # type: ignore[misc]
            elif kind == "close_date":
                close_now = value  # type: ignore[assignment]
            elif kind == "amount":
                amount_now = value  # type: ignore[assignment]
            elif kind == "owner":
                changed_by = self._manager_of[ctx.owner]
                owner_now = value  # type: ignore[assignment]
            elif kind == "forecast_category":
                category = value  # type: ignore[assignment]
            else:  # final
                stage = value  # type: ignore[assignment]
                category = "closed" if stage == _WON else "omitted"
                close_now = end_day
            changed = _changed_fields(before, (stage, amount_now, close_now, owner_now, category))
            if changed:
                history.append(
                    HistoryRow(
                        opp_index,
                        stamp,
                        changed_by,
                        changed,
                        _STAGE_NAMES[stage],
                        amount_now,
                        currency,
                        close_now,
                        owner_now,
                        category,
                    )
                )

        product_spec = product or _PRODUCT_BY_ID[ctx.product]
        type_label = {"new": "New business", "expansion": "Expansion", "renewal": "Renewal"}
        lost_reason = ""
        if stage == _LOST:
            lost_reason = _weighted(
                rng, names.CHURN_REASONS if deal_type == "renewal" else names.LOST_REASONS
            )
        source = {"expansion": "Customer success", "renewal": "Renewal"}.get(deal_type) or (
            _weighted(rng, names.LEAD_SOURCES)
        )
        chunk.opportunities.append(
            OpportunityRow(
                index=opp_index,
                external_id=f"{DEMO_PREFIX}opp-{opp_index:07d}",
                name=(
                    f"{ctx.account.name} - {product_spec.name.removeprefix('Acme ')} "
                    f"{type_label[deal_type].lower()}"
                ),
                account=ctx.account.index,
                owner=owner_now,
                product=product_spec.external_id,
                amount_cents=amount_now,
                currency=currency,
                stage=_STAGE_NAMES[stage],
                forecast_category=category,
                deal_type=deal_type,
                source=source,
                created_date=created,
                close_date=close_now,
                lost_reason=lost_reason,
                updated_at=stamp,
            )
        )
        if stage == _WON:
            key = (owner_now, close_now.year, close_now.month)
            booked = Decimal(amount_now) / 100 * self.rate_to_base(currency, close_now)
            self._bookings[key] = self._bookings.get(key, Decimal(0)) + booked
        outcome = "won" if stage == _WON else "lost" if stage == _LOST else "open"
        return outcome, close_now

    # --- Quotas -------------------------------------------------------------------------

    def months(self) -> list[fiscal.Period]:
        """Fiscal months with quotas: history start to the end of the plan."""
        result = []
        day = self.history_start
        while day <= self.plan_end:
            month = fiscal.period_containing(day, "month", self.fsm)
            result.append(month)
            day = month.end + timedelta(days=1)
        return result

    def quotas(self) -> list[QuotaRow]:
        """A monthly quota (base currency) for every rep and every team node.

        A rep's plan is their expected bookings (their booking run-rate: that fiscal year's
        monthly average, or for the current year the last twelve months plus 10% growth)
        divided by a stretch factor that follows their skill, so strong reps beat the
        plan (a few near 150%), most land at 80-120% and a few around 60%. A rep with no
        bookings gets the team's average. Each team's target sits a little above the sum
        of what is below it (top-down vs bottom-up).
        """
        if not self._streamed:
            raise RuntimeError("quotas() needs chunks() to have been read to the end")
        rng = random.Random(self._seeds["quotas"])
        teams, users, skills = self.org()
        reps = [u for u in users if u.role == "rep"]
        months = self.months()
        current_fy = fiscal.fiscal_year_of(self.as_of, self.fsm)
        zero = Decimal(0)
        booked_months = [m for m in months if m.start <= self.as_of]
        current_month = fiscal.period_containing(self.as_of, "month", self.fsm)
        trailing = [m for m in booked_months if m.start < current_month.start][-12:]

        def booked(rep: str, period_months: list[fiscal.Period]) -> Decimal:
            total = sum(
                (
                    self._bookings.get((rep, m.start.year, m.start.month), zero)
                    for m in period_months
                ),
                zero,
            )
            return total / len(period_months) if period_months else zero

        # Each rep's monthly run-rate per fiscal year (months of the history up to as-of).
        run_rate: dict[tuple[str, int], Decimal] = {}
        full_years: set[int] = set()
        for fy in sorted({m.fiscal_year for m in booked_months}):
            in_year = [m for m in booked_months if m.fiscal_year == fy]
            if len(in_year) == 12:
                full_years.add(fy)
            for rep in reps:
                run_rate[(rep.username, fy)] = booked(rep.username, in_year)
        team_of = {rep.username: rep.team or "" for rep in reps}
        # The plan grows each rep's run-rate by the growth the company planned for (here:
        # what it achieved, give or take 5%), so attainment still differs rep by rep.
        company_growth: dict[int, Decimal] = {}
        for fy in sorted(full_years):
            if fy + 1 >= current_fy:
                continue
            before = sum((run_rate[(r.username, fy)] for r in reps), zero)
            after = sum((run_rate[(r.username, fy + 1)] for r in reps), zero)
            noise = Decimal(repr(rng.uniform(0.95, 1.05)))
            company_growth[fy + 1] = (after / before if before > 0 else Decimal(1)) * noise

        def expected(rep: str, fy: int) -> Decimal:
            """Expected monthly bookings: last year's run-rate plus growth; without a full
            previous year (the start of the history), half own and half team run-rate."""
            if fy >= current_fy:
                return booked(rep, trailing) * Decimal("1.15")
            if fy in company_growth:
                return run_rate[(rep, fy - 1)] * company_growth[fy]
            members = self._reps_by_team[team_of[rep]]
            team = sum((run_rate[(r, fy)] for r in members), zero) / len(members)
            return (run_rate[(rep, fy)] + team) / 2

        stretch = {rep.username: skills[rep.username] * rng.uniform(0.9, 1.1) for rep in reps}
        floor_usd = {"smb": 15_000, "mid_market": 35_000, "enterprise": 90_000}

        def rep_monthly(team: TeamSpec, rep: str, fy: int) -> Decimal:
            plan = expected(rep, fy)
            if plan <= 0:
                members = self._reps_by_team[team.name]
                plan = sum((expected(r, fy) for r in members), zero) / len(members)
            if plan <= 0:
                usd = Decimal(floor_usd[team.segments[0]])
                return usd * self.rate_to_base("USD", self.as_of)
            return plan / Decimal(repr(stretch[rep]))

        set_by_of = {u.username: self._manager_of[u.username] for u in reps}
        team_by_name = {t.name: t for t in teams}
        rows: list[QuotaRow] = []
        for month in months:
            fy = month.fiscal_year
            set_at = datetime.combine(
                fiscal.fiscal_year_start(fy, self.fsm) - timedelta(days=14), time(9), tzinfo=UTC
            )
            sums: dict[str, int] = {}
            for team in TEAMS:
                for rep in self._reps_by_team[team.name]:
                    cents = _round_plan(rep_monthly(team, rep, fy))
                    rows.append(QuotaRow(month.name, rep, None, cents, set_by_of[rep], set_at))
                    sums[team.name] = sums.get(team.name, 0) + cents
            # Team nodes bottom up: teams, then regions, then the company.
            for kind, uplift in (
                ("team", (1.04, 1.10)),
                ("region", (1.01, 1.04)),
                ("company", (1.01, 1.03)),
            ):
                for node in (t for t in teams if t.kind == kind):
                    if kind != "team":
                        children = [t.name for t in teams if t.parent == node.name]
                        sums[node.name] = sum(sums[c] for c in children)
                    factor = Decimal(repr(rng.uniform(*uplift)))
                    cents = _round_plan(Decimal(sums[node.name]) / 100 * factor)
                    sums[node.name] = cents
                    parent = team_by_name[node.parent] if node.parent else None
                    set_by = parent.manager if parent else "ceo"
                    rows.append(QuotaRow(month.name, None, node.name, cents, set_by, set_at))
        return rows

    # --- Reviews ------------------------------------------------------------------------

    def reviews(self) -> list[ReviewRow]:
        """A review per rep per fiscal quarter that ended before as-of, inside the history.

        Older reviews are acknowledged; the last quarter's are a mix of acknowledged,
        submitted and draft (nothing is submitted or acknowledged after as-of)."""
        rng = random.Random(self._seeds["reviews"])
        teams, users, skills = self.org()
        manager_of = {t.name: t.manager for t in teams}
        quarters = []
        quarter = fiscal.period_containing(self.history_start, "quarter", self.fsm)
        while quarter.end < self.as_of:
            quarters.append(quarter)
            quarter = fiscal.shift(quarter, 1, self.fsm)
        last_day = datetime.combine(self.as_of, time(23, 59), tzinfo=UTC)
        rows: list[ReviewRow] = []
        for user in (u for u in users if u.role == "rep"):
            skill = skills[user.username]
            tier = "high" if skill >= 1.25 else "mid" if skill >= 0.8 else "low"
            for q in quarters:
                if q.end < user.hired_on:
                    continue
                submitted = datetime.combine(
                    q.end + timedelta(days=rng.randint(5, 20)), time(15), tzinfo=UTC
                )
                acknowledged = submitted + timedelta(days=rng.randint(1, 6), hours=2)
                status = "acknowledged"
                if q is quarters[-1]:
                    status = _weighted(
                        rng, (("acknowledged", 55), ("submitted", 30), ("draft", 15))
                    )
                if status == "acknowledged" and acknowledged > last_day:
                    status = "submitted"
                if status == "submitted" and submitted > last_day:
                    status = "draft"
                ratings = tuple(
                    (slug, min(5, max(1, round(rng.gauss(1.6 + 1.5 * skill, 0.7)))))
                    for slug in self.config.competency_slugs
                )
                rows.append(
                    ReviewRow(
                        rep=user.username,
                        reviewer=manager_of[user.team or ""],
                        period=q.name,
                        status=status,
                        strengths=rng.choice(names.REVIEW_STRENGTHS[tier]),
                        areas_to_grow=rng.choice(names.REVIEW_GROWTH[tier]),
                        goals=rng.choice(names.REVIEW_GOALS),
                        comments=f"{q.name}: {tier}-performer quarter; discussed in 1:1.",
                        rep_response=(
                            rng.choice(names.REVIEW_RESPONSES) if status == "acknowledged" else ""
                        ),
                        submitted_at=submitted if status != "draft" else None,
                        acknowledged_at=acknowledged if status == "acknowledged" else None,
                        ratings=ratings,
                    )
                )
        return rows


class _DealContext(NamedTuple):
    account: AccountRow
    currency: str
    owner: str
    owner_team: str
    product: str  # external id of the account's main product


_PRODUCT_BY_ID = {p.external_id: p for p in PRODUCTS}


def _mrr(annual_cents: int) -> int:
    """Monthly recurring revenue of an annual contract value, half-up to the cent."""
    return (annual_cents * 2 + 12) // 24


def _round_plan(amount: Decimal) -> int:
    """A plan figure in cents, rounded to 100 currency units as targets are."""
    hundreds = (amount / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(hundreds) * 10_000


def _category(rng: random.Random, stage: int) -> str:
    """The forecast call a rep makes when a deal enters an open stage."""
    r = rng.random()
    if stage <= 1:
        return "pipeline"
    if stage == 2:
        return "best_case" if r < 0.3 else "pipeline"
    if stage == 3:
        return "commit" if r < 0.15 else "best_case" if r < 0.85 else "pipeline"
    return "commit" if r < 0.8 else "best_case"


_TRACKED = ("stage", "amount", "close_date", "owner", "forecast_category")


def _changed_fields(before: tuple, after: tuple) -> str:
    """Comma-separated tracked fields that changed, in the services' field order (currency
    never changes on a demo deal)."""
    return ",".join(name for name, b, a in zip(_TRACKED, before, after, strict=True) if b != a)
