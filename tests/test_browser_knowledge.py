"""Knowledge in headless Chromium: drop two files, watch them get processed, search, open a passage."""

from __future__ import annotations

import base64
import pydoc_data.topics
import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, user_make
from knowledge.models import Chunk
from knowledge.tests.files import pdf_bytes

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

TOPICS = pydoc_data.topics.topics
DROP_FILE = """([name, type, data]) => {
  const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
  const transfer = new DataTransfer();
  transfer.items.add(new File([bytes], name, { type }));
  const zone = document.getElementById("dropzone");
  zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: transfer, bubbles: true, cancelable: true }));
  zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
}"""


def test_upload_two_files_watch_progress_then_search_and_open_the_passage(
    page, live_daphne, celery_worker, bundled_models, tmp_path
):
    url = live_daphne["url"]
    user_make(email="kira@example.com")
    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill("kira@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Knowledge").click()
    page.get_by_label("Name").fill("Python notes")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Python notes")

    # One file dropped on the zone, one chosen with the file picker: both go up at once.
    pdf = pdf_bytes([TOPICS["with"][:2500], TOPICS["try"][:2500]])
    page.evaluate(DROP_FILE, ["context-managers.pdf", "application/pdf", base64.b64encode(pdf).decode()])
    markdown = tmp_path / "loops.md"
    markdown.write_text("# Loops\n\n" + TOPICS["for"][:3000])
    page.set_input_files("#dropzone-input", str(markdown))

    rows = page.locator("tr.doc-row")
    expect(rows).to_have_count(2)
    for index in range(2):
        expect(rows.nth(index).locator(".doc-badge")).to_have_text("Ready", timeout=120_000)
        expect(rows.nth(index).locator(".doc-progress")).to_be_hidden()
        expect(rows.nth(index).locator(".doc-chunks")).not_to_have_text("0")
    expect(page.get_by_role("link", name="context managers")).to_be_visible()

    # Search this collection and open the best passage.
    page.get_by_label("Search this collection").fill("What does __exit__ get when the with block raises?")
    page.get_by_label("Search this collection").press("Enter")
    passages = page.get_by_role("list", name="Ranked passages").locator("li")
    expect(passages.first).to_be_visible()
    first_link = passages.first.locator("a.passage__link")
    expect(first_link).to_have_text("context managers")
    chunk_id = int(re.search(r"#chunk-(\d+)$", first_link.get_attribute("href")).group(1))
    first_link.click()

    expect(page).to_have_url(re.compile(rf"/app/knowledge/documents/\d+/\?chunk={chunk_id}#chunk-{chunk_id}$"))
    cited = page.locator(f"#chunk-{chunk_id}")
    expect(cited).to_have_class(re.compile(r"chunk--cited"))
    expect(cited).to_be_in_viewport()
    expect(page.locator(".chunk--cited")).to_have_count(1)
    assert Chunk.objects.get(pk=chunk_id).text[:40] in cited.inner_text()

    # Ask in chat with knowledge on: the reply cites a passage, and the citation opens it.
    page.goto(url + "/app/assistants/")
    page.get_by_role("button", name="Start a conversation with General assistant").click()
    expect(page.locator("#chat-status")).to_have_text("Connected")
    page.get_by_label("Use knowledge").check()
    page.get_by_label("Message General assistant").fill("What does __exit__ receive when the with block raises?")
    page.keyboard.press("Enter")
    reply = page.locator(".msg--assistant").last
    citation = reply.locator(".msg__citations a").first
    expect(citation).to_be_visible(timeout=120_000)
    expect(citation).to_contain_text("[1] context managers")
    cited_id = int(re.search(r"#chunk-(\d+)$", citation.get_attribute("href")).group(1))
    citation.click()
    expect(page).to_have_url(re.compile(rf"#chunk-{cited_id}$"))
    expect(page.locator(f"#chunk-{cited_id}")).to_have_class(re.compile(r"chunk--cited"))
    assert Chunk.objects.select_related("document").get(pk=cited_id).document.title == "context managers"
