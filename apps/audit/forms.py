from __future__ import annotations

from django import forms

from apps.audit.models import AuditEvent


class AuditSearchForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Text")
    action = forms.ChoiceField(
        required=False, choices=[("", "Any action"), *AuditEvent.Action.choices]
    )
    actor = forms.CharField(required=False, max_length=150, label="User")
    start = forms.DateField(required=False, label="From", input_formats=["%Y-%m-%d"])
    end = forms.DateField(required=False, label="To", input_formats=["%Y-%m-%d"])

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end and end < start:
            self.add_error("end", "The end date is before the start date.")
        return data
