"""Review forms. The services validate again (and decide); these render the fields and
carry their errors back to the page."""

from __future__ import annotations

from django import forms

from apps.performance.models import Competency

SCORES = [("", "—")] + [(str(i), str(i)) for i in range(1, 6)]
SCORE_HELP = "1 needs significant improvement · 3 meets expectations · 5 outstanding"


class ReviewForm(forms.Form):
    strengths = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    areas_to_grow = forms.CharField(
        label="Areas to grow", widget=forms.Textarea(attrs={"rows": 3}), required=False
    )
    goals = forms.CharField(
        label="Goals for next period", widget=forms.Textarea(attrs={"rows": 3}), required=False
    )
    comments = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    TEXT_FIELDS = ("strengths", "areas_to_grow", "goals", "comments")

    def __init__(self, *args, competencies: list[Competency], with_reason: bool = False, **kw):
        super().__init__(*args, **kw)
        self.competencies = competencies
        for competency in competencies:
            self.fields[f"rating-{competency.pk}"] = forms.ChoiceField(
                label=competency.name,
                choices=SCORES,
                required=False,
                help_text=competency.description,
            )
        if with_reason:
            self.fields["reason"] = forms.CharField(
                max_length=500, help_text="Why the submitted review changes (kept in its log)."
            )

    def rating_fields(self) -> list[forms.BoundField]:
        return [self[f"rating-{c.pk}"] for c in self.competencies]

    def text_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.TEXT_FIELDS]

    def texts(self) -> dict[str, str]:
        return {name: self.cleaned_data.get(name, "") for name in self.TEXT_FIELDS}

    def ratings(self) -> dict[int, str]:
        return {c.pk: self.cleaned_data.get(f"rating-{c.pk}", "") for c in self.competencies}

    def add_service_errors(self, errors: dict[str, list[str]]) -> None:
        for field, messages in errors.items():
            for message in messages:
                self.add_error(field if field in self.fields else None, message)


class AcknowledgeForm(forms.Form):
    rep_response = forms.CharField(
        label="Your response (optional)",
        widget=forms.Textarea(attrs={"rows": 3}),
        required=False,
        max_length=10_000,
    )


class StartReviewForm(forms.Form):
    rep = forms.IntegerField(widget=forms.HiddenInput)
    period = forms.CharField(widget=forms.HiddenInput, max_length=16)


class CompetencyForm(forms.Form):
    name = forms.CharField(max_length=80)
    description = forms.CharField(max_length=500, required=False)
