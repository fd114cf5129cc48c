"""Property-based run of the whole API against its own OpenAPI schema (schemathesis).

The schema is fetched from the live /api/schema/ endpoint with a token, then every
operation (every path and method) is called with generated requests as an executive
(who may call everything) over a little seeded data. Each response must not be a server
error, must use a documented status code and content type, and must match the
documented body schema, including the JSON error shape of every 4xx.

Bounded for CI: EXAMPLES generated requests per operation and mode (valid, then
deliberately invalid input); about a minute on two cores.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.imports.models import ImportJob
from tests.factories import (
    CompanyFactory,
    ExecutiveFactory,
    ManagerFactory,
    NpsResponseFactory,
    OpportunityFactory,
    PerformanceReviewFactory,
    QuotaFactory,
    RepFactory,
    ReviewRatingFactory,
    StageFactory,
    SubscriptionFactory,
    TeamFactory,
)

pytestmark = pytest.mark.django_db

EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def seed() -> None:
    """A little of everything, so generated ids and filters hit real rows too."""
    company = CompanyFactory()
    manager = ManagerFactory(team=TeamFactory(name="East", parent=company))
    reps = [RepFactory(team=manager.team) for _ in range(3)]
    open_stage = StageFactory(name="Discovery", order=1)
    won = StageFactory(name="Won", order=2, won=True)
    for index, rep in enumerate(reps):
        deal = OpportunityFactory(owner=rep, stage=open_stage, amount=Decimal(1000 * (index + 1)))
        SubscriptionFactory(account=deal.account)
        NpsResponseFactory(account=deal.account, score=index * 4)
        QuotaFactory(rep=rep)
        review = PerformanceReviewFactory(rep=rep, reviewer=manager, submitted=True)
        ReviewRatingFactory(review=review)
    OpportunityFactory(owner=reps[0], stage=won, close_date=dt.date(2025, 2, 1))
    ImportJob.objects.create(kind="accounts", file_name="accounts.csv", status="committed")


@pytest.fixture
def wsgi_app():
    """The real WSGI application, as served in production. Like Django's test client, it
    must not close the database connection at the end of each request: the test's data
    lives in a transaction on that connection (Postgres would lose it)."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield get_wsgi_application()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_token(settings) -> str:
    # The run makes far more calls than the production rate limits allow.
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            "user": "100000/minute",
            "bulk": "100000/minute",
        },
    }
    seed()
    return Token.objects.create(user=ExecutiveFactory(username="schemathesis")).key


def test_every_operation_conforms_to_the_schema(api_token, wsgi_app):
    headers = {"Authorization": f"Token {api_token}"}
    # given the schema as the live endpoint serves it to an authenticated client
    schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application(), headers=headers)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40, "the schema lost operations"
    failures: list[str] = []
    for operation in operations:
        modes = [GenerationMode.POSITIVE]
        if operation.query or operation.body:
            # A path id alone has no invalid form left once it is an integer in the URL.
            modes.append(GenerationMode.NEGATIVE)
        for mode in modes:

            @settings(
                max_examples=EXAMPLES,
                # The same cases on every run, so CI is repeatable; raise EXAMPLES locally
                # (or drop this) to explore further.
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case):
                # when each generated request is sent, then every check holds
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Exception as exc:  # collect all operations' failures, then report
                failures.append(f"{operation.label} [{mode.value}]: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
