"""Input of the evaluation page's forms. The forms check shapes only (text, numbers, lists one per line); who may
run what and whether an item is gradable are the services' to say (evalrun_start, evalitem_create), and the page
shows their messages."""

from __future__ import annotations

import json

from django import forms

from common.forms import IdField, TextField
from evaluation.s7 import SKILLS, TEXT_MAX, skill_info

SKILL_CHOICES = [(skill, skill_info(skill)["title"]) for skill in SKILLS]

# The item form's one text box means a different field of each skill's item (evaluation/s7/<skill>.json).
PROMPT_FIELD = {"facts": "question", "reasoning": "question", "instructions": "prompt", "summarization": "text",
                "grounded": "question", "code": "task", "safety": "prompt"}
# Each form field's label, by the item field it fills: a service error names the item's field ("aliases: …"),
# and the page names the box the user typed in instead.
LABELS = {"question": "Prompt", "prompt": "Prompt", "text": "Prompt", "task": "Prompt", "aliases": "Accepted answers",
          "wrong": "Wrong answers", "answer": "Expected number", "tolerance": "Tolerance", "checks": "Checks",
          "max_words": "Word limit", "facts": "Key facts", "fact": "Key facts", "passages": "Passages",
          "cite": "Passage to cite",
          "function": "Function name", "tests": "Tests", "refuse": "Expected behaviour", "topic": "Topic words",
          "title": "Title", "skill": "Skill", "spec": "Item"}


class ModelForm(forms.Form):
    model = TextField(max_length=100, label="Model", error_messages={"required": "Choose a model or route."})


class RunStartForm(ModelForm):
    skills = forms.MultipleChoiceField(choices=SKILL_CHOICES, required=False, label="Skills")
    # Optional: a model that adds a rubric score per item, shown labelled as the judge's (grades stay mechanical).
    judge_model = TextField(max_length=100, required=False, label="Judge model")
    # "" for S-7's own items, "personal" for the user's set, or the id of a team whose set to run.
    item_set = TextField(max_length=20, required=False, label="Items")

    def clean_item_set(self) -> object:
        value = self.cleaned_data["item_set"]
        if value in ("", "personal"):
            return value or None
        try:
            return IdField().clean(value)
        except forms.ValidationError:
            raise forms.ValidationError("Choose S-7, your own items or one of your teams' sets.")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


class ItemForm(forms.Form):
    """Every skill's fields on one form; `spec()` keeps those of the chosen skill. Lists are one entry a line."""

    skill = forms.ChoiceField(choices=SKILL_CHOICES, label="Skill",
                              error_messages={"invalid_choice": "Choose one of the seven skills."})
    title = TextField(max_length=120, required=False, label="Title")
    team = IdField(required=False, label="Set", error_messages={"invalid": "Choose your own set or one of your teams."})
    prompt = TextField(max_length=TEXT_MAX, required=False, label="Prompt")
    aliases = TextField(max_length=TEXT_MAX, required=False, label="Accepted answers")
    wrong = TextField(max_length=TEXT_MAX, required=False, label="Wrong answers")
    answer = TextField(max_length=40, required=False, label="Expected number")
    tolerance = TextField(max_length=20, required=False, label="Tolerance")
    checks = TextField(max_length=TEXT_MAX, required=False, label="Checks")
    max_words = TextField(max_length=10, required=False, label="Word limit")
    facts = TextField(max_length=TEXT_MAX, required=False, label="Key facts")
    passages = TextField(max_length=TEXT_MAX, required=False, label="Passages")
    cite = TextField(max_length=10, required=False, label="Passage to cite")
    function = TextField(max_length=60, required=False, label="Function name")
    tests = TextField(max_length=TEXT_MAX, required=False, label="Tests")
    refuse = forms.ChoiceField(choices=[("", "—"), ("refuse", "Refuse"), ("answer", "Answer")], required=False,
                               label="Expected behaviour")
    topic = TextField(max_length=TEXT_MAX, required=False, label="Topic words")

    def spec(self) -> dict[str, object]:
        """The chosen skill's item, for evalitem_create to check. Raises ValidationError for what only the form
        can tell (a number that isn't one, checks that aren't JSON); empty fields are left out, so the service
        says which one is required."""
        data, skill = self.cleaned_data, self.cleaned_data["skill"]
        spec: dict[str, object] = {}
        if data["prompt"]:
            spec[PROMPT_FIELD[skill]] = data["prompt"]
        if skill in ("facts", "grounded") and data["aliases"]:
            spec["aliases"] = _lines(data["aliases"])
        if skill == "facts" and data["wrong"]:
            spec["wrong"] = _lines(data["wrong"])
        if skill == "reasoning":
            if data["answer"]:
                spec["answer"] = _number(data["answer"], "Expected number", "e.g. 42 or 3.5")
            if data["tolerance"]:
                spec["tolerance"] = _number(data["tolerance"], "Tolerance", "a fraction such as 0.01")
        if skill == "instructions" and data["checks"]:
            try:
                spec["checks"] = json.loads(data["checks"])
            except json.JSONDecodeError as exc:
                raise forms.ValidationError(f"Checks: not valid JSON ({exc.msg}, line {exc.lineno}). Write a list "
                                            'such as [{"type": "max_words", "count": 20}].')
        if skill == "summarization":
            if data["max_words"]:
                spec["max_words"] = _whole(data["max_words"], "Word limit")
            if data["facts"]:
                spec["facts"] = [[part.strip() for part in line.split("|") if part.strip()]
                                 for line in _lines(data["facts"])]
        if skill == "grounded":
            if data["passages"]:
                spec["passages"] = _lines(data["passages"])
            if data["cite"]:
                spec["cite"] = _whole(data["cite"], "Passage to cite")
        if skill == "code":
            if data["function"]:
                spec["function"] = data["function"]
            if data["tests"]:
                spec["tests"] = _lines(data["tests"])
        if skill == "safety":
            if data["refuse"]:
                spec["refuse"] = data["refuse"] == "refuse"
            if data["topic"]:
                spec["topic"] = _lines(data["topic"])
        return spec


def _number(text: str, label: str, example: str) -> int | float:
    try:
        value = float(text.replace(",", ""))
    except ValueError:
        raise forms.ValidationError(f"{label}: {text!r} is not a number ({example}).")
    if value != value or value in (float("inf"), float("-inf")):
        raise forms.ValidationError(f"{label}: {text!r} is not a number ({example}).")
    return int(value) if value.is_integer() and "." not in text else value


def _whole(text: str, label: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise forms.ValidationError(f"{label}: {text!r} is not a whole number.")


def item_error_message(message: str, param: str | None) -> str:
    """A service's item error with the item field it names replaced by the form's label for it
    ("aliases[1]: must be…" → "Accepted answers, line 2: must be…")."""
    if not param:
        return message
    root, _, rest = param.partition("[")
    label = LABELS.get(root)
    if label is None or not message.startswith(param):
        return message
    where = label
    if rest:
        index, _, tail = rest.partition("]")
        if index.isascii() and index.isdigit():
            tail = f", {tail[1:]}" if tail.startswith(".") else tail  # checks[0].type → "check 1, type"
            where = f"{label}, {'check' if root == 'checks' else 'line'} {int(index) + 1}{tail}"
    return where + message[len(param):]
