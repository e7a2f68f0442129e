// Onboarding on every signed-in page: the live socket, the tour, badge toasts, and two small
// conveniences (a suggested prompt filled into the chat composer; the quick invite's team).
// SPDX-License-Identifier: GPL-3.0-or-later
import { setCsrf } from "./api.js";
import { connectLive, onLive } from "./live.js";
import { badgeToasts } from "./toast.js";
import { initTour } from "./tour.js";

function readState() {
  const el = document.getElementById("ob-state");
  try { return el ? JSON.parse(el.textContent) : null; } catch { return null; }
}

function prefillComposer() {
  // /app/welcome/chat/ opens a new conversation with ?prompt=…; put it in the composer, unsent.
  const input = document.getElementById("composer-input");
  const params = new URLSearchParams(location.search);
  if (input && params.has("prompt")) {
    input.value = params.get("prompt").slice(0, 8000);
    input.focus();
    history.replaceState(null, "", location.pathname + location.hash);
  }
  if (location.hash === "#talk") document.getElementById("mic")?.focus();
}

function quickInvite() {
  const select = document.querySelector("[data-invite-team]");
  const form = select?.closest("form");
  if (select && form) select.addEventListener("change", () => { form.action = select.value; });
}

const state = readState();
if (state) {
  setCsrf(state.csrf);
  connectLive();
  initTour(state.tour);
  badgeToasts(state.unseen_awards || []);
  onLive("badge.awarded", (award) => badgeToasts([award], { live: true }));
  // An award pushed before this page's socket subscribed (or while it was reconnecting) was missed:
  // ask for the unseen ones on every open. Those already toasted here are skipped by id.
  document.addEventListener("parley:live-open", () => {
    fetch("/app/badges/unseen/", { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then((response) => (response.ok ? response.json() : { unseen_awards: [] }))
      .then((data) => badgeToasts(data.unseen_awards || [], { live: true }))
      .catch(() => {});
  });
  prefillComposer();
  quickInvite();
}
