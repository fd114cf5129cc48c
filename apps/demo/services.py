"""Loading the demo company into the database.

:mod:`apps.demo.generator` produces the rows; this module upserts the small reference
tables by natural key, replaces the previous demo rows, and streams the big tables in:
``COPY`` on PostgreSQL, ``bulk_create`` elsewhere. Everything happens in one transaction,
so a failed seed leaves the database as it was.

Demo records are recognised by the ``demo-`` prefix of their external id (accounts,
opportunities and their history, subscriptions, NPS answers), by the demo usernames and
team names (their quotas and reviews), and, for exchange rates, by currency and date range:
the seed owns the rates of the demo currencies over the demo date range.
"""

from __future__ import annotations

import csv
import io
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import IO, Any, cast

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import connection, models, transaction
from tqdm import tqdm

from apps.core.errors import ApplicationError
from apps.core.models import ExchangeRate
from apps.core.services import job_run_record
from apps.crm.models import Account, Opportunity, OpportunityHistory, Product, Stage
from apps.customers.models import NpsResponse, Subscription
from apps.demo import generator as gen
from apps.org.models import Region, Team, User
from apps.performance.models import (
    DEFAULT_COMPETENCIES,
    Competency,
    PerformanceReview,
    ReviewRating,
)
from apps.quotas import fiscal
from apps.quotas.models import FiscalPeriod, Quota
from apps.quotas.services import fiscal_periods_ensure

#: Deals per streamed chunk: bounds memory (about 5 history rows per deal) at any scale.
CHUNK_SIZE = 20_000
#: From this many deals on, PostgreSQL loads drop secondary indexes and foreign keys of the
#: bulk tables and rebuild them at the end (see :func:`_secondary_structures_drop`).
REBUILD_INDEXES_FROM = 100_000


@dataclass(frozen=True)
class SeedResult:
    counts: dict[str, int]
    elapsed_seconds: float
    logins: list[tuple[str, str, str]]
    password: str
    skipped: bool = False


def demo_config(*, seed: int, scale: int, as_of: date) -> gen.DemoConfig:
    """The generator configuration for this installation's business settings."""
    return gen.DemoConfig(
        seed=seed,
        scale=scale,
        as_of=as_of,
        base_currency=settings.BASE_CURRENCY,
        fiscal_start_month=settings.FISCAL_YEAR_START_MONTH,
        time_zone=settings.TIME_ZONE,
        competency_slugs=tuple(slug for slug, _ in DEFAULT_COMPETENCIES),
    )


def demo_data_exists() -> bool:
    return Opportunity.objects.filter(external_id__startswith=gen.DEMO_PREFIX).exists()


def demo_seed(
    *,
    seed: int = 42,
    scale: int = 20_000,
    as_of: date,
    if_empty: bool = False,
    progress: IO[str] | None = None,
    chunk_size: int = CHUNK_SIZE,
    rebuild_indexes_from: int = REBUILD_INDEXES_FROM,
) -> SeedResult:
    """Replace the demo company with the one generated for ``seed`` and ``as_of``.

    ``scale`` is the number of opportunities (1 to 1,000,000). With ``if_empty`` nothing
    is written when demo deals already exist. ``progress`` receives a progress bar (pass
    None for none). Big PostgreSQL loads (``rebuild_indexes_from`` deals and more) rebuild
    the bulk tables' secondary indexes and foreign keys at the end instead of maintaining
    them row by row. Raises :class:`ApplicationError` for bad input or a database that
    cannot take the demo (e.g. fiscal periods of another calendar); nothing is changed then.
    """
    started = time.monotonic()
    try:
        generator = gen.DemoGenerator(demo_config(seed=seed, scale=scale, as_of=as_of))
    except gen.DemoConfigError as exc:
        raise ApplicationError(str(exc)) from exc
    if if_empty and demo_data_exists():
        return SeedResult(
            counts={},
            elapsed_seconds=time.monotonic() - started,
            logins=generator.logins(),
            password=gen.DEMO_PASSWORD,
            skipped=True,
        )
    with job_run_record(kind="demo_seed") as run:
        counts = _load(
            generator,
            progress=progress,
            chunk_size=chunk_size,
            rebuild_indexes_from=rebuild_indexes_from,
        )
        counts.update(_extras_seed(as_of=as_of, seed=seed))
        elapsed = time.monotonic() - started
        run.rows = sum(counts.values())
        run.detail = {
            "seed": seed,
            "scale": scale,
            "as_of": as_of.isoformat(),
            "counts": counts,
            "elapsed_seconds": round(elapsed, 1),
        }
    return SeedResult(
        counts=counts,
        elapsed_seconds=elapsed,
        logins=generator.logins(),
        password=gen.DEMO_PASSWORD,
    )


