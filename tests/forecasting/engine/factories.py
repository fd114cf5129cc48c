"""Synthetic deals with known true close probabilities, written in bulk (deals and their
history rows, as the CRM services would have written them).

Each deal is created in a stage (kept until it closes), with a forecast category and
0-2 close-date pushes made in its first days. Its true probability of being won is

    p = sigmoid(-1.0 + 2.2 [commit] + 1.0 [best case] - 0.9 x pushes + 0.4 [propose])

so the stage's default probability (10 / 25 / 60 %) is a poor guide. It closes (won with
probability p, else lost) on its final expected close date, if that is before ``as_of``.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from apps.crm.models import Account, Opportunity, OpportunityHistory

STAGES = ("prospect", "qualify", "propose")
CATEGORIES = ("pipeline", "best_case", "commit")


def true_probability(stage: str, category: str, pushes: int) -> float:
    z = -1.0 + 2.2 * (category == "commit") + 1.0 * (category == "best_case")
    z += -0.9 * pushes + 0.4 * (stage == "propose")
    return 1.0 / (1.0 + math.exp(-z))


@dataclass
class SyntheticDeal:
    opportunity: Opportunity
    probability: float
    outcome: str  # won / lost / open


def _moment(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def synthetic_book(world, *, as_of: date, deals: int = 1500, seed: int = 11) -> list[SyntheticDeal]:
    rng = random.Random(seed)
    account = Account.objects.create(external_id="acc-synth", name="Synthetic", segment="smb")
    owners = [world.rep_a, world.rep_b, world.rep_c]
    stages = world.stages
    opportunities, specs = [], []
    for i in range(deals):
        created = as_of - timedelta(days=rng.randint(40, 900))
        stage = rng.choice(STAGES)
        category = rng.choice(CATEGORIES)
        pushes = rng.choice((0, 0, 1, 2))
        p = true_probability(stage, category, pushes)
        first_close = created + timedelta(days=rng.randint(30, 80))
        final_close = first_close + timedelta(days=20 * pushes)
        closed = final_close <= as_of
        outcome = ("won" if rng.random() < p else "lost") if closed else "open"
        amount = Decimal(rng.randint(10, 200) * 100)
        opportunities.append(
            Opportunity(
                external_id=f"syn-{i}",
                name=f"Synthetic {i}",
                account=account,
                owner=owners[i % 3],
                amount=amount,
                currency="USD",
                stage=stages[outcome] if outcome != "open" else stages[stage],
                forecast_category=(
                    "closed" if outcome == "won" else "omitted" if outcome == "lost" else category
                ),
                created_date=created,
                close_date=final_close,
            )
        )
        specs.append(
            (created, stage, category, pushes, first_close, final_close, outcome, p, amount)
        )
    Opportunity.objects.bulk_create(opportunities)
    rows, result = [], []
    for opp, (
        created,
        stage,
        category,
        pushes,
        first_close,
        final_close,
        outcome,
        p,
        amount,
    ) in zip(opportunities, specs, strict=True):
        common = {"opportunity": opp, "amount": amount, "currency": "USD", "owner": opp.owner}
        rows.append(
            OpportunityHistory(
                changed_at=_moment(created),
                changed_fields="created",
                stage=stages[stage],
                close_date=first_close,
                forecast_category=category,
                **common,
            )
        )
        close = first_close
        for k in range(pushes):
            close = close + timedelta(days=20)
            rows.append(
                OpportunityHistory(
                    changed_at=_moment(created + timedelta(days=k + 1)),
                    changed_fields="close_date",
                    stage=stages[stage],
                    close_date=close,
                    forecast_category=category,
                    **common,
                )
            )
        if outcome != "open":
            rows.append(
                OpportunityHistory(
                    changed_at=_moment(final_close, 16),
                    changed_fields="stage,forecast_category",
                    stage=stages[outcome],
                    close_date=final_close,
                    forecast_category="closed" if outcome == "won" else "omitted",
                    **common,
                )
            )
        result.append(SyntheticDeal(opp, p, outcome))
    OpportunityHistory.objects.bulk_create(rows)
    return result
