// Parley text chat: a WebSocket per conversation, streaming markdown, stop/retry/copy.
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
const retryButton = document.getElementById("retry");
const statusEl = document.getElementById("chat-status");
const knowledgeToggle = document.getElementById("use-knowledge");
const modelPicker = document.getElementById("model-picker");
const modelInfo = document.getElementById("model-info");
const assistantName = document.getElementById("chat-title").textContent.trim();

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

// Server-rendered messages hold plain text; render them as markdown once.
log.querySelectorAll(".msg__body[data-markdown]").forEach((el) => renderMarkdown(el, el.textContent));

let socket = null;
let reconnectDelay = 500;
let pending = null; // the assistant bubble being written: {el, body, text, frameQueued}
let lastUserText = null;
let pingTimer = null;

function setStatus(text) { statusEl.textContent = text; }

function scrollToEnd() { log.scrollTop = log.scrollHeight; }

function bubble(role, text, via) {
  document.getElementById("chat-empty")?.remove();
  const li = document.createElement("li");
  li.className = `msg msg--${role}`;
  const meta = document.createElement("div");
  meta.className = "msg__meta";
  const who = document.createElement("span");
  who.className = "msg__who";
  who.textContent = role === "user" ? "You" : assistantName.replace(/^\S+\s/, "");
  meta.append(who);
  if (via === "voice") {
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "Spoken";
    meta.append(badge);
  }
  const body = document.createElement("div");
  body.className = "msg__body";
  li.append(meta, body);
  if (role === "assistant") {
    const foot = document.createElement("div");
    foot.className = "msg__foot";
    const timing = document.createElement("span");
    timing.className = "msg__timing";
    const copy = document.createElement("button");
    copy.type = "button";
    copy.className = "btn btn--link btn--small msg__copy";
    copy.textContent = "Copy";
    foot.append(timing, copy);
    li.append(foot);
  }
  renderMarkdown(body, text);
  log.append(li);
  scrollToEnd();
  return { el: li, body, text: text || "" };
}

function setState(el, label, kind) {
  el.querySelector(".msg__state")?.remove();
  if (!label) return;
  const badge = document.createElement("span");
  badge.className = `badge msg__state ${kind ? "badge--" + kind : ""}`;
  badge.textContent = label;
  el.querySelector(".msg__meta").append(badge);
}

function busy(on) {
  stopButton.hidden = !on;
  sendButton.disabled = on;
  retryButton.hidden = on || !lastUserText;
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
      scrollToEnd();
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
  return done;
}

export function handleFrame(frame) {
  switch (frame.type) {
    case "start":
      if (!pending) startAssistantBubble();
      pending.el.dataset.id = frame.message_id;
      if (frame.citations?.length) showCitations(pending.el, frame.citations);
      break;
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
    case "done": {
      const stopped = frame.finish_reason === "stopped";
      const el = pending?.el;
      finish(stopped ? "interrupted" : "done", stopped ? "Interrupted" : "", stopped ? "warning" : "");
      if (el && frame.citations?.length && !el.querySelector(".msg__citations")) showCitations(el, frame.citations);
      if (el && frame.model_note) showModel(el, frame.model_note, frame.fallback);
      if (el && frame.finish_reason === "repetition") {
        showModel(el, `${frame.model_note || "The model"} (stopped: it began repeating itself)`, true);
      }
      break;
    }
    case "metrics": {
      const el = log.querySelector(".msg--assistant:last-of-type .msg__timing");
      if (el && frame.ttft_ms != null) {
        el.textContent = `First token ${Math.round(frame.ttft_ms)} ms` +
          (frame.tokens_per_s ? ` · ${frame.tokens_per_s.toFixed(1)} tokens/s` : "");
      }
      break;
    }
    case "error": {
      if (pending) {
        const hadText = pending.text.length > 0;
        const el = pending.el;
        finish(hadText ? "interrupted" : "failed", hadText ? "Interrupted" : "Failed", hadText ? "warning" : "danger");
        const p = document.createElement("p");
        p.className = "msg__error";
        p.textContent = frame.message;
        if (frame.upgrade_url) p.append(" ", upgradeLink(frame.upgrade_url));
        el.append(p);
      } else {
        setStatus(frame.message);
        if (frame.upgrade_url) statusEl.append(" ", upgradeLink(frame.upgrade_url));
      }
      busy(false);
      break;
    }
    case "pong":
      break;
    default:
      break;
  }
}

// A plan's limit or a model the plan lacks: say so in words (the message) and offer the way out.
function upgradeLink(url) {
  const a = document.createElement("a");
  a.className = "btn btn--small msg__upgrade";
  a.href = url;
  a.textContent = "Upgrade";
  return a;
}

function showModel(el, note, fallback) {
  let span = el.querySelector(".msg__model");
  if (!span) {
    span = document.createElement("span");
    span.className = "msg__model";
    el.querySelector(".msg__foot")?.prepend(span);
  }
  span.textContent = note;
  span.classList.toggle("msg__model--fallback", Boolean(fallback));
}

function showCitations(el, citations) {
  const ol = document.createElement("ol");
  ol.className = "msg__citations";
  for (const c of citations) {
    const li = document.createElement("li");
    const a = document.createElement("a");
    a.href = c.url;
    a.textContent = `[${c.number}] ${c.title}`;
    li.append(a);
    ol.append(li);
  }
  el.insertBefore(ol, el.querySelector(".msg__foot"));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  socket = new WebSocket(`${scheme}://${location.host}/ws/chat/${conversationId}/`);
  socket.addEventListener("open", () => {
    reconnectDelay = 500;
    setStatus("Connected");
    clearInterval(pingTimer);
    pingTimer = setInterval(() => send({ type: "ping" }), 25000);
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

function sendText(text) {
  text = text.trim();
  if (!text || pending) return;
  const frame = { type: "user_message", text };
  if (knowledgeToggle) frame.use_knowledge = knowledgeToggle.checked;
  if (modelPicker) frame.model = modelPicker.value;
  if (!send(frame)) { setStatus("Not connected yet; try again in a moment."); return; }
  lastUserText = text;
  bubble("user", text);
  startAssistantBubble();
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value;
  input.value = "";
  sendText(text);
});

input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    form.requestSubmit();
  }
});

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape" && pending) send({ type: "stop" });
});

stopButton.addEventListener("click", () => send({ type: "stop" }));
retryButton.addEventListener("click", () => lastUserText && sendText(lastUserText));

log.addEventListener("click", async (event) => {
  const button = event.target.closest(".msg__copy");
  if (!button) return;
  const text = button.closest(".msg").querySelector(".msg__body").innerText;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    button.textContent = "Copy failed";
  }
  setTimeout(() => { button.textContent = "Copy"; }, 1500);
});

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