@transaction.atomic
def _load(
    generator: gen.DemoGenerator,
    *,
    progress: IO[str] | None,
    chunk_size: int,
    rebuild_indexes_from: int,
) -> dict[str, int]:
    fsm = generator.fsm
    last_day = max(generator.plan_end, generator.rates_end)
    fiscal_periods_ensure(
        first_year=fiscal.fiscal_year_of(generator.rates_start, fsm),
        last_year=fiscal.fiscal_year_of(last_day, fsm),
    )
    competencies = _competencies_ensure()
    regions, teams, users = _org_upsert(generator)
    stages = _stages_upsert()
    products = _products_upsert()

    postgres = connection.vendor == "postgresql"
    bulk_tables = (Account, Opportunity, OpportunityHistory, Subscription, NpsResponse)
    deferred: list[str] = []
    if postgres:
        # Ids are assigned here rather than by the database, so no one else may insert
        # into these tables until the seed commits. Readers are not blocked, except by a
        # big load: dropping its indexes locks the tables until the commit.
        with connection.cursor() as cursor:
            tables = ", ".join(m._meta.db_table for m in bulk_tables)
            cursor.execute(f"LOCK TABLE {tables} IN SHARE ROW EXCLUSIVE MODE")
        if generator.config.scale >= rebuild_indexes_from:
            deferred = _secondary_structures_drop(bulk_tables)
    _demo_delete(generator, users=users, teams=teams)
    ids = _Ids(
        region={code: r.pk for code, r in regions.items()},
        user={name: u.pk for name, u in users.items()},
        stage={name: s.pk for name, s in stages.items()},
        product={ext: p.pk for ext, p in products.items()},
        base={model: _max_id(model) for model in bulk_tables},
    )
    writer: _CopyWriter | _BulkWriter = _CopyWriter() if postgres else _BulkWriter()
    bar = tqdm(
        total=generator.config.scale,
        unit="deal",
        unit_scale=True,
        file=progress or sys.stderr,
        disable=progress is None,
        desc="seed_demo",
    )
    with bar:
        try:
            _stream(generator, writer, ids, chunk_size=chunk_size, bar=bar)
        except BaseException:
            writer.close(check=False)
            raise
        writer.close()

    if deferred:
        _secondary_structures_restore(deferred, progress=progress)
    _quotas_load(generator, users=users, teams=teams)
    _reviews_load(generator, users=users, competencies=competencies)
    _rates_load(generator)
    if postgres:
        _sequences_catch_up(bulk_tables)
        # Fresh statistics, so the rollup rebuild that follows plans its queries well.
        with connection.cursor() as cursor:
            for model in bulk_tables:
                cursor.execute(f"ANALYZE {model._meta.db_table}")
    return _counts()


def _extras_seed(*, as_of: date, seed: int) -> dict[str, int]:
    """What the other apps add to the demo company once it exists: default digest
    subscriptions and alerts for the executives and managers."""
    from apps.digests.demo import digests_demo_seed
    from apps.digests.models import DigestAlert, DigestSubscription

    digests_demo_seed(as_of=as_of)  # idempotent: a second run adds nothing
    return {model._meta.label: model.objects.count() for model in (DigestSubscription, DigestAlert)}


@dataclass(frozen=True)
class _Ids:
    """Database ids by natural key, and the id after which each bulk table's new rows
    start (the generator's row index + 1 is added to it)."""

    region: dict[str, int]
    user: dict[str, int]
    stage: dict[str, int]
    product: dict[str, int]
    base: dict[type[models.Model], int]


