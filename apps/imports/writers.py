"""Per-kind planning (pass 2 of validation: references, duplicates, cross-field rules,
comparison with what is stored) and writing (only once the whole file is clean).

A plan never writes. :func:`apps.imports.services.rows_import` runs the plan for every row,
and only when no row has an error calls the plan's ``write`` inside one transaction.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import DatabaseError, IntegrityError, OperationalError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate
from apps.crm.models import (
    Account,
    ForecastCategory,
    Opportunity,
    OpportunityHistory,
    Product,
    Stage,
)
from apps.crm.services import (
    KEEP_ON_EMPTY,
    TRACKED_FIELDS,
    UPSERT_ATTRS,
    new_deal_values,
    opportunity_create,
    opportunity_update,
)
from apps.customers.models import NpsResponse, Subscription
from apps.imports.mapping import ImportMapping
from apps.imports.validation import CellError, NewRef, RowError
from apps.org.models import Region, Role, Team, User
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota

#: Up to this many changed deals go through apps.crm.services one by one; above it the
#: bulk path loads them (COPY on Postgres). Both give the same rows (tests/imports).
SERVICE_PATH_MAX_ROWS = 1000
CHUNK = 2000
#: A large Postgres import reads the stored deals with one scan of the table when it
#: holds at most this many times the file's rows, else by external id.
EXISTING_SCAN_FACTOR = 2


@dataclass
class Context:
    """What one import run shares between planning and writing."""

    mapping: ImportMapping
    user: Any
    source: str
    now: dt.datetime
    errors: list[RowError] = field(default_factory=list)
    #: The fields the source supplies (a column or a default); others keep stored values.
    present: frozenset[str] = frozenset()
    #: A dry run writes nothing, so it locks nothing either.
    dry_run: bool = False
    #: Forces the opportunity write path in tests: "services", "bulk" or "copy".
    opportunity_path: str | None = None

    def error(self, line: int, field_name: str | None, message: str) -> None:
        self.errors.append(RowError(line, field_name, message))


@dataclass
class Plan:
    """The outcome of planning: counts now, the writes for later."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    write: Callable[[], None] = lambda: None


