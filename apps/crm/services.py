"""Writes for the CRM read model. Every change to a deal's tracked fields goes through
here so that its history is complete: the history is what rebuilds past pipelines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Q, Value
from django.db.models.functions import Concat, Lower, Trim
from django.utils import timezone

from apps.audit.services import Action, audit_record
from apps.core import records
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
from apps.org.policy import (
    can_edit_crm,
    deal_editable_fields,
    filter_by_owner,
    scope_for,
    visible_users,
)

RecordT = TypeVar("RecordT", bound=models.Model)

#: Fields whose every change is kept in :class:`OpportunityHistory`.
TRACKED_FIELDS: tuple[str, ...] = (
    "stage",
    "amount",
    "currency",
    "close_date",
    "owner",
    "forecast_category",
)

EDITABLE_FIELDS: frozenset[str] = frozenset(
    {
        "name",
        "account",
        "owner",
        "product",
        "amount",
        "currency",
        "stage",
        "forecast_category",
        "deal_type",
        "source",
        "created_date",
        "close_date",
        "lost_reason",
    }
)


def _category_for_stage(stage: Stage, requested: str | None) -> str:
    """Closed deals leave the forecast: won is 'closed', lost is 'omitted'."""
    return _category_for_outcome(stage.outcome, requested)


def _category_for_outcome(outcome: str, requested: str | None) -> str:
    if outcome == Stage.Outcome.WON:
        return ForecastCategory.CLOSED
    if outcome == Stage.Outcome.LOST:
        return ForecastCategory.OMITTED
    if requested is None or requested == ForecastCategory.CLOSED:
        return ForecastCategory.PIPELINE
    return requested


def _validate(opp: Opportunity) -> None:
    if opp.amount is None or Decimal(opp.amount) < 0:
        raise ApplicationError("Amount must be zero or more.", extra={"field": "amount"})
    if opp.close_date < opp.created_date:
        raise ApplicationError(
            "Close date cannot be before the created date.", extra={"field": "close_date"}
        )
    opp.full_clean(validate_unique=False, validate_constraints=False)


def _snapshot(
    opp: Opportunity, *, changed_fields: str, at: datetime, by: Any, source: str
) -> OpportunityHistory:
    return OpportunityHistory(
        opportunity=opp,
        changed_at=at,
        changed_by=by,
        source=source,
        changed_fields=changed_fields,
        stage_id=opp.stage_id,
        amount=opp.amount,
        currency=opp.currency,
        close_date=opp.close_date,
        owner_id=opp.owner_id,
        forecast_category=opp.forecast_category,
    )


@transaction.atomic
def opportunity_create(
    *,
    external_id: str,
    name: str,
    account: Any,
    owner: Any,
    amount: Decimal,
    currency: str,
    stage: Stage,
    created_date: date,
    close_date: date,
    product: Any = None,
    forecast_category: str | None = None,
    deal_type: str = "new",
    source: str = "",
    lost_reason: str = "",
    changed_by: Any = None,
    changed_at: datetime | None = None,
    history_source: str = OpportunityHistory.Source.APP,
) -> Opportunity:
    """Create a deal and its first history row."""
    if Opportunity.objects.filter(external_id=external_id).exists():
        raise ApplicationError(
            f"An opportunity with external id {external_id!r} already exists.",
            extra={"field": "external_id"},
        )
    opp = Opportunity(
        external_id=external_id,
        name=name,
        account=account,
        owner=owner,
        product=product,
        amount=Decimal(amount),
        currency=currency.upper(),
        stage=stage,
        forecast_category=_category_for_stage(stage, forecast_category),
        deal_type=deal_type,
        source=source,
        created_date=created_date,
        close_date=close_date,
        lost_reason=lost_reason,
    )
    _validate(opp)
    opp.save()
    _snapshot(
        opp,
        changed_fields="created",
        at=changed_at or timezone.now(),
        by=changed_by,
        source=history_source,
    ).save()
    _queue_updates(opp.pk)
    return opp


@transaction.atomic
def opportunity_update(
    *,
    opportunity: Opportunity,
    changed_by: Any = None,
    changed_at: datetime | None = None,
    history_source: str = OpportunityHistory.Source.APP,
    **changes: Any,
) -> tuple[Opportunity, list[str]]:
    """Apply ``changes`` to a deal; write one history row if a tracked field changed.

    Returns the deal and the names of the tracked fields that changed. The row is locked
    for the duration so two concurrent edits cannot lose each other's history.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ApplicationError(f"Cannot change {', '.join(sorted(unknown))} on an opportunity.")
    opp = Opportunity.objects.select_for_update().get(pk=opportunity.pk)
    before = {f: getattr(opp, f"{f}_id" if f in ("stage", "owner") else f) for f in TRACKED_FIELDS}
    for field_name, value in changes.items():
        setattr(opp, field_name, value)
    if "currency" in changes:
        opp.currency = opp.currency.upper()
    if "amount" in changes:
        opp.amount = Decimal(opp.amount)
    opp.forecast_category = _category_for_stage(opp.stage, opp.forecast_category)
    _validate(opp)
    after = {f: getattr(opp, f"{f}_id" if f in ("stage", "owner") else f) for f in TRACKED_FIELDS}
    changed = [f for f in TRACKED_FIELDS if before[f] != after[f]]
    opp.save()
    if changed:
        _snapshot(
            opp,
            changed_fields=",".join(changed),
            at=changed_at or timezone.now(),
            by=changed_by,
            source=history_source,
        ).save()
    opportunity.__dict__.update(opp.__dict__)
    _queue_updates(opp.pk, fields=sorted(changes))
    return opp, changed


