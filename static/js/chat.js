// Parley text chat: a WebSocket per conversation, streaming markdown, stop, regenerate and edit with
// alternatives (‹ 2/3 ›), the model's title, a searchable sidebar (a drawer on phones), rate-limit banners.
// Frames follow docs/protocol.md. SPDX-License-Identifier: GPL-3.0-or-later
import { marked } from "/static/vendor/marked/marked.esm.js";
import DOMPurify from "/static/vendor/dompurify/purify.es.mjs";
import { setupVoice } from "./voice.js";

const root = document.getElementById("chat");
const conversationId = root.dataset.conversation;
const log = document.getElementById("chat-log");
const form = document.getElementById("composer");
const input = document.getElementById("composer-input");
const sendButton = document.getElementById("send");
const stopButton = document.getElementById("stop");
const statusEl = document.getElementById("chat-status");
const knowledgeScope = document.getElementById("knowledge-scope");
const modelPicker = document.getElementById("model-picker");
const modelInfo = document.getElementById("model-info");
const assistantName = root.dataset.assistant;
const titleEl = document.getElementById("chat-title");
const jumpButton = document.getElementById("chat-jump");
const banner = document.getElementById("chat-banner");
const bannerText = document.getElementById("chat-banner-text");
const bannerRetry = document.getElementById("chat-banner-retry");
const bannerUpgrade = document.getElementById("chat-banner-upgrade");

marked.use({ gfm: true, breaks: true });

// Replies are model output, and a prompt-injected document can make a model write markup. Only
// text formatting survives: no forms or inputs (a fake log-in form), no images from anywhere but
// this site (an <img> whose URL carries the conversation to another server), no media, frames,
// styles or SVG. Links stay, opening without a referrer or any hold on this page. The Content
// Security Policy is the second wall behind this one.
const PURIFY = {
  FORBID_TAGS: ["form", "input", "button", "textarea", "select", "option", "optgroup", "datalist", "fieldset",
    "output", "label", "style", "link", "meta", "base", "iframe", "frame", "frameset", "object", "embed",
    "video", "audio", "source", "track", "picture", "svg", "math", "template", "dialog", "portal"],
  FORBID_ATTR: ["style", "srcset", "action", "formaction", "background", "poster", "ping", "xlink:href"],
  ALLOW_DATA_ATTR: false,
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|#|\/(?![\/\\]))/i,
};
const SAME_SITE_PATH = /^\/(?![\/\\])/;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  // An image keeps its source only if it is one of this site's own paths; the others lose it here,
  // in DOMPurify's inert document, before anything could load it, and become their alt text below.
  if (node.tagName === "IMG" && !SAME_SITE_PATH.test(node.getAttribute("src") || "")) {
    node.removeAttribute("src");
    node.setAttribute("data-blocked-image", "");
  }
  if (node.tagName === "A") {
    node.setAttribute("rel", "noopener noreferrer nofollow");
    if (node.getAttribute("target")) { node.setAttribute("target", "_blank"); }
  }
});

function renderMarkdown(el, text) {
  el.innerHTML = DOMPurify.sanitize(marked.parse(text || ""), PURIFY);
  el.querySelectorAll("img[data-blocked-image]").forEach((img) => {
    img.replaceWith(document.createTextNode(img.getAttribute("alt") || ""));
  });
}

let socket = null;
let reconnectDelay = 500;
let pending = null; // the assistant bubble being written: {el, body, text, frameQueued}
let pingTimer = null;
let following = true; // stick to the newest message unless the reader scrolled up
let connectedOnce = false;
const rawText = new WeakMap(); // a user message's text as typed (its bubble shows it as markdown)

function setStatus(text) { statusEl.textContent = text; }

// ---------------------------------------------------------------- scrolling

function nearBottom() { return log.scrollHeight - log.scrollTop - log.clientHeight < 48; }

function scrollToEnd() {
  log.scrollTop = log.scrollHeight;
  following = true;
  jumpButton.hidden = true;
}

// New text arrived: follow it, or offer the way down if the reader is elsewhere.
function keepUp() {
  if (following) { log.scrollTop = log.scrollHeight; } else { jumpButton.hidden = false; }
}

log.addEventListener("scroll", () => {
  following = nearBottom();
  if (following) jumpButton.hidden = true;
}, { passive: true });
jumpButton.addEventListener("click", () => { scrollToEnd(); input.focus({ preventScroll: true }); });

