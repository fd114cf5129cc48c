"""Display formatting of dashboard figures: pure functions, no Django import.

Conventions: ``None`` means "no data" and is shown as an em dash, never as 0. Money is in
the base currency and shown compact (1.2K, 3.4M, 1.1B); percentages arrive as fractions
(0.25 is 25 %), as the KPI engine returns them; NPS is a score from -100 to 100.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

EM_DASH = "\u2014"
SYMBOLS = {"USD": "$", "EUR": "\u20ac", "GBP": "\u00a3", "JPY": "\u00a5"}
_STEPS = ((Decimal("1e9"), "B"), (Decimal("1e6"), "M"), (Decimal("1e3"), "K"))
_THRESHOLD = {"B": Decimal("0.99995"), "M": Decimal("0.99995"), "K": Decimal("0.9995")}


def _dec(value: Decimal | int | float) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def _round(value: Decimal, places: int) -> str:
    quantum = Decimal(1).scaleb(-places)
    return f"{value.quantize(quantum, rounding=ROUND_HALF_UP):,}"


def compact_number(value: Decimal | int | float | None) -> str:
    """1234 -> '1.2K', 2500000 -> '2.5M'; below a thousand, whole units."""
    if value is None:
        return EM_DASH
    number = _dec(value)
    sign = "-" if number < 0 else ""
    size = abs(number)
    for step, suffix in _STEPS:
        # The threshold is where the next smaller unit would round up to 1,000 of itself,
        # so 999,950 shows as 1.0M rather than 1,000.0K.
        if size >= step * _THRESHOLD[suffix]:
            return f"{sign}{_round(size / step, 1)}{suffix}"
    return f"{sign}{_round(size, 0)}"


def money(value: Decimal | int | float | None, currency: str) -> str:
    """Compact money in ``currency``: '$1.2M', 'CHF 950'."""
    if value is None:
        return EM_DASH
    number = _dec(value)
    text = compact_number(abs(number))
    symbol = SYMBOLS.get(currency)
    body = f"{symbol}{text}" if symbol else f"{currency} {text}"
    return f"-{body}" if number < 0 else body


def money_full(value: Decimal | int | float | None, currency: str) -> str:
    """Money to the cent with thousands separators: '$1,234,567.89'."""
    if value is None:
        return EM_DASH
    number = _dec(value)
    text = _round(abs(number), 2)
    symbol = SYMBOLS.get(currency)
    body = f"{symbol}{text}" if symbol else f"{currency} {text}"
    return f"-{body}" if number < 0 else body


def percent(value: Decimal | int | float | None, places: int = 1) -> str:
    """A fraction as a percentage: Decimal('0.253') -> '25.3%'."""
    if value is None:
        return EM_DASH
    return f"{_round(_dec(value) * 100, places)}%"


def integer(value: Decimal | int | float | None) -> str:
    if value is None:
        return EM_DASH
    return _round(_dec(value), 0)


def days(value: Decimal | int | float | None) -> str:
    if value is None:
        return EM_DASH
    return f"{_round(_dec(value), 1)} d"


def multiple(value: Decimal | int | float | None) -> str:
    if value is None:
        return EM_DASH
    return f"{_round(_dec(value), 1)}\u00d7"


def score(value: Decimal | int | float | None) -> str:
    """NPS: a signed whole number, '+42' or '-7'."""
    if value is None:
        return EM_DASH
    number = _dec(value).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return f"+{number}" if number > 0 else f"{number}"


def kpi_display(value: Decimal | int | float | None, unit: str, currency: str) -> str:
    """Format a KPI value by its registry unit."""
    if unit in ("money", "money_per_day"):
        return money(value, currency)
    if unit == "percent":
        return percent(value)
    if unit == "days":
        return days(value)
    if unit == "ratio":
        return multiple(value)
    if unit == "score":
        return score(value)
    return integer(value)


def change(
    current: Decimal | int | None, before: Decimal | int | None, unit: str, direction: str
) -> tuple[str, str]:
    """The change from ``before`` to ``current`` as (text, tone).

    Percent KPIs and NPS change in points (a rate going 20 % -> 25 % is +5.0 pts, not
    +25 %); everything else in percent of the earlier value. ``tone`` is 'good', 'bad' or
    'flat' by the KPI's direction ('up' is good when the KPI should rise)."""
    if current is None or before is None:
        return EM_DASH, "flat"
    now, then = _dec(current), _dec(before)
    if unit == "percent":
        delta = (now - then) * 100
        text = f"{'+' if delta > 0 else ''}{_round(delta, 1)} pts"
    elif unit == "score":
        delta = now - then
        text = f"{'+' if delta > 0 else ''}{_round(delta, 0)} pts"
    else:
        if then == 0:
            return EM_DASH, "flat"
        delta = (now - then) / abs(then) * 100
        text = f"{'+' if delta > 0 else ''}{_round(delta, 1)}%"
    if delta == 0:
        return text, "flat"
    rising = delta > 0
    return text, "good" if rising == (direction == "up") else "bad"
