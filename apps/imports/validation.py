"""Cell conversion and reference resolution: the one validation used by the CLI, the
wizard, the Celery task and the API (through :func:`apps.imports.services.rows_import`).

Validation never writes. Pass 1 turns each row's cells into typed values (collecting
every bad cell); pass 2 resolves references (owner, account, stage, ...) against lookups
loaded once per import, so a million rows cost a handful of queries.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from itertools import islice, repeat
from operator import itemgetter
from typing import Any

from apps.imports.mapping import ImportMapping
from apps.imports.parsers import RowShapeError
from apps.imports.schema import FieldSpec

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")
ISO_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
COUNTRY_RE = re.compile(r"^[A-Z]{2}$")
TRUE_WORDS = frozenset({"1", "true", "yes", "y", "t"})
FALSE_WORDS = frozenset({"0", "false", "no", "n", "f"})


@dataclass(frozen=True)
class RowError:
    """One problem: ``line`` in the file (header = 1) or position in the API list,
    ``field`` the field concerned (None for the whole row or file)."""

    line: int
    field: str | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message}


class CellError(ValueError):
    """A cell that cannot become its field's value; the message names the value."""


@dataclass(frozen=True)
class NewRef:
    """A reference to a record the import will create (allowed by the mapping)."""

    target: str  # account, product, user, team, region
    key: str  # the cell text that names it
    creates: str  # the CREATABLE entry that allowed it


def _human_format(date_format: str) -> str:
    return (
        date_format.replace("%Y", "YYYY")
        .replace("%m", "MM")
        .replace("%d", "DD")
        .replace("%y", "YY")
        .replace("%b", "Mon")
    )


def _formula_hint(text: str) -> str:
    if text.startswith("="):
        return " (a formula is imported as text and never evaluated)"
    return ""


