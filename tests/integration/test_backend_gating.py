"""The shared gating in tests/conftest.py: a test whose service is missing is skipped with a
reason outside CI, and stops the run with CI=true, so CI can never pass by skipping.

Each case runs pytest in a fresh process on the real-worker tests, with no DATABASE_URL or
REDIS_URL, so those tests are the ones gated.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
GATED_TESTS = "tests/integration/test_celery_worker.py"


def run_pytest_without_services(tmp_path: Path, *, ci: bool) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CI", "PYTEST_ADDOPTS"}
    }
    env["SQLITE_PATH"] = str(tmp_path / "gating.sqlite3")
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "pytest", GATED_TESTS, "-p", "no:cacheprovider", "-p", "no:xdist"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_outside_ci_a_test_needing_postgres_is_skipped_with_its_reason(tmp_path):
    # given no PostgreSQL or Redis configured, outside CI
    # when the real-worker tests are run
    done = run_pytest_without_services(tmp_path, ci=False)

    # then the run passes, names the backends, and lists each skip with what to set
    assert done.returncode == 0, done.stdout + done.stderr
    assert "backends: database=sqlite3" in done.stdout
    assert "SKIPPED [2]" in done.stdout
    assert "needs PostgreSQL: set DATABASE_URL=postgres://" in done.stdout
    assert "2 skipped" in done.stdout


def test_in_ci_a_missing_backend_is_an_error_not_a_skip(tmp_path):
    # given no PostgreSQL or Redis configured, with CI=true
    # when the same tests are run
    done = run_pytest_without_services(tmp_path, ci=True)

    # then pytest stops with a usage error that says what is missing, and runs nothing
    output = done.stdout + done.stderr
    assert done.returncode == 4, output
    assert "CI=true, so tests must run, not skip" in output
    assert "needs PostgreSQL" in output
    assert "skipped" not in done.stdout