def _queue_updates(opportunity_id: int, *, fields: list[str] | None = None) -> None:
    """After commit: the KPI rollups, then the stored forecasts of the deal's owners.

    ``robust``: the change is committed by then, so a failure to queue the follow-up work
    is logged rather than answered as an error (the caller would read "nothing was
    changed"); the nightly rebuild and recompute settle what it missed."""
    from apps.forecasting.services import forecast_deal_changed
    from apps.kpis.services import rollups_deal_changed

    if fields is None:
        transaction.on_commit(
            lambda: rollups_deal_changed(opportunity_id=opportunity_id), robust=True
        )
    else:
        transaction.on_commit(
            lambda: rollups_deal_changed(opportunity_id=opportunity_id, fields=fields),
            robust=True,
        )
    transaction.on_commit(lambda: forecast_deal_changed(opportunity_id=opportunity_id), robust=True)


# --- Bulk upsert ---------------------------------------------------------------------------
#: Row field -> deal attribute. Rows use the field names of the CSV import of deals
#: (docs/imports.md), whose cell validation (apps.imports.validation) they go through.
UPSERT_ATTRS: dict[str, str] = {
    "name": "name",
    "account": "account_id",
    "owner": "owner_id",
    "product": "product_id",
    "amount": "amount",
    "currency": "currency",
    "stage": "stage_id",
    "forecast_category": "forecast_category",
    "deal_type": "deal_type",
    "source": "source",
    "created_date": "created_date",
    "close_date": "close_date",
    "lost_reason": "lost_reason",
}
#: An empty value keeps the stored one (or the default) for these, as in the CSV import;
#: other empty fields are cleared (no product, no source, no lost reason).
KEEP_ON_EMPTY = frozenset({"name", "currency", "forecast_category", "deal_type"})


def new_deal_values() -> dict[str, Any]:
    """The attributes a new deal starts from before a row's cells apply (the bulk upsert's
    and the CSV import's): no product, the base currency, no forecast category, a new
    business deal, no source, no lost reason."""
    return {
        "product_id": None,
        "currency": settings.BASE_CURRENCY,
        "forecast_category": None,
        "deal_type": "new",
        "source": "",
        "lost_reason": "",
    }


_TRACKED_ATTRS = tuple(UPSERT_ATTRS[f] for f in TRACKED_FIELDS)


@dataclass(frozen=True)
class UpsertResult:
    """What a bulk upsert did: deals created, changed, and sent but already as stored."""

    created: int
    updated: int
    unchanged: int


