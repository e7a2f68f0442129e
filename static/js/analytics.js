// The first-party tracker: page views and UI events, sent in batches with navigator.sendBeacon to
// /api/analytics/events. It runs only while consent.js says so: started after "Allow analytics",
// stopped (its queue dropped unsent) the moment the choice is withdrawn.
// SPDX-License-Identifier: GPL-3.0-or-later

const FLUSH_EVERY_MS = 10_000;
// The server's PARLEY_ANALYTICS_MAX_BATCH default; a bigger queue goes out in several beacons.
const BATCH = 50;

let endpoint = "";
let running = false;
let queue = [];
let timer = null;

function track(name, props) {
  if (!running) return;
  const event = { name, path: location.pathname, url: location.href, referrer: document.referrer };
  if (props) event.props = props;
  queue.push(event);
  if (queue.length >= BATCH) flush();
}

function flush() {
  if (!running) return;
  while (queue.length) {
    const batch = queue.splice(0, BATCH);
    // A string body goes as text/plain: no CORS preflight, and the beacon survives the page closing.
    navigator.sendBeacon(endpoint, JSON.stringify({ events: batch }));
  }
}

function onClick(event) {
  const element = event.target instanceof Element ? event.target.closest("[data-analytics-event]") : null;
  if (element) track(element.dataset.analyticsEvent);
}

function onHidden() {
  if (document.visibilityState === "hidden") flush();
}

export function analyticsStart(url) {
  if (running || !navigator.sendBeacon) return;
  endpoint = url;
  running = true;
  track("pageview");
  document.addEventListener("click", onClick, true);
  document.addEventListener("visibilitychange", onHidden);
  window.addEventListener("pagehide", flush);
  timer = window.setInterval(flush, FLUSH_EVERY_MS);
}

export function analyticsStop() {
  running = false;
  queue = [];
  window.clearInterval(timer);
  timer = null;
  document.removeEventListener("click", onClick, true);
  document.removeEventListener("visibilitychange", onHidden);
  window.removeEventListener("pagehide", flush);
}

export function analyticsRunning() {
  return running;
}