def to_text(value: Any) -> str:
    """A cell as text: XLSX numbers that are whole lose their '.0'; dates become ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value).strip()


def convert_decimal(value: Any, spec: FieldSpec, mapping: ImportMapping) -> Decimal:
    if isinstance(value, bool):
        raise CellError(f"{value!r} is not a number.")
    if isinstance(value, int | Decimal):
        number = Decimal(value)
    elif isinstance(value, float):
        number = Decimal(repr(value))
    else:
        text = str(value).strip().replace("\u00a0", "")
        cleaned = text
        if mapping.thousands_separator:
            cleaned = cleaned.replace(mapping.thousands_separator, "")
        if mapping.decimal_separator != ".":
            cleaned = cleaned.replace(mapping.decimal_separator, ".")
        try:
            number = Decimal(cleaned)
        except InvalidOperation:
            raise CellError(f"{text!r} is not a number{_formula_hint(text)}.") from None
    if not number.is_finite():
        raise CellError(f"{value!r} is not a finite number.")
    exponent = number.as_tuple().exponent
    if (
        isinstance(exponent, int)
        and exponent < -spec.places
        and number != number.quantize(Decimal(1).scaleb(-spec.places))
    ):
        raise CellError(f"{number} has more than {spec.places} decimal places.")
    if spec.minimum is not None:
        if spec.exclusive_minimum and number <= spec.minimum:
            raise CellError(f"{number} must be more than {spec.minimum}.")
        if number < spec.minimum:
            if spec.minimum == 0:
                raise CellError(f"negative amount {number}: must be zero or more.")
            raise CellError(f"{number} is below the minimum {spec.minimum}.")
    if spec.maximum is not None and number > spec.maximum:
        raise CellError(f"{number} is above the maximum {spec.maximum}.")
    if spec.places < 10:
        number = number.quantize(Decimal(1).scaleb(-spec.places))
    return number


def convert_int(value: Any, spec: FieldSpec) -> int:
    text = to_text(value)
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise CellError(f"{text!r} is not a whole number{_formula_hint(text)}.") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise CellError(f"{text!r} is not a whole number.")
    result = int(number)
    low, high = spec.minimum, spec.maximum
    if (low is not None and result < low) or (high is not None and result > high):
        raise CellError(f"{result} is out of range {low}-{high}.")
    return result


def convert_date(value: Any, mapping: ImportMapping) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = to_text(value)
    try:
        if mapping.date_format == "%Y-%m-%d" and ISO_DATE_RE.match(text):
            # Same result as strptime for YYYY-MM-DD, about fifty times faster.
            return dt.date.fromisoformat(text)
        return dt.datetime.strptime(text, mapping.date_format).date()
    except ValueError:
        shown = _human_format(mapping.date_format)
        raise CellError(
            f"{text!r} is not a date in the format {shown}{_formula_hint(text)}."
        ) from None


def convert_month(value: Any) -> dt.date:
    if isinstance(value, dt.date):
        return dt.date(value.year, value.month, 1)
    text = to_text(value)
    match = MONTH_RE.match(text)
    if not match or not 1 <= int(match.group(2)) <= 12:
        raise CellError(f"{text!r} is not a month; use YYYY-MM, e.g. 2025-03.")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def _enum_key(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def convert_cell(name: str, spec: FieldSpec, value: Any, mapping: ImportMapping) -> Any:
    """One non-empty cell to its field's type; raises :class:`CellError`."""
    kind = spec.type
    if kind == "decimal":
        return convert_decimal(value, spec, mapping)
    if kind == "int":
        return convert_int(value, spec)
    if kind == "date":
        return convert_date(value, mapping)
    if kind == "month":
        return convert_month(value)
    text = to_text(value)
    if kind == "text":
        if spec.max_length and len(text) > spec.max_length:
            raise CellError(f"is {len(text)} characters long; at most {spec.max_length} fit.")
        if name == "country":
            text = text.upper()
            if not COUNTRY_RE.match(text):
                raise CellError(f"{text!r} is not a two-letter ISO country code.")
        return text
    if kind == "email":
        if not EMAIL_RE.match(text) or len(text) > 254:
            raise CellError(f"{text!r} is not an e-mail address.")
        return text.lower()
    if kind == "currency":
        code = text.upper()
        if not CURRENCY_RE.match(code):
            raise CellError(f"bad currency code {text!r}: use a three-letter ISO 4217 code.")
        return code
    if kind == "bool":
        word = text.lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
        raise CellError(f"{text!r} is not yes/no.")
    if kind == "enum":
        key = _enum_key(text)
        if key in spec.choices:
            return key
        raise CellError(
            f"unknown {name.replace('_', ' ')} {text!r}; use one of {', '.join(spec.choices)}."
        )
    if kind == "ref":
        if len(text) > 254:
            raise CellError(f"is {len(text)} characters long, too long for a reference.")
        return text
    raise CellError(f"unsupported field type {kind}.")  # a schema bug, not user input


