"""Input of the account pages' forms."""

from __future__ import annotations

from django import forms

from common.forms import TextField


class ApiKeyCreateForm(forms.Form):
    name = TextField(max_length=100, required=False)
