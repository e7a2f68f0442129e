"""The tour's seven steps and the five badges every Parley starts with (migration onboarding.0002).

Seeding never overwrites a row that exists: staff edit steps and thresholds in admin.
"""

from __future__ import annotations

from django.db import transaction

STEPS = [
    {"slug": "assistants", "order": 1, "title": "Meet the assistants",
     "text": "Each assistant has its own instructions and model. Pick one and press Start chatting to open a "
             "conversation.",
     "target_url": "/app/assistants/", "target_element": ".assistant-grid", "action": "conversation_started"},
    {"slug": "chat", "order": 2, "title": "Try a chat",
     "text": "Type a question and press Enter. The reply streams in as the model writes it, and Esc stops it. "
             "You can also hold the microphone button and talk.",
     "target_url": "/app/welcome/last-chat/", "target_element": "#composer-input", "action": "message_sent"},
    {"slug": "evaluation", "order": 3, "title": "Explore the S-7 evaluation",
     "text": "See how the models score on the S-7 challenges, and take one yourself.",
     "target_url": "", "target_url_setting": "PARLEY_TOUR_EVALUATION_URL",
     "target_element": "[data-tour='evaluation']",
     "action": ""},
    {"slug": "knowledge", "order": 4, "title": "Add your knowledge",
     "text": "Create a collection and drop a document into it. Assistants can then answer from your documents, "
             "with citations you can open.",
     "target_url": "/app/knowledge/", "target_element": "#dropzone, form:has(#collection-name)",
     "action": "document_added"},
    {"slug": "usage", "order": 5, "title": "Usage and analytics",
     "text": "Every request is counted here: tokens, audio seconds and cost, per day and model, from the app and "
             "your API keys.",
     "target_url": "/app/usage/", "target_element": "[data-tour='usage']", "action": ""},
    {"slug": "profile", "order": 6, "title": "Complete your profile",
     "text": "Add your name, an avatar (a picture or your initials), your time zone and whether you want an email "
             "digest, then save.",
     "target_url": "/app/profile/", "target_element": "#profile-form", "action": "profile_completed"},
    {"slug": "invite", "order": 7, "title": "Invite your team",
     "text": "Teams share collections of documents. Invite a colleague by email: the link works once, for 7 days.",
     "target_url": "/app/teams/", "target_element": "#invite-form, #team-create-form", "action": "invitation_sent"},
]

BADGES = [
    {"slug": "first-chat", "name": "First Chat", "order": 1, "icon": "chat", "rule": "first_chat", "threshold": 1,
     "description": "Got your first complete reply from an assistant."},
    {"slug": "s7-challenger", "name": "S-7 Challenger", "order": 2, "icon": "target", "rule": "s7_challenger",
     "threshold": 1, "description": "Finished an S-7 evaluation challenge."},
    {"slug": "knowledge-explorer", "name": "Knowledge Explorer", "order": 3, "icon": "book",
     "rule": "knowledge_explorer", "threshold": 5,
     "description": "Opened a citation in an answer from your documents, or have 5 documents ready."},
    {"slug": "power-user", "name": "Power User", "order": 4, "icon": "bolt", "rule": "power_user", "threshold": 14,
     "description": "Used chat, voice, knowledge and an API key within 14 days."},
    {"slug": "community-builder", "name": "Community Builder", "order": 5, "icon": "people",
     "rule": "community_builder", "threshold": 1, "description": "Someone you invited joined your team."},
]


def seed_rows(tour_step_model, badge_model) -> None:
    for data in STEPS:
        tour_step_model.objects.get_or_create(slug=data["slug"], defaults=data)
    for data in BADGES:
        badge_model.objects.get_or_create(slug=data["slug"], defaults=data)


@transaction.atomic
def onboarding_seed() -> None:
    """Create the seeded steps and badges that are missing (tests call it after tables are emptied)."""
    from onboarding.models import Badge, TourStep

    seed_rows(TourStep, Badge)
