"""Production settings: `manage.py check --deploy` is clean, and bad settings fail clearly.

Each case runs manage.py in a fresh process with only the variables it sets (plus PATH and
HOME), so nothing from the developer's or CI's environment leaks into the check.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args: str, env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    base = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        # Never the checkout's db.sqlite3: the check must not depend on local data.
        "SQLITE_PATH": str(tmp_path / "deploy-check.sqlite3"),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def production_env() -> dict[str, str]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(64),
        "ALLOWED_HOSTS": "example.com",
    }


def test_deploy_check_passes_with_no_warnings(tmp_path):
    # given production-like settings
    env = production_env()

    # when Django's deployment checklist runs, failing on any warning
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)

    # then it finds nothing
    assert done.returncode == 0, done.stdout + done.stderr
    assert "System check identified no issues" in done.stdout
    assert "WARNING" not in done.stdout + done.stderr


def test_deploy_check_catches_debug_left_on(tmp_path):
    # given production settings with DEBUG switched on by mistake
    env = {**production_env(), "DEBUG": "1"}

    # when the deployment checklist runs
    done = run_manage("check", "--deploy", "--fail-level", "WARNING", env=env, tmp_path=tmp_path)

    # then it fails and names the problem (so the clean run above is a real signal)
    assert done.returncode != 0
    assert "security.W018" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY is not set"),
        ({"DEBUG": "maybe"}, "DEBUG must be a boolean"),
        ({"GROSS_MARGIN": "eighty"}, "GROSS_MARGIN must be a decimal"),
        ({"GROSS_MARGIN": "1.5"}, "GROSS_MARGIN must be in (0, 1]"),
        ({"FISCAL_YEAR_START_MONTH": "13"}, "FISCAL_YEAR_START_MONTH must be between 1 and 12"),
        ({"BASE_CURRENCY": "dollars"}, "BASE_CURRENCY must be an ISO 4217 code"),
        (
            {"DATABASE_URL": "postgres://cso@127.0.0.1:5432/cso", "DB_CONN_MAX_AGE": "forever"},
            "DB_CONN_MAX_AGE must be an integer",
        ),
    ],
)
def test_bad_setting_stops_startup_with_a_clear_message(tmp_path, override, message):
    # given production settings with one bad value
    env = {**production_env(), **override}

    # when any management command starts
    done = run_manage("check", env=env, tmp_path=tmp_path)

    # then it refuses to start and says which variable is wrong
    assert done.returncode != 0
    assert message in done.stderr
