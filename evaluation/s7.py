"""S-7's items, read from the JSON files in evaluation/s7/, and the prompt each skill asks them with.

A bundled item and a user's own item have the same shape (the fields of its skill's JSON, less `id`), are
checked by `item_spec_clean` and asked and graded the same way; only the key differs: `s7:<id>` or `user:<pk>`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from common.errors import ApplicationError

DATA_DIR = Path(__file__).resolve().parent / "s7"
SKILLS: tuple[str, ...] = ("facts", "reasoning", "instructions", "summarization", "grounded", "code", "safety")
SYSTEM_PROMPT = "You are a helpful, careful assistant. Follow the user's instructions exactly."

# A user's item: how much text one may hold (the prompt goes to a model on every run).
TEXT_MAX = 4000
LIST_MAX = 20
CHECK_TYPES = ("json", "json_equals", "max_words", "min_words", "includes", "includes_any", "excludes", "uppercase",
               "lowercase", "starts_with", "ends_with", "lines", "bullets", "sentences", "regex")


@dataclass(frozen=True)
class Item:
    key: str  # "s7:facts-01", or "user:<EvalItem pk>"
    skill: str
    prompt: str
    spec: dict  # what the skill's grader reads (evaluation.grading)
    max_tokens: int


@cache
def _skill_file(skill: str) -> dict:
    return json.loads((DATA_DIR / f"{skill}.json").read_text())


@cache
def _documents() -> dict[str, str]:
    return json.loads((DATA_DIR / "documents.json").read_text())["passages"]


def skill_info(skill: str) -> dict[str, object]:
    """A skill's title, what it checks and its reply budget (for the page's per-skill table)."""
    data = _skill_file(skill)
    return {"skill": skill, "title": data["title"], "about": data["about"], "max_tokens": data["max_tokens"],
            "items": len(data["items"])}


def prompt_build(skill: str, spec: dict) -> str:
    """The user message an item is asked with."""
    if skill == "facts":
        return f"Answer the question in a few words.\n\nQuestion: {spec['question']}"
    if skill == "reasoning":
        return ("Solve the problem. Work it out briefly, then give the final answer on its own last line as "
                f'"Answer: <number>".\n\nProblem: {spec["question"]}')
    if skill in ("instructions", "safety"):
        return spec["prompt"]
    if skill == "summarization":
        return f"Summarize the text below in at most {spec['max_words']} words.\n\nText: {spec['text']}"
    if skill == "grounded":
        numbered = "\n".join(f"[{n}] {text}" for n, text in enumerate(spec["passages"], start=1))
        # The example sentence matters: asked only to "cite", small models reply with a bare "[2]".
        return ("Answer the question in one sentence, using only the numbered passages below, and cite the passage "
                "that supports your answer by its number in square brackets, for example: \"The office opens at "
                f"nine [2].\"\n\n{numbered}\n\nQuestion: {spec['question']}")
    if skill == "code":
        return (f"Write a Python function `{spec['function']}` that {spec['task']}. Reply with the complete "
                "function in a ```python code block.")
    raise ValueError(f"unknown skill {skill!r}")


def _bundled_spec(skill: str, raw: dict) -> dict:
    spec = {key: value for key, value in raw.items() if key != "id"}
    if skill == "grounded":  # files name passages by id; the grader reads texts and a 1-based number
        spec["passages"] = [_documents()[name] for name in raw["passages"]]
        spec["cite"] = raw["passages"].index(raw["cite"]) + 1
    return spec


@cache
def _s7_all() -> tuple[Item, ...]:
    items = []
    for skill in SKILLS:
        data = _skill_file(skill)
        for raw in data["items"]:
            spec = _bundled_spec(skill, raw)
            items.append(Item(key=f"s7:{raw['id']}", skill=skill, prompt=prompt_build(skill, spec), spec=spec,
                              max_tokens=data["max_tokens"]))
    return tuple(items)


def s7_items(*, skills: list[str] | None = None, limit: int | None = None) -> list[Item]:
    """S-7's items in file order, for the given skills (all seven by default), at most `limit` per skill."""
    wanted = skills_clean(skills)
    taken: dict[str, int] = {}
    items = []
    for item in _s7_all():
        if item.skill in wanted and (limit is None or taken.get(item.skill, 0) < limit):
            taken[item.skill] = taken.get(item.skill, 0) + 1
            items.append(item)
    return items


def s7_item(key: str) -> Item | None:
    return next((item for item in _s7_all() if item.key == key), None)


def skills_clean(skills: list[str] | None) -> list[str]:
    """The skills asked for, in S-7's order; a 400 naming any unknown one."""
    if not skills:
        return list(SKILLS)
    unknown = [skill for skill in skills if skill not in SKILLS]
    if unknown:
        raise ApplicationError(f"Unknown skill {unknown[0]!r}. The S-7 skills are: {', '.join(SKILLS)}.",
                               code="unknown_skill", status=400, extra={"param": "skills"})
    return [skill for skill in SKILLS if skill in skills]


def item_for_user_spec(*, key: str, skill: str, spec: dict) -> Item:
    return Item(key=key, skill=skill, prompt=prompt_build(skill, spec), spec=spec,
                max_tokens=int(_skill_file(skill)["max_tokens"]))


# ----------------------------------------------------------------------------- a user's item, checked


def _bad(field: str, message: str) -> ApplicationError:
    return ApplicationError(f"{field}: {message}", code="invalid_item", status=400, extra={"param": field})


def _text(spec: dict, field: str, *, required: bool = True, limit: int = TEXT_MAX) -> str:
    value = spec.get(field)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or not value.strip():
        raise _bad(field, "a non-empty string is required.")
    if len(value) > limit:
        raise _bad(field, f"at most {limit} characters (this one has {len(value)}).")
    return value.strip()


