"""Input of the account pages' forms."""

from __future__ import annotations

from django import forms

from accounts.apikeys import APIKEY_LIMIT_MAX as LIMIT_MAX
from accounts.apikeys import SCOPE_DESCRIPTIONS, SCOPES, STAFF_SCOPES, scopes_offered
from common.forms import TextField


def _limit_field(label: str, unit: str) -> forms.IntegerField:
    message = f"Enter a whole number of {unit} from 1 to {LIMIT_MAX:,}, or leave it empty to use your plan's limit."
    return forms.IntegerField(
        label=label, required=False, min_value=1, max_value=LIMIT_MAX,
        error_messages={"invalid": message, "min_value": message, "max_value": message},
    )


class ApiKeyCreateForm(forms.Form):
    name = TextField(max_length=100, required=False)
    scopes = forms.MultipleChoiceField(
        label="Scopes", choices=[(scope, SCOPE_DESCRIPTIONS[scope]) for scope in SCOPES],
        widget=forms.CheckboxSelectMultiple,
        error_messages={
            "required": "Tick at least one scope: a key without any can call no endpoint.",
            "invalid_choice": f"%(value)s is not a scope; choose from {', '.join(SCOPES)}.",
        },
    )
    rpm_limit = _limit_field("Requests per minute", "requests")
    tokens_per_day_limit = _limit_field("Tokens per day", "tokens")

    def __init__(self, *args, is_staff: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.is_staff = is_staff
        # Every scope stays a valid choice, so a staff-only one is refused below with its own reason; the
        # checkboxes show only what this user may give a key.
        offered = scopes_offered(is_staff=is_staff)
        self.fields["scopes"].widget.choices = [(scope, SCOPE_DESCRIPTIONS[scope]) for scope in offered]

    def clean_scopes(self) -> list[str]:
        scopes = self.cleaned_data["scopes"]
        refused = [scope for scope in scopes if scope in STAFF_SCOPES and not self.is_staff]
        if refused:
            raise forms.ValidationError(f"{', '.join(refused)} is for staff only; untick it.", code="staff_only")
        return scopes
