"""The built-in tools an assistant may call, run server-side for the user in the conversation.

Each tool has an OpenAI-format function schema and `run(*, user, assistant, arguments)`, which returns a
ToolResult and never raises: bad arguments, a refusal or a failure is a result the model reads (and the
chat shows), not a 500. The arguments are checked against the schema first.

What each tool may touch is the user's, never the assistant's or the operator's:
- knowledge_search reads only collections the user may read (the assistant's collections narrowed by
  the user's access, inside the search's SQL);
- webhook_notify posts only to URLs the operator allowed, to public addresses by the URL ingest's SSRF
  rules (knowledge.fetch), signed, with a short timeout, following no redirect;
- send_email writes only to the user or members of their teams, a few times an hour.

The chat turn's tool-calling loop is built elsewhere; it uses `assistant_tools` and `tool_run`.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMessage
from django.core.validators import validate_email
from django.utils import timezone
from jsonschema import Draft202012Validator

from accounts.models import User
from accounts.selectors import users_share_a_team
from common.errors import ApplicationError
from common.redis_connection import redis_client

logger = logging.getLogger(__name__)

MAX_SUMMARY_ARGUMENT = 60
WEBHOOK_MAX_DATA_BYTES = 8 * 1024
WEBHOOK_SIGNATURE_HEADER = "X-Parley-Signature"
WEBHOOK_TIMESTAMP_HEADER = "X-Parley-Timestamp"
EMAIL_KEY = "parley:tools:email:"


@dataclass(frozen=True)
class ToolResult:
    """What a tool call gave: a one-line label for the chat, the text fed back to the model, a JSON record."""

    summary: str
    content: str
    data: dict = field(default_factory=dict)
    ok: bool = True

    def as_dict(self) -> dict:
        return {"summary": self.summary, "content": self.content, "data": self.data, "ok": self.ok}


class ToolRefused(Exception):
    """A refusal the model and the user should read as is (not a bug)."""

    def __init__(self, message: str, code: str = "refused") -> None:
        super().__init__(message)
        self.message, self.code = message, code


def _quoted(value: str) -> str:
    value = " ".join(str(value).split())
    return value if len(value) <= MAX_SUMMARY_ARGUMENT else value[:MAX_SUMMARY_ARGUMENT - 1] + "…"


class Tool:
    name: str = ""
    description: str = ""
    parameters: dict = {}

    def schema(self) -> dict:
        """The OpenAI-format function definition (what `tools` in a chat request carries)."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}

    def label(self, arguments: dict) -> str:
        """What the call was about, for the summary ("'notice period'")."""
        return ""

    def run(self, *, user: User, assistant, arguments: dict) -> ToolResult:
        label = ""
        try:
            arguments = self.arguments_check(arguments)
            label = self.label(arguments)
            return self.call(user=user, assistant=assistant, arguments=arguments, label=label)
        except ToolRefused as exc:
            return self.error(exc.message, code=exc.code, label=label)
        except ApplicationError as exc:
            return self.error(exc.message, code=exc.code, label=label)
        except Exception as exc:  # the model gets an error result; the operator gets the stack
            logger.exception("tool %s failed", self.name)
            return self.error(f"The tool failed unexpectedly ({exc.__class__.__name__}).", code="tool_failed",
                              label=label)

    def arguments_check(self, arguments: object) -> dict:
        if not isinstance(arguments, dict):
            raise ToolRefused(f"{self.name} takes a JSON object of arguments, not {type(arguments).__name__}.",
                              code="invalid_arguments")
        errors = sorted(Draft202012Validator(self.parameters).iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            problems = "; ".join(
                (f"`{'.'.join(str(part) for part in error.path)}`: " if error.path else "") + error.message
                for error in errors[:3])
            raise ToolRefused(f"Invalid arguments for {self.name}: {problems}.", code="invalid_arguments")
        return arguments

    def error(self, message: str, *, code: str, label: str = "") -> ToolResult:
        about = f" ({label})" if label else ""
        return ToolResult(summary=f"used {self.name}{about} → failed: {_quoted(message)}",
                          content=f"Error: {message}", data={"error": code, "message": message}, ok=False)

    def call(self, *, user: User, assistant, arguments: dict, label: str) -> ToolResult:
        raise NotImplementedError


# ----------------------------------------------------------------------------- knowledge_search


class KnowledgeSearch(Tool):
    name = "knowledge_search"
    description = ("Search the documents this assistant answers from (only those the user may read) and "
                   "return the most relevant passages, numbered, to cite as [1], [2].")
    parameters = {
        "type": "object",
        "properties": {
            "query": {"type": "string", "minLength": 1, "maxLength": 500,
                      "description": "What to look for, in a few words."},
            "k": {"type": "integer", "minimum": 1, "maximum": 8, "description": "How many passages (default 4)."},
        },
        "required": ["query"],
        "additionalProperties": False,
    }

    def __init__(self, *, embed_in_process: bool = False) -> None:
        # The query is embedded by the gpu worker, as a chat turn's is; in-process for code already in one.
        self.embed_in_process = embed_in_process

    def label(self, arguments: dict) -> str:
        return f"'{_quoted(arguments['query'])}'"

    def call(self, *, user: User, assistant, arguments: dict, label: str) -> ToolResult:
        from knowledge.selectors import context_for_chat

        query = arguments["query"].strip()
        if not query:
            raise ToolRefused("The query is empty; say what to look for.", code="invalid_arguments")
        # The assistant's collections, of which the search keeps only those the user may read (in its SQL);
        # an assistant without any searches everything the user may read.
        collections = list(assistant.knowledge_collections or []) or None
        context, citations = context_for_chat(user=user, query=query, collection_ids=collections,
                                              k=arguments.get("k", 4), embed_in_process=self.embed_in_process)
        count = len(citations)
        content = context or f"No passage matched {query!r} in the documents you can read."
        return ToolResult(summary=f"used {self.name} ({label}) → {count} passage{'' if count == 1 else 's'}",
                          content=content, data={"query": query, "citations": citations})


# ----------------------------------------------------------------------------- webhook_notify


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(secret, "<timestamp>.<body>"): the timestamp is signed too, so a
    receiver that rejects old timestamps can't be replayed a captured request."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def webhook_url_allowed(url: str, allowed: list[str]) -> bool:
    """True if `url` is under one of the operator's prefixes: the same scheme, host and port, and a path
    under the prefix's (so https://hooks.example.com can't be stretched to hooks.example.com.evil.net)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    # A receiver resolves "/hooks/../admin" (or its %2e%2e form) to "/admin": outside the prefix it passed.
    if any(segment in (".", "..") for segment in unquote(parts.path).replace("\\", "/").split("/")):
        return False
    for prefix in allowed:
        try:
            base = urlsplit(prefix.strip())
            base_port = base.port
        except ValueError:
            continue
        if (base.scheme, (base.hostname or "").lower(), base_port or None) != \
                (parts.scheme, parts.hostname.lower(), port or None):
            continue
        base_path = base.path or "/"
        if parts.path == base_path or parts.path.startswith(base_path if base_path.endswith("/") else base_path + "/"):
            if not base.query or parts.query == base.query:
                return True
    return False


class WebhookNotify(Tool):
    name = "webhook_notify"
    description = ("Send a notification (an event name, a message and optional details) to one of the web "
                   "hooks the operator configured, e.g. to open a ticket or alert a team channel.")
    parameters = {
        "type": "object",
        "properties": {
            "url": {"type": "string", "maxLength": 2000,
                    "description": "The webhook URL; may be left out when the operator configured only one."},
            "event": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$",
                      "description": "A short event name, e.g. ticket.create."},
            "message": {"type": "string", "minLength": 1, "maxLength": 2000},
            "data": {"type": "object", "description": "Optional details as a JSON object."},
        },
        "required": ["event", "message"],
        "additionalProperties": False,
    }

    def label(self, arguments: dict) -> str:
        return _quoted(arguments["event"])

    def call(self, *, user: User, assistant, arguments: dict, label: str) -> ToolResult:
        from knowledge.fetch import FetchError, connection_pinned, host_resolve_checked, networks_parse

        allowed = [url for url in settings.PARLEY_WEBHOOK_ALLOWED_URLS if url.strip()]
        if not allowed:
            raise ToolRefused("No webhook is configured on this server (the operator sets "
                              "PARLEY_WEBHOOK_ALLOWED_URLS).", code="not_configured")
        if not settings.PARLEY_WEBHOOK_SECRET:
            raise ToolRefused("Webhooks are not signed on this server (PARLEY_WEBHOOK_SECRET is unset), so none "
                              "is sent.", code="not_configured")
        url = arguments.get("url") or (allowed[0] if len(allowed) == 1 else "")
        if not url:
            raise ToolRefused(f"Say which webhook: one under {', '.join(allowed)}.", code="invalid_arguments")
        if not webhook_url_allowed(url, allowed):
            raise ToolRefused(f"{url} is not a webhook the operator allowed; allowed: {', '.join(allowed)}.",
                              code="url_not_allowed")
        data = arguments.get("data") or {}
        payload = {
            "event": arguments["event"], "message": arguments["message"], "data": data,
            "assistant": {"slug": assistant.slug, "name": assistant.name},
            "user": {"id": user.pk, "email": user.email}, "sent_at": timezone.now().isoformat(),
        }
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True, default=str).encode()
        if len(body) > WEBHOOK_MAX_DATA_BYTES + 4096:
            raise ToolRefused(f"The notification is {len(body):,} bytes; keep `data` under "
                              f"{WEBHOOK_MAX_DATA_BYTES:,} bytes.", code="invalid_arguments")
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        host = parts.hostname
        try:
            # The URL ingest's SSRF rules: every address the name resolves to must be public (or in a network
            # the operator named), and the connection goes to a checked address, not a second lookup.
            addresses = host_resolve_checked(host, port, allow_private=False, allowed_networks=networks_parse(
                settings.PARLEY_WEBHOOK_ALLOWED_NETWORKS))
        except FetchError as exc:
            message = str(exc).replace("Parley only fetches public pages", "webhooks go to public addresses only")
            raise ToolRefused(message, code="address_not_allowed") from exc
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json", "User-Agent": "Parley webhook_notify",
            WEBHOOK_TIMESTAMP_HEADER: str(timestamp),
            WEBHOOK_SIGNATURE_HEADER: webhook_signature(secret=settings.PARLEY_WEBHOOK_SECRET, timestamp=timestamp,
                                                        body=body),
            "X-Parley-Event": arguments["event"],
        }
        timeout = float(settings.PARLEY_WEBHOOK_TIMEOUT)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        started = time.monotonic()
        try:
            connection = connection_pinned(parts.scheme, host, port, addresses, timeout)
        except FetchError as exc:
            raise ToolRefused(str(exc), code="unreachable") from exc
        # The socket timeout bounds each read; a receiver that drips its answer a byte at a time would pass
        # every one of them. The whole exchange gets `timeout` too: when it runs out, the socket is shut,
        # which ends the blocked read at once.
        expired, sock = threading.Event(), connection.sock  # the socket itself: close() sets .sock to None

        def expire() -> None:
            expired.set()
            with contextlib.suppress(OSError):  # already closed: nothing to end
                sock.shutdown(socket.SHUT_RDWR)

        deadline = threading.Timer(max(0.0, timeout - (time.monotonic() - started)), expire)
        deadline.daemon = True
        deadline.start()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read(2048)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            if isinstance(exc, TimeoutError) or expired.is_set():
                raise ToolRefused(f"{host} did not answer within {timeout:g} s.", code="timeout") from exc
            raise ToolRefused(f"Posting to {host} failed: {exc.__class__.__name__}: {exc}.",
                              code="unreachable") from exc
        finally:
            deadline.cancel()
            connection.close()
        if 300 <= status < 400:
            # Never followed: a redirect could point anywhere, including the operator's own network.
            raise ToolRefused(f"{host} answered with a redirect ({status}), which webhooks never follow; "
                              "configure the final URL.", code="redirected")
        if status >= 400:
            raise ToolRefused(f"{host} refused the notification ({status}).", code="rejected")
        return ToolResult(summary=f"used {self.name} ({label}) → delivered to {host} ({status})",
                          content=f"Delivered the {arguments['event']} notification to {host} (HTTP {status}).",
                          data={"url": url, "event": arguments["event"], "status": status})


# ----------------------------------------------------------------------------- send_email


def _email_allowed(user: User, address: str) -> bool:
    if address.lower() == (user.email or "").lower():
        return True
    other = User.objects.filter(email__iexact=address, is_active=True).values_list("pk", flat=True).first()
    return other is not None and users_share_a_team(user=user, other_id=other)


class SendEmail(Tool):
    name = "send_email"
    description = ("Send an email to the user or to a member of one of their teams (nobody else), e.g. a "
                   "summary of the answer. Say who it is for by their email address.")
    parameters = {
        "type": "object",
        "properties": {
            "to": {"type": "string", "minLength": 3, "maxLength": 254, "description": "The recipient's address."},
            "subject": {"type": "string", "minLength": 1, "maxLength": 150, "pattern": "^[^\\r\\n]*$"},
            "body": {"type": "string", "minLength": 1, "maxLength": 5000},
        },
        "required": ["to", "subject", "body"],
        "additionalProperties": False,
    }

    def label(self, arguments: dict) -> str:
        return _quoted(arguments["to"])

    def call(self, *, user: User, assistant, arguments: dict, label: str) -> ToolResult:
        to = arguments["to"].strip()
        try:
            validate_email(to)
        except ValidationError:
            raise ToolRefused(f"{to!r} is not an email address.", code="invalid_arguments")
        if not _email_allowed(user, to):
            # The same answer whether or not the address belongs to someone here: it reveals no account.
            raise ToolRefused(f"send_email writes only to you ({user.email}) or members of your teams; "
                              f"{to} is neither.", code="recipient_not_allowed")
        limit = settings.PARLEY_TOOL_EMAILS_PER_HOUR
        bucket = int(time.time() // 3600)
        key = f"{EMAIL_KEY}{user.pk}:{bucket}"
        redis = redis_client()
        # INCR first, then compare: two concurrent calls can't both take the last slot.
        count = redis.incr(key)
        if count == 1:
            redis.expire(key, 3700)
        if count > limit:
            raise ToolRefused(f"You have sent {limit} emails through assistants this hour, the limit; try again "
                              "next hour.", code="rate_limited")
        body = (f"{arguments['body']}\n\n-- \nSent by the {assistant.name} assistant in {settings.SITE_NAME} on "
                f"behalf of {user.email}.")
        try:
            sent = EmailMessage(subject=f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{arguments['subject']}",
                                body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[to],
                                reply_to=[user.email] if user.email else None).send()
        except Exception as exc:
            redis.decr(key)  # nothing went out: it doesn't use up the hour's allowance
            logger.warning("send_email to %s failed", to, exc_info=True)
            raise ToolRefused(f"The mail server did not take the email ({exc.__class__.__name__}); try again "
                              "later.", code="send_failed") from exc
        if not sent:
            redis.decr(key)
            raise ToolRefused("The mail server did not take the email; try again later.", code="send_failed")
        return ToolResult(summary=f"used {self.name} ({label}) → sent",
                          content=f"Sent the email “{arguments['subject']}” to {to}.",
                          data={"to": to, "subject": arguments["subject"]})


# ----------------------------------------------------------------------------- registry

TOOLS: dict[str, Tool] = {tool.name: tool for tool in (KnowledgeSearch(), WebhookNotify(), SendEmail())}


def tool_names() -> list[str]:
    return list(TOOLS)


def tool_choices() -> list[tuple[str, str]]:
    """(name, description) of every built-in tool, for the assistant form."""
    return [(tool.name, tool.description) for tool in TOOLS.values()]


def tools_check(names: object) -> list[str]:
    """The tool names as given, each known and once (ApplicationError otherwise), in registry order."""
    if names is None:
        return []
    if not isinstance(names, (list, tuple)) or not all(isinstance(name, str) for name in names):
        raise ApplicationError("Tools are given as a list of names.", code="invalid_tools")
    unknown = [name for name in names if name not in TOOLS]
    if unknown:
        raise ApplicationError(f"No such tool: {', '.join(unknown)}. The tools are {', '.join(TOOLS)}.",
                               code="invalid_tools")
    return [name for name in TOOLS if name in names]


def assistant_tools(assistant) -> list[Tool]:
    """The built-in tools enabled on the assistant (a name no longer in the registry is skipped)."""
    return [TOOLS[name] for name in TOOLS if name in (assistant.tools or [])]


def tool_run(*, user: User, assistant, name: str, arguments: dict | str) -> ToolResult:
    """Run one call the model made: `arguments` as the model sent them (a JSON string or an object). A tool
    that doesn't exist or isn't enabled on this assistant is an error result, like any other."""
    tool = TOOLS.get(name)
    if tool is None or tool not in assistant_tools(assistant):
        enabled = ", ".join(tool.name for tool in assistant_tools(assistant)) or "none"
        return _Unknown(name).error(f"This assistant has no tool called {name!r} (its tools: {enabled}).",
                                    code="unknown_tool")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except ValueError:
            return tool.error("The arguments are not valid JSON.", code="invalid_arguments")
    return tool.run(user=user, assistant=assistant, arguments=arguments)


class _Unknown(Tool):
    def __init__(self, name: str) -> None:
        self.name = name[:64] if isinstance(name, str) else "?"