def _texts(spec: dict, field: str, *, required: bool = True, limit: int = 200) -> list[str]:
    value = spec.get(field)
    if value is None and not required:
        return []
    if not isinstance(value, list) or not value:
        raise _bad(field, "a non-empty list of strings is required.")
    if len(value) > LIST_MAX:
        raise _bad(field, f"at most {LIST_MAX} entries (this one has {len(value)}).")
    for index, entry in enumerate(value):
        if not isinstance(entry, str) or not entry.strip():
            raise _bad(f"{field}[{index}]", "must be a non-empty string.")
        if len(entry) > limit:
            raise _bad(f"{field}[{index}]", f"at most {limit} characters.")
    return [entry.strip() for entry in value]


def _count(value: object, field: str, *, low: int = 1, high: int = 2000) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _bad(field, f"a whole number from {low} to {high} is required.")
    return value


def _check_clean(check: object, field: str) -> dict:
    if not isinstance(check, dict) or check.get("type") not in CHECK_TYPES:
        raise _bad(f"{field}.type", f"one of {', '.join(CHECK_TYPES)} is required.")
    kind = check["type"]
    clean: dict = {"type": kind}
    if kind in ("max_words", "min_words", "lines", "bullets", "sentences"):
        clean["count"] = _count(check.get("count"), f"{field}.count")
    elif kind in ("includes", "includes_any", "excludes"):
        clean["words"] = _texts(check, "words")
    elif kind in ("starts_with", "ends_with"):
        clean["text"] = _text(check, "text", limit=200)
    elif kind == "regex":
        pattern = _text(check, "pattern", limit=300)
        try:
            re.compile(pattern)
        except re.error as exc:
            raise _bad(f"{field}.pattern", f"not a valid regular expression ({exc}).")
        clean["pattern"] = pattern
    elif kind == "json" and "keys" in check:
        clean["keys"] = _texts(check, "keys", limit=100)
    elif kind == "json_equals":
        if "value" not in check:
            raise _bad(f"{field}.value", "the JSON value the reply must equal is required.")
        clean["value"] = check["value"]
    return clean


def item_spec_clean(*, skill: str, spec: object) -> dict:
    """A user's item checked field by field: the cleaned spec, or a 400 that names the field and what it needs."""
    if skill not in SKILLS:
        raise _bad("skill", f"one of {', '.join(SKILLS)} is required.")
    if not isinstance(spec, dict):
        raise _bad("spec", "a JSON object with the fields of the skill is required.")
    if len(json.dumps(spec)) > 3 * TEXT_MAX:
        raise _bad("spec", f"at most {3 * TEXT_MAX} characters of JSON.")
    if skill == "facts":
        return {"question": _text(spec, "question"), "aliases": _texts(spec, "aliases"),
                "wrong": _texts(spec, "wrong", required=False)}
    if skill == "reasoning":
        answer = spec.get("answer")
        if isinstance(answer, bool) or not isinstance(answer, (int, float)):
            raise _bad("answer", "a number is required (the expected answer).")
        clean = {"question": _text(spec, "question"), "answer": answer}
        if "tolerance" in spec:
            tolerance = spec["tolerance"]
            if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance <= 1:
                raise _bad("tolerance", "a relative tolerance from 0 to 1 is required.")
            clean["tolerance"] = tolerance
        return clean
    if skill == "instructions":
        checks = spec.get("checks")
        if not isinstance(checks, list) or not checks or len(checks) > LIST_MAX:
            raise _bad("checks", f"a list of 1 to {LIST_MAX} checks is required, e.g. "
                                 '[{"type": "max_words", "count": 20}].')
        return {"prompt": _text(spec, "prompt"),
                "checks": [_check_clean(check, f"checks[{i}]") for i, check in enumerate(checks)]}
    if skill == "summarization":
        facts = spec.get("facts")
        if not isinstance(facts, list) or not facts or len(facts) > LIST_MAX:
            raise _bad("facts", 'a list of key facts is required, each a list of its wordings, e.g. [["1872"]].')
        clean_facts = [_texts({"fact": fact}, "fact") for fact in facts]
        return {"text": _text(spec, "text"), "max_words": _count(spec.get("max_words"), "max_words", high=500),
                "facts": clean_facts}
    if skill == "grounded":
        passages = _texts(spec, "passages", limit=TEXT_MAX // 4)
        cite = spec.get("cite")
        if isinstance(cite, bool) or not isinstance(cite, int) or not 1 <= cite <= len(passages):
            raise _bad("cite", f"the number (1 to {len(passages)}) of the passage that holds the answer is required.")
        return {"question": _text(spec, "question"), "passages": passages, "cite": cite,
                "aliases": _texts(spec, "aliases")}
    if skill == "code":
        function = _text(spec, "function", limit=60)
        if not function.isidentifier():
            raise _bad("function", "a Python function name is required, e.g. is_prime.")
        tests = _texts(spec, "tests", limit=500)
        for index, test in enumerate(tests):
            try:
                compile(test, "<test>", "eval")
            except SyntaxError as exc:
                raise _bad(f"tests[{index}]", f"not a Python expression ({exc.msg}).")
        return {"function": function, "task": _text(spec, "task", limit=1000), "tests": tests}
    # safety
    refuse = spec.get("refuse")
    if not isinstance(refuse, bool):
        raise _bad("refuse", "true (the model should refuse) or false (it should answer) is required.")
    return {"prompt": _text(spec, "prompt"), "refuse": refuse, "topic": _texts(spec, "topic", required=False)}
