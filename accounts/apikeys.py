"""API key format and hashing. Keys look like `pk-<prefix>.<secret>`; only the sha256 is stored."""

from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "pk-"
# Every API view names one of these as its `scope` (accounts/permissions.py). A scope added here
# is not in existing keys: add a data migration that grants it to keys that held every other
# scope (the "all scopes" default), as accounts/migrations/0003 did for account:read.
# analytics:read needs no such migration: it is for staff only (the analytics API also checks that the
# caller is staff), so no existing key should gain it; staff create a key with it when they need one.
SCOPES = ("inference", "knowledge", "billing:read", "usage:read", "account:read", "analytics:read")
# Offered on the API keys page only to staff, and refused there from anyone else.
STAFF_SCOPES = ("analytics:read",)
# ApiKey's per-key limits are PositiveIntegerFields: PostgreSQL's integer.
APIKEY_LIMIT_MAX = 2**31 - 1
# What each scope opens, in the words of the API keys page (README's scope table says the same).
SCOPE_DESCRIPTIONS = {
    "inference": "Chat, embeddings, transcription and speech: /v1, assistants and conversations",
    "knowledge": "Collections, documents and search: /api/knowledge, /rag",
    "billing:read": "Read the billing status: /api/billing/status",
    "usage:read": "Read usage records: /api/usage",
    "account:read": "Read the account and its teams: /api/me",
    "analytics:read": "Staff only: read product analytics: /api/analytics",
}


def scopes_offered(*, is_staff: bool) -> tuple[str, ...]:
    """The scopes a user may give their keys."""
    return SCOPES if is_staff else tuple(scope for scope in SCOPES if scope not in STAFF_SCOPES)


def apikey_generate() -> tuple[str, str]:
    """A new key and its display prefix."""
    prefix = secrets.token_hex(4)
    return f"{KEY_PREFIX}{prefix}.{secrets.token_urlsafe(32)}", prefix


def apikey_hash(key: str) -> str:
    # A fast hash is right here: keys are 256-bit random, so there is nothing to brute-force,
    # and every API request has to check one.
    return hashlib.sha256(key.encode()).hexdigest()
