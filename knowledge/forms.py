"""Input of the knowledge pages' forms, checked before any service runs: real integers for ids,
no control characters in text."""

from __future__ import annotations

from django import forms

from common.forms import IdField, TextField
from knowledge.models import CollectionGrant
from knowledge.selectors import MAX_QUERY_CHARS


class CollectionCreateForm(forms.Form):
    name = TextField(max_length=120)
    description = TextField(max_length=2000, required=False)
    team = IdField(required=False, error_messages={"invalid": "Choose one of your teams."})


class CollectionShareForm(forms.Form):
    email = forms.EmailField(required=False, max_length=254)
    team = IdField(required=False, error_messages={"invalid": "Choose one of your teams."})
    permission = forms.ChoiceField(choices=CollectionGrant.Permission.choices, required=False)


class SearchForm(forms.Form):
    q = TextField(required=False, max_length=MAX_QUERY_CHARS, label="Query", error_messages={
        "max_length": f"The query is too long; the limit is {MAX_QUERY_CHARS:,} characters."})
    collection = IdField(required=False, error_messages={"invalid": "Choose a collection from the list."})
