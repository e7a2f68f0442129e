"""Input of the chat pages' forms, checked before any service runs."""

from __future__ import annotations

from django import forms

from common.forms import TextField


class AssistantCreateForm(forms.Form):
    name = TextField(max_length=100)
    system_prompt = TextField(label="Instructions", max_length=8000)
    description = TextField(max_length=300, required=False)
    emoji = TextField(max_length=8, required=False)
    # Which of these the owner may use is the service's check (assistant_route_check, collections readable).
    route_alias = TextField(label="Model", max_length=100, required=False)
    knowledge_collections = forms.TypedMultipleChoiceField(label="Knowledge", coerce=int, required=False)
    tools = forms.MultipleChoiceField(required=False)

    def __init__(self, *args: object, collection_ids: list[int] = (), **kwargs: object) -> None:
        from chat.tools import tool_choices

        super().__init__(*args, **kwargs)
        self.fields["knowledge_collections"].choices = [(i, str(i)) for i in collection_ids]
        self.fields["tools"].choices = tool_choices()


class ConversationRenameForm(forms.Form):
    title = TextField(max_length=200)
