"""Template filters for dashboard numbers: em dash for "no data", compact base-currency
money, percentages from fractions. The base currency is read when a value is shown."""

from __future__ import annotations

from datetime import datetime

from django import template
from django.conf import settings
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.safestring import SafeString

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


@register.simple_tag
def select_options(choices, selected) -> SafeString:
    """``<option>`` elements for (value, label) pairs, the one equal to ``selected`` marked
    selected. Built in one pass: the filter bar is drawn on every request, and a template
    loop over its hundred-odd options cost more than the rest of a cached page."""
    return format_html_join(
        "",
        '<option value="{}"{}>{}</option>',
        ((value, " selected" if value == selected else "", label) for value, label in choices),
    )


@register.simple_tag
def datalist_options(values) -> SafeString:
    """``<option>`` elements of a ``<datalist>`` (suggestions: a value, no label)."""
    return format_html_join("", '<option value="{}">', ((value,) for value in values))