def _stream(
    generator: gen.DemoGenerator,
    writer: _CopyWriter | _BulkWriter,
    ids: _Ids,
    *,
    chunk_size: int,
    bar: tqdm,
) -> None:
    """Write the generator's stream chunk by chunk: accounts, deals, history,
    subscriptions and NPS answers, each with the ids assigned from ``ids.base``."""
    region_ids, user_ids, stage_ids, product_ids = ids.region, ids.user, ids.stage, ids.product
    acc0, opp0 = ids.base[Account], ids.base[Opportunity]
    sub0, nps0 = ids.base[Subscription], ids.base[NpsResponse]
    history_id = ids.base[OpportunityHistory]
    for chunk in generator.chunks(chunk_size):
        writer.write(
            Account,
            [
                "id",
                "external_id",
                "name",
                "segment",
                "industry",
                "region_id",
                "country",
                "created_at",
            ],
            (
                (
                    acc0 + a.index + 1,
                    a.external_id,
                    a.name,
                    a.segment,
                    a.industry,
                    region_ids[a.region],
                    a.country,
                    generator.business_time(a.created_on, 0),
                )
                for a in chunk.accounts
            ),
        )
        writer.write(
            Opportunity,
            [
                "id",
                "external_id",
                "name",
                "account_id",
                "owner_id",
                "product_id",
                "amount",
                "currency",
                "stage_id",
                "forecast_category",
                "deal_type",
                "source",
                "created_date",
                "close_date",
                "lost_reason",
                "updated_at",
            ],
            (
                (
                    opp0 + o.index + 1,
                    o.external_id,
                    o.name,
                    acc0 + o.account + 1,
                    user_ids[o.owner],
                    product_ids[o.product],
                    writer.money(o.amount_cents),
                    o.currency,
                    stage_ids[o.stage],
                    o.forecast_category,
                    o.deal_type,
                    o.source,
                    o.created_date,
                    o.close_date,
                    o.lost_reason,
                    o.updated_at,
                )
                for o in chunk.opportunities
            ),
        )
        first = history_id + 1
        history_id += len(chunk.history)
        writer.write(
            OpportunityHistory,
            [
                "id",
                "opportunity_id",
                "changed_at",
                "changed_by_id",
                "source",
                "changed_fields",
                "stage_id",
                "amount",
                "currency",
                "close_date",
                "owner_id",
                "forecast_category",
            ],
            (
                (
                    first + i,
                    opp0 + h.opportunity + 1,
                    h.changed_at,
                    user_ids[h.changed_by],
                    gen.HISTORY_SOURCE,
                    h.changed_fields,
                    stage_ids[h.stage],
                    writer.money(h.amount_cents),
                    h.currency,
                    h.close_date,
                    user_ids[h.owner],
                    h.forecast_category,
                )
                for i, h in enumerate(chunk.history)
            ),
        )
        writer.write(
            Subscription,
            [
                "id",
                "external_id",
                "account_id",
                "product_id",
                "mrr",
                "currency",
                "start_date",
                "end_date",
            ],
            (
                (
                    sub0 + s.index + 1,
                    s.external_id,
                    acc0 + s.account + 1,
                    product_ids[s.product],
                    writer.money(s.mrr_cents),
                    s.currency,
                    s.start_date,
                    writer.null if s.end_date is None else s.end_date,
                )
                for s in chunk.subscriptions
            ),
        )
        writer.write(
            NpsResponse,
            [
                "id",
                "external_id",
                "account_id",
                "contact_name",
                "contact_email",
                "score",
                "comment",
                "responded_on",
            ],
            (
                (
                    nps0 + n.index + 1,
                    n.external_id,
                    acc0 + n.account + 1,
                    n.contact_name,
                    n.contact_email,
                    n.score,
                    n.comment,
                    n.responded_on,
                )
                for n in chunk.nps
            ),
        )
        bar.update(len(chunk.opportunities))


# --- Reference data -------------------------------------------------------------------


def _competencies_ensure() -> dict[str, Competency]:
    result = {}
    for order, (slug, name) in enumerate(DEFAULT_COMPETENCIES, start=1):
        competency, _ = Competency.objects.get_or_create(
            slug=slug, team=None, defaults={"name": name, "order": order}
        )
        result[slug] = competency
    return result


