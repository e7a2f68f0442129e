"""Knowledge in headless Chromium: drop two files, watch them get processed, search, open a passage;
a licence file without an extension, rows live and reloaded, search results as text with marked
words, the relevance floor, and no sideways scroll on a 390 px phone."""

from __future__ import annotations

import base64
import difflib
import pydoc_data.topics
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from playwright.sync_api import expect

from accounts.tests.factories import user_make
from knowledge.models import Chunk, Document
from knowledge.tests.factories import collection_make
from knowledge.tests.files import pdf_bytes
from tests.browser import sign_in

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
    sign_in(page, url, "kira@example.com")

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
    page.get_by_role("button", name="Start chatting with General assistant").click()
    expect(page.locator("#chat-status")).to_have_text("Connected")
    page.get_by_label("Knowledge").select_option(label="Python notes")  # this collection only
    page.get_by_label("Message General assistant").fill("What does __exit__ receive when the with block raises?")
    page.keyboard.press("Enter")
    reply = page.locator(".msg--assistant").last
    citation = reply.locator(".msg__citations a").first
    expect(citation).to_be_visible(timeout=120_000)
    expect(citation).to_contain_text("[1] context managers")
    expect(reply).to_have_attribute("data-status", "done", timeout=120_000)  # `done` lists the sources used
    cited_id = int(re.search(r"#chunk-(\d+)$", citation.get_attribute("href")).group(1))
    chat_url = page.url
    # The source opens in a side panel, without leaving the chat; the panel links to the document.
    citation.click()
    source = page.get_by_role("dialog", name="context managers")
    expect(source).to_be_visible()
    passage = Chunk.objects.get(pk=cited_id)
    expect(source.locator(".source-panel__text")).to_contain_text(re.findall(r"[A-Za-z]{6,}", passage.text)[0])
    assert page.url == chat_url
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "knowledge-source-panel.png"))
    page.keyboard.press("Escape")
    expect(source).to_be_hidden()
    expect(citation).to_be_focused()
    citation.click()
    source.get_by_role("link", name="Open in the document").click()
    expect(page).to_have_url(re.compile(rf"#chunk-{cited_id}$"))
    expect(page.locator(f"#chunk-{cited_id}")).to_have_class(re.compile(r"chunk--cited"))
    assert Chunk.objects.select_related("document").get(pk=cited_id).document.title == "context managers"


# --------------------------------------------------------------------------- issue 13: files without an
# extension, titles, rows, search results, the relevance floor, and a 390 px phone.

SHOTS = Path(__file__).resolve().parent.parent / "test-results"
VIEWPORTS = [{"width": 1366, "height": 850}, {"width": 390, "height": 844}]
# Licence-like text of our own (not the Apache licence itself), in a file named like SPDX's licence files.
APACHE = (
    "Example Licence, Version 2.0\n\nTERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION\n\n"
    "1. Definitions. A Contributor is anyone who submits a Contribution to the Work.\n\n"
    "2. Grant of Copyright Licence. Each Contributor grants you a perpetual, worldwide, royalty-free copyright "
    "licence to reproduce, prepare derivative works of, publicly display and distribute the Work.\n\n"
    "3. Grant of Patent Licence. Each Contributor grants you a perpetual, worldwide, royalty-free patent licence "
    "to make, use, sell and import the Work. If you sue anyone claiming the Work infringes a patent, the patent "
    "licences granted to you for that Work end on the date the suit is filed.\n\n"
    "4. Redistribution. You must give recipients a copy of this Licence and keep every notice of attribution.\n"
)
FOG = (
    "# Fog Signal\n\nThe **fog signal** sounds every *30 seconds* when [visibility](https://example.com/vis) "
    "drops below two nautical miles.\n\n```\nhorn.sound(seconds=5)\n```\n\n> Keepers log each fog signal hour "
    "in the __station journal__.\n\n## Maintenance\n\nGrease the compressor of the horn every month.\n"
)
NO_SIDEWAYS_SCROLL = "() => document.documentElement.scrollWidth <= document.documentElement.clientWidth"


def _signed_in(chromium, url: str, user, viewport: dict):
    client = Client()
    client.force_login(user)
    context = chromium.new_context(viewport=viewport)
    context.add_cookies([{"name": settings.SESSION_COOKIE_NAME,
                          "value": client.cookies[settings.SESSION_COOKIE_NAME].value, "url": url}])
    page = context.new_page()
    page.set_default_timeout(20_000)
    return context, page


