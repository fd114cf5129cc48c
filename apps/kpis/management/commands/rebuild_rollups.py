"""``python manage.py rebuild_rollups``: the nightly full rebuild, by hand, with progress."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from apps.core.errors import ApplicationError
from apps.kpis.services import REBUILD_STEPS, rollups_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild every KPI rollup from the domain tables in one transaction (the same "
        "service as the nightly Celery task) and record the run."
    )

    def handle(self, *args, **options) -> None:
        bar = tqdm(total=len(REBUILD_STEPS), unit="step", disable=options["verbosity"] == 0)

        def progress(step: str) -> None:
            bar.set_description(step)
            bar.update(1)

        try:
            result = rollups_rebuild(progress=progress)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        finally:
            bar.close()
        if options["verbosity"] > 1:
            for table, rows in result.rows.items():
                self.stdout.write(f"{table}: {rows} rows")
        self.stdout.write(self.style.SUCCESS(f"Rebuilt {result.total_rows} rollup rows."))
