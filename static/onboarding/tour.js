// The onboarding tour. Progress lives on the server (one journey per user), so the tour survives
// page changes, reloads and other devices: each page starts from the state rendered into it and
// follows `tour.state` events from the notifications socket. driver.js (MIT, from npm) draws the
// highlight and popover when the current step's element is on this page; otherwise a small card
// says where the step is and links there. SPDX-License-Identifier: GPL-3.0-or-later
import { driver } from "/static/vendor/driver.js/driver.js.mjs";
import { postJSON } from "./api.js";
import { celebrate } from "./toast.js";

const HINTS = {
  conversation_started: "Press Start chatting on an assistant to continue.",
  message_sent: "Send a message to continue.",
  document_added: "Add a document to a collection to continue.",
  profile_completed: "Fill in every field and save your profile to continue.",
  invitation_sent: "Send an invitation to continue.",
  s7_challenge_finished: "Finish a challenge to continue.",
  evaluation_viewed: "Open the evaluation to continue.",
};
const reducedMotion = () => window.matchMedia("(prefers-reduced-motion: reduce)").matches;
// driver.js puts titles and descriptions in with innerHTML; steps are text, so escape them.
const esc = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

let state = null;
let drv = null;
let shownKey = "";

function current() {
  return state && state.state === "active" ? state.steps.find((step) => step.slug === state.current) : null;
}

function visible(el) { return !!el && el.getClientRects().length > 0; }

// Steps whose target sits in a collapsed menu open it: a menu is any element marked `data-phone-menu`,
// opened by the button that names it in aria-controls. Menus nest (the account menu inside the phone
// menu), so the outermost opens first.
function reveal(el) {
  if (visible(el)) return;
  const menus = [];
  for (let menu = el.closest("[data-phone-menu]"); menu; menu = menu.parentElement?.closest("[data-phone-menu]")) {
    menus.unshift(menu);
  }
  for (const menu of menus) {
    const toggle = menu.id && document.querySelector(`[aria-controls="${CSS.escape(menu.id)}"]`);
    if (toggle && toggle.getAttribute("aria-expanded") !== "true") toggle.click();
  }
}

function target(step) {
  let el = null;
  try { el = document.querySelector(step.element); } catch { return null; }
  if (!el) return null;
  reveal(el);
  return visible(el) ? el : null;
}

// The page may move the target after the popover was placed (the chat composer sits at the bottom of
// a full-height column and rises when the model picker fills in its description): follow it.
let follow = null;

function followTarget(el) {
  let queued = false;
  const again = () => {
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => { queued = false; drv?.refresh(); });
  };
  const resize = new ResizeObserver(again);
  for (let node = el; node && node !== document.documentElement; node = node.parentElement) resize.observe(node);
  const mutations = new MutationObserver(again);
  mutations.observe(el.closest("main") || document.body, { childList: true, subtree: true, characterData: true });
  // Captured: a page that scrolls an inner column (the chat page on a phone) sends no scroll to window.
  document.addEventListener("scroll", again, { capture: true, passive: true });
  follow = () => {
    resize.disconnect();
    mutations.disconnect();
    document.removeEventListener("scroll", again, { capture: true });
  };
}

function teardown() {
  follow?.();
  follow = null;
  if (drv) { const d = drv; drv = null; d.destroy(); }
  document.getElementById("ob-tour-card")?.remove();
  shownKey = "";
}

function ring() {
  const link = document.getElementById("ob-ring");
  if (!link || !state) return;
  const on = state.state === "active" || state.state === "paused";
  link.hidden = !on;
  link.dataset.state = state.state;
  link.querySelector(".ob-ring__arc")?.setAttribute("stroke-dashoffset", String(100 - state.percent));
  const label = link.querySelector(".ob-ring__label");
  if (label) label.textContent = `${state.percent}%`;
  link.setAttribute("aria-label", state.state === "paused"
    ? `Tour paused at ${state.percent}%: resume it` : `Tour ${state.percent}% complete: go to the current step`);
}

