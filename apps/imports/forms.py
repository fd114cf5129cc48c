"""Forms of the import wizard. They only parse input; the services decide and write."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.imports.mapping import (
    DECIMAL_SEPARATORS,
    THOUSANDS_SEPARATORS,
    ImportMapping,
    MappingError,
    mapping_from_dict,
    mapping_from_json,
)
from apps.imports.models import SavedMapping
from apps.imports.schema import CREATABLE, KIND_CHOICES, KINDS
from apps.imports.selectors import ValueField
from apps.imports.services import max_upload_bytes

DATE_FORMATS = [
    ("%Y-%m-%d", "2025-03-31 (ISO)"),
    ("%d/%m/%Y", "31/03/2025"),
    ("%m/%d/%Y", "03/31/2025"),
    ("%d.%m.%Y", "31.03.2025"),
    ("%d-%b-%Y", "31-Mar-2025"),
]
ENCODINGS = [("utf-8", "UTF-8"), ("cp1252", "Windows-1252"), ("latin-1", "ISO-8859-1")]


class UploadForm(forms.Form):
    kind = forms.ChoiceField(choices=KIND_CHOICES, label="What the file holds")
    file = forms.FileField(label="CSV or XLSX file")
    saved_mapping = forms.ModelChoiceField(
        queryset=SavedMapping.objects.order_by("kind", "name"),
        required=False,
        label="Saved mapping (optional)",
    )
    mapping_file = forms.FileField(required=False, label="…or a mapping JSON file (optional)")

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        limit = max_upload_bytes()
        if upload.size > limit:
            raise forms.ValidationError(
                f"The file is {upload.size / 1_048_576:.1f} MB; the limit is "
                f"{limit / 1_048_576:.0f} MB."
            )
        return upload

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        kind = data.get("kind")
        if not kind:
            return data
        saved, upload = data.get("saved_mapping"), data.get("mapping_file")
        if saved and upload:
            raise forms.ValidationError("Choose a saved mapping or upload one, not both.")
        try:
            if saved:
                data["mapping"] = mapping_from_dict(saved.document, kind=kind)
            elif upload:
                if upload.size > 1_048_576:
                    raise MappingError("A mapping file is at most 1 MB.")
                data["mapping"] = mapping_from_json(upload.read(), kind=kind)
            else:
                data["mapping"] = None
        except MappingError as exc:
            self.add_error("saved_mapping" if saved else "mapping_file", str(exc))
        return data


class ColumnsForm(forms.Form):
    """Which column feeds each field (auto-suggested), defaults, and the file's formats."""

    date_format = forms.ChoiceField(choices=DATE_FORMATS)
    decimal_separator = forms.ChoiceField(choices=[(s, s) for s in DECIMAL_SEPARATORS])
    thousands_separator = forms.ChoiceField(
        choices=[(s, repr(s) if s else "none") for s in THOUSANDS_SEPARATORS], required=False
    )
    encoding = forms.ChoiceField(choices=ENCODINGS)

    def __init__(self, *args: Any, kind: str, headers: list[str], mapping: ImportMapping, **kw):
        super().__init__(*args, **kw)
        self.kind = kind
        spec = KINDS[kind]
        header_choices = [("", "— not in the file —")] + [(h, h) for h in headers if h]
        present = {h.lower(): h for h in headers if h}
        self.field_rows = []
        for name, field_spec in spec.fields.items():
            column = mapping.columns.get(name) or present.get(name.lower(), "")
            self.fields[f"col_{name}"] = forms.ChoiceField(
                choices=header_choices, required=False, initial=column, label=name
            )
            self.fields[f"def_{name}"] = forms.CharField(
                required=False, initial=mapping.defaults.get(name, ""), max_length=200
            )
            self.field_rows.append(
                {
                    "name": name,
                    "spec": field_spec,
                    "column": self[f"col_{name}"],
                    "default": self[f"def_{name}"],
                }
            )
        if spec.creatable:
            allowed = (
                spec.default_create if mapping.create_missing is None else mapping.create_missing
            )
            self.fields["create_missing"] = forms.MultipleChoiceField(
                choices=[(c, f"{c}: {CREATABLE[c]}") for c in spec.creatable],
                required=False,
                initial=list(allowed),
                widget=forms.CheckboxSelectMultiple,
                label="Missing references the import may create",
            )
        self.fields["date_format"].initial = mapping.date_format
        if mapping.date_format not in dict(DATE_FORMATS):
            self.fields["date_format"].choices = [
                *DATE_FORMATS,
                (mapping.date_format, mapping.date_format),
            ]
        self.fields["decimal_separator"].initial = mapping.decimal_separator
        self.fields["thousands_separator"].initial = mapping.thousands_separator
        self.fields["encoding"].initial = mapping.encoding
        if mapping.encoding not in dict(ENCODINGS):
            self.fields["encoding"].choices = [*ENCODINGS, (mapping.encoding, mapping.encoding)]
        self.base_mapping = mapping

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        spec = KINDS[self.kind]
        columns = {n: data[f"col_{n}"] for n in spec.fields if data.get(f"col_{n}")}
        used: dict[str, str] = {}
        for name, column in columns.items():
            if column in used:
                self.add_error(f"col_{name}", f"{column!r} already feeds {used[column]}.")
            used[column] = name
        for name in spec.required:
            if name not in columns and not data.get(f"def_{name}"):
                self.add_error(f"col_{name}", "Required: pick a column or give a default.")
        defaults = {n: data[f"def_{n}"] for n in spec.fields if data.get(f"def_{n}")}
        document = {
            **self.base_mapping.as_dict(),
            "columns": columns,
            "defaults": defaults,
            "date_format": data.get("date_format") or "%Y-%m-%d",
            "decimal_separator": data.get("decimal_separator") or ".",
            "thousands_separator": data.get("thousands_separator") or "",
            "encoding": data.get("encoding") or "utf-8",
        }
        if "create_missing" in self.fields:
            document["create_missing"] = list(data.get("create_missing") or [])
        try:
            data["mapping"] = mapping_from_dict(document, kind=self.kind)
        except MappingError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data


