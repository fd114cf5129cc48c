"""The pure planning arithmetic (no database)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.quotas import planning

D = Decimal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1000", D("1000.00")),
        (" 1,250.5 ", D("1250.50")),
        ("1 250.50", D("1250.50")),
        ("0", D("0.00")),
        ("", None),
        ("   ", None),
    ],
)
def test_parse_amount_accepts_plain_decimals(text, expected):
    assert planning.parse_amount(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("-5", "cannot be negative"),
        ("12abc", "not a number"),
        ("1e3", "not a number"),
        ("NaN", "not a number"),
        ("1.234", "two decimal places"),
        ("1.2.3", "not a number"),
        ("99999999999999999", "too large"),
    ],
)
def test_parse_amount_refuses_with_a_reason(text, message):
    with pytest.raises(planning.AmountError, match=message):
        planning.parse_amount(text)


def test_split_even_gives_left_over_cents_to_the_first_months():
    assert planning.split_even(D("1000.00"), 3) == [D("333.34"), D("333.33"), D("333.33")]
    assert planning.split_even(D("0.02"), 3) == [D("0.01"), D("0.01"), D("0.00")]
    assert sum(planning.split_even(D("12345.67"), 7)) == D("12345.67")


def test_split_weighted_is_proportional_and_exact():
    # weights 1:2:1 -> 25 %, 50 %, 25 %
    assert planning.split_weighted(D("1000.00"), [D(10), D(20), D(10)]) == [
        D("250.00"),
        D("500.00"),
        D("250.00"),
    ]
    # 100 / 3 thirds: one cent left over goes to the largest remainder (the first, on a tie)
    assert planning.split_weighted(D("100.00"), [D(1), D(1), D(1)]) == [
        D("33.34"),
        D("33.33"),
        D("33.33"),
    ]
    # a month with no bookings gets nothing
    assert planning.split_weighted(D("90.00"), [D(0), D(3), D(6)]) == [
        D("0.00"),
        D("30.00"),
        D("60.00"),
    ]


def test_split_weighted_refuses_all_zero_weights():
    with pytest.raises(ValueError, match="all zero"):
        planning.split_weighted(D("100"), [D(0), D(0), D(0)])


def test_apply_growth_rounds_half_up_to_cents():
    assert planning.apply_growth(D("1000.00"), D("10")) == D("1100.00")
    assert planning.apply_growth(D("333.33"), D("2.5")) == D("341.66")  # 341.663... -> .66
    assert planning.apply_growth(D("0.10"), D("-5")) == D("0.10")  # 0.095 -> 0.10
    assert planning.apply_growth(D("500.00"), D("-100")) == D("0.00")


@pytest.mark.parametrize("pct", [D("-100.01"), D("1000.01")])
def test_growth_outside_the_range_is_refused(pct):
    with pytest.raises(planning.AmountError, match="between"):
        planning.check_growth(pct)
