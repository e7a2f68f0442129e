"""The built-in tools: argument checks, webhook_notify's URL and address rules and signature, send_email's
recipients and rate limit, and knowledge_search's permissions (the outsider test). Every failure is a
result the model reads, never an exception."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
import time

import pytest

from accounts.tests.factories import user_make
from chat.models import Assistant
from chat.tools import (
    TOOLS,
    KnowledgeSearch,
    assistant_tools,
    tool_run,
    webhook_signature,
    webhook_url_allowed,
)
from common.tests.loopback import LoopbackServer
from knowledge.tests.factories import collection_make, document_ready, team_make

pytestmark = pytest.mark.django_db

SECRET = "test-webhook-secret-0123456789"


def _assistant(tools: list[str], collections: list[int] | None = None) -> Assistant:
    return Assistant.objects.create(name="Tools", slug=f"tools-{len(tools)}-{collections}", system_prompt="x",
                                    tools=tools, knowledge_collections=collections)


def test_the_registry_has_the_three_tools_with_openai_function_schemas():
    assert list(TOOLS) == ["knowledge_search", "webhook_notify", "send_email"]
    for name, tool in TOOLS.items():
        schema = tool.schema()
        assert schema["type"] == "function" and schema["function"]["name"] == name
        assert schema["function"]["description"] and schema["function"]["parameters"]["type"] == "object"


def test_assistant_tools_are_the_enabled_ones_in_registry_order():
    assistant = _assistant(["send_email", "knowledge_search", "retired_tool"])
    assert [tool.name for tool in assistant_tools(assistant)] == ["knowledge_search", "send_email"]


@pytest.mark.parametrize(("name", "arguments", "expected"), [
    ("knowledge_search", {}, "'query' is a required property"),
    ("knowledge_search", {"query": "leave", "k": 99}, "`k`: 99 is greater than the maximum of 8"),
    ("knowledge_search", {"query": "leave", "everything": True}, "Additional properties are not allowed"),
    ("knowledge_search", {"query": 42}, "`query`: 42 is not of type 'string'"),
    ("webhook_notify", {"message": "printer on fire"}, "'event' is a required property"),
    ("webhook_notify", {"event": "has spaces", "message": "x"}, "`event`: 'has spaces' does not match"),
    ("send_email", {"to": "a@example.com", "subject": "Hi\r\nBcc: x@evil.example", "body": "x"}, "`subject`"),
    ("send_email", {"to": "a@example.com", "subject": "Hi", "body": "x" * 5001}, "`body`"),
])
def test_bad_arguments_are_an_error_result_that_says_what_was_wrong(name, arguments, expected):
    user = user_make()
    result = tool_run(user=user, assistant=_assistant([name]), name=name, arguments=arguments)

    assert not result.ok and result.data["error"] == "invalid_arguments"
    assert expected in result.content, result.content
    assert result.summary.startswith(f"used {name}") and "failed" in result.summary


def test_arguments_as_the_model_sends_them_a_json_string_and_broken_json():
    user, assistant = user_make(), _assistant(["send_email"])
    broken = tool_run(user=user, assistant=assistant, name="send_email", arguments='{"to": "a@')
    assert not broken.ok and "not valid JSON" in broken.content
    listed = tool_run(user=user, assistant=assistant, name="send_email", arguments="[1, 2]")
    assert not listed.ok and "JSON object" in listed.content


def test_a_tool_the_assistant_has_not_enabled_or_that_does_not_exist_is_refused():
    user, assistant = user_make(), _assistant(["knowledge_search"])
    for name in ("send_email", "rm_rf"):
        result = tool_run(user=user, assistant=assistant, name=name, arguments={})
        assert not result.ok and result.data["error"] == "unknown_tool"
        assert "its tools: knowledge_search" in result.content


# ----------------------------------------------------------------------------- webhook_notify


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body():
    body = b'{"event":"ticket.create"}'
    expected = hmac.new(SECRET.encode(), b"1767225600." + body, hashlib.sha256).hexdigest()
    assert webhook_signature(secret=SECRET, timestamp=1767225600, body=body) == f"sha256={expected}"
    assert webhook_signature(secret=SECRET, timestamp=1767225601, body=body) != f"sha256={expected}"


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://hooks.example.com/parley/it", True),
    ("https://hooks.example.com/parley", True),
    ("https://hooks.example.com/parleyx", False),  # a sibling path, not under the prefix
    ("https://hooks.example.com.evil.example/parley/it", False),
    ("http://hooks.example.com/parley/it", False),  # another scheme
    ("https://hooks.example.com:8443/parley/it", False),  # another port
    ("https://user:pw@hooks.example.com/parley/it", False),
    ("https://evil.example/https://hooks.example.com/parley", False),
    ("ftp://hooks.example.com/parley", False),
    ("https://hooks.example.com:99999/parley", False),
    ("https://hooks.example.com/parley/../admin", False),
    ("https://hooks.example.com/parley/%2e%2e/admin", False),
])
def test_only_urls_under_an_allowed_prefix(url, allowed):
    assert webhook_url_allowed(url, ["https://hooks.example.com/parley"]) is allowed


@pytest.fixture
def webhook_settings(settings):
    settings.PARLEY_WEBHOOK_SECRET = SECRET
    settings.PARLEY_WEBHOOK_ALLOWED_NETWORKS = []
    settings.PARLEY_WEBHOOK_TIMEOUT = 3
    return settings


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/hook", "http://10.1.2.3/hook", "http://169.254.169.254/latest/meta-data",
    "http://[::1]:9/hook", "http://[::ffff:127.0.0.1]:9/hook", "http://localhost:9/hook",
])
def test_webhook_refuses_private_and_loopback_addresses_even_when_the_url_is_allowed(webhook_settings, url):
    webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = [url]
    result = tool_run(user=user_make(), assistant=_assistant(["webhook_notify"]), name="webhook_notify",
                      arguments={"url": url, "event": "ticket.create", "message": "printer on fire"})
    assert not result.ok and result.data["error"] == "address_not_allowed", result.content
    assert "private or local address" in result.content and "public addresses only" in result.content


def test_webhook_refuses_a_url_the_operator_did_not_allow_and_runs_only_when_configured(webhook_settings):
    user, assistant = user_make(), _assistant(["webhook_notify"])
    arguments = {"url": "https://evil.example/collect", "event": "x", "message": "y"}
    webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = ["https://hooks.example.com/parley"]
    result = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments=arguments)
    assert result.data["error"] == "url_not_allowed" and "hooks.example.com/parley" in result.content

    webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = []
    result = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments=arguments)
    assert result.data["error"] == "not_configured" and "PARLEY_WEBHOOK_ALLOWED_URLS" in result.content

    webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = ["https://evil.example/collect"]
    webhook_settings.PARLEY_WEBHOOK_SECRET = ""
    result = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments=arguments)
    assert result.data["error"] == "not_configured" and "PARLEY_WEBHOOK_SECRET" in result.content


def test_webhook_posts_signed_json_and_follows_no_redirect(webhook_settings):
    # The receiver runs on loopback, which the SSRF rule refuses; this test allows 127.0.0.1/32 the way an
    # operator would for an intranet receiver (PARLEY_WEBHOOK_ALLOWED_NETWORKS), so the real POST is seen.
    webhook_settings.PARLEY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    user, assistant = user_make(email="alice@example.com"), _assistant(["webhook_notify"])

    def respond(path: str):
        return (302, {"Location": "http://10.0.0.1/internal"}, b"") if path.startswith("/moved") else (204, {}, b"")

    with LoopbackServer(respond) as server:
        webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = [f"{server.url}/hooks"]
        result = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments={
            "event": "ticket.create", "message": "Printer on floor 2 is jammed", "data": {"floor": 2}})
        moved = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments={
            "url": f"{server.url}/hooks/../moved", "event": "x", "message": "y"})
        webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = [f"{server.url}/moved"]
        redirected = tool_run(user=user, assistant=assistant, name="webhook_notify", arguments={
            "event": "x", "message": "y"})

    assert result.ok, result.content
    assert result.summary == "used webhook_notify (ticket.create) → delivered to 127.0.0.1 (204)"
    request = server.requests[0]
    assert request["method"] == "POST" and request["path"] == "/hooks"
    body = request["body"]
    payload = json.loads(body)
    assert payload["event"] == "ticket.create" and payload["data"] == {"floor": 2}
    assert payload["user"]["email"] == "alice@example.com" and payload["assistant"]["slug"] == assistant.slug
    headers = {name.lower(): value for name, value in request["headers"].items()}
    expected = hmac.new(SECRET.encode(), f"{headers['x-parley-timestamp']}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert headers["x-parley-signature"] == f"sha256={expected}"

    assert moved.data["error"] == "url_not_allowed"  # /hooks/../moved is not under /hooks
    assert redirected.data["error"] == "redirected" and "never follow" in redirected.content
    assert [r["path"] for r in server.requests] == ["/hooks", "/moved"]  # the redirect's target was not asked


def test_a_receiver_that_drips_its_answer_is_cut_off_at_the_whole_requests_timeout(webhook_settings):
    # Each byte comes well within the socket's per-read timeout, so only a deadline on the whole exchange
    # stops it. The receiver would need 40 x 0.1 s; it is allowed 1 s, and notes where it was cut off.
    webhook_settings.PARLEY_WEBHOOK_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    webhook_settings.PARLEY_WEBHOOK_TIMEOUT = 1
    answer = b"HTTP/1.1 204 No Content\r\nX-Slow: " + b"." * 40 + b"\r\n\r\n"
    sent = []
    listener = socket.create_server(("127.0.0.1", 0))

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            try:
                for byte in answer:
                    connection.sendall(bytes([byte]))
                    sent.append(byte)
                    time.sleep(0.1)
            except OSError:
                pass

    receiver = threading.Thread(target=drip, daemon=True)
    receiver.start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/hooks"
    webhook_settings.PARLEY_WEBHOOK_ALLOWED_URLS = [url]
    try:
        result = tool_run(user=user_make(), assistant=_assistant(["webhook_notify"]), name="webhook_notify",
                          arguments={"event": "ticket.create", "message": "slow"})
        receiver.join(10)
    finally:
        listener.close()

    assert result.data["error"] == "timeout" and "did not answer within 1 s" in result.content, result.content
    assert len(sent) < len(answer)  # cut off mid-answer, not waited out


# ----------------------------------------------------------------------------- send_email


def test_send_email_goes_to_the_user_and_team_members_only(mailoutbox, settings):
    settings.PARLEY_TOOL_EMAILS_PER_HOUR = 10
    alice, bob, mallory = user_make(), user_make(), user_make()
    team_make(owner=alice, members=[bob])
    assistant = _assistant(["send_email"])

    def send(to: str):
        return tool_run(user=alice, assistant=assistant, name="send_email",
                        arguments={"to": to, "subject": "Leave summary", "body": "You have 12 days left."})

    for to in (alice.email, bob.email.upper()):
        result = send(to)
        assert result.ok and result.summary == f"used send_email ({to}) → sent", result.content
    for to in (mallory.email, "stranger@example.org", "not-an-address"):
        result = send(to)
        assert not result.ok and result.data["error"] in ("recipient_not_allowed", "invalid_arguments"), to
    assert [message.to for message in mailoutbox] == [[alice.email], [bob.email.upper()]]
    message = mailoutbox[0]
    assert message.subject.endswith("Leave summary") and message.reply_to == [alice.email]
    assert "You have 12 days left." in message.body and alice.email in message.body


def test_send_email_is_rate_limited_per_user(mailoutbox, settings):
    # Mail leaves the machine, so Django's in-memory (locmem) backend stands in for the mail server.
    settings.PARLEY_TOOL_EMAILS_PER_HOUR = 2
    alice, bob = user_make(), user_make()
    assistant = _assistant(["send_email"])
    results = [tool_run(user=alice, assistant=assistant, name="send_email",
                        arguments={"to": alice.email, "subject": f"Note {n}", "body": "x"}) for n in range(3)]
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].data["error"] == "rate_limited" and "2 emails" in results[2].content
    other = tool_run(user=bob, assistant=assistant, name="send_email",
                     arguments={"to": bob.email, "subject": "Mine", "body": "x"})
    assert other.ok  # the limit is per user
    assert len(mailoutbox) == 3


# ----------------------------------------------------------------------------- knowledge_search


def test_knowledge_search_never_returns_a_collection_the_user_cannot_read(bundled_models):
    owner, outsider = user_make(), user_make()
    secret = collection_make(user=owner, name="Board minutes")
    document_ready(collection=secret, user=owner, name="minutes.txt",
                   text="The notice period for the chief executive is six months. " * 20)
    visible = collection_make(user=outsider, name="Outsider notes")
    document_ready(collection=visible, user=outsider, name="notes.txt",
                   text="My own notice period is one month, as my contract says. " * 5)
    # Configured (by staff, say) with both; the search keeps what the caller may read.
    assistant = _assistant(["knowledge_search"], collections=[secret.pk, visible.pk])
    tool = KnowledgeSearch(embed_in_process=True)

    as_outsider = tool.run(user=outsider, assistant=assistant, arguments={"query": "notice period", "k": 8})
    assert as_outsider.ok
    assert {c["collection_id"] for c in as_outsider.data["citations"]} == {visible.pk}
    assert "six months" not in as_outsider.content and "one month" in as_outsider.content
    count = len(as_outsider.data["citations"])
    assert as_outsider.summary == f"used knowledge_search ('notice period') → {count} passage{'s' * (count != 1)}"

    as_owner = tool.run(user=owner, assistant=assistant, arguments={"query": "notice period"})
    assert {c["collection_id"] for c in as_owner.data["citations"]} == {secret.pk}
    assert "six months" in as_owner.content and "[1]" in as_owner.content

    nothing = tool.run(user=user_make(), assistant=assistant, arguments={"query": "notice period"})
    assert nothing.ok and nothing.data["citations"] == [] and "No passage matched" in nothing.content
