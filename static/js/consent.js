// The consent banner: shown on first visit (the server renders it), reopened by "Privacy settings"
// links, and the one place that starts or stops the tracker. The choice is posted to /privacy/consent/,
// which keeps it (profile for a signed-in user, a first-party cookie otherwise) and logs it.
// Do Not Track or Global Privacy Control in the browser: no tracker whatever was chosen, the banner
// says why instead of asking, and the signal is reported once so the server's record agrees.
// SPDX-License-Identifier: GPL-3.0-or-later

import { analyticsStart, analyticsStop } from "./analytics.js";

const SIGNAL_NAMES = { gpc: "Global Privacy Control", dnt: "Do Not Track" };

const stateNode = document.getElementById("consent-state");
const banner = document.getElementById("consent-banner");
const form = banner && banner.querySelector("[data-consent-form]");

function browserSignal() {
  if (navigator.globalPrivacyControl === true) return "gpc";
  if (navigator.doNotTrack === "1" || window.doNotTrack === "1") return "dnt";
  return "";
}

if (stateNode && banner && form) {
  const state = JSON.parse(stateNode.textContent);
  const signal = state.signal || browserSignal();
  const status = banner.querySelector("[data-consent-status]");
  const part = (selector) => banner.querySelector(selector);

  function show(mode) {
    banner.dataset.mode = mode;
    const notice = mode === "notice";
    part("[data-consent-source]").value = notice ? "signal" : mode === "settings" ? "settings" : "banner";
    part("[data-consent-signal]").value = signal;
    part("[data-consent-signal-text]").hidden = !signal;
    part("[data-consent-signal-name]").textContent = SIGNAL_NAMES[signal] || "";
    banner.querySelectorAll("[data-consent-choice]").forEach((button) => { button.hidden = notice; });
    part("[data-consent-ok]").hidden = !notice;
    part("[data-consent-close]").hidden = mode !== "settings";
    part("[data-consent-current]").hidden = !state.choice || notice;
    part("[data-consent-current-label]").textContent =
      state.choice === "analytics" ? "analytics allowed" : "necessary only";
    banner.hidden = false;
  }

  function hide() {
    banner.hidden = true;
    status.textContent = "";
  }

  function apply(choice) {
    state.choice = choice;
    if (choice === "analytics" && !signal) analyticsStart(state.eventsUrl);
    else analyticsStop();
  }

  async function post(choice, source) {
    const body = new FormData(form);
    body.set("choice", choice);
    body.set("source", source);
    body.set("signal", signal);
    const response = await fetch(state.consentUrl, {
      method: "POST", body, credentials: "same-origin", headers: { Accept: "application/json" },
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.message || `The choice was not saved (${response.status}).`);
    return answer;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = event.submitter;
    const choice = button ? button.value : "necessary";
    if (button && button.hasAttribute("data-consent-ok") && state.choice === "necessary") {
      hide();  // the signal was already reported on load; "OK" only closes the notice
      return;
    }
    const source = part("[data-consent-source]").value;
    // Withdrawal takes effect before the server answers: nothing more is sent from this page.
    if (choice !== "analytics") analyticsStop();
    try {
      const answer = await post(choice, source);
      apply(answer.choice);
      if (button && button.hasAttribute("data-consent-ok")) hide();
      else if (answer.signal) status.textContent = answer.message;
      else hide();
    } catch (error) {
      status.textContent = error.message;
    }
  });

  // The privacy page's and profile's own forms reload the page; stop first, so nothing queued goes out.
  document.addEventListener("submit", (event) => {
    const target = event.target;
    if (target !== form && target.getAttribute("action") === state.consentUrl
        && !(event.submitter && event.submitter.value === "analytics")) analyticsStop();
  });

  part("[data-consent-close]").addEventListener("click", hide);
  document.querySelectorAll("[data-consent-open]").forEach((link) => {
    link.addEventListener("click", (event) => {
      event.preventDefault();
      show(signal ? "notice" : "settings");
      banner.querySelector("button:not([hidden])").focus();
    });
  });

  if (signal) {
    analyticsStop();
    // Report once: until the stored choice is "necessary", the server may still count this visitor (a
    // browser-only signal sends no header), so tell it; then the banner only says why it doesn't ask.
    if (state.choice !== "necessary") {
      show("notice");
      post("necessary", "signal").then((answer) => { state.choice = answer.choice; }, () => {});
    }
  } else if (state.choice === "analytics") {
    analyticsStart(state.eventsUrl);
  } else if (!state.choice) {
    show("ask");
  }
}
