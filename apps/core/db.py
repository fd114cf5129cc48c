"""Database helpers shared by selectors and services."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection, transaction


@contextlib.contextmanager
def without_jit() -> Iterator[None]:
    """Run the enclosed queries without Postgres' JIT compiler (nothing changes on other
    databases).

    For the dashboards' and reports' correlated, index-driven queries: their pessimistic
    row estimates push the planner past the JIT cost thresholds, and compiling and
    optimising them then costs more than running them. ``SET LOCAL`` needs a transaction,
    so one is opened (a savepoint inside an existing one, where the setting then lasts
    until that transaction ends)."""
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL jit = off")
        yield
