"""Onboarding in headless Chromium against a live Daphne and a real worker, at 1366×850 and 390×844:
sign up, verify by the link (one click, signed in), the welcome screen, the tour's steps each done
by its real action, a reload mid-tour, Esc to pause, skip and resume, the celebration, replay, and
every badge's toast. The new pages have no horizontal overflow at 390 px and no serious axe-core
violation. Screenshots go to test-results/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from accounts.tests.factories import PASSWORD, confirmation_link, user_make
from tests.browser import SHOTS, off_loop, page_checked

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]

VIEWPORTS = [pytest.param({"width": 1366, "height": 850}, id="desktop"),
             pytest.param({"width": 390, "height": 844}, id="phone")]


@pytest.fixture(autouse=True)
def seeded(db) -> None:
    from onboarding.seed import onboarding_seed

    onboarding_seed()


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)  # the tour's popover and overlay fade in over 400 ms
    page.screenshot(path=str(SHOTS / f"{name}-{page.viewport_size['width']}.png"), full_page=False)


def popover(page):
    return page.locator(".driver-popover.ob-popover")


def expect_step(page, title: str, position: str) -> None:
    expect(popover(page).locator(".driver-popover-title")).to_have_text(title)
    expect(popover(page).locator(".driver-popover-progress-text")).to_have_text(position)


def toast(page, name: str):
    item = page.locator(".ob-toast", has_text=f"Badge earned: {name}")
    return item


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_sign_up_verify_welcome_and_the_whole_tour(browser_page, live_daphne, celery_worker, bundled_models,
                                                   viewport, tmp_path):
    from chat.models import Assistant
    from onboarding.models import Journey

    # Short replies keep the run quick on a shared CPU; the model and the worker are real.
    Assistant.objects.filter(slug="general").update(max_tokens=16)
    url = live_daphne["url"]
    email = f"rosa.{viewport['width']}@example.com"
    page = browser_page(viewport)

    # --- Sign up, and verify with one click on the link: signed in, on the welcome screen.
    page.goto(url + "/accounts/signup/")
    page.get_by_label("Email").fill(email)
    page.locator("input[name=password1]").fill(PASSWORD)
    page.locator("input[name=password2]").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page.locator("main")).to_contain_text(re.compile("verify your email", re.IGNORECASE))
    page.goto(confirmation_link(live_daphne["log"], email))
    expect(page).to_have_url(re.compile(r"/app/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Rosa")  # from rosa.<width>@
    expect(page.get_by_role("heading", name="Take the tour")).to_be_visible()
    expect(page.locator("[data-stat=assistants]")).to_have_text("4")  # general, IT, HR, legal
    page_checked(page, "onboarding-welcome", settle_ms=500)

    # A name at the first visit.
    page.get_by_label("Your name").fill("Rosa")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome, Rosa")

    # --- Step 1, Assistants: start a conversation.
    page.get_by_role("button", name="Start the tour").click()
    expect(page).to_have_url(re.compile(r"/app/assistants/$"))
    expect_step(page, "Meet the assistants", "Step 1 of 7")
    expect(page.locator("#ob-ring")).to_be_visible()
    shot(page, "onboarding-step1")
    page.get_by_role("button", name="Start chatting with General assistant").click()

    # --- Step 2, Try a chat: highlighted composer, survives a reload, completes on sending.
    expect(page).to_have_url(re.compile(r"/app/chats/\d+/$"))
    expect_step(page, "Try a chat", "Step 2 of 7")
    expect(page.locator("#ob-ring .ob-ring__label")).to_have_text("14%")
    page.reload()
    expect_step(page, "Try a chat", "Step 2 of 7")
    expect(page.locator("#composer-input")).to_be_focused()
    shot(page, "onboarding-step2")
    expect(page.locator("#chat-status")).to_have_text("Connected")
    page.locator("#composer-input").fill("Say hello in three words.")
    page.keyboard.press("Enter")
    # The step completes on sending (not on Next); the S-7 evaluation is next.
    card = page.locator("#ob-tour-card")
    expect(card).to_contain_text("Explore the S-7 evaluation", timeout=30_000)
    expect(card).to_contain_text("step 3 of 7")
    expect(popover(page)).to_have_count(0)
    expect(toast(page, "First Chat")).to_be_visible(timeout=180_000)
    page.wait_for_timeout(400)
    shot(page, "onboarding-first-chat-toast")

    # --- Step 3, the S-7 evaluation page (PARLEY_TOUR_EVALUATION_URL): a step without an action, Next.
    card.get_by_role("link", name="Go to “Explore the S-7 evaluation”").click()
    expect(page).to_have_url(re.compile(r"/app/evaluation/$"))
    expect_step(page, "Explore the S-7 evaluation", "Step 3 of 7")
    expect(page.locator("[data-tour='evaluation']")).to_have_class(re.compile(r"\bdriver-active-element\b"))
    shot(page, "onboarding-step3-evaluation")
    popover(page).get_by_role("button", name="Next").click()

    # --- Step 4, Knowledge: a collection, then documents (five ready ones earn Knowledge Explorer).
    card = page.locator("#ob-tour-card")
    expect(card).to_contain_text("Add your knowledge")
    card.get_by_role("link", name="Go to “Add your knowledge”").click()
    expect_step(page, "Add your knowledge", "Step 4 of 7")
    page.get_by_label("Name", exact=True).fill("Handbook")
    page.get_by_role("button", name="Create collection").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Handbook")
    expect_step(page, "Add your knowledge", "Step 4 of 7")
    files = []
    for index in range(5):
        path = tmp_path / f"note-{index}.txt"
        path.write_text(f"Note {index}: the office opens at {8 + index} o'clock and closes at 18.\n" * 3)
        files.append(str(path))
    page.set_input_files("#dropzone-input", files)
    expect(page.locator("#ob-tour-card")).to_contain_text("Usage and analytics", timeout=30_000)
    expect(toast(page, "Knowledge Explorer")).to_be_visible(timeout=180_000)

    # --- Esc pauses; the ring resumes. Then skip (asked once) and resume from the profile.
    page.locator("#ob-tour-card").get_by_role("link", name="Go to “Usage and analytics”").click()
    expect_step(page, "Usage and analytics", "Step 5 of 7")
    page.keyboard.press("Escape")
    expect(popover(page)).to_have_count(0)
    expect(page.locator("#ob-ring")).to_have_attribute("data-state", "paused")
    page.locator("#ob-ring").click()
    expect_step(page, "Usage and analytics", "Step 5 of 7")
    popover(page).get_by_role("button", name="Skip tour").click()
    expect(popover(page)).to_contain_text("Skip the whole tour?")
    popover(page).get_by_role("button", name="Yes, skip the tour").click()
    expect(popover(page)).to_have_count(0)
    expect(page.locator("#ob-ring")).to_be_hidden()
    assert Journey.objects.get(user__email=email).tour_state == "skipped"
    page.goto(url + "/app/profile/")
    page_checked(page, "onboarding-profile-skipped", settle_ms=500)
    page.get_by_role("button", name="Resume the tour").click()
    expect(page).to_have_url(re.compile(r"/app/usage/$"))

    # --- Step 5, Usage: a step without an action completes on Next.
    expect_step(page, "Usage and analytics", "Step 5 of 7")
    popover(page).get_by_role("button", name="Next").click()

    # --- Step 6, Profile: complete it.
    card = page.locator("#ob-tour-card")
    expect(card).to_contain_text("Complete your profile")
    card.get_by_role("link", name="Go to “Complete your profile”").click()
    expect_step(page, "Complete your profile", "Step 6 of 7")
    page.get_by_label("My initials (R)").check()
    page.get_by_label("Time zone").select_option("Europe/Lisbon")
    page.get_by_label("Weekly").check()
    page.get_by_role("button", name="Save profile").click()
    expect(page.locator("main")).to_contain_text("Your profile is complete.")

    # --- Step 7, Invite your team: the last one; finishing celebrates.
    card = page.locator("#ob-tour-card")
    expect(card).to_contain_text("Invite your team")
    card.get_by_role("link", name="Go to “Invite your team”").click()
    expect_step(page, "Invite your team", "Step 7 of 7")
    shot(page, "onboarding-step6")
    page.get_by_label("Email address").fill(f"colleague.{viewport['width']}@example.com")
    page.get_by_role("button", name="Send invitation").click()
    dialog = page.get_by_role("dialog", name="You finished the tour!")
    expect(dialog).to_be_visible()
    expect(page.locator("#ob-ring")).to_be_hidden()
    shot(page, "onboarding-celebration")
    journey = Journey.objects.get(user__email=email)
    assert journey.tour_state == "finished" and sorted(journey.completed_steps) == [
        "assistants", "chat", "evaluation", "invite", "knowledge", "profile", "usage"]

    # --- Replay: from step 1 again, badges kept.
    dialog.get_by_role("button", name="Replay the tour").click()
    expect(page).to_have_url(re.compile(r"/app/assistants/$"))
    expect_step(page, "Meet the assistants", "Step 1 of 7")
    expect(page.locator("#ob-badges .ob-badges__count")).to_have_text("2")
    journey.refresh_from_db()
    assert journey.run == 2 and journey.completed_steps == []


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_community_builder_power_user_and_s7_toasts_and_the_new_pages(browser_page, live_daphne, viewport):
    """The other three badges toast live on an open page; the team, invitation and badge pages pass
    the overflow and axe checks."""
    from accounts.services import invitation_create, invitation_token
    from chat.models import Assistant
    from chat.seed import assistants_seed
    from chat.services import conversation_create, message_assistant_finish, message_assistant_start
    from onboarding.services import event_record, s7_challenge_finished

    assistants_seed()
    url, width = live_daphne["url"], viewport["width"]
    owner = user_make(email=f"host.{width}@example.com", name="Hana Host")
    team = owner.teams.get()
    page = browser_page(viewport)
    page.goto(url + "/accounts/login/")
    page.get_by_label("Email").fill(owner.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))

    page.goto(url + "/app/teams/")
    expect(page.locator("html")).to_have_attribute("data-live", "open")
    page_checked(page, "onboarding-teams", settle_ms=500)
    page.get_by_label("Email address").fill(f"guest.{width}@example.com")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.locator("main")).to_contain_text(f"Invited guest.{width}@example.com")
    page.goto(url + f"/app/teams/{team.pk}/")
    page_checked(page, "onboarding-team-detail", settle_ms=500)

    # A new person opens the link in another browser, signs up (no verification mail), and joins.
    invitation = invitation_create(team=team, by=owner, email=f"newcomer.{width}@example.com")
    guest = browser_page(viewport)
    guest.goto(url + f"/app/invitations/{invitation_token(invitation)}/")
    page_checked(guest, "onboarding-invitation", settle_ms=500)
    guest.get_by_role("link", name="Create an account").click()
    expect(guest.get_by_label("Email")).to_have_value(f"newcomer.{width}@example.com")
    guest.locator("input[name=password1]").fill(PASSWORD)
    guest.locator("input[name=password2]").fill(PASSWORD)
    guest.locator("main form button[type=submit]").click()
    expect(guest).to_have_url(re.compile(rf"/app/teams/{team.pk}/$"))
    expect(guest.locator("main")).to_contain_text(f"You joined {team.name}")
    expect(toast(page, "Community Builder")).to_be_visible(timeout=15_000)  # live, on the owner's open page
    page.reload()
    expect(page.locator("#members")).to_contain_text(f"newcomer.{width}@example.com")

    # Power User: chat, voice and knowledge happened (recorded through the services, as a finished
    # text and voice reply and an upload would), then the API key is created in the browser.
    def reply(via: str) -> None:
        conversation = conversation_create(user=owner, assistant=Assistant.objects.get(slug="general"))
        message = message_assistant_start(conversation=conversation, request_id=f"r-{via}-{width}", context={},
                                          via=via)
        message_assistant_finish(message_id=message.pk, text="Hello.", status="done")

    off_loop(reply, "text")
    off_loop(reply, "voice")
    off_loop(event_record, user_id=owner.pk, name="document_added")
    expect(toast(page, "First Chat")).to_be_visible(timeout=15_000)
    page.goto(url + "/app/keys/")
    page.get_by_label("Name").fill("Script")
    page.get_by_role("button", name="Create key").click()
    expect(toast(page, "Power User")).to_be_visible(timeout=15_000)

    # S-7 Challenger: nothing awards it yet; the evaluation page will call this service.
    off_loop(s7_challenge_finished, user_id=owner.pk, challenge="s7-demo")
    expect(toast(page, "S-7 Challenger")).to_be_visible(timeout=15_000)
    page.wait_for_timeout(400)  # the slide-in (250 ms) has ended
    shot(page, "onboarding-toasts")

    page.goto(url + "/app/badges/")
    expect(page.locator(".ob-badge-card--earned")).to_have_count(4)
    page_checked(page, "onboarding-badges", settle_ms=500)
    page.goto(url + f"/app/teams/{team.pk}/usage/")
    page_checked(page, "onboarding-team-usage", settle_ms=500)
    page.goto(url + "/app/profile/")
    page_checked(page, "onboarding-profile", settle_ms=500)
    # Already toasted: a new page shows none of them again.
    page.goto(url + "/app/")
    page.wait_for_timeout(500)
    expect(page.locator(".ob-toast")).to_have_count(0)


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_a_step_whose_target_sits_in_a_closed_menu_opens_it(browser_page, live_daphne, viewport):
    """Staff point the usage step at the Usage link, which sits in the account menu (inside the phone
    menu at 390 px): the tour opens what is closed and highlights the link."""
    from django.utils import timezone

    from onboarding.models import Journey, TourStep

    step = TourStep.objects.get(slug="usage")
    step.target_element = '#account-menu a[href="/app/usage/"]'
    step.save()
    user = user_make(email=f"menu.{viewport['width']}@example.com", name="Mina")
    Journey.objects.filter(user=user).update(tour_state="active", current_step=step, run=1,
                                             tour_started_at=timezone.now(), run_started_at=timezone.now())
    page = browser_page(viewport)
    page.goto(live_daphne["url"] + "/accounts/login/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.locator("main form button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/app/$"))

    page.goto(live_daphne["url"] + "/app/usage/")
    expect_step(page, "Usage and analytics", "Step 5 of 7")
    link = page.locator('#account-menu a[href="/app/usage/"]')
    expect(link).to_be_visible()
    expect(link).to_have_class(re.compile(r"\bdriver-active-element\b"))
    expect(page.locator('[aria-controls="account-menu"]')).to_have_attribute("aria-expanded", "true")
    if viewport["width"] < 600:
        expect(page.locator('[aria-controls="site-nav"]')).to_have_attribute("aria-expanded", "true")
    shot(page, "onboarding-step-in-menu")