def _org_upsert(
    generator: gen.DemoGenerator,
) -> tuple[dict[str, Region], dict[str, Team], dict[str, User]]:
    team_nodes, people, _ = generator.org()
    regions = {}
    for spec in gen.REGIONS:
        region, _ = Region.objects.update_or_create(code=spec.code, defaults={"name": spec.name})
        regions[spec.code] = region
    # One hash for every demo user: hashing is deliberately slow and they share a password.
    password = make_password(gen.DEMO_PASSWORD)
    users: dict[str, User] = {}
    for person in people:
        user, _ = User.objects.update_or_create(
            username=person.username,
            defaults={
                "first_name": person.first_name,
                "last_name": person.last_name,
                "email": person.email,
                "role": person.role,
                "title": person.title,
                "is_staff": person.is_staff,
                "is_superuser": person.is_superuser,
                "is_active": True,
                "hired_on": person.hired_on,
                "password": password,
            },
        )
        users[person.username] = user
    teams: dict[str, Team] = {}
    for node in team_nodes:
        parent = teams[node.parent] if node.parent else None
        team, _ = Team.objects.update_or_create(
            parent=parent,
            name=node.name,
            defaults={
                "kind": node.kind,
                "manager": users[node.manager],
                "region": regions[node.region] if node.region else None,
                "is_active": True,
            },
        )
        teams[node.name] = team
    for person in people:
        team_id = teams[person.team].pk if person.team else None
        user = users[person.username]
        if user.team_id != team_id:
            user.team_id = team_id
            user.save(update_fields=["team"])
    return regions, teams, users


def _stages_upsert() -> dict[str, Stage]:
    names = [s.name for s in gen.STAGES]
    clash = Stage.objects.filter(order__in=[s.order for s in gen.STAGES]).exclude(name__in=names)
    if clash.exists():
        taken = ", ".join(f"{s.name} (order {s.order})" for s in clash)
        raise ApplicationError(
            f"The demo stages need orders 1-{len(gen.STAGES)}, but other stages hold them: "
            f"{taken}. Rename or reorder those stages first."
        )
    stages = {}
    for spec in gen.STAGES:
        stage, _ = Stage.objects.update_or_create(
            name=spec.name,
            defaults={
                "order": spec.order,
                "outcome": spec.outcome,
                "probability": Decimal(spec.probability),
                "is_active": True,
            },
        )
        stages[spec.name] = stage
    return stages


def _products_upsert() -> dict[str, Product]:
    clash = Product.objects.filter(name__in=[p.name for p in gen.PRODUCTS]).exclude(
        external_id__in=[p.external_id for p in gen.PRODUCTS]
    )
    if clash.exists():
        raise ApplicationError(
            "Products named like the demo products already exist with other external ids: "
            + ", ".join(clash.values_list("name", flat=True))
        )
    products = {}
    for spec in gen.PRODUCTS:
        product, _ = Product.objects.update_or_create(
            external_id=spec.external_id,
            defaults={"name": spec.name, "family": spec.family, "is_active": True},
        )
        products[spec.external_id] = product
    return products


# --- Replacing the previous demo rows -----------------------------------------------------


def _demo_delete(
    generator: gen.DemoGenerator, *, users: dict[str, User], teams: dict[str, Team]
) -> None:
    """Delete the previous demo rows (never the upserted people, teams or stages)."""
    like = gen.DEMO_PREFIX + "%"
    opp = Opportunity._meta.db_table
    hist = OpportunityHistory._meta.db_table
    with connection.cursor() as cursor:
        _release_references(Opportunity, exclude={OpportunityHistory})
        cursor.execute(
            f"DELETE FROM {hist} WHERE opportunity_id IN "
            f"(SELECT id FROM {opp} WHERE external_id LIKE %s)",
            [like],
        )
        for model in (Opportunity, Subscription, NpsResponse, Account):
            _release_references(model, exclude={OpportunityHistory, Opportunity})
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE external_id LIKE %s",
                [like],
            )
    user_ids = [u.pk for u in users.values()]
    Quota.objects.filter(
        models.Q(rep_id__in=user_ids) | models.Q(team_id__in=[t.pk for t in teams.values()])
    ).delete()
    PerformanceReview.objects.filter(rep_id__in=user_ids).delete()
    ExchangeRate.objects.filter(
        base_currency=generator.base,
        currency__in=generator.rate_currencies(),
        rate_date__gte=generator.rates_start,
        rate_date__lte=generator.rates_end,
    ).delete()


def _release_references(model: type[models.Model], *, exclude: set[type[models.Model]]) -> None:
    """Rows of other apps that point at demo rows of ``model`` get what their foreign key's
    ``on_delete`` promises, since the demo rows themselves are deleted in bulk SQL."""
    for rel in model._meta.related_objects:
        if rel.many_to_many or rel.related_model in exclude:
            continue
        related_model = cast(type[models.Model], rel.related_model)  # never "self" here
        related = related_model._base_manager.filter(
            **{f"{rel.field.name}__external_id__startswith": gen.DEMO_PREFIX}
        )
        if rel.on_delete is models.SET_NULL:
            related.update(**{rel.field.name: None})
        elif rel.on_delete in (models.CASCADE, models.DO_NOTHING):
            related.delete()
        elif related.exists():
            raise ApplicationError(
                f"{related.count()} {related_model._meta.verbose_name_plural} refer to demo "
                f"{model._meta.verbose_name_plural} and are protected; delete them first."
            )


