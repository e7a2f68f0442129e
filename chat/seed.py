"""The assistants every Parley starts with (seeded by migrations chat.0002 and chat.0009).

Their starter collections (knowledge/starter/) are created and ingested by `manage.py
assistants_starter`, which `make run` calls once a staff user exists; a migration can't: the
collections need an owner and the ingest needs the workers."""

from __future__ import annotations

from django.db import transaction

ASSISTANTS = [
    {
        "slug": "general", "name": "General assistant", "emoji": "💬",
        "description": "Everyday questions, writing help and explanations.",
        "system_prompt": "You are Parley, a helpful, concise assistant. Answer clearly and briefly. "
                         "If you are not sure, say so instead of guessing.",
        "temperature": 0.5,
    },
    {
        "slug": "it-support", "name": "IT support", "emoji": "🛠️",
        "description": "Troubleshoots laptops, accounts, Wi-Fi, printers and software step by step.",
        "system_prompt": "You are an IT support assistant for a company's staff. Ask one clarifying question "
                         "when a problem is ambiguous, then give numbered, safe troubleshooting steps a "
                         "non-expert can follow. Never ask for passwords. Suggest contacting the IT desk for "
                         "hardware faults, security incidents or anything needing admin rights. When "
                         "documents are provided, follow them and cite them.",
        "temperature": 0.3,
        "tools": ["knowledge_search", "webhook_notify", "send_email"],
    },
    {
        "slug": "hr-policy", "name": "HR policy", "emoji": "🧭",
        "description": "Explains leave, expenses, benefits and workplace policies in plain words.",
        "system_prompt": "You are an HR policy assistant. Explain company policies on leave, expenses, benefits "
                         "and conduct in plain language. When documents are provided, answer only from them and "
                         "cite them; otherwise say which policy document the person should check. Be neutral and "
                         "kind, and refer personal or sensitive cases to the HR team.",
        "temperature": 0.2,
        "tools": ["knowledge_search", "send_email"],
    },
    {
        "slug": "legal", "name": "Contracts and licences", "emoji": "⚖️",
        "description": "Explains contract clauses and open-source licences (GPL, Apache, MIT, BSD, PSF).",
        "system_prompt": "You are a legal information assistant for contracts and software licences. Explain "
                         "what a clause or licence says and what it usually means in practice, in plain words. "
                         "When documents are provided, quote and cite them, and say when they don't cover the "
                         "question. You are not a lawyer and give no legal advice: for a decision with legal "
                         "consequences, suggest asking the company's legal counsel.",
        "temperature": 0.2,
        "tools": ["knowledge_search"],
    },
]

# The starter collection of each seeded assistant: knowledge/starter/<directory>/, with SOURCES.md.
STARTER_COLLECTIONS = {
    "legal": {"directory": "legal", "name": "Starter: licences and contracts",
              "description": "Open-source licence texts and a contracts primer. Sources and licences: "
                             "knowledge/starter/legal/SOURCES.md."},
    "hr-policy": {"directory": "hr", "name": "Starter: HR policies",
                  "description": "The Contributor Covenant 2.0 code of conduct and its enforcement guidelines "
                                 "(CC BY 4.0). Sources: knowledge/starter/hr/SOURCES.md."},
    "it-support": {"directory": "it", "name": "Starter: IT support guides",
                   "description": "Sections of The Debian Administrator's Handbook on accounts, networks and "
                                  "Wi-Fi, printers, SSH, backups, updates and security (GPL-2.0+ or CC BY-SA "
                                  "3.0). Sources: knowledge/starter/it/SOURCES.md."},
}


def assistant_fields(data: dict, model) -> dict:
    """The seed's fields that `model` has: a migration's historical model may predate some (tools)."""
    names = {field.name for field in model._meta.get_fields()}
    return {key: value for key, value in data.items() if key in names}


@transaction.atomic
def assistants_seed() -> None:
    """Create or refresh the seeded assistants (idempotent)."""
    from chat.models import Assistant

    for data in ASSISTANTS:
        Assistant.objects.update_or_create(slug=data["slug"], defaults=assistant_fields(data, Assistant))