async function op(name, fields = {}) {
  const next = await postJSON(`/app/tour/${name}/`, fields);
  apply(next);
  return next;
}

function skipConfirm(container, before) {
  // "Skip asks once": the button turns into a short question with its two answers.
  const ask = document.createElement("div");
  ask.className = "ob-skip-ask";
  ask.setAttribute("role", "group");
  ask.setAttribute("aria-label", "Skip the tour?");
  const text = document.createElement("p");
  text.textContent = "Skip the whole tour? You can resume it later from your profile.";
  const yes = document.createElement("button");
  yes.type = "button";
  yes.className = "btn btn--small btn--danger";
  yes.textContent = "Yes, skip the tour";
  yes.addEventListener("click", () => op("skip"));
  const no = document.createElement("button");
  no.type = "button";
  no.className = "btn btn--small btn--secondary";
  no.textContent = "Keep going";
  no.addEventListener("click", () => { ask.remove(); before.hidden = false; before.focus(); });
  ask.append(text, yes, no);
  before.hidden = true;
  container.append(ask);
  yes.focus();
}

function extraButtons(footer) {
  const pause = document.createElement("button");
  pause.type = "button";
  pause.className = "ob-tour-btn";
  pause.textContent = "Pause";
  pause.title = "Pause the tour (Esc)";
  pause.addEventListener("click", () => op("pause"));
  const skip = document.createElement("button");
  skip.type = "button";
  skip.className = "ob-tour-btn ob-tour-btn--quiet";
  skip.textContent = "Skip tour";
  skip.addEventListener("click", () => skipConfirm(footer.parentElement, skip));
  footer.prepend(pause, skip);
}

function highlight(step, el) {
  const index = state.steps.findIndex((s) => s.slug === step.slug);
  const last = index === state.steps.length - 1;
  drv = driver({
    steps: state.steps.map((s) => ({
      element: s.slug === step.slug ? el : undefined,
      popover: {
        title: esc(s.title),
        description: esc(s.action ? `${s.text} ${HINTS[s.action] || ""}`.trim() : s.text),
        nextBtnText: s.action ? "Skip this step" : (last ? "Finish" : "Next"),
        doneBtnText: s.action ? "Skip this step" : "Finish",
        showButtons: ["next", "close"],
      },
    })),
    showProgress: true,
    progressText: "Step {{current}} of {{total}}",
    allowKeyboardControl: false, // arrows would fire while typing in the composer; Esc is ours
    animate: !reducedMotion(),
    smoothScroll: !reducedMotion(),
    overlayOpacity: 0.45,
    stagePadding: 6,
    popoverClass: "ob-popover",
    overlayClickBehavior: () => {}, // clicking around the highlight does nothing; Pause or Esc stop the tour
    onNextClick: () => op("next", { step: step.slug }),
    onPrevClick: () => {},
    onCloseClick: () => op("pause"),
    onDestroyStarted: () => op("pause"),
    // driver.js placed the popover at its height before our buttons were added; a taller one (they
    // wrap to a second row on a phone) covered the target from above. Place it again once the
    // highlight has settled (a refresh during the transition does nothing).
    onHighlighted: () => requestAnimationFrame(() => drv?.refresh()),
    onPopoverRender: (popover) => {
      popover.wrapper.setAttribute("role", "dialog");
      popover.wrapper.setAttribute("aria-labelledby", "driver-popover-title");
      popover.wrapper.setAttribute("aria-describedby", "driver-popover-description");
      popover.wrapper.dataset.step = step.slug;
      popover.closeButton.setAttribute("aria-label", "Pause the tour");
      extraButtons(popover.footerButtons);
      // Focus where the work is: the step's own control for a real action, else Next.
      const controls = "textarea, input:not([type=hidden]), select, button";
      const control = step.action && (el.matches(controls) ? el : el.querySelector(controls));
      requestAnimationFrame(() => (control || popover.nextButton).focus({ preventScroll: true }));
    },
  });
  drv.drive(index);
  followTarget(el);
}

