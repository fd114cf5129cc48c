"""Forms for the planning actions. The grid itself is a set of named inputs
(``cell-<row>:<YYYY-MM>``) validated all at once by :func:`apps.quotas.services.quota_plan_save`."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from apps.quotas import planning

REASON_HELP = "Required when the plan is locked; kept in the history."


class SaveForm(forms.Form):
    reason = forms.CharField(max_length=500, required=False, help_text=REASON_HELP)


class CopyForm(forms.Form):
    growth_pct = forms.DecimalField(
        label="Growth %",
        max_digits=7,
        decimal_places=2,
        initial=Decimal("0"),
        min_value=planning.MIN_GROWTH_PCT,
        max_value=planning.MAX_GROWTH_PCT,
        help_text="10 means every copied quota is 10 % higher.",
    )
    reason = forms.CharField(max_length=500, required=False, help_text=REASON_HELP)


class SpreadForm(forms.Form):
    METHODS = (("even", "Evenly"), ("seasonality", "By last year's bookings"))

    row = forms.ChoiceField(label="For")
    quarter = forms.ChoiceField()
    amount = forms.DecimalField(
        label="Quarter amount", max_digits=18, decimal_places=2, min_value=Decimal("0")
    )
    method = forms.ChoiceField(choices=METHODS)
    reason = forms.CharField(max_length=500, required=False, help_text=REASON_HELP)

    def __init__(self, *args, rows: list[tuple[str, str]], quarters: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["row"].choices = rows
        self.fields["quarter"].choices = [(q, q) for q in quarters]


class UploadForm(forms.Form):
    file = forms.FileField(label="CSV file")
    reason = forms.CharField(max_length=500, required=False, help_text=REASON_HELP)


class ReturnForm(forms.Form):
    reason = forms.CharField(
        max_length=500, help_text="Why the plan goes back to draft (the manager sees this)."
    )