class _Problems:
    """Every problem of a batch, each with the item's index (0-based) and field."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self._seen: set[tuple[int, str | None]] = set()

    def add(self, index: int, field: str | None, message: str) -> None:
        if (index, field) in self._seen:
            return  # one message per field of an item (a missing key is also an empty value)
        self._seen.add((index, field))
        self.items.append({"index": index, "line": index + 1, "field": field, "message": message})

    def raise_if_any(self) -> None:
        if self.items:
            self.items.sort(key=lambda e: (e["index"], e["field"] or ""))
            raise ApplicationError(
                f"{len(self.items)} problem(s) in the rows; nothing was saved.",
                extra={"errors": self.items},
            )


def _lookup_by_key_or_name(
    model: type[Account] | type[Product], keys: set[str], label: str
) -> dict[str, int | str]:
    """Accounts and products by external id, else by name (case-insensitive), as the CSV
    import resolves them; one query for the whole batch. Value: an id or the problem."""
    if not keys:
        return {}
    lowered = {k.lower() for k in keys}
    rows = (
        model.objects.annotate(lname=Lower("name"))
        .filter(Q(external_id__in=keys) | Q(lname__in=lowered))
        .values_list("id", "external_id", "lname")
    )
    by_key: dict[str, int] = {}
    by_name: dict[str, list[int]] = {}
    for pk, external_id, lname in rows:
        by_key[external_id] = pk
        by_name.setdefault(lname, []).append(pk)
    found: dict[str, int | str] = {}
    for key in keys:
        ids = [by_key[key]] if key in by_key else by_name.get(key.lower(), [])
        if len(ids) == 1:
            found[key] = ids[0]
        elif ids:
            found[key] = (
                f"ambiguous {label} {key!r}: {len(ids)} have this name; use the external id."
            )
        else:
            found[key] = f"unknown {label} {key!r}: no {label} has this external id or name."
    return found


def _is_id(key: str) -> bool:
    return key.isascii() and key.isdigit()


def _lookup_owners(users: models.QuerySet, keys: set[str]) -> dict[str, int | str]:
    """People by id, e-mail or full name (case-insensitive), among ``users`` (those the
    caller may see: anyone else is "unknown", like a person who does not exist)."""
    if not keys:
        return {}
    ids = {int(k) for k in keys if _is_id(k) and len(k) < 19}
    emails = {k.lower() for k in keys if "@" in k}
    names = {k.lower() for k in keys if not _is_id(k) and "@" not in k}
    rows = (
        users.annotate(
            lemail=Lower("email"),
            lname=Lower(Trim(Concat("first_name", Value(" "), "last_name"))),
        )
        .filter(Q(pk__in=ids) | Q(lemail__in=emails) | Q(lname__in=names))
        .values_list("id", "lemail", "lname")
    )
    by_id: set[int] = set()
    by_text: dict[str, list[int]] = {}
    for pk, email, name in rows:
        by_id.add(pk)
        if email:
            by_text.setdefault(email, []).append(pk)
        if name:
            by_text.setdefault(name, []).append(pk)
    found: dict[str, int | str] = {}
    for key in keys:
        if _is_id(key):
            matches = [int(key)] if int(key) in by_id else []
        else:
            matches = by_text.get(key.lower(), [])
        if len(matches) == 1:
            found[key] = matches[0]
        elif matches:
            found[key] = (
                f"ambiguous person {key!r}: {len(matches)} people have this name; use the e-mail."
            )
        else:
            found[key] = f"unknown person {key!r}: use the id or e-mail of someone you may see."
    return found


@transaction.atomic
def opportunities_upsert(
    *,
    rows: Sequence[Mapping[str, Any]],
    user: Any,
    changed_at: datetime | None = None,
    history_source: str = OpportunityHistory.Source.API,
) -> UpsertResult:
    """Create or update many deals by external id, all or nothing, in a number of queries
    that does not grow with the batch: each reference kind is resolved in one query, the
    stored deals are read and locked in one, and the writes are one bulk statement each.

    Same rules and history as :func:`opportunity_create` / :func:`opportunity_update`:
    a new deal gets a ``created`` history row, a changed one a row naming the tracked
    fields that changed (in :data:`TRACKED_FIELDS` order), an unchanged one nothing.
    Visibility goes through :mod:`apps.org.policy`: a deal the caller may not change is
    reported exactly like a missing one, and only CRM editors create deals. Any bad item
    raises :class:`ApplicationError` whose ``extra["errors"]`` lists every problem (index,
    field, message) and nothing is written. The KPI rollups and forecasts are queued once
    for the batch after commit.
    """
    from apps.imports.mapping import identity_mapping
    from apps.imports.validation import read_records

    problems = _Problems()
    mapping = identity_mapping("opportunities")
    spec = mapping.spec.fields
    headers: list[str] = []
    for index, row in enumerate(rows):
        for key in row:
            if key not in spec:
                problems.add(index, str(key), f"unknown field; use {', '.join(spec)}.")
            elif key not in headers:
                headers.append(key)
        for name, field_spec in spec.items():
            if field_spec.required and name not in row:
                problems.add(index, name, "missing required field.")
    # Pass 1, the CSV import's cell validation. Lines are the items' indexes; a required
    # field missing from every item is reported above, item by item, not as a header.
    read = read_records(
        headers, [(i, [row.get(h) for h in headers]) for i, row in enumerate(rows)], mapping
    )
    for error in read.errors:
        if not (error.message.startswith("missing column") and error.field in spec):
            problems.add(error.line, error.field, error.message)
    records: list[dict[str, Any]] = []
    # External id (a text field) -> index of the item that first used it.
    first_index: dict[str, int] = {}
    for record in read.records:
        index, key = record["_line"], record["external_id"]
        if key in first_index:
            problems.add(
                index,
                "external_id",
                f"duplicate external id {key!r} (first at index {first_index[key]}).",
            )
        else:
            first_index[key] = index
            records.append(record)
    present = [f for f in UPSERT_ATTRS if f in read.present]

    # References: one query per kind for the whole batch.
    editor = can_edit_crm(user)
    accounts = _lookup_by_key_or_name(Account, {r["account"] for r in records}, "account")
    products = _lookup_by_key_or_name(
        Product, {r["product"] for r in records if r.get("product")}, "product"
    )
    owners = _lookup_owners(visible_users(user), {r["owner"] for r in records})
    stages: dict[str, int] = {}
    outcomes: dict[int, str] = {}
    for pk, name, outcome in Stage.objects.values_list("id", "name", "outcome"):
        stages[name.strip().lower()] = pk
        outcomes[pk] = outcome
    base = settings.BASE_CURRENCY
    codes = {r["currency"] for r in records if r.get("currency")} - {base}
    rated = {base}
    if codes:
        rated |= set(
            ExchangeRate.objects.filter(currency__in=codes, base_currency=base)
            .order_by()
            .values_list("currency", flat=True)
            .distinct()
        )
    # The stored deals the caller may see, locked (in id order, so two batches touching
    # the same deals queue instead of deadlocking) until the batch commits.
    stored = filter_by_owner(Opportunity.objects.all(), scope_for(user)).filter(
        external_id__in=list(first_index)
    )
    stored = stored.order_by("pk").values("id", "external_id", *UPSERT_ATTRS.values())
    if connection.features.has_select_for_update:
        stored = stored.select_for_update()
    existing = {row["external_id"]: row for row in stored}

    now = changed_at or timezone.now()
    allowed_by_owner: dict[int, frozenset[str]] = {}
    creates: list[tuple[str, dict[str, Any]]] = []
    updates: list[tuple[int, dict[str, Any], dict[str, Any], list[str]]] = []
    unchanged = 0
    for record in records:
        index, key = record["_line"], record["external_id"]
        old = existing.get(key)
        if old is None and not editor:
            # Not visible or not there: the same answer, so keys never reveal what exists.
            problems.add(
                index,
                "external_id",
                f"no opportunity {key!r} that you may change; only executives and RevOps "
                "admins create deals.",
            )
            continue
        if old is None:
            values: dict[str, Any] = new_deal_values()
        else:
            values = {attr: old[attr] for attr in UPSERT_ATTRS.values()}
        bad = False
        for name in present:
            value = record.get(name)
            if value is None or value == "":
                if name in KEEP_ON_EMPTY:
                    continue
                value = None if name == "product" else ""
            elif name in ("account", "product", "owner"):
                table = {"account": accounts, "product": products, "owner": owners}[name]
                value = table[value]
                if isinstance(value, str):
                    problems.add(index, name, value)
                    bad = True
                    continue
            elif name == "stage":
                stage = stages.get(value.strip().lower())
                if stage is None:
                    known = ", ".join(sorted(n for n in stages)) or "none yet"
                    problems.add(index, name, f"unknown stage {value!r}; use one of: {known}.")
                    bad = True
                    continue
                value = stage
            values[UPSERT_ATTRS[name]] = value
        if bad:
            continue
        if values["close_date"] < values["created_date"]:
            problems.add(
                index,
                "close_date",
                f"close date {values['close_date']} is before the created date "
                f"{values['created_date']}.",
            )
            continue
        values["forecast_category"] = _category_for_outcome(
            outcomes[values["stage_id"]], values["forecast_category"]
        )
        changed = dict(values) if old is None else {a: v for a, v in values.items() if old[a] != v}
        if "currency" in changed and values["currency"] not in rated:
            problems.add(
                index,
                "currency",
                f"no exchange rate to {base} for {values['currency']}; load its rates first.",
            )
            continue
        if old is None:
            creates.append((key, values))
            continue
        if not changed:
            unchanged += 1
            continue
        owner_id = old["owner_id"]
        if owner_id not in allowed_by_owner:
            allowed_by_owner[owner_id] = deal_editable_fields(
                user, owner_id=owner_id, all_fields=EDITABLE_FIELDS
            )
        refused = sorted({a.removesuffix("_id") for a in changed} - allowed_by_owner[owner_id])
        if refused:
            allowed = ", ".join(sorted(allowed_by_owner[owner_id]))
            for name in refused:
                problems.add(
                    index, name, f"you may not change {name} on this deal (only {allowed})."
                )
            continue
        tracked = [f for f, a in zip(TRACKED_FIELDS, _TRACKED_ATTRS, strict=True) if a in changed]
        updates.append((old["id"], values, changed, tracked))
    problems.raise_if_any()
    if not creates and not updates:
        return UpsertResult(created=0, updated=0, unchanged=unchanged)

    try:
        with transaction.atomic():
            new = [Opportunity(external_id=key, **values) for key, values in creates]
            Opportunity.objects.bulk_create(new)
            if updates:
                _deals_update(updates=[(pk, values) for pk, values, _, _ in updates], at=now)
            history = [
                _snapshot(deal, changed_fields="created", at=now, by=user, source=history_source)
                for deal in new
            ]
            history += [
                _snapshot(
                    Opportunity(pk=pk, **values),
                    changed_fields=",".join(tracked),
                    at=now,
                    by=user,
                    source=history_source,
                )
                for pk, values, _, tracked in updates
                if tracked
            ]
            OpportunityHistory.objects.bulk_create(history)
            if connection.vendor == "postgresql":
                # The foreign keys are checked at commit; check them here instead, so a
                # reference deleted meanwhile is this answer's error, not a failed commit.
                connection.check_constraints()
    except IntegrityError as exc:
        raise ApplicationError(
            "The database refused the batch (a record it refers to changed meanwhile?); "
            f"nothing was saved. Retry. ({str(exc).strip().splitlines()[0]})"
        ) from None
    changed_fields = {deal.pk: None for deal in new} | {
        pk: sorted(a.removesuffix("_id") for a in changed) for pk, _, changed, _ in updates
    }
    _queue_batch_updates(changed_fields)
    audit_record(
        action=Action.IMPORT,
        summary=f"Upserted {len(rows)} opportunity row(s) through the API: {len(creates)} "
        f"created, {len(updates)} updated, {unchanged} unchanged",
        actor=user if getattr(user, "is_authenticated", False) else None,
        detail={
            "kind": "opportunities",
            "source": history_source,
            "created": len(creates),
            "updated": len(updates),
            "unchanged": unchanged,
        },
    )
    return UpsertResult(created=len(creates), updated=len(updates), unchanged=unchanged)


def _deals_update(*, updates: list[tuple[int, dict[str, Any]]], at: datetime) -> None:
    """Write the final values of changed deals (rows already locked) in one statement."""
    attrs = list(UPSERT_ATTRS.values())
    if connection.vendor != "postgresql":
        objects = [Opportunity(pk=pk, updated_at=at, **values) for pk, values in updates]
        Opportunity.objects.bulk_update(objects, [*attrs, "updated_at"])
        return
    # bulk_update's CASE WHEN per row and column costs quadratic time to build and run;
    # one UPDATE ... FROM (VALUES ...) is linear. The casts type the VALUES columns.
    table = connection.ops.quote_name(Opportunity._meta.db_table)
    fields = {f.attname: f for f in Opportunity._meta.concrete_fields}
    names = [connection.ops.quote_name(a) for a in attrs]
    sets = ", ".join(
        f"{name} = v.{name}::{fields[a].db_type(connection)}"
        for a, name in zip(attrs, names, strict=True)
    )
    placeholders = ", ".join(["(%s" + ", %s" * len(attrs) + ")"] * len(updates))
    params: list[Any] = [at]
    for pk, values in updates:
        params += [pk, *(values[a] for a in attrs)]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET {sets}, updated_at = %s "
            f"FROM (VALUES {placeholders}) AS v(id, {', '.join(names)}) "
            f"WHERE {table}.id = v.id",
            params,
        )


def _queue_batch_updates(fields_by_deal: Mapping[int, list[str] | None]) -> None:
    """After commit, once for a batch, what :func:`_queue_updates` does deal by deal: the
    KPI rollups of the deals (their stage-history rollups too when a field that moves them
    changed, as apps.kpis.services.rollups_deal_changed decides), then the forecasts of
    every owner they ever had. ``None`` fields: a new deal (everything may move)."""
    from apps.forecasting.services import forecast_deals_changed
    from apps.kpis.services import STAGE_FIELDS, rollups_deals_changed

    movers = STAGE_FIELDS | {"close_date"}
    ids = list(fields_by_deal)
    stage_ids = [
        pk for pk, fields in fields_by_deal.items() if fields is None or movers & set(fields)
    ]
    # robust: see _queue_updates
    transaction.on_commit(
        lambda: rollups_deals_changed(opportunity_ids=ids, stage_ids=stage_ids), robust=True
    )
    transaction.on_commit(lambda: forecast_deals_changed(opportunity_ids=ids), robust=True)


# --- Reference records -------------------------------------------------------------------
#: Accounts, products and stages have no workflow: they are validated and saved through
#: :mod:`apps.core.records`. They feed the deal rollups only through their deals, and the
#: nightly rebuild settles a change of segment, region or stage outcome.
REFERENCE_MODELS: tuple[type[models.Model], ...] = (Account, Product, Stage)


@transaction.atomic
def reference_record_create(*, model: type[RecordT], data: Mapping[str, Any]) -> RecordT:
    """Create an account, product or stage."""
    records.record_model_check(model, REFERENCE_MODELS)
    return records.record_create(model=model, data=data)


@transaction.atomic
def reference_record_update(*, record: RecordT, changes: Mapping[str, Any]) -> RecordT:
    """Change an account, product or stage."""
    records.record_model_check(type(record), REFERENCE_MODELS)
    return records.record_update(record=record, changes=changes)


@transaction.atomic
def reference_record_delete(*, record: models.Model) -> None:
    """Delete an account, product or stage that no deal refers to."""
    records.record_model_check(type(record), REFERENCE_MODELS)
    records.record_delete(record=record)