function card(step) {
  const el = document.createElement("aside");
  el.id = "ob-tour-card";
  el.className = "ob-card";
  el.setAttribute("aria-labelledby", "ob-card-title");
  const progress = document.createElement("p");
  progress.className = "ob-card__progress";
  progress.textContent = `Tour · step ${state.position} of ${state.total} · ${state.percent}% done`;
  const title = document.createElement("h2");
  title.id = "ob-card-title";
  title.className = "ob-card__title";
  title.textContent = step.title;
  const text = document.createElement("p");
  text.className = "ob-card__text";
  text.textContent = step.text;
  const actions = document.createElement("div");
  actions.className = "ob-card__actions";
  const go = document.createElement("a");
  go.className = "btn btn--small";
  go.href = step.url;
  go.textContent = `Go to “${step.title}”`;
  extraButtons(actions);
  actions.prepend(go); // the way forward first, then Pause and Skip
  el.append(progress, title, text, actions);
  const main = document.getElementById("main");
  if (window.matchMedia("(max-width: 40rem)").matches && main) {
    el.classList.add("ob-card--inline");
    main.prepend(el);
  } else {
    document.body.append(el);
  }
}

function render() {
  ring();
  const step = current();
  const key = step ? `${state.run}:${step.slug}` : "";
  if (key && key === shownKey && (drv || document.getElementById("ob-tour-card"))) return;
  teardown();
  if (!step) return;
  const el = target(step);
  if (el) highlight(step, el); else card(step);
  shownKey = key;
}

function celebrateOnce() {
  if (state.state !== "finished" || !state.finished_at) return;
  const key = `ob-celebrated-${state.run}-${state.finished_at}`;
  // Only a run that just finished (within 10 minutes), once per browser.
  if (Date.now() - Date.parse(state.finished_at) > 10 * 60 * 1000) return;
  try { if (localStorage.getItem(key)) return; } catch { /* private mode */ }
  // Remembered once it was seen for a moment or closed: a finish pushed to a page that is just
  // leaving (the form that finished the tour redirects) is celebrated on the next page instead.
  const remember = () => { try { localStorage.setItem(key, "1"); } catch { /* private mode */ } };
  const dialog = celebrate({ onReplay: () => op("replay").then(goToStep) });
  if (dialog) {
    const timer = setTimeout(remember, 1500);
    dialog.addEventListener("close", () => { clearTimeout(timer); remember(); });
  }
}

function apply(next) {
  state = next;
  render();
  celebrateOnce();
}

function goToStep() {
  const step = current();
  if (step && !target(step)) location.assign(step.url);
}

export function initTour(initial) {
  state = initial;
  // After the shell's menus are wired (its DOMContentLoaded handler, which runs after this module): a
  // step inside a closed menu opens it by clicking its button.
  if (document.documentElement.dataset.shell === "ready") render();
  else document.addEventListener("parley:shell-ready", render, { once: true });
  celebrateOnce();
  document.addEventListener("parley:live", (event) => {
    if (event.detail.event === "tour.state") apply(event.detail.data);
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && drv && !event.defaultPrevented) op("pause");
  });
  // The welcome and profile cards' buttons (forms that also work without JavaScript).
  document.querySelectorAll("form[data-tour-op]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      op(form.dataset.tourOp).then(goToStep).catch(() => form.submit());
    });
  });
  const ringLink = document.getElementById("ob-ring");
  ringLink?.addEventListener("click", (event) => {
    if (!state) return;
    if (state.state === "paused") {
      event.preventDefault();
      op("resume").then(goToStep);
    } else if (current() && target(current())) {
      event.preventDefault();
      shownKey = "";
      render();
    }
  });
}