@dataclass
class ReadResult:
    """Pass 1: the typed records (one dict per good row, with its line) and every error."""

    present: frozenset[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows_seen: int = 0


def resolve_columns(
    headers: Sequence[str], mapping: ImportMapping
) -> tuple[dict[str, int], list[RowError]]:
    """Which header position feeds each field, and the header problems (missing columns
    for required fields, a mapping naming a column the file lacks)."""
    spec = mapping.spec
    positions = {h.strip().lower(): i for i, h in enumerate(headers) if h.strip()}
    columns: dict[str, int] = {}
    errors: list[RowError] = []
    for name, field_spec in spec.fields.items():
        column = mapping.column_for(name)
        index = positions.get(column.strip().lower())
        if index is not None:
            columns[name] = index
            continue
        explicit = name in mapping.columns
        if explicit:
            errors.append(
                RowError(1, name, f"missing column {column!r} (the mapping reads {name} from it).")
            )
        elif field_spec.required and name not in mapping.defaults:
            errors.append(RowError(1, name, f"missing column {column!r} (required)."))
    return columns, errors


def mapping_value_maps(mapping: ImportMapping) -> dict[str, dict[str, Any]]:
    """The mapping's value maps as :func:`cell_outcome` reads them: by field, the source
    value (trimmed, lower case) -> our value."""
    return {
        name: {k.strip().lower(): v for k, v in table.items()}
        for name, table in mapping.values.items()
    }


def read_records(
    headers: Sequence[str],
    rows: Iterable[tuple[int, Any]],
    mapping: ImportMapping,
    *,
    progress: Any = None,
) -> ReadResult:
    """Pass 1 over the rows: map values, apply defaults, convert every cell."""
    spec = mapping.spec
    columns, header_errors = resolve_columns(headers, mapping)
    present = frozenset(set(columns) | set(mapping.defaults))
    result = ReadResult(present=present, errors=header_errors)
    if header_errors:
        return result
    value_maps = mapping_value_maps(mapping)
    plan = [
        (
            name,
            field_spec,
            columns.get(name),
            value_maps.get(name),
            mapping.defaults.get(name, ""),
        )
        for name, field_spec in spec.fields.items()
        if name in present
    ]
    # The rows are converted column by column, a batch at a time. The outcome of a cell
    # depends on its text alone, and most columns repeat a few values (owners, stages,
    # dates, currencies): each distinct text is converted once and then looked up.
    steps = [(*step, {}) for step in plan]
    keys = ("_line", *(step[0] for step in plan))
    iterator = iter(rows)
    width = len(headers)
    while batch := list(islice(iterator, READ_BATCH_ROWS)):
        lines: list[int] | tuple[int, ...]
        cells_of: list[Any] | tuple[Any, ...]
        lines = list(map(_first, batch))
        cells_of = list(map(_second, batch))
        if RowShapeError in set(map(type, cells_of)):
            lines, cells_of = [], []
            for line, cells in batch:
                if isinstance(cells, RowShapeError):
                    result.errors.append(RowError(line, None, cells.message))
                else:
                    lines.append(line)
                    cells_of.append(cells)
        result.rows_seen += len(batch)
        # One transposition in C instead of one pass per column (every row has the
        # header's width: parsers pad or refuse the others).
        by_column = list(zip(*cells_of, strict=True)) if cells_of else [()] * width
        bad: set[int] = set()
        columns_out = [lines]
        for name, field_spec, index, values, default, memo in steps:
            raw = by_column[index] if index is not None else None
            out = _convert_column(name, field_spec, raw, len(lines), values, default, memo, mapping)
            if out[1]:
                for i, outcome in enumerate(out[0]):
                    if outcome is MISSING_REQUIRED:
                        result.errors.append(RowError(lines[i], name, "missing required value."))
                        bad.add(i)
                    elif isinstance(outcome, CellError):
                        result.errors.append(RowError(lines[i], name, str(outcome)))
                        bad.add(i)
            columns_out.append(out[0])
        rows_out: Iterator[tuple[Any, ...]] = zip(*columns_out, strict=True)
        if bad:
            rows_out = (row for i, row in enumerate(rows_out) if i not in bad)
        # map/zip/dict run in C: no Python frame per record.
        result.records.extend(map(dict, map(zip, repeat(keys), rows_out)))
        if progress is not None:
            progress(result.rows_seen)
    return result


_first = itemgetter(0)
_second = itemgetter(1)


#: Rows converted per batch (column by column); bounds the memory of the raw cells.
READ_BATCH_ROWS = 20_000


def _convert_column(
    name: str,
    field_spec: FieldSpec,
    raw: Sequence[Any] | None,
    size: int,
    values: dict[str, Any] | None,
    default: Any,
    memo: dict[Any, Any],
    mapping: ImportMapping,
) -> tuple[list[Any], bool]:
    """One field's outcomes for a batch of ``size`` rows (``raw``: the column's cells, None
    when the file has no such column), and whether any of them is an error.
    Only text and absent cells are remembered: 1, 1.0 and True are equal dict keys."""
    if raw is None:
        outcome = cell_outcome(name, field_spec, None, values, default, mapping)
        return [outcome] * size, is_error(outcome)
    if field_spec.type == "text" and values is None and name != "country":
        # Plain text, all of it present: the value is the stripped text if it fits.
        try:
            texts = list(map(str.strip, raw))
        except TypeError:  # a number, a date or an absent value: one by one
            texts = None
        limit = field_spec.max_length
        if texts and "" not in texts and (not limit or max(map(len, texts)) <= limit):
            return texts, False
    if plain_decimals(field_spec, values, mapping):
        # Amounts written plainly (digits, at most ``places`` decimals): no check can fail.
        try:
            texts = list(map(str.strip, raw))
        except TypeError:  # not all text: one by one
            texts = None
        pattern = PLAIN_DECIMAL[field_spec.places]
        if texts and all(map(pattern.fullmatch, texts)):
            step = Decimal(1).scaleb(-field_spec.places)
            return [Decimal(text).quantize(step) for text in texts], False
    try:
        out = list(map(memo.get, raw, repeat(_UNSEEN, len(raw))))
    except TypeError:  # an unhashable value (a JSON list or object from the API)
        out = [_UNSEEN] * len(raw)
    # A remembered error (its key is in ``memo`` under _ERRORS) may be among the hits.
    has_error = _ERRORS in memo and any(map(is_error, out))
    if _UNSEEN not in out:
        return out, has_error
    for i, outcome in enumerate(out):
        if outcome is not _UNSEEN:
            continue
        value = raw[i]
        if value is None or value.__class__ is str:
            outcome = memo.get(value, _UNSEEN)
            if outcome is _UNSEEN:
                outcome = cell_outcome(name, field_spec, value, values, default, mapping)
                if len(memo) < MEMO_MAX_VALUES:
                    memo[value] = outcome
                    if is_error(outcome):
                        memo[_ERRORS] = True
        else:
            outcome = cell_outcome(name, field_spec, value, values, default, mapping)
        out[i] = outcome
        if not has_error and is_error(outcome):
            has_error = True
    return out, has_error


#: Non-negative decimals of at most 16 integer digits and N decimals, by N.
PLAIN_DECIMAL = {n: re.compile(rf"[0-9]{{1,16}}(?:\.[0-9]{{1,{n}}})?") for n in range(1, 10)}


def plain_decimals(
    field_spec: FieldSpec, values: dict[str, Any] | None, mapping: ImportMapping
) -> bool:
    """Whether every plainly written number is valid for this field (zero or more, with no
    maximum below the largest plain number, the mapping's decimal point a dot), so that
    such a column needs no checks."""
    if field_spec.type != "decimal" or not 1 <= field_spec.places < 10:
        return False
    largest = Decimal(10**16) - Decimal(1).scaleb(-field_spec.places)  # 16 digits, N decimals
    return (
        values is None
        and field_spec.minimum == 0
        and not field_spec.exclusive_minimum
        and (field_spec.maximum is None or field_spec.maximum >= largest)
        and mapping.decimal_separator == "."
        and mapping.thousands_separator != "."
    )


def is_error(outcome: Any) -> bool:
    return outcome is MISSING_REQUIRED or isinstance(outcome, CellError)


#: Distinct texts remembered per column; a column of unique values (ids, names, amounts)
#: stops being remembered there, so memory stays bounded.
MEMO_MAX_VALUES = 50_000
_UNSEEN = object()
#: The key under which a column's memo notes that it holds an error outcome.
_ERRORS = object()
#: A required cell that is empty (after values and defaults).
MISSING_REQUIRED = object()


def cell_outcome(
    name: str,
    field_spec: FieldSpec,
    raw: Any,
    values: dict[str, Any] | None,
    default: Any,
    mapping: ImportMapping,
) -> Any:
    """One cell through the mapping's values and defaults to its field's value: the value,
    None (an empty optional cell), ``MISSING_REQUIRED`` or the :class:`CellError`."""
    if isinstance(raw, str):
        raw = raw.strip()
    if values is not None and raw not in (None, ""):
        mapped = values.get(to_text(raw).lower())
        if mapped is not None:
            raw = mapped
    if raw is None or raw == "":
        raw = default
    if raw == "":
        return MISSING_REQUIRED if field_spec.required else None
    try:
        return convert_cell(name, field_spec, raw, mapping)
    except CellError as exc:
        return exc
