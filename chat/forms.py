"""Input of the chat pages' forms, checked before any service runs."""

from __future__ import annotations

from django import forms

from common.forms import TextField


class AssistantCreateForm(forms.Form):
    name = TextField(max_length=100)
    system_prompt = TextField(label="Instructions", max_length=8000)
    description = TextField(max_length=300, required=False)
    emoji = TextField(max_length=8, required=False)


class ConversationRenameForm(forms.Form):
    title = TextField(max_length=200)
