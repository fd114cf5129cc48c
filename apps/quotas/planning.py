"""Quota planning arithmetic, as pure functions (no Django, no database).

Amounts are Decimal money with two places (cents). Every split returns parts that add up
to exactly the amount given, so a spread quarter never gains or loses a cent.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
#: The largest amount a quota may hold: MoneyField keeps 18 digits, 2 of them after the point.
MAX_AMOUNT = Decimal("9999999999999999.99")
#: A growth percentage outside this range is almost certainly a typo (e.g. 1000 for 10.00).
MIN_GROWTH_PCT = Decimal("-100")
MAX_GROWTH_PCT = Decimal("1000")


class AmountError(ValueError):
    """Text that is not a valid quota amount; the message says why, for a field error."""


def parse_amount(text: str) -> Decimal | None:
    """A quota amount from what a person typed: ``""`` is None (no value); ``1,250.50``
    and ``1 250.50`` are 1250.50. Refuses negatives, more than two decimal places, and
    anything that is not a plain decimal number (``1e3``, ``NaN``, ``12abc``)."""
    cleaned = (text or "").strip().replace(",", "").replace(" ", "").replace("\u00a0", "")
    if cleaned == "":
        return None
    if not all(ch.isdigit() or ch in ".-+" for ch in cleaned):
        raise AmountError(f"{text.strip()!r} is not a number.")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise AmountError(f"{text.strip()!r} is not a number.") from None
    if not value.is_finite():
        raise AmountError(f"{text.strip()!r} is not a number.")
    if value < 0:
        raise AmountError("A quota cannot be negative.")
    if value != value.quantize(CENT):
        raise AmountError("Use at most two decimal places (cents).")
    if value > MAX_AMOUNT:
        raise AmountError("The amount is too large.")
    return value.quantize(CENT)


def apply_growth(amount: Decimal, growth_pct: Decimal) -> Decimal:
    """``amount`` grown by ``growth_pct`` percent (10 means +10 %), rounded half-up to cents."""
    return (amount * (Decimal(100) + growth_pct) / Decimal(100)).quantize(
        CENT, rounding=ROUND_HALF_UP
    )


def check_growth(growth_pct: Decimal) -> None:
    if not MIN_GROWTH_PCT <= growth_pct <= MAX_GROWTH_PCT:
        raise AmountError(
            f"Growth must be between {MIN_GROWTH_PCT} % and {MAX_GROWTH_PCT} % (10 means +10 %)."
        )


def split_even(amount: Decimal, parts: int) -> list[Decimal]:
    """``amount`` in ``parts`` equal shares; left-over cents go one each to the first shares."""
    if parts < 1:
        raise ValueError("parts must be at least 1")
    cents = int((amount / CENT).to_integral_value(rounding=ROUND_HALF_UP))
    base, extra = divmod(cents, parts)
    return [Decimal(base + (1 if i < extra else 0)) * CENT for i in range(parts)]


def split_weighted(amount: Decimal, weights: Sequence[Decimal]) -> list[Decimal]:
    """``amount`` in shares proportional to ``weights`` (e.g. last year's bookings per
    month). Largest-remainder rounding: each share is floored to cents and the cents left
    over go to the shares with the largest remainders, so the shares sum to ``amount``.
    Raises ValueError when every weight is zero (there is nothing to be proportional to)."""
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    total = sum(weights, Decimal(0))
    if not weights or total == 0:
        raise ValueError("the weights are all zero")
    cents = int((amount / CENT).to_integral_value(rounding=ROUND_HALF_UP))
    exact = [Decimal(cents) * w / total for w in weights]
    floors = [int(x) for x in exact]
    left = cents - sum(floors)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-(exact[i] - floors[i]), i))
    for i in by_remainder[:left]:
        floors[i] += 1
    return [Decimal(c) * CENT for c in floors]
