"""Form fields shared by every app's pages."""

from __future__ import annotations

from django import forms

from common.text import control_characters_refuse


class TextField(forms.CharField):
    """A CharField that refuses control characters with a message (NUL would reach PostgreSQL)."""

    default_validators = [control_characters_refuse]


class IdField(forms.IntegerField):
    """A row id: a real integer in the range of a bigint, so '²', 'abc' or 10**30 are form errors."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", 2**63 - 1)
        super().__init__(**kwargs)


def integer_param(value: str | None) -> int | None:
    """A query-string id, parsed for real (`'²'.isdigit()` is true, `int('²')` fails): None if not one."""
    field = IdField(required=False)
    try:
        return field.clean(value)
    except forms.ValidationError:
        return None


def form_error_message(form: forms.Form) -> str:
    """The form's errors as one sentence a page can show: "Name: This field is required." """
    parts = []
    for name, errors in form.errors.items():
        field = form.fields.get(name)
        label = field.label if field is not None and field.label else name.replace("_", " ").capitalize()
        for error in errors:
            parts.append(error if name == forms.forms.NON_FIELD_ERRORS else f"{label}: {error}")
    return " ".join(parts)