// ---------------------------------------------------------------- rendering

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = text;
  return node;
}

function button(className, text, label) {
  const b = el("button", `btn btn--link btn--small ${className}`, text);
  b.type = "button";
  if (label) b.setAttribute("aria-label", label);
  return b;
}

// One renderer for every message: those on the page at load (#chat-messages) and those from frames.
function renderMessage(m) {
  const li = el("li", `msg msg--${m.role}`);
  if (m.id) li.dataset.id = m.id;
  li.dataset.status = m.status || "done";
  const meta = el("div", "msg__meta");
  meta.append(el("span", "msg__who", m.role === "user" ? "You" : assistantName));
  if (m.via === "voice") meta.append(el("span", "badge", "Spoken"));
  li.append(meta);
  if (m.memory) li.append(memoryNote(m.memory));
  if (m.tool_steps?.length) li.append(toolSteps(m.tool_steps));
  const body = el("div", "msg__body");
  li.append(body);
  renderMarkdown(body, m.text || "");
  rawText.set(li, m.text || "");
  if (m.error) li.append(el("p", "msg__error", m.error));
  if (m.citations?.length) {
    li.append(citationList(m.citations));
    linkMarkers(body, m.citations);
  }
  const foot = el("div", "msg__foot");
  li.append(foot);
  setAlternatives(li, m.alternatives);
  if (m.role === "user") {
    foot.append(button("msg__edit", "Edit", "Edit this message"));
  } else {
    if (m.model_note) foot.append(modelNote(m.model_note, m.model_note.includes(" because ")));
    const timing = el("span", "msg__timing");
    if (m.timings?.ttft_ms != null) timing.textContent = timingText(m.timings);
    foot.append(timing, button("msg__copy", "Copy", "Copy this reply"));
  }
  const state = { streaming: ["Writing…", ""], interrupted: ["Interrupted", "warning"], failed: ["Failed", "danger"] };
  if (state[m.status]) setState(li, ...state[m.status]);
  return li;
}

function timingText(t) {
  return `First token ${Math.round(t.ttft_ms)} ms` + (t.tokens_per_s ? ` · ${Number(t.tokens_per_s).toFixed(1)} tokens/s` : "");
}

// The built-in tools a reply called: one collapsed line each ("used knowledge_search ('…') → 3 passages"),
// opening onto what was asked and what came back.
function toolStep(step) {
  const details = el("details", `msg__tool${step.ok ? "" : " msg__tool--failed"}`);
  details.append(el("summary", null, step.summary || `used ${step.name}`));
  const args = el("pre", "msg__tool-data", JSON.stringify(step.arguments ?? {}, null, 2));
  const result = el("pre", "msg__tool-data", step.result || "");
  details.append(el("p", "msg__tool-label", "Asked"), args, el("p", "msg__tool-label", "Got back"), result);
  return details;
}

function toolSteps(steps) {
  const box = el("div", "msg__tools");
  steps.forEach((step) => box.append(toolStep(step)));
  return box;
}

function addToolStep(li, step) {
  let box = li.querySelector(".msg__tools");
  if (!box) {
    box = toolSteps([]);
    li.insertBefore(box, li.querySelector(".msg__body"));
  }
  box.append(toolStep(step));
  keepUp();
}

function memoryNote(memory) {
  const details = el("details", "msg__memory");
  const parts = [];
  if (memory.summarized) parts.push(`${memory.summarized} summarized`);
  if (memory.dropped) parts.push(`${memory.dropped} left out`);
  details.append(el("summary", null,
    `${memory.summarized ? "Earlier messages summarized" : "Earlier messages left out"} (${parts.join(", ")})`));
  details.append(el("p", null, memory.summary
    ? `The model saw this summary instead of them: ${memory.summary}`
    : "They no longer fit the model's memory for this conversation."));
  return details;
}

// "‹ 2/3 ›": a message's place among its alternatives (regenerated replies, edited messages).
function setAlternatives(li, alt) {
  li.querySelector(".msg__alts")?.remove();
  if (!alt || alt.count < 2) return;
  const nav = el("span", "msg__alts");
  nav.setAttribute("role", "group");
  nav.setAttribute("aria-label", li.classList.contains("msg--user") ? "Versions of this message" : "Alternative replies");
  const prev = button("msg__alt", "‹", "Previous version");
  const next = button("msg__alt", "›", "Next version");
  prev.dataset.target = alt.previous_id ?? "";
  next.dataset.target = alt.next_id ?? "";
  prev.disabled = !alt.previous_id;
  next.disabled = !alt.next_id;
  nav.append(prev, el("span", "msg__alt-count", `${alt.index}/${alt.count}`), next);
  li.querySelector(".msg__foot").prepend(nav);
}

