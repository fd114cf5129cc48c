"""The deal tables are the most written tables (every edit, every import): each index on
them must earn its upkeep, so none may be a leading prefix of another index."""

from __future__ import annotations

import pytest
from django.db import connection

from apps.crm.models import Opportunity, OpportunityHistory

pytestmark = pytest.mark.django_db


def _indexes(table: str) -> dict[str, tuple[list[str], bool]]:
    """Index name -> (columns in order, unique) of ``table`` as the database has them."""
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, table)
    return {
        name: (info["columns"], bool(info["unique"]))
        for name, info in found.items()
        if info["index"] and info["columns"] and not info["primary_key"]
    }


@pytest.mark.parametrize("model", [Opportunity, OpportunityHistory])
def test_no_plain_index_is_a_prefix_of_another(model):
    indexes = _indexes(model._meta.db_table)
    redundant = [
        (name, other)
        for name, (columns, unique) in indexes.items()
        if not unique
        for other, (longer, _) in indexes.items()
        if other != name
        # a pattern-ops twin (LIKE lookups on Postgres) is a different index, not a prefix
        and not other.endswith("_like")
        and not name.endswith("_like")
        and len(longer) > len(columns)
        and longer[: len(columns)] == columns
    ]
    assert redundant == []


def test_the_composite_indexes_the_selectors_need_are_there():
    opportunity = {tuple(c) for c, _ in _indexes(Opportunity._meta.db_table).values()}
    history = {tuple(c) for c, _ in _indexes(OpportunityHistory._meta.db_table).values()}
    assert {("owner_id", "close_date"), ("stage_id", "close_date")} <= opportunity
    assert ("opportunity_id", "changed_at") in history
