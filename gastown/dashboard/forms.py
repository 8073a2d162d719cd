from __future__ import annotations

from typing import Any

from django import forms


class OverrideForm(forms.Form):
    reason = forms.CharField(
        required=False,
        max_length=1000,
        widget=forms.Textarea(attrs={"rows": 3, "placeholder": "Why? (kept in the audit trail)"}),
    )

    def __init__(self, *args: Any, reason_required: bool = False, **kwargs: Any) -> None:
        """A destructive override (Override.reason_required) needs a reason; its service
        refuses one without, this says so before the request is sent."""
        super().__init__(*args, **kwargs)
        if reason_required:
            field = self.fields["reason"]
            field.required = True
            field.error_messages["required"] = "Say why: a reason is required for this one."
            field.widget.attrs["required"] = True


class TelemetryFilterForm(forms.Form):
    name = forms.CharField(required=False, max_length=80)
    rig = forms.IntegerField(required=False, min_value=1)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class AwaitingFilterForm(forms.Form):
    rig = forms.IntegerField(required=False, min_value=1)
    convoy = forms.IntegerField(required=False, min_value=1)
