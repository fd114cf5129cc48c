"""The import mapping: which source column feeds which field, how source values translate
to ours, defaults for empty cells, the date and number format, the file encoding and which
missing references the import may create.

A mapping is a JSON document (see docs/imports.md), so it can be saved, downloaded and
reused. This module is pure Python (no Django import): parsing it never touches the database.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apps.imports.schema import CREATABLE, KINDS, KindSpec

#: The version written into every mapping document, so a future format can be told apart.
FORMAT_VERSION = 1

DECIMAL_SEPARATORS = (".", ",")
THOUSANDS_SEPARATORS = ("", ",", ".", " ", "'")
_ALLOWED_KEYS = frozenset(
    {
        "version",
        "kind",
        "columns",
        "values",
        "defaults",
        "date_format",
        "decimal_separator",
        "thousands_separator",
        "encoding",
        "sheet",
        "create_missing",
    }
)


class MappingError(ValueError):
    """A mapping document that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ImportMapping:
    """How one source file maps onto one import kind.

    - ``columns``: our field name -> source column header. A field left out is read from
      the column of its own name (the identity mapping), if the file has one.
    - ``values``: our field name -> {source value: our value}, applied to the raw cell
      before it is converted (e.g. stage "Closed Won" -> "Won").
    - ``defaults``: our field name -> the value used when the cell is empty or the
      column is absent.
    - ``date_format``: a ``strptime`` format for every date field (ISO by default).
    - ``create_missing``: which missing references the import may create (see
      :data:`apps.imports.schema.CREATABLE`); ``None`` means the kind's own default.
    """

    kind: str
    columns: dict[str, str] = field(default_factory=dict)
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    date_format: str = "%Y-%m-%d"
    decimal_separator: str = "."
    thousands_separator: str = ""
    encoding: str = "utf-8"
    sheet: str = ""
    create_missing: tuple[str, ...] | None = None

    @property
    def spec(self) -> KindSpec:
        return KINDS[self.kind]

    def column_for(self, field_name: str) -> str:
        return self.columns.get(field_name, field_name)

    def may_create(self, reference: str) -> bool:
        allowed = self.spec.default_create if self.create_missing is None else self.create_missing
        return reference in allowed

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "kind": self.kind,
            "columns": dict(self.columns),
            "values": {k: dict(v) for k, v in self.values.items()},
            "defaults": dict(self.defaults),
            "date_format": self.date_format,
            "decimal_separator": self.decimal_separator,
            "thousands_separator": self.thousands_separator,
            "encoding": self.encoding,
            "sheet": self.sheet,
            "create_missing": None if self.create_missing is None else list(self.create_missing),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, ensure_ascii=False)

    def replace(self, **changes: Any) -> ImportMapping:
        data = {**self.as_dict(), **changes}
        return mapping_from_dict(data, kind=self.kind)


def identity_mapping(kind: str) -> ImportMapping:
    """Columns named like our fields, ISO dates, UTF-8: what the API and templates use."""
    if kind not in KINDS:
        raise MappingError(f"Unknown import kind {kind!r}; use one of {', '.join(KINDS)}.")
    return ImportMapping(kind=kind)


