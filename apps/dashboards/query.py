"""The dashboard filter state: parsed from the URL query string, so every view can be
bookmarked and shared, and written back into links (drill-downs, filter changes).

Parsing never guesses: an unknown value is an ApplicationError naming the parameter, and
a team or person outside the viewer's scope is refused by the KPI engine's scope check
(the views turn that into a 404, so an edited URL never reveals whether a scope exists).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlencode

from django.conf import settings
from django.http import QueryDict
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.crm.models import DealType, Segment
from apps.kpis.selectors import (
    KpiFilters,
    KpiPeriod,
    KpiScope,
    period_parse,
    period_shift,
    period_year_ago,
    scope_resolve,
)
from apps.org.models import User
from apps.quotas import fiscal

COMPARISONS = {"previous": "Previous period", "year_ago": "Same period last year"}
PARAMS = ("period", "compare", "team", "rep", "region", "segment", "product", "deal_type")
# Page-specific keys (pagination, sorting, export, drill-down selection) read by the views.
ALLOWED = frozenset(PARAMS) | {
    "page",
    "sort",
    "format",
    "metric",
    "stage",
    "category",
    "since",
    "group",
    "band",
    "movement",
    "step",
    "cohort",
    "month",
}


def default_period_name() -> str:
    """The current fiscal quarter (in the configured time zone)."""
    today = timezone.localdate()
    return fiscal.period_containing(today, "quarter", settings.FISCAL_YEAR_START_MONTH).name


def _int(params: QueryDict, name: str) -> int | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ApplicationError(f"{name} must be a numeric id, got {raw!r}.") from None
    if not 0 < value < 2**63:  # ids are positive 64-bit keys; SQLite cannot even bind more
        raise ApplicationError(f"{name} must be a numeric id, got {raw!r}.")
    return value


def _choice(params: QueryDict, name: str, choices: list[str]) -> str | None:
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    if raw not in choices:
        raise ApplicationError(f"{name} must be one of {', '.join(choices)}; got {raw!r}.")
    return raw


@dataclass(frozen=True)
class DashboardQuery:
    """What a dashboard shows: a period with its comparison period, a scope (company, a
    team subtree or one rep, already checked against the visibility policy) and filters."""

    period: KpiPeriod
    compare: str
    compare_period: KpiPeriod
    scope: KpiScope
    filters: KpiFilters
    team_id: int | None
    rep_id: int | None

    def params(self, **overrides: object) -> dict[str, str]:
        """The query-string parameters of this view (only non-default ones), with
        ``overrides`` applied (None removes a parameter)."""
        values: dict[str, object] = {
            "period": self.period.name,
            "compare": None if self.compare == "previous" else self.compare,
            "team": self.team_id,
            "rep": self.rep_id,
            **self.filters.as_dict(),
        }
        values.update(overrides)
        return {k: str(v) for k, v in values.items() if v is not None and v != ""}

    def querystring(self, **overrides: object) -> str:
        return urlencode(self.params(**overrides))

    def with_period(self, period: KpiPeriod) -> DashboardQuery:
        return replace(self, period=period)

    @property
    def customer_filters(self) -> KpiFilters:
        """Customer KPIs slice by the account's region and segment only."""
        return KpiFilters(region=self.filters.region, segment=self.filters.segment)


def query_parse(
    params: QueryDict,
    *,
    user: User,
    teams: Sequence[tuple[int, int | None, str, int | None]] | None = None,
) -> DashboardQuery:
    """Parse and check the dashboard parameters. Raises ApplicationError for bad input and
    KpiPermissionError for a scope the user may not see. ``teams``: the team table's rows
    when already read in this request (see :func:`apps.kpis.selectors.scope_resolve`)."""
    unknown = sorted(set(params) - ALLOWED)
    if unknown:
        raise ApplicationError(f"Unknown parameter {', '.join(unknown)}.")
    period = period_parse((params.get("period") or "").strip() or default_period_name())
    compare = (params.get("compare") or "").strip() or "previous"
    if compare not in COMPARISONS:
        raise ApplicationError(f"compare must be one of {', '.join(COMPARISONS)}; got {compare!r}.")
    compare_period = period_shift(period, -1) if compare == "previous" else period_year_ago(period)
    team_id, rep_id = _int(params, "team"), _int(params, "rep")
    filters = KpiFilters(
        region=_int(params, "region"),
        segment=_choice(params, "segment", list(Segment.values)),
        product=_int(params, "product"),
        deal_type=_choice(params, "deal_type", list(DealType.values)),
    )
    scope = scope_resolve(user=user, team_id=team_id, rep_id=rep_id, teams=teams)
    return DashboardQuery(
        period=period,
        compare=compare,
        compare_period=compare_period,
        scope=scope,
        filters=filters,
        team_id=team_id,
        rep_id=rep_id,
    )
