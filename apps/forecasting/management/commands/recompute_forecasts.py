"""Recompute every stored forecast now (what the nightly task does)."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from apps.core.errors import ApplicationError
from apps.forecasting.services import forecasts_recompute


class Command(BaseCommand):
    help = (
        "Recompute every method's forecast for the company, every team and every rep, for "
        "the current and next fiscal quarter (the nightly task's work)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--as-of", dest="as_of", help="YYYY-MM-DD (default: today)")

    def handle(self, *args, **options) -> None:
        try:
            as_of = date.fromisoformat(options["as_of"]) if options["as_of"] else None
        except ValueError as exc:
            raise CommandError(f"--as-of must be a date as YYYY-MM-DD: {exc}") from exc
        try:
            result = forecasts_recompute(as_of=as_of)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(
            f"Forecasts recomputed: {result.values} values for {', '.join(result.periods)}."
        )
