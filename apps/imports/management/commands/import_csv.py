"""python manage.py import_csv KIND FILE [--mapping MAPPING.json] [--dry-run] [--user NAME]"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from apps.core.errors import ApplicationError
from apps.imports.mapping import MappingError, identity_mapping, mapping_from_json
from apps.imports.schema import KINDS
from apps.imports.services import file_import
from apps.org.models import User

#: How many errors are printed; the summary always has the full count.
PRINTED_ERRORS = 200


class Command(BaseCommand):
    help = (
        "Import a CSV or XLSX file of one kind. All or nothing: any bad row means nothing is "
        "written, every bad row is listed, and the exit status is 1."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", choices=list(KINDS))
        parser.add_argument("file", type=Path)
        parser.add_argument("--mapping", type=Path, help="mapping JSON (default: identity)")
        parser.add_argument("--dry-run", action="store_true", help="validate, write nothing")
        parser.add_argument(
            "--user",
            help="username or e-mail recorded as the importer (default: the first superuser)",
        )
        parser.add_argument("--no-progress", action="store_true", help="no progress bar")

    def _user(self, name: str | None) -> User:
        if name:
            user = (
                User.objects.filter(username=name).first()
                or User.objects.filter(email__iexact=name).first()
            )
            if user is None:
                raise CommandError(f"No user {name!r}.")
            return user
        user = User.objects.filter(is_superuser=True, is_active=True).order_by("id").first()
        if user is None:
            raise CommandError("No superuser to record the import as; pass --user NAME.")
        return user

    def handle(self, *args: Any, **options: Any) -> None:
        kind: str = options["kind"]
        path: Path = options["file"]
        if not path.is_file():
            raise CommandError(f"No file {path}.")
        try:
            if options["mapping"]:
                mapping = mapping_from_json(options["mapping"].read_bytes(), kind=kind)
            else:
                mapping = identity_mapping(kind)
        except (OSError, MappingError) as exc:
            raise CommandError(f"Mapping: {exc}") from None
        user = self._user(options["user"])
        bar = tqdm(
            total=0, unit="row", desc="reading", disable=options["no_progress"], file=self.stderr
        )

        def progress(phase: str, done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
            bar.set_description(phase)
            bar.update(done - bar.n)

        try:
            report = file_import(
                kind=kind,
                data=path.read_bytes(),
                filename=path.name,
                user=user,
                mapping=mapping,
                dry_run=options["dry_run"],
                progress=progress,
            )
        except ApplicationError as exc:
            bar.close()
            raise CommandError(exc.message) from None
        bar.close()
        for error in report.errors[:PRINTED_ERRORS]:
            where = f"line {error.line}" + (f", {error.field}" if error.field else "")
            self.stderr.write(f"{where}: {error.message}")
        if len(report.errors) > PRINTED_ERRORS:
            self.stderr.write(f"... and {len(report.errors) - PRINTED_ERRORS} more errors")
        if not report.ok:
            outcome = "nothing was written"
        elif report.dry_run:
            outcome = "dry run: nothing was written"
        else:
            outcome = "written"
        self.stdout.write(
            f"{kind}: {report.rows} rows; created {report.created}, updated {report.updated}, "
            f"unchanged {report.unchanged}, errors {len(report.errors)} ({outcome})"
        )
        if not report.ok:
            raise CommandError(f"{len(report.errors)} error(s); nothing was imported.")