def _secondary_structures_drop(tables: Sequence[type[models.Model]]) -> list[str]:
    """PostgreSQL, big loads: drop the non-unique indexes and foreign keys of the bulk
    tables and return the statements that recreate them. Building an index once and
    validating a foreign key with one join is much faster than maintaining them row by
    row (the approach the PostgreSQL manual recommends for populating a database). It is
    all inside the seed's transaction, so a failure restores them untouched; primary keys
    and unique constraints stay, so duplicates are still refused during the load."""
    quote = connection.ops.quote_name
    restore_indexes: list[str] = []
    restore_fks: list[str] = []
    with connection.cursor() as cursor:
        # Tables with pending deferred checks (rows written earlier in an enclosing
        # transaction) cannot be altered: run those checks now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for model in tables:
            table = model._meta.db_table
            cursor.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
                [table],
            )
            for name, definition in cursor.fetchall():
                cursor.execute(f"ALTER TABLE {quote(table)} DROP CONSTRAINT {quote(name)}")
                restore_fks.append(
                    f"ALTER TABLE {quote(table)} ADD CONSTRAINT {quote(name)} {definition}"
                )
            cursor.execute(
                "SELECT c.relname, pg_get_indexdef(c.oid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = %s::regclass AND NOT i.indisunique AND NOT i.indisprimary "
                "ORDER BY c.relname",
                [table],
            )
            for name, definition in cursor.fetchall():
                cursor.execute(f"DROP INDEX {quote(name)}")
                restore_indexes.append(definition)
    return restore_indexes + restore_fks


def _secondary_structures_restore(statements: list[str], *, progress: IO[str] | None) -> None:
    with connection.cursor() as cursor:
        # Deleting the previous demo queued deferred foreign-key checks from tables that
        # refer to the bulk tables (e.g. stored deal scores); Postgres will not build an
        # index on a table with pending trigger events, so run those checks now.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        # Index builds sort in memory when they can; this only lasts for the transaction.
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for statement in tqdm(
            statements,
            desc="indexes",
            unit="index",
            file=progress or sys.stderr,
            disable=progress is None,
        ):
            cursor.execute(statement)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")  # back to Django's default


def _max_id(model: type[models.Model]) -> int:
    return model._base_manager.aggregate(m=models.Max("id"))["m"] or 0


def _sequences_catch_up(tables: Sequence[type[models.Model]]) -> None:
    """Move each id sequence past the ids the seed assigned (never backwards)."""
    with connection.cursor() as cursor:
        for model in tables:
            table = model._meta.db_table
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST("
                f"(SELECT COALESCE(MAX(id), 1) FROM {table}), "
                "COALESCE(pg_sequence_last_value(pg_get_serial_sequence(%s, 'id')), 1)))",
                [table, table],
            )


# --- Writers ---------------------------------------------------------------------------


class _CopyWriter:
    """PostgreSQL: one COPY per table per chunk from an in-memory CSV buffer.

    The COPYs run on a helper thread over the same database connection (and so in the
    same transaction), so the server ingests one chunk while Python generates the next.
    Only that thread touches the connection until :meth:`close`; the queue is short, so
    memory stays bounded.
    """

    #: How COPY's CSV format spells NULL here (an empty field is an empty string).
    null = r"\N"

    def __init__(self) -> None:
        connection.ensure_connection()
        self._raw = connection.connection
        self._queue: queue.Queue[tuple[str, io.StringIO] | None] = queue.Queue(maxsize=4)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._copy_loop, name="seed-demo-copy")
        self._thread.start()

    @staticmethod
    def money(cents: int) -> str:
        return f"{cents // 100}.{cents % 100:02d}"

    def _copy_loop(self) -> None:
        with self._raw.cursor() as cursor:
            while (item := self._queue.get()) is not None:
                if self._error is not None:
                    continue  # drain the queue; close() reports the first error
                try:
                    cursor.copy_expert(*item)
                except BaseException as exc:
                    self._error = exc

    def write(self, model: type[models.Model], attnames: list[str], rows: Iterable[tuple]) -> None:
        if self._error is not None:
            raise self._error
        columns = ", ".join(model._meta.get_field(a).column for a in attnames)  # type: ignore[union-attr, misc]  # concrete fields only
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        if buffer.tell() == 0:
            return
        buffer.seek(0)
        sql = f"COPY {model._meta.db_table} ({columns}) FROM STDIN WITH (FORMAT csv, NULL '\\N')"
        self._queue.put((sql, buffer))

    def close(self, *, check: bool = True) -> None:
        """Wait for the queued COPYs; raise the first one's error (unless ``check`` is
        off, when another error is already on its way)."""
        self._queue.put(None)
        self._thread.join()
        if check and self._error is not None:
            raise self._error


