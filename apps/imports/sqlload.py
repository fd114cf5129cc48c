"""Large CSV files of new deals, checked and loaded set-based inside PostgreSQL.

The row-by-row import (:func:`apps.imports.validation.read_records`, then
:func:`apps.imports.writers.plan_opportunities`) converts every cell in Python: most of a
large import's time. For a large CSV file of deals that are all new, on PostgreSQL, this
module does the same work set-based:

1. The file is ``COPY``-ed as it is into a temporary table of text columns.
2. Every column whose values repeat (account, owner, product, stage with forecast
   category, currency, deal type, source, dates, lost reason) is read back once as its
   distinct values (one ``GROUPING SETS`` pass), and each distinct value goes through the
   very functions the row-by-row import uses: :func:`~apps.imports.validation.cell_outcome`
   (value map, default, conversion) and :class:`~apps.imports.writers.Resolver`.
3. The columns of unique values (external id, name, amount) are checked in SQL, and
   strictly: a value is taken only when it is exactly what Python would make of it (text
   with no surrounding white space that fits; an amount written plainly, as
   ``validation`` reads it without a check).
4. A temporary view joins the raw rows to the converted values, and
   :func:`~apps.imports.writers.load_staged_deals` writes the deals and their history rows
   as the COPY path does.

Whenever anything is not certain (a bad cell or a merely unusual one, a deal that is
already stored, a duplicate external id, a quote character, a constraint the database
enforces), everything done here is rolled back to a savepoint and ``None`` returned: the
caller then runs the row-by-row import, which reports every bad row with its line or
upserts the stored deals. So this path writes exactly what the row-by-row import would,
never reports an error of its own, and never accepts a row that import would refuse.
tests/imports/test_sqlload.py compares the two on good and on malformed files.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg2.extras import execute_values

from apps.crm.models import Opportunity
from apps.crm.services import new_deal_values
from apps.imports import writers
from apps.imports.mapping import ImportMapping
from apps.imports.parsers import XLSX_MAGIC, FileProblem, check_headers, pick_delimiter
from apps.imports.schema import KINDS
from apps.imports.validation import (
    CellError,
    NewRef,
    cell_outcome,
    is_error,
    mapping_value_maps,
    plain_decimals,
    resolve_columns,
)

logger = logging.getLogger(__name__)

#: Files with fewer data rows than this are imported row by row (the set-based load has a
#: fixed cost of a dozen statements); settings.IMPORTS_SQL_LOAD_MIN_ROWS overrides.
MIN_ROWS = 10_000
#: Checked in SQL row by row: their values are unique per deal.
GUARDED = ("external_id", "name", "amount")
#: Converted from the distinct values of their columns, in this order (that of
#: writers.plan_opportunities' reference resolution: records the import creates get
#: their ids in the same order). A group's fields are converted together.
GROUPS: tuple[tuple[str, ...], ...] = (
    ("account",),
    ("owner",),
    ("product",),
    ("stage", "forecast_category"),
    ("currency",),
    ("deal_type",),
    ("source",),
    ("created_date",),
    ("close_date",),
    ("lost_reason",),
)
#: Code points that Python's str.strip() removes besides those up to U+0020 (space): a
#: guarded text starting or ending with one of them is left to the row-by-row import.
NON_ASCII_SPACES = (0x85, 0xA0, 0x1680, *range(0x2000, 0x200B), 0x2028, 0x2029, 0x202F)
NON_ASCII_SPACES += (0x205F, 0x3000)
#: Above this many values in one lookup table, the load sorts the joined rows back into
#: file order (a hash table that large may be split into batches, which reorders rows;
#: with the load's work_mem of 64 MB, it takes about a million values).
ORDER_LOOKUP_ROWS = 100_000
RAW_TABLE = "import_opportunity_raw"
LOOKUP_TABLE = "import_opportunity_lookup_{}"
_DELIMITERS = {",": "','", ";": "';'", "\t": "E'\\t'"}


@dataclass(frozen=True)
class Loaded:
    """What a set-based load wrote: every row of the file is a new deal."""

    rows: int


class _Doubt(Exception):
    """Something this path cannot vouch for: roll back and import row by row."""


def min_rows() -> int:
    """The fewest data rows a file must have to be loaded set-based. Never fewer than the
    row-by-row import writes through COPY too: smaller loads go through apps.crm.services
    deal by deal, which also queues per-deal follow-up work (forecasts) that a bulk load
    does not."""
    setting = int(getattr(settings, "IMPORTS_SQL_LOAD_MIN_ROWS", MIN_ROWS))
    return max(setting, writers.SERVICE_PATH_MAX_ROWS + 1)


def new_deals_load(
    *,
    data: bytes,
    filename: str,
    mapping: ImportMapping,
    user: Any,
    source: str,
    progress: Callable[[str, int, int], None] | None = None,
) -> Loaded | None:
    """Load the CSV file ``data`` of new deals set-based, in a savepoint of the caller's
    transaction; ``None`` (nothing written) when the file is not one this path can vouch
    for, and the caller must import it row by row."""
    if connection.vendor != "postgresql" or not getattr(settings, "IMPORTS_SQL_LOAD", True):
        return None
    try:
        header, delimiter, rows = _plain_csv(data, filename, mapping)
        if rows < min_rows():
            return None
        with transaction.atomic():
            loaded = _load(data, header, delimiter, rows, mapping, user, source, progress)
        logger.info("%s: %d new deals loaded set-based", filename, loaded.rows)
        return loaded
    except _Doubt as exc:
        logger.info("%s: imported row by row (%s)", filename, exc)
    except DatabaseError as exc:
        logger.info("%s: imported row by row (the database said: %s)", filename, exc)
    return None


def _plain_csv(data: bytes, filename: str, mapping: ImportMapping) -> tuple[list[str], str, int]:
    """The header, delimiter and number of data rows of a CSV file that PostgreSQL's COPY
    reads exactly as apps.imports.parsers does: UTF-8, no quote character (the parser's
    own shortcut condition), no NUL, carriage returns only in CRLF line ends."""
    if not filename.lower().endswith(".csv") or data.startswith(XLSX_MAGIC):
        raise _Doubt("not a CSV file")
    if mapping.encoding.lower().replace("_", "-") not in ("utf-8", "utf8"):
        raise _Doubt(f"encoding {mapping.encoding}")
    if b'"' in data or b"\x00" in data or data.count(b"\r") != data.count(b"\r\n"):
        raise _Doubt("quotes, NUL or a lone carriage return")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _Doubt("not UTF-8") from None
    limit = csv.field_size_limit()
    if len(data) > limit and max(map(len, data.split(b"\n"))) > limit:
        # The row-by-row import reads such a line with the csv module, which refuses a
        # cell longer than its limit; COPY has none.
        raise _Doubt("a line longer than the csv module's field limit")
    first_line = text.split("\n", 1)[0]
    delimiter = pick_delimiter(first_line)
    try:
        header = check_headers(first_line.removesuffix("\r").split(delimiter))
    except FileProblem as exc:
        raise _Doubt(exc.message) from None
    # One line per record (no quotes): every newline ends one, and so does the end of a
    # file without a final newline. COPY must then find exactly these rows (a line "\.",
    # its end-of-data mark, would stop it early; a blank line it refuses).
    rows = text.count("\n") + (0 if text.endswith("\n") else 1) - 1
    return header, delimiter, rows


def _load(
    data: bytes,
    header: list[str],
    delimiter: str,
    rows: int,
    mapping: ImportMapping,
    user: Any,
    source: str,
    progress: Callable[[str, int, int], None] | None,
) -> Loaded:
    spec = mapping.spec
    columns, header_errors = resolve_columns(header, mapping)
    if header_errors:
        raise _Doubt(header_errors[0].message)
    for name in GUARDED:
        if name not in columns or name in mapping.defaults or name in mapping.values:
            raise _Doubt(f"{name}: no column, or a default or value map")
    amount = spec.fields["amount"]
    if not plain_decimals(amount, None, mapping):
        raise _Doubt("amounts are not plain decimals for this mapping")
    if progress is not None:
        progress("reading", 0, rows)
    raw_columns = [f"c{i}" for i in range(len(header))]
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_encoding")
        if cursor.fetchone()[0] != "UTF8":
            # length() and ascii() count bytes, not characters, on other encodings.
            raise _Doubt("the database's encoding is not UTF8")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {RAW_TABLE} ("
            + ", ".join(f"{c} text" for c in raw_columns)
            + ") ON COMMIT DROP"
        )
        with connection.wrap_database_errors:  # psycopg2's errors as Django's
            cursor.cursor.copy_expert(
                f"COPY {RAW_TABLE} FROM STDIN WITH (FORMAT csv, HEADER true, "
                f"DELIMITER {_DELIMITERS[delimiter]}, FORCE_NOT_NULL ({', '.join(raw_columns)}), "
                "ENCODING 'UTF8')",
                io.BytesIO(data),
            )
        copied = cursor.rowcount
        if copied != rows:
            raise _Doubt(f"COPY read {copied} rows where the file has {rows} lines")
        # The planner needs the raw rows' statistics (distinct values of each column) to
        # join them to the converted values by hash instead of by nested loops.
        cursor.execute(f"ANALYZE {RAW_TABLE}")
        ctx = writers.Context(
            mapping=mapping,
            user=user,
            source=source,
            now=timezone.now(),
            present=frozenset(set(columns) | set(mapping.defaults)),
        )
        # No deal may be written between this check and the load (as in the row-by-row
        # import of a large file: other writers of the deal table wait, readers go on).
        cursor.execute(f"LOCK TABLE {Opportunity._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {RAW_TABLE} r JOIN {Opportunity._meta.db_table} o "
            f"ON o.external_id = r.c{columns['external_id']})"
        )
        if cursor.fetchone()[0]:
            raise _Doubt("some deals are already stored, and updates go row by row")
        if progress is not None:
            progress("checking", rows, rows)
        values, resolver = _group_values(cursor, columns, ctx)
        created = writers.create_new_refs(resolver.new_refs.values())
        expressions, joins, ids, close_dates = _view_parts(cursor, columns, values, created)
        stage = writers.STAGE_RELATION
        # New deals get their ids in file order, as in the row-by-row import. The raw table
        # probes the lookups' hash tables in its own order; a lookup too large for one
        # in-memory batch would shuffle the rows, so then they are sorted back.
        largest = max((len(table) for table in values.values()), default=0)
        order = " ORDER BY r.ctid" if largest > ORDER_LOOKUP_ROWS else ""
        cursor.execute(
            f"CREATE TEMPORARY VIEW {stage} AS SELECT NULL::bigint AS id, "
            + ", ".join(f"{expression} AS {attr}" for attr, expression in expressions.items())
            + f", 'created'::text AS changed_fields FROM {RAW_TABLE} r {' '.join(joins)}"
            + order
        )
        if progress is not None:
            progress("writing", rows, rows)
        inserted = writers.load_staged_deals(
            cursor, ctx, ids=ids, total=rows, new=rows, updated_tracked=0
        )
        if inserted != rows:
            raise _Doubt(f"{inserted} deals written for {rows} rows")
        cursor.execute(f"DROP VIEW {stage}")
        cursor.execute(f"DROP TABLE {RAW_TABLE}")
        for n in range(len(GROUPS)):
            cursor.execute(f"DROP TABLE IF EXISTS {LOOKUP_TABLE.format(n)}")
    account_ids, now = ids["account_id"], timezone.localdate(ctx.now)
    transaction.on_commit(
        lambda: writers.rollup_deals(
            close_months=close_dates,
            stage_now=True,
            now=now,
            updated_ids=[],
            stage_updated_ids=[],
            account_ids=account_ids,
        ),
        robust=True,
    )
    return Loaded(rows=rows)


#: By group: the key (the raw texts of the group's columns, in column order) -> the
#: group's values (its attributes, in field order; the stage group adds the category).
GroupValues = dict[int, dict[tuple[str, ...], tuple[Any, ...]]]


def _group_columns(group: tuple[str, ...], columns: dict[str, int]) -> list[int]:
    return sorted({columns[name] for name in group if name in columns})


def _group_values(
    cursor: Any, columns: dict[str, int], ctx: writers.Context
) -> tuple[GroupValues, writers.Resolver]:
    """Every distinct key of every group, converted as writers.plan_opportunities would
    convert it for a new deal; any error or doubt raises :class:`_Doubt`."""
    sets = {tuple(_group_columns(group, columns)) for group in GROUPS} - {()}
    used = sorted({c for key in sets for c in key})
    first_seen: dict[tuple[int, ...], list[tuple[tuple[str, ...], tuple[int, int]]]] = {
        k: [] for k in sets
    }
    if sets:
        grouping = ", ".join(f"c{c}" for c in used)
        cursor.execute(
            f"SELECT GROUPING({grouping}), {grouping}, min(ctid) FROM {RAW_TABLE} "
            "GROUP BY GROUPING SETS ("
            + ", ".join("(" + ", ".join(f"c{c}" for c in key) + ")" for key in sorted(sets))
            + ")"
        )
        by_mask = {
            sum(1 << (len(used) - 1 - used.index(c)) for c in used if c not in key): key
            for key in sets
        }
        for mask, *cells, first in cursor.fetchall():
            key = by_mask[mask]
            # The first row's position (block, line): a tid comes as text, "(12,3)".
            block, line = first.strip("()").split(",")
            position = (int(block), int(line))
            first_seen[key].append((tuple(cells[used.index(c)] for c in key), position))
    mapping = ctx.mapping
    spec = mapping.spec
    value_maps = mapping_value_maps(mapping)
    new_defaults = new_deal_values()
    resolver = writers.Resolver(mapping)
    resolver._table("stage")
    values: GroupValues = {}
    for n, group in enumerate(GROUPS):
        key_columns = _group_columns(group, columns)
        # In the order of the file: a record the import creates takes the spelling of its
        # first mention, as in the row-by-row import.
        seen = first_seen.get(tuple(key_columns), [((), (0, 0))])
        keys = [k for k, _ in sorted(seen, key=_second)]
        table: dict[tuple[str, ...], tuple[Any, ...]] = {}
        for key in keys:
            out = []
            for name in group:
                attr, keep_on_empty, empty = writers.opp_empty_rule(name)
                if name not in ctx.present:
                    out.append(new_defaults.get(attr))
                    continue
                raw = key[key_columns.index(columns[name])] if name in columns else None
                field_spec = spec.fields[name]
                outcome = cell_outcome(
                    name,
                    field_spec,
                    raw,
                    value_maps.get(name),
                    mapping.defaults.get(name, ""),
                    mapping,
                )
                if is_error(outcome):
                    raise _Doubt(f"{name} {raw!r} is not valid")
                if outcome is None:
                    outcome = new_defaults.get(attr) if keep_on_empty else empty
                elif field_spec.type == "ref":
                    try:
                        outcome = resolver.resolve(field_spec.ref, outcome, field_spec.creates)
                    except CellError as exc:
                        raise _Doubt(f"{name} {raw!r}: {exc}") from None
                out.append(outcome)
            if group[0] == "stage":
                out.append(writers.category_for(resolver.stage_outcome[out[0]], out[1]))
            table[key] = tuple(out)
        values[n] = table
    return values, resolver


def _second(pair: tuple[Any, Any]) -> Any:
    return pair[1]


def _view_parts(
    cursor: Any, columns: dict[str, int], values: GroupValues, created: dict[NewRef, int]
) -> tuple[dict[str, str], list[str], dict[str, set[int]], set[dt.date]]:
    """The staging view's expression per deal attribute, its joins, the ids each reference
    column names, and the close dates (for the rollup update)."""
    meta = Opportunity._meta
    expressions: dict[str, str] = {}
    spaces = ", ".join(str(c) for c in NON_ASCII_SPACES)
    for name in ("external_id", "name"):
        column = f"r.c{columns[name]}"
        first, last = f"ascii({column})", f"ascii(right({column}, 1))"
        limit = meta.get_field(name).max_length
        checks = [f"length({column}) BETWEEN 1 AND {limit}", f"{first} > 32", f"{last} > 32"]
        checks += [f"{first} NOT IN ({spaces})", f"{last} NOT IN ({spaces})"]
        expressions[name] = f"CASE WHEN {' AND '.join(checks)} THEN {column} END"
    # An amount is taken when it is PostgreSQL's own spelling of its number (no sign, no
    # exponent, no leading zero or space: "1200.50", "0", "75") with at most the field's
    # decimal places; Python reads such text as the same number. NaN and Infinity have
    # no scale. Anything else ("1e3", "010", "12.345") is left to the row-by-row import.
    amount = f"r.c{columns['amount']}"
    places = KINDS["opportunities"].fields["amount"].places
    expressions["amount"] = (
        f"CASE WHEN {amount}::numeric::text = {amount} AND scale({amount}::numeric) <= {places} "
        f"THEN {amount}::{writers.COPY_COLUMN_TYPES['amount']} END"
    )
    joins: list[str] = []
    ids: dict[str, set[int]] = {column: set() for column, _ in writers.OPP_REFERENCES}
    close_dates: set[dt.date] = set()
    for n, group in enumerate(GROUPS):
        table = {
            key: tuple(created.get(v, v) if isinstance(v, NewRef) else v for v in row)
            for key, row in values[n].items()
        }
        attrs = [writers.OPP_ATTRS[name] for name in group]
        if group[0] == "stage":
            attrs.append("forecast_category")
            attrs[1] = "requested_category"
        for i, attr in enumerate(attrs):
            found = {row[i] for row in table.values()}
            if attr in ids:
                ids[attr] |= found - {None}
            if attr == "close_date":
                close_dates = found
        key_columns = _group_columns(group, columns)
        if not key_columns:
            (row,) = table.values()
            for attr, value in zip(attrs, row, strict=True):
                kind = writers.COPY_COLUMN_TYPES.get(attr, "text")
                expressions[attr] = f"CAST({_literal(cursor, value)} AS {kind})"
            continue
        if len(group) == 1 and _identity(table):
            expressions[attrs[0]] = f"r.c{key_columns[0]}" + (
                "::date" if attrs[0].endswith("_date") else ""
            )
            continue
        lookup = LOOKUP_TABLE.format(n)
        types = [writers.COPY_COLUMN_TYPES.get(a, "varchar(16)") for a in attrs]
        cursor.execute(
            f"CREATE TEMPORARY TABLE {lookup} ("
            + ", ".join([f"k{i} text" for i in range(len(key_columns))])
            + ", "
            + ", ".join(f"v{i} {t}" for i, t in enumerate(types))
            + ") ON COMMIT DROP"
        )
        # Many rows per statement: a column of free text may have as many values as rows.
        with connection.wrap_database_errors:
            execute_values(
                cursor.cursor,
                f"INSERT INTO {lookup} VALUES %s",
                [(*key, *row) for key, row in table.items()],
                page_size=5000,
            )
        cursor.execute(f"ANALYZE {lookup}")
        on = " AND ".join(f"l{n}.k{i} = r.c{c}" for i, c in enumerate(key_columns))
        joins.append(f"JOIN {lookup} l{n} ON {on}")
        for i, attr in enumerate(attrs):
            expressions[attr] = f"l{n}.v{i}"
    expressions.pop("requested_category", None)
    return expressions, joins, ids, close_dates


def _identity(table: dict[tuple[str, ...], tuple[Any, ...]]) -> bool:
    """Whether every value is its raw text (or, for a date, its ISO text), so that the view
    can read the raw column instead of joining a lookup table."""
    for (raw,), (value,) in table.items():
        if isinstance(value, dt.date):
            if value.isoformat() != raw:
                return False
        elif not isinstance(value, str) or value != raw:
            return False
    return True


def _literal(cursor: Any, value: Any) -> str:
    return cursor.mogrify("%s", [value]).decode()
