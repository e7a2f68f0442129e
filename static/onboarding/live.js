// The signed-in user's live events (ws/notifications/), re-dispatched on `document` as
// `parley:live` CustomEvents: {event, data}. One socket per page, shared by the tour, the toasts
// and the welcome figures. SPDX-License-Identifier: GPL-3.0-or-later

const GONE = new Set([4401, 4403]); // logged out or not allowed: reconnecting would not help
let socket = null;
let delay = 1000;
let pinger = null;

export function connectLive() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/notifications/`);
  socket.addEventListener("open", () => {
    delay = 1000;
    document.documentElement.dataset.live = "open";
    document.dispatchEvent(new CustomEvent("parley:live-open"));
    clearInterval(pinger);
    pinger = setInterval(() => {
      if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
    }, 25000);
  });
  socket.addEventListener("message", (message) => {
    let frame;
    try { frame = JSON.parse(message.data); } catch { return; }
    if (frame.type !== "event") return;
    document.dispatchEvent(new CustomEvent("parley:live", { detail: { event: frame.event, data: frame.data } }));
  });
  socket.addEventListener("close", (event) => {
    clearInterval(pinger);
    document.documentElement.dataset.live = "closed";
    if (GONE.has(event.code)) return;
    setTimeout(connectLive, delay);
    delay = Math.min(delay * 2, 30000);
  });
}

export function onLive(name, handler) {
  document.addEventListener("parley:live", (event) => {
    if (event.detail.event === name) handler(event.detail.data);
  });
}
