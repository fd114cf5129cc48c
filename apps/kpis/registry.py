"""The one registry of KPIs: what each figure is called, measured in and allowed to slice by.

Every KPI of the shared KPI definitions is declared here exactly once. Selectors compute
them, the API lists them, dashboards and digests format them from ``unit`` and ``fmt``.
The arithmetic lives in :mod:`apps.kpis.calc`, the data access in :mod:`apps.kpis.selectors`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from apps.core.errors import ApplicationError

Unit = Literal["money", "count", "percent", "days", "ratio", "money_per_day", "score"]
Direction = Literal["up", "down"]
ScopeKind = Literal["company", "team", "rep"]

SCOPES: tuple[ScopeKind, ...] = ("company", "team", "rep")
FILTERS: tuple[str, ...] = ("region", "segment", "product", "deal_type")

_SALES_SCOPES: frozenset[str] = frozenset(SCOPES)
_DEAL_FILTERS: frozenset[str] = frozenset(FILTERS)
_ACCOUNT_FILTERS: frozenset[str] = frozenset({"region", "segment"})
_COMPANY: frozenset[str] = frozenset({"company"})
_NONE: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Kpi:
    """One KPI. ``unit`` says what the value means (percent values are fractions, 0.25 is
    25 %); ``fmt`` is a display hint; ``direction`` says which way is good."""

    name: str
    label: str
    unit: Unit
    fmt: str
    definition: str
    direction: Direction
    scopes: frozenset[str]
    filters: frozenset[str]
    family: str

    def check(self, *, scope: str, filters: dict[str, object]) -> None:
        """Refuse a scope or filter this KPI cannot be sliced by, with the reason."""
        if scope not in self.scopes:
            raise ApplicationError(
                f"{self.label} is not available for a {scope} scope; it supports "
                f"{', '.join(sorted(self.scopes))}.",
                extra={"kpi": self.name, "scope": scope},
            )
        unsupported = sorted(
            k for k, v in filters.items() if v is not None and k not in self.filters
        )
        if unsupported:
            allowed = ", ".join(sorted(self.filters)) or "no filters"
            raise ApplicationError(
                f"{self.label} cannot be filtered by {', '.join(unsupported)}; it supports "
                f"{allowed}.",
                extra={"kpi": self.name, "filters": unsupported},
            )

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "label": self.label,
            "unit": self.unit,
            "format": self.fmt,
            "definition": self.definition,
            "direction": self.direction,
            "scopes": sorted(self.scopes),
            "filters": sorted(self.filters),
            "family": self.family,
        }


def _sales(name: str, label: str, unit: Unit, fmt: str, definition: str, direction: Direction):
    return Kpi(name, label, unit, fmt, definition, direction, _SALES_SCOPES, _DEAL_FILTERS, "sales")


def _quota(name: str, label: str, unit: Unit, fmt: str, definition: str):
    return Kpi(name, label, unit, fmt, definition, "up", _SALES_SCOPES, _NONE, "quota")


def _customers(name: str, label: str, unit: Unit, fmt: str, definition: str, direction: Direction):
    return Kpi(
        name, label, unit, fmt, definition, direction, _COMPANY, _ACCOUNT_FILTERS, "customers"
    )


_ALL: tuple[Kpi, ...] = (
    _sales(
        "bookings",
        "Bookings",
        "money",
        "money",
        "Sum of the amount of won deals closed in the period.",
        "up",
    ),
    _sales(
        "won_deals",
        "Won deals",
        "count",
        "integer",
        "Number of won deals closed in the period.",
        "up",
    ),
    _sales(
        "lost_deals",
        "Lost deals",
        "count",
        "integer",
        "Number of lost deals closed in the period.",
        "down",
    ),
    _sales(
        "win_rate",
        "Win rate",
        "percent",
        "percent",
        "Won / (won + lost) deals closed in the period, by count.",
        "up",
    ),
    _sales(
        "win_rate_value",
        "Win rate by value",
        "percent",
        "percent",
        "Won amount / (won + lost amount) of deals closed in the period.",
        "up",
    ),
    _sales(
        "avg_deal_size",
        "Average deal size",
        "money",
        "money",
        "Bookings / won deals in the period.",
        "up",
    ),
    _sales(
        "sales_cycle_mean",
        "Sales cycle (mean)",
        "days",
        "decimal1",
        "Mean days from created date to close date of won deals closed in the period.",
        "down",
    ),
    _sales(
        "sales_cycle_median",
        "Sales cycle (median)",
        "days",
        "decimal1",
        "Median days from created date to close date of won deals closed in the period.",
        "down",
    ),
    _sales(
        "stage_conversion",
        "Stage conversion",
        "percent",
        "percent",
        "Of the deals that entered a stage in the period, the share that later reached "
        "the next stage or won; skipped stages count as passed.",
        "up",
    ),
    _sales(
        "open_pipeline",
        "Open pipeline",
        "money",
        "money",
        "Sum of the amount of open deals whose close date is in the period.",
        "up",
    ),
    _sales(
        "weighted_pipeline",
        "Weighted pipeline",
        "money",
        "money",
        "Sum over open deals closing in the period of amount x stage probability.",
        "up",
    ),
    _quota(
        "pipeline_coverage",
        "Pipeline coverage",
        "ratio",
        "multiple",
        "Open pipeline / (quota - bookings) in the period; no data once the quota is met.",
    ),
    _sales(
        "pipeline_velocity",
        "Pipeline velocity",
        "money_per_day",
        "money",
        "Open deals in the period x win rate x average deal size / mean sales cycle, "
        "the last three over the twelve months ending with the period.",
        "up",
    ),
    _quota(
        "quota", "Quota", "money", "money", "Sum of the monthly quotas of the period for the scope."
    ),
    _quota(
        "attainment",
        "Quota attainment",
        "percent",
        "percent",
        "Bookings / quota for the period and scope.",
    ),
    _sales(
        "new_logos",
        "New logos",
        "count",
        "integer",
        "Accounts whose first won deal closes in the period.",
        "up",
    ),
    _sales(
        "bookings_growth",
        "Bookings growth",
        "percent",
        "percent",
        "(Bookings - bookings of the previous period) / bookings of the previous period.",
        "up",
    ),
    _sales(
        "bookings_growth_yoy",
        "Bookings growth (year over year)",
        "percent",
        "percent",
        "(Bookings - bookings a year earlier) / bookings a year earlier.",
        "up",
    ),
    _sales(
        "slipped_deals",
        "Slipped deals",
        "count",
        "integer",
        "Open deals whose close date was moved out of the period during the period.",
        "down",
    ),
    _customers(
        "mrr",
        "MRR",
        "money",
        "money",
        "Closing MRR of the period (MRR on the first day after it), summed over accounts.",
        "up",
    ),
    _customers("arr", "ARR", "money", "money", "12 x MRR.", "up"),
    _customers(
        "grr",
        "Gross revenue retention",
        "percent",
        "percent",
        "Over accounts with opening MRR > 0: sum of min(closing, opening) / sum of opening.",
        "up",
    ),
    _customers(
        "nrr",
        "Net revenue retention",
        "percent",
        "percent",
        "Over accounts with opening MRR > 0: sum of closing / sum of opening.",
        "up",
    ),
    _customers(
        "logo_churn",
        "Logo churn rate",
        "percent",
        "percent",
        "Accounts with opening MRR > 0 and closing MRR 0 / accounts with opening MRR > 0.",
        "down",
    ),
    _customers(
        "clv",
        "Customer lifetime value",
        "money",
        "money",
        "ARPA x gross margin / monthly logo churn averaged over the twelve months "
        "ending with the period.",
        "up",
    ),
    _customers(
        "nps",
        "NPS",
        "score",
        "integer",
        "% promoters (9-10) - % detractors (0-6) of survey responses in the period, -100 to 100.",
        "up",
    ),
)

REGISTRY: dict[str, Kpi] = {kpi.name: kpi for kpi in _ALL}


def kpi_get(name: str) -> Kpi:
    """The KPI called ``name``, or an ApplicationError listing the known names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ApplicationError(
            f"Unknown KPI {name!r}.", extra={"known": sorted(REGISTRY)}
        ) from None
