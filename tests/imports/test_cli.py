"""python manage.py import_csv: summary, exit status and dry runs."""

from __future__ import annotations

import json
import subprocess
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.crm.models import Opportunity
from tests.imports.conftest import GOOD, MALFORMED, table_state

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_csv", *args, "--no-progress", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_imports_a_good_file_and_prints_a_summary(crm):
    out, _ = run("opportunities", str(GOOD / "opportunities.csv"), "--user", "ops")
    assert "opportunities: 4 rows; created 4, updated 0, unchanged 0, errors 0 (written)" in out
    assert Opportunity.objects.count() == 4
    out, _ = run("opportunities", str(GOOD / "opportunities.csv"), "--user", "ops@example.com")
    assert "created 0, updated 0, unchanged 4, errors 0" in out


def test_dry_run_writes_nothing(crm):
    before = table_state()
    out, _ = run("opportunities", str(GOOD / "opportunities.csv"), "--user", "ops", "--dry-run")
    assert "created 4" in out and "(dry run: nothing was written)" in out
    assert table_state() == before


def test_any_error_lists_the_lines_and_fails(crm):
    before = table_state()
    with pytest.raises(CommandError, match=r"1 error\(s\); nothing was imported"):
        run("opportunities", str(MALFORMED / "negative_amount.csv"), "--user", "ops")
    assert table_state() == before


def test_mapping_file(crm, tmp_path):
    mapping = tmp_path / "mapping.json"
    mapping.write_text(json.dumps({"columns": {"amount": "Value"}}))
    data = tmp_path / "deals.csv"
    data.write_text((GOOD / "opportunities.csv").read_text().replace(",amount,", ",Value,", 1))
    out, _ = run("opportunities", str(data), "--mapping", str(mapping), "--user", "ops")
    assert "created 4" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["opportunities", "/nonexistent.csv", "--user", "ops"], "No file"),
        (["opportunities", str(GOOD / "opportunities.csv"), "--user", "nobody"], "No user"),
        (
            ["opportunities", str(GOOD / "opportunities.csv"), "--user", "ada"],
            "Only RevOps admins and executives may import data.",
        ),
    ],
)
def test_bad_calls(crm, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)


def test_bad_mapping_file(crm, tmp_path):
    mapping = tmp_path / "m.json"
    mapping.write_text('{"columns": {"amount": "Value"}, "colour": "blue"}')
    with pytest.raises(CommandError, match="Unknown mapping key"):
        run("opportunities", str(GOOD / "opportunities.csv"), "--mapping", str(mapping))


def test_exit_status_is_1_on_error(tmp_path):
    # A real process, to check the exit status (no database needed: the file is refused
    # before any row is read, and the command fails on the missing file first).
    result = subprocess.run(
        [sys.executable, "manage.py", "import_csv", "opportunities", str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        env={"DEBUG": "1", "PATH": "/usr/bin:/bin", "SQLITE_PATH": str(tmp_path / "db.sqlite3")},
        check=False,
    )
    assert result.returncode == 1
    assert "No file" in result.stderr
