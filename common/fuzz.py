"""A page fuzzer: every form and query parameter of Parley's pages gets hostile values, and any
answer of 500 or more is a finding. The test suite runs it in-process with a fixed, small set
(tests/test_fuzz.py); `python manage.py fuzz` runs it, and schemathesis, against a live server.

Forms are found by reading the pages themselves (lxml), so a new form is fuzzed without anyone
listing it here. Forms that end the session or delete what the rest of the run needs (log out,
delete, revoke, deactivate) are skipped; their inputs are ids in the URL, which the URL
converters already type.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import lxml.html

# What a careless user, a broken client or an attacker sends: NUL and other control characters,
# digits int() refuses ('²'), ids that are not numbers or do not fit a bigint, 300 bytes of UTF-8,
# URLs for other sites and other schemes, markup, and newlines meant for headers.
HOSTILE_VALUES = [
    "\x00", "a\x00b", "²", "abc", "-1", "9" * 30, "é" * 150, "x" * 5000, "javascript:alert(1)",
    "//evil.example/", "https://evil.example/", "<script>alert(1)</script>", "/app/\r\nSet-Cookie: x=1",
    "\u202egnp.exe", " ",
]
# A shorter list for the test suite's run (the whole list runs in `manage.py fuzz`).
HOSTILE_VALUES_QUICK = ["\x00", "a\x00b", "²", "abc", "9" * 30, "é" * 150, "x" * 5000, "javascript:alert(1)",
                        "//evil.example/", "/app/\r\nX: y"]
HOSTILE_FILENAMES = ["é" * 150 + ".txt", "é" * 300, "../../etc/passwd", "a\x01b.md", ".txt", "x" * 400 + ".pdf"]
# Query parameters pages read that no form on them shows (links and redirects carry them).
KNOWN_QUERY_PARAMS = ["next", "chunk", "collection", "q", "done", "setup_intent", "page"]
SKIP_ACTIONS = re.compile(r"(logout|delete|revoke|deactivate|remove|/2fa/|/password/reset/)", re.IGNORECASE)


@dataclass
class Form:
    page: str
    action: str
    method: str
    fields: dict[str, str]  # name -> a valid-looking value (its default, or the first option)
    file_fields: list[str]


@dataclass
class Finding:
    method: str
    path: str
    field: str
    value: str
    status: int

    def __str__(self) -> str:
        return f"{self.status} {self.method} {self.path} {self.field}={self.value[:40]!r}"


@dataclass
class Report:
    requests: int = 0
    findings: list[Finding] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    # 503s a live stack gave because no model could serve (a worker down or still loading): the
    # state of the stack, not a crash on bad input. Counted apart only when the caller allows it.
    unavailable: list[Finding] = field(default_factory=list)

    def count(self, status: int) -> None:
        self.requests += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1


# get(path, params) and post(path, data, files) -> (status, html)
Get = Callable[[str, dict[str, str]], tuple[int, str]]
Post = Callable[[str, dict[str, str], dict[str, tuple[str, bytes]]], tuple[int, str]]


def forms_find(page: str, html: str) -> list[Form]:
    if not html.strip():
        return []
    try:
        document = lxml.html.fromstring(html)
    except (ValueError, lxml.etree.ParserError):
        return []
    forms = []
    for element in document.forms:
        action = urlsplit(urljoin(page, element.get("action") or page))
        if action.netloc and action.netloc not in ("testserver", "localhost"):
            continue
        fields, files = {}, []
        for control in element.inputs:
            name = control.get("name")
            if not name or name == "csrfmiddlewaretoken":
                continue
            kind = (control.get("type") or "").lower()
            if kind == "file":
                files.append(name)
            elif control.tag == "select":
                options = [o.get("value", o.text or "") for o in control.findall(".//option")]
                fields[name] = next((o for o in options if o), "")
            elif kind in ("checkbox", "radio"):
                fields.setdefault(name, control.get("value", "on"))
            elif kind not in ("submit", "button", "image", "reset"):
                fields[name] = control.get("value") or (control.text or "")
        forms.append(Form(page=page, action=action.path + (f"?{action.query}" if action.query else ""),
                          method=(element.get("method") or "get").lower(), fields=fields, file_fields=files))
    return forms


def pages_fuzz(*, get: Get, post: Post, pages: Iterable[str], values: list[str] = HOSTILE_VALUES,
               filenames: list[str] = HOSTILE_FILENAMES) -> Report:
    """Visit each page, then send each hostile value to each of its forms' fields (the others keep
    their defaults) and to each known query parameter; collect every answer of 500 or more."""
    report = Report()

    def record(method: str, path: str, name: str, value: str, status: int) -> None:
        report.count(status)
        if status >= 500:
            report.findings.append(Finding(method, path, name, value, status))

    seen: set[tuple[str, str, tuple[str, ...]]] = set()
    for page in pages:
        status, html = get(page, {})
        record("GET", page, "", "", status)
        for param in KNOWN_QUERY_PARAMS:
            for value in values:
                record("GET", page, param, value, get(page, {param: value})[0])
        for form in forms_find(page, html):
            key = (form.method, form.action.split("?")[0], tuple(sorted(form.fields)))
            if key in seen or SKIP_ACTIONS.search(form.action):
                continue
            seen.add(key)
            for name in form.fields:
                for value in values:
                    data = {**form.fields, name: value}
                    status = get(form.action, data)[0] if form.method == "get" else post(form.action, data, {})[0]
                    record(form.method.upper(), form.action, name, value, status)
            for name in form.file_fields:
                for filename in filenames:
                    files = {name: (filename, b"Lighthouse keepers trim the lamp at dusk.\n")}
                    record("POST", form.action, f"{name}.filename", filename,
                           post(form.action, dict(form.fields), files)[0])
    return report


def api_fuzz(*, schema, headers: dict[str, str], examples: int, seed_value: int,
             allow_unavailable: bool = False) -> Report:
    """Every operation of an OpenAPI schema (loaded by schemathesis), with data that fits the
    schema and data that doesn't, `examples` of each, reproducibly from `seed_value`.
    `allow_unavailable` sets 503s apart from the findings (see Report.unavailable)."""
    from hypothesis.errors import Unsatisfiable
    from schemathesis.generation.modes import GenerationMode

    report = Report()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            try:
                _operation_fuzz(operation, mode, report=report, headers=headers, examples=examples,
                                seed_value=seed_value, allow_unavailable=allow_unavailable)()
            except Unsatisfiable:  # nothing to generate in this mode (e.g. no way to break the schema)
                continue
    return report


def _operation_fuzz(operation, mode, *, report: Report, headers: dict[str, str], examples: int, seed_value: int,
                    allow_unavailable: bool):
    from hypothesis import HealthCheck, Phase, given, seed, settings

    @seed(seed_value)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        response = case.call(headers=headers)
        report.count(response.status_code)
        if response.status_code >= 500:
            sent = {"query": case.query, "body": case.body if not isinstance(case.body, bytes) else "<bytes>"}
            finding = Finding(case.method.upper(), case.formatted_path, mode.value, repr(sent)[:300],
                              response.status_code)
            unavailable = allow_unavailable and response.status_code == 503
            (report.unavailable if unavailable else report.findings).append(finding)

    return run