function renderPath(messages) {
  log.replaceChildren(...messages.map(renderMessage));
  if (!messages.length) {
    const empty = el("li", "chat__empty", "Say hello to start.");
    empty.id = "chat-empty";
    log.append(empty);
  }
  updateRetry();
  scrollToEnd();
}

export function bubble(role, text, via) {
  document.getElementById("chat-empty")?.remove();
  log.querySelector(".chat__empty")?.remove();
  const li = renderMessage({ role, text, via, status: "done" });
  log.append(li);
  if (role === "user") scrollToEnd(); else keepUp();
  return { el: li, body: li.querySelector(".msg__body"), text: text || "" };
}

function setState(li, label, kind) {
  li.querySelector(".msg__state")?.remove();
  if (!label) return;
  li.querySelector(".msg__meta").append(el("span", `badge msg__state ${kind ? "badge--" + kind : ""}`, label));
}

// Retry belongs to the last reply only (or to a message of yours left without one); Stop only to a reply
// being written. Neither exists, nor takes a Tab stop, otherwise.
function updateRetry() {
  log.querySelectorAll(".msg__retry").forEach((b) => b.remove());
  if (pending) return;
  const last = log.querySelector(".msg:last-of-type");
  if (!last?.dataset.id) return;
  const label = last.classList.contains("msg--user") ? "Get a reply" : "Retry";
  last.querySelector(".msg__foot").append(button("msg__retry", label,
    last.classList.contains("msg--user") ? "Get a reply to this message" : "Retry: write this reply again"));
}

function busy(on) {
  stopButton.hidden = !on;
  sendButton.disabled = on;
  updateRetry();
}

export function startAssistantBubble() {
  pending = bubble("assistant", "");
  pending.el.dataset.status = "streaming";
  setState(pending.el, "Writing…");
  busy(true);
  return pending;
}

function appendDelta(text) {
  if (!pending) startAssistantBubble();
  pending.text += text;
  if (!pending.frameQueued) {
    pending.frameQueued = true;
    requestAnimationFrame(() => {
      if (!pending) return;
      pending.frameQueued = false;
      renderMarkdown(pending.body, pending.text);
      keepUp();
    });
  }
}

function finish(status, label, kind) {
  if (!pending) { busy(false); return; }
  renderMarkdown(pending.body, pending.text);
  pending.el.dataset.status = status;
  setState(pending.el, label, kind);
  const done = pending;
  pending = null;
  busy(false);
  keepUp();
  return done;
}

// ---------------------------------------------------------------- frames

export function handleFrame(frame) {
  switch (frame.type) {
    case "title":
      showTitle(frame.title);
      titleEl.dataset.titleSource = frame.source;
      break;
    case "start": {
      if (!pending) startAssistantBubble();
      pending.el.dataset.id = frame.message_id;
      setAlternatives(pending.el, frame.alternatives);
      if (frame.memory) pending.el.insertBefore(memoryNote(frame.memory), pending.body);
      const user = frame.user_message && (log.querySelector(`.msg--user[data-id="${frame.user_message.id}"]`)
        || [...log.querySelectorAll(".msg--user:not([data-id])")].pop());
      if (user) {
        user.dataset.id = frame.user_message.id;
        setAlternatives(user, frame.user_message.alternatives);
      }
      if (frame.citations?.length) pending.el.insertBefore(citationList(frame.citations), pending.el.querySelector(".msg__foot"));
      hideBanner();
      break;
    }
    case "queued":
      // Waiting for a free slot on the model is not an error: say where the reply stands.
      if (pending && !pending.text) {
        setState(pending.el, frame.position <= 1 ? "Waiting for the model: you're next" :
          `Waiting for the model: ${frame.position - 1} ahead of you`);
      }
      break;
    case "fallback":
      if (!pending) startAssistantBubble();
      showModel(pending.el, `Answered by ${frame.model_label} because ${frame.reason}`, true);
      break;
    case "delta":
      if (pending && !pending.text) setState(pending.el, "Writing…");
      appendDelta(frame.text);
      break;
    case "tool_step":
      if (!pending) startAssistantBubble();
      addToolStep(pending.el, frame);
      break;
    case "done": {
      const stopped = frame.finish_reason === "stopped";
      const li = pending?.el;
      finish(stopped ? "interrupted" : "done", stopped ? "Interrupted" : "", stopped ? "warning" : "");
      if (li) {
        // The start frame listed every source given to the model; `done` keeps those the reply used.
        li.querySelector(".msg__citations")?.remove();
        if (frame.citations?.length) {
          li.insertBefore(citationList(frame.citations), li.querySelector(".msg__foot"));
          linkMarkers(li.querySelector(".msg__body"), frame.citations);
        }
      }
      if (li && frame.model_note) showModel(li, frame.model_note, frame.fallback);
      if (li && frame.finish_reason === "repetition") {
        showModel(li, `${frame.model_note || "The model"} (stopped: it began repeating itself)`, true);
      }
      break;
    }
    case "metrics": {
      const last = log.querySelector(".msg--assistant:last-of-type .msg__timing");
      if (last && frame.ttft_ms != null) last.textContent = timingText(frame);
      break;
    }
    case "path":
      if (!pending) renderPath(frame.messages);
      break;
    case "error":
      handleError(frame);
      break;
    default:
      break;
  }
}

