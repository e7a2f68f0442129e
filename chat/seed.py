"""The assistants every Parley starts with (seeded by migration chat.0002)."""

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
                         "hardware faults, security incidents or anything needing admin rights.",
        "temperature": 0.3,
    },
    {
        "slug": "hr-policy", "name": "HR policy", "emoji": "🧭",
        "description": "Explains leave, expenses, benefits and workplace policies in plain words.",
        "system_prompt": "You are an HR policy assistant. Explain company policies on leave, expenses, benefits "
                         "and conduct in plain language. When documents are provided, answer only from them and "
                         "cite them; otherwise say which policy document the person should check. Be neutral and "
                         "kind, and refer personal or sensitive cases to the HR team.",
        "temperature": 0.2,
    },
]


@transaction.atomic
def assistants_seed() -> None:
    """Create or refresh the seeded assistants (idempotent)."""
    from chat.models import Assistant

    for data in ASSISTANTS:
        Assistant.objects.update_or_create(slug=data["slug"], defaults=data)
