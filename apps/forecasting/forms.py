"""Forms of the Forecast page. They check shape and ranges; the services check the rules
again (permissions, open period, best case >= commit) and their errors are shown on the
field they name."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from apps.forecasting.services import SETTABLE_CATEGORIES

MAX_MONEY = Decimal("1e15")


class CallForm(forms.Form):
    team = forms.IntegerField(widget=forms.HiddenInput)
    period = forms.CharField(max_length=32, widget=forms.HiddenInput)
    commit = forms.DecimalField(min_value=0, max_value=MAX_MONEY, decimal_places=2, label="Commit")
    best_case = forms.DecimalField(
        min_value=0, max_value=MAX_MONEY, decimal_places=2, label="Best case"
    )
    comment = forms.CharField(
        required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2}), label="Comment"
    )

    def clean(self):
        data = super().clean()
        commit, best = data.get("commit"), data.get("best_case")
        if commit is not None and best is not None and best < commit:
            self.add_error("best_case", "Best case must be at least the commit.")
        return data


class CategoryForm(forms.Form):
    category = forms.ChoiceField(choices=[(c.value, c.label) for c in SETTABLE_CATEGORIES])
    next = forms.CharField(required=False, max_length=2000)


class ScenarioForm(forms.Form):
    """What-if inputs of the outlook; ``name`` is needed only to save them."""

    name = forms.CharField(required=False, max_length=80)
    growth = forms.DecimalField(
        min_value=-50, max_value=200, decimal_places=2, initial=0, label="Extra growth (%/yr)"
    )
    win = forms.DecimalField(
        min_value=-50, max_value=50, decimal_places=2, initial=0, label="Win rate change (pts)"
    )
    heads = forms.IntegerField(min_value=-500, max_value=500, initial=0, label="Headcount change")
    months = forms.TypedChoiceField(
        choices=[(36, "3 years"), (48, "4 years"), (60, "5 years")],
        coerce=int,
        initial=36,
        label="Horizon",
    )