def _string_dict(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise MappingError(f"{where} must be an object of names to text.")
    out: dict[str, str] = {}
    for key, item in value.items():
        if item is None:
            continue
        if not isinstance(item, str | int | float) or isinstance(item, bool):
            raise MappingError(f"{where}.{key} must be text, got {type(item).__name__}.")
        out[str(key)] = str(item)
    return out


def mapping_from_dict(data: Any, *, kind: str | None = None) -> ImportMapping:
    """Build and check a mapping from its JSON form. ``kind`` (the kind being imported)
    wins when the document names none and must agree when it names one."""
    if not isinstance(data, dict):
        raise MappingError("A mapping must be a JSON object.")
    unknown = set(data) - _ALLOWED_KEYS
    if unknown:
        raise MappingError(f"Unknown mapping key(s): {', '.join(sorted(unknown))}.")
    doc_kind = data.get("kind") or kind
    if doc_kind not in KINDS:
        raise MappingError(f"Unknown import kind {doc_kind!r}; use one of {', '.join(KINDS)}.")
    if kind is not None and doc_kind != kind:
        raise MappingError(f"This mapping is for {doc_kind}, not {kind}.")
    spec = KINDS[doc_kind]
    columns = _string_dict(data.get("columns") or {}, "columns")
    defaults = _string_dict(data.get("defaults") or {}, "defaults")
    raw_values = data.get("values") or {}
    if not isinstance(raw_values, dict):
        raise MappingError("values must be an object of field -> {source value: our value}.")
    values = {name: _string_dict(v, f"values.{name}") for name, v in raw_values.items()}
    for where, names in (("columns", columns), ("defaults", defaults), ("values", values)):
        bad = [name for name in names if name not in spec.fields]
        if bad:
            raise MappingError(
                f"{where} names unknown field(s) for {doc_kind}: {', '.join(sorted(bad))}; "
                f"fields are {', '.join(spec.fields)}."
            )
    date_format = str(data.get("date_format") or "%Y-%m-%d")
    if "%" not in date_format:
        raise MappingError(f"date_format {date_format!r} has no strptime directive, e.g. %d/%m/%Y.")
    try:
        datetime.strptime(datetime(2024, 12, 31).strftime(date_format), date_format)
    except ValueError:
        raise MappingError(f"date_format {date_format!r} cannot read back its own dates.") from None
    decimal_separator = str(data.get("decimal_separator") or ".")
    thousands_separator = str(data.get("thousands_separator") or "")
    if decimal_separator not in DECIMAL_SEPARATORS:
        raise MappingError("decimal_separator must be '.' or ','.")
    if thousands_separator not in THOUSANDS_SEPARATORS:
        raise MappingError("thousands_separator must be empty, ',', '.', ' ' or an apostrophe.")
    if thousands_separator == decimal_separator:
        raise MappingError("thousands_separator and decimal_separator must differ.")
    encoding = str(data.get("encoding") or "utf-8")
    try:
        "".encode(encoding)
    except LookupError:
        raise MappingError(f"Unknown encoding {encoding!r}, e.g. utf-8, cp1252, latin-1.") from None
    create = data.get("create_missing")
    create_missing: tuple[str, ...] | None
    if create is None:
        create_missing = None
    else:
        if not isinstance(create, list) or not all(isinstance(c, str) for c in create):
            raise MappingError("create_missing must be a list of reference names.")
        bad = sorted(set(create) - set(spec.creatable))
        if bad:
            allowed = ", ".join(spec.creatable) or "nothing"
            raise MappingError(
                f"create_missing: {doc_kind} cannot create {', '.join(bad)} (it may create "
                f"{allowed})."
            )
        create_missing = tuple(sorted(set(create)))
    return ImportMapping(
        kind=doc_kind,
        columns=columns,
        values=values,
        defaults=defaults,
        date_format=date_format,
        decimal_separator=decimal_separator,
        thousands_separator=thousands_separator,
        encoding=encoding,
        sheet=str(data.get("sheet") or ""),
        create_missing=create_missing,
    )


def mapping_from_json(text: str | bytes, *, kind: str | None = None) -> ImportMapping:
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MappingError(f"The mapping is not valid JSON: {exc}.") from None
    return mapping_from_dict(data, kind=kind)


def _normalise(header: str) -> str:
    return re.sub(r"[^a-z0-9]", "", header.lower())


def suggest_columns(kind: str, headers: list[str]) -> dict[str, str]:
    """Guess which header feeds which field: an exact name, then a known synonym, compared
    without case, spaces or punctuation. Each header is used at most once."""
    spec = KINDS[kind]
    by_norm: dict[str, str] = {}
    for header in headers:
        by_norm.setdefault(_normalise(header), header)
    suggestion: dict[str, str] = {}
    used: set[str] = set()
    for name, field_spec in spec.fields.items():
        for candidate in (name, field_spec.label, *field_spec.synonyms):
            header = by_norm.get(_normalise(candidate))
            if header is not None and header not in used:
                suggestion[name] = header
                used.add(header)
                break
    return suggestion


__all__ = [
    "CREATABLE",
    "FORMAT_VERSION",
    "ImportMapping",
    "MappingError",
    "identity_mapping",
    "mapping_from_dict",
    "mapping_from_json",
    "suggest_columns",
]
