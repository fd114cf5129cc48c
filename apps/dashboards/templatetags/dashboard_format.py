"""Template filters for dashboard numbers: em dash for "no data", compact base-currency
money, percentages from fractions. The base currency is read when a value is shown."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone

from apps.dashboards import formatting

register = template.Library()


@register.filter
def money(value):
    return formatting.money(value, settings.BASE_CURRENCY)


@register.filter
def money_full(value):
    return formatting.money_full(value, settings.BASE_CURRENCY)


@register.filter
def pct(value):
    return formatting.percent(value)


@register.filter
def num(value):
    return formatting.integer(value)


@register.filter
def kpi(value, unit):
    """A KPI value by its registry unit: ``{{ value|kpi:"percent" }}``."""
    return formatting.kpi_display(value, unit, settings.BASE_CURRENCY)


@register.filter
def days_since(value, today):
    """Whole days from a date or datetime to ``today``: '42 d'."""
    if value is None or today is None:
        return formatting.EM_DASH
    day = timezone.localtime(value).date() if isinstance(value, datetime) else value
    return f"{(today - day).days:,} d"