function handleError(frame) {
  const unsaved = [...log.querySelectorAll(".msg--user:not([data-id])")].pop();
  if (unsaved && frame.user_message_id) {
    unsaved.dataset.id = frame.user_message_id;
  } else if (unsaved && pending && !pending.el.dataset.id) {
    // Refused before the message was stored (a busy conversation): it was not sent, so it goes back
    // into the box rather than sitting on the page as if it had been.
    if (!input.value.trim()) input.value = rawText.get(unsaved) || "";
    unsaved.remove();
  }
  const limited = frame.code === "rate_limited" || frame.code === "plan_limit";
  if (pending && !pending.el.dataset.id) {
    // Refused before a reply existed (a limit, a busy conversation, a message that is not there): no reply
    // row was written, so no bubble stays; the banner says what happened and when to try again.
    pending.el.remove();
    pending = null;
    busy(false);
    showBanner(frame);
    if (!limited && frame.code !== "busy") send({ type: "path" });
    return;
  }
  if (pending) {
    const hadText = pending.text.length > 0;
    const li = pending.el;
    finish(hadText ? "interrupted" : "failed", hadText ? "Interrupted" : "Failed", hadText ? "warning" : "danger");
    const p = el("p", "msg__error", frame.message);
    if (frame.upgrade_url) p.append(" ", upgradeLink(frame.upgrade_url));
    li.insertBefore(p, li.querySelector(".msg__foot"));
    return;
  }
  showBanner(frame);
  busy(false);
}

// ---------------------------------------------------------------- banner (limits and refusals)

let bannerTimer = null;

function showBanner(frame) {
  clearInterval(bannerTimer);
  bannerText.textContent = frame.message;
  bannerUpgrade.hidden = !frame.upgrade_url;
  if (frame.upgrade_url) bannerUpgrade.href = frame.upgrade_url;
  const until = frame.retry_after ? Date.now() + frame.retry_after * 1000 : null;
  bannerRetry.hidden = !until;
  banner.dataset.kind = frame.code === "rate_limited" || frame.code === "plan_limit" ? "limit" : "error";
  banner.hidden = false;
  if (until) {
    const tick = () => {
      const left = Math.ceil((until - Date.now()) / 1000);
      bannerRetry.textContent = left > 0 ? `You can send again in ${left} s (at ${new Date(until).toLocaleTimeString()}).`
        : "You can send again now.";
      if (left <= 0) clearInterval(bannerTimer);
    };
    tick();
    bannerTimer = setInterval(tick, 1000);
  }
}

function hideBanner() {
  clearInterval(bannerTimer);
  banner.hidden = true;
}

document.getElementById("chat-banner-close").addEventListener("click", () => { hideBanner(); input.focus(); });

// A plan's limit or a model the plan lacks: say so in words (the message) and offer the way out.
function upgradeLink(url) {
  const a = el("a", "btn btn--small msg__upgrade", "Upgrade");
  a.href = url;
  return a;
}

