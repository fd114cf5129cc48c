"""``manage.py backtest_forecasts``: replay closed quarters week by week and report which
forecast method was the most accurate (see apps.forecasting.engine.backtest)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ApplicationError
from apps.forecasting.engine.backtest import backtest_run, closed_periods
from apps.kpis.selectors import KpiScope
from apps.org.models import Team, User
from apps.org.policy import subtree_ids


def scope_from_text(text: str) -> KpiScope:
    """``company``, ``team:<id>`` or ``rep:<id>`` (an operator command: no visibility
    check, it sees what RevOps sees)."""
    kind, _, raw = text.partition(":")
    if kind == "company" and not raw:
        return KpiScope(kind="company")
    if kind not in ("team", "rep") or not raw.isdigit():
        raise CommandError("--scope is company, team:<id> or rep:<id>.")
    pk = int(raw)
    if kind == "rep":
        user = User.objects.filter(pk=pk).first()
        if user is None:
            raise CommandError(f"There is no user with id {pk}.")
        label = user.get_full_name() or user.username
        return KpiScope(kind="rep", rep_id=pk, owner_ids=frozenset({pk}), label=label)
    team = Team.objects.filter(pk=pk).first()
    if team is None:
        raise CommandError(f"There is no team with id {pk}.")
    owners = frozenset(
        User.objects.filter(team_id__in=subtree_ids([pk])).values_list("id", flat=True)
    )
    return KpiScope(kind="team", team_id=pk, owner_ids=owners, label=team.name)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


class Command(BaseCommand):
    help = "Replay the last N closed quarters as of each past week and score every method."

    def add_arguments(self, parser):
        parser.add_argument("--periods", type=int, default=4, help="closed quarters (default 4)")
        parser.add_argument("--scope", default="company", help="company, team:<id> or rep:<id>")
        parser.add_argument(
            "--before",
            type=date.fromisoformat,
            default=None,
            help="replay the quarters that ended before this date (default today)",
        )

    def handle(self, *args, **options):
        scope = scope_from_text(options["scope"])
        try:
            periods = closed_periods(options["periods"], before=options["before"])
            report = backtest_run(scope=scope, periods=periods)
        except ApplicationError as exc:
            raise CommandError(exc.message) from None
        out = self.stdout
        methods = list(dict.fromkeys(row.method for row in report.rows))
        out.write(f"Backtest for {report.scope}: {', '.join(report.periods)}")
        out.write("")
        out.write("Forecast vs actual (last week of each period is the period end):")
        header = (
            f"{'period':<10} {'week':>4} {'as of':<10} "
            + " ".join(f"{m:>14}" for m in methods)
            + f" {'actual':>14}"
        )
        out.write(header)
        by_key: dict[tuple[str, int], dict[str, object]] = {}
        for row in report.rows:
            entry = by_key.setdefault(
                (row.period, row.week), {"as_of": row.as_of, "actual": row.actual}
            )
            entry[row.method] = row.forecast
        for (period, week), entry in by_key.items():
            cells = " ".join(f"{entry.get(m, '-')!s:>14}" for m in methods)
            out.write(
                f"{period:<10} {week:>4} {entry['as_of']!s:<10} {cells} {entry['actual']!s:>14}"
            )
        out.write("")
        out.write("Mean absolute percentage error by week of quarter:")
        out.write(f"{'week':>4} " + " ".join(f"{m:>14}" for m in methods))
        for week, values in report.mape_by_week().items():
            out.write(f"{week:>4} " + " ".join(f"{_pct(values.get(m)):>14}" for m in methods))
        overall = report.mape_by_method()
        out.write(f"{'all':>4} " + " ".join(f"{_pct(overall.get(m)):>14}" for m in methods))
        out.write("")
        best = report.best_method
        if best is None:
            out.write("No method could be scored (no bookings in the replayed periods).")
        else:
            out.write(f"Most accurate: {best} (MAPE {_pct(overall[best])})")