class _BulkWriter:
    """Other databases: bulk_create in batches."""

    null = None

    def close(self, *, check: bool = True) -> None:
        """Nothing is pending: every write is done when it returns."""

    @staticmethod
    def money(cents: int) -> Decimal:
        return Decimal(cents).scaleb(-2)

    def write(self, model: type[models.Model], attnames: list[str], rows: Iterable[tuple]) -> None:
        make: Callable[..., Any] = model
        objs = [make(**dict(zip(attnames, row, strict=True))) for row in rows]
        model._base_manager.bulk_create(objs, batch_size=2_000)


# --- Quotas, reviews, rates --------------------------------------------------------------


def _quotas_load(
    generator: gen.DemoGenerator, *, users: dict[str, User], teams: dict[str, Team]
) -> None:
    periods = dict(
        FiscalPeriod.objects.filter(kind=FiscalPeriod.Kind.MONTH).values_list("name", "id")
    )
    base = generator.base
    Quota.objects.bulk_create(
        [
            Quota(
                period_id=periods[q.period],
                rep=users[q.rep] if q.rep else None,
                team=teams[q.team] if q.team else None,
                amount=Decimal(q.amount_cents).scaleb(-2),
                currency=base,
                set_by=users[q.set_by],
                set_at=q.set_at,
                note="Annual plan (demo)",
            )
            for q in generator.quotas()
        ],
        batch_size=2_000,
    )


def _reviews_load(
    generator: gen.DemoGenerator, *, users: dict[str, User], competencies: dict[str, Competency]
) -> None:
    periods = dict(
        FiscalPeriod.objects.filter(kind=FiscalPeriod.Kind.QUARTER).values_list("name", "id")
    )
    rows = generator.reviews()
    PerformanceReview.objects.bulk_create(
        [
            PerformanceReview(
                rep=users[r.rep],
                reviewer=users[r.reviewer],
                period_id=periods[r.period],
                status=r.status,
                strengths=r.strengths,
                areas_to_grow=r.areas_to_grow,
                goals=r.goals,
                comments=r.comments,
                rep_response=r.rep_response,
                submitted_at=r.submitted_at,
                acknowledged_at=r.acknowledged_at,
            )
            for r in rows
        ],
        batch_size=1_000,
    )
    review_ids = {
        (rep_id, period_id): pk
        for pk, rep_id, period_id in PerformanceReview.objects.filter(
            rep_id__in=[u.pk for u in users.values()]
        ).values_list("id", "rep_id", "period_id")
    }
    ReviewRating.objects.bulk_create(
        [
            ReviewRating(
                review_id=review_ids[(users[r.rep].pk, periods[r.period])],
                competency=competencies[slug],
                score=score,
            )
            for r in rows
            for slug, score in r.ratings
        ],
        batch_size=2_000,
    )


def _rates_load(generator: gen.DemoGenerator) -> None:
    ExchangeRate.objects.bulk_create(
        [
            ExchangeRate(
                currency=r.currency,
                base_currency=generator.base,
                rate_date=r.rate_date,
                rate=r.rate,
            )
            for r in generator.rates()
        ],
        batch_size=2_000,
    )


def _counts() -> dict[str, int]:
    tracked = (
        Region,
        Team,
        User,
        Stage,
        Product,
        FiscalPeriod,
        Account,
        Opportunity,
        OpportunityHistory,
        Quota,
        PerformanceReview,
        ReviewRating,
        Subscription,
        NpsResponse,
        ExchangeRate,
    )
    return {f"{m._meta.app_label}.{m.__name__}": m._base_manager.count() for m in tracked}