def _chunks(values: list[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _full_name(first: str, last: str) -> str:
    return f"{first} {last}".strip()


# --- references ---------------------------------------------------------------------------
class Resolver:
    """Finds referenced records by natural key, loading each table once per import.

    - account and product: external id first, then name (case-insensitive);
    - user: e-mail when the cell has an '@', otherwise full name (case-insensitive);
    - stage and team: name; region: code or name.

    A key matching several records is ambiguous; an unknown key is an error unless the
    mapping allows creating it, in which case every row naming it shares one :class:`NewRef`.
    """

    def __init__(self, mapping: ImportMapping) -> None:
        self.mapping = mapping
        self._tables: dict[str, tuple[dict[str, list[int]], dict[str, list[int]]]] = {}
        self._memo: dict[tuple[str, str, str], Any] = {}
        self.stage_outcome: dict[int, str] = {}
        self.stage_names: dict[int, str] = {}
        self.new_refs: dict[tuple[str, str], NewRef] = {}

    def _table(self, target: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        if target in self._tables:
            return self._tables[target]
        first: dict[str, list[int]] = defaultdict(list)
        second: dict[str, list[int]] = defaultdict(list)
        if target in ("account", "product"):
            model = Account if target == "account" else Product
            for pk, ext, name in model.objects.values_list("id", "external_id", "name"):
                first[ext].append(pk)
                second[name.strip().lower()].append(pk)
        elif target == "user":
            rows = User.objects.values_list("id", "email", "first_name", "last_name")
            for pk, email, first_name, last_name in rows:
                if email:
                    first[email.lower()].append(pk)
                full = _full_name(first_name, last_name).lower()
                if full:
                    second[full].append(pk)
        elif target == "stage":
            for pk, name, outcome in Stage.objects.values_list("id", "name", "outcome"):
                first[name.strip().lower()].append(pk)
                self.stage_outcome[pk] = outcome
                self.stage_names[pk] = name
        elif target == "team":
            for pk, name in Team.objects.values_list("id", "name"):
                first[name.strip().lower()].append(pk)
        elif target == "region":
            for pk, code, name in Region.objects.values_list("id", "code", "name"):
                first[code.strip().lower()].append(pk)
                if pk not in first[name.strip().lower()]:
                    second[name.strip().lower()].append(pk)
        self._tables[target] = (first, second)
        return first, second

    def resolve(self, target: str, key: str, creates: str) -> int | NewRef:
        memo_key = (target, key, creates)
        if memo_key in self._memo:
            found = self._memo[memo_key]
        else:
            found = self._find(target, key, creates)
            self._memo[memo_key] = found
        if isinstance(found, CellError):
            raise found
        return found

    def _find(self, target: str, key: str, creates: str) -> int | NewRef | CellError:
        first, second = self._table(target)
        lowered = key.lower()
        if target in ("account", "product"):
            ids = first.get(key) or second.get(lowered, [])
            how = "name"
        elif target == "user":
            if "@" in key:
                ids, how = first.get(lowered, []), "e-mail"
            else:
                ids, how = second.get(lowered, []), "full name"
        elif target == "region":
            ids, how = first.get(lowered) or second.get(lowered, []), "code or name"
        else:
            ids, how = first.get(lowered, []), "name"
        if len(ids) == 1:
            return ids[0]
        label = {"user": "person"}.get(target, target)
        if len(ids) > 1:
            hint = " use the external id" if target in ("account", "product") else ""
            if target == "user":
                hint = " use the e-mail address"
            return CellError(
                f"ambiguous {label} {key!r}: {len(ids)} records have this {how};{hint}."
                if hint
                else f"ambiguous {label} {key!r}: {len(ids)} records have this {how}."
            )
        if creates and self.mapping.may_create(creates):
            ref_key = (target, lowered)
            if ref_key not in self.new_refs:
                self.new_refs[ref_key] = NewRef(target=target, key=key, creates=creates)
            return self.new_refs[ref_key]
        if target == "stage":
            known = ", ".join(sorted(self.stage_names.values())) or "none yet"
            return CellError(f"unknown stage {key!r}; map it to one of our stages ({known}).")
        extra = f' (or allow "{creates}" in create_missing)' if creates else ""
        return CellError(f"unknown {label} {key!r}: no record has this {how}{extra}.")


def _unique_username(base: str, taken: set[str]) -> str:
    base = re.sub(r"[^\w.@+-]", ".", base.strip().lower())[:140] or "user"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}.{n}"
    taken.add(name)
    return name


def _company_root() -> Team:
    root = Team.objects.filter(kind=Team.Kind.COMPANY, parent=None).order_by("id").first()
    return root or Team.objects.create(name="Company", kind=Team.Kind.COMPANY)


def create_new_refs(
    new_refs: Iterable[NewRef], *, region_for_team: dict[str, Any] | None = None
) -> dict[NewRef, int]:
    """Create what the mapping allowed to create, regions and teams first; ids by ref."""
    ids: dict[NewRef, int] = {}
    refs = list(new_refs)
    for ref in (r for r in refs if r.target == "region"):
        ids[ref] = Region.objects.create(code=ref.key[:16], name=ref.key[:100]).pk
    root = None
    for ref in (r for r in refs if r.target == "team"):
        root = root or _company_root()
        region = (region_for_team or {}).get(ref.key.lower())
        region_id = ids[region] if isinstance(region, NewRef) else region
        ids[ref] = Team.objects.create(name=ref.key[:120], parent=root, region_id=region_id).pk
    for ref in (r for r in refs if r.target == "account"):
        ids[ref] = Account.objects.create(external_id=ref.key[:64], name=ref.key[:200]).pk
    for ref in (r for r in refs if r.target == "product"):
        ids[ref] = Product.objects.create(external_id=ref.key[:64], name=ref.key[:120]).pk
    user_refs = [r for r in refs if r.target == "user"]
    if user_refs:
        taken = set(User.objects.values_list("username", flat=True))
        for ref in user_refs:
            ids[ref] = _new_user(ref.key, ref.creates, taken).pk
    return ids


def _new_user(key: str, creates: str, taken: set[str]) -> User:
    role = Role.MANAGER if creates == "managers" else Role.REP
    if "@" in key:
        email, first, last = key.lower(), "", ""
        username = _unique_username(email, taken)
    else:
        email = ""
        first, _, last = key.partition(" ")
        username = _unique_username(key.replace(" ", "."), taken)
    return User.objects.create(
        username=username,
        email=email,
        first_name=first[:150],
        last_name=last.strip()[:150],
        role=role,
        password=make_password(None),
    )


def _resolve_refs(
    records: list[dict[str, Any]], ctx: Context, resolver: Resolver, names: Iterable[str]
) -> list[dict[str, Any]]:
    """Replace each reference cell by an id or a NewRef; rows with a bad one are dropped
    (their errors recorded, one per bad reference cell).

    Column by column: the resolver is asked once per distinct key (the same key resolves
    the same way on every row), then the outcomes are written back in one pass."""
    spec = ctx.mapping.spec
    bad: set[int] = set()
    for name in names:
        field_spec = spec.fields.get(name)
        if field_spec is None:
            continue
        column = [record.get(name) for record in records]
        outcomes: dict[Any, Any] = {}
        # In the order of the file: a record the import creates takes the spelling of
        # its first mention, and new records get their ids in file order.
        for key in dict.fromkeys(column):
            if key is None or key == "":
                continue  # an empty cell stays empty
            try:
                outcomes[key] = resolver.resolve(field_spec.ref, key, field_spec.creates)
            except CellError as exc:
                outcomes[key] = exc
        failed = {
            key: outcomes.pop(key)
            for key in [key for key, found in outcomes.items() if isinstance(found, CellError)]
        }
        for record, found in zip(records, map(outcomes.get, column), strict=True):
            if found is not None:
                record[name] = found
        if failed:
            for i, key in enumerate(column):
                if key in failed:
                    ctx.error(records[i]["_line"], name, str(failed[key]))
                    bad.add(i)
    if not bad:
        return records
    return [record for i, record in enumerate(records) if i not in bad]


def _dedupe(
    records: list[dict[str, Any]], ctx: Context, key: Callable[[dict[str, Any]], Any], label: str
) -> list[dict[str, Any]]:
    first_line: dict[Any, int] = {}
    good = []
    for record in records:
        k = key(record)
        if k is None:
            good.append(record)
            continue
        if k in first_line:
            ctx.error(
                record["_line"],
                None,
                f"duplicate {label} {_show_key(k)} inside the file "
                f"(first on line {first_line[k]}).",
            )
            continue
        first_line[k] = record["_line"]
        good.append(record)
    return good


def _show_key(key: Any) -> str:
    if isinstance(key, tuple):
        return "(" + ", ".join(str(k) for k in key) + ")"
    return repr(key)


def _ref_id(value: Any, ids: dict[NewRef, int]) -> Any:
    return ids[value] if isinstance(value, NewRef) else value


# --- generic upsert for flat kinds --------------------------------------------------------
@dataclass(frozen=True)
class FlatKind:
    """A kind stored as one model row per record, matched on ``key`` fields."""

    model: type[Model]
    key: tuple[str, ...]
    #: import field -> model attribute (references map to ``*_id``)
    attrs: dict[str, str]
    #: model attribute -> value for a new row when the field is absent or empty
    new_defaults: Callable[[], dict[str, Any]]
    refs: tuple[str, ...] = ()
    label: str = "external id"
    #: Unique integer attributes that rows may swap (parked on free values first).
    unique_attrs: tuple[str, ...] = ()
    rollup: Callable[[list[dict[str, Any]]], None] | None = None


def _flat_plan(
    records: list[dict[str, Any]],
    ctx: Context,
    kind: FlatKind,
    check: Callable[[dict[str, Any], dict[str, Any], Context], bool] | None = None,
) -> Plan:
    resolver = Resolver(ctx.mapping)
    records = _resolve_refs(records, ctx, resolver, kind.refs)
    key_attrs = [kind.attrs[k] for k in kind.key]

    by_external_id = kind.key == ("external_id",)

    def record_key(record: dict[str, Any]) -> tuple[Any, ...] | None:
        if by_external_id:
            return (record["external_id"],) if record.get("external_id") else None
        # Natural keys compare without case; an empty part is stored as "".
        values = (record.get(k) for k in kind.key)
        return tuple(v.lower() if isinstance(v, str) else ("" if v is None else v) for v in values)

    records = _dedupe(records, ctx, record_key, kind.label)
    existing = _load_existing(kind, records, key_attrs, record_key)
    present = [f for f in kind.attrs if f in ctx.mapping.spec.fields and _present(ctx, f)]
    creates: list[dict[str, Any]] = []
    updates: list[tuple[Model, dict[str, Any], list[dict[str, Any]]]] = []
    plan = Plan()
    for record in records:
        key = record_key(record)
        row = existing.get(key) if key is not None else None
        if row is None:
            values = kind.new_defaults()
            for f in present:
                if record.get(f) is not None or f in kind.key:
                    values[kind.attrs[f]] = record.get(f)
            if check is not None and not check(values, record, ctx):
                continue
            creates.append(values)
            plan.created += 1
        else:
            before = {a: getattr(row, a) for a in kind.attrs.values()}
            after = dict(before)
            for f in present:
                value = record.get(f)
                after[kind.attrs[f]] = value if value is not None else _empty(row, kind.attrs[f])
            if check is not None and not check(after, record, ctx):
                continue
            changed = {a: v for a, v in after.items() if v != before[a]}
            if changed:
                updates.append((row, changed, [before, after]))
                plan.updated += 1
            else:
                plan.unchanged += 1

    def write() -> None:
        ids = create_new_refs(resolver.new_refs.values())
        objects = []
        for values in creates:
            objects.append(kind.model(**{a: _ref_id(v, ids) for a, v in values.items()}))
        fields: set[str] = set()
        rows = []
        for row, changed, _ in updates:
            for attr, value in changed.items():
                setattr(row, attr, _ref_id(value, ids))
            fields.update(changed)
            rows.append(row)
        for attr in kind.unique_attrs:
            moving = [row for row, changed, _ in updates if attr in changed]
            if moving:
                _park(kind.model, attr, moving)
        if rows:
            kind.model.objects.bulk_update(rows, sorted(fields), batch_size=500)
        # Created after the updates, so a new row may take a value an updated one left.
        kind.model.objects.bulk_create(objects, batch_size=500)
        if kind.rollup is not None:
            touched = [*creates, *(p for _, _, pair in updates for p in pair)]
            # robust: the import is committed by then (see apps.crm.services._queue_updates)
            transaction.on_commit(lambda: kind.rollup(touched), robust=True)

    plan.write = write
    return plan


def _park(model: type[Model], attr: str, rows: list[Model]) -> None:
    """Move rows whose unique ``attr`` (a small positive integer) changes to unused values
    first, so that values can be swapped between them without a transient conflict."""
    used = set(model.objects.values_list(attr, flat=True)) | {getattr(r, attr) for r in rows}
    free = (n for n in range(32767, -1, -1) if n not in used)
    model.objects.bulk_update(
        [model(pk=row.pk, **{attr: next(free)}) for row in rows], [attr], batch_size=500
    )


def _empty(row: Model, attr: str) -> Any:
    """The stored form of an empty cell for a non-required field: "" for text, else None."""
    if attr in ("currency", "base_currency"):
        return settings.BASE_CURRENCY
    is_fk = attr.endswith("_id") and attr != "external_id"
    model_field = row._meta.get_field(attr[:-3] if is_fk else attr)
    if model_field.get_internal_type() in ("CharField", "TextField", "EmailField"):
        return ""
    if model_field.get_internal_type() == "BooleanField":
        return model_field.default
    return None


def _present(ctx: Context, name: str) -> bool:
    return name in ctx.present


def _load_existing(
    kind: FlatKind, records: list[dict[str, Any]], key_attrs: list[str], record_key
) -> dict[Any, Model]:
    if not records:
        return {}
    existing: dict[Any, Model] = {}
    if kind.key == ("external_id",):
        keys = [r["external_id"] for r in records if r.get("external_id")]
        for chunk in _chunks(keys):
            for row in kind.model.objects.filter(external_id__in=chunk):
                existing[(row.external_id,)] = row
        return existing
    # Small tables (stages, rates, NPS without ids): compare in memory.
    for row in kind.model.objects.all():
        values = tuple(getattr(row, a) for a in key_attrs)
        existing[tuple(v.lower() if isinstance(v, str) else v for v in values)] = row
    return existing


# --- kinds --------------------------------------------------------------------------------
def _rollup_subscriptions(rows: list[dict[str, Any]]) -> None:
    from apps.kpis.services import rollups_subscription_changed

    for start, end in {(r.get("start_date"), r.get("end_date")) for r in rows}:
        if start is not None:
            rollups_subscription_changed(start_date=start, end_date=end)


def _rollup_nps(rows: list[dict[str, Any]]) -> None:
    from apps.kpis.services import rollups_mark_dirty

    rollups_mark_dirty(
        area="nps", months=[r["responded_on"] for r in rows if r.get("responded_on")]
    )


def _rollup_rates(rows: list[dict[str, Any]]) -> None:
    from apps.kpis.services import rollups_update_enqueue

    rollups_update_enqueue()


def _base() -> dict[str, Any]:
    return {"currency": settings.BASE_CURRENCY}


FLAT_KINDS: dict[str, FlatKind] = {
    "accounts": FlatKind(
        model=Account,
        key=("external_id",),
        attrs={
            "external_id": "external_id",
            "name": "name",
            "segment": "segment",
            "industry": "industry",
            "region": "region_id",
            "country": "country",
        },
        new_defaults=lambda: {"segment": "smb", "industry": "", "country": ""},
        refs=("region",),
    ),
    "products": FlatKind(
        model=Product,
        key=("external_id",),
        attrs={
            "external_id": "external_id",
            "name": "name",
            "family": "family",
            "is_active": "is_active",
        },
        new_defaults=lambda: {"family": "", "is_active": True},
    ),
    "stages": FlatKind(
        model=Stage,
        key=("name",),
        attrs={
            "name": "name",
            "order": "order",
            "outcome": "outcome",
            "probability": "probability",
        },
        new_defaults=dict,
        label="stage",
        unique_attrs=("order",),
    ),
    "subscriptions": FlatKind(
        model=Subscription,
        key=("external_id",),
        attrs={
            "external_id": "external_id",
            "account": "account_id",
            "product": "product_id",
            "mrr": "mrr",
            "currency": "currency",
            "start_date": "start_date",
            "end_date": "end_date",
        },
        new_defaults=_base,
        refs=("account", "product"),
        rollup=_rollup_subscriptions,
    ),
    "exchange_rates": FlatKind(
        model=ExchangeRate,
        key=("currency", "base_currency", "rate_date"),
        attrs={
            "currency": "currency",
            "base_currency": "base_currency",
            "rate_date": "rate_date",
            "rate": "rate",
        },
        new_defaults=lambda: {"base_currency": settings.BASE_CURRENCY},
        label="rate",
        rollup=_rollup_rates,
    ),
}


def plan_products(records: list[dict[str, Any]], ctx: Context) -> Plan:
    # Product names are unique: a name held by another product is an error, not a merge.
    names: dict[str, str] = {
        n.lower(): e for e, n in Product.objects.values_list("external_id", "name")
    }
    seen: dict[str, tuple[str, int]] = {}
    good = []
    for record in records:
        name = record.get("name")
        if name is None:
            good.append(record)
            continue
        owner = names.get(name.lower())
        if owner is not None and owner != record["external_id"]:
            ctx.error(
                record["_line"],
                "name",
                f"product name {name!r} is already used by product {owner}.",
            )
            continue
        other = seen.get(name.lower())
        if other is not None and other[0] != record["external_id"]:
            ctx.error(
                record["_line"], "name", f"product name {name!r} is also used on line {other[1]}."
            )
            continue
        seen[name.lower()] = (record["external_id"], record["_line"])
        good.append(record)
    return _flat_plan(good, ctx, FLAT_KINDS["products"])


def plan_stages(records: list[dict[str, Any]], ctx: Context) -> Plan:
    file_names = {r["name"].lower() for r in records if r.get("name")}
    orders: dict[int, str] = {
        order: name
        for name, order in Stage.objects.values_list("name", "order")
        if name.lower() not in file_names
    }
    file_orders: dict[int, int] = {}

    def check(values: dict[str, Any], record: dict[str, Any], ctx: Context) -> bool:
        line = record["_line"]
        outcome, probability = values.get("outcome"), values.get("probability")
        if outcome == "won" and probability != 100:
            ctx.error(line, "probability", f"a won stage is 100 %, not {probability}.")
            return False
        if outcome == "lost" and probability != 0:
            ctx.error(line, "probability", f"a lost stage is 0 %, not {probability}.")
            return False
        order = values.get("order")
        if order in orders:
            ctx.error(line, "order", f"order {order} is already used by stage {orders[order]!r}.")
            return False
        if order in file_orders:
            ctx.error(line, "order", f"order {order} is also used on line {file_orders[order]}.")
            return False
        file_orders[order] = line
        return True

    return _flat_plan(records, ctx, FLAT_KINDS["stages"], check)


def plan_accounts(records: list[dict[str, Any]], ctx: Context) -> Plan:
    return _flat_plan(records, ctx, FLAT_KINDS["accounts"])


def plan_subscriptions(records: list[dict[str, Any]], ctx: Context) -> Plan:
    def check(values: dict[str, Any], record: dict[str, Any], ctx: Context) -> bool:
        start, end = values.get("start_date"), values.get("end_date")
        if end is not None and start is not None and end <= start:
            ctx.error(
                record["_line"], "end_date", f"end date {end} is not after the start date {start}."
            )
            return False
        return True

    return _flat_plan(records, ctx, FLAT_KINDS["subscriptions"], check)


def plan_exchange_rates(records: list[dict[str, Any]], ctx: Context) -> Plan:
    for record in records:
        if record.get("base_currency") is None:
            record["base_currency"] = settings.BASE_CURRENCY

    def check(values: dict[str, Any], record: dict[str, Any], ctx: Context) -> bool:
        if values["currency"] == values["base_currency"]:
            ctx.error(
                record["_line"],
                "currency",
                f"a rate from {values['currency']} to itself is always 1.",
            )
            return False
        return True

    ctx.present = ctx.present | {"base_currency"}
    return _flat_plan(records, ctx, FLAT_KINDS["exchange_rates"], check)


def plan_nps(records: list[dict[str, Any]], ctx: Context) -> Plan:
    with_id = [r for r in records if r.get("external_id")]
    without = [r for r in records if not r.get("external_id")]
    kind = FlatKind(
        model=NpsResponse,
        key=("external_id",),
        attrs={
            "external_id": "external_id",
            "account": "account_id",
            "contact_name": "contact_name",
            "contact_email": "contact_email",
            "score": "score",
            "comment": "comment",
            "responded_on": "responded_on",
        },
        new_defaults=lambda: {
            "contact_name": "",
            "contact_email": "",
            "comment": "",
            "external_id": "",
        },
        refs=("account",),
        label="external id",
        rollup=_rollup_nps,
    )
    natural = dataclasses.replace(
        kind,
        key=("account", "contact_email", "responded_on"),
        label="response (account, contact e-mail, date)",
    )
    first = _flat_plan(with_id, ctx, kind) if with_id else Plan()
    second = _flat_plan(without, ctx, natural) if without else Plan()

    def write() -> None:
        first.write()
        second.write()

    return Plan(
        created=first.created + second.created,
        updated=first.updated + second.updated,
        unchanged=first.unchanged + second.unchanged,
        write=write,
    )


# --- quotas -------------------------------------------------------------------------------
def plan_quotas(records: list[dict[str, Any]], ctx: Context) -> Plan:
    from apps.quotas.services import (
        QuotaBulkError,
        QuotaInput,
        fiscal_periods_ensure,
        quotas_set_bulk,
    )

    resolver = Resolver(ctx.mapping)
    records = _resolve_refs(records, ctx, resolver, ("rep", "team"))
    good = []
    for record in records:
        if (record.get("rep") is None) == (record.get("team") is None):
            ctx.error(
                record["_line"],
                "rep",
                "give either a rep or a team for each quota, not both or neither.",
            )
            continue
        good.append(record)
    good = _dedupe(good, ctx, lambda r: (r.get("rep"), r.get("team"), r["month"]), "quota for")
    existing = {
        (q.rep_id, q.team_id, q.period.start_date): q
        for q in Quota.objects.select_related("period").filter(period__kind=FiscalPeriod.Kind.MONTH)
    }
    plan = Plan()
    todo = []
    for record in good:
        row = existing.get((record.get("rep"), record.get("team"), record["month"]))
        currency = record.get("currency") or settings.BASE_CURRENCY
        note = record.get("note") or ""
        if row is None:
            plan.created += 1
        elif (
            row.amount == record["amount"]
            and row.currency == currency
            and ("note" not in ctx.present or row.note == note)
        ):
            plan.unchanged += 1
            continue
        else:
            plan.updated += 1
            if "note" not in ctx.present:
                note = row.note
        todo.append((record, currency, note))

    def write() -> None:
        start_month = settings.FISCAL_YEAR_START_MONTH
        years = {fiscal.fiscal_year_of(r["month"], start_month) for r, _, _ in todo}
        if years:
            fiscal_periods_ensure(first_year=min(years), last_year=max(years))
        periods = {
            p.start_date: p
            for p in FiscalPeriod.objects.filter(
                kind=FiscalPeriod.Kind.MONTH, start_date__in={r["month"] for r, _, _ in todo}
            )
        }
        users = User.objects.in_bulk([r["rep"] for r, _, _ in todo if r.get("rep")])
        teams = Team.objects.in_bulk([r["team"] for r, _, _ in todo if r.get("team")])
        items = [
            QuotaInput(
                period=periods[record["month"]],
                amount=record["amount"],
                rep=users.get(record.get("rep")),
                team=teams.get(record.get("team")),
                currency=currency,
                note=note,
            )
            for record, currency, note in todo
        ]
        try:
            # One call for the whole file: the service checks every quota (locked plans
            # included) before writing any, in a fixed number of queries.
            quotas_set_bulk(items=items, set_by=ctx.user)
        except QuotaBulkError as exc:
            for position, error in exc.errors:
                ctx.error(todo[position][0]["_line"], None, error.message)

    plan.write = write
    return plan


# --- people -------------------------------------------------------------------------------
@dataclass(frozen=True)
class FilePerson:
    """A manager reference to someone listed in the same file."""

    email: str


def plan_people(records: list[dict[str, Any]], ctx: Context) -> Plan:
    records = _dedupe(records, ctx, lambda r: r["email"], "e-mail")
    by_email = {r["email"]: r for r in records}
    names: dict[str, list[str]] = defaultdict(list)
    for r in records:
        names[r["name"].lower()].append(r["email"])
    resolver = Resolver(ctx.mapping)
    spec = ctx.mapping.spec.fields
    good = []
    for record in records:
        line, bad = record["_line"], False
        for name in ("team", "region"):
            key = record.get(name)
            if key:
                try:
                    record[name] = resolver.resolve(spec[name].ref, key, spec[name].creates)
                except CellError as exc:
                    ctx.error(line, name, str(exc))
                    bad = True
        key = record.get("manager")
        if key:
            lowered = key.lower()
            in_file = [lowered] if lowered in by_email else names.get(lowered, [])
            try:
                if len(in_file) > 1:
                    raise CellError(
                        f"ambiguous person {key!r}: {len(in_file)} people in the file have "
                        "this full name; use the e-mail address."
                    )
                if in_file:
                    if in_file[0] == record["email"]:
                        raise CellError("a person cannot be their own manager.")
                    record["manager"] = FilePerson(in_file[0])
                else:
                    record["manager"] = resolver.resolve("user", key, "managers")
            except CellError as exc:
                ctx.error(line, "manager", str(exc))
                bad = True
        if not bad:
            good.append(record)
    existing = {
        u.email.lower(): u
        for chunk in _chunks([r["email"] for r in good])
        for u in User.objects.filter(email__in=chunk)
    }
    # Case-insensitive match for addresses stored with capitals.
    missing = {r["email"] for r in good if r["email"] not in existing}
    if missing:
        for u in User.objects.exclude(email=""):
            if u.email.lower() in missing:
                existing[u.email.lower()] = u
    present = ctx.present
    plan = Plan()
    changes: list[tuple[dict[str, Any], User | None, dict[str, Any]]] = []
    team_managers = dict(Team.objects.values_list("id", "manager_id"))
    for record in good:
        first, _, last = record["name"].partition(" ")
        values: dict[str, Any] = {"first_name": first[:150], "last_name": last.strip()[:150]}
        for name in ("role", "title", "hired_on"):
            if name in present:
                values[name] = (
                    record.get(name)
                    if record.get(name) is not None
                    else ("" if name == "title" else None)
                )
        if "team" in present:
            values["team_id"] = record.get("team")
        user = existing.get(record["email"])
        if user is None:
            values.setdefault("role", Role.REP)
            values["role"] = values["role"] or Role.REP
            plan.created += 1
            changes.append((record, None, values))
            continue
        if values.get("role") is None:
            values.pop("role", None)
        diff = {k: v for k, v in values.items() if getattr(user, k) != v}
        manager = record.get("manager")
        team_id = diff.get("team_id", user.team_id)
        # Naming a manager changes something only where it sets a team's missing manager.
        manager_change = manager is not None and (
            isinstance(manager, NewRef)
            or isinstance(team_id, NewRef)
            or (team_id is not None and team_managers.get(team_id) is None)
        )
        if diff or manager_change:
            plan.updated += 1
            changes.append((record, user, diff))
        else:
            plan.unchanged += 1

    def write() -> None:
        region_for_team: dict[str, Any] = {}
        for record in good:
            team = record.get("team")
            if isinstance(team, NewRef):
                region_for_team.setdefault(team.key.lower(), record.get("region"))
        ids = create_new_refs(resolver.new_refs.values(), region_for_team=region_for_team)
        taken = set(User.objects.values_list("username", flat=True))
        saved: dict[str, User] = {}
        for record, user, values in changes:
            values = {k: _ref_id(v, ids) for k, v in values.items()}
            if user is None:
                user = User(
                    username=_unique_username(record["email"], taken),
                    email=record["email"],
                    password=make_password(None),
                    **values,
                )
                user.save()
            elif values:
                for k, v in values.items():
                    setattr(user, k, v)
                user.save(update_fields=list(values))
            saved[record["email"]] = user
        # Managers last: they may be people created above. A person's manager runs the
        # person's team when that team has no manager yet.
        for record in good:
            manager = record.get("manager")
            if manager is None:
                continue
            if isinstance(manager, FilePerson):
                manager_id = (saved.get(manager.email) or existing[manager.email]).pk
            else:
                manager_id = _ref_id(manager, ids)
            person = saved.get(record["email"]) or existing.get(record["email"])
            if person is None or person.team_id is None:
                continue
            Team.objects.filter(pk=person.team_id, manager__isnull=True).update(
                manager_id=manager_id
            )
            if isinstance(manager, NewRef):
                User.objects.filter(pk=manager_id, team__isnull=True).update(team_id=person.team_id)

    plan.write = write
    return plan


# --- opportunities ------------------------------------------------------------------------
#: Row field -> deal attribute: the same map the API's bulk upsert uses.
OPP_ATTRS = UPSERT_ATTRS
OPP_TEXT = ("source", "lost_reason")
TRACKED_ATTRS = tuple(f"{f}_id" if f in ("stage", "owner") else f for f in TRACKED_FIELDS)
COPY_COLUMNS = ("id", "external_id", *OPP_ATTRS.values(), "changed_fields")


def opp_empty_rule(name: str) -> tuple[str, bool, Any]:
    """What an empty cell of deal field ``name`` does: (its attribute, whether it keeps the
    stored value, or a new deal's default, and else the value it clears the field to)."""
    return OPP_ATTRS[name], name in KEEP_ON_EMPTY, "" if name in OPP_TEXT else None


def category_for(outcome: str, requested: str | None) -> str:
    """The same rule as apps.crm.services: won is closed, lost is omitted, and an open deal
    keeps its category unless none (or 'closed') was given, which means pipeline."""
    if outcome == Stage.Outcome.WON:
        return ForecastCategory.CLOSED
    if outcome == Stage.Outcome.LOST:
        return ForecastCategory.OMITTED
    if requested in (ForecastCategory.CLOSED, None):
        return ForecastCategory.PIPELINE
    return requested


@dataclass(eq=False, slots=True)
class OppChange:
    line: int
    external_id: str
    values: dict[str, Any]  # full final state by model attribute
    existing_id: int | None
    changed: dict[str, Any]  # attributes that differ (all for a new deal)
    tracked: list[str]  # tracked fields that changed ("created" for a new deal)


def plan_opportunities(records: list[dict[str, Any]], ctx: Context) -> Plan:
    resolver = Resolver(ctx.mapping)
    records = _resolve_refs(records, ctx, resolver, ("account", "owner", "product", "stage"))
    records = _dedupe(records, ctx, lambda r: r["external_id"], "external id")
    resolver._table("stage")
    outcome = resolver.stage_outcome
    present = [f for f in OPP_ATTRS if f in ctx.present]
    # external id -> (deal id, its attributes as stored)
    existing: dict[str, tuple[int, dict[str, Any]]] = {}
    attrs = tuple(OPP_ATTRS.values())
    columns = ["id", "external_id", *OPP_ATTRS.values()]
    queryset = Opportunity.objects.all()
    # No edit may slip between the comparison below and the write: a large Postgres import
    # blocks other writers of the deal table (readers go on) until it commits, which is far
    # cheaper than locking a million rows one by one; smaller ones lock their rows.
    if ctx.dry_run:
        pass
    elif connection.vendor == "postgresql" and len(records) > SERVICE_PATH_MAX_ROWS:
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {Opportunity._meta.db_table} IN SHARE ROW EXCLUSIVE MODE")
    elif connection.features.has_select_for_update:
        queryset = queryset.select_for_update()
    keys = [r["external_id"] for r in records]
    if connection.vendor == "postgresql" and queryset.query.select_for_update is False:
        # Large loads: one scan of the deal table when it is not much larger than the
        # file (cheaper than a probe per key), else a few array queries.
        table = Opportunity._meta.db_table
        select = ", ".join(columns)
        with connection.cursor() as cursor:
            # reltuples is -1 before the first ANALYZE: then 100 bytes a row (a deal row is
            # larger, so this overestimates the rows) estimate from the table's size.
            cursor.execute(
                "SELECT CASE WHEN reltuples >= 0 THEN reltuples "
                "ELSE pg_relation_size(oid) / 100 END FROM pg_class WHERE oid = %s::regclass",
                [table],
            )
            scan = cursor.fetchone()[0] <= EXISTING_SCAN_FACTOR * len(keys)
            wanted = set(keys) if scan else None

            def batches() -> Iterator[list[Any]]:
                if scan:
                    cursor.execute(f"SELECT {select} FROM {table}")
                    yield from iter(lambda: cursor.fetchmany(50_000), [])
                    return
                for chunk in _chunks(keys, 50_000):
                    cursor.execute(
                        f"SELECT {select} FROM {table} WHERE external_id = ANY(%s)", [chunk]
                    )
                    yield cursor.fetchall()

            for batch in batches():
                for values in batch:
                    if wanted is None or values[1] in wanted:
                        existing[values[1]] = (values[0], dict(zip(attrs, values[2:], strict=True)))
    else:
        for chunk in _chunks(keys):
            for values in queryset.filter(external_id__in=chunk).values_list(*columns):
                existing[values[1]] = (values[0], dict(zip(attrs, values[2:], strict=True)))
    plan = Plan()
    changes: list[OppChange] = []
    categories: dict[tuple[int, str | None], str] = {}  # (stage, requested) -> category
    steps = [opp_empty_rule(f) for f in present]
    present_attrs = [attr for attr, _, _ in steps]
    # Every present field is a key of every record (read_records gives them all).
    getter = operator.itemgetter(*present)
    cells_of = getter if len(present) > 1 else (lambda record: (getter(record),))
    positions = range(len(present))
    new_defaults = new_deal_values()
    for record in records:
        line = record["_line"]
        stored = existing.get(record["external_id"])
        old = None if stored is None else stored[1]
        values = (new_defaults if old is None else old).copy()
        cells = cells_of(record)
        # The cells as they are, in one C call; then the empty ones, if any: an empty
        # cell keeps the stored value (or the default) or clears the field.
        values.update(zip(present_attrs, cells, strict=True))
        if None in cells:
            prior = new_defaults if old is None else old
            for i in compress(positions, map(operator.is_, cells, repeat(None))):
                attr, keep_on_empty, empty = steps[i]
                values[attr] = prior.get(attr) if keep_on_empty else empty
        if values["close_date"] < values["created_date"]:
            ctx.error(
                line,
                "close_date",
                f"close date {values['close_date']} is before the created date "
                f"{values['created_date']}.",
            )
            continue
        category_key = (values["stage_id"], values["forecast_category"])
        category = categories.get(category_key)
        if category is None:
            category = categories[category_key] = category_for(
                outcome[category_key[0]], category_key[1]
            )
        values["forecast_category"] = category
        if old is None:
            plan.created += 1
            changes.append(
                # Every attribute of a new deal is a change: one dict serves as both.
                OppChange(line, record["external_id"], values, None, values, ["created"])
            )
            continue
        if values == old:  # one comparison in C for the (usual) unchanged deal
            plan.unchanged += 1
            continue
        changed = {a: v for a, v in values.items() if old[a] != v}
        if not changed:
            plan.unchanged += 1
            continue
        plan.updated += 1
        tracked = [f for f, a in zip(TRACKED_FIELDS, TRACKED_ATTRS, strict=True) if a in changed]
        changes.append(OppChange(line, record["external_id"], values, stored[0], changed, tracked))

    def write() -> None:
        ids = create_new_refs(resolver.new_refs.values())
        for change in changes if ids else ():
            for attr in ("account_id", "owner_id", "product_id"):
                change.values[attr] = _ref_id(change.values[attr], ids)
                if attr in change.changed:
                    change.changed[attr] = change.values[attr]
        path = ctx.opportunity_path or (
            "services"
            if len(changes) <= SERVICE_PATH_MAX_ROWS
            else ("copy" if connection.vendor == "postgresql" else "bulk")
        )
        # Known before the write, which fills in the ids of new deals.
        rollup_args = _rollup_args(changes, ctx)
        if path == "services":
            _write_opps_services(changes, ctx)
        elif path == "copy":
            _write_opps_copy(changes, ctx)
        else:
            _write_opps_bulk(changes, ctx)
        if path != "services" and changes:
            transaction.on_commit(lambda: rollup_deals(**rollup_args), robust=True)

    plan.write = write
    return plan


def _write_opps_services(changes: list[OppChange], ctx: Context) -> None:
    accounts = Account.objects.in_bulk({c.values["account_id"] for c in changes})
    users = User.objects.in_bulk({c.values["owner_id"] for c in changes})
    products = Product.objects.in_bulk(
        {c.values["product_id"] for c in changes if c.values["product_id"]}
    )
    stages = Stage.objects.in_bulk({c.values["stage_id"] for c in changes})
    instances = {
        "account_id": accounts,
        "owner_id": users,
        "product_id": products,
        "stage_id": stages,
    }

    def as_kwargs(values: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for attr, value in values.items():
            if attr in instances:
                out[attr.removesuffix("_id")] = instances[attr].get(value) if value else None
            else:
                out[attr] = value
        return out

    existing = Opportunity.objects.in_bulk([c.existing_id for c in changes if c.existing_id])
    for change in changes:
        try:
            with transaction.atomic():
                if change.existing_id is None:
                    opportunity_create(
                        external_id=change.external_id,
                        changed_by=ctx.user,
                        changed_at=ctx.now,
                        history_source=ctx.source,
                        **as_kwargs(change.values),
                    )
                else:
                    opportunity_update(
                        opportunity=existing[change.existing_id],
                        changed_by=ctx.user,
                        changed_at=ctx.now,
                        history_source=ctx.source,
                        **as_kwargs(change.changed),
                    )
        except ApplicationError as exc:
            ctx.error(change.line, exc.extra.get("field"), exc.message)


def _history(
    opp_id: int, values: dict[str, Any], tracked: list[str], ctx: Context
) -> OpportunityHistory:
    return OpportunityHistory(
        opportunity_id=opp_id,
        changed_at=ctx.now,
        changed_by=ctx.user,
        source=ctx.source,
        changed_fields=",".join(tracked),
        stage_id=values["stage_id"],
        amount=values["amount"],
        currency=values["currency"],
        close_date=values["close_date"],
        owner_id=values["owner_id"],
        forecast_category=values["forecast_category"],
    )


def _write_opps_bulk(changes: list[OppChange], ctx: Context) -> None:
    """Portable bulk path (SQLite): bulk_create new deals, bulk_update changed ones, then
    one history row per created deal and per deal whose tracked fields changed."""
    new = [c for c in changes if c.existing_id is None]
    updated = [c for c in changes if c.existing_id is not None]
    for chunk in _chunks(new, 500):
        objects = [
            Opportunity(external_id=c.external_id, updated_at=ctx.now, **c.values) for c in chunk
        ]
        Opportunity.objects.bulk_create(objects)
        for change, obj in zip(chunk, objects, strict=True):
            change.existing_id = obj.pk
    by_fields: dict[tuple[str, ...], list[OppChange]] = defaultdict(list)
    for change in updated:
        by_fields[tuple(sorted(change.changed))].append(change)
    for attrs, group in by_fields.items():
        for chunk in _chunks(group, 500):
            objects = []
            for change in chunk:
                obj = Opportunity(pk=change.existing_id, updated_at=ctx.now, **change.values)
                objects.append(obj)
            Opportunity.objects.bulk_update(objects, [*attrs, "updated_at"])
    history = [_history(c.existing_id, c.values, c.tracked, ctx) for c in changes if c.tracked]
    OpportunityHistory.objects.bulk_create(history, batch_size=1000)


def _write_opps_copy(changes: list[OppChange], ctx: Context) -> None:
    """Postgres: COPY the planned rows into a temporary table, then load them from it with
    :func:`load_staged_deals`."""
    if not changes:
        return
    attrs = list(OPP_ATTRS.values())
    # CSV through the C writer: an unquoted empty cell is NULL (a new deal's id, a deal
    # without product); text columns are FORCE_NOT_NULL so that empty cells stay "".
    row_of = operator.itemgetter(*attrs)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(
        (change.existing_id, change.external_id, *row_of(change.values), ",".join(change.tracked))
        for change in changes
    )
    buffer.seek(0)
    new = sum(1 for change in changes if change.existing_id is None)
    updated_tracked = sum(
        1 for change in changes if change.existing_id is not None and change.tracked
    )
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {STAGE_RELATION}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {STAGE_RELATION} ("
            + ", ".join(f"{c} {COPY_COLUMN_TYPES[c]}" for c in COPY_COLUMNS)
            + ") ON COMMIT DROP"
        )
        not_null = ", ".join(c for c in COPY_COLUMNS if COPY_COLUMN_TYPES[c].startswith("varchar"))
        cursor.cursor.copy_expert(
            f"COPY {STAGE_RELATION} ({', '.join(COPY_COLUMNS)}) FROM STDIN "
            f"WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))",
            buffer,
        )
        del buffer
        ids = {column: {c.values[column] for c in changes} - {None} for column, _ in OPP_REFERENCES}
        load_staged_deals(
            cursor, ctx, ids=ids, total=len(changes), new=new, updated_tracked=updated_tracked
        )
        cursor.execute(f"DROP TABLE {STAGE_RELATION}")


#: The relation :func:`load_staged_deals` reads: a temporary table of planned rows (the
#: COPY path), or a temporary view over the raw file (apps.imports.sqlload).
STAGE_RELATION = "import_opportunity_stage"


def load_staged_deals(
    cursor: Any,
    ctx: Context,
    *,
    ids: dict[str, set[int]],
    total: int,
    new: int,
    updated_tracked: int,
) -> int:
    """Write the deals of :data:`STAGE_RELATION` (columns :data:`COPY_COLUMNS`; ``id`` NULL
    for a new deal) and their history rows: one statement for the new deals and their
    ``created`` history rows (an INSERT whose RETURNING feeds the history INSERT), one
    UPDATE for the changed deals (joined on the id found when they were compared) and one
    INSERT for their history rows: three passes over the staged rows, whatever their
    number, and no lookup of the deals by external id. ``ids`` are the distinct ids each
    reference column names (checked and locked first); ``total`` the staged rows, ``new``
    the new deals among them, ``updated_tracked`` the changed deals that get a history row.
    Returns the number of deals inserted.

    When the deals (or history rows) written outnumber those stored, the secondary
    indexes of that table are dropped before the load and built again after it, in this
    transaction (see :func:`_secondary_indexes_dropped`)."""
    attrs = list(OPP_ATTRS.values())
    opp = Opportunity._meta.db_table
    hist = OpportunityHistory._meta.db_table
    stage = STAGE_RELATION
    skip_row_checks = _references_locked_and_checked(cursor, ctx, ids)
    # Sorts and hashes of a million rows (index builds, the UPDATE's join) stay in
    # memory instead of spilling to disk; for this transaction only.
    cursor.execute("SET LOCAL work_mem = %s", [IMPORT_WORK_MEM])
    cursor.execute("SET LOCAL maintenance_work_mem = %s", [IMPORT_MAINTENANCE_WORK_MEM])
    rebuild: list[str] = []
    rebuild += _secondary_indexes_dropped(cursor, opp, rows_written=total)
    if new + updated_tracked:
        rebuild += _secondary_indexes_dropped(cursor, hist, rows_written=new + updated_tracked)
    history_columns = (
        "opportunity_id, changed_at, changed_by_id, source, changed_fields, stage_id, "
        "amount, currency, close_date, owner_id, forecast_category"
    )
    history_params = [ctx.now, getattr(ctx.user, "pk", None), ctx.source]
    inserted = 0
    if new:
        staged = ", ".join(["external_id", *attrs])
        cursor.execute(
            f"WITH created AS (INSERT INTO {opp} ({staged}, updated_at) "
            f"SELECT {staged}, %s FROM {stage} WHERE id IS NULL "
            "RETURNING id, stage_id, amount, currency, close_date, owner_id, "
            f"forecast_category) INSERT INTO {hist} ({history_columns}) "
            "SELECT id, %s, %s, %s, 'created', stage_id, amount, currency, close_date, "
            "owner_id, forecast_category FROM created",
            [ctx.now, *history_params],
        )
        inserted = cursor.rowcount
    if new < total:
        # The stored deals were locked when they were compared (the whole table for
        # a large import), so the ids found then are still theirs.
        cursor.execute(f"ANALYZE {stage}")
        assignments = ", ".join(f"{a} = s.{a}" for a in attrs)
        cursor.execute(
            f"UPDATE {opp} o SET {assignments}, updated_at = %s "
            f"FROM {stage} s WHERE s.id IS NOT NULL AND o.id = s.id",
            [ctx.now],
        )
    if updated_tracked:
        cursor.execute(
            f"INSERT INTO {hist} ({history_columns}) "
            "SELECT s.id, %s, %s, %s, s.changed_fields, s.stage_id, s.amount, s.currency, "
            f"s.close_date, s.owner_id, s.forecast_category FROM {stage} s "
            "WHERE s.id IS NOT NULL AND s.changed_fields <> ''",
            history_params,
        )
    if rebuild:
        # PostgreSQL builds no index on a table with queued trigger events (the row
        # foreign-key checks when they were not skipped, or earlier writes of the
        # transaction): run those checks now instead of at commit (Django's
        # check_constraints: SET CONSTRAINTS ALL IMMEDIATE, then back to DEFERRED,
        # the mode of every deferrable constraint of the schema).
        connection.check_constraints()
    for definition in rebuild:
        cursor.execute(definition)
    if skip_row_checks:
        cursor.execute("SET LOCAL session_replication_role = origin")
    return inserted


#: The staging table's columns and their types (the deal's own, its id when stored, the
#: tracked fields that changed).
COPY_COLUMN_TYPES = {
    "id": "bigint",
    "external_id": "varchar(64)",
    "name": "varchar(200)",
    "account_id": "bigint",
    "owner_id": "bigint",
    "product_id": "bigint",
    "amount": "numeric(18,2)",
    "currency": "varchar(3)",
    "stage_id": "bigint",
    "forecast_category": "varchar(16)",
    "deal_type": "varchar(16)",
    "source": "varchar(40)",
    "created_date": "date",
    "close_date": "date",
    "lost_reason": "varchar(120)",
    "changed_fields": "varchar(120)",
}
#: ``SET LOCAL`` for the load: hashes (the UPDATE's join) and sorts (index builds) of a
#: million rows fit in memory. Per transaction, one import at a time per worker.
IMPORT_WORK_MEM = "64MB"
IMPORT_MAINTENANCE_WORK_MEM = "256MB"
#: Secondary indexes are dropped and built again after the load when the rows written
#: are at least this many times the rows stored (an initial or a near-complete load).
INDEX_REBUILD_FACTOR = 1.0
#: How long the load waits for the exclusive lock that dropping indexes takes (readers
#: of the table hold it off); past that it keeps the indexes and maintains them row by row.
INDEX_REBUILD_LOCK_TIMEOUT = "2s"


def _secondary_indexes_dropped(cursor: Any, table: str, *, rows_written: int) -> list[str]:
    """Drop ``table``'s secondary indexes when a load of ``rows_written`` rows is cheaper
    with them built afterwards, and return their definitions (``CREATE INDEX ...``) for the
    caller to run after the load, in the same transaction; else drop nothing, return [].

    Maintaining an index row by row costs a descent and a random page write per row and
    index (most of PostgreSQL's time in a large load); building it afterwards is one sort.
    That pays only when the rows written are at least ``INDEX_REBUILD_FACTOR`` times the
    rows stored (an index is rebuilt whole, over every stored row too). Only plain
    indexes are dropped: the primary key and unique indexes (which the load must check,
    and which constraints own) stay and are maintained as usual.

    The price is the lock: DROP INDEX takes an ACCESS EXCLUSIVE lock on the table until
    the import commits, so readers of the table (drill-down lists, the API) wait for the
    load instead of reading the previous state. The lock is only waited for
    ``INDEX_REBUILD_LOCK_TIMEOUT``: when a reader holds it longer, the indexes are kept
    (same rows, slower). Turned off with ``IMPORTS_REBUILD_INDEXES = False``.
    Everything is transactional: if the import fails, the indexes are back as they were.
    """
    if rows_written == 0 or not getattr(settings, "IMPORTS_REBUILD_INDEXES", True):
        return []
    cursor.execute(
        "SELECT CASE WHEN reltuples >= 0 THEN reltuples "
        "ELSE pg_relation_size(oid) / 100 END FROM pg_class WHERE oid = %s::regclass",
        [table],
    )
    if rows_written < INDEX_REBUILD_FACTOR * cursor.fetchone()[0]:
        return []
    cursor.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary "
        "AND i.indisvalid AND i.indisready AND i.indexprs IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid) "
        "ORDER BY i.indexrelid",
        [table],
    )
    indexes = cursor.fetchall()
    if not indexes:
        return []
    cursor.execute("SELECT current_setting('lock_timeout')")
    lock_timeout = cursor.fetchone()[0]
    try:
        with transaction.atomic():
            cursor.execute(
                "SELECT set_config('lock_timeout', %s, true)", [INDEX_REBUILD_LOCK_TIMEOUT]
            )
            cursor.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            cursor.execute("DROP INDEX " + ", ".join(name for name, _ in indexes))
    except OperationalError:
        return []  # a reader holds the table: keep the indexes (the savepoint undid all)
    finally:
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [lock_timeout])
    return [definition for _, definition in indexes]


#: The references of a deal (and of its history row): column -> referenced table.
OPP_REFERENCES = (
    ("account_id", Account._meta.db_table),
    ("owner_id", User._meta.db_table),
    ("product_id", Product._meta.db_table),
    ("stage_id", Stage._meta.db_table),
)


def _references_locked_and_checked(cursor: Any, ctx: Context, ids: dict[str, set[int]]) -> bool:
    """Check every reference of the staged deals set-based, then let the load skip
    PostgreSQL's per-row foreign-key triggers when that is safe. Returns True when it did
    (the caller must restore ``session_replication_role`` after its INSERTs).

    The foreign keys are ``DEFERRABLE INITIALLY DEFERRED``: left alone, PostgreSQL queues
    one check per reference per row (eight per imported deal with its history row) and
    runs them one by one at commit, which is most of a large load. Instead, the referenced
    rows are locked ``FOR KEY SHARE`` (what each of those checks would do: nobody can
    delete them or change their key until we commit), by the distinct ids the deals name
    (``ids``, by column: known here, so no pass over the staged rows), and every id must
    be found. With that
    done, the triggers only repeat it, so they are switched off for this transaction's
    INSERTs (``SET LOCAL session_replication_role = replica``), which needs a superuser
    (or a role granted that setting) and is done only when neither deal table has a
    trigger of its own that replica mode would also skip. Otherwise the triggers run as
    usual: same rows, just slower.
    """
    user_table = User._meta.db_table
    changed_by = getattr(ctx.user, "pk", None)
    for column, table in OPP_REFERENCES:
        named = sorted(ids[column] - {None})
        cursor.execute(
            f"SELECT t.id FROM {table} t WHERE t.id = ANY(%s) ORDER BY t.id FOR KEY SHARE",
            [named],
        )
        found = {row[0] for row in cursor.fetchall()}
        missing = [i for i in named if i not in found]
        if missing:
            raise IntegrityError(
                f"{column} {missing[0]} of an imported deal is not in {table} "
                "(deleted while the import ran?)"
            )
    if changed_by is not None:
        cursor.execute(f"SELECT id FROM {user_table} WHERE id = %s FOR KEY SHARE", [changed_by])
        if cursor.fetchone() is None:
            raise IntegrityError(f"the importing user {changed_by} no longer exists")
    if not replica_loading_allowed(cursor):
        return False
    try:
        with transaction.atomic():
            cursor.execute("SET LOCAL session_replication_role = replica")
    except DatabaseError:
        return False  # not allowed for this role: the triggers check row by row
    return True


def replica_loading_allowed(cursor: Any) -> bool:
    """Whether the deal tables have only PostgreSQL's own (foreign-key) triggers, so that
    switching triggers off for the load skips nothing but checks already made."""
    if not getattr(settings, "IMPORTS_SKIP_ROW_FK_TRIGGERS", True):
        return False
    opp = Opportunity._meta.db_table
    hist = OpportunityHistory._meta.db_table
    cursor.execute(
        "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
        "AND tgrelid IN (%s::regclass, %s::regclass)",
        [opp, hist],
    )
    return cursor.fetchone()[0] == 0


def _rollup_args(changes: list[OppChange], ctx: Context) -> dict[str, Any]:
    """What :func:`rollup_deals` needs, taken before the write (which fills in the ids
    of new deals)."""
    from apps.kpis.services import STAGE_FIELDS

    # The fields that move stage-history rollups, named as apps.crm.services names them.
    stage_fields = set(STAGE_FIELDS) | {"close_date"}
    updated, stage_updated = [], []
    for change in changes:
        if change.existing_id is None:
            continue
        updated.append(change.existing_id)
        if {attr.removesuffix("_id") for attr in change.changed} & stage_fields:
            stage_updated.append(change.existing_id)
    return {
        "close_months": {c.values["close_date"] for c in changes},
        "stage_now": len(updated) < len(changes) or bool(stage_updated),
        "now": timezone.localdate(ctx.now),
        "updated_ids": updated,
        "stage_updated_ids": stage_updated,
        "account_ids": {c.values["account_id"] for c in changes},
    }


def rollup_deals(
    *,
    close_months: set[dt.date],
    stage_now: bool,
    now: dt.date,
    updated_ids: list[int],
    stage_updated_ids: list[int],
    account_ids: set[int],
) -> None:
    """Queue the KPI months a bulk import of deals can change, as
    apps.kpis.services.rollups_deal_changed does deal by deal: by close month, every close
    month the deals ever had and the close months of won deals of their accounts (one of
    them may now be, or no longer be, an account's first win); by month of change, every
    history month of new deals and of deals whose stage, dimensions or close date
    changed. Months come from the database as distinct values: a few queries in all."""
    from apps.kpis.models import DirtyMonth
    from apps.kpis.services import month_start, rollups_mark_dirty

    deals = {month_start(m) for m in close_months}
    for chunk in _chunks(updated_ids, 5000):
        deals.update(
            OpportunityHistory.objects.filter(opportunity_id__in=chunk).dates("close_date", "month")
        )
    for chunk in _chunks(sorted(account_ids), 5000):
        won = Opportunity.objects.filter(account_id__in=chunk, stage__outcome=Stage.Outcome.WON)
        deals.update(won.dates("close_date", "month"))
    stages = {month_start(now)} if stage_now else set()
    for chunk in _chunks(stage_updated_ids, 5000):
        history = OpportunityHistory.objects.filter(opportunity_id__in=chunk)
        stages.update(d.date() for d in history.datetimes("changed_at", "month"))
    rollups_mark_dirty(area=DirtyMonth.Area.DEALS, months=deals)
    if stages:
        rollups_mark_dirty(area=DirtyMonth.Area.STAGES, months=stages)


PLANNERS: dict[str, Callable[[list[dict[str, Any]], Context], Plan]] = {
    "people": plan_people,
    "stages": plan_stages,
    "accounts": plan_accounts,
    "products": plan_products,
    "opportunities": plan_opportunities,
    "quotas": plan_quotas,
    "subscriptions": plan_subscriptions,
    "nps": plan_nps,
    "exchange_rates": plan_exchange_rates,
}

__all__ = ["PLANNERS", "SERVICE_PATH_MAX_ROWS", "Context", "Plan"]