function modelNote(note, fallback) {
  const span = el("span", "msg__model", note);
  span.classList.toggle("msg__model--fallback", Boolean(fallback));
  return span;
}

function showModel(li, note, fallback) {
  const span = li.querySelector(".msg__model");
  if (span) {
    span.textContent = note;
    span.classList.toggle("msg__model--fallback", Boolean(fallback));
  } else {
    li.querySelector(".msg__foot")?.querySelector(".msg__timing")?.before(modelNote(note, fallback));
  }
}

function citationList(citations) {
  // Sources the reply cites with [n] markers; a reply without markers shows what it was given as consulted.
  const consulted = citations.every((c) => c.cited === false);
  const box = el("div", "msg__sources");
  box.append(el("p", "msg__sources-label", consulted ? "Sources consulted" : "Sources"));
  const ol = el("ol", "msg__sources-list");
  ol.setAttribute("aria-label", consulted ? "Sources consulted" : "Sources cited");
  for (const c of citations) {
    const li = el("li");
    const a = el("a", "msg__citation", `[${c.number}] ${c.title}`);
    a.href = c.url;
    if (c.passage_url) a.dataset.passage = c.passage_url;
    li.append(a);
    ol.append(li);
  }
  box.append(ol);
  box.classList.add("msg__citations");
  return box;
}

// [n] in a reply's text becomes a link to its source, opened in the side panel.
const MARKER = /\[(\d{1,3})\]/g;

function linkMarkers(body, citations) {
  if (!body) return;
  const byNumber = new Map(citations.filter((c) => c.cited !== false).map((c) => [String(c.number), c]));
  if (!byNumber.size) return;
  const walker = document.createTreeWalker(body, NodeFilter.SHOW_TEXT, {
    acceptNode: (node) => (node.parentElement.closest("code, pre, a") ? NodeFilter.FILTER_REJECT
      : MARKER.test(node.data) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP),
  });
  const nodes = [];
  while (walker.nextNode()) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = document.createDocumentFragment();
    let last = 0;
    for (const match of node.data.matchAll(MARKER)) {
      const c = byNumber.get(match[1]);
      if (!c) continue;
      parts.append(node.data.slice(last, match.index));
      const a = el("a", "cite-marker", match[0]);
      a.href = c.url;
      a.setAttribute("aria-label", `Source ${c.number}: ${c.title}`);
      if (c.passage_url) a.dataset.passage = c.passage_url;
      parts.append(a);
      last = match.index + match[0].length;
    }
    if (last === 0) continue;
    parts.append(node.data.slice(last));
    node.replaceWith(parts);
  }
}

// ---------------------------------------------------------------- the source panel

let panel = null;
let panelOpener = null;

function sourcePanel() {
  if (panel) return panel;
  panel = el("aside", "source-panel");
  panel.id = "source-panel";
  panel.hidden = true;
  panel.setAttribute("role", "dialog");
  panel.setAttribute("aria-labelledby", "source-panel-title");
  const head = el("div", "source-panel__head");
  const title = el("h2", "source-panel__title");
  title.id = "source-panel-title";
  const close = button("source-panel__close", "Close", "Close the source");
  close.addEventListener("click", closeSourcePanel);
  head.append(title, close);
  panel.append(head, el("p", "source-panel__where"), el("blockquote", "source-panel__text"));
  const open = el("a", "source-panel__open", "Open in the document");
  panel.append(open);
  panel.addEventListener("keydown", (event) => { if (event.key === "Escape") closeSourcePanel(); });
  document.body.append(panel);
  return panel;
}

async function openSourcePanel(link) {
  const box = sourcePanel();
  panelOpener = link;
  box.querySelector(".source-panel__title").textContent = "Loading the source…";
  box.querySelector(".source-panel__where").textContent = "";
  box.querySelector(".source-panel__text").textContent = "";
  box.querySelector(".source-panel__open").href = link.href;
  box.hidden = false;
  box.querySelector(".source-panel__close").focus();
  try {
    const response = await fetch(link.dataset.passage, {credentials: "same-origin", headers: {Accept: "application/json"}});
    const data = await response.json();
    if (!response.ok) throw new Error(data.detail || data.error?.message || "This source is not available.");
    box.querySelector(".source-panel__title").textContent = data.title || data.document_title || "Source";
    box.querySelector(".source-panel__where").textContent = data.collection_name || data.collection?.name || "";
    box.querySelector(".source-panel__text").textContent = data.plain_text || data.text || "";
    if (data.document_url) box.querySelector(".source-panel__open").href = data.document_url;
  } catch (error) {
    box.querySelector(".source-panel__title").textContent = "Source";
    box.querySelector(".source-panel__text").textContent = error.message || "This source could not be loaded.";
  }
}