class ValuesForm(forms.Form):
    """For each mapped enum/reference field, every distinct source value once, with the
    value of ours it stands for (blank: take the source value as it is)."""

    def __init__(self, *args: Any, fields: list[ValueField], mapping: ImportMapping, **kw):
        super().__init__(*args, **kw)
        self.value_fields = fields
        self.mapping = mapping
        self.groups = []
        for group_index, value_field in enumerate(fields):
            current = mapping.values.get(value_field.name, {})
            rows = []
            for value_index, (source, count) in enumerate(value_field.values):
                key = f"v_{group_index}_{value_index}"
                initial = current.get(source, "")
                if value_field.targets:
                    choices = [("", "(as is)")] + [(t, t) for t in value_field.targets]
                    if initial and initial not in value_field.targets:
                        choices.append((initial, initial))
                    self.fields[key] = forms.ChoiceField(
                        choices=choices, required=False, initial=initial, label=source
                    )
                else:
                    self.fields[key] = forms.CharField(
                        required=False, initial=initial, max_length=254, label=source
                    )
                known = source.lower() in {t.lower() for t in value_field.targets}
                rows.append({"source": source, "count": count, "field": self[key], "known": known})
            self.groups.append({"field": value_field, "rows": rows})

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        values = {k: dict(v) for k, v in self.mapping.values.items()}
        for group_index, value_field in enumerate(self.value_fields):
            table = values.setdefault(value_field.name, {})
            for value_index, (source, _count) in enumerate(value_field.values):
                target = (data.get(f"v_{group_index}_{value_index}") or "").strip()
                if target and target != source:
                    table[source] = target
                else:
                    table.pop(source, None)
            if not table:
                values.pop(value_field.name)
        data["mapping"] = self.mapping.replace(values=values)
        return data


class SaveMappingForm(forms.Form):
    name = forms.CharField(max_length=120, label="Save this mapping as")