def _rows_html(page) -> dict[str, str]:
    """Each document row's outerHTML by id, CSRF tokens blanked (each render masks them anew), and
    without the empty style attribute Chromium's form autofill leaves on inputs it inspected."""
    rows = page.eval_on_selector_all("tr.doc-row", "rows => rows.map(r => [r.id, r.outerHTML])")
    return {row_id: re.sub(r' ?style=""', "", re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", html))
            for row_id, html in rows}


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=["desktop", "phone"])
def test_licence_file_without_extension_rows_search_and_floor(chromium, live_daphne, celery_worker, bundled_models,
                                                              viewport):
    url = live_daphne["url"]
    user = user_make()
    collection = collection_make(user=user, name="Harbour rules")
    context, page = _signed_in(chromium, url, user, viewport)
    width = viewport["width"]
    SHOTS.mkdir(exist_ok=True)
    try:
        page.goto(f"{url}/app/knowledge/collections/{collection.pk}/")
        assert page.evaluate(NO_SIDEWAYS_SCROLL)

        # A licence named like SPDX's (no known extension, sent as octet-stream) and a Markdown file.
        page.set_input_files("#dropzone-input", [
            {"name": "Apache-2.0", "mimeType": "application/octet-stream", "buffer": APACHE.encode()},
            {"name": "Fog Signal.md", "mimeType": "text/markdown", "buffer": FOG.encode()},
        ])
        rows = page.locator("tr.doc-row")
        expect(rows).to_have_count(2)
        for index in range(2):
            expect(rows.nth(index).locator(".doc-badge")).to_have_text("Ready", timeout=120_000)
        expect(page.locator("tr.doc-upload")).to_have_count(0)
        expect(page.get_by_role("link", name="Apache-2.0", exact=True)).to_be_visible()
        expect(page.get_by_role("link", name="Fog Signal", exact=True)).to_be_visible()  # the name's own case
        assert Document.objects.get(collection=collection, title="Apache-2.0").mime == "text/plain"
        assert page.evaluate(NO_SIDEWAYS_SCROLL), "the collection page scrolls sideways"
        page.screenshot(path=str(SHOTS / f"knowledge-collection-live-{width}.png"), full_page=True)

        # The rows added live are the rows a reload renders.
        live = _rows_html(page)
        page.reload()
        expect(rows).to_have_count(2)
        reloaded = _rows_html(page)
        for row_id, html in live.items():
            assert reloaded.get(row_id) == html, "\n".join(difflib.unified_diff(
                html.splitlines(), reloaded.get(row_id, "").splitlines(), "live", "reloaded", lineterm=""))
        assert set(reloaded) == set(live)
        assert page.evaluate(NO_SIDEWAYS_SCROLL)

        # Binary junk without an extension is refused on the spot, saying what it is and what is accepted.
        page.set_input_files("#dropzone-input", [
            {"name": "blob", "mimeType": "application/octet-stream", "buffer": bytes(range(256)) * 8}])
        refused = page.locator("tr.doc-upload")
        expect(refused.locator(".doc-badge")).to_have_text("Not added")
        expect(refused.locator(".doc-error")).to_contain_text("blob is binary data")
        expect(refused.locator(".doc-error")).to_contain_text("Accepted: PDF, DOCX, HTML, Markdown or plain UTF-8 text")
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=str(SHOTS / f"knowledge-collection-{width}.png"), full_page=True)
        assert Document.objects.filter(collection=collection).count() == 2

        # The licence answers a question: its passage, the title linking to it, the words marked.
        search = page.get_by_label("Search this collection")
        search.fill("What patent licence does each contributor grant?")
        search.press("Enter")
        passages = page.get_by_role("list", name="Ranked passages").locator("li")
        expect(passages.first.locator("a.passage__link")).to_have_text("Apache-2.0")
        expect(passages.first.locator(".passage__text mark").first).to_be_visible()
        marked = {text.lower() for text in passages.first.locator(".passage__text mark").all_inner_texts()}
        assert {"patent", "contributor"} <= marked, marked
        expect(passages.first.get_by_role("meter")).to_have_attribute("aria-label", re.compile(r"^Relevance \d+%$"))
        assert "score" not in page.locator("main").inner_text().lower()
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=str(SHOTS / f"knowledge-search-{width}.png"), full_page=True)

        # Markdown is shown as text: no #, **, link syntax or fences; the title links to the passage.
        page.get_by_label("Question or keywords").fill("How often does the fog signal sound?")
        page.get_by_label("Question or keywords").press("Enter")
        first = passages.first
        expect(first.locator("a.passage__link")).to_have_text("Fog Signal")
        chunk_id = int(re.search(r"#chunk-(\d+)$", first.locator("a.passage__link").get_attribute("href")).group(1))
        text = first.locator(".passage__text").inner_text()
        assert "The fog signal sounds every 30 seconds when visibility drops" in text, text
        for raw in ("**", "](", "```", "# ", "__"):
            assert raw not in text, (raw, text)
        assert [m.lower() for m in first.locator(".passage__text mark").all_inner_texts()][:2] == ["fog", "signal"]
        assert Chunk.objects.get(pk=chunk_id).document.title == "Fog Signal"

        # Nonsense finds nothing, and says so.
        page.get_by_label("Question or keywords").fill("zxqv blorp")
        page.get_by_label("Question or keywords").press("Enter")
        expect(page.get_by_text("No passages match “zxqv blorp”.")).to_be_visible()
        expect(page.get_by_role("list", name="Ranked passages")).to_have_count(0)
        assert page.evaluate(NO_SIDEWAYS_SCROLL)
        page.screenshot(path=str(SHOTS / f"knowledge-search-none-{width}.png"), full_page=True)
    finally:
        context.close()