function closeSourcePanel() {
  if (!panel || panel.hidden) return;
  panel.hidden = true;
  panelOpener?.focus();
  panelOpener = null;
}

log.addEventListener("click", (event) => {
  const link = event.target.closest("a[data-passage]");
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey) return; // a new tab still opens the document
  event.preventDefault();
  openSourcePanel(link);
});

function showTitle(title) {
  titleEl.textContent = title;
  titleEl.title = title;
  document.title = `${title} · Parley`;
  const current = document.querySelector('#chat-list a[aria-current="page"]');
  if (current) {
    current.querySelector(".chat-sidebar__title").textContent = title;
    current.title = title;
    current.parentElement.dataset.title = title.toLowerCase();
  }
}

// ---------------------------------------------------------------- the socket

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${conversationId}/`);
  socket.addEventListener("open", () => {
    reconnectDelay = 500;
    setStatus("Connected");
    clearInterval(pingTimer);
    pingTimer = setInterval(() => send({ type: "ping" }), 25000);
    if (connectedOnce) send({ type: "path" }); // whatever happened while away (a reply finished by the sweep)
    connectedOnce = true;
  });
  socket.addEventListener("message", (event) => handleFrame(JSON.parse(event.data)));
  socket.addEventListener("close", (event) => {
    clearInterval(pingTimer);
    if (event.code === 4401) { setStatus("You are logged out. Log in again to keep chatting."); return; }
    if (event.code === 4403) { setStatus("This conversation is not yours."); return; }
    // A dropped connection: the server kept the transcript; reconnect and carry on.
    if (pending) finish("interrupted", "Interrupted", "warning");
    setStatus("Reconnecting…");
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 10000);
  });
}

function send(frame) {
  if (socket && socket.readyState === WebSocket.OPEN) {
    socket.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function turnFrame(frame) {
  if (knowledgeScope && frame.type === "user_message") {
    // Off, all readable collections, the assistant's own list, or one collection.
    const scope = knowledgeScope.value;
    frame.use_knowledge = scope !== "off";
    if (scope === "all") frame.knowledge_collections = "all";
    else if (scope === "several") {
      frame.knowledge_collections = [...document.querySelectorAll('input[name="knowledge-collection"]:checked')]
        .map((box) => Number(box.value));
    }
    else if (scope !== "off") frame.knowledge_collections = [Number(scope)];
  }
  if (modelPicker) frame.model = modelPicker.value;
  return frame;
}

// "Several…" shows the collections as checkboxes; any other choice hides them.
knowledgeScope?.addEventListener("change", () => {
  const several = document.getElementById("knowledge-several");
  if (several) several.hidden = knowledgeScope.value !== "several";
});

function notConnected() {
  showBanner({ code: "not_connected", message: "Not connected yet, so nothing was sent. Try again in a moment." });
}

function sendText(text) {
  text = text.trim();
  if (!text) return false;
  if (pending) {
    showBanner({ code: "busy", message: "A reply is still being written. Stop it (Esc) or wait, then send." });
    return false;
  }
  if (!send(turnFrame({ type: "user_message", text }))) { notConnected(); return false; }
  hideBanner();
  bubble("user", text);
  startAssistantBubble();
  return true;
}

// Everything after a message goes: its new version (or new reply) is a branch, and the old one stays one
// click away (‹ ›).
function removeFrom(li) {
  while (li) {
    const next = li.nextElementSibling;
    li.remove();
    li = next;
  }
}

function regenerate(li) {
  if (pending) return;
  if (!send(turnFrame({ type: "regenerate", message_id: Number(li.dataset.id) }))) { notConnected(); return; }
  hideBanner();
  if (li.classList.contains("msg--assistant")) removeFrom(li);
  startAssistantBubble();
}

function startEdit(li) {
  if (pending || li.querySelector(".msg__editor")) return;
  const body = li.querySelector(".msg__body");
  const editor = el("form", "msg__editor");
  const area = el("textarea");
  area.value = rawText.get(li) ?? body.innerText.trim();
  area.rows = Math.min(8, Math.max(2, area.value.split("\n").length));
  area.maxLength = 8000;
  area.setAttribute("aria-label", "Edit your message");
  const actions = el("div", "msg__editor-actions");
  const cancel = el("button", "btn btn--secondary btn--small", "Cancel");
  cancel.type = "button";
  const save = el("button", "btn btn--small", "Save and send");
  save.type = "submit";
  actions.append(cancel, save);
  editor.append(area, actions);
  body.hidden = true;
  body.after(editor);
  area.focus();
  const close = () => { editor.remove(); body.hidden = false; };
  cancel.addEventListener("click", close);
  area.addEventListener("keydown", (event) => {
    if (event.key === "Escape") { event.stopPropagation(); close(); li.querySelector(".msg__edit")?.focus(); }
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) { event.preventDefault(); editor.requestSubmit(); }
  });
  editor.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = area.value.trim();
    if (!text) { area.setCustomValidity("Write something, or cancel."); area.reportValidity(); return; }
    if (!send(turnFrame({ type: "edit", message_id: Number(li.dataset.id), text }))) { notConnected(); return; }
    hideBanner();
    removeFrom(li);
    bubble("user", text);
    startAssistantBubble();
  });
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  if (sendText(input.value)) input.value = "";
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

stopButton.addEventListener("click", () => send({ type: "stop" }));

log.addEventListener("click", async (event) => {
  const target = event.target.closest("button");
  if (!target) return;
  const li = target.closest(".msg");
  if (target.classList.contains("msg__retry")) { regenerate(li); return; }
  if (target.classList.contains("msg__edit")) { startEdit(li); return; }
  if (target.classList.contains("msg__alt")) {
    if (!pending && target.dataset.target &&
        !send({ type: "select", message_id: Number(target.dataset.target) })) notConnected();
    return;
  }
  if (!target.classList.contains("msg__copy")) return;
  const text = li.querySelector(".msg__body").innerText;
  try {
    await navigator.clipboard.writeText(text);
    target.textContent = "Copied";
  } catch {
    target.textContent = "Copy failed";
  }
  setTimeout(() => { target.textContent = "Copy"; }, 1500);
});

// ---------------------------------------------------------------- the sidebar, a drawer on phones

const layout = document.getElementById("chat-layout");
const menuButton = document.getElementById("chat-menu");
const sidebar = document.getElementById("chat-sidebar");
const search = document.getElementById("chat-search");
const noMatch = document.getElementById("chat-search-none");

function drawer(open) {
  layout.dataset.drawer = open ? "open" : "closed";
  menuButton.setAttribute("aria-expanded", String(open));
  if (open) { search.focus(); } else if (sidebar.contains(document.activeElement)) { menuButton.focus(); }
}

menuButton.addEventListener("click", () => drawer(layout.dataset.drawer !== "open"));
document.getElementById("chat-sidebar-close").addEventListener("click", () => drawer(false));
document.getElementById("chat-drawer-backdrop").addEventListener("click", () => drawer(false));

search.addEventListener("input", () => {
  const query = search.value.trim().toLowerCase();
  let shown = 0;
  for (const item of document.querySelectorAll("#chat-list li")) {
    item.hidden = Boolean(query) && !item.dataset.title.includes(query);
    shown += item.hidden ? 0 : 1;
  }
  noMatch.hidden = shown > 0;
});

document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape") return;
  if (layout.dataset.drawer === "open") { drawer(false); return; }
  if (pending) send({ type: "stop" });
});

// ---------------------------------------------------------------- start

const initial = JSON.parse(document.getElementById("chat-messages").textContent);
if (initial.length) {
  renderPath(initial);
} else {
  input.focus(); // a new chat: the message box, not nineteen Tabs away
}
// Fonts and late layout can grow the log after the first paint: open at the newest message regardless.
requestAnimationFrame(scrollToEnd);
window.addEventListener("load", () => { if (following) scrollToEnd(); });

connect();
setupVoice({ conversationId, bubble, handleFrame, startAssistantBubble });

// The model picker: what the chosen entry is, how fast it ran here, what a typical request costs.
function describeModel() {
  if (!modelPicker || !modelInfo) return;
  const option = modelPicker.selectedOptions[0];
  modelInfo.textContent = option ? option.dataset.info : "";
}
modelPicker?.addEventListener("change", describeModel);
describeModel();
