"""Display formatting: em dash for no data, compact money, percentages, change tones."""

from decimal import Decimal

import pytest

from apps.dashboards import formatting as f


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "\u2014"),
        (0, "$0"),
        (Decimal("999.49"), "$999"),
        (Decimal("999.5"), "$1.0K"),
        (1234, "$1.2K"),
        (Decimal("999949"), "$999.9K"),
        (Decimal("999950"), "$1.0M"),
        (Decimal("2540000"), "$2.5M"),
        (Decimal("1200000000"), "$1.2B"),
        (Decimal("-1500"), "-$1.5K"),
    ],
)
def test_money_is_compact_in_the_base_currency(value, expected):
    assert f.money(value, "USD") == expected


def test_money_without_a_symbol_uses_the_currency_code():
    assert f.money(Decimal("950"), "CHF") == "CHF 950"
    assert f.money_full(Decimal("1234567.891"), "EUR") == "\u20ac1,234,567.89"


def test_no_data_is_an_em_dash_never_zero():
    for render in (f.percent, f.integer, f.days, f.multiple, f.score):
        assert render(None) == "\u2014"
    assert f.kpi_display(None, "money", "USD") == "\u2014"
    assert f.kpi_display(0, "count", "USD") == "0"


def test_units_render_by_the_registry_unit():
    assert f.kpi_display(Decimal("0.2534"), "percent", "USD") == "25.3%"
    assert f.kpi_display(Decimal("3.46"), "ratio", "USD") == "3.5\u00d7"
    assert f.kpi_display(Decimal("73.21"), "days", "USD") == "73.2 d"
    assert f.kpi_display(Decimal("31.4"), "score", "USD") == "+31"
    assert f.kpi_display(Decimal("-7"), "score", "USD") == "-7"
    assert f.kpi_display(1234, "count", "USD") == "1,234"


def test_change_of_a_rate_is_in_points_and_coloured_by_direction():
    assert f.change(Decimal("0.25"), Decimal("0.20"), "percent", "up") == ("+5.0 pts", "good")
    assert f.change(Decimal("0.25"), Decimal("0.20"), "percent", "down") == ("+5.0 pts", "bad")


def test_change_of_an_amount_is_relative_and_a_falling_cycle_is_good():
    assert f.change(Decimal("90"), Decimal("100"), "money", "up") == ("-10.0%", "bad")
    assert f.change(Decimal("30"), Decimal("40"), "days", "down") == ("-25.0%", "good")
    assert f.change(Decimal("5"), Decimal("5"), "money", "up") == ("0.0%", "flat")


def test_change_without_a_base_is_no_data():
    assert f.change(Decimal("5"), None, "money", "up") == ("\u2014", "flat")
    assert f.change(Decimal("5"), Decimal("0"), "money", "up") == ("\u2014", "flat")
    assert f.change(None, Decimal("3"), "percent", "up") == ("\u2014", "flat")
