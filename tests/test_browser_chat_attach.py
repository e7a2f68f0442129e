"""Attach a file from the chat composer: it goes into a collection the user picks, the page shows the
ingest's progress, Send waits for it, and the next reply answers from that collection. Then the
Knowledge picker's "Several…" chooses two collections, kept with the conversation."""

from __future__ import annotations

import pydoc_data.topics
import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from chat.models import Assistant
from chat.services import conversation_create
from knowledge.models import Collection, Document
from knowledge.tests.factories import collection_make
from tests.browser import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("size", [(1366, 850), (390, 844)], ids=["desktop", "phone"])
def test_a_file_attached_in_the_composer_is_read_then_answered_from(
    page, live_daphne, celery_worker, bundled_models, tmp_path, size
):
    url = live_daphne["url"]
    user = user_make(email="ines@example.com")
    collection_make(user=user, name="Harbour notes")
    collection_make(user=user, name="Other notes")
    conversation = conversation_create(user=user, assistant=Assistant.objects.get(slug="general"))
    page.set_viewport_size({"width": size[0], "height": size[1]})
    sign_in(page, url, "ines@example.com")
    page.goto(f"{url}/app/chats/{conversation.pk}/")
    expect(page.locator("#chat-status")).to_have_text("Connected")

    licence = tmp_path / "Apache-2.0"  # no extension: read as text by its content
    licence.write_text(pydoc_data.topics.topics["with"][:3000])
    page.get_by_role("button", name="Attach a file").click()
    page.get_by_label("Add it to").select_option(label="Harbour notes")
    page.get_by_label("File to attach").set_input_files(str(licence))
    status = page.locator("#attach-status")
    expect(status).to_contain_text("Apache-2.0 is ready", timeout=120_000)
    expect(page.get_by_role("button", name="Send")).to_be_enabled()
    expect(page.get_by_label("Knowledge")).to_have_value(str(Document.objects.get(title="Apache-2.0").collection_id))

    page.get_by_label("Message General assistant").fill("What does __exit__ receive when the with block raises?")
    page.keyboard.press("Enter")
    reply = page.locator(".msg--assistant").last
    expect(reply).to_have_attribute("data-status", "done", timeout=120_000)
    expect(reply.locator(".msg__citations a").first).to_contain_text(re.compile(r"\[1\] Apache-2\.0"))
    page.screenshot(path=f"test-results/chat-attach-{size[0]}.png")

    # A source opens in the side panel, over the chat, at this size too.
    chat_url = page.url
    reply.locator(".msg__citations a").first.click()
    source = page.get_by_role("dialog", name="Apache-2.0")
    expect(source).to_be_visible()
    expect(source.get_by_role("link", name="Open in the document")).to_be_visible()
    page.screenshot(path=f"test-results/chat-source-panel-{size[0]}.png")
    assert page.url == chat_url
    page.keyboard.press("Escape")
    expect(source).to_be_hidden()

    # "Several…": tick two collections; the next message answers from both, and the conversation keeps them.
    page.get_by_label("Knowledge").select_option("several")
    several = page.get_by_role("group", name="Answer from these collections")
    expect(several).to_be_visible()
    several.get_by_label("Harbour notes").check()
    several.get_by_label("Other notes").check()
    page.get_by_label("Message General assistant").fill("And when it does not raise?")
    page.keyboard.press("Enter")
    expect(page.locator(".msg--assistant").last).to_have_attribute("data-status", "done", timeout=120_000)
    conversation.refresh_from_db()
    assert sorted(conversation.knowledge_collections) == sorted(
        Collection.objects.filter(name__in=["Harbour notes", "Other notes"]).values_list("id", flat=True))
    page.reload()
    expect(page.get_by_label("Knowledge")).to_have_value("several")
    expect(page.get_by_role("group", name="Answer from these collections").get_by_label("Other notes")).to_be_checked()
