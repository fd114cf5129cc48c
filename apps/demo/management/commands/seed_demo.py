"""``python manage.py seed_demo``: load the deterministic demo company."""

from __future__ import annotations

import sys
import time
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.demo.generator import MAX_SCALE
from apps.demo.services import SeedResult, demo_seed
from apps.kpis.services import rollups_rebuild


def _scale(value: str) -> int:
    try:
        scale = int(value.replace("_", "").replace(",", ""))
    except ValueError as exc:
        raise CommandError(f"--scale must be a whole number, got {value!r}") from exc
    if not 1 <= scale <= MAX_SCALE:
        raise CommandError(f"--scale must be between 1 and {MAX_SCALE:,}, got {scale:,}")
    return scale


def _as_of(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"--as-of must be a date as YYYY-MM-DD, got {value!r}") from exc


class Command(BaseCommand):
    help = (
        "Build the demo company (org, deals with history, quotas, reviews, subscriptions, "
        "NPS, exchange rates). Deterministic for a given --seed and --as-of; running it "
        "again replaces the previous demo data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=42, help="Random seed (default 42).")
        parser.add_argument(
            "--scale",
            type=str,
            default="20000",
            help=f"Number of opportunities, 1 to {MAX_SCALE:,} (default 20,000).",
        )
        parser.add_argument(
            "--as-of",
            dest="as_of",
            type=str,
            default=None,
            help="Generate the data as seen on this day, YYYY-MM-DD (default today).",
        )
        parser.add_argument("--quiet", action="store_true", help="No progress bar.")
        parser.add_argument(
            "--if-empty",
            action="store_true",
            help="Do nothing but print the logins when demo data already exists.",
        )
        parser.add_argument(
            "--no-rollups",
            action="store_true",
            help="Skip rebuilding the KPI rollups after loading (dashboards stay stale).",
        )
        parser.add_argument(
            "--no-forecasts",
            action="store_true",
            help="Skip computing forecasts and the demo managers' forecast calls "
            "(the Forecast page stays empty until the nightly run).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        scale = _scale(str(options["scale"]))
        as_of = _as_of(options["as_of"]) if options["as_of"] else timezone.localdate()
        try:
            result = demo_seed(
                seed=options["seed"],
                scale=scale,
                as_of=as_of,
                if_empty=options["if_empty"],
                progress=None if options["quiet"] else sys.stderr,
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        self._report(result, seed=options["seed"], scale=scale, as_of=as_of)
        if not result.skipped and not options["no_rollups"]:
            # The bulk load bypasses the services' incremental rollup hooks, so the
            # dashboards need one full rebuild to show the new data.
            started = time.monotonic()
            try:
                rollups = rollups_rebuild()
            except ApplicationError as exc:
                raise CommandError(
                    f"Demo loaded, but the KPI rollups failed: {exc.message}"
                ) from exc
            self.stdout.write(
                f"KPI rollups rebuilt: {rollups.total_rows:,} rows in "
                f"{time.monotonic() - started:.1f} s."
            )
            if not options["no_forecasts"]:
                self._forecasts(as_of=as_of, seed=options["seed"])

    def _forecasts(self, *, as_of: date, seed: int) -> None:
        """Every method's forecast for every scope, then the demo managers' calls and the
        weekly snapshots scored against the closed quarter (they read the rollups)."""
        from apps.forecasting.demo import forecast_demo_seed
        from apps.forecasting.services import forecasts_recompute

        started = time.monotonic()
        try:
            result = forecasts_recompute(as_of=as_of)
            demo = forecast_demo_seed(as_of=as_of, seed=seed)
        except ApplicationError as exc:
            raise CommandError(f"Demo loaded, but the forecasts failed: {exc.message}") from exc
        self.stdout.write(
            f"Forecasts computed: {result.values:,} values, {demo['calls']:,} manager calls, "
            f"{demo['snapshots']:,} weekly snapshots in {time.monotonic() - started:.1f} s."
        )

    def _report(self, result: SeedResult, *, seed: int, scale: int, as_of: date) -> None:
        out = self.stdout
        if result.skipped:
            out.write("Demo data already present; nothing loaded (--if-empty).")
        else:
            out.write(
                self.style.SUCCESS(
                    f"Demo company loaded: seed {seed}, {scale:,} opportunities, as of "
                    f"{as_of.isoformat()}, in {result.elapsed_seconds:.1f} s."
                )
            )
            width = max(len(name) for name in result.counts)
            for name, count in result.counts.items():
                out.write(f"  {name:<{width}}  {count:>12,}")
        out.write(f"Demo logins (password for all: {result.password}):")
        for role, username, title in result.logins:
            out.write(f"  {role:<13} {username:<24} {title}")
