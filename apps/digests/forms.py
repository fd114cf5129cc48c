"""Forms of the digest settings page: they parse input; the services validate and write."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.digests import schedule
from apps.digests.models import AlertKpi, DigestAlert, Frequency, Section, Weekday
from apps.digests.selectors import manages_all, scope_choices
from apps.org.models import Team, User


class SubscriptionForm(forms.Form):
    recipient = forms.ModelChoiceField(
        queryset=User.objects.none(),
        required=False,
        empty_label="An external address (below)",
        help_text="A user, or leave empty and give an external address.",
    )
    recipient_email = forms.EmailField(required=False, label="External address")
    recipient_name = forms.CharField(required=False, max_length=120, label="External name")
    team = forms.ChoiceField(label="Scope", required=False)
    frequency = forms.ChoiceField(choices=Frequency.choices)
    weekday = forms.TypedChoiceField(
        choices=[("", "—"), *Weekday.choices],
        coerce=int,
        empty_value=None,
        required=False,
        help_text="Weekly digests.",
    )
    day_of_month = forms.IntegerField(
        min_value=1,
        max_value=31,
        required=False,
        help_text="Monthly digests; 31 means the last day of every month.",
    )
    hour = forms.IntegerField(min_value=0, max_value=23, help_text="0-23, local time.")
    time_zone = forms.ChoiceField()
    sections = forms.MultipleChoiceField(
        choices=Section.choices, widget=forms.CheckboxSelectMultiple, required=False
    )
    send_digest = forms.BooleanField(required=False, initial=True, label="Send the digest")
    is_active = forms.BooleanField(required=False, initial=True, label="Active")

    def __init__(self, *args: Any, actor: User, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor
        if manages_all(actor):
            users = User.objects.filter(is_active=True).exclude(email="")
        else:
            users = User.objects.filter(pk=actor.pk)
        self.fields["recipient"].queryset = users.order_by("first_name", "last_name", "username")
        self.fields["team"].choices = scope_choices(user=actor)
        self.fields["time_zone"].choices = [(n, n) for n in schedule.time_zone_names()]

    def clean_team(self) -> Team | None:
        raw = self.cleaned_data.get("team") or ""
        if not raw:
            return None
        return Team.objects.filter(pk=int(raw)).first()

    def values(self) -> dict[str, Any]:
        data = dict(self.cleaned_data)
        data["recipient_email"] = data.get("recipient_email") or ""
        data["recipient_name"] = data.get("recipient_name") or ""
        if data.get("recipient") is not None:
            data["recipient_email"], data["recipient_name"] = "", ""
        return data


class AlertForm(forms.Form):
    kpi = forms.ChoiceField(choices=AlertKpi.choices, label="KPI")
    operator = forms.ChoiceField(choices=DigestAlert.Operator.choices)
    threshold = forms.DecimalField(
        max_digits=18,
        decimal_places=4,
        help_text=(
            "Percent for rates and forecast attainment (90 = 90 %), a multiple for "
            "coverage (3 = 3x)."
        ),
    )
    period_kind = forms.ChoiceField(
        choices=DigestAlert.PeriodKind.choices,
        label="Period",
        initial="quarter",
        help_text="Forecast attainment: the current fiscal quarter only.",
    )
